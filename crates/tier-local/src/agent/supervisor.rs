//! The supervisor: what the agent decides about its replicas, as a state machine that takes
//! events and the time they arrived and answers the effects to carry out. It starts nothing,
//! waits for nothing and reads no clock, so every rule here (restart policy, backoff, crash
//! loops, readiness gating, dependency waves) is tested without a process or a sleep.
//!
//! The agent's loop owns the one `Supervisor`, feeds it every event about a replica, and
//! carries out the [`Effect`]s it answers: spawning, signalling, stopping probes and
//! scheduling restarts. Every event names the replica's generation, a number each spawn gets
//! anew, so news about a process that was already replaced is ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tier_model::Environment;
use tier_model::environment::{Health, Restart, Service};

use crate::probes::ProbeKind;

/// How long a replica must stay ready before its earlier failures are forgiven.
pub(crate) const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Failures in a row, each before the replica became ready, that make a crash loop.
pub(crate) const CRASH_LOOP_AFTER: u32 = 3;
/// The wait before the first restart; it doubles with each failure in a row.
pub(crate) const BACKOFF_FIRST: Duration = Duration::from_millis(250);
/// The longest wait before a restart, however many failures came before.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// How long a replica gets between SIGTERM and SIGKILL when its spec names no grace.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

pub(crate) use crate::control::Phase;

/// News about one replica, as the I/O around the supervisor observed it.
#[derive(Debug)]
pub(crate) enum Event {
    /// The replica's process ended (or could not be started). `output` is the last line it
    /// wrote, when it wrote one.
    Exited {
        service: String,
        replica: u32,
        generation: u64,
        success: bool,
        how: String,
        output: Option<String>,
    },
    Probe {
        service: String,
        replica: u32,
        generation: u64,
        kind: ProbeKind,
        result: Result<(), String>,
    },
    /// A restart scheduled by [`Effect::RestartAfter`] is due.
    RestartDue {
        service: String,
        replica: u32,
        generation: u64,
    },
    /// The service's proxy could not connect to the replica.
    Refused { service: String, replica: u32 },
}

/// How a replica's process group is told to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// SIGTERM: stop within the grace period.
    Term,
    /// SIGKILL: wedged, or out of time.
    Kill,
}

/// What the supervisor asks the I/O around it to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Start the replica's process with the spec and program it carries. `previous` is the
    /// generation it ran as before, when this is a restart.
    Spawn {
        service: String,
        replica: u32,
        generation: u64,
        previous: Option<u64>,
    },
    /// Stop probing the process of this generation.
    StopProbes { generation: u64 },
    /// Signal the process group of `pid`.
    Signal { pid: u32, stop: Stop },
    /// Send [`Event::RestartDue`] for this generation after `delay`.
    RestartAfter {
        service: String,
        replica: u32,
        generation: u64,
        delay: Duration,
    },
}

/// One replica as the supervisor knows it.
#[derive(Clone, Debug)]
pub(crate) struct Replica {
    /// Its number within the service: `backend-1` is replica 1.
    pub id: u32,
    /// The spawn it runs as now; 0 before the first one.
    pub generation: u64,
    pub pid: Option<u32>,
    pub port: u16,
    pub phase: Phase,
    pub restarts: u32,
    pub failures_in_a_row: u32,
    pub ready_since: Option<Instant>,
    /// Failed readiness probes in a row.
    pub probe_failures: u32,
    /// Failed liveness (or startup) probes in a row.
    pub liveness_failures: u32,
    /// Why the supervisor killed the replica itself (a failed liveness or startup probe), for
    /// the exit it then reports.
    pub killed_because: Option<String>,
    pub last_probe: Option<String>,
    pub last_exit: Option<String>,
    /// What this replica runs; during a rollout old and new replicas run different specs.
    pub spec: Arc<Service>,
    pub program: Arc<PathBuf>,
    /// Being stopped on purpose (a rollout or a scale-down): not restarted, not in rotation,
    /// removed when it exits.
    pub retiring: bool,
}

/// One service as the supervisor knows it.
#[derive(Clone, Debug)]
pub(crate) struct Supervised {
    /// The desired spec: what new replicas run.
    pub spec: Arc<Service>,
    pub program: Arc<PathBuf>,
    /// Its dependency wave: services stop in reverse wave order.
    pub wave: usize,
    /// The services it depends on that the environment runs, in `depends_on` order.
    pub dependencies: Vec<String>,
    pub replicas: Vec<Replica>,
    /// Numbers of replicas retired during the running apply. They are not handed out again
    /// until it finishes, so an apply numbers its replicas the same whichever old replica
    /// happens to exit first.
    pub held: BTreeSet<u32>,
    /// When its replicas were first started; `None` while it waits for its dependencies.
    pub started_at: Option<Instant>,
    pub ever_ready: bool,
}

impl Supervised {
    /// Replicas in rotation: ready and not retiring.
    pub fn ready(&self) -> u32 {
        self.in_rotation().count() as u32
    }

    /// The ready replicas the proxy balances over, as (replica, port).
    pub fn in_rotation(&self) -> impl Iterator<Item = &Replica> {
        self.replicas
            .iter()
            .filter(|replica| replica.phase == Phase::Ready && !replica.retiring)
    }

    /// Started, with as many replicas ready as the spec wants: what its dependents wait for.
    pub fn is_ready(&self) -> bool {
        self.started_at.is_some() && self.ready() >= self.spec.replicas
    }

    /// A replica that keeps failing before it becomes ready, if one does.
    pub fn crash_looping(&self) -> Option<&Replica> {
        self.replicas
            .iter()
            .filter(|replica| replica.phase != Phase::Ready)
            .find(|replica| replica.failures_in_a_row >= CRASH_LOOP_AFTER)
    }

    fn position(&self, id: u32) -> Option<usize> {
        self.replicas.iter().position(|replica| replica.id == id)
    }

    /// The smallest replica number neither in use nor held, so names stay `backend-1` to
    /// `backend-N`.
    fn free_id(&self) -> u32 {
        (1..)
            .find(|id| self.position(*id).is_none() && !self.held.contains(id))
            .unwrap_or(1)
    }
}

/// Every service the agent runs, by name, and the replicas still stopping of services an
/// apply removed.
#[derive(Debug)]
pub(crate) struct Supervisor {
    services: BTreeMap<String, Supervised>,
    /// Replicas of removed services, each already told to stop, until they exit.
    orphans: Vec<(String, Replica)>,
    /// `[project] ordering`: when false, services start at once instead of in waves.
    ordering: bool,
    stopping: bool,
    /// The last generation handed out.
    generations: u64,
}

/// How long the supervisor waits before restarting a replica that failed `failures_in_a_row`
/// times: 250ms, doubling each time, at most 15s.
pub(crate) fn backoff(failures_in_a_row: u32) -> Duration {
    let exponent = failures_in_a_row.saturating_sub(1).min(10);
    BACKOFF_FIRST.saturating_mul(1 << exponent).min(BACKOFF_MAX)
}

impl Supervisor {
    /// The supervisor of an environment's services, none started yet: [`Supervisor::start_ready`]
    /// starts the first wave.
    pub fn new(environment: &Environment, programs: &BTreeMap<String, PathBuf>) -> Supervisor {
        let mut supervisor = Supervisor {
            services: BTreeMap::new(),
            orphans: Vec::new(),
            ordering: environment.project.ordering,
            stopping: false,
            generations: 0,
        };
        for (name, spec) in &environment.services {
            let program = programs.get(name.as_str()).cloned().unwrap_or_default();
            supervisor.add_service(name.as_str(), spec.clone(), program, None);
        }
        supervisor.set_topology(environment);
        supervisor
    }

    pub fn services(&self) -> &BTreeMap<String, Supervised> {
        &self.services
    }

    pub fn service(&self, name: &str) -> Option<&Supervised> {
        self.services.get(name)
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Every generation a replica runs as (or last ran as), so the I/O can let go of the
    /// handles of the others.
    pub fn generations(&self) -> impl Iterator<Item = u64> {
        self.services
            .values()
            .flat_map(|service| service.replicas.iter())
            .chain(self.orphans.iter().map(|(_, replica)| replica))
            .map(|replica| replica.generation)
    }

    /// A service that was not there before: `started` is when an apply created it (its
    /// replicas come from the apply), `None` for a service that waits for its wave.
    pub fn add_service(
        &mut self,
        name: &str,
        spec: Service,
        program: PathBuf,
        started: Option<Instant>,
    ) {
        self.services.insert(
            name.to_owned(),
            Supervised {
                spec: Arc::new(spec),
                program: Arc::new(program),
                wave: 0,
                dependencies: Vec::new(),
                replicas: Vec::new(),
                held: BTreeSet::new(),
                started_at: started,
                ever_ready: false,
            },
        );
    }

    /// Makes `spec` and `program` what new replicas of the service run; false when there is
    /// no such service.
    pub fn desire(&mut self, name: &str, spec: Service, program: PathBuf) -> bool {
        let Some(service) = self.services.get_mut(name) else {
            return false;
        };
        service.spec = Arc::new(spec);
        service.program = Arc::new(program);
        true
    }

    /// Takes waves, dependencies and `ordering` from the environment, for the services it
    /// names; the others keep theirs.
    pub fn set_topology(&mut self, environment: &Environment) {
        self.ordering = environment.project.ordering;
        let waves: BTreeMap<String, usize> = environment
            .waves()
            .iter()
            .enumerate()
            .flat_map(|(wave, names)| names.iter().map(move |name| (name.to_string(), wave)))
            .collect();
        let present: Vec<String> = self.services.keys().cloned().collect();
        for (name, service) in &mut self.services {
            let Some(spec) = environment.services.get(name.as_str()) else {
                continue;
            };
            service.wave = waves.get(name).copied().unwrap_or(0);
            service.dependencies = spec
                .depends_on
                .iter()
                .map(ToString::to_string)
                .filter(|dependency| present.contains(dependency))
                .collect();
        }
    }

    /// Starts every service not started yet whose dependencies are all ready, or every one
    /// with `ordering = false`.
    pub fn start_ready(&mut self, now: Instant) -> Vec<Effect> {
        if self.stopping {
            return Vec::new();
        }
        let due: Vec<String> = self
            .services
            .iter()
            .filter(|(_, service)| service.started_at.is_none())
            .filter(|(_, service)| {
                !self.ordering
                    || service.dependencies.iter().all(|dependency| {
                        self.services
                            .get(dependency)
                            .is_some_and(Supervised::is_ready)
                    })
            })
            .map(|(name, _)| name.clone())
            .collect();
        let mut effects = Vec::new();
        for name in due {
            let Some(service) = self.services.get_mut(&name) else {
                continue;
            };
            service.started_at = Some(now);
            let count = service.spec.replicas;
            if count == 0 {
                service.ever_ready = true;
            }
            for _ in 0..count {
                if let Some((_, spawn)) = self.add_replica(&name) {
                    effects.extend(spawn);
                }
            }
        }
        effects
    }

    /// Adds one replica running the service's desired spec and starts it; answers its id.
    pub fn add_replica(&mut self, name: &str) -> Option<(u32, Vec<Effect>)> {
        let service = self.services.get_mut(name)?;
        let id = service.free_id();
        service.replicas.push(Replica {
            id,
            generation: 0,
            pid: None,
            port: 0,
            phase: Phase::Starting,
            restarts: 0,
            failures_in_a_row: 0,
            ready_since: None,
            probe_failures: 0,
            liveness_failures: 0,
            killed_because: None,
            last_probe: None,
            last_exit: None,
            spec: Arc::clone(&service.spec),
            program: Arc::clone(&service.program),
            retiring: false,
        });
        let replica = service.replicas.last_mut()?;
        let spawn = respawn(&mut self.generations, name, replica);
        Some((id, vec![spawn]))
    }

    /// Records where the process of a spawn listens and, once it started, its pid.
    pub fn started(&mut self, name: &str, id: u32, generation: u64, port: u16, pid: Option<u32>) {
        if let Some(replica) = self.replica_mut(name, id, generation) {
            replica.port = port;
            replica.pid = pid;
        }
    }

    /// Takes a replica out of rotation and stops it; it is removed when it has exited.
    pub fn retire(&mut self, name: &str, id: u32) -> Vec<Effect> {
        let Some(service) = self.services.get_mut(name) else {
            return Vec::new();
        };
        let Some(at) = service.position(id) else {
            return Vec::new();
        };
        service.held.insert(id);
        let replica = &mut service.replicas[at];
        replica.retiring = true;
        let mut effects = vec![Effect::StopProbes {
            generation: replica.generation,
        }];
        match replica.pid {
            Some(pid) => effects.push(Effect::Signal {
                pid,
                stop: Stop::Term,
            }),
            None => {
                service.replicas.remove(at);
            }
        }
        effects
    }

    /// An apply finished: the numbers of the replicas it retired may be used again.
    pub fn release_held(&mut self) {
        for service in self.services.values_mut() {
            service.held.clear();
        }
    }

    /// Stops every replica of a service and forgets the service; its replicas are waited for
    /// until they exit.
    pub fn remove(&mut self, name: &str) -> Vec<Effect> {
        let ids: Vec<u32> = self
            .services
            .get(name)
            .map(|service| service.replicas.iter().map(|replica| replica.id).collect())
            .unwrap_or_default();
        let effects: Vec<Effect> = ids
            .into_iter()
            .flat_map(|id| self.retire(name, id))
            .collect();
        if let Some(service) = self.services.remove(name) {
            self.orphans.extend(
                service
                    .replicas
                    .into_iter()
                    .map(|replica| (name.to_owned(), replica)),
            );
        }
        effects
    }

    /// Handles one event that arrived at `now`.
    pub fn on(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        match event {
            Event::Exited {
                service,
                replica,
                generation,
                success,
                how,
                output,
            } => self.exited(&service, replica, generation, success, how, output, now),
            Event::Probe {
                service,
                replica,
                generation,
                kind,
                result,
            } => self.probed(&service, replica, generation, kind, result, now),
            Event::RestartDue {
                service,
                replica,
                generation,
            } => self.restart_due(&service, replica, generation),
            Event::Refused { service, replica } => {
                if let Some(current) = self
                    .services
                    .get_mut(&service)
                    .and_then(|service| service.replicas.iter_mut().find(|r| r.id == replica))
                    && current.phase == Phase::Ready
                {
                    current.phase = Phase::Unready;
                    current.last_probe = Some("refused a proxied connection".to_owned());
                }
                Vec::new()
            }
        }
    }

    /// The highest wave; stopping goes from it down to 0.
    pub fn last_wave(&self) -> usize {
        self.services
            .values()
            .map(|service| service.wave)
            .max()
            .unwrap_or(0)
    }

    /// Starts stopping the services of one wave: no more restarts anywhere, and SIGTERM to
    /// every replica of the wave. Replicas of removed services stop with the last wave, the
    /// first to stop.
    pub fn stop_wave(&mut self, wave: usize) -> Vec<Effect> {
        self.stopping = true;
        let last = self.last_wave();
        let mut effects = Vec::new();
        let orphans = self
            .orphans
            .iter_mut()
            .filter(|_| wave == last)
            .map(|(_, replica)| replica);
        let in_wave = self
            .services
            .values_mut()
            .filter(|service| service.wave == wave)
            .flat_map(|service| service.replicas.iter_mut());
        for replica in in_wave.chain(orphans) {
            effects.push(Effect::StopProbes {
                generation: replica.generation,
            });
            if replica.phase == Phase::Backoff {
                replica.phase = Phase::Exited;
            }
            if let Some(pid) = replica.pid {
                effects.push(Effect::Signal {
                    pid,
                    stop: Stop::Term,
                });
            }
        }
        effects
    }

    /// The services of a wave, by name.
    pub fn wave(&self, wave: usize) -> Vec<String> {
        self.services
            .iter()
            .filter(|(_, service)| service.wave == wave)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The processes of a wave still running (with the removed services' at the last wave).
    pub fn running(&self, wave: usize) -> Vec<u32> {
        let orphans = self
            .orphans
            .iter()
            .filter(|_| wave == self.last_wave())
            .map(|(_, replica)| replica);
        self.services
            .values()
            .filter(|service| service.wave == wave)
            .flat_map(|service| service.replicas.iter())
            .chain(orphans)
            .filter_map(|replica| replica.pid)
            .collect()
    }

    /// How long a wave's replicas get between SIGTERM and SIGKILL: the longest
    /// `termination_grace` among its services.
    pub fn grace(&self, wave: usize) -> Duration {
        self.services
            .values()
            .filter(|service| service.wave == wave)
            .map(|service| {
                service
                    .spec
                    .termination_grace
                    .map_or(STOP_GRACE, |grace| grace.to_std())
            })
            .max()
            .unwrap_or(STOP_GRACE)
    }

    fn replica_mut(&mut self, name: &str, id: u32, generation: u64) -> Option<&mut Replica> {
        self.services
            .get_mut(name)?
            .replicas
            .iter_mut()
            .find(|replica| replica.id == id && replica.generation == generation)
    }

    fn restart_due(&mut self, name: &str, id: u32, generation: u64) -> Vec<Effect> {
        if self.stopping {
            return Vec::new();
        }
        let Some(replica) = self.services.get_mut(name).and_then(|service| {
            service
                .replicas
                .iter_mut()
                .find(|replica| replica.id == id && replica.generation == generation)
        }) else {
            return Vec::new();
        };
        if replica.phase != Phase::Backoff || replica.retiring {
            return Vec::new();
        }
        replica.restarts += 1;
        vec![respawn(&mut self.generations, name, replica)]
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the fields of one event, taken apart by `on`"
    )]
    fn exited(
        &mut self,
        name: &str,
        id: u32,
        generation: u64,
        success: bool,
        how: String,
        output: Option<String>,
        now: Instant,
    ) -> Vec<Effect> {
        let stopping = self.stopping;
        let Some(service) = self.services.get_mut(name) else {
            return self.orphan_exited(name, id, generation);
        };
        let Some(at) = service
            .position(id)
            .filter(|at| service.replicas[*at].generation == generation)
        else {
            return self.orphan_exited(name, id, generation);
        };
        let replica = &mut service.replicas[at];
        let mut effects = vec![Effect::StopProbes { generation }];
        if replica.retiring && !stopping {
            service.replicas.remove(at);
            return effects;
        }
        replica.pid = None;
        let was_stable = replica
            .ready_since
            .is_some_and(|since| now.saturating_duration_since(since) >= STABLE_AFTER);
        replica.failures_in_a_row = if was_stable {
            1
        } else {
            replica.failures_in_a_row + 1
        };
        let how = match replica.killed_because.take() {
            Some(why) => format!("killed by tier: {why}"),
            None => how,
        };
        replica.last_exit = Some(match output {
            Some(line) if !success => format!("{how}: {line}"),
            _ => how,
        });
        let restart = !stopping
            && match replica.spec.restart {
                Restart::Always => true,
                Restart::OnFailure => !success,
                Restart::Never => false,
            };
        if restart {
            replica.phase = Phase::Backoff;
            effects.push(Effect::RestartAfter {
                service: name.to_owned(),
                replica: id,
                generation,
                delay: backoff(replica.failures_in_a_row),
            });
        } else {
            replica.phase = Phase::Exited;
        }
        effects
    }

    fn orphan_exited(&mut self, name: &str, id: u32, generation: u64) -> Vec<Effect> {
        let before = self.orphans.len();
        self.orphans.retain(|(service, replica)| {
            !(service == name && replica.id == id && replica.generation == generation)
        });
        if self.orphans.len() == before {
            Vec::new()
        } else {
            vec![Effect::StopProbes { generation }]
        }
    }

    fn probed(
        &mut self,
        name: &str,
        id: u32,
        generation: u64,
        kind: ProbeKind,
        result: Result<(), String>,
        now: Instant,
    ) -> Vec<Effect> {
        let Some(service) = self.services.get_mut(name) else {
            return Vec::new();
        };
        let Some(replica) = service
            .replicas
            .iter_mut()
            .find(|replica| replica.id == id && replica.generation == generation)
        else {
            return Vec::new();
        };
        if replica.killed_because.is_some() || replica.phase.is_down() {
            return Vec::new();
        }
        let threshold =
            |health: Option<&Health>| health.map_or(3, |health| health.failure_threshold);
        let mut effects = Vec::new();
        match (kind, result) {
            (ProbeKind::Readiness, Ok(())) => {
                replica.probe_failures = 0;
                replica.last_probe = None;
                if replica.phase != Phase::Ready {
                    replica.phase = Phase::Ready;
                    replica.ready_since = Some(now);
                }
                if replica
                    .ready_since
                    .is_some_and(|since| now.saturating_duration_since(since) >= STABLE_AFTER)
                {
                    replica.failures_in_a_row = 0;
                }
            }
            (ProbeKind::Readiness, Err(why)) => {
                replica.probe_failures += 1;
                replica.last_probe = Some(why);
                let limit = threshold(replica.spec.health.as_ref());
                if replica.phase == Phase::Ready && replica.probe_failures >= limit {
                    replica.phase = Phase::Unready;
                }
                // Without a `liveness` of its own, `health` is the liveness check too, as on
                // kubernetes, once the replica has been ready.
                let implicit_liveness = replica.spec.liveness.is_none()
                    && replica.spec.health.is_some()
                    && replica.ready_since.is_some();
                if implicit_liveness && replica.probe_failures >= limit {
                    let why = replica.last_probe.clone().unwrap_or_default();
                    effects = kill_for(
                        replica,
                        format!("health failed {limit} times in a row ({why})"),
                    );
                }
            }
            (ProbeKind::Liveness | ProbeKind::Startup, Ok(())) => {
                replica.liveness_failures = 0;
            }
            (kind @ (ProbeKind::Liveness | ProbeKind::Startup), Err(why)) => {
                replica.liveness_failures += 1;
                let (probe, health) = match kind {
                    ProbeKind::Startup => ("startup", replica.spec.startup.as_ref()),
                    _ => ("liveness", replica.spec.liveness.as_ref()),
                };
                replica.last_probe = Some(format!("{probe}: {why}"));
                let limit = threshold(health);
                if replica.liveness_failures >= limit {
                    effects = kill_for(
                        replica,
                        format!("{probe} probe failed {limit} times in a row ({why})"),
                    );
                }
            }
        }
        if service.ready() >= service.spec.replicas {
            service.ever_ready = true;
        }
        effects
    }
}

/// Starts (or restarts) a replica as a new generation.
fn respawn(generations: &mut u64, service: &str, replica: &mut Replica) -> Effect {
    *generations += 1;
    let previous = (replica.generation != 0).then_some(replica.generation);
    replica.generation = *generations;
    replica.phase = Phase::Starting;
    replica.ready_since = None;
    replica.probe_failures = 0;
    replica.liveness_failures = 0;
    replica.killed_because = None;
    Effect::Spawn {
        service: service.to_owned(),
        replica: replica.id,
        generation: replica.generation,
        previous,
    }
}

/// Takes a replica out of rotation and kills its process group: a failed liveness or startup
/// probe means the process is wedged, so it gets no grace period. Its exit then restarts it by
/// its policy.
fn kill_for(replica: &mut Replica, why: String) -> Vec<Effect> {
    replica.phase = Phase::Unready;
    let mut effects = vec![Effect::StopProbes {
        generation: replica.generation,
    }];
    if let Some(pid) = replica.pid {
        replica.killed_because = Some(why);
        effects.push(Effect::Signal {
            pid,
            stop: Stop::Kill,
        });
    }
    effects
}

#[cfg(test)]
mod tests;
