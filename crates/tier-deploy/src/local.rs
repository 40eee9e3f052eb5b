//! The local runtime as the engine drives it: an apply goes to the environment's running agent
//! over its control socket (the agent rolls it out and undoes it itself on a failure), or,
//! when none runs, a new agent is started in its own session on exactly the revision's spec.
//! The agent is a program of its own, `tier agent` by default ([`AgentProgram`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tier_local::control::{
    self, ApplyOutcome, ApplyRequest, ClientError, EnvStatus, Request, Response, ServiceState,
};
use tier_local::secrets::SecretValues;
use tier_model::Environment;
use tier_state::Revision;
use tier_state::paths::EnvDir;

use crate::Interrupt;
use crate::artifacts::Desired;
use crate::event::{DeployEvent, EventSink, Phase, ServiceProgress};
use crate::runtime::{Rollout, RolloutFailure, Runtime};

/// How long one apply may take before the engine stops waiting for the agent's answer.
const APPLY_WITHIN: Duration = Duration::from_secs(30 * 60);
/// How long the engine waits for an agent to answer one request.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// How often the engine asks an agent how far it got.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// The program that runs an environment's agent. It is started as
/// `PROGRAM --project ROOT agent ENV --spec FILE --secrets-on-stdin` (the `tier` binary's
/// hidden command), in a new session, so it outlives the call that started it.
#[derive(Clone, Debug, Default)]
pub enum AgentProgram {
    /// The running executable: the `tier` binary.
    #[default]
    ThisExecutable,
    /// Another program that understands the same arguments (a test's own binary).
    Path(PathBuf),
}

impl AgentProgram {
    fn program(&self) -> Result<PathBuf, String> {
        match self {
            AgentProgram::ThisExecutable => std::env::current_exe()
                .map_err(|error| format!("cannot find the tier executable: {error}")),
            AgentProgram::Path(path) => Ok(path.clone()),
        }
    }
}

/// The arguments an [`AgentProgram`] is started with.
pub fn agent_arguments(root: &Path, env: &str, spec: &Path) -> Vec<OsString> {
    vec![
        "--project".into(),
        root.into(),
        "agent".into(),
        env.into(),
        "--spec".into(),
        spec.into(),
        "--secrets-on-stdin".into(),
    ]
}

/// The pause between two questions to an agent: the engine asks a separate process, there is
/// nothing to await.
#[expect(
    clippy::disallowed_methods,
    reason = "the engine polls the agent between requests"
)]
pub fn pause() {
    std::thread::sleep(POLL_EVERY);
}

/// Whether the environment's agent answers.
pub fn is_running(root: &Path, env: &str) -> bool {
    matches!(
        control::call(
            &EnvDir::new(root, env).socket(),
            &Request::Status,
            ANSWER_WITHIN
        ),
        Ok(Response::Status(_))
    )
}

/// The environment's status as its agent reports it, or why there is none.
pub fn status(root: &Path, env: &str) -> Result<EnvStatus, String> {
    match control::call(
        &EnvDir::new(root, env).socket(),
        &Request::Status,
        ANSWER_WITHIN,
    ) {
        Ok(Response::Status(status)) => Ok(status),
        Ok(_) | Err(ClientError::NotRunning) => Err("not running".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

/// The local runtime for one environment.
pub struct LocalRuntime {
    root: PathBuf,
    env: String,
    agent: AgentProgram,
}

impl LocalRuntime {
    pub fn new(root: &Path, env: &str, agent: AgentProgram) -> LocalRuntime {
        LocalRuntime {
            root: root.to_owned(),
            env: env.to_owned(),
            agent,
        }
    }
}

impl Runtime for LocalRuntime {
    fn roll_out(&mut self, desired: &Desired, events: EventSink, interrupt: &Interrupt) -> Rollout {
        let env = self.env.as_str();
        let dir = EnvDir::new(&self.root, env);
        let request = ApplyRequest {
            environment: desired.environment.clone(),
            programs: desired.programs.clone(),
            secrets: desired.secrets.clone(),
        };
        match apply_live(&dir, env, &request, events, interrupt) {
            Ok(Response::Applied { outcome, log }) => {
                for note in log {
                    events(DeployEvent::Agent {
                        env: env.to_owned(),
                        note,
                    });
                }
                match outcome {
                    ApplyOutcome::Succeeded => Rollout::Succeeded,
                    ApplyOutcome::RolledBack { service, reason } => {
                        Rollout::RolledBack(RolloutFailure::of_service(service, reason))
                    }
                    ApplyOutcome::Halted { service, reason } => {
                        Rollout::Halted(RolloutFailure::of_service(service, reason))
                    }
                }
            }
            Ok(Response::Error { message }) => Rollout::Aborted(message),
            Ok(_) => Rollout::Aborted("the agent answered something else than an apply".to_owned()),
            Err(ClientError::NotRunning) => {
                // Nothing runs: start an agent on exactly this spec and wait for it. The values
                // of secrets go over the agent's stdin, never into the file.
                let spec = dir.root().join("desired.json");
                let without_values = ApplyRequest {
                    secrets: SecretValues::default(),
                    ..request
                };
                if let Err(why) = write_spec(&spec, &without_values) {
                    return Rollout::Aborted(why);
                }
                match start_agent(&self.root, env, &spec, &desired.secrets, &self.agent) {
                    Ok(pid) => events(DeployEvent::AgentStarted {
                        env: env.to_owned(),
                        pid,
                    }),
                    Err(why) => return Rollout::Aborted(why),
                }
                match wait_until_ready(&dir.socket(), env, events, Some(interrupt)) {
                    Ok(_) => Rollout::Succeeded,
                    Err(why) => {
                        if let Err(message) = stop_agent(&dir, env) {
                            events(DeployEvent::Warning { message });
                        }
                        Rollout::Aborted(why)
                    }
                }
            }
            Err(error) => Rollout::Aborted(format!("the agent did not answer: {error}")),
        }
    }

    fn restore(
        &mut self,
        earlier: &Revision,
        _events: EventSink,
        _interrupt: &Interrupt,
    ) -> Result<(), String> {
        // The agent undoes a failed rollout itself (`Rollout::RolledBack`), so the engine never
        // asks; say so rather than pretend.
        Err(format!(
            "the local agent restores revision {} itself",
            earlier.number
        ))
    }
}

/// Sends an apply to the running agent and waits for its answer, reporting each service's
/// progress. An interrupt asks the agent to stop at its next safe point and undo the apply;
/// the answer then says so.
fn apply_live(
    dir: &EnvDir,
    env: &str,
    request: &ApplyRequest,
    events: EventSink,
    interrupt: &Interrupt,
) -> Result<Response, ClientError> {
    let socket = dir.socket();
    if matches!(
        control::call(&socket, &Request::Status, ANSWER_WITHIN),
        Err(ClientError::NotRunning)
    ) {
        return Err(ClientError::NotRunning);
    }
    let seen = interrupt.count();
    let call = {
        let socket = socket.clone();
        let request = Request::Apply(Box::new(request.clone()));
        std::thread::spawn(move || control::call(&socket, &request, APPLY_WITHIN))
    };
    let mut cancelled = false;
    while !call.is_finished() {
        if !cancelled && interrupt.count() > seen {
            cancelled = true;
            events(DeployEvent::Cancelling {
                env: env.to_owned(),
            });
            let _ = control::call(&socket, &Request::Cancel, ANSWER_WITHIN);
        }
        if let Ok(Response::Status(status)) =
            control::call(&socket, &Request::Status, ANSWER_WITHIN)
        {
            events(progress(env, Phase::Applying, &status));
        }
        pause();
    }
    call.join().unwrap_or(Err(ClientError::NotRunning))
}

fn progress(env: &str, phase: Phase, status: &EnvStatus) -> DeployEvent {
    DeployEvent::Progress {
        env: env.to_owned(),
        phase,
        services: status
            .services
            .iter()
            .map(|service| ServiceProgress {
                name: service.name.clone(),
                ready: service.ready,
                desired: service.desired,
                waiting: service.state == ServiceState::Waiting,
            })
            .collect(),
    }
}

/// Writes what a detached agent is to run (an environment and its programs, never a secret
/// value) where it will read it.
pub fn write_spec(path: &Path, request: &ApplyRequest) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
    }
    let bytes = serde_json::to_vec_pretty(request).map_err(|error| error.to_string())?;
    tier_state::paths::write_atomic(path, &bytes)
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// Starts the agent of `env` in a new session on exactly the spec in `spec`, hands it the
/// secret values over its stdin, and waits until it answers; says why not in one line when it
/// cannot. Answers its pid.
pub fn start_agent(
    root: &Path,
    env: &str,
    spec: &Path,
    secrets: &SecretValues,
    agent: &AgentProgram,
) -> Result<u32, String> {
    let dir = EnvDir::new(root, env);
    std::fs::create_dir_all(dir.root())
        .map_err(|error| format!("{env}: cannot create {}: {error}", dir.root().display()))?;
    let log = std::fs::File::create(dir.agent_log())
        .map_err(|error| format!("{env}: cannot write {}: {error}", dir.agent_log().display()))?;
    let program = agent.program()?;
    let args = agent_arguments(root, env, spec);
    let input = serde_json::to_vec(secrets).map_err(|error| error.to_string())?;
    // The caller may block signals for itself (the CLI turns Ctrl-C into an interrupt once a
    // revision is recorded); a child inherits the mask of the thread that forks it, so the
    // agent is started from a thread that blocks nothing, or it and its replicas would never
    // see SIGTERM.
    let dir_of_project = root.to_owned();
    let spawned = std::thread::spawn(move || {
        let _ = nix::sys::signal::SigSet::all().thread_unblock();
        tier_local::spawn::spawn_detached(&program, &args, &dir_of_project, log, &input)
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("the thread starting it panicked")));
    let mut child = spawned.map_err(|error| format!("{env}: cannot start the agent: {error}"))?;
    // Wait for the agent to answer, or to die saying why. `try_wait` also reaps it, so a dead
    // agent is not mistaken for a live one.
    loop {
        match control::call(&dir.socket(), &Request::Status, ANSWER_WITHIN) {
            Ok(Response::Status(_)) => return Ok(child.id()),
            _ if !matches!(child.try_wait(), Ok(None)) => {
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

/// Polls the agent until every service is ready, or one of them cannot get there, reporting
/// progress as it goes. An interrupt (when one is given) ends the wait as a failure.
pub fn wait_until_ready(
    socket: &Path,
    env: &str,
    events: EventSink,
    interrupt: Option<&Interrupt>,
) -> Result<EnvStatus, String> {
    let seen = interrupt.map(Interrupt::count);
    loop {
        if let (Some(interrupt), Some(seen)) = (interrupt, seen)
            && interrupt.count() > seen
        {
            return Err(format!("{env}: interrupted (Ctrl-C)"));
        }
        let status = match control::call(socket, &Request::Status, ANSWER_WITHIN) {
            Ok(Response::Status(status)) => status,
            Ok(_) => {
                return Err(format!(
                    "{env}: the agent answered something else than its status"
                ));
            }
            Err(ClientError::NotRunning) => return Err(format!("{env}: the agent stopped")),
            Err(error) => return Err(format!("{env}: {error}")),
        };
        if status.all_ready() {
            events(DeployEvent::EnvironmentReady {
                env: env.to_owned(),
            });
            return Ok(status);
        }
        if let Some(why) = failure(&status) {
            return Err(why);
        }
        events(progress(env, Phase::Starting, &status));
        pause();
    }
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

/// Asks the agent to stop and waits for it to be gone, up to 30 seconds.
pub fn stop_agent(dir: &EnvDir, env: &str) -> Result<(), String> {
    let _ = control::call(&dir.socket(), &Request::Shutdown, ANSWER_WITHIN);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tier_local::is_running(dir) && Instant::now() < deadline {
        pause();
    }
    if tier_local::is_running(dir) {
        return Err(format!("{env}: the agent did not stop within 30s"));
    }
    Ok(())
}

/// What an agent started on a spec runs: the spec file's environment and programs, and the
/// secret values from its stdin when `secrets_on_stdin`. The messages are the agent's own
/// last words, read back by [`start_agent`].
pub fn read_agent_spec(
    env: &str,
    spec: &Path,
    secrets_on_stdin: bool,
) -> Result<
    (
        Environment,
        std::collections::BTreeMap<String, PathBuf>,
        SecretValues,
    ),
    String,
> {
    let secrets = if secrets_on_stdin {
        let mut input = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut input)
            .map_err(|error| error.to_string())
            .and_then(|_| {
                serde_json::from_slice::<SecretValues>(&input).map_err(|error| error.to_string())
            })
            .map_err(|why| format!("{env}: cannot read the secret values on stdin: {why}"))?
    } else {
        SecretValues::default()
    };
    let request = std::fs::read(spec)
        .map_err(|error| error.to_string())
        .and_then(|bytes| {
            serde_json::from_slice::<ApplyRequest>(&bytes).map_err(|error| error.to_string())
        })
        .map_err(|why| format!("{env}: cannot read {}: {why}", spec.display()))?;
    Ok((request.environment, request.programs, secrets))
}

/// Runs an environment's agent in this process until SIGINT or SIGTERM: the body of the
/// agent program that [`start_agent`] starts (`tier agent --spec`). Prepares everything that
/// can fail first and says why in one line.
pub fn run_agent(
    root: &Path,
    environment: Environment,
    programs: std::collections::BTreeMap<String, PathBuf>,
    secrets: SecretValues,
) -> Result<(), String> {
    let prepared = tier_local::prepare(tier_local::AgentOptions {
        project_root: root.to_path_buf(),
        environment,
        echo: false,
        programs,
        secrets,
    })
    .map_err(|error| error.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))?;
    let stop = tokio_util::sync::CancellationToken::new();
    let ran = runtime.block_on(async {
        tokio::spawn(stop_on_signal(stop.clone()));
        tier_local::run(prepared, stop).await
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    ran.map_err(|error| error.to_string())
}

/// Cancels `stop` on SIGINT or SIGTERM: how foreground agents and servers are stopped.
pub async fn stop_on_signal(stop: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    stop.cancel();
}
