//! An environment's rendered objects carried to a cluster: the Namespace, then the objects
//! of no service (the runtime config store's, waited for like a wave of their own), then
//! services wave by wave in dependency order (each wave applied, then every Deployment in it
//! waited for), then the pruning of what the project no longer declares.

use std::time::Duration;

use futures_util::future::join_all;
use tier_model::{Environment, ServiceName};

use crate::cluster::{Cluster, Pruned};
use crate::object::Object;
use crate::render::NAME_LABEL;
use crate::rollout::{RolloutState, rollout_state};

/// How the wait for rollouts behaves.
#[derive(Clone, Copy, Debug)]
pub struct DeployConfig {
    /// How often each Deployment's status is read while it rolls out.
    pub poll: Duration,
    /// How long past a service's `rollout.deadline` (its `progressDeadlineSeconds`) tier
    /// keeps waiting for the controller to report anything, before it calls the rollout
    /// failed itself.
    pub grace: Duration,
    /// How long the environment's lock (a Lease) outlives its holder's last renewal; the
    /// holder renews it every third of this while it runs.
    pub lease: Duration,
}

impl Default for DeployConfig {
    fn default() -> DeployConfig {
        DeployConfig {
            poll: Duration::from_millis(500),
            grace: Duration::from_secs(30),
            lease: Duration::from_secs(30),
        }
    }
}

/// What happens during a deploy, for a progress display.
#[derive(Clone, Debug)]
pub enum Event {
    /// The objects that belong to no service (the runtime config store's) are about to be
    /// applied; these are their Deployments, waited for before the first wave.
    Shared { deployments: Vec<ServiceName> },
    /// A wave's objects are about to be applied.
    Wave {
        index: usize,
        services: Vec<ServiceName>,
    },
    /// A Deployment's rollout state, each time it is read: a service's, or one of
    /// [`Event::Shared`]'s.
    Rollout {
        service: ServiceName,
        state: RolloutState,
    },
    /// An object the project no longer declares was deleted.
    Pruned(Pruned),
}

/// Why a deploy stopped, and at which service when one is to blame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", match service { Some(service) => format!("service {service}: "), None => String::new() })]
pub struct DeployFailure {
    pub service: Option<ServiceName>,
    pub reason: String,
}

/// Applies `objects` (rendered from `environment`) with server-side apply: the Namespace, then
/// the objects of no service (the runtime config store's) with their Deployments' rollouts
/// waited for, then the services wave by wave, each wave's rollouts waited for; when all
/// rolled out, prunes what the environment no longer declares. Stops at the first wave with a failed rollout and leaves
/// the cluster as it is then: undoing is the caller's choice.
pub async fn deploy(
    cluster: &Cluster,
    environment: &Environment,
    objects: &[Object],
    config: DeployConfig,
    report: &(dyn Fn(Event) + Sync),
) -> Result<Vec<Pruned>, DeployFailure> {
    let general = |error: crate::ClusterError| DeployFailure {
        service: None,
        reason: error.to_string(),
    };
    for object in objects {
        if matches!(object, Object::Namespace(_)) {
            cluster.apply(object).await.map_err(general)?;
        }
    }
    deploy_shared(cluster, environment, objects, config, report).await?;
    let waves = environment.rollout_waves();
    for (index, wave) in waves
        .iter()
        .map(|wave| wave.iter().map(|name| (*name).clone()))
        .enumerate()
    {
        let wave: Vec<ServiceName> = wave.collect();
        report(Event::Wave {
            index,
            services: wave.clone(),
        });
        for service in &wave {
            for object in objects.iter().filter(|object| of_service(object, service)) {
                cluster.apply(object).await.map_err(|error| DeployFailure {
                    service: Some(service.clone()),
                    reason: error.to_string(),
                })?;
            }
        }
        let waits = wave.iter().filter_map(|service| {
            let deployment = objects.iter().find(|object| {
                matches!(object, Object::Deployment(_)) && of_service(object, service)
            })?;
            let namespace = deployment.namespace().unwrap_or_default().to_owned();
            let deadline = environment
                .services
                .get(service)
                .map(|spec| Duration::from_millis(spec.rollout.deadline.as_millis()))
                .unwrap_or_default();
            Some(wait_for_rollout(
                cluster,
                namespace,
                service,
                deadline + config.grace,
                config.poll,
                report,
            ))
        });
        let failures: Vec<DeployFailure> = join_all(waits)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if let Some(failure) = failures.into_iter().next() {
            return Err(failure);
        }
    }
    let pruned = cluster.prune(environment, objects).await.map_err(general)?;
    for object in &pruned {
        report(Event::Pruned(object.clone()));
    }
    Ok(pruned)
}

/// Applies the objects that belong to no service of the environment (the runtime config
/// store's) and waits for their Deployments, each bounded by its `progressDeadlineSeconds`
/// plus the grace period. A failure names the Deployment, not a service.
async fn deploy_shared(
    cluster: &Cluster,
    environment: &Environment,
    objects: &[Object],
    config: DeployConfig,
    report: &(dyn Fn(Event) + Sync),
) -> Result<(), DeployFailure> {
    let shared: Vec<&Object> = objects
        .iter()
        .filter(|object| {
            !matches!(object, Object::Namespace(_))
                && !environment
                    .services
                    .keys()
                    .any(|service| of_service(object, service))
        })
        .collect();
    if shared.is_empty() {
        return Ok(());
    }
    let deployments: Vec<(ServiceName, String, Duration)> = shared
        .iter()
        .filter_map(|object| {
            let Object::Deployment(deployment) = object else {
                return None;
            };
            let name = ServiceName::new(object.name()).ok()?;
            let deadline = deployment
                .spec
                .as_ref()
                .and_then(|spec| spec.progress_deadline_seconds)
                .and_then(|seconds| u64::try_from(seconds).ok())
                // Kubernetes' own default.
                .unwrap_or(600);
            let namespace = object.namespace().unwrap_or_default().to_owned();
            Some((name, namespace, Duration::from_secs(deadline)))
        })
        .collect();
    report(Event::Shared {
        deployments: deployments.iter().map(|(name, ..)| name.clone()).collect(),
    });
    for object in &shared {
        cluster.apply(object).await.map_err(|error| DeployFailure {
            service: None,
            reason: error.to_string(),
        })?;
    }
    let waits = deployments
        .iter()
        .map(|(name, namespace, deadline)| async move {
            wait_for_rollout(
                cluster,
                namespace.clone(),
                name,
                *deadline + config.grace,
                config.poll,
                report,
            )
            .await
            .map_err(|failure| DeployFailure {
                service: None,
                reason: format!("Deployment {namespace}/{name}: {}", failure.reason),
            })
        });
    join_all(waits)
        .await
        .into_iter()
        .find_map(Result::err)
        .map_or(Ok(()), Err)
}

/// Reads the service's Deployment every `poll` until its rollout is done or failed, for at
/// most `limit`. Three API errors in a row end the wait.
async fn wait_for_rollout(
    cluster: &Cluster,
    namespace: String,
    service: &ServiceName,
    limit: Duration,
    poll: Duration,
    report: &(dyn Fn(Event) + Sync),
) -> Result<(), DeployFailure> {
    let failure = |reason: String| DeployFailure {
        service: Some(service.clone()),
        reason,
    };
    let started = tokio::time::Instant::now();
    let mut errors = 0;
    let mut last: String;
    loop {
        match cluster.deployment(&namespace, service.as_str()).await {
            Ok(Some(deployment)) => {
                errors = 0;
                let state = rollout_state(&deployment);
                report(Event::Rollout {
                    service: service.clone(),
                    state: state.clone(),
                });
                match state {
                    RolloutState::Done { .. } => return Ok(()),
                    RolloutState::Failed { reason, .. } => {
                        return Err(failure(format!("rollout failed: {reason}")));
                    }
                    RolloutState::Waiting { reason, .. } => last = reason,
                }
            }
            Ok(None) => {
                return Err(failure(format!(
                    "Deployment {namespace}/{service} disappeared during its rollout"
                )));
            }
            Err(error) => {
                errors += 1;
                if errors >= 3 {
                    return Err(failure(error.to_string()));
                }
                last = error.to_string();
            }
        }
        if started.elapsed() >= limit {
            return Err(failure(format!(
                "not rolled out within {}s (its rollout.deadline plus a grace period): {last}",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(poll).await;
    }
}

/// Whether tier rendered the object for this service (its `app.kubernetes.io/name` label).
fn of_service(object: &Object, service: &ServiceName) -> bool {
    object.label(NAME_LABEL) == Some(service.as_str())
}
