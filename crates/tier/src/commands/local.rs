//! The local runtime's commands: up, down, status, and the hidden `agent` that a
//! detached `up` starts.

use std::path::Path;
use std::time::Duration;

use console::style;
use serde_json::json;
use tier_deploy::local::{start_agent, stop_agent, wait_until_ready, write_spec};
use tier_deploy::{AgentProgram, DeployError, Interrupt};
use tier_local::control::{self, EnvStatus, ServiceState};
use tier_local::secrets::SecretValues;
use tier_model::environment::Runtime;
use tier_model::{Environment, Purpose};
use tier_state::paths::EnvDir;

use super::progress::Drawer;
use super::{
    CommandResult, Exit, Threads, fail, fail_with, load, resolve_one, stop_on_signal, usage,
};
use crate::args::{Global, Output};
use crate::output;

/// Resolves a local environment that can be run, with the values of its secrets (fingerprinted
/// into it), or says why not.
fn local_environment(
    global: &Global,
    env: &str,
    sets: &[String],
) -> Result<(Environment, SecretValues), Exit> {
    let (project, resolved) = resolve_one(global, env, sets)?;
    resolved.deployable(Purpose::Run).map_err(fail)?;
    if resolved.environment.runtime != Runtime::Local {
        return Err(fail_with(
            format!(
                "environment `{env}` runs on {}; `tier up` starts local environments",
                resolved.environment.runtime.as_str()
            ),
            format!("`tier apply {env}` deploys it"),
        ));
    }
    tier_deploy::secrets::attach_resolved(&project_root(global), &resolved).map_err(|error| {
        match error {
            DeployError::Secrets { problems } => output::problems(&problems, &project.sources),
            other => output::error(&other.to_string()),
        }
        Exit::Failure
    })
}

pub fn up(
    global: &Global,
    env: &str,
    detach: bool,
    no_wait: bool,
    sets: &[String],
) -> CommandResult {
    let (environment, secrets) = local_environment(global, env, sets)?;
    let root = project_root(global);
    if let Ok(status) = tier_deploy::local::status(&root, env) {
        return Err(fail_with(
            format!("{env}: already running (agent pid {})", status.agent_pid),
            format!("`tier status {env}` shows it; `tier down {env}` stops it"),
        ));
    }
    if detach {
        up_detached(global, &root, environment, secrets, no_wait)
    } else {
        up_foreground(&root, environment, secrets, no_wait)
    }
}

pub(super) fn project_root(global: &Global) -> std::path::PathBuf {
    std::fs::canonicalize(&global.project).unwrap_or_else(|_| global.project.clone())
}

fn up_detached(
    global: &Global,
    root: &Path,
    environment: Environment,
    secrets: SecretValues,
    no_wait: bool,
) -> CommandResult {
    let env = environment.name.to_string();
    let env = env.as_str();
    let dir = EnvDir::new(root, env);
    // The agent runs exactly what was resolved here; the spec file holds no secret value.
    let spec = dir.root().join("up.json");
    let request = control::ApplyRequest {
        environment,
        programs: std::collections::BTreeMap::new(),
        secrets: SecretValues::default(),
    };
    write_spec(&spec, &request).map_err(|why| fail(format!("{env}: {why}")))?;
    let pid =
        start_agent(root, env, &spec, &secrets, &AgentProgram::ThisExecutable).map_err(fail)?;
    if no_wait {
        eprintln!("{env}: starting (agent pid {pid})");
        output::hint(&format!(
            "`tier status {env}` shows progress; `tier logs {env} -f` follows the output"
        ));
        return Ok(());
    }
    let drawer = Drawer::new(Interrupt::default());
    let waited = wait_until_ready(&dir.socket(), env, &|event| drawer.show(event), None);
    drawer.finish();
    match waited {
        Ok(status) => {
            print_up(global, &status);
            Ok(())
        }
        Err(why) => {
            output::error(&why);
            if let Err(message) = stop_agent(&dir, env) {
                output::error(&message);
            }
            Err(Exit::Failure)
        }
    }
}

fn print_up(global: &Global, status: &EnvStatus) {
    if global.output == Output::Json {
        output::json(&json!(status));
        return;
    }
    let mut text = format!(
        "{} {} is up\n",
        style("ok").green().bold(),
        status.environment
    );
    let rows: Vec<Vec<String>> = status
        .services
        .iter()
        .map(|service| {
            let url = service.exposed.as_deref().unwrap_or(&service.url);
            vec![
                service.name.clone(),
                format!("{}/{} ready", service.ready, service.desired),
                url.to_owned(),
            ]
        })
        .collect();
    for line in super::inspect::columns(&rows).lines() {
        text.push_str(&format!("  {line}\n"));
    }
    output::stdout(&text);
}

fn up_foreground(
    root: &Path,
    environment: Environment,
    secrets: SecretValues,
    no_wait: bool,
) -> CommandResult {
    let env = environment.name.to_string();
    let prepared = tier_local::prepare(tier_local::AgentOptions {
        project_root: root.to_path_buf(),
        environment,
        echo: true,
        programs: std::collections::BTreeMap::new(),
        secrets,
    })
    .map_err(fail)?;
    let socket = prepared.dir().socket();
    let runtime = super::runtime(Threads::AllCores)?;
    let stop = tokio_util::sync::CancellationToken::new();
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    runtime.block_on(async {
        tokio::spawn(stop_on_signal(stop.clone()));
        if !no_wait {
            let stop = stop.clone();
            let failed = std::sync::Arc::clone(&failed);
            let env = env.clone();
            tokio::task::spawn_blocking(move || {
                let drawer = Drawer::new(Interrupt::default());
                let waited = wait_until_ready(&socket, &env, &|event| drawer.show(event), None);
                drawer.finish();
                report_up(&env, waited, &stop, &failed);
            });
        }
        if let Err(error) = tier_local::run(prepared, stop).await {
            output::error(&error.to_string());
            failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    if failed.load(std::sync::atomic::Ordering::SeqCst) {
        Err(Exit::Failure)
    } else {
        Ok(())
    }
}

/// What a foreground `up` says once its environment is ready, or why it stops it.
fn report_up(
    env: &str,
    waited: Result<EnvStatus, String>,
    stop: &tokio_util::sync::CancellationToken,
    failed: &std::sync::atomic::AtomicBool,
) {
    match waited {
        Ok(status) => {
            let urls: Vec<String> = status
                .services
                .iter()
                .filter_map(|service| {
                    service
                        .exposed
                        .as_ref()
                        .map(|url| format!("{} {url}", service.name))
                })
                .collect();
            eprintln!(
                "{} {env} is up{}; Ctrl-C stops it",
                style("ok").green().bold(),
                if urls.is_empty() {
                    String::new()
                } else {
                    format!(": {}", urls.join(", "))
                }
            );
        }
        Err(why) => {
            if !stop.is_cancelled() {
                output::error(&why);
                failed.store(true, std::sync::atomic::Ordering::SeqCst);
                stop.cancel();
            }
        }
    }
}

/// The hidden command a detached `up` and the engine run: the agent itself, its output in
/// agent.log.
pub fn agent(
    global: &Global,
    env: &str,
    sets: &[String],
    spec: Option<&Path>,
    secrets_on_stdin: bool,
) -> CommandResult {
    // The agent's own log has no color codes, whatever the terminal that started it.
    let failed = |why: String| {
        eprintln!("error: {why}");
        Exit::Failure
    };
    let (environment, programs, secrets) = match spec {
        Some(path) => {
            tier_deploy::local::read_agent_spec(env, path, secrets_on_stdin).map_err(failed)?
        }
        None => {
            let (environment, secrets) = local_environment(global, env, sets)?;
            (environment, std::collections::BTreeMap::new(), secrets)
        }
    };
    tier_deploy::local::run_agent(&project_root(global), environment, programs, secrets)
        .map_err(failed)
}

pub fn down(global: &Global, env: &str, confirm: Option<&str>) -> CommandResult {
    let project = load(global)?;
    if project.environment(env).is_none() {
        return Err(usage(project.unknown_environment(env)));
    }
    if project.protected(env) && confirm != Some(env) {
        return Err(fail_with(
            format!("{env} is protected; nothing was stopped"),
            format!("add --confirm {env} to stop it"),
        ));
    }
    let dir = EnvDir::new(&project_root(global), env);
    let request = control::Request::Status;
    match control::call(&dir.socket(), &request, Duration::from_secs(5)) {
        Err(control::ClientError::NotRunning) => {
            // Stopping what is already stopped reaches the state asked for, as `docker compose
            // down` does: a script that runs `tier down` need not check first.
            eprintln!("{env} is not running");
            return Ok(());
        }
        Err(error) => return Err(fail(format!("{env}: {error}"))),
        Ok(_) => {}
    }
    if let Err(message) = stop_agent(&dir, env) {
        output::error(&message);
    }
    eprintln!("{env}: stopped");
    Ok(())
}

pub fn status(global: &Global, env: Option<&str>) -> CommandResult {
    let project = load(global)?;
    let names: Vec<String> = match env {
        Some(env) if project.environment(env).is_none() => {
            return Err(usage(project.unknown_environment(env)));
        }
        Some(env) => vec![env.to_owned()],
        None => project
            .environments
            .iter()
            .filter(|decl| !decl.is_abstract && project.runtime(&decl.name) == Some(Runtime::Local))
            .map(|decl| decl.name.clone())
            .collect(),
    };
    let root = project_root(global);
    let mut workspace = tier_deploy::Workspace::load(&global.project).ok();
    let mut reports = Vec::new();
    for name in &names {
        let status = tier_deploy::local::status(&root, name);
        let drift = match (&status, workspace.as_mut()) {
            (Ok(_), Some(workspace)) => tier_deploy::drift::check(workspace, name)
                .ok()
                .map(|report| report.by_service()),
            _ => None,
        };
        reports.push((name.clone(), status, drift));
    }
    if global.output == Output::Json {
        let entries: Vec<serde_json::Value> = reports
            .iter()
            .map(|(name, report, drift)| match report {
                Ok(status) => json!({
                    "environment": name, "running": true, "status": status, "drift": drift,
                }),
                Err(why) => json!({ "environment": name, "running": false, "reason": why }),
            })
            .collect();
        output::json(&json!(entries));
        return Ok(());
    }
    let mut text = String::new();
    for (name, report, drift) in &reports {
        match report {
            Err(why) => text.push_str(&format!("{} {why}\n", style(name).bold())),
            Ok(status) => {
                text.push_str(&format!(
                    "{} (agent pid {})\n",
                    style(name).bold(),
                    status.agent_pid
                ));
                let mut rows = vec![
                    [
                        "SERVICE", "VERSION", "READY", "RESTARTS", "URL", "STATUS", "DRIFT",
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                ];
                for service in &status.services {
                    let state = match &service.reason {
                        Some(reason) => format!("{}: {reason}", service.state.as_str()),
                        None => service.state.as_str().to_owned(),
                    };
                    let state = match service.state {
                        ServiceState::Running => style(state).green().to_string(),
                        ServiceState::CrashLoop | ServiceState::Exited => {
                            style(state).red().to_string()
                        }
                        _ => style(state).yellow().to_string(),
                    };
                    rows.push(vec![
                        service.name.clone(),
                        service.version.clone().unwrap_or_else(|| "-".to_owned()),
                        format!("{}/{}", service.ready, service.desired),
                        service.restarts.to_string(),
                        service
                            .exposed
                            .clone()
                            .unwrap_or_else(|| service.url.clone()),
                        state,
                        drift_cell(
                            drift.as_ref().map(|drift| {
                                drift.get(&service.name).map_or(&[][..], Vec::as_slice)
                            }),
                        ),
                    ]);
                }
                text.push_str(&super::inspect::columns(&rows));
            }
        }
    }
    output::stdout(&text);
    Ok(())
}

/// The DRIFT cell of a service: what differs from the deployed revision, in a few words, or
/// `-`; `?` when it could not be checked.
pub(super) fn drift_cell(drift: Option<&[String]>) -> String {
    match drift {
        None => "?".to_owned(),
        Some([]) => "-".to_owned(),
        Some([one]) => style(one).red().to_string(),
        Some([first, rest @ ..]) => style(format!("{first} (+{} more)", rest.len()))
            .red()
            .to_string(),
    }
}
