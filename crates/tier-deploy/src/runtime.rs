//! What the engine asks of a runtime, and how a rollout can end. The policy for a failed
//! rollout (restore the revision deployed before, or keep what succeeded with
//! `on_failure = "halt"`) is the engine's, in one place (`engine::settle`); a runtime that
//! undoes a failure itself (the local agent rolls back the services it changed) says so.

use tier_state::Revision;

use crate::Interrupt;
use crate::artifacts::Desired;
use crate::event::EventSink;

/// A place environments run: the local agents or a Kubernetes cluster. Everything that can
/// refuse (a kube context guard, a connection) happens when the runtime is made, before the
/// revision is recorded.
pub trait Runtime {
    /// Carries `desired` out and waits until it runs, or fails.
    fn roll_out(&mut self, desired: &Desired, events: EventSink, interrupt: &Interrupt) -> Rollout;

    /// Runs an earlier revision again, after [`Rollout::Failed`] left things as they were.
    fn restore(
        &mut self,
        earlier: &Revision,
        events: EventSink,
        interrupt: &Interrupt,
    ) -> Result<(), String>;
}

/// How a rollout ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    Succeeded,
    /// Failed and left as it was: the engine restores the revision deployed before.
    Failed(RolloutFailure),
    /// Failed, and the runtime already put the services it changed back.
    RolledBack(RolloutFailure),
    /// Failed, and the runtime kept what succeeded (`on_failure = "halt"`).
    Halted(RolloutFailure),
    /// Stopped before there was anything to undo or keep (an agent that never got ready): the
    /// revision failed, for this reason.
    Aborted(String),
}

/// Why a rollout failed, and at which service when one is to blame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", match service { Some(service) => format!("service {service}: "), None => String::new() })]
pub struct RolloutFailure {
    pub service: Option<String>,
    pub reason: String,
}

impl RolloutFailure {
    pub fn of_service(service: String, reason: String) -> RolloutFailure {
        RolloutFailure {
            service: Some(service),
            reason,
        }
    }
}
