//! The kubernetes runtime as the engine drives it: render a revision's objects with its images,
//! connect after the kube context guard (both before the revision is recorded), carry the
//! objects to the cluster with tier-kube, and read live Deployments for a status. With
//! `[store] kubernetes = true` the cluster also gets the environment's store tokens
//! (`.tier/<env>/tokens.json`, made on the first apply), over the API only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tier_kube::{
    Cluster, ClusterError, DeployConfig, DeployFailure, Event, Object, RenderOptions, RolloutState,
    StoreTokens,
};
use tier_model::Environment;
use tier_model::environment::Artifact;
use tier_state::Revision;
use tier_state::paths::EnvDir;

use crate::artifacts::{Desired, environment_of};
use crate::event::{DeployEvent, EventSink};
use crate::runtime::{Rollout, RolloutFailure, Runtime};
use crate::{DeployError, Interrupt};

type SecretsByName = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// A connection to one environment's cluster, made after the guard passed, and the objects to
/// apply.
pub struct KubeRuntime {
    runtime: tokio::runtime::Runtime,
    cluster: Cluster,
    objects: Vec<Object>,
    /// The secret values, by service and name, that the Secrets carry (sent only over the
    /// API); a restore of the previous revision uses them too, since old values are not kept.
    secret_values: SecretsByName,
    /// The project's root, where `.tier/<env>/tokens.json` is.
    root: PathBuf,
    config: DeployConfig,
}

impl KubeRuntime {
    /// Everything that can refuse before a revision is recorded: rendering the objects, reading
    /// the kubeconfig, the context guard and connecting.
    pub fn connect(
        root: &Path,
        desired: &Desired,
        config: DeployConfig,
    ) -> Result<KubeRuntime, DeployError> {
        let environment = &desired.environment;
        let env = environment.name.as_str();
        let secret_values = desired.secrets.by_name();
        let objects =
            render(root, environment, &desired.artifacts, &secret_values).map_err(|why| {
                DeployError::Refused {
                    message: format!("{env}: {why}"),
                    hint: None,
                }
            })?;
        let runtime = current_thread()?;
        let cluster = runtime
            .block_on(Cluster::connect(environment))
            .map_err(|error| refused(env, &error))?;
        Ok(KubeRuntime {
            runtime,
            cluster,
            objects,
            secret_values,
            root: root.to_owned(),
            config,
        })
    }
}

impl Runtime for KubeRuntime {
    fn roll_out(&mut self, desired: &Desired, events: EventSink, interrupt: &Interrupt) -> Rollout {
        let deployed = deploy(
            &self.cluster,
            &desired.environment,
            &self.objects,
            self.config,
            events,
            interrupt,
        );
        match self.runtime.block_on(deployed) {
            Ok(()) => Rollout::Succeeded,
            Err(failure) => Rollout::Failed(RolloutFailure {
                service: failure.service.map(|service| service.to_string()),
                reason: failure.reason,
            }),
        }
    }

    fn restore(
        &mut self,
        earlier: &Revision,
        events: EventSink,
        interrupt: &Interrupt,
    ) -> Result<(), String> {
        let environment = environment_of(earlier)?;
        let objects = render(
            &self.root,
            &environment,
            &earlier.artifacts,
            &self.secret_values,
        )?;
        let deployed = deploy(
            &self.cluster,
            &environment,
            &objects,
            self.config,
            events,
            interrupt,
        );
        self.runtime
            .block_on(deployed)
            .map_err(|error| error.to_string())
    }
}

/// A tokio runtime on the calling thread: the kube client awaits one thing at a time.
fn current_thread() -> Result<tokio::runtime::Runtime, DeployError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| DeployError::Refused {
            message: format!("cannot start the runtime: {error}"),
            hint: None,
        })
}

/// A cluster error as a refusal, with its hint.
pub(crate) fn refused(env: &str, error: &ClusterError) -> DeployError {
    let message = match error {
        // These name the environment already.
        ClusterError::WrongContext { .. } | ClusterError::NotKubernetes { .. } => error.to_string(),
        _ => format!("{env}: {error}"),
    };
    DeployError::Refused {
        message,
        hint: error.hint(),
    }
}

/// Deploys, reporting each step. An interrupt stops waiting and counts as a failure, so the
/// engine restores.
async fn deploy(
    cluster: &Cluster,
    environment: &Environment,
    objects: &[Object],
    config: DeployConfig,
    events: EventSink<'_>,
    interrupt: &Interrupt,
) -> Result<(), DeployFailure> {
    let report = |event: Event| {
        events(match event {
            Event::Shared { deployments } => DeployEvent::StoreStarted { deployments },
            Event::Wave { index, services } => DeployEvent::WaveStarted { index, services },
            Event::Rollout { service, state } => DeployEvent::Rollout { service, state },
            Event::Pruned(pruned) => DeployEvent::Pruned(pruned),
        });
    };
    let deployed = tier_kube::deploy(cluster, environment, objects, config, &report);
    let seen = interrupt.count();
    tokio::select! {
        result = deployed => result.map(drop),
        () = interrupt.after(seen) => Err(DeployFailure {
            service: None,
            reason: "interrupted (Ctrl-C)".to_owned(),
        }),
    }
}

/// The objects `tier render --format k8s` prints: what `tier apply` sends, less the stored
/// artifacts' images, and with the Secrets' values and the store's tokens (made now when
/// `tier apply` has not run yet) only when `include_secrets` asks for them.
pub fn manifests(
    root: &Path,
    resolved: &tier_model::Resolved,
    include_secrets: bool,
) -> Result<Vec<Object>, DeployError> {
    let mut environment = resolved.environment.clone();
    let mut options = RenderOptions::default();
    if include_secrets {
        let (fingerprinted, values) = crate::secrets::attach_resolved(root, resolved)?;
        environment = fingerprinted;
        options.secret_values = Some(values.by_name());
        options.store_tokens =
            store_tokens(root, &environment).map_err(|why| DeployError::Refused {
                message: format!("{}: {why}", environment.name),
                hint: None,
            })?;
    }
    tier_kube::render(&environment, &options).map_err(|problems| DeployError::Unrenderable {
        problems: problems.iter().map(ToString::to_string).collect(),
    })
}

/// For a `patches` path that `tier explain` shows, what each of its patches changes in the
/// rendered objects; `None` for any other path, or when the environment does not render.
pub fn patch_effects(
    resolved: &tier_model::Resolved,
    explanation: &tier_model::Explanation,
) -> Option<Vec<tier_kube::PatchEffect>> {
    if explanation.path != "patches" && !explanation.path.ends_with(".patches") {
        return None;
    }
    let declared: Vec<&str> = explanation
        .value
        .as_array()?
        .iter()
        .filter_map(|patch| patch["declared_at"].as_str())
        .collect();
    let rendered =
        tier_kube::render_with_patches(&resolved.environment, &RenderOptions::default()).ok()?;
    let effects = rendered.patches.into_iter();
    Some(
        effects
            .filter(|effect| declared.contains(&effect.declared_at.as_str()))
            .collect(),
    )
}

/// The environment's store tokens for the store's Secret: `.tier/<env>/tokens.json`, made
/// (mode 0600) when missing, so `tier config <env> --store URL` works with its read-write
/// token. `None` without `[store] kubernetes = true`.
pub fn store_tokens(root: &Path, environment: &Environment) -> Result<Option<StoreTokens>, String> {
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
pub(crate) fn render(
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

/// A kubernetes environment's services as the API server reports them now.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KubeStatus {
    pub context: String,
    pub namespace: String,
    /// Whether any of the environment's Deployments exists.
    #[serde(skip)]
    pub running: bool,
    pub services: Vec<LiveService>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct LiveService {
    pub name: String,
    pub image: Option<String>,
    pub desired: u32,
    pub ready: u32,
    pub updated: u32,
    pub available: u32,
    pub state: LiveState,
    pub reason: Option<String>,
    /// What differs from the deployed revision, in a few words each; `None` when it was not
    /// checked or could not be (see [`status_with_drift`]).
    pub drift: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum LiveState {
    #[serde(rename = "running")]
    Running,
    #[serde(rename = "not ready")]
    NotReady,
    #[serde(rename = "failed")]
    Failed,
    #[serde(rename = "missing")]
    Missing,
}

impl LiveState {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveState::Running => "running",
            LiveState::NotReady => "not ready",
            LiveState::Failed => "failed",
            LiveState::Missing => "missing",
        }
    }
}

/// [`status`], with each service's drift from the deployed revision (left `None` when the
/// check fails: the status still answers).
pub fn status_with_drift(
    workspace: &mut crate::Workspace,
    environment: &Environment,
) -> Result<KubeStatus, DeployError> {
    let mut status = status(environment)?;
    if let Ok(report) = crate::drift::check(workspace, environment.name.as_str()) {
        let mut drift = report.by_service();
        for service in &mut status.services {
            service.drift = Some(drift.remove(&service.name).unwrap_or_default());
        }
    }
    Ok(status)
}

/// Reads each service's Deployment (after the kube context guard).
pub fn status(environment: &Environment) -> Result<KubeStatus, DeployError> {
    let env = environment.name.as_str();
    let runtime = current_thread()?;
    let namespace = tier_kube::namespace_of(environment);
    let context = environment
        .kube
        .as_ref()
        .map(|kube| kube.context.clone())
        .unwrap_or_default();
    let deployments = runtime
        .block_on(async {
            let cluster = Cluster::connect(environment).await?;
            cluster.deployments(environment, &namespace).await
        })
        .map_err(|error| refused(env, &error))?;
    let services = environment
        .services
        .keys()
        .map(|name| match deployments.get(name.as_str()) {
            None => LiveService {
                name: name.to_string(),
                image: None,
                desired: 0,
                ready: 0,
                updated: 0,
                available: 0,
                state: LiveState::Missing,
                reason: Some("no Deployment".to_owned()),
                drift: None,
            },
            Some(deployment) => {
                let state = tier_kube::rollout_state(deployment);
                let counts = state.counts();
                let (state, reason) = match &state {
                    RolloutState::Done { .. } => (LiveState::Running, None),
                    RolloutState::Waiting { reason, .. } => {
                        (LiveState::NotReady, Some(reason.clone()))
                    }
                    RolloutState::Failed { reason, .. } => {
                        (LiveState::Failed, Some(reason.clone()))
                    }
                };
                let image = deployment
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.template.spec.as_ref())
                    .and_then(|pod| pod.containers.first())
                    .and_then(|container| container.image.clone());
                LiveService {
                    name: name.to_string(),
                    image,
                    desired: counts.desired,
                    ready: counts.ready,
                    updated: counts.updated,
                    available: counts.available,
                    state,
                    reason,
                    drift: None,
                }
            }
        })
        .collect();
    Ok(KubeStatus {
        context,
        namespace,
        running: !deployments.is_empty(),
        services,
    })
}

/// The pods of a kubernetes environment (one service's, or all), for `tier logs`: connected
/// after the kube context guard.
pub struct KubeLogs {
    runtime: tokio::runtime::Runtime,
    cluster: Cluster,
    namespace: String,
    pub pods: Vec<String>,
}

impl KubeLogs {
    pub fn open(environment: &Environment, service: Option<&str>) -> Result<KubeLogs, DeployError> {
        let env = environment.name.as_str();
        let runtime = current_thread()?;
        let namespace = tier_kube::namespace_of(environment);
        let (cluster, pods) = runtime
            .block_on(async {
                let cluster = Cluster::connect(environment).await?;
                let pods = cluster.pods(environment, &namespace, service).await?;
                Ok::<_, ClusterError>((cluster, pods))
            })
            .map_err(|error| refused(env, &error))?;
        Ok(KubeLogs {
            runtime,
            cluster,
            namespace,
            pods,
        })
    }

    /// What the pods logged so far, merged by time.
    pub fn lines(&self) -> Result<Vec<tier_kube::PodLine>, String> {
        self.runtime
            .block_on(self.cluster.log_lines(&self.namespace, &self.pods))
            .map_err(|error| error.to_string())
    }

    /// New lines as they come, until every pod's stream ends.
    pub fn follow(&self, line: &(dyn Fn(tier_kube::PodLine) + Sync)) -> Result<(), String> {
        self.runtime
            .block_on(self.cluster.follow_logs(&self.namespace, &self.pods, line))
            .map_err(|error| error.to_string())
    }
}
