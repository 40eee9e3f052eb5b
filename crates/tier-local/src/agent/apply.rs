//! The agent's side of an apply on a running environment: one apply at a time, the later ones
//! queued, and the rollout task's commands carried out on the agent's state.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tier_model::Environment;
use tier_model::environment::Service;
use tokio::sync::{mpsc, oneshot};

use super::proxies::ServiceProxy;
use super::supervisor::{CRASH_LOOP_AFTER, Phase};
use super::{Agent, Event, now};
use crate::config_file;
use crate::control::{ApplyRequest, Response};
use crate::rollout;
use tier_state::paths::write_atomic;

/// An apply waiting for the one before it, with where its answer goes.
type Queued = (Box<ApplyRequest>, oneshot::Sender<Response>);

/// Whether an apply runs. One runs at a time: a second one (say, after the first one's CLI
/// was killed while the agent went on) waits in `queued` until the first has finished.
pub(super) enum ApplyState {
    Idle,
    Running {
        /// Set by a `Cancel` request: the rollout stops at its next safe point.
        cancel: Arc<AtomicBool>,
        queued: VecDeque<Queued>,
    },
}

impl ApplyState {
    /// Asks the running apply, if any, to stop and undo what it did; queued ones still run.
    pub fn cancel(&self) {
        if let ApplyState::Running { cancel, .. } = self {
            cancel.store(true, Ordering::SeqCst);
        }
    }
}

impl Agent {
    /// Starts an apply in a task of its own, or queues it behind the running one; the answer
    /// goes out when it ends.
    pub(super) fn start_apply(
        &mut self,
        request: Box<ApplyRequest>,
        reply: oneshot::Sender<Response>,
    ) {
        match &mut self.apply {
            ApplyState::Running { queued, .. } => queued.push_back((request, reply)),
            ApplyState::Idle => self.begin_apply(request, reply, VecDeque::new()),
        }
    }

    fn begin_apply(
        &mut self,
        request: Box<ApplyRequest>,
        reply: oneshot::Sender<Response>,
        queued: VecDeque<Queued>,
    ) {
        let cancel = Arc::new(AtomicBool::new(false));
        self.apply = ApplyState::Running {
            cancel: Arc::clone(&cancel),
            queued,
        };
        let (commands, mut inbox) = mpsc::unbounded_channel();
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Some(command) = inbox.recv().await {
                if events.send(Event::Rollout(Box::new(command))).is_err() {
                    return;
                }
            }
        });
        let current = self.current.clone();
        let programs = self.programs.clone();
        tokio::spawn(async move {
            let request = *request;
            let (outcome, log) = rollout::apply(
                commands,
                current,
                programs,
                request.environment,
                request.programs,
                cancel,
            )
            .await;
            let _ = reply.send(Response::Applied { outcome, log });
        });
    }

    /// Forgets the secret values no running replica and no desired spec needs any more.
    pub(super) fn keep_secrets_in_use(&mut self) {
        let in_use = self
            .supervisor
            .services()
            .iter()
            .flat_map(|(name, service)| {
                std::iter::once((name.as_str(), &service.spec.secret_fingerprints)).chain(
                    service
                        .replicas
                        .iter()
                        .map(|replica| (name.as_str(), &replica.spec.secret_fingerprints)),
                )
            });
        self.secrets.retain(in_use);
    }

    pub(super) fn rollout_command(&mut self, command: rollout::Command) {
        match command {
            rollout::Command::View { service, reply } => {
                let _ = reply.send(self.view(&service));
            }
            rollout::Command::Desire {
                service,
                spec,
                program,
                environment,
                reply,
            } => {
                let _ = reply.send(self.desire(&service, *spec, program, &environment));
            }
            rollout::Command::Add { service, reply } => {
                let id = self.supervisor.add_replica(&service).map(|(id, effects)| {
                    self.carry_out(effects);
                    id
                });
                let _ = reply.send(id);
            }
            rollout::Command::Retire { service, replica } => {
                let effects = self.supervisor.retire(&service, replica);
                self.carry_out(effects);
            }
            rollout::Command::Remove { service } => {
                let effects = self.supervisor.remove(&service);
                self.carry_out(effects);
                if let Some(proxy) = self.proxies.remove(&service) {
                    proxy.halt(&service);
                }
            }
            rollout::Command::Finished {
                environment,
                programs,
            } => {
                self.current = *environment;
                self.programs = programs;
                self.supervisor.set_topology(&self.current);
                self.supervisor.release_held();
                let mut queued = match std::mem::replace(&mut self.apply, ApplyState::Idle) {
                    ApplyState::Running { queued, .. } => queued,
                    ApplyState::Idle => VecDeque::new(),
                };
                if let Some((request, reply)) = queued.pop_front() {
                    self.begin_apply(request, reply, queued);
                }
            }
        }
    }

    /// The service's replicas as a rollout sees them.
    fn view(&self, name: &str) -> Option<rollout::ServiceView> {
        let service = self.supervisor.service(name)?;
        let wanted = super::spec_without_replicas(&service.spec);
        Some(rollout::ServiceView {
            replicas: service
                .replicas
                .iter()
                .filter(|replica| !replica.retiring)
                .map(|replica| rollout::ReplicaView {
                    id: replica.id,
                    current: replica.program == service.program
                        && super::spec_without_replicas(&replica.spec) == wanted,
                    ready: replica.phase == Phase::Ready,
                    failed: replica.phase == Phase::Exited
                        || replica.failures_in_a_row >= CRASH_LOOP_AFTER,
                    last: replica
                        .last_probe
                        .clone()
                        .or_else(|| replica.last_exit.clone()),
                })
                .collect(),
        })
    }

    /// Makes `spec` what new replicas of a service run, writing its config; creates the
    /// service, with its proxy, when the environment did not have it.
    fn desire(
        &mut self,
        name: &str,
        spec: Service,
        program: PathBuf,
        environment: &Environment,
    ) -> Result<(), String> {
        let text = config_file::contents(environment, &spec.config, |service| {
            self.proxies.get(service).map(|proxy| proxy.proxy_port)
        });
        write_atomic(&self.dir.config(name, &spec.config), &text)
            .map_err(|error| format!("{name}: cannot write its config: {error}"))?;
        if self.supervisor.service(name).is_some() {
            if let Some(proxy) = self.proxies.get_mut(name)
                && proxy.exposed != spec.expose
            {
                proxy.move_host_port(&self.kit, &environment.name, name, &spec)?;
            }
            self.supervisor.desire(name, spec, program);
            return Ok(());
        }
        let proxy = ServiceProxy::bind(&self.kit, name, &spec, self.store.discovery.clone())?;
        self.proxies.insert(name.to_owned(), proxy);
        self.supervisor
            .add_service(name, spec, program, Some(now()));
        self.supervisor.set_topology(environment);
        Ok(())
    }
}
