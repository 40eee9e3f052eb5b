//! Applying a new spec to a running environment, as a task beside the agent's loop. The task
//! decides; the loop acts: every change goes through a [`Command`] to the loop, the one writer
//! of the agent's state, and the task reads progress back through `View` commands.
//!
//! Waves go in dependency order and the services of one wave in parallel. A service with a new
//! spec or program is rolled replica by replica (`max_surge` new ones up, each gated on
//! readiness within `rollout.deadline`, then as many old ones retired); a scale adds or
//! retires replicas. When a gate fails, the failing service keeps its old replicas and, unless
//! the project says `on_failure = "halt"`, every service this apply already changed is rolled
//! back the same way.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tier_model::Environment;
use tier_model::environment::{OnFailure, Service};
use tokio::sync::{mpsc, oneshot};

use crate::control::{ApplyOutcome, RolloutNote};

/// How often a rollout looks at its new replicas.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// What a rollout asks the agent's loop to do or tell.
pub(crate) enum Command {
    /// The service's replicas as they are now.
    View {
        service: String,
        reply: oneshot::Sender<Option<ServiceView>>,
    },
    /// Makes this the spec new replicas of the service run; creates the service if it is new.
    Desire {
        service: String,
        spec: Box<Service>,
        program: PathBuf,
        environment: Box<Environment>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Starts one more replica with the desired spec; answers its id.
    Add {
        service: String,
        reply: oneshot::Sender<Option<u32>>,
    },
    /// Takes a replica out of rotation and stops it.
    Retire { service: String, replica: u32 },
    /// Stops every replica of a service and its proxy.
    Remove { service: String },
    /// The apply is over: the environment and programs the agent now runs.
    Finished {
        environment: Box<Environment>,
        programs: BTreeMap<String, PathBuf>,
    },
}

pub(crate) struct ServiceView {
    pub replicas: Vec<ReplicaView>,
}

pub(crate) struct ReplicaView {
    pub id: u32,
    /// Runs the service's desired spec and program.
    pub current: bool,
    pub ready: bool,
    /// Exited and will not come back, or keeps exiting before it is ready.
    pub failed: bool,
    pub last: Option<String>,
}

struct Link {
    commands: mpsc::UnboundedSender<Command>,
    log: std::sync::Mutex<Vec<RolloutNote>>,
    /// Set by a `Cancel` request (Ctrl-C in `tier apply`): the rollout stops at the next safe
    /// point, between two replica steps, and undoes what it did as for a failure.
    cancel: Arc<std::sync::atomic::AtomicBool>,
}

impl Link {
    fn check_cancel(&self) -> Result<(), String> {
        if self.cancel.load(std::sync::atomic::Ordering::SeqCst) {
            Err("interrupted (Ctrl-C)".to_owned())
        } else {
            Ok(())
        }
    }

    fn note(&self, note: RolloutNote) {
        if let Ok(mut log) = self.log.lock() {
            log.push(note);
        }
    }

    async fn view(&self, service: &str) -> Option<ServiceView> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::View {
                service: service.to_owned(),
                reply,
            })
            .ok()?;
        answer.await.ok().flatten()
    }

    async fn desire(
        &self,
        service: &str,
        spec: &Service,
        program: &std::path::Path,
        environment: &Environment,
    ) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Desire {
                service: service.to_owned(),
                spec: Box::new(spec.clone()),
                program: program.to_path_buf(),
                environment: Box::new(environment.clone()),
                reply,
            })
            .map_err(|_| "the agent is stopping".to_owned())?;
        answer
            .await
            .map_err(|_| "the agent is stopping".to_owned())?
    }

    async fn add(&self, service: &str) -> Result<u32, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Add {
                service: service.to_owned(),
                reply,
            })
            .map_err(|_| "the agent is stopping".to_owned())?;
        answer
            .await
            .ok()
            .flatten()
            .ok_or_else(|| format!("{service} is not running"))
    }

    fn retire(&self, service: &str, replica: u32) {
        let _ = self.commands.send(Command::Retire {
            service: service.to_owned(),
            replica,
        });
    }

    /// Waits until every replica in `ids` is ready, or says why not.
    async fn gate(&self, service: &str, ids: &[u32], deadline: Duration) -> Result<(), String> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            self.check_cancel()?;
            let view = self
                .view(service)
                .await
                .ok_or_else(|| format!("{service} is not running"))?;
            let watched: Vec<&ReplicaView> = view
                .replicas
                .iter()
                .filter(|replica| ids.contains(&replica.id))
                .collect();
            if let Some(failed) = watched.iter().find(|replica| replica.failed) {
                return Err(format!(
                    "replica {} failed: {}",
                    failed.id,
                    failed
                        .last
                        .clone()
                        .unwrap_or_else(|| "it exited".to_owned())
                ));
            }
            if watched.len() == ids.len() && watched.iter().all(|replica| replica.ready) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= until {
                let detail = watched
                    .iter()
                    .find(|replica| !replica.ready)
                    .and_then(|replica| replica.last.clone());
                return Err(format!(
                    "not ready within {}s{}",
                    deadline.as_secs(),
                    detail
                        .map(|detail| format!(": {detail}"))
                        .unwrap_or_default()
                ));
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }
}

/// One service's move from what runs to what is wanted.
#[derive(Clone)]
struct Change {
    service: String,
    old: Option<(Service, PathBuf)>,
    new: (Service, PathBuf),
}

/// Applies `desired` over `current`; answers how it ended and a note per step.
pub(crate) async fn apply(
    commands: mpsc::UnboundedSender<Command>,
    current: Environment,
    current_programs: BTreeMap<String, PathBuf>,
    desired: Environment,
    programs: BTreeMap<String, PathBuf>,
    cancel: Arc<std::sync::atomic::AtomicBool>,
) -> (ApplyOutcome, Vec<RolloutNote>) {
    let link = Arc::new(Link {
        commands,
        log: std::sync::Mutex::new(Vec::new()),
        cancel,
    });
    let waves: Vec<Vec<String>> = desired
        .rollout_waves()
        .iter()
        .map(|wave| wave.iter().map(ToString::to_string).collect())
        .collect();
    let mut done: Vec<Change> = Vec::new();
    let mut failure = None;
    for wave in &waves {
        if let Err(why) = link.check_cancel() {
            failure = Some(("-".to_owned(), why));
            break;
        }
        let mut tasks = tokio::task::JoinSet::new();
        let mut changes = Vec::new();
        for name in wave {
            let Some(spec) = service(&desired, name) else {
                continue;
            };
            let Some(program) = programs.get(name).cloned() else {
                continue;
            };
            let old = service(&current, name).zip(current_programs.get(name).cloned());
            let change = Change {
                service: name.clone(),
                old,
                new: (spec, program),
            };
            if change
                .old
                .as_ref()
                .is_some_and(|old| same(old, &change.new))
            {
                continue;
            }
            changes.push(change.clone());
            let link = Arc::clone(&link);
            let desired = desired.clone();
            tasks.spawn(async move {
                let result = roll(
                    &link,
                    &change.service,
                    change.old.as_ref(),
                    &change.new,
                    &desired,
                )
                .await;
                (change.service, result)
            });
        }
        let mut failed = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((service, Err(reason))) => failed = failed.or(Some((service, reason))),
                Err(error) => {
                    failed = failed.or(Some((
                        "?".to_owned(),
                        format!("a rollout task failed: {error}"),
                    )))
                }
            }
        }
        match failed {
            None => done.extend(changes),
            Some((service, reason)) => {
                // The failing service keeps its old replicas already; the others of this wave
                // are rolled back with the earlier waves.
                done.extend(
                    changes
                        .into_iter()
                        .filter(|change| change.service != service),
                );
                failure = Some((service, reason));
                break;
            }
        }
    }

    let (outcome, environment, programs) = match failure {
        None => {
            // Services the new spec no longer has go last, dependents first.
            let removed: Vec<String> = current
                .services
                .keys()
                .filter(|name| !desired.services.contains_key(name.as_str()))
                .map(ToString::to_string)
                .collect();
            for name in removed.iter().rev() {
                link.note(RolloutNote::Removed {
                    service: name.clone(),
                });
                let _ = link.commands.send(Command::Remove {
                    service: name.clone(),
                });
            }
            (ApplyOutcome::Succeeded, desired, programs)
        }
        Some((service, reason)) => {
            link.note(RolloutNote::Failed {
                service: service.clone(),
                reason: reason.clone(),
            });
            if desired.project.on_failure == OnFailure::Halt {
                // Keep what succeeded: the environment is now partly the new spec.
                let mut kept = current.clone();
                let mut kept_programs = current_programs.clone();
                for change in &done {
                    if let Some((name, _)) = desired
                        .services
                        .iter()
                        .find(|(name, _)| name.as_str() == change.service)
                    {
                        kept.services.insert(name.clone(), change.new.0.clone());
                        kept_programs.insert(change.service.clone(), change.new.1.clone());
                    }
                }
                (
                    ApplyOutcome::Halted { service, reason },
                    kept,
                    kept_programs,
                )
            } else {
                for change in done.iter().rev() {
                    link.note(RolloutNote::RollingBack {
                        service: change.service.clone(),
                    });
                    let result = match &change.old {
                        Some(old) => {
                            roll(&link, &change.service, Some(&change.new), old, &current).await
                        }
                        None => {
                            let _ = link.commands.send(Command::Remove {
                                service: change.service.clone(),
                            });
                            Ok(())
                        }
                    };
                    if let Err(why) = result {
                        link.note(RolloutNote::NotRolledBack {
                            service: change.service.clone(),
                            reason: why,
                        });
                    }
                }
                (
                    ApplyOutcome::RolledBack { service, reason },
                    current,
                    current_programs,
                )
            }
        }
    };
    let _ = link.commands.send(Command::Finished {
        environment: Box::new(environment),
        programs,
    });
    let log = link.log.lock().map(|log| log.clone()).unwrap_or_default();
    (outcome, log)
}

fn service(environment: &Environment, name: &str) -> Option<Service> {
    environment
        .services
        .iter()
        .find(|(candidate, _)| candidate.as_str() == name)
        .map(|(_, spec)| spec.clone())
}

/// Whether two specs run the same thing: equal but for the number of replicas.
fn same(old: &(Service, PathBuf), new: &(Service, PathBuf)) -> bool {
    old.1 == new.1
        && spec_without_replicas(&old.0) == spec_without_replicas(&new.0)
        && old.0.replicas == new.0.replicas
}

use crate::agent::spec_without_replicas;

/// Moves one service from `old` (nothing, for a new service) to `new`.
async fn roll(
    link: &Link,
    name: &str,
    old: Option<&(Service, PathBuf)>,
    new: &(Service, PathBuf),
    environment: &Environment,
) -> Result<(), String> {
    let (spec, program) = new;
    let deadline = spec.rollout.deadline.to_std();
    let replaced = old.is_some_and(|old| {
        old.1 != *program || spec_without_replicas(&old.0) != spec_without_replicas(spec)
    });
    link.desire(name, spec, program, environment).await?;
    let view = link
        .view(name)
        .await
        .ok_or_else(|| format!("{name} is not running"))?;
    let mut old_ids: Vec<u32> = view
        .replicas
        .iter()
        .filter(|replica| !replica.current || replica.failed)
        .map(|replica| replica.id)
        .collect();
    let mut current_ids: Vec<u32> = view
        .replicas
        .iter()
        .filter(|replica| replica.current && !replica.failed)
        .map(|replica| replica.id)
        .collect();
    if !replaced {
        // A scale, or a new service: add or retire to the wanted count.
        old_ids.clear();
        current_ids = view.replicas.iter().map(|replica| replica.id).collect();
    }
    let wanted = spec.replicas as usize;
    let surge = (spec.rollout.max_surge as usize).max(if spec.rollout.max_unavailable == 0 {
        1
    } else {
        0
    });
    let unavailable = spec.rollout.max_unavailable as usize;
    let mut started = Vec::new();
    let result: Result<(), String> = async {
        while current_ids.len() < wanted || !old_ids.is_empty() {
            link.check_cancel()?;
            if current_ids.len() >= wanted {
                // Enough new replicas: retire the rest of the old ones.
                for id in old_ids.drain(..) {
                    link.retire(name, id);
                }
                break;
            }
            // Free room first when surging is not allowed.
            if surge == 0 {
                for id in old_ids.drain(..unavailable.min(old_ids.len())) {
                    link.retire(name, id);
                }
            }
            let batch = surge.max(1).min(wanted - current_ids.len());
            let mut batch_ids = Vec::new();
            for _ in 0..batch {
                let id = link.add(name).await?;
                batch_ids.push(id);
                started.push(id);
            }
            link.note(RolloutNote::Started {
                service: name.to_owned(),
                replicas: batch_ids.clone(),
            });
            link.gate(name, &batch_ids, deadline).await?;
            link.note(RolloutNote::Ready {
                service: name.to_owned(),
                replicas: batch_ids.clone(),
            });
            current_ids.extend(&batch_ids);
            for id in old_ids.drain(..batch.min(old_ids.len())) {
                link.retire(name, id);
            }
        }
        // A scale down: retire the replicas above the wanted count.
        while current_ids.len() > wanted {
            if let Some(id) = current_ids.pop() {
                link.retire(name, id);
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            link.note(RolloutNote::RolledOut {
                service: name.to_owned(),
                replicas: wanted,
            });
            Ok(())
        }
        Err(reason) => {
            // Undo this service's part: the new replicas go, the old spec is wanted again, and
            // old replicas retired on the way are replaced.
            for id in started {
                link.retire(name, id);
            }
            if let Some((old_spec, old_program)) = old {
                let _ = link.desire(name, old_spec, old_program, environment).await;
                if let Some(view) = link.view(name).await {
                    let running = view
                        .replicas
                        .iter()
                        .filter(|replica| replica.current && !replica.failed)
                        .count();
                    for _ in running..old_spec.replicas as usize {
                        let _ = link.add(name).await;
                    }
                }
            } else {
                let _ = link.commands.send(Command::Remove {
                    service: name.to_owned(),
                });
            }
            Err(reason)
        }
    }
}
