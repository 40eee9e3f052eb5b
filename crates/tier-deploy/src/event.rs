//! Progress of an engine call as typed events, in the order things happen. The binary draws its
//! spinners and lines from them; a test asserts them.

use tier_kube::{Pruned, RolloutState};
use tier_local::control::RolloutNote;
use tier_model::ServiceName;
use tier_plan::Plan;

/// One step of an apply, rollback or promotion, or of starting a local environment.
#[derive(Clone, Debug)]
pub enum DeployEvent {
    /// The plan that is about to be carried out (apply and promote show it).
    Planned { env: String, plan: Box<Plan> },
    /// The environment's lock is held by this process.
    LockTaken { env: String, command: String },
    /// The revision is recorded as in progress; the runtime starts changing things now.
    RevisionRecorded { env: String, revision: u64 },
    /// No agent ran: one was started on the revision's spec.
    AgentStarted { env: String, pid: u32 },
    /// How far a local environment got, read from its agent: each service's ready replicas.
    Progress {
        env: String,
        phase: Phase,
        services: Vec<ServiceProgress>,
    },
    /// Every service of a freshly started local environment is ready.
    EnvironmentReady { env: String },
    /// What a running local agent did during the rollout (a replica started or ready, a
    /// service failed its gate or rolled back), as it reported at the end.
    Agent { env: String, note: RolloutNote },
    /// The interrupt was seen; the runtime stops at its next safe point and undoes the apply.
    Cancelling { env: String },
    /// Kubernetes: the runtime config store's Deployments are applied and waited for.
    StoreStarted { deployments: Vec<ServiceName> },
    /// Kubernetes: a wave's objects are about to be applied.
    WaveStarted {
        index: usize,
        services: Vec<ServiceName>,
    },
    /// Kubernetes: a Deployment's rollout state, each time it is read.
    Rollout {
        service: ServiceName,
        state: RolloutState,
    },
    /// Kubernetes: an object the project no longer declares was deleted.
    Pruned(Pruned),
    /// A rollout failed and the runtime left it as it was; the engine decides what follows.
    RolloutFailed { env: String, reason: String },
    /// The engine applies the revision that was deployed before again.
    Restoring { env: String, revision: u64 },
    /// A kubernetes environment's revisions were moved from its old state file into its
    /// cluster (`to` names the namespace and the server), once.
    StateMoved {
        env: String,
        revisions: usize,
        from: String,
        to: String,
    },
    /// A local environment had nothing to apply but drift an apply puts back (a stored
    /// program or a config file changed on disk): what was put back, in words.
    Repaired { env: String, what: Vec<String> },
    /// Something went wrong that does not change the result (an agent that would not stop).
    Warning { message: String },
}

/// Whether a local environment is starting from nothing or rolling to a new spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Applying,
}

/// One service in a [`DeployEvent::Progress`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceProgress {
    pub name: String,
    pub ready: u32,
    pub desired: u32,
    /// Not started yet: waiting for the services it depends on.
    pub waiting: bool,
}

/// Where events go: called on the thread that runs the engine call, in order.
pub type EventSink<'a> = &'a (dyn Fn(DeployEvent) + Sync);

/// A sink that drops every event.
pub fn ignore_events(_: DeployEvent) {}
