//! A Deployment's rollout, read from its status as `kubectl rollout status` reads it.

use k8s_openapi::api::apps::v1::Deployment;

/// Where a Deployment's rollout stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutState {
    /// Still going: why, and the counts so far.
    Waiting { reason: String, counts: Counts },
    /// Every replica runs the current template and is available.
    Done { counts: Counts },
    /// The controller gave up (its Progressing condition says `ProgressDeadlineExceeded`).
    Failed { reason: String, counts: Counts },
}

impl RolloutState {
    pub fn counts(&self) -> Counts {
        match self {
            RolloutState::Waiting { counts, .. }
            | RolloutState::Done { counts }
            | RolloutState::Failed { counts, .. } => *counts,
        }
    }
}

/// A Deployment's replica counts: desired (`spec.replicas`) and what its status reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub desired: u32,
    pub updated: u32,
    pub ready: u32,
    pub available: u32,
}

/// The rollout state of a Deployment as the API server returned it. The rules are
/// `kubectl rollout status`'s: the controller must have observed the current generation;
/// `ProgressDeadlineExceeded` is a failure; then every desired replica must be updated, old
/// replicas gone, and every updated replica available.
pub fn rollout_state(deployment: &Deployment) -> RolloutState {
    let counts = counts(deployment);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let Some(status) = &deployment.status else {
        return RolloutState::Waiting {
            reason: "waiting for the deployment controller".to_owned(),
            counts,
        };
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return RolloutState::Waiting {
            reason: "waiting for the new spec to be observed".to_owned(),
            counts,
        };
    }
    let deadline_exceeded = status
        .conditions
        .iter()
        .flatten()
        .find(|condition| condition.type_ == "Progressing")
        .filter(|condition| condition.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    if let Some(condition) = deadline_exceeded {
        let detail = condition.message.as_deref().unwrap_or("no progress");
        return RolloutState::Failed {
            reason: format!("progress deadline exceeded: {detail}"),
            counts,
        };
    }
    let replicas = clamp(status.replicas);
    if counts.updated < counts.desired {
        return RolloutState::Waiting {
            reason: format!("{} of {} replicas updated", counts.updated, counts.desired),
            counts,
        };
    }
    if replicas > counts.updated {
        return RolloutState::Waiting {
            reason: format!(
                "{} old replicas pending termination",
                replicas - counts.updated
            ),
            counts,
        };
    }
    if counts.available < counts.updated {
        return RolloutState::Waiting {
            reason: format!(
                "{} of {} updated replicas available",
                counts.available, counts.updated
            ),
            counts,
        };
    }
    RolloutState::Done { counts }
}

/// The desired count and the status counts; absent counts are zero.
pub fn counts(deployment: &Deployment) -> Counts {
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.replicas)
        .map_or(1, |replicas| clamp(Some(replicas)));
    let status = deployment.status.as_ref();
    Counts {
        desired,
        updated: clamp(status.and_then(|status| status.updated_replicas)),
        ready: clamp(status.and_then(|status| status.ready_replicas)),
        available: clamp(status.and_then(|status| status.available_replicas)),
    }
}

fn clamp(count: Option<i32>) -> u32 {
    count
        .and_then(|count| u32::try_from(count).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn deployment(generation: i64, status: Option<DeploymentStatus>) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(3),
                ..DeploymentSpec::default()
            }),
            status,
        }
    }

    fn status(observed: i64, replicas: i32, updated: i32, available: i32) -> DeploymentStatus {
        DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            ready_replicas: Some(available),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        }
    }

    fn reason(state: RolloutState) -> String {
        match state {
            RolloutState::Waiting { reason, .. } | RolloutState::Failed { reason, .. } => reason,
            RolloutState::Done { .. } => "done".to_owned(),
        }
    }

    #[test]
    fn a_rollout_waits_for_each_step_in_kubectls_order() {
        assert_eq!(
            reason(rollout_state(&deployment(2, None))),
            "waiting for the deployment controller"
        );
        assert_eq!(
            reason(rollout_state(&deployment(2, Some(status(1, 3, 3, 3))))),
            "waiting for the new spec to be observed"
        );
        assert_eq!(
            reason(rollout_state(&deployment(2, Some(status(2, 4, 1, 1))))),
            "1 of 3 replicas updated"
        );
        assert_eq!(
            reason(rollout_state(&deployment(2, Some(status(2, 4, 3, 3))))),
            "1 old replicas pending termination"
        );
        assert_eq!(
            reason(rollout_state(&deployment(2, Some(status(2, 3, 3, 2))))),
            "2 of 3 updated replicas available"
        );
        assert_eq!(
            rollout_state(&deployment(2, Some(status(2, 3, 3, 3)))),
            RolloutState::Done {
                counts: Counts {
                    desired: 3,
                    updated: 3,
                    ready: 3,
                    available: 3
                }
            }
        );
    }

    #[test]
    fn progress_deadline_exceeded_is_a_failure() {
        let mut stuck = status(2, 4, 1, 0);
        stuck.conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".to_owned(),
            status: "False".to_owned(),
            reason: Some("ProgressDeadlineExceeded".to_owned()),
            message: Some("ReplicaSet \"backend-7d\" has timed out progressing.".to_owned()),
            ..DeploymentCondition::default()
        }]);
        assert_eq!(
            reason(rollout_state(&deployment(2, Some(stuck)))),
            "progress deadline exceeded: ReplicaSet \"backend-7d\" has timed out progressing."
        );
    }
}
