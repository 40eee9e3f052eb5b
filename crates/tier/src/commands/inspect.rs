//! The read-only commands: validate, envs, render, explain, diff, graph.

use console::style;
use serde_json::json;
use tier_model::environment::Runtime;
use tier_model::problem::merge_duplicates;
use tier_model::{Project, Purpose, Resolved};

use super::{CommandResult, Exit, fail, fail_with, failed, load, parse_sets, report, usage};
use crate::args::{Format, Global, GraphFormat, Output};
use crate::output;

pub fn validate(global: &Global, sets: &[String], secrets_of: Option<&str>) -> CommandResult {
    let sets = parse_sets(sets)?;
    let mut project = load(global)?;
    let mut validation = tier_model::validate(&mut project, &sets);
    if validation.problems.is_empty()
        && let Some(env) = secrets_of
    {
        // Only the named environment's secrets are read: checking dev never reads prod's.
        let root = super::local::project_root(global);
        let lookup = tier_model::secrets::Lookup::from_process(&root);
        if project.environment(env).is_none() {
            return Err(usage(project.unknown_environment(env)));
        }
        if let Ok(resolved) = project.resolve(env, &sets)
            && let Err(problems) = resolved.read_secrets(&lookup)
        {
            validation.problems.extend(problems);
        }
    }
    if !validation.problems.is_empty() {
        return Err(report(global, &project, &validation.problems));
    }
    if global.output == Output::Text {
        output::warnings(&validation.warnings, &project.sources);
    }
    let names: Vec<&str> = project
        .environments
        .iter()
        .map(|decl| decl.name.as_str())
        .collect();
    let services = validation
        .environments
        .iter()
        .map(|checked| checked.environment.services.len())
        .max()
        .unwrap_or(0);
    match global.output {
        Output::Json => {
            let mut answer = json!({
                "valid": true,
                "project": project.name(),
                "environments": names,
                "problems": [],
            });
            if !validation.warnings.is_empty() {
                answer["warnings"] = output::problems_json(&validation.warnings, &project.sources);
            }
            output::json(&answer);
        }
        Output::Text => output::stdout_line(&format!(
            "{} {}: {} environment{} ({}), {services} service{}, no problems",
            style("ok").green().bold(),
            project.name(),
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
            if services == 1 { "" } else { "s" },
        )),
    }
    Ok(())
}

/// One environment as `tier envs` lists it.
#[derive(serde::Serialize)]
struct EnvRow<'a> {
    name: &'a str,
    runtime: Runtime,
    region: Option<&'a str>,
    protected: bool,
    promote_from: Option<&'a str>,
    extends: Option<&'a str>,
    #[serde(rename = "abstract")]
    is_abstract: bool,
    isolation: String,
    services: usize,
}

pub fn envs(global: &Global) -> CommandResult {
    let mut project = load(global)?;
    let validation = tier_model::validate(&mut project, &[]);
    if !validation.problems.is_empty() {
        return Err(report(global, &project, &validation.problems));
    }
    let rows: Vec<EnvRow> = validation
        .environments
        .iter()
        .map(|checked| {
            let environment = &checked.environment;
            EnvRow {
                name: environment.name.as_str(),
                runtime: environment.runtime,
                region: environment.region.as_deref(),
                protected: environment.protected,
                promote_from: environment.promote_from.as_ref().map(|name| name.as_str()),
                extends: environment.extends.as_ref().map(|name| name.as_str()),
                is_abstract: checked.is_abstract,
                isolation: isolation(environment, checked.is_abstract),
                services: environment.services.len(),
            }
        })
        .collect();
    if global.output == Output::Json {
        output::json(&json!(rows));
        return Ok(());
    }
    let header = [
        "ENVIRONMENT",
        "RUNTIME",
        "REGION",
        "PROTECTED",
        "PROMOTE FROM",
        "EXTENDS",
        "ISOLATION",
    ];
    let mut table = vec![header.map(str::to_owned).to_vec()];
    let text = |value: Option<&str>| value.unwrap_or("-").to_owned();
    for row in &rows {
        let suffix = if row.is_abstract { " (abstract)" } else { "" };
        table.push(vec![
            format!("{}{suffix}", row.name),
            row.runtime.as_str().to_owned(),
            text(row.region),
            (if row.protected { "yes" } else { "no" }).to_owned(),
            text(row.promote_from),
            text(row.extends),
            row.isolation.clone(),
        ]);
    }
    output::stdout(&columns(&table));
    Ok(())
}

/// How an environment is kept apart from the others.
fn isolation(environment: &tier_model::Environment, is_abstract: bool) -> String {
    if is_abstract {
        return "none: a parent only".to_owned();
    }
    match (environment.runtime, &environment.kube) {
        (Runtime::Kubernetes, Some(kube)) => {
            format!("namespace {} in context {}", kube.namespace, kube.context)
        }
        (Runtime::Kubernetes, None) => "namespace (not set)".to_owned(),
        (Runtime::Local, _) => format!("own agent, ports and state in .tier/{}/", environment.name),
    }
}

/// Left-aligned columns separated by two spaces.
pub(super) fn columns(rows: &[Vec<String>]) -> String {
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..count)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| console::measure_text_width(cell))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if column + 1 < row.len() {
                let pad = widths[column].saturating_sub(console::measure_text_width(cell)) + 2;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Loads the project and resolves the named environments, reporting what stands in the way.
fn resolve(
    global: &Global,
    names: &[&str],
    sets: &[String],
) -> Result<(Project, Vec<Resolved>), Exit> {
    let sets = parse_sets(sets)?;
    let mut project = load(global)?;
    for name in names {
        if project.environment(name).is_none() {
            output::error(&project.unknown_environment(name));
            output::hint("`tier envs` lists the environments");
            return Err(Exit::Usage);
        }
    }
    let mut problems = project.problems.clone();
    let mut resolved = Vec::new();
    for name in names {
        match project.resolve(name, &sets) {
            Ok(environment) => resolved.push(environment),
            Err(found) => problems.extend(found),
        }
    }
    if problems.is_empty() {
        Ok((project, resolved))
    } else {
        let problems = merge_duplicates(problems, names.len());
        Err(report(global, &project, &problems))
    }
}

/// Resolves a single environment.
pub(crate) fn resolve_one(
    global: &Global,
    name: &str,
    sets: &[String],
) -> Result<(Project, Resolved), Exit> {
    let (project, mut resolved) = resolve(global, &[name], sets)?;
    match resolved.pop() {
        Some(environment) => Ok((project, environment)),
        None => Err(Exit::Failure),
    }
}

pub fn render(
    global: &Global,
    env: &str,
    format: Format,
    out: Option<&std::path::Path>,
    include_secrets: bool,
    sets: &[String],
) -> CommandResult {
    let (project, resolved) = resolve_one(global, env, sets)?;
    resolved
        .deployable(Purpose::Deploy)
        .map_err(|error| fail_with(error, "render one of the environments that extend it"))?;
    if out.is_some() && format != Format::K8s {
        return Err(usage(
            "--out writes Kubernetes manifests: use it with --format k8s",
        ));
    }
    if include_secrets && format != Format::K8s {
        return Err(usage(
            "--include-secrets fills the Secret objects of --format k8s",
        ));
    }
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&resolved.environment)
            .map(|text| text + "\n")
            .map_err(|e| e.to_string()),
        Format::Yaml => serde_saphyr::to_string(&resolved.environment).map_err(|e| e.to_string()),
        Format::K8s => {
            let root = super::local::project_root(global);
            let objects = tier_deploy::kube::manifests(&root, &resolved, include_secrets)
                .map_err(|error| failed(global, &project, &error))?;
            let holds_values = objects.iter().any(|object| match object {
                tier_kube::Object::Secret(secret) => {
                    // Placeholders (`<secret:env:NAME>`, `<generated by tier apply>`) are
                    // no values.
                    secret.data.as_ref().is_some_and(|data| !data.is_empty())
                        || secret.string_data.as_ref().is_some_and(|data| {
                            data.values()
                                .any(|value| !(value.starts_with('<') && value.ends_with('>')))
                        })
                }
                _ => false,
            });
            if include_secrets && holds_values {
                output::hint("these manifests hold secret values: keep them out of git");
            }
            if let Some(dir) = out {
                let files = tier_kube::write_dir(&objects, dir)
                    .map_err(|error| fail(format!("cannot write {}: {error}", dir.display())))?;
                eprintln!("wrote {} manifests to {}", files.len(), dir.display());
                return Ok(());
            }
            tier_kube::to_yaml(&objects).map_err(|error| error.to_string())
        }
    };
    match text {
        Ok(text) => {
            output::stdout(&text);
            Ok(())
        }
        Err(error) => {
            output::error(&format!("cannot render `{env}`: {error}"));
            Err(Exit::Failure)
        }
    }
}

pub fn explain(global: &Global, env: &str, path: &str, sets: &[String]) -> CommandResult {
    let (project, resolved) = resolve_one(global, env, sets)?;
    let Some(explanation) = resolved.explain(path) else {
        output::error(&format!("environment `{env}` has no value at `{path}`"));
        let paths = resolved.paths();
        let near = tier_model::schema::did_you_mean(path, paths.iter().map(String::as_str));
        match near {
            Some(near) => output::hint(&format!("did you mean `{near}`?")),
            None => output::hint(&format!(
                "`tier render {env}` shows every value; paths are dotted, e.g. services.<name>.replicas"
            )),
        }
        return Err(Exit::Usage);
    };
    let sources = &project.sources;
    let effects = tier_deploy::kube::patch_effects(&resolved, &explanation);
    if global.output == Output::Json {
        let mut answer = json!({
            "environment": env,
            "path": explanation.path,
            "value": explanation.value,
            "from": explanation.origin.describe(sources),
            "removed": explanation.removed,
            "overrides": explanation.overridden.iter().map(|earlier| json!({
                "value": earlier.value,
                "from": earlier.origin.describe(sources),
            })).collect::<Vec<_>>(),
        });
        if let Some(default) = &explanation.default {
            answer["default"] = json!(default);
        }
        if let Some(effects) = &effects {
            answer["changes"] = effects
                .iter()
                .map(|effect| {
                    json!({
                        "file": effect.file,
                        "declared_at": effect.declared_at,
                        "object": effect.object,
                        "fields": effect.fields,
                    })
                })
                .collect();
        }
        output::json(&answer);
        return Ok(());
    }
    let mut text = if explanation.removed {
        format!(
            "{} is removed\n  {} {}\n",
            style(&explanation.path).bold(),
            style("by").dim(),
            explanation.origin.describe(sources),
        )
    } else {
        format!(
            "{} = {}\n  {} {}\n",
            style(&explanation.path).bold(),
            compact(&explanation.value),
            style("from").dim(),
            explanation.origin.describe(sources),
        )
    };
    if let Some(default) = &explanation.default {
        text.push_str(&format!("  {} {default}\n", style("schema:").dim()));
    }
    for earlier in &explanation.overridden {
        text.push_str(&format!(
            "  {} {} from {}\n",
            style("overriding").dim(),
            compact(&earlier.value),
            earlier.origin.describe(sources)
        ));
    }
    for effect in effects.iter().flatten() {
        text.push_str(&format!(
            "  {} {} ({}) changes {}: {}\n",
            style("patch").dim(),
            effect.file,
            effect.declared_at,
            effect.object,
            if effect.fields.is_empty() {
                "nothing".to_owned()
            } else {
                effect.fields.join(", ")
            }
        ));
    }
    output::stdout(&text);
    Ok(())
}

/// A value on one line, as it would be written in JSON.
fn compact(value: &serde_json::Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

pub fn diff(
    global: &Global,
    left: &str,
    right: &str,
    exit_code: bool,
    sets: &[String],
) -> CommandResult {
    let (project, resolved) = resolve(global, &[left, right], sets)?;
    let [left_resolved, right_resolved] = [&resolved[0], &resolved[1]];
    let differences = tier_model::diff::diff(left_resolved, right_resolved, &project.sources);
    let found = super::found_when(exit_code, !differences.is_empty());
    if global.output == Output::Json {
        output::json(&json!({ "left": left, "right": right, "differences": differences }));
        return found;
    }
    if differences.is_empty() {
        output::stdout_line(&format!("{left} and {right} resolve to the same values"));
        return Ok(());
    }
    let mut text = String::new();
    for difference in &differences {
        let (sign, line) = match (&difference.left, &difference.right) {
            (Some(old), Some(new)) => (
                style("~").yellow(),
                format!(
                    "{} {} {}",
                    style(compact(old)).red(),
                    style("→").dim(),
                    style(compact(new)).green()
                ),
            ),
            (None, Some(new)) => (
                style("+").green(),
                format!(
                    "{} {}",
                    style(compact(new)).green(),
                    style(format!("(only in {right})")).dim()
                ),
            ),
            (Some(old), None) => (
                style("-").red(),
                format!(
                    "{} {}",
                    style(compact(old)).red(),
                    style(format!("(only in {left})")).dim()
                ),
            ),
            (None, None) => continue,
        };
        text.push_str(&format!(
            "{sign} {}: {line}\n",
            style(&difference.path).bold()
        ));
        let origin = |env: &str, origin: &Option<String>| {
            origin
                .as_ref()
                .map(|origin| format!("      {env}: {origin}\n"))
        };
        let origins = [
            origin(left, &difference.left_origin),
            origin(right, &difference.right_origin),
        ];
        for line in origins.into_iter().flatten() {
            text.push_str(&style(line).dim().to_string());
        }
    }
    text.push_str(&format!(
        "{} difference{} between {left} and {right}\n",
        differences.len(),
        if differences.len() == 1 { "" } else { "s" }
    ));
    output::stdout(&text);
    found
}

pub fn graph(global: &Global, env: &str, format: GraphFormat, sets: &[String]) -> CommandResult {
    let (_, resolved) = resolve_one(global, env, sets)?;
    resolved
        .deployable(Purpose::Deploy)
        .map_err(|error| fail_with(error, "draw one of the environments that extend it"))?;
    let graph = tier_model::Graph::of(&resolved.environment);
    if global.output == Output::Json {
        output::json(&json!(graph));
        return Ok(());
    }
    output::stdout(&match format {
        GraphFormat::Dot => graph.to_dot(),
        GraphFormat::Mermaid => graph.to_mermaid(),
        GraphFormat::Svg => graph.to_svg(),
    });
    Ok(())
}
