//! The local runtime's commands: up, down, status, logs, and the hidden `agent` that a
//! detached `up` starts.

use std::path::Path;
use std::time::{Duration, Instant};

use console::style;
use serde_json::json;
use tier_local::control::{self, ClientError, EnvStatus, Request, Response, ServiceState};
use tier_local::paths::EnvDir;
use tier_local::secrets::SecretValues;
use tier_model::Environment;
use tier_model::environment::Runtime;

use super::{FAILURE, SUCCESS, Threads, USAGE, load, resolve_one, stop_on_signal};
use crate::args::{Global, Output};
use crate::output;

/// How long the CLI waits for an agent to answer one request.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// How often the CLI asks a starting environment how far it got.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// The pause between two questions to an agent. The CLI is a plain thread asking a separate
/// process; there is nothing to await.
#[expect(
    clippy::disallowed_methods,
    reason = "the CLI polls the agent between requests"
)]
pub(super) fn pause() {
    std::thread::sleep(POLL_EVERY);
}

/// Resolves a local environment that can be run, with the values of its secrets (fingerprinted
/// into it), or says why not.
fn local_environment(
    global: &Global,
    env: &str,
    sets: &[String],
) -> Result<(Environment, SecretValues), i32> {
    let (project, resolved) = resolve_one(global, env, sets)?;
    if resolved.is_abstract {
        output::error(&format!(
            "environment `{env}` is abstract: it is only a parent and is never run"
        ));
        return Err(FAILURE);
    }
    if resolved.environment.runtime != Runtime::Local {
        output::error(&format!(
            "environment `{env}` runs on {}; `tier up` starts local environments",
            resolved.environment.runtime.as_str()
        ));
        output::hint(&format!("`tier apply {env}` deploys it"));
        return Err(FAILURE);
    }
    super::secrets::attach_resolved(&project_root(global), &project, &resolved)
}

pub fn up(global: &Global, env: &str, detach: bool, no_wait: bool, sets: &[String]) -> i32 {
    let (environment, secrets) = match local_environment(global, env, sets) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let root = project_root(global);
    let dir = EnvDir::new(&root, env);
    if let Ok(Response::Status(status)) =
        control::call(&dir.socket(), &Request::Status, ANSWER_WITHIN)
    {
        output::error(&format!(
            "{env}: already running (agent pid {})",
            status.agent_pid
        ));
        output::hint(&format!(
            "`tier status {env}` shows it; `tier down {env}` stops it"
        ));
        return FAILURE;
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
) -> i32 {
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
    if let Err(why) = write_spec(&spec, &request) {
        output::error(&format!("{env}: {why}"));
        return FAILURE;
    }
    let pid = match start_agent(root, env, &spec, &secrets) {
        Ok(pid) => pid,
        Err(why) => {
            output::error(&why);
            return FAILURE;
        }
    };
    if no_wait {
        eprintln!("{env}: starting (agent pid {pid})");
        output::hint(&format!(
            "`tier status {env}` shows progress; `tier logs {env} -f` follows the output"
        ));
        return SUCCESS;
    }
    match wait_until_ready(&dir.socket(), env) {
        Ok(status) => {
            print_up(global, &status);
            SUCCESS
        }
        Err(why) => {
            output::error(&why);
            stop_agent(&dir, env);
            FAILURE
        }
    }
}

/// Writes what a detached agent is to run (an environment and its programs, never a secret
/// value) where it will read it.
pub(super) fn write_spec(path: &Path, request: &control::ApplyRequest) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
    }
    let bytes = serde_json::to_vec_pretty(request).map_err(|error| error.to_string())?;
    tier_local::paths::write_atomic(path, &bytes)
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// Starts the agent of `env` in a new session on exactly the spec in `spec`, hands it the
/// secret values over its stdin, and waits until it answers; says why not in one line when it
/// cannot. Answers its pid.
pub(super) fn start_agent(
    root: &Path,
    env: &str,
    spec: &Path,
    secrets: &SecretValues,
) -> Result<u32, String> {
    let dir = EnvDir::new(root, env);
    std::fs::create_dir_all(dir.root())
        .map_err(|error| format!("{env}: cannot create {}: {error}", dir.root().display()))?;
    let log = std::fs::File::create(dir.agent_log())
        .map_err(|error| format!("{env}: cannot write {}: {error}", dir.agent_log().display()))?;
    let program = std::env::current_exe()
        .map_err(|error| format!("cannot find the tier executable: {error}"))?;
    let args: Vec<std::ffi::OsString> = vec![
        "--project".into(),
        root.into(),
        "agent".into(),
        env.into(),
        "--spec".into(),
        spec.into(),
        "--secrets-on-stdin".into(),
    ];
    let input = serde_json::to_vec(secrets).map_err(|error| error.to_string())?;
    let mut agent = tier_local::spawn::spawn_detached(&program, &args, root, log, &input)
        .map_err(|error| format!("{env}: cannot start the agent: {error}"))?;
    // Wait for the agent to answer, or to die saying why. `try_wait` also reaps it, so a dead
    // agent is not mistaken for a live one.
    loop {
        match control::call(&dir.socket(), &Request::Status, ANSWER_WITHIN) {
            Ok(Response::Status(_)) => return Ok(agent.id()),
            _ if !matches!(agent.try_wait(), Ok(None)) => {
                let why = last_error_line(&dir.agent_log())
                    .unwrap_or_else(|| format!("{env}: the agent exited"));
                return Err(why.trim_start_matches("error: ").to_owned());
            }
            _ => pause(),
        }
    }
}

/// The last `error:` line an agent printed before it died.
fn last_error_line(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .find(|line| line.starts_with("error:"))
        .or_else(|| text.lines().rev().find(|line| !line.trim().is_empty()))
        .map(str::to_owned)
}

/// Polls the agent until every service is ready, or one of them cannot get there.
pub(super) fn wait_until_ready(socket: &Path, env: &str) -> Result<EnvStatus, String> {
    // A spinner with each service's progress, on a terminal only; it is cleared at the end.
    let progress = console::Term::stderr().is_term().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let result = loop {
        let status = match control::call(socket, &Request::Status, ANSWER_WITHIN) {
            Ok(Response::Status(status)) => status,
            Ok(_) => {
                break Err(format!(
                    "{env}: the agent answered something else than its status"
                ));
            }
            Err(ClientError::NotRunning) => break Err(format!("{env}: the agent stopped")),
            Err(error) => break Err(format!("{env}: {error}")),
        };
        if status.all_ready() {
            break Ok(status);
        }
        if let Some(why) = failure(&status) {
            break Err(why);
        }
        if let Some(bar) = &progress {
            let services: Vec<String> = status
                .services
                .iter()
                .map(|service| match service.state {
                    ServiceState::Waiting => format!("{} waiting", service.name),
                    _ => format!("{} {}/{}", service.name, service.ready, service.desired),
                })
                .collect();
            bar.set_message(format!("starting {env}: {}", services.join(", ")));
        }
        pause();
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    result
}

/// A service that will not become ready by waiting longer.
fn failure(status: &EnvStatus) -> Option<String> {
    let env = &status.environment;
    status.services.iter().find_map(|service| {
        let reason = service.reason.clone().unwrap_or_default();
        match service.state {
            ServiceState::CrashLoop | ServiceState::Exited => {
                Some(format!("{env}: service {}: {reason}", service.name))
            }
            ServiceState::Starting
                if service
                    .unready_ms
                    .is_some_and(|ms| ms > service.deadline_ms) =>
            {
                Some(format!(
                    "{env}: service {} did not become ready within {}s: {reason}",
                    service.name,
                    service.deadline_ms / 1000
                ))
            }
            _ => None,
        }
    })
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
    for service in &status.services {
        let url = service.exposed.as_deref().unwrap_or(&service.url);
        text.push_str(&format!(
            "  {:<12} {}/{} ready  {url}\n",
            service.name, service.ready, service.desired
        ));
    }
    output::stdout(&text);
}

pub(super) fn stop_agent(dir: &EnvDir, env: &str) {
    let _ = control::call(&dir.socket(), &Request::Shutdown, ANSWER_WITHIN);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tier_local::is_running(dir) && Instant::now() < deadline {
        pause();
    }
    if tier_local::is_running(dir) {
        output::error(&format!("{env}: the agent did not stop within 30s"));
    }
}

fn up_foreground(
    root: &Path,
    environment: Environment,
    secrets: SecretValues,
    no_wait: bool,
) -> i32 {
    let env = environment.name.to_string();
    let prepared = match tier_local::prepare(tier_local::AgentOptions {
        project_root: root.to_path_buf(),
        environment,
        echo: true,
        programs: std::collections::BTreeMap::new(),
        secrets,
    }) {
        Ok(prepared) => prepared,
        Err(error) => {
            output::error(&error.to_string());
            return FAILURE;
        }
    };
    let socket = prepared.dir().socket();
    let runtime = match super::runtime(Threads::AllCores) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    runtime.block_on(async {
        tokio::spawn(stop_on_signal(stop.clone()));
        if !no_wait {
            let stop = stop.clone();
            let failed = std::sync::Arc::clone(&failed);
            let env = env.clone();
            tokio::task::spawn_blocking(move || match wait_until_ready(&socket, &env) {
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
            });
        }
        tier_local::run(prepared, stop).await;
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    if failed.load(std::sync::atomic::Ordering::SeqCst) {
        FAILURE
    } else {
        SUCCESS
    }
}

/// The hidden command a detached `up` runs: the agent itself, its output in agent.log.
pub fn agent(
    global: &Global,
    env: &str,
    sets: &[String],
    spec: Option<&Path>,
    secrets_on_stdin: bool,
) -> i32 {
    let secrets = if secrets_on_stdin {
        let mut input = Vec::new();
        let read = std::io::Read::read_to_end(&mut std::io::stdin(), &mut input)
            .map_err(|error| error.to_string())
            .and_then(|_| {
                serde_json::from_slice::<SecretValues>(&input).map_err(|error| error.to_string())
            });
        match read {
            Ok(secrets) => Some(secrets),
            Err(why) => {
                eprintln!("error: {env}: cannot read the secret values on stdin: {why}");
                return FAILURE;
            }
        }
    } else {
        None
    };
    let (environment, programs, secrets) = match spec {
        Some(path) => {
            let read = std::fs::read(path)
                .map_err(|error| error.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<control::ApplyRequest>(&bytes)
                        .map_err(|error| error.to_string())
                });
            match read {
                Ok(request) => (
                    request.environment,
                    request.programs,
                    secrets.unwrap_or_default(),
                ),
                Err(why) => {
                    eprintln!("error: {env}: cannot read {}: {why}", path.display());
                    return FAILURE;
                }
            }
        }
        None => match local_environment(global, env, sets) {
            Ok((environment, secrets)) => (environment, std::collections::BTreeMap::new(), secrets),
            Err(code) => return code,
        },
    };
    up_foreground_quiet(&project_root(global), environment, programs, secrets)
}

fn up_foreground_quiet(
    root: &Path,
    environment: Environment,
    programs: std::collections::BTreeMap<String, std::path::PathBuf>,
    secrets: SecretValues,
) -> i32 {
    let prepared = match tier_local::prepare(tier_local::AgentOptions {
        project_root: root.to_path_buf(),
        environment,
        echo: false,
        programs,
        secrets,
    }) {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("error: {error}");
            return FAILURE;
        }
    };
    let runtime = match super::runtime(Threads::AllCores) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    runtime.block_on(async {
        tokio::spawn(stop_on_signal(stop.clone()));
        tier_local::run(prepared, stop).await;
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    SUCCESS
}

pub fn down(global: &Global, env: &str, confirm: Option<&str>) -> i32 {
    let project = match load(global) {
        Ok(project) => project,
        Err(code) => return code,
    };
    let Some(decl) = project.environment(env) else {
        output::error(&project.unknown_environment(env));
        return USAGE;
    };
    let protected = project
        .chain(env)
        .iter()
        .rev()
        .find_map(|decl| {
            decl.node
                .get("protected")
                .and_then(tier_model::tree::Node::as_bool)
        })
        .unwrap_or(false);
    let _ = decl;
    if protected && confirm != Some(env) {
        output::error(&format!("{env} is protected; nothing was stopped"));
        output::hint(&format!("add --confirm {env} to stop it"));
        return FAILURE;
    }
    let dir = EnvDir::new(&project_root(global), env);
    match control::call(&dir.socket(), &Request::Status, ANSWER_WITHIN) {
        Err(ClientError::NotRunning) => {
            output::error(&format!("{env}: not running, nothing to stop"));
            return FAILURE;
        }
        Err(error) => {
            output::error(&format!("{env}: {error}"));
            return FAILURE;
        }
        Ok(_) => {}
    }
    stop_agent(&dir, env);
    eprintln!("{env}: stopped");
    SUCCESS
}

pub fn status(global: &Global, env: Option<&str>) -> i32 {
    let project = match load(global) {
        Ok(project) => project,
        Err(code) => return code,
    };
    let names: Vec<String> = match env {
        Some(env) if project.environment(env).is_none() => {
            output::error(&project.unknown_environment(env));
            return USAGE;
        }
        Some(env) => vec![env.to_owned()],
        None => project
            .environments
            .iter()
            .filter(|decl| {
                // The runtime may be inherited through `extends`: the nearest one counts.
                let runtime = project
                    .chain(&decl.name)
                    .iter()
                    .rev()
                    .find_map(|decl| decl.runtime());
                !decl.is_abstract && runtime.unwrap_or("local") == "local"
            })
            .map(|decl| decl.name.clone())
            .collect(),
    };
    let root = project_root(global);
    let mut reports = Vec::new();
    for name in &names {
        let dir = EnvDir::new(&root, name);
        let report = match control::call(&dir.socket(), &Request::Status, ANSWER_WITHIN) {
            Ok(Response::Status(status)) => Ok(status),
            Ok(_) | Err(ClientError::NotRunning) => Err("not running".to_owned()),
            Err(error) => Err(error.to_string()),
        };
        reports.push((name.clone(), report));
    }
    if global.output == Output::Json {
        let entries: Vec<serde_json::Value> = reports
            .iter()
            .map(|(name, report)| match report {
                Ok(status) => json!({ "environment": name, "running": true, "status": status }),
                Err(why) => json!({ "environment": name, "running": false, "reason": why }),
            })
            .collect();
        output::json(&json!(entries));
        return SUCCESS;
    }
    let mut text = String::new();
    for (name, report) in &reports {
        match report {
            Err(why) => text.push_str(&format!("{} {why}\n", style(name).bold())),
            Ok(status) => {
                text.push_str(&format!(
                    "{} (agent pid {})\n",
                    style(name).bold(),
                    status.agent_pid
                ));
                let mut rows = vec![
                    ["SERVICE", "VERSION", "READY", "RESTARTS", "URL", "STATUS"]
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
                    ]);
                }
                text.push_str(&super::inspect::columns(&rows));
            }
        }
    }
    output::stdout(&text);
    SUCCESS
}

pub fn logs(global: &Global, env: &str, service: Option<&str>, follow: bool) -> i32 {
    let project = match load(global) {
        Ok(project) => project,
        Err(code) => return code,
    };
    if project.environment(env).is_none() {
        output::error(&project.unknown_environment(env));
        return USAGE;
    }
    if let Some(service) = service {
        let known: Vec<&str> = project
            .file
            .get("services")
            .and_then(tier_model::tree::Node::as_table)
            .map(|services| services.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if !known.contains(&service) {
            output::error(&format!("no service `{service}` in {env}"));
            if let Some(near) = tier_model::schema::did_you_mean(service, known.iter().copied()) {
                output::hint(&format!("did you mean `{near}`?"));
            }
            return USAGE;
        }
    }
    let dir = EnvDir::new(&project_root(global), env).logs();
    if !dir.is_dir() {
        output::error(&format!(
            "{env}: no logs yet; it has not run on this machine"
        ));
        output::hint(&format!("`tier up {env}` starts it"));
        return FAILURE;
    }
    let lines = tier_local::logs::read_all(&dir, service);
    let width = lines
        .iter()
        .map(|line| line.source.len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for line in &lines {
        text.push_str(&tier_local::logs::format_line(
            &line.source,
            &line.text,
            width,
        ));
        text.push('\n');
    }
    output::stdout(&text);
    if follow {
        tier_local::logs::follow(
            &dir,
            service,
            |line| {
                output::stdout_line(&tier_local::logs::format_line(
                    &line.source,
                    &line.text,
                    width.max(line.source.len()),
                ))
            },
            || true,
        );
    }
    SUCCESS
}
