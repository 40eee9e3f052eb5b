//! Plan, apply, rollback and promote: the path from a resolved environment (or a saved plan,
//! or a recorded revision) through the lock and the revision record to a runtime, and the one
//! policy for a rollout that fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tier_model::environment::{OnFailure, Runtime as RuntimeKind};
use tier_model::{Purpose, Set};
use tier_plan::{Deployed, Plan};
use tier_state::{HeldLock, Holder, NewRevision, Origin, Outcome, Records, Revision, StateError};

use crate::artifacts::{Desired, desired_from_revision, fix_artifacts, stored_programs};
use crate::bom::BillOfMaterials;
use crate::event::DeployEvent;
use crate::kube::KubeRuntime;
use crate::local::LocalRuntime;
use crate::runtime::{Rollout, Runtime};
use crate::{DeployConfig, DeployError, Session, Workspace, secrets};

/// What `apply` carries out: an environment resolved now, or a plan saved by `tier plan --out`.
#[derive(Clone, Debug)]
pub enum Target {
    Environment { name: String, sets: Vec<Set> },
    SavedPlan(PathBuf),
}

/// How a changing call ended when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The revision is deployed.
    Deployed { env: String, revision: u64 },
    /// The plan was empty and the environment runs: nothing was recorded.
    Unchanged { env: String },
}

/// Desired against deployed, for `tier plan`.
pub fn plan(workspace: &mut Workspace, env: &str, sets: &[Set]) -> Result<Plan, DeployError> {
    let (environment, secrets) = deployable(workspace, env, sets)?;
    let root = workspace.root();
    let desired = fix_artifacts(root, environment, secrets)?;
    if desired.environment.runtime != RuntimeKind::Kubernetes {
        let records = crate::state::open(root, &desired.environment, DeployConfig::default())?;
        return make_plan(records.as_ref(), env, &desired);
    }
    // A kubernetes environment's plan also says what changed outside tier since its revision.
    let records =
        tier_kube::ClusterRecords::connect(&desired.environment, DeployConfig::default().lease)
            .map_err(|error| crate::kube::refused(env, &error))?;
    let mut plan = make_plan(&records, env, &desired)?;
    let (_, found) = crate::drift::live_drift(root, &records, env)?;
    plan.outside = found
        .iter()
        .filter(|drift| drift.expected.is_none())
        .map(tier_kube::Drift::describe)
        .collect();
    Ok(plan)
}

/// Carries out the plan of an environment (or a saved plan) under its lock.
pub fn apply(
    workspace: &mut Workspace,
    target: &Target,
    session: &Session,
) -> Result<Applied, DeployError> {
    let (env, desired, saved, command) = match target {
        Target::SavedPlan(path) => {
            let (env, desired, plan) = from_saved_plan(workspace.root(), path)?;
            (
                env,
                desired,
                Some(plan),
                format!("tier apply {}", path.display()),
            )
        }
        Target::Environment { name, sets } => {
            let (environment, secrets) = deployable(workspace, name, sets)?;
            let desired = fix_artifacts(workspace.root(), environment, secrets)?;
            (name.clone(), desired, None, format!("tier apply {name}"))
        }
    };
    let root = workspace.root();
    session.confirm.check(&desired.environment, "apply to")?;
    let records = crate::state::open(root, &desired.environment, session.kube)?;
    let state = records.as_ref();
    let lock = take_lock(state, &env, &command, session)?;
    let result = (|| {
        crate::state::move_local_state(
            root,
            &desired.environment,
            state,
            lock.as_ref(),
            session.events,
        )?;
        let plan = match saved {
            Some(plan) => {
                let serial = state.serial().unwrap_or(u64::MAX);
                plan.ensure_current(serial)
                    .map_err(|error| DeployError::StalePlan {
                        env: env.clone(),
                        message: error.to_string(),
                    })?;
                plan
            }
            None => make_plan(state, &env, &desired)?,
        };
        let empty = plan.is_empty();
        (session.events)(DeployEvent::Planned {
            env: env.clone(),
            plan: Box::new(plan),
        });
        let running = desired.environment.runtime == RuntimeKind::Local
            && crate::local::is_running(root, &env);
        if empty && running {
            let what = crate::drift::repair_local(root, &env)?;
            if !what.is_empty() {
                (session.events)(DeployEvent::Repaired {
                    env: env.clone(),
                    what,
                });
            }
            return Ok(Applied::Unchanged { env: env.clone() });
        }
        carry_out(
            root,
            &env,
            state,
            lock.as_ref(),
            &desired,
            Origin::Apply,
            session,
        )
    })();
    let _ = lock.release();
    result
}

/// Deploys a recorded revision's environment and artifacts again, with its secrets' values
/// as they are now.
pub fn rollback(
    workspace: &mut Workspace,
    env: &str,
    to: u64,
    session: &Session,
) -> Result<Applied, DeployError> {
    let records = crate::state::records(workspace, env, session.kube)?;
    let state = records.as_ref();
    let root = workspace.root();
    let revision = match state.revision(to) {
        Ok(Some(revision)) if revision.outcome == Outcome::Succeeded => revision,
        Ok(Some(revision)) => {
            return Err(DeployError::NotDeployable {
                env: env.to_owned(),
                revision: to,
                outcome: revision.outcome,
            });
        }
        Ok(None) => {
            return Err(DeployError::NoRevision {
                env: env.to_owned(),
                revision: to,
            });
        }
        Err(error) => return Err(DeployError::state(env, error)),
    };
    let mut desired = desired_from_revision(root, &revision)
        .map_err(|why| DeployError::Artifacts(format!("{env}: {why}")))?;
    // The earlier revision's references, with the values they have now: a secret's old value
    // was never kept.
    desired.secrets = secrets::attach(root, &mut desired.environment)?;
    session.confirm.check(&desired.environment, "roll back")?;
    let lock = take_lock(
        state,
        env,
        &format!("tier rollback {env} --to {to}"),
        session,
    )?;
    let result = carry_out(
        root,
        env,
        state,
        lock.as_ref(),
        &desired,
        Origin::Rollback { to },
        session,
    );
    let _ = lock.release();
    result
}

/// Deploys to `to` exactly the artifacts that run in `from`, with `to`'s own settings.
pub fn promote(
    workspace: &mut Workspace,
    from: &str,
    to: &str,
    sets: &[Set],
    session: &Session,
) -> Result<Applied, DeployError> {
    let resolved = workspace.resolve(to, sets)?;
    let promote_from = resolved
        .environment
        .promote_from
        .as_ref()
        .map(ToString::to_string);
    if promote_from.as_deref() != Some(from) {
        return Err(DeployError::NotPromotedFrom {
            from: from.to_owned(),
            to: to.to_owned(),
            promote_from,
        });
    }
    let source_records = crate::state::records(workspace, from, session.kube)?;
    let root = workspace.root();
    let source = match source_records.deployed() {
        Ok(Some(revision)) => revision,
        Ok(None) => {
            return Err(DeployError::NothingToPromote {
                from: from.to_owned(),
            });
        }
        Err(error) => return Err(DeployError::state(from, error)),
    };
    // The target's own settings and config, with exactly the artifacts that run in the source.
    let mut artifacts = BTreeMap::new();
    for name in resolved.environment.services.keys() {
        let Some(artifact) = source.artifacts.get(name.as_str()) else {
            return Err(DeployError::NotInSource {
                service: name.to_string(),
                from: from.to_owned(),
                revision: source.number,
            });
        };
        artifacts.insert(name.to_string(), artifact.clone());
    }
    let programs =
        stored_programs(root, &resolved.environment, &artifacts).map_err(DeployError::Artifacts)?;
    let (environment, secrets) = secrets::attach_resolved(root, &resolved)?;
    let desired = Desired {
        environment,
        artifacts,
        programs,
        secrets,
    };
    session.confirm.check(&desired.environment, "promote to")?;
    let records = crate::state::open(root, &desired.environment, session.kube)?;
    let state = records.as_ref();
    let lock = take_lock(state, to, &format!("tier promote {from} {to}"), session)?;
    let result = crate::state::move_local_state(
        root,
        &desired.environment,
        state,
        lock.as_ref(),
        session.events,
    )
    .and_then(|()| make_plan(state, to, &desired))
    .and_then(|plan| {
        (session.events)(DeployEvent::Planned {
            env: to.to_owned(),
            plan: Box::new(plan),
        });
        let origin = Origin::Promote {
            from_environment: from.to_owned(),
            from_revision: source.number,
        };
        carry_out(root, to, state, lock.as_ref(), &desired, origin, session)
    });
    let _ = lock.release();
    result
}

/// Resolves an environment that can be deployed, with the values of its secrets
/// (fingerprinted into it).
fn deployable(
    workspace: &mut Workspace,
    env: &str,
    sets: &[Set],
) -> Result<(tier_model::Environment, tier_local::secrets::SecretValues), DeployError> {
    let resolved = workspace.resolve(env, sets)?;
    resolved.deployable(Purpose::Deploy)?;
    secrets::attach_resolved(workspace.root(), &resolved)
}

/// A saved plan's environment, artifacts and secrets, refused when a secret changed since.
fn from_saved_plan(root: &Path, path: &Path) -> Result<(String, Desired, Plan), DeployError> {
    let plan = std::fs::read_to_string(path)
        .map_err(|error| error.to_string())
        .and_then(|text| Plan::from_json(&text).map_err(|error| error.to_string()))
        .map_err(|why| DeployError::SavedPlan(format!("{}: {why}", path.display())))?;
    let mut environment = plan
        .desired_environment()
        .map_err(|error| DeployError::SavedPlan(format!("{}: {error}", path.display())))?;
    let env = plan.environment.clone();
    let programs = stored_programs(root, &environment, &plan.artifacts)
        .map_err(|why| DeployError::SavedPlan(format!("{env}: {why}")))?;
    let planned = environment.clone();
    let secrets = secrets::attach(root, &mut environment)?;
    for (name, service) in &environment.services {
        let was = planned
            .services
            .get(name)
            .map(|planned| &planned.secret_fingerprints);
        if was != Some(&service.secret_fingerprints) {
            return Err(DeployError::StalePlan {
                env: env.clone(),
                message: format!(
                    "{env}: a secret of service {name} changed since the plan was made"
                ),
            });
        }
    }
    let desired = Desired {
        environment,
        artifacts: plan.artifacts.clone(),
        programs,
        secrets,
    };
    Ok((env, desired, plan))
}

fn make_plan(state: &dyn Records, env: &str, desired: &Desired) -> Result<Plan, DeployError> {
    let current = state
        .deployed()
        .map_err(|error| DeployError::state(env, error))?;
    let serial = state
        .serial()
        .map_err(|error| DeployError::state(env, error))?;
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

/// Takes the environment's lock, or says who holds it.
fn take_lock<'a>(
    state: &'a dyn Records,
    env: &str,
    command: &str,
    session: &Session,
) -> Result<Box<dyn HeldLock + 'a>, DeployError> {
    let holder = Holder::this_process(command, state.now_unix_ms());
    let lock = state.take_lock(holder).map_err(|error| match error {
        StateError::Locked { holder, alive } => DeployError::Locked {
            env: env.to_owned(),
            holder: Box::new(holder),
            alive,
        },
        other => DeployError::state(env, other),
    })?;
    (session.events)(DeployEvent::LockTaken {
        env: env.to_owned(),
        command: command.to_owned(),
    });
    Ok(lock)
}

/// Records, carries out and finishes one revision under the environment's lock.
fn carry_out(
    root: &Path,
    env: &str,
    state: &dyn Records,
    lock: &dyn HeldLock,
    desired: &Desired,
    origin: Origin,
    session: &Session,
) -> Result<Applied, DeployError> {
    // Everything that can refuse (the kube context guard, the connection) comes before the
    // revision is recorded, so a refusal changes nothing.
    let mut runtime: Box<dyn Runtime> = match desired.environment.runtime {
        RuntimeKind::Local => Box::new(LocalRuntime::new(root, env, session.agent.clone())),
        RuntimeKind::Kubernetes => Box::new(KubeRuntime::connect(root, desired, session.kube)?),
    };
    let previous = state
        .deployed()
        .map_err(|error| DeployError::state(env, error))?;
    let spec = serde_json::to_value(&desired.environment)
        .map_err(|error| DeployError::Artifacts(format!("{env}: {error}")))?;
    let bom = BillOfMaterials::scan(root, &desired.environment).to_value();
    let who = tier_state::who();
    let revision = lock
        .begin(NewRevision {
            spec: &spec,
            artifacts: &desired.artifacts,
            who: &who,
            origin: &origin,
            bom: &bom,
        })
        .map_err(|error| DeployError::state(env, error))?;
    (session.events)(DeployEvent::RevisionRecorded {
        env: env.to_owned(),
        revision,
    });
    let rollout = runtime.roll_out(desired, session.events, &session.interrupt);
    let outcome = settle(
        env,
        rollout,
        desired.environment.project.on_failure,
        previous.as_ref(),
        runtime.as_mut(),
        session,
    );
    let succeeded = outcome == Outcome::Succeeded;
    lock.finish(revision, outcome.clone())
        .map_err(|source| DeployError::NotRecorded {
            env: env.to_owned(),
            revision,
            source: Box::new(source),
        })?;
    if succeeded {
        Ok(Applied::Deployed {
            env: env.to_owned(),
            revision,
        })
    } else {
        Err(DeployError::NotDeployed {
            env: env.to_owned(),
            revision,
            outcome,
        })
    }
}

/// The one policy for a rollout's end: a failure the runtime left as it was is undone by
/// running the revision deployed before again, unless `on_failure = "halt"` keeps what
/// succeeded or nothing was deployed before.
fn settle(
    env: &str,
    rollout: Rollout,
    on_failure: OnFailure,
    previous: Option<&Revision>,
    runtime: &mut dyn Runtime,
    session: &Session,
) -> Outcome {
    let halted = |failure: &dyn std::fmt::Display| Outcome::Failed {
        reason: format!("{failure} (on_failure = \"halt\": what succeeded was kept)"),
    };
    let failure = match rollout {
        Rollout::Succeeded => return Outcome::Succeeded,
        Rollout::RolledBack(failure) => {
            return Outcome::RolledBack {
                reason: failure.to_string(),
            };
        }
        Rollout::Halted(failure) => return halted(&failure),
        Rollout::Aborted(reason) => return Outcome::Failed { reason },
        Rollout::Failed(failure) => failure,
    };
    (session.events)(DeployEvent::RolloutFailed {
        env: env.to_owned(),
        reason: failure.to_string(),
    });
    if on_failure == OnFailure::Halt {
        return halted(&failure);
    }
    let Some(previous) = previous else {
        return Outcome::Failed {
            reason: format!(
                "{failure}; nothing was deployed before, so the objects were left as they are"
            ),
        };
    };
    (session.events)(DeployEvent::Restoring {
        env: env.to_owned(),
        revision: previous.number,
    });
    match runtime.restore(previous, session.events, &session.interrupt) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DeployEvent;
    use crate::runtime::RolloutFailure;
    use std::sync::Mutex;

    /// A runtime whose restore answers as told and counts its calls.
    struct Restorer {
        answer: Result<(), String>,
        restored: Vec<u64>,
    }

    impl Runtime for Restorer {
        fn roll_out(&mut self, _: &Desired, _: crate::EventSink, _: &crate::Interrupt) -> Rollout {
            Rollout::Succeeded
        }

        fn restore(
            &mut self,
            earlier: &Revision,
            _: crate::EventSink,
            _: &crate::Interrupt,
        ) -> Result<(), String> {
            self.restored.push(earlier.number);
            self.answer.clone()
        }
    }

    fn revision(number: u64) -> Revision {
        Revision {
            number,
            spec: serde_json::Value::Null,
            artifacts: BTreeMap::new(),
            who: String::new(),
            started_unix_ms: 0,
            finished_unix_ms: None,
            origin: Origin::Apply,
            outcome: Outcome::Succeeded,
            bom: serde_json::Value::Null,
        }
    }

    fn failure() -> RolloutFailure {
        RolloutFailure::of_service("backend".to_owned(), "not ready".to_owned())
    }

    /// Settles one rollout: the outcome, the revisions restored and the events' kinds.
    fn settled(
        rollout: Rollout,
        on_failure: OnFailure,
        previous: Option<u64>,
        answer: Result<(), String>,
    ) -> (Outcome, Vec<u64>, Vec<String>) {
        let events = Mutex::new(Vec::new());
        let record = |event: DeployEvent| {
            let kind = match event {
                DeployEvent::RolloutFailed { reason, .. } => format!("failed: {reason}"),
                DeployEvent::Restoring { revision, .. } => format!("restoring {revision}"),
                other => format!("{other:?}"),
            };
            events
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .push(kind);
        };
        let session = Session::new(&record);
        let mut runtime = Restorer {
            answer,
            restored: Vec::new(),
        };
        let previous = previous.map(revision);
        let outcome = settle(
            "prod",
            rollout,
            on_failure,
            previous.as_ref(),
            &mut runtime,
            &session,
        );
        let events = events.into_inner().unwrap_or_default();
        (outcome, runtime.restored, events)
    }

    #[test]
    fn a_failure_left_as_it_was_restores_the_revision_deployed_before() {
        let (outcome, restored, events) = settled(
            Rollout::Failed(failure()),
            OnFailure::Rollback,
            Some(4),
            Ok(()),
        );
        assert_eq!(
            outcome,
            Outcome::RolledBack {
                reason: "service backend: not ready; revision 4 runs again".to_owned()
            }
        );
        assert_eq!(restored, [4]);
        assert_eq!(
            events,
            ["failed: service backend: not ready", "restoring 4"]
        );
    }

    #[test]
    fn a_restore_that_fails_too_is_a_failed_revision() {
        let (outcome, _, _) = settled(
            Rollout::Failed(failure()),
            OnFailure::Rollback,
            Some(4),
            Err("timed out".to_owned()),
        );
        assert_eq!(
            outcome,
            Outcome::Failed {
                reason:
                    "service backend: not ready; applying revision 4 again failed too: timed out"
                        .to_owned()
            }
        );
    }

    #[test]
    fn nothing_deployed_before_or_halt_restores_nothing() {
        let (outcome, restored, _) = settled(
            Rollout::Failed(failure()),
            OnFailure::Rollback,
            None,
            Ok(()),
        );
        assert!(
            matches!(&outcome, Outcome::Failed { reason } if reason.contains("nothing was deployed before")),
            "{outcome:?}"
        );
        assert!(restored.is_empty());
        let (outcome, restored, _) =
            settled(Rollout::Failed(failure()), OnFailure::Halt, Some(4), Ok(()));
        assert_eq!(
            outcome,
            Outcome::Failed {
                reason:
                    "service backend: not ready (on_failure = \"halt\": what succeeded was kept)"
                        .to_owned()
            }
        );
        assert!(restored.is_empty());
    }

    #[test]
    fn a_rollout_the_runtime_settled_itself_is_recorded_as_it_says() {
        let (outcome, restored, events) = settled(
            Rollout::RolledBack(failure()),
            OnFailure::Rollback,
            Some(4),
            Ok(()),
        );
        assert_eq!(
            outcome,
            Outcome::RolledBack {
                reason: "service backend: not ready".to_owned()
            }
        );
        assert!(restored.is_empty() && events.is_empty());
        let (outcome, _, _) = settled(Rollout::Halted(failure()), OnFailure::Halt, Some(4), Ok(()));
        assert!(matches!(outcome, Outcome::Failed { .. }));
        let (outcome, _, _) = settled(
            Rollout::Aborted("dev: the agent stopped".to_owned()),
            OnFailure::Rollback,
            Some(4),
            Ok(()),
        );
        assert_eq!(
            outcome,
            Outcome::Failed {
                reason: "dev: the agent stopped".to_owned()
            }
        );
    }
}
