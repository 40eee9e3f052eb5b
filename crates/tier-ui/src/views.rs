//! The detail pages: one service in one environment, the diff of two environments, an
//! environment's dependency graph, and which environments run which version of a library.
//! Rendered on the server like the matrix (`page.rs` has the shared pieces).

use std::fmt::Write as _;

use tier_local::control::ServiceStatus;
use tier_local::logs::Line;

use crate::matrix::{Column, Matrix};
use crate::page::{cell_class, cell_html, cell_id, escape, head, nav};

/// A resolved value and where it came from, for the service page.
pub struct Value {
    pub path: String,
    pub value: String,
    pub origin: String,
}

/// One service in one environment: why it is (not) ready, its replicas, its recent output
/// with a live tail, and its resolved values with where each came from.
pub fn service_page(
    matrix: &Matrix,
    column: &Column,
    service: &str,
    status: Option<&ServiceStatus>,
    logs: &[Line],
    values: &[Value],
) -> String {
    let env = escape(&column.name);
    let name = escape(service);
    let mut html = head(&format!("tier · {service} in {}", column.name));
    let _ = write!(
        html,
        "<body class=\"service-page\" data-env=\"{env}\" data-service=\"{name}\">{}\
         <h1>{name} <small>in <a href=\"/env/{env}\">{env}</a></small></h1>",
        nav(matrix)
    );
    if let Some(cell) = matrix
        .cells
        .get(&column.name)
        .and_then(|row| row.get(service))
    {
        let _ = write!(
            html,
            "<p id=\"{}\" class=\"{}\">{}</p>",
            cell_id(&column.name, service),
            cell_class(cell),
            cell_html(cell)
        );
        if let Some(reason) = &cell.reason {
            let _ = write!(html, "<p class=\"why\">Why: {}</p>", escape(reason));
        }
    }
    let _ = write!(
        html,
        "<p><a href=\"/env/{env}#history\">history and rollback</a> · \
         <a href=\"/env/{env}/graph\">graph</a></p><h2>Replicas</h2>"
    );
    match status {
        None => html.push_str("<p>Not running here.</p>"),
        Some(status) => {
            html.push_str(
                "<table class=\"replicas\"><thead><tr><th>replica</th><th>pid</th><th>phase</th>\
                 <th>restarts</th><th>last probe</th><th>last exit</th></tr></thead><tbody>",
            );
            for replica in &status.replicas {
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    replica.replica,
                    replica.pid.map(|pid| pid.to_string()).unwrap_or_default(),
                    replica.phase.as_str(),
                    replica.restarts,
                    escape(replica.last_probe.as_deref().unwrap_or("")),
                    escape(replica.last_exit.as_deref().unwrap_or(""))
                );
            }
            html.push_str("</tbody></table>");
        }
    }
    html.push_str("<h2>Output</h2><pre id=\"logs\" class=\"logs\">");
    for line in logs {
        let _ = writeln!(html, "{} | {}", escape(&line.source), escape(&line.text));
    }
    html.push_str(
        "</pre><h2>Resolved values</h2><table class=\"values\"><thead><tr><th>key</th>\
                   <th>value</th><th>from</th></tr></thead><tbody>",
    );
    for value in values {
        let _ = write!(
            html,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            escape(&value.path),
            escape(&value.value),
            escape(&value.origin)
        );
    }
    html.push_str("</tbody></table>\n<script src=\"/assets/ui.js\"></script></body></html>\n");
    html
}

/// Two environments side by side: every value that differs, with where each side's value
/// comes from.
pub fn diff_page(
    matrix: &Matrix,
    left: &str,
    right: &str,
    differences: Result<&[tier_model::diff::Difference], &str>,
) -> String {
    let mut html = head(&format!("tier · {left} and {right}"));
    let _ = write!(
        html,
        "<body class=\"diff-page\">{}<h1>Diff</h1>",
        nav(matrix)
    );
    html.push_str("<form method=\"get\" action=\"/diff\">");
    for (field, chosen) in [("left", left), ("right", right)] {
        let _ = write!(html, "<select name=\"{field}\" aria-label=\"{field}\">");
        for column in &matrix.environments {
            let selected = if column.name == chosen {
                " selected"
            } else {
                ""
            };
            let _ = write!(html, "<option{selected}>{}</option>", escape(&column.name));
        }
        html.push_str("</select> ");
    }
    html.push_str("<button>compare</button></form>");
    match differences {
        Err(why) => {
            let _ = write!(html, "<p class=\"problem\">{}</p>", escape(why));
        }
        Ok([]) => {
            let _ = write!(
                html,
                "<p>{} and {} resolve to the same values.</p>",
                escape(left),
                escape(right)
            );
        }
        Ok(differences) => {
            let _ = write!(
                html,
                "<table class=\"diff\"><thead><tr><th>key</th><th>{}</th><th>{}</th></tr></thead><tbody>",
                escape(left),
                escape(right)
            );
            let side = |value: &Option<serde_json::Value>, origin: &Option<String>| match value {
                None => "<td class=\"absent\">–</td>".to_owned(),
                Some(value) => format!(
                    "<td><code>{}</code><small>{}</small></td>",
                    escape(&value.to_string()),
                    escape(origin.as_deref().unwrap_or(""))
                ),
            };
            for difference in differences {
                let _ = write!(
                    html,
                    "<tr><th scope=\"row\">{}</th>{}{}</tr>",
                    escape(&difference.path),
                    side(&difference.left, &difference.left_origin),
                    side(&difference.right, &difference.right_origin)
                );
            }
            let _ = write!(
                html,
                "</tbody></table><p>{} difference{}.</p>",
                differences.len(),
                if differences.len() == 1 { "" } else { "s" }
            );
        }
    }
    html.push_str("\n<script src=\"/assets/ui.js\"></script></body></html>\n");
    html
}

/// An environment's dependency graph in its rollout waves, each service coloured by its
/// health in the matrix.
pub fn graph_page(matrix: &Matrix, column: &Column, svg: Result<&str, &str>) -> String {
    let env = escape(&column.name);
    let mut html = head(&format!("tier · {} graph", column.name));
    let _ = write!(
        html,
        "<body class=\"graph-page\" data-env=\"{env}\">{}<h1>{env} <small>dependency graph</small></h1>",
        nav(matrix)
    );
    match svg {
        Ok(svg) => {
            html.push_str("<div class=\"graph\">");
            html.push_str(svg);
            html.push_str("</div>");
        }
        Err(why) => {
            let _ = write!(html, "<p class=\"problem\">{}</p>", escape(why));
        }
    }
    // Each node takes its cell's health, so the graph reads like the matrix.
    html.push_str("<script id=\"health\" type=\"application/json\">");
    let health: serde_json::Map<String, serde_json::Value> = matrix
        .cells
        .get(&column.name)
        .into_iter()
        .flatten()
        .map(|(service, cell)| (service.clone(), serde_json::json!(cell.health)))
        .collect();
    html.push_str(&escape_script(
        &serde_json::Value::Object(health).to_string(),
    ));
    html.push_str("</script>\n<script src=\"/assets/ui.js\"></script></body></html>\n");
    html
}

/// One row of the libraries page: a version of the library deployed in an environment.
pub struct Deployment {
    pub environment: String,
    pub revision: u64,
    pub service: String,
    pub version: String,
    pub affected: Option<bool>,
}

/// Which environments run which version of a library, from each deployed revision's bill of
/// materials, with the affected range as a filter.
pub fn libraries_page(
    matrix: &Matrix,
    library: &str,
    affected: &str,
    found: Result<&[Deployment], &str>,
) -> String {
    let mut html = head(&format!("tier · {library}"));
    let _ = write!(
        html,
        "<body class=\"libraries-page\">{}<h1>Libraries</h1>\
         <form method=\"get\" action=\"/libraries\"><input name=\"library\" value=\"{}\" placeholder=\"library, e.g. serde\" aria-label=\"library\"> \
         <input name=\"affected\" value=\"{}\" placeholder=\"affected range, e.g. <1.0.200\" aria-label=\"affected range\"> \
         <button>find</button></form>",
        nav(matrix),
        escape(library),
        escape(affected)
    );
    match found {
        Err(why) => {
            let _ = write!(html, "<p class=\"problem\">{}</p>", escape(why));
        }
        Ok(_) if library.is_empty() => html.push_str("<p>Name a library to see where it runs.</p>"),
        Ok([]) => {
            let _ = write!(
                html,
                "<p>No deployed revision runs {}.</p>",
                escape(library)
            );
        }
        Ok(rows) => {
            html.push_str(
                "<table class=\"libraries\"><thead><tr><th>environment</th><th>revision</th>\
                 <th>service</th><th>version</th><th>affected</th></tr></thead><tbody>",
            );
            for row in rows {
                let (class, mark) = match row.affected {
                    Some(true) => ("affected", "✗ affected"),
                    Some(false) => ("not-affected", "✓ not affected"),
                    None => ("", ""),
                };
                let _ = write!(
                    html,
                    "<tr class=\"{class}\"><td><a href=\"/env/{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{mark}</td></tr>",
                    escape(&row.environment),
                    row.revision,
                    escape(&row.service),
                    escape(&row.version)
                );
            }
            html.push_str("</tbody></table>");
        }
    }
    html.push_str("\n<script src=\"/assets/ui.js\"></script></body></html>\n");
    html
}

/// A config key's history, newest first, with a rollback to each value it had.
pub fn config_page(
    matrix: &Matrix,
    column: &Column,
    key: &str,
    history: Result<&tier_client::KeyHistory, &str>,
) -> String {
    let env = escape(&column.name);
    let mut html = head(&format!("tier · {key} in {}", column.name));
    let _ = write!(
        html,
        "<body class=\"config-page\" data-env=\"{env}\" data-protected=\"{}\">{}\
         <h1>{} <small>in <a href=\"/env/{env}\">{env}</a></small></h1><div id=\"message\" role=\"status\"></div>",
        column.protected,
        nav(matrix),
        escape(key)
    );
    match history {
        Err(why) => {
            let _ = write!(html, "<p class=\"problem\">{}</p>", escape(why));
        }
        Ok(history) if history.history.is_empty() => {
            html.push_str("<p>No recorded changes.</p>");
        }
        Ok(history) => {
            html.push_str(
                "<table class=\"key-history\"><thead><tr><th>revision</th><th>when</th><th>who</th>\
                 <th>change</th><th>value</th><th></th></tr></thead><tbody>",
            );
            let latest = history.history.last().map(|record| record.revision);
            for record in history.history.iter().rev() {
                let value = record
                    .new
                    .as_ref()
                    .map(|state| state.value.to_string())
                    .unwrap_or_else(|| "(removed)".to_owned());
                let action = if Some(record.revision) == latest || record.new.is_none() {
                    String::new()
                } else {
                    format!(
                        "<button class=\"act\" data-action=\"config-rollback\" data-key=\"{}\" data-to=\"{1}\">back to {1}</button>",
                        escape(key),
                        record.revision
                    )
                };
                let _ = write!(
                    html,
                    "<tr data-revision=\"{}\"><td>{0}</td><td><time data-unix-ms=\"{1}\">{2}</time></td><td>{3}</td>\
                     <td>{4}</td><td><code>{5}</code></td><td>{action}</td></tr>",
                    record.revision,
                    record.at_unix_ms,
                    crate::page::utc(record.at_unix_ms),
                    escape(record.actor.as_deref().unwrap_or(&record.token)),
                    escape(&format!("{:?}", record.action).to_lowercase()),
                    escape(&value)
                );
            }
            html.push_str("</tbody></table>");
        }
    }
    html.push_str("\n<script src=\"/assets/ui.js\"></script></body></html>\n");
    html
}

/// JSON inside a `<script>` element: `</` cannot end it early.
fn escape_script(json: &str) -> String {
    json.replace("</", "<\\/")
}
