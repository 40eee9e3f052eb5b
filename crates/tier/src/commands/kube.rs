//! The kubernetes side of `apply` (and of `rollback` and `promote`, which apply too) and of
//! `status`. The plan, the lock and the revision records are `deploy.rs`'s, shared with the
//! local runtime; this file connects (after the kube context guard), carries a revision's
//! objects to the cluster with tier-kube, restores the previous revision when a rollout
//! fails, and reads live Deployments for `tier status`. With `[store] kubernetes = true` it
//! also hands the cluster the environment's store tokens (`.tier/<env>/tokens.json`, made on
//! the first apply), over the API only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;
use tier_kube::{
    Cluster, ClusterError, DeployConfig, DeployFailure, Event, Object, RenderOptions, RolloutState,
    StoreTokens,
};
use tier_local::paths::EnvDir;
use tier_local::secrets::SecretValues;
use tier_model::environment::{Artifact, OnFailure, Runtime};
use tier_model::{Environment, ServiceName};
use tier_state::{Outcome, Revision};

use super::{FAILURE, SUCCESS, Threads, USAGE, resolve_one};
use crate::args::{Global, Output};
use crate::output;

/// A connection to the environment's cluster, made after the guard passed, and the objects
/// to apply.
pub(super) struct Prepared {
    runtime: tokio::runtime::Runtime,
    cluster: Cluster,
    objects: Vec<Object>,
    /// The secret values, by service and name, that the Secrets carry (sent only over the
    /// API); a restore of the previous revision uses them too, since old values are not kept.
    secret_values: SecretsByName,
    /// The project's root, where `.tier/<env>/tokens.json` is.
    root: PathBuf,
}

type SecretsByName = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// Everything that can refuse before a revision is recorded: rendering the objects, reading
/// the kubeconfig, the context guard and connecting. Prints why and answers the exit code.
pub(super) fn prepare(
    root: &Path,
    environment: &Environment,
    artifacts: &BTreeMap<String, Artifact>,
    secrets: &SecretValues,
) -> Result<Prepared, i32> {
    let env = environment.name.as_str();
    let secret_values = secrets.by_name();
    let objects = match render(root, environment, artifacts, &secret_values) {
        Ok(objects) => objects,
        Err(why) => {
            output::error(&format!("{env}: {why}"));
            return Err(FAILURE);
        }
    };
    let runtime = super::runtime(Threads::One)?;
    let cluster = runtime
        .block_on(Cluster::connect(environment))
        .map_err(|error| refused(env, &error))?;
    Ok(Prepared {
        runtime,
        cluster,
        objects,
        secret_values,
        root: root.to_owned(),
    })
}

/// Applies the prepared objects wave by wave and waits for each rollout. When one fails (or
/// Ctrl-C stops the apply), the previous revision's objects are applied again, as the local
/// runtime rolls back; `on_failure = "halt"` keeps what succeeded instead.
pub(super) fn deploy(
    prepared: Prepared,
    environment: &Environment,
    previous: Option<&Revision>,
) -> Outcome {
    let env = environment.name.as_str();
    let Prepared {
        runtime,
        cluster,
        objects,
        secret_values,
        root,
    } = prepared;
    let failure = match runtime.block_on(deploy_with_progress(&cluster, environment, &objects)) {
        Ok(()) => return Outcome::Succeeded,
        Err(failure) => failure,
    };
    eprintln!("{env}: {failure}");
    if environment.project.on_failure == OnFailure::Halt {
        return Outcome::Failed {
            reason: format!("{failure} (on_failure = \"halt\": what succeeded was kept)"),
        };
    }
    let Some(previous) = previous else {
        return Outcome::Failed {
            reason: format!(
                "{failure}; nothing was deployed before, so the objects were left as they are"
            ),
        };
    };
    eprintln!(
        "{env}: applying revision {} again, which was deployed before",
        previous.number
    );
    let restored = serde_json::from_value::<Environment>(previous.spec.clone())
        .map_err(|error| format!("revision {} is unreadable: {error}", previous.number))
        .and_then(|earlier| {
            let objects = render(&root, &earlier, &previous.artifacts, &secret_values)?;
            runtime
                .block_on(deploy_with_progress(&cluster, &earlier, &objects))
                .map_err(|error| error.to_string())
        });
    match restored {
        Ok(()) => Outcome::RolledBack {
            reason: format!("{failure}; revision {} runs again", previous.number),
        },
        Err(why) => Outcome::Failed {
            reason: format!(
                "{failure}; applying revision {} again failed too: {why}",
                previous.number
            ),
        },
    }
}

/// Whether the named environment runs on kubernetes (its own `runtime` or the nearest one it
/// inherits). A project that does not load is not kubernetes here: the caller reports it.
pub(super) fn runs_on_kubernetes(global: &Global, env: &str) -> bool {
    let Ok(project) = tier_model::Project::load(&global.project) else {
        return false;
    };
    project
        .chain(env)
        .iter()
        .rev()
        .find_map(|decl| decl.runtime())
        == Some("kubernetes")
}

/// `tier status <env>` for a kubernetes environment: each service's Deployment as the API
/// server reports it.
pub(super) fn status(global: &Global, env: &str) -> i32 {
    let (_, resolved) = match resolve_one(global, env, &[]) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if resolved.is_abstract {
        output::error(&format!(
            "environment `{env}` is abstract: it is only a parent and never runs"
        ));
        return USAGE;
    }
    let environment = resolved.environment;
    if environment.runtime != Runtime::Kubernetes {
        return FAILURE;
    }
    let Ok(runtime) = super::runtime(Threads::One) else {
        return FAILURE;
    };
    let namespace = tier_kube::namespace_of(&environment);
    let context = environment
        .kube
        .as_ref()
        .map(|kube| kube.context.clone())
        .unwrap_or_default();
    let deployments = runtime.block_on(async {
        let cluster = Cluster::connect(&environment).await?;
        cluster.deployments(&environment, &namespace).await
    });
    let deployments = match deployments {
        Ok(deployments) => deployments,
        Err(error) => return refused(env, &error),
    };
    let mut services = Vec::new();
    for name in environment.services.keys() {
        let entry = match deployments.get(name.as_str()) {
            None => json!({
                "name": name, "image": null, "desired": 0, "ready": 0, "updated": 0,
                "available": 0, "state": "missing", "reason": "no Deployment",
            }),
            Some(deployment) => {
                let state = tier_kube::rollout_state(deployment);
                let counts = state.counts();
                let (word, reason) = match &state {
                    RolloutState::Done { .. } => ("running", None),
                    RolloutState::Waiting { reason, .. } => ("not ready", Some(reason.clone())),
                    RolloutState::Failed { reason, .. } => ("failed", Some(reason.clone())),
                };
                let image = deployment
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.template.spec.as_ref())
                    .and_then(|pod| pod.containers.first())
                    .and_then(|container| container.image.clone());
                json!({
                    "name": name, "image": image, "desired": counts.desired,
                    "ready": counts.ready, "updated": counts.updated,
                    "available": counts.available, "state": word, "reason": reason,
                })
            }
        };
        services.push(entry);
    }
    if global.output == Output::Json {
        output::json(&json!([{
            "environment": env,
            "runtime": "kubernetes",
            "running": !deployments.is_empty(),
            "status": { "context": context, "namespace": namespace, "services": services },
        }]));
        return SUCCESS;
    }
    let mut rows = vec![
        [
            "SERVICE",
            "IMAGE",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "STATUS",
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
        ]);
    }
    output::stdout(&format!(
        "{} (kubernetes: context {context}, namespace {namespace})\n{}",
        style(env).bold(),
        super::inspect::columns(&rows)
    ));
    SUCCESS
}

/// The environment's store tokens for the store's Secret: `.tier/<env>/tokens.json`, made
/// (mode 0600) when missing, so `tier config <env> --store URL` works with its read-write
/// token. `None` without `[store] kubernetes = true`.
pub(super) fn store_tokens(
    root: &Path,
    environment: &Environment,
) -> Result<Option<StoreTokens>, String> {
    if !environment.store.kubernetes {
        return Ok(None);
    }
    let env = environment.name.as_str();
    let path = EnvDir::new(root, env).tokens();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
    }
    let tokens = tier_store::http::Tokens::load_or_create(&path, env)
        .map_err(|error| format!("the store's tokens: {error}"))?;
    let file = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    Ok(Some(StoreTokens {
        file,
        read_only: tokens.read_only().expose().to_owned(),
    }))
}

/// The objects of an environment, each service running its recorded artifact (its image),
/// with the store's real tokens.
fn render(
    root: &Path,
    environment: &Environment,
    artifacts: &BTreeMap<String, Artifact>,
    secret_values: &SecretsByName,
) -> Result<Vec<Object>, String> {
    let images = environment
        .services
        .keys()
        .filter_map(|name| {
            let artifact = artifacts.get(name.as_str())?;
            (!artifact.digest.is_empty()).then(|| (name.clone(), artifact.digest.clone()))
        })
        .collect();
    let options = RenderOptions {
        images,
        secret_values: Some(secret_values.clone()),
        store_tokens: store_tokens(root, environment)?,
    };
    tier_kube::render(environment, &options).map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Prints a cluster error with its hint; the exit code of a refusal.
fn refused(env: &str, error: &ClusterError) -> i32 {
    match error {
        // These name the environment already.
        ClusterError::WrongContext { .. } | ClusterError::NotKubernetes { .. } => {
            output::error(&error.to_string());
        }
        _ => output::error(&format!("{env}: {error}")),
    }
    if let Some(hint) = error.hint() {
        output::hint(&hint);
    }
    FAILURE
}

/// Deploys, showing each service of the running wave on a terminal (one line per finished
/// service otherwise). Ctrl-C stops waiting and counts as a failure, so the caller restores.
async fn deploy_with_progress(
    cluster: &Cluster,
    environment: &Environment,
    objects: &[Object],
) -> Result<(), DeployFailure> {
    let progress = Progress::new();
    let report = |event: Event| progress.show(event);
    let deployed = tier_kube::deploy(
        cluster,
        environment,
        objects,
        DeployConfig::default(),
        &report,
    );
    let result = tokio::select! {
        result = deployed => result.map(drop),
        _ = tokio::signal::ctrl_c() => Err(DeployFailure {
            service: None,
            reason: "interrupted (Ctrl-C)".to_owned(),
        }),
    };
    progress.finish();
    result
}

/// Spinners per service on a terminal; plain lines otherwise.
struct Progress {
    bars: Option<(MultiProgress, Mutex<BTreeMap<ServiceName, ProgressBar>>)>,
    done: Mutex<Vec<ServiceName>>,
}

impl Progress {
    fn new() -> Progress {
        let bars = console::Term::stderr()
            .is_term()
            .then(|| (MultiProgress::new(), Mutex::new(BTreeMap::new())));
        Progress {
            bars,
            done: Mutex::new(Vec::new()),
        }
    }

    fn show(&self, event: Event) {
        match event {
            Event::Shared { deployments } => match &self.bars {
                Some(_) => self.spinners(deployments),
                None => {
                    let names: Vec<String> = deployments.iter().map(ToString::to_string).collect();
                    eprintln!("  runtime config store: {}", names.join(", "));
                }
            },
            Event::Wave { index, services } => {
                let names: Vec<String> = services.iter().map(ToString::to_string).collect();
                match &self.bars {
                    Some(_) => self.spinners(services),
                    None => eprintln!("  wave {}: {}", index + 1, names.join(", ")),
                }
            }
            Event::Rollout { service, state } => {
                let counts = state.counts();
                let message = match &state {
                    RolloutState::Done { .. } => {
                        format!(
                            "rolled out: {}/{} available",
                            counts.available, counts.desired
                        )
                    }
                    RolloutState::Waiting { reason, .. } => format!(
                        "{}/{} available: {reason}",
                        counts.available, counts.desired
                    ),
                    RolloutState::Failed { reason, .. } => format!("failed: {reason}"),
                };
                let finished = !matches!(state, RolloutState::Waiting { .. });
                match &self.bars {
                    Some((_, bars)) => {
                        let bars = bars.lock().unwrap_or_else(|poison| poison.into_inner());
                        if let Some(bar) = bars.get(&service) {
                            if finished {
                                bar.finish_with_message(message);
                            } else {
                                bar.set_message(message);
                            }
                        }
                    }
                    None if finished => {
                        let mut done = self
                            .done
                            .lock()
                            .unwrap_or_else(|poison| poison.into_inner());
                        if !done.contains(&service) {
                            done.push(service.clone());
                            eprintln!("  {service}: {message}");
                        }
                    }
                    None => {}
                }
            }
            Event::Pruned(pruned) => {
                let line = format!(
                    "  pruned {} {}/{} (no longer declared)",
                    pruned.kind.as_str(),
                    pruned.namespace,
                    pruned.name
                );
                match &self.bars {
                    Some((multi, _)) => {
                        let _ = multi.println(line);
                    }
                    None => eprintln!("{line}"),
                }
            }
        }
    }

    /// A spinner per Deployment about to roll out (on a terminal only).
    fn spinners(&self, names: Vec<ServiceName>) {
        let Some((multi, bars)) = &self.bars else {
            return;
        };
        let mut bars = bars.lock().unwrap_or_else(|poison| poison.into_inner());
        for name in names {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {prefix} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name.to_string());
            bar.set_message("applied");
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bars.insert(name, bar);
        }
    }

    fn finish(&self) {
        if let Some((_, bars)) = &self.bars {
            let bars = bars.lock().unwrap_or_else(|poison| poison.into_inner());
            for bar in bars.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }
}
