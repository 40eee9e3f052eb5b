//! What every case must show: the project loads, every problem has a location inside a file
//! of the source map and renders, and what resolved answers explain and diff.

use proptest::prelude::*;
use tier_model::{LoadError, Problem, Project};

use crate::{Files, write};

/// Loads and validates a project, and checks what came out.
pub(crate) fn check(files: &Files) -> Result<(), TestCaseError> {
    let dir = tempfile::Builder::new()
        .prefix("tier-fuzz-")
        .tempdir()
        .map_err(|error| TestCaseError::fail(format!("create a temporary directory: {error}")))?;
    write(dir.path(), files)?;
    let mut project = match Project::load(dir.path()) {
        Ok(project) => project,
        Err(LoadError::NoProject(_)) => {
            return Err(TestCaseError::fail("tier.toml was written but not found"));
        }
        Err(LoadError::Read { path, source }) => {
            return Err(TestCaseError::fail(format!(
                "a readable project failed to load instead of reporting a located problem: {}: {source}",
                path.display()
            )));
        }
    };
    let validation = tier_model::validate(&mut project, &[]);
    for problem in &validation.problems {
        check_problem(problem, &project)?;
    }
    // The environments that resolved answer explain for every path they list, and diff. A
    // key that holds a '.' (a flag `new.ui`, a config key `a.b`) makes its dotted path
    // ambiguous, so such environments are explained without checking the answer.
    let names: Vec<String> = validation
        .environments
        .iter()
        .take(2)
        .map(|checked| checked.environment.name.to_string())
        .collect();
    let mut resolved = Vec::new();
    for name in &names {
        let Ok(environment) = project.resolve(name, &[]) else {
            return Err(TestCaseError::fail(format!(
                "`{name}` validated but does not resolve"
            )));
        };
        let dotted =
            dotted_keys(&serde_json::to_value(&environment.environment).unwrap_or_default());
        for path in environment.paths() {
            let explained = environment.explain(&path).is_some();
            prop_assert!(
                explained || dotted || !validation.problems.is_empty(),
                "explain has no answer for `{path}`, which paths() lists"
            );
        }
        environment.environment.waves();
        resolved.push(environment);
    }
    if let [left, right] = resolved.as_slice() {
        tier_model::diff::diff(left, right, &project.sources);
    }
    Ok(())
}

/// Whether any key of a JSON value is empty or holds a '.'.
fn dotted_keys(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(object) => object
            .iter()
            .any(|(key, inner)| key.is_empty() || key.contains('.') || dotted_keys(inner)),
        serde_json::Value::Array(items) => items.iter().any(dotted_keys),
        _ => false,
    }
}

fn check_problem(problem: &Problem, project: &Project) -> Result<(), TestCaseError> {
    let Some(location) = &problem.location else {
        return Err(TestCaseError::fail(format!(
            "a problem without a location: {problem:#?}"
        )));
    };
    for location in
        std::iter::once(location).chain(problem.related.iter().map(|(location, _)| location))
    {
        let file = project.sources.get(location.file);
        prop_assert!(
            location.span.start <= location.span.end && location.span.end <= file.text.len(),
            "the span {:?} is outside {} ({} bytes): {problem:#?}",
            location.span,
            file.path.display(),
            file.text.len()
        );
        project.sources.describe(location);
    }
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100);
    let mut rendered = String::new();
    prop_assert!(
        handler
            .render_report(&mut rendered, &problem.report(&project.sources))
            .is_ok(),
        "miette cannot render {problem:#?}"
    );
    tier_model::problem::related_elsewhere(problem, &project.sources);
    Ok(())
}
