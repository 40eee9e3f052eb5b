//! The dashboard's HTML, rendered on the server: the matrix page, an environment's page, and
//! the fragments of a cell and a column header that live updates replace. The page is whole
//! without JavaScript; `assets/ui.js` adds live updates, filtering, keys and actions.

use std::fmt::Write as _;

use crate::matrix::{Cell, Column, Health, Matrix};

/// Text made safe for HTML, in an element or a quoted attribute.
pub fn escape(text: &str) -> String {
    tier_model::graph::xml_escape(text)
}

pub(crate) fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/assets/ui.css\"></head>\n",
        escape(title)
    )
}

/// The links atop every page but the matrix.
pub(crate) fn nav(matrix: &Matrix) -> String {
    format!(
        "<header><a class=\"project\" href=\"/\">{}</a><nav><a href=\"/\">matrix</a> \
         <a href=\"/diff\">diff</a> <a href=\"/libraries\">libraries</a></nav>\
         <span id=\"live\" class=\"live\">live</span></header>",
        escape(&matrix.project)
    )
}

/// The matrix page: services down the side, environments across the top.
pub fn matrix_page(matrix: &Matrix) -> String {
    // Sized for the whole page (a cell takes about 200 bytes) so that it is written into one
    // allocation rather than copied each time it outgrows one.
    let mut html = String::with_capacity(
        4096 + matrix.services.len() * (128 + matrix.environments.len() * 256),
    );
    html.push_str(&head(&format!("tier · {}", matrix.project)));
    let _ = write!(
        html,
        "<body class=\"matrix-page\"><header><h1>{}</h1>\
         <input id=\"filter\" type=\"search\" placeholder=\"Filter services ( / )\" aria-label=\"Filter services\">\
         <select id=\"status\" aria-label=\"Show\"><option value=\"\">every service</option>\
         <option value=\"unhealthy\">not running well</option></select>\
         <select id=\"sort\" aria-label=\"Sort\"><option value=\"name\">by name</option>\
         <option value=\"health\">worst first</option></select>\
         <nav><a href=\"/diff\">diff</a> <a href=\"/libraries\">libraries</a></nav>\
         <span id=\"live\" class=\"live\" title=\"updates as they happen\">live</span></header>\n\
         <main><table id=\"matrix\"><thead>",
        escape(&matrix.project)
    );
    // Environments that extend another are grouped under the one at the top of their chain.
    let grouped = matrix
        .environments
        .iter()
        .any(|column| column.group != column.name);
    if grouped {
        html.push_str("<tr class=\"groups\"><th class=\"corner\"></th>");
        let mut at = 0;
        while let Some(column) = matrix.environments.get(at) {
            let span = matrix.environments[at..]
                .iter()
                .take_while(|other| other.group == column.group)
                .count();
            let label = if span == 1 && column.group == column.name {
                String::new()
            } else {
                escape(&column.group)
            };
            let _ = write!(html, "<th colspan=\"{span}\" class=\"group\">{label}</th>");
            at += span;
        }
        html.push_str("</tr>");
    }
    html.push_str("<tr class=\"envs\"><th class=\"corner\" scope=\"col\">service</th>");
    for column in &matrix.environments {
        let _ = write!(
            html,
            "<th scope=\"col\" class=\"env{}\" id=\"env-{}\" data-env=\"{}\">{}</th>",
            if column.extends.is_some() {
                " child"
            } else {
                ""
            },
            escape(&column.name),
            escape(&column.name),
            column_html(column)
        );
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for service in &matrix.services {
        let _ = write!(
            html,
            "<tr data-service=\"{}\"><th scope=\"row\">{}</th>",
            escape(service),
            escape(service)
        );
        for column in &matrix.environments {
            let cell = matrix
                .cells
                .get(&column.name)
                .and_then(|row| row.get(service));
            match cell {
                Some(cell) => {
                    // A thousand rows of ten cells: each attribute costs the page 10,000 times,
                    // so a cell has a title only when it has something to say.
                    let title = cell_title(column, cell);
                    let _ = write!(
                        html,
                        "<td id=\"{}\" class=\"{}\"",
                        cell_id(&column.name, service),
                        cell_class(cell)
                    );
                    if !title.is_empty() {
                        let _ = write!(html, " title=\"{}\"", escape(&title));
                    }
                    let _ = write!(html, ">{}</td>", cell_html(cell));
                }
                None => html.push_str("<td class=\"cell not-deployed\">–</td>"),
            }
        }
        html.push_str("</tr>\n");
    }
    html.push_str(
        "</tbody></table></main>\n<footer>✓ running · … starting · ! degraded · ✗ failing · \
         ○ stopped · – not deployed</footer>\n<script src=\"/assets/ui.js\"></script></body></html>\n",
    );
    html
}

/// The id of a cell's element: environment and service names are DNS-1035 labels, so a dot
/// cannot occur in either.
pub fn cell_id(env: &str, service: &str) -> String {
    format!("{}.{}", escape(env), escape(service))
}

pub fn cell_class(cell: &Cell) -> String {
    let drifted = cell.drift.as_ref().is_some_and(|drift| !drift.is_empty());
    format!(
        "cell {}{}",
        cell.health.as_str().replace(' ', "-"),
        if drifted { " drifted" } else { "" }
    )
}

/// What a cell's tooltip adds to what it shows: why it is not running, its drift, and who
/// last changed it when that was before the environment's deployed revision. Empty when
/// there is nothing to add.
pub fn cell_title(column: &Column, cell: &Cell) -> String {
    let mut parts = Vec::new();
    if let Some(reason) = &cell.reason {
        parts.push(reason.clone());
    }
    if let Some(drift) = cell.drift.as_ref().filter(|drift| !drift.is_empty()) {
        parts.push(format!("drift: {}", drift.join(", ")));
    }
    let deployed = column.deployed.as_ref().map(|deployed| deployed.revision);
    if let Some(changed) = cell
        .changed
        .as_ref()
        .filter(|changed| Some(changed.revision) != deployed)
    {
        let when = changed
            .finished_unix_ms
            .map(|ms| format!(" at {}", utc(ms)));
        parts.push(format!(
            "changed in r{} by {}{}",
            changed.revision,
            changed.who,
            when.unwrap_or_default()
        ));
    }
    parts.join("; ")
}

/// What a cell shows: its health symbol, ready/desired, version and restarts.
pub fn cell_html(cell: &Cell) -> String {
    let mut html = format!("<b>{}</b>", cell.health.symbol());
    if cell.health != Health::NotDeployed {
        let _ = write!(html, " {}/{}", cell.ready, cell.desired);
    }
    if cell.version.is_some() || cell.changed.is_some() {
        html.push_str(" <small");
        // A local build's version carries its digest after `+`; the title has it whole.
        let version = cell.version.as_deref().unwrap_or_default();
        let short = version.split('+').next().unwrap_or(version);
        if short != version {
            let _ = write!(html, " title=\"{}\"", escape(version));
        }
        html.push('>');
        html.push_str(&escape(short));
        if let Some(changed) = &cell.changed {
            let _ = write!(html, " r{}", changed.revision);
        }
        html.push_str("</small>");
    }
    if let Some(drift) = cell.drift.as_ref().filter(|drift| !drift.is_empty()) {
        let _ = write!(
            html,
            " <span class=\"drift\" title=\"{}\">≠ drift</span>",
            escape(&drift.join(", "))
        );
    }
    if cell.restarts > 0 {
        let _ = write!(
            html,
            " <span class=\"restarts\" title=\"restarts\">↻{}</span>",
            cell.restarts
        );
    }
    html
}

/// A column's header: the environment, its runtime, and who deployed what when.
pub fn column_html(column: &Column) -> String {
    let mut html = format!(
        "<a href=\"/env/{}\">{}</a>{}<small>{}",
        escape(&column.name),
        escape(&column.name),
        if column.protected {
            " <span class=\"protected\" title=\"changes need its name typed in\">protected</span>"
        } else {
            ""
        },
        column.runtime.as_str()
    );
    match (&column.deployed, column.running) {
        (Some(deployed), _) => {
            let _ = write!(
                html,
                " · r{} by {}{}",
                deployed.revision,
                escape(&deployed.who),
                deployed
                    .finished_unix_ms
                    .map(|ms| format!(" <time data-unix-ms=\"{ms}\">{}</time>", utc(ms)))
                    .unwrap_or_default()
            );
        }
        (None, _) => html.push_str(" · nothing deployed"),
    }
    if let Some(revision) = column.config_revision {
        let _ = write!(html, " · config r{revision}");
    }
    if !column.running && column.deployed.is_some() {
        html.push_str(" · <span class=\"down\">not running</span>");
    }
    if let Some(problem) = &column.problem {
        let _ = write!(
            html,
            " · <span class=\"problem\" title=\"{}\">⚠</span>",
            escape(problem)
        );
    }
    html.push_str("</small>");
    html
}

/// `2026-12-04 10:00 UTC`, which the page's script turns into "3 min ago".
pub fn utc(unix_ms: u64) -> String {
    let ms = i64::try_from(unix_ms).unwrap_or(i64::MAX);
    jiff::Timestamp::from_millisecond(ms)
        .unwrap_or(jiff::Timestamp::MAX)
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string()
}

/// One environment: its services as the matrix shows them, its history with a rollback to
/// each deployed revision, and its flags with toggles.
pub fn environment_page(
    matrix: &Matrix,
    column: &Column,
    history: &[tier_state::Revision],
    flags: Result<&tier_client::FlagSnapshot, &str>,
    keys: Result<&tier_client::Listing, &str>,
) -> String {
    let env = escape(&column.name);
    let mut html = head(&format!("tier · {}", column.name));
    let _ = write!(
        html,
        "<body class=\"env-page\" data-env=\"{env}\" data-protected=\"{}\">{}<h1>{env}</h1>\
         <p class=\"summary\"><span id=\"env-{env}\">{}</span> · <a href=\"/env/{env}/graph\">graph</a></p><div id=\"message\" role=\"status\"></div>\
         <p id=\"stale\" hidden>Flags or config changed since this page was read: <a href=\"\">reload</a></p>\n\
         <h2>Services</h2><table class=\"services\"><thead><tr><th>service</th><th>state</th>\
         <th>why</th></tr></thead><tbody>",
        column.protected,
        nav(matrix),
        column_html(column)
    );
    for (service, cell) in matrix.cells.get(&column.name).into_iter().flatten() {
        let _ = write!(
            html,
            "<tr><th scope=\"row\"><a href=\"/env/{env}/service/{0}\">{0}</a></th><td id=\"{1}\" class=\"{2}\">{3}</td><td>{4}</td></tr>",
            escape(service),
            cell_id(&column.name, service),
            cell_class(cell),
            cell_html(cell),
            escape(cell.reason.as_deref().unwrap_or(""))
        );
    }
    html.push_str("</tbody></table>\n<h2 id=\"history\">History</h2>");
    if history.is_empty() {
        html.push_str("<p>Nothing applied yet.</p>");
    } else {
        html.push_str(
            "<table class=\"history\"><thead><tr><th>revision</th><th>started</th><th>who</th>\
             <th>outcome</th><th></th></tr></thead><tbody>",
        );
        let deployed = column.deployed.as_ref().map(|deployed| deployed.revision);
        for revision in history.iter().rev() {
            let succeeded = matches!(revision.outcome, tier_state::Outcome::Succeeded);
            let action = if Some(revision.number) == deployed {
                "<em>deployed</em>".to_owned()
            } else if succeeded {
                format!(
                    "<button class=\"act\" data-action=\"rollback\" data-to=\"{0}\">roll back to {0}</button>",
                    revision.number
                )
            } else {
                String::new()
            };
            let _ = write!(
                html,
                "<tr><td>{}</td><td><time data-unix-ms=\"{}\">{}</time></td><td>{}</td><td>{}</td><td>{action}</td></tr>",
                revision.number,
                revision.started_unix_ms,
                utc(revision.started_unix_ms),
                escape(&revision.who),
                escape(&revision.outcome.describe())
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("\n<h2>Flags</h2>");
    match flags {
        Err(why) => {
            let _ = write!(html, "<p class=\"problem\">{}</p>", escape(why));
        }
        Ok(snapshot) if snapshot.flags.is_empty() => html.push_str("<p>No flags declared.</p>"),
        Ok(snapshot) => {
            html.push_str(
                "<table class=\"flags\"><thead><tr><th>flag</th><th>value</th><th>source</th>\
                 <th></th></tr></thead><tbody>",
            );
            for (name, flag) in &snapshot.flags {
                let name = escape(name);
                let _ = write!(
                    html,
                    "<tr data-flag=\"{name}\"><th scope=\"row\">{name}</th><td class=\"value\">{}</td>\
                     <td>{}</td><td><button class=\"act\" data-action=\"flag\" data-flag=\"{name}\" data-value=\"true\">on</button>\
                     <button class=\"act\" data-action=\"flag\" data-flag=\"{name}\" data-value=\"false\">off</button>\
                     <button class=\"act\" data-action=\"flag\" data-flag=\"{name}\" data-value=\"\">reset</button>\
                     <input class=\"act percent\" type=\"number\" min=\"0\" max=\"100\" value=\"50\" aria-label=\"percent of {name}\">\
                     <button class=\"act\" data-action=\"flag-percent\" data-flag=\"{name}\">% on</button></td></tr>",
                    escape(&flag.value.to_string()),
                    if flag.overridden {
                        "override"
                    } else {
                        "default"
                    }
                );
            }
            html.push_str("</tbody></table>");
        }
    }
    html.push_str("\n<h2>Config</h2>");
    match keys {
        Err(why) => {
            let _ = write!(html, "<p class=\"problem\">{}</p>", escape(why));
        }
        Ok(listing) => {
            let keys: Vec<&tier_client::KeyValue> = listing
                .kvs
                .iter()
                .filter(|kv| !kv.key.starts_with("_tier/"))
                .collect();
            if keys.is_empty() {
                html.push_str("<p>No keys in the runtime config store.</p>");
            } else {
                html.push_str(
                    "<table class=\"config\"><thead><tr><th>key</th><th>value</th><th>revision</th>\
                     </tr></thead><tbody>",
                );
                for kv in keys {
                    let _ = write!(
                        html,
                        "<tr data-key=\"{0}\"><th scope=\"row\"><a href=\"/env/{env}/config?key={1}\">{0}</a></th>\
                         <td><code>{2}</code></td><td>{3}</td></tr>",
                        escape(&kv.key),
                        escape(&query_escape(&kv.key)),
                        escape(&kv.value.to_string()),
                        kv.mod_revision
                    );
                }
                html.push_str("</tbody></table>");
            }
        }
    }
    html.push_str("\n<script src=\"/assets/ui.js\"></script></body></html>\n");
    html
}

/// A query parameter's value with every byte outside `A-Za-z0-9-._~` percent-encoded.
pub(crate) fn query_escape(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_a_project_cannot_break_out_of_the_page() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &apos;b&apos;&lt;/script&gt;"
        );
    }
}
