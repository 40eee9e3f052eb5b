//! `tier status` for a kubernetes environment: each service's Deployment as the API server
//! reports it (read by tier-deploy after the kube context guard), as a table or JSON.

use console::style;
use serde_json::json;
use tier_model::Purpose;
use tier_model::environment::Runtime;

use super::{CommandResult, Exit, resolve_one};
use crate::args::{Global, Output};
use crate::output;

/// Whether the named environment runs on kubernetes (its own `runtime` or the nearest one it
/// inherits). A project that does not load is not kubernetes here: the caller reports it.
pub(super) fn runs_on_kubernetes(global: &Global, env: &str) -> bool {
    let Ok(project) = tier_model::Project::load(&global.project) else {
        return false;
    };
    project.runtime(env) == Some(Runtime::Kubernetes)
}

/// `tier status <env>` for a kubernetes environment: each service's Deployment as the API
/// server reports it.
pub(super) fn status(global: &Global, env: &str) -> CommandResult {
    let (_, resolved) = resolve_one(global, env, &[])?;
    if let Err(error) = resolved.deployable(Purpose::Status) {
        output::error(&error.to_string());
        return Err(Exit::Usage);
    }
    let environment = resolved.environment;
    if environment.runtime != Runtime::Kubernetes {
        return Err(Exit::Failure);
    }
    let live = match tier_deploy::kube::status(&environment) {
        Ok(live) => live,
        Err(error) => {
            output::error(&error.to_string());
            if let Some(hint) = error.hint() {
                output::hint(&hint);
            }
            return Err(Exit::Failure);
        }
    };
    let drift = tier_deploy::Workspace::load(&global.project)
        .ok()
        .and_then(|mut workspace| tier_deploy::drift::check(&mut workspace, env).ok())
        .map(|report| report.by_service());
    let (context, namespace) = (&live.context, &live.namespace);
    let services: Vec<serde_json::Value> = live
        .services
        .iter()
        .map(|service| {
            json!({
                "name": service.name, "image": service.image, "desired": service.desired,
                "ready": service.ready, "updated": service.updated,
                "available": service.available, "state": service.state.as_str(),
                "reason": service.reason,
                "drift": drift.as_ref().map(|drift| drift.get(&service.name).cloned().unwrap_or_default()),
            })
        })
        .collect();
    if global.output == Output::Json {
        output::json(&json!([{
            "environment": env,
            "runtime": "kubernetes",
            "running": live.running,
            "status": { "context": context, "namespace": namespace, "services": services },
        }]));
        return Ok(());
    }
    let mut rows = vec![
        [
            "SERVICE",
            "IMAGE",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "STATUS",
            "DRIFT",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for service in &services {
        let text = |key: &str| service[key].as_str().unwrap_or("-").to_owned();
        let number = |key: &str| service[key].as_u64().unwrap_or(0);
        let state = match service["reason"].as_str() {
            Some(reason) => format!("{}: {reason}", text("state")),
            None => text("state"),
        };
        let state = match service["state"].as_str() {
            Some("running") => style(state).green().to_string(),
            Some("failed" | "missing") => style(state).red().to_string(),
            _ => style(state).yellow().to_string(),
        };
        rows.push(vec![
            text("name"),
            text("image"),
            format!("{}/{}", number("ready"), number("desired")),
            number("updated").to_string(),
            number("available").to_string(),
            state,
            super::local::drift_cell(drift.as_ref(), &text("name")),
        ]);
    }
    output::stdout(&format!(
        "{} (kubernetes: context {context}, namespace {namespace})\n{}",
        style(env).bold(),
        super::inspect::columns(&rows)
    ));
    Ok(())
}
