//! `tier status` for a kubernetes environment: each service's Deployment as the API server
//! reports it (read by tier-deploy after the kube context guard), as a table or JSON.

use console::style;
use serde_json::json;
use tier_deploy::kube::LiveState;
use tier_model::Purpose;
use tier_model::environment::Runtime;

use super::{CommandResult, Exit, fail_hinted, resolve_one, usage};
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
    resolved.deployable(Purpose::Status).map_err(usage)?;
    let environment = resolved.environment;
    if environment.runtime != Runtime::Kubernetes {
        return Err(Exit::Failure);
    }
    let mut workspace = super::workspace(global)?;
    let live = tier_deploy::kube::status_with_drift(&mut workspace, &environment)
        .map_err(|error| fail_hinted(&error))?;
    if global.output == Output::Json {
        output::json(&json!([{
            "environment": env,
            "runtime": "kubernetes",
            "running": live.running,
            "status": live,
        }]));
        return Ok(());
    }
    let header = [
        "SERVICE",
        "IMAGE",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "STATUS",
        "DRIFT",
    ];
    let mut rows = vec![header.map(str::to_owned).to_vec()];
    for service in &live.services {
        let state = match &service.reason {
            Some(reason) => format!("{}: {reason}", service.state.as_str()),
            None => service.state.as_str().to_owned(),
        };
        let state = match service.state {
            LiveState::Running => style(state).green(),
            LiveState::Failed | LiveState::Missing => style(state).red(),
            LiveState::NotReady => style(state).yellow(),
        };
        rows.push(vec![
            service.name.clone(),
            service.image.clone().unwrap_or_else(|| "-".to_owned()),
            format!("{}/{}", service.ready, service.desired),
            service.updated.to_string(),
            service.available.to_string(),
            state.to_string(),
            super::local::drift_cell(service.drift.as_deref()),
        ]);
    }
    output::stdout(&format!(
        "{} (kubernetes: context {}, namespace {})\n{}",
        style(env).bold(),
        live.context,
        live.namespace,
        super::inspect::columns(&rows)
    ));
    Ok(())
}
