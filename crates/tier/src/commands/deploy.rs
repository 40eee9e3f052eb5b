//! Plan-applying commands: plan, apply, history, rollback, promote, unlock. Each environment's
//! state (lock, revisions, what is deployed) lives in its own database under `.tier/<env>/`;
//! what a service runs is fixed at apply time as an artifact.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use console::style;
use serde_json::json;
use tier_local::control::{self, ApplyOutcome, ApplyRequest, ClientError, Request, Response};
use tier_local::paths::EnvDir;
use tier_local::secrets::SecretValues;
use tier_model::Environment;
use tier_model::environment::{Artifact, Runtime};
use tier_plan::{Deployed, Plan};
use tier_state::{ArtifactStore, Holder, Origin, Outcome, Revision, State, StateError};

use super::local::{project_root, start_agent, stop_agent, wait_until_ready, write_spec};
use super::{FAILURE, SUCCESS, USAGE, resolve_one};
use crate::args::{Global, Output};
use crate::output;

/// How long one apply may take before the CLI stops waiting for the agent's answer.
const APPLY_WITHIN: Duration = Duration::from_secs(30 * 60);

/// A resolved environment with the artifact each service would run and where its copy is.
struct Desired {
    environment: Environment,
    artifacts: BTreeMap<String, Artifact>,
    programs: BTreeMap<String, PathBuf>,
    /// The values of the secrets the environment names, by fingerprint; memory only.
    secrets: SecretValues,
}

/// Fixes what each service runs: for the local runtime, a copy of its program in the
/// content-addressed store; for kubernetes, its image.
fn fix_artifacts(root: &Path, environment: Environment) -> Result<Desired, String> {
    let env = environment.name.to_string();
    let store = ArtifactStore::new(root);
    let mut artifacts = BTreeMap::new();
    let mut programs = BTreeMap::new();
    // Services that run the same program share one digest: hash each file once.
    let mut fixed: BTreeMap<PathBuf, (Artifact, PathBuf)> = BTreeMap::new();
    for (name, service) in &environment.services {
        match environment.runtime {
            Runtime::Local => {
                let Some(program) = service.command.as_ref().and_then(|command| command.first())
                else {
                    return Err(format!("{env}: service {name}: no command to run"));
                };
                let program = tier_local::spawn::find_program(program, root).map_err(|why| {
                    format!("{env}: service {name}: cannot run its command: {why}")
                })?;
                let (artifact, stored) = match fixed.get(&program) {
                    Some(known) => known.clone(),
                    None => {
                        let put = store
                            .put(&program)
                            .map_err(|error| format!("{env}: service {name}: {error}"))?;
                        fixed.insert(program.clone(), put.clone());
                        put
                    }
                };
                artifacts.insert(name.to_string(), artifact);
                programs.insert(name.to_string(), stored);
            }
            Runtime::Kubernetes => {
                let image = service.image.clone().unwrap_or_default();
                artifacts.insert(
                    name.to_string(),
                    Artifact {
                        digest: image.clone(),
                        source: image,
                    },
                );
            }
        }
    }
    Ok(Desired {
        environment,
        artifacts,
        programs,
        secrets: SecretValues::default(),
    })
}

fn open_state(root: &Path, env: &str) -> Result<State, String> {
    State::open(EnvDir::new(root, env).root()).map_err(|error| format!("{env}: {error}"))
}

fn deployed(state: &State, env: &str) -> Result<Option<Revision>, String> {
    state.deployed().map_err(|error| format!("{env}: {error}"))
}

fn make_plan(state: &State, env: &str, desired: &Desired) -> Result<Plan, String> {
    let current = deployed(state, env)?;
    let serial = state.serial().map_err(|error| format!("{env}: {error}"))?;
    Ok(tier_plan::plan(
        &desired.environment,
        &desired.artifacts,
        current.as_ref().map(|revision| Deployed {
            revision: revision.number,
            spec: &revision.spec,
            artifacts: &revision.artifacts,
        }),
        serial,
    ))
}

/// Resolves an environment that can be deployed, with the values of its secrets
/// (fingerprinted into it), or says why not.
fn deployable(
    global: &Global,
    env: &str,
    sets: &[String],
) -> Result<(Environment, SecretValues), i32> {
    let (project, resolved) = resolve_one(global, env, sets)?;
    if resolved.is_abstract {
        output::error(&format!(
            "environment `{env}` is abstract: it is only a parent and is never deployed"
        ));
        return Err(FAILURE);
    }
    super::secrets::attach_resolved(&project_root(global), &project, &resolved)
}

/// The stored copy of each local service's artifact, for running it again.
fn stored_programs(
    root: &Path,
    environment: &Environment,
    artifacts: &BTreeMap<String, Artifact>,
) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut programs = BTreeMap::new();
    if environment.runtime != Runtime::Local {
        return Ok(programs);
    }
    let store = ArtifactStore::new(root);
    for name in environment.services.keys() {
        let artifact = artifacts
            .get(name.as_str())
            .ok_or_else(|| format!("service {name} has no recorded artifact"))?;
        let path = store.path_of(&artifact.digest).ok_or_else(|| {
            format!(
                "the artifact of {name} ({}) is no longer stored",
                artifact.digest
            )
        })?;
        programs.insert(name.to_string(), path);
    }
    Ok(programs)
}

pub fn plan(global: &Global, env: &str, out: Option<&Path>, sets: &[String]) -> i32 {
    let (environment, _secrets) = match deployable(global, env, sets) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let root = project_root(global);
    let result = open_state(&root, env)
        .and_then(|state| fix_artifacts(&root, environment).map(|desired| (state, desired)))
        .and_then(|(state, desired)| make_plan(&state, env, &desired));
    let plan = match result {
        Ok(plan) => plan,
        Err(why) => {
            output::error(&why);
            return FAILURE;
        }
    };
    if let Some(path) = out {
        if let Err(error) = std::fs::write(path, plan.to_json()) {
            output::error(&format!("cannot write {}: {error}", path.display()));
            return FAILURE;
        }
        eprintln!("saved the plan to {}", path.display());
        output::hint(&format!(
            "`tier apply {}` applies exactly this plan",
            path.display()
        ));
    }
    match global.output {
        Output::Json => output::stdout(&plan.to_json()),
        Output::Text => output::stdout(&plan.render_text(output::colors())),
    }
    SUCCESS
}

/// Refuses to change a protected environment unless the user named it with `--confirm`, or
/// typed its name at a terminal.
pub(super) fn confirmed(environment: &Environment, confirm: Option<&str>, action: &str) -> bool {
    if !environment.protected {
        return true;
    }
    let env = environment.name.as_str();
    if confirm == Some(env) {
        return true;
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) && console::Term::stderr().is_term() {
        eprint!("{env} is protected. Type its name to {action} it: ");
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_ok() && answer.trim() == env {
            return true;
        }
    }
    output::error(&format!("{env} is protected; nothing was changed"));
    output::hint(&format!("add --confirm {env} to {action} it"));
    false
}

/// Takes the environment's lock, or says who holds it.
fn take_lock(state: &State, env: &str, command: &str) -> Result<tier_state::Lock, String> {
    let holder = Holder::this_process(command, state.now_unix_ms());
    state.lock(holder).map_err(|error| match error {
        StateError::Locked { holder, alive: true } => format!(
            "{env} is locked: `{}` (pid {} on {}) is changing it; try again when it is done",
            holder.command, holder.pid, holder.host
        ),
        StateError::Locked { holder, alive: false } => format!(
            "{env} is locked by `{}` (pid {} on {}), which is no longer running; `tier unlock {env}` breaks the lock",
            holder.command, holder.pid, holder.host
        ),
        other => format!("{env}: {other}"),
    })
}

fn who() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default();
    if host.is_empty() {
        user
    } else {
        format!("{user}@{host}")
    }
}

/// Carries a desired environment out on the local runtime: a live rollout through a running
/// agent, or a fresh agent when none runs. Answers the revision's outcome.
fn deploy_local(root: &Path, env: &str, desired: &Desired) -> Outcome {
    let dir = EnvDir::new(root, env);
    let request = ApplyRequest {
        environment: desired.environment.clone(),
        programs: desired.programs.clone(),
        secrets: desired.secrets.clone(),
    };
    match apply_with_progress(&dir, env, &request) {
        Ok(Response::Applied { outcome, log }) => {
            for line in log {
                eprintln!("  {line}");
            }
            match outcome {
                ApplyOutcome::Succeeded => Outcome::Succeeded,
                ApplyOutcome::RolledBack { service, reason } => Outcome::RolledBack {
                    reason: format!("service {service}: {reason}"),
                },
                ApplyOutcome::Halted { service, reason } => Outcome::Failed {
                    reason: format!(
                        "service {service}: {reason} (on_failure = \"halt\": what succeeded was kept)"
                    ),
                },
            }
        }
        Ok(Response::Error { message }) => Outcome::Failed { reason: message },
        Ok(_) => Outcome::Failed {
            reason: "the agent answered something else than an apply".to_owned(),
        },
        Err(ClientError::NotRunning) => {
            // Nothing runs: start an agent on exactly this spec and wait for it. The values
            // of secrets go over the agent's stdin, never into the file.
            let spec = dir.root().join("desired.json");
            let without_values = ApplyRequest {
                secrets: SecretValues::default(),
                ..request
            };
            if let Err(why) = write_spec(&spec, &without_values) {
                return Outcome::Failed { reason: why };
            }
            if let Err(why) = start_agent(root, env, &spec, &desired.secrets) {
                return Outcome::Failed { reason: why };
            }
            match wait_until_ready(&dir.socket(), env) {
                Ok(_) => Outcome::Succeeded,
                Err(why) => {
                    stop_agent(&dir, env);
                    Outcome::Failed { reason: why }
                }
            }
        }
        Err(error) => Outcome::Failed {
            reason: format!("the agent did not answer: {error}"),
        },
    }
}

/// Sends an apply to the running agent and waits for its answer, showing each service's
/// progress on a terminal. Ctrl-C asks the agent to stop at its next safe point and undo the
/// apply; the answer then says so.
fn apply_with_progress(
    dir: &EnvDir,
    env: &str,
    request: &ApplyRequest,
) -> Result<Response, ClientError> {
    use nix::sys::signal::{SigSet, Signal};
    let socket = dir.socket();
    // Only an apply that reaches a running agent needs the signal thread; answer at once
    // when none runs.
    if matches!(
        control::call(&socket, &Request::Status, Duration::from_secs(5)),
        Err(ClientError::NotRunning)
    ) {
        return Err(ClientError::NotRunning);
    }
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    // Blocked here, the signals wait for the thread below instead of ending the process
    // halfway through recording the revision.
    let _ = signals.thread_block();
    {
        let socket = socket.clone();
        let env = env.to_owned();
        std::thread::spawn(move || {
            if signals.wait().is_ok() {
                eprintln!("\n{env}: stopping at the next safe point and undoing this apply…");
                let _ = control::call(&socket, &Request::Cancel, Duration::from_secs(5));
            }
        });
    }
    let call = {
        let socket = socket.clone();
        let request = Request::Apply(Box::new(request.clone()));
        std::thread::spawn(move || control::call(&socket, &request, APPLY_WITHIN))
    };
    let progress = console::Term::stderr().is_term().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    while !call.is_finished() {
        if let Some(bar) = &progress
            && let Ok(Response::Status(status)) =
                control::call(&socket, &Request::Status, Duration::from_secs(5))
        {
            let services: Vec<String> = status
                .services
                .iter()
                .map(|service| format!("{} {}/{}", service.name, service.ready, service.desired))
                .collect();
            bar.set_message(format!("applying to {env}: {}", services.join(", ")));
        }
        super::local::pause();
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    call.join().unwrap_or(Err(ClientError::NotRunning))
}

/// What each service with a `source` locks, for the revision's record: package, version,
/// ecosystem and whether it is direct. A service whose lockfiles cannot be read records why,
/// and the apply goes on.
fn bill_of_materials(root: &Path, environment: &Environment) -> serde_json::Value {
    let mut services = serde_json::Map::new();
    for (name, service) in &environment.services {
        let Some(source) = &service.source else {
            continue;
        };
        let scanned = tier_deps::scan::scan_service(&tier_deps::scan::ServiceSource {
            name: name.to_string(),
            dir: root.join(source),
        });
        let entry = match scanned {
            Ok(inventory) => json!({
                "packages": inventory
                    .packages
                    .iter()
                    .filter(|package| !package.root)
                    .map(|package| json!({
                        "ecosystem": package.ecosystem,
                        "name": package.name,
                        "version": package.version.to_string(),
                        "direct": package.direct,
                    }))
                    .collect::<Vec<_>>(),
            }),
            Err(error) => json!({ "error": error.to_string() }),
        };
        services.insert(name.to_string(), entry);
    }
    serde_json::Value::Object(services)
}

/// Records, carries out and finishes one revision under the environment's lock.
fn carry_out(
    root: &Path,
    env: &str,
    lock: &tier_state::Lock,
    desired: &Desired,
    origin: Origin,
) -> i32 {
    // Everything that can refuse (the kube context guard, the connection) comes before the
    // revision is recorded, so a refusal changes nothing.
    let kube = match desired.environment.runtime {
        Runtime::Local => None,
        Runtime::Kubernetes => {
            match super::kube::prepare(
                root,
                &desired.environment,
                &desired.artifacts,
                &desired.secrets,
            ) {
                Ok(prepared) => Some(prepared),
                Err(code) => return code,
            }
        }
    };
    let previous = match &kube {
        Some(_) => match lock.state().deployed() {
            Ok(previous) => previous,
            Err(error) => {
                output::error(&format!("{env}: {error}"));
                return FAILURE;
            }
        },
        None => None,
    };
    let spec = match serde_json::to_value(&desired.environment) {
        Ok(spec) => spec,
        Err(error) => {
            output::error(&format!("{env}: {error}"));
            return FAILURE;
        }
    };
    let bom = bill_of_materials(root, &desired.environment);
    let number = match lock.begin_with_bom(&spec, &desired.artifacts, &who(), origin, &bom) {
        Ok(number) => number,
        Err(error) => {
            output::error(&format!("{env}: {error}"));
            return FAILURE;
        }
    };
    eprintln!("{env}: applying revision {number}");
    let outcome = match kube {
        Some(prepared) => super::kube::deploy(prepared, &desired.environment, previous.as_ref()),
        None => deploy_local(root, env, desired),
    };
    let succeeded = outcome == Outcome::Succeeded;
    let described = outcome.describe();
    if let Err(error) = lock.finish(number, outcome) {
        output::error(&format!(
            "{env}: revision {number} ran, but recording it failed: {error}"
        ));
        return FAILURE;
    }
    if succeeded {
        output::stdout_line(&format!(
            "{} {env}: revision {number} deployed",
            style("ok").green().bold()
        ));
        SUCCESS
    } else {
        output::error(&format!("{env}: revision {number} {described}"));
        output::hint(&format!(
            "`tier history {env}` shows it; `tier status {env}` shows what runs"
        ));
        FAILURE
    }
}

pub fn apply(global: &Global, target: &str, confirm: Option<&str>, sets: &[String]) -> i32 {
    let root = project_root(global);
    let saved = Path::new(target).is_file().then(|| PathBuf::from(target));
    let (env, desired, saved_plan) = match &saved {
        Some(path) => {
            let plan = match std::fs::read_to_string(path)
                .map_err(|error| error.to_string())
                .and_then(|text| Plan::from_json(&text).map_err(|error| error.to_string()))
            {
                Ok(plan) => plan,
                Err(why) => {
                    output::error(&format!("{}: {why}", path.display()));
                    return FAILURE;
                }
            };
            let environment = match plan.desired_environment() {
                Ok(environment) => environment,
                Err(error) => {
                    output::error(&format!("{}: {error}", path.display()));
                    return FAILURE;
                }
            };
            let programs = match stored_programs(&root, &environment, &plan.artifacts) {
                Ok(programs) => programs,
                Err(why) => {
                    output::error(&format!("{}: {why}", plan.environment));
                    return FAILURE;
                }
            };
            let env = plan.environment.clone();
            let mut environment = environment;
            let planned = environment.clone();
            let secrets = match super::secrets::attach(&root, &mut environment) {
                Ok(secrets) => secrets,
                Err(code) => return code,
            };
            for (name, service) in &environment.services {
                let was = planned
                    .services
                    .get(name)
                    .map(|planned| &planned.secret_fingerprints);
                if was != Some(&service.secret_fingerprints) {
                    output::error(&format!(
                        "{env}: a secret of service {name} changed since the plan was made"
                    ));
                    output::hint(&format!(
                        "make a new plan with `tier plan {env} --out FILE`"
                    ));
                    return FAILURE;
                }
            }
            (
                env,
                Desired {
                    environment,
                    artifacts: plan.artifacts.clone(),
                    programs,
                    secrets,
                },
                Some(plan),
            )
        }
        None => {
            let (environment, secrets) = match deployable(global, target, sets) {
                Ok(found) => found,
                Err(code) => return code,
            };
            match fix_artifacts(&root, environment) {
                Ok(desired) => (target.to_owned(), Desired { secrets, ..desired }, None),
                Err(why) => {
                    output::error(&why);
                    return FAILURE;
                }
            }
        }
    };
    if !confirmed(&desired.environment, confirm, "apply to") {
        return FAILURE;
    }
    let state = match open_state(&root, &env) {
        Ok(state) => state,
        Err(why) => {
            output::error(&why);
            return FAILURE;
        }
    };
    let lock = match take_lock(&state, &env, &format!("tier apply {target}")) {
        Ok(lock) => lock,
        Err(why) => {
            output::error(&why);
            return FAILURE;
        }
    };
    let plan = match saved_plan {
        Some(plan) => {
            let serial = state.serial().unwrap_or(u64::MAX);
            if let Err(error) = plan.ensure_current(serial) {
                output::error(&error.to_string());
                output::hint(&format!(
                    "make a new plan with `tier plan {env} --out FILE`"
                ));
                return FAILURE;
            }
            plan
        }
        None => match make_plan(&state, &env, &desired) {
            Ok(plan) => plan,
            Err(why) => {
                output::error(&why);
                return FAILURE;
            }
        },
    };
    output::stdout(&plan.render_text(output::colors()));
    let running = matches!(
        control::call(
            &EnvDir::new(&root, &env).socket(),
            &Request::Status,
            Duration::from_secs(5)
        ),
        Ok(Response::Status(_))
    );
    if plan.is_empty() && running {
        return SUCCESS;
    }
    let code = carry_out(&root, &env, &lock, &desired, Origin::Apply);
    let _ = lock.release();
    code
}

pub fn history(global: &Global, env: &str) -> i32 {
    let root = project_root(global);
    if let Err(code) = known_environment(global, env) {
        return code;
    }
    let revisions = match open_state(&root, env)
        .and_then(|state| state.history().map_err(|error| format!("{env}: {error}")))
    {
        Ok(revisions) => revisions,
        Err(why) => {
            output::error(&why);
            return FAILURE;
        }
    };
    if global.output == Output::Json {
        output::json(&json!(revisions));
        return SUCCESS;
    }
    if revisions.is_empty() {
        output::stdout_line(&format!("{env}: nothing applied yet"));
        return SUCCESS;
    }
    let mut rows = vec![
        ["REVISION", "STARTED", "WHO", "ORIGIN", "OUTCOME"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for revision in &revisions {
        let origin = match &revision.origin {
            Origin::Apply => "apply".to_owned(),
            Origin::Rollback { to } => format!("rollback to {to}"),
            Origin::Promote {
                from_environment,
                from_revision,
            } => format!("promoted from {from_environment} rev {from_revision}"),
        };
        let outcome = match &revision.outcome {
            Outcome::InProgress if revision.finished_unix_ms.is_none() => {
                "in progress or interrupted".to_owned()
            }
            other => other.describe(),
        };
        rows.push(vec![
            revision.number.to_string(),
            format_time(revision.started_unix_ms),
            revision.who.clone(),
            origin,
            outcome,
        ]);
    }
    output::stdout(&super::inspect::columns(&rows));
    SUCCESS
}

/// `2026-11-26 21:30:01 UTC`, computed without a time zone database.
pub(super) fn format_time(unix_ms: u64) -> String {
    let seconds = unix_ms / 1000;
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn known_environment(global: &Global, env: &str) -> Result<(), i32> {
    let project = super::load(global)?;
    if project.environment(env).is_none() {
        output::error(&project.unknown_environment(env));
        return Err(USAGE);
    }
    Ok(())
}

pub fn rollback(global: &Global, env: &str, to: u64, confirm: Option<&str>) -> i32 {
    if let Err(code) = known_environment(global, env) {
        return code;
    }
    let root = project_root(global);
    let state = match open_state(&root, env) {
        Ok(state) => state,
        Err(why) => {
            output::error(&why);
            return FAILURE;
        }
    };
    let revision = match state.revision(to) {
        Ok(Some(revision)) if revision.outcome == Outcome::Succeeded => revision,
        Ok(Some(revision)) => {
            output::error(&format!(
                "{env}: revision {to} {}; only a revision that was deployed can be rolled back to",
                revision.outcome.describe()
            ));
            return FAILURE;
        }
        Ok(None) => {
            output::error(&format!("{env}: there is no revision {to}"));
            output::hint(&format!("`tier history {env}` lists them"));
            return USAGE;
        }
        Err(error) => {
            output::error(&format!("{env}: {error}"));
            return FAILURE;
        }
    };
    let mut desired = match desired_from_revision(&root, &revision) {
        Ok(desired) => desired,
        Err(why) => {
            output::error(&format!("{env}: {why}"));
            return FAILURE;
        }
    };
    // The earlier revision's references, with the values they have now: a secret's old value
    // was never kept.
    desired.secrets = match super::secrets::attach(&root, &mut desired.environment) {
        Ok(secrets) => secrets,
        Err(code) => return code,
    };
    if !confirmed(&desired.environment, confirm, "roll back") {
        return FAILURE;
    }
    let lock = match take_lock(&state, env, &format!("tier rollback {env} --to {to}")) {
        Ok(lock) => lock,
        Err(why) => {
            output::error(&why);
            return FAILURE;
        }
    };
    let code = carry_out(&root, env, &lock, &desired, Origin::Rollback { to });
    let _ = lock.release();
    code
}

/// The environment and programs a recorded revision ran.
fn desired_from_revision(root: &Path, revision: &Revision) -> Result<Desired, String> {
    let environment: Environment = serde_json::from_value(revision.spec.clone())
        .map_err(|error| format!("revision {} is unreadable: {error}", revision.number))?;
    let programs = stored_programs(root, &environment, &revision.artifacts)?;
    Ok(Desired {
        environment,
        artifacts: revision.artifacts.clone(),
        programs,
        secrets: SecretValues::default(),
    })
}

pub fn promote(
    global: &Global,
    from: &str,
    to: &str,
    confirm: Option<&str>,
    sets: &[String],
) -> i32 {
    let (project, resolved) = match resolve_one(global, to, sets) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if resolved
        .environment
        .promote_from
        .as_ref()
        .map(|source| source.as_str())
        != Some(from)
    {
        output::error(&format!(
            "{to} is not promoted from {from}{}",
            match &resolved.environment.promote_from {
                Some(source) => format!(": its promote_from is {source}"),
                None => ": it has no promote_from".to_owned(),
            }
        ));
        return USAGE;
    }
    let root = project_root(global);
    let source = match open_state(&root, from).and_then(|state| deployed(&state, from)) {
        Ok(Some(revision)) => revision,
        Ok(None) => {
            output::error(&format!("{from} has nothing deployed to promote"));
            output::hint(&format!("`tier apply {from}` first"));
            return FAILURE;
        }
        Err(why) => {
            output::error(&why);
            return FAILURE;
        }
    };
    // The target's own settings and config, with exactly the artifacts that run in the source.
    let mut artifacts = BTreeMap::new();
    for name in resolved.environment.services.keys() {
        let Some(artifact) = source.artifacts.get(name.as_str()) else {
            output::error(&format!(
                "service {name} does not run in {from} (revision {}), so there is nothing to promote for it",
                source.number
            ));
            return FAILURE;
        };
        artifacts.insert(name.to_string(), artifact.clone());
    }
    let programs = match stored_programs(&root, &resolved.environment, &artifacts) {
        Ok(programs) => programs,
        Err(why) => {
            output::error(&why);
            return FAILURE;
        }
    };
    let (environment, secrets) = match super::secrets::attach_resolved(&root, &project, &resolved) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let desired = Desired {
        environment,
        artifacts,
        programs,
        secrets,
    };
    if !confirmed(&desired.environment, confirm, "promote to") {
        return FAILURE;
    }
    let state = match open_state(&root, to) {
        Ok(state) => state,
        Err(why) => {
            output::error(&why);
            return FAILURE;
        }
    };
    let lock = match take_lock(&state, to, &format!("tier promote {from} {to}")) {
        Ok(lock) => lock,
        Err(why) => {
            output::error(&why);
            return FAILURE;
        }
    };
    match make_plan(&state, to, &desired) {
        Ok(plan) => output::stdout(&plan.render_text(output::colors())),
        Err(why) => {
            output::error(&why);
            return FAILURE;
        }
    }
    let origin = Origin::Promote {
        from_environment: from.to_owned(),
        from_revision: source.number,
    };
    let code = carry_out(&root, to, &lock, &desired, origin);
    let _ = lock.release();
    code
}

pub fn unlock(global: &Global, env: &str, yes: bool) -> i32 {
    if let Err(code) = known_environment(global, env) {
        return code;
    }
    let root = project_root(global);
    let state = match open_state(&root, env) {
        Ok(state) => state,
        Err(why) => {
            output::error(&why);
            return FAILURE;
        }
    };
    let holder = match state.lock_holder() {
        Ok(Some(holder)) => holder,
        Ok(None) => {
            eprintln!("{env} is not locked");
            return SUCCESS;
        }
        Err(error) => {
            output::error(&format!("{env}: {error}"));
            return FAILURE;
        }
    };
    if holder.is_alive() {
        output::error(&format!(
            "{env} is locked by `{}` (pid {} on {}), which is still running; it was not broken",
            holder.command, holder.pid, holder.host
        ));
        return FAILURE;
    }
    if !yes {
        let asked = std::io::IsTerminal::is_terminal(&std::io::stdin())
            && console::Term::stderr().is_term()
            && {
                eprint!(
                    "break the lock of `{}` (pid {}, no longer running)? [y/N] ",
                    holder.command, holder.pid
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer).is_ok()
                    && matches!(answer.trim(), "y" | "yes")
            };
        if !asked {
            output::error(&format!("{env}: the lock was not broken"));
            output::hint(&format!("`tier unlock {env} --yes` breaks it"));
            return FAILURE;
        }
    }
    match state.break_lock() {
        Ok(_) => {
            eprintln!(
                "{env}: broke the lock of `{}` (pid {})",
                holder.command, holder.pid
            );
            SUCCESS
        }
        Err(error) => {
            output::error(&format!("{env}: {error}"));
            FAILURE
        }
    }
}
