//! tier's engine: plan, apply, rollback, promote, unlock, history and status of one
//! environment as library calls, between the command line and the runtimes.
//!
//! A [`Workspace`] is a project root and its loaded project. Each call returns a typed result
//! or a [`DeployError`] (with a [`DeployError::hint`]), asks a [`Confirm`] before it changes a
//! protected environment, and reports its progress as [`DeployEvent`]s through a sink, so the
//! binary draws spinners from the same events a test asserts. Nothing here prints, prompts or
//! exits the process.
//!
//! An apply fixes each service's artifact, takes the environment's lock, records the revision
//! with its bill of materials, carries it out on a [`Runtime`] (the local agents through
//! [`local::LocalRuntime`], a cluster through [`kube::KubeRuntime`]) and records how it ended;
//! when a rollout fails, the engine's one policy restores the revision deployed before.

pub mod artifacts;
pub mod bom;
pub mod deps;
pub mod drift;
mod engine;
mod error;
pub mod event;
pub mod kube;
pub mod local;
mod records;
pub mod runtime;
pub mod secrets;
mod state;
pub mod store;

use std::path::{Path, PathBuf};

use tier_model::problem::merge_duplicates;
use tier_model::{Environment, LoadError, Project, Resolved, Set};

pub use artifacts::Desired;
pub use bom::BillOfMaterials;
pub use drift::{DriftReport, Found, drift};
pub use engine::{Applied, Target, apply, plan, promote, rollback};
pub use error::DeployError;
pub use event::{DeployEvent, EventSink, Phase, ServiceProgress, ignore_events};
pub use local::AgentProgram;
pub use records::{Unlocked, history, unlock};
pub use runtime::{Rollout, RolloutFailure, Runtime};
pub use state::{records, records_of};
pub use tier_kube::DeployConfig;

/// A project root and its loaded project: what every call works in.
pub struct Workspace {
    root: PathBuf,
    project: Project,
}

impl Workspace {
    /// Loads the project in `dir`. Its root is `dir` made absolute, where `.tier/` lives.
    pub fn load(dir: &Path) -> Result<Workspace, LoadError> {
        let project = Project::load(dir)?;
        let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        Ok(Workspace { root, project })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn project(&self) -> &Project {
        &self.project
    }

    /// Resolves one environment with `--set` values, every problem of the project and the
    /// environment reported at once.
    pub fn resolve(&mut self, env: &str, sets: &[Set]) -> Result<Resolved, DeployError> {
        self.known(env)?;
        let mut problems = self.project.problems.clone();
        match self.project.resolve(env, sets) {
            Ok(resolved) if problems.is_empty() => return Ok(resolved),
            Ok(_) => {}
            Err(found) => problems.extend(found),
        }
        Err(DeployError::Invalid {
            problems: merge_duplicates(problems, 1),
        })
    }

    /// Refuses a name the project does not declare.
    pub fn known(&self, env: &str) -> Result<(), DeployError> {
        match self.project.environment(env) {
            Some(_) => Ok(()),
            None => Err(DeployError::UnknownEnvironment {
                message: self.project.unknown_environment(env),
            }),
        }
    }
}

/// Whether a protected environment may change: the user named it (`--confirm <env>`), or a
/// prompt (the binary's, at a terminal) says yes.
#[derive(Default)]
pub struct Confirm<'a> {
    named: Option<String>,
    ask: Option<Ask<'a>>,
}

/// A prompt: `ask(env, action)` answers whether the user agreed.
pub type Ask<'a> = &'a (dyn Fn(&str, &str) -> bool + Sync);

impl<'a> Confirm<'a> {
    /// Confirms the environment named here, and no other.
    pub fn named(env: Option<&str>) -> Confirm<'a> {
        Confirm {
            named: env.map(str::to_owned),
            ask: None,
        }
    }

    /// Asks `ask(env, action)` when the environment was not named ("apply to", "roll back",
    /// "promote to").
    pub fn or_ask(self, ask: Ask<'a>) -> Confirm<'a> {
        Confirm {
            ask: Some(ask),
            ..self
        }
    }

    /// Refuses to change a protected environment that was not confirmed.
    pub fn check(&self, environment: &Environment, action: &str) -> Result<(), DeployError> {
        if !environment.protected {
            return Ok(());
        }
        let env = environment.name.as_str();
        if self.named.as_deref() == Some(env) || self.ask.is_some_and(|ask| ask(env, action)) {
            return Ok(());
        }
        Err(DeployError::Protected {
            env: env.to_owned(),
            action: action.to_owned(),
            named: self.named.clone(),
        })
    }
}

/// A request to stop a running rollout at its next safe point and undo it (Ctrl-C in the
/// binary). Counted, so a restore after an interrupted rollout waits for another one.
#[derive(Clone, Debug)]
pub struct Interrupt {
    count: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Interrupt {
    fn default() -> Interrupt {
        Interrupt {
            count: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
        }
    }
}

impl Interrupt {
    pub fn interrupt(&self) {
        self.count.send_modify(|count| *count += 1);
    }

    /// How many interrupts came so far.
    pub fn count(&self) -> u64 {
        *self.count.borrow()
    }

    /// Resolves once more than `seen` interrupts came.
    pub async fn after(&self, seen: u64) {
        let mut receiver = self.count.subscribe();
        let _ = receiver.wait_for(|count| *count > seen).await;
    }
}

/// How one changing call runs: who confirms, where events go, what interrupts it, which
/// program runs a local agent, and how long kubernetes rollouts are waited for.
pub struct Session<'a> {
    pub confirm: Confirm<'a>,
    pub events: EventSink<'a>,
    pub interrupt: Interrupt,
    pub agent: AgentProgram,
    pub kube: DeployConfig,
}

impl<'a> Session<'a> {
    pub fn new(events: EventSink<'a>) -> Session<'a> {
        Session {
            confirm: Confirm::default(),
            events,
            interrupt: Interrupt::default(),
            agent: AgentProgram::default(),
            kube: DeployConfig::default(),
        }
    }
}
