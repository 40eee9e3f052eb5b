//! The agent: one process per environment that owns `.tier/<env>/`, supervises every replica
//! as a child process, keeps the proxies' ready sets current, and answers the CLI.
//!
//! It is an event loop over the closed [`Event`] enum: child exits, probe results, backoff
//! timers, proxy ejections and control requests all arrive on one channel, and only the loop
//! changes state. What to do about a replica is the [`supervisor`]'s decision, made without
//! I/O; the loop carries out the effects it answers and feeds back what they cause.
//!
//! - `prepare.rs`: every check that can fail before anything starts.
//! - `supervisor.rs`: restart policy, backoff, crash loops, readiness gating, waves.
//! - `replica.rs`: spawning a replica, its output pumps, exit waiter and probes.
//! - `proxies.rs`: each service's proxy and the ready set it balances over.
//! - `apply.rs`: one apply at a time, and the rollout's commands.
//! - `status.rs`: what `tier status` shows, from the supervisor's state.
//! - `socket.rs`: the control socket and the access log writer.

mod apply;
mod prepare;
mod proxies;
mod replica;
mod socket;
mod status;
mod supervisor;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tier_model::Environment;
use tier_model::environment::Service;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use prepare::{AgentOptions, Prepared, StartError, env_dir, is_running, prepare};

use crate::control::{EnvStatus, Request, Response};
use crate::proxy::{self, ProxyEvent};
use crate::rollout;
use crate::secrets::Stash;
use crate::spawn;
use crate::store;
use apply::ApplyState;
use proxies::{ProxyKit, ServiceProxy};
use supervisor::{Effect, Stop, Supervisor};
use tier_state::paths::EnvDir;

/// How long replicas still running after SIGKILL are waited for before the agent exits.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Everything that can change the agent's state.
enum Event {
    /// News about a replica, for the supervisor.
    Replica(supervisor::Event),
    Rollout(Box<rollout::Command>),
    Control {
        request: Request,
        reply: oneshot::Sender<Response>,
    },
    Stop,
}

/// The time the supervisor is told events arrive at: tokio's clock, so tests that pause time
/// pause it here too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

struct Agent {
    root: PathBuf,
    env: String,
    dir: EnvDir,
    supervisor: Supervisor,
    proxies: BTreeMap<String, ServiceProxy>,
    /// What the loop keeps of each spawn, by generation.
    handles: BTreeMap<u64, replica::Handles>,
    events: mpsc::UnboundedSender<Event>,
    echo: Option<usize>,
    /// The environment and programs the agent runs, as the last apply left them.
    current: Environment,
    programs: BTreeMap<String, PathBuf>,
    apply: ApplyState,
    kit: ProxyKit,
    /// Secret values, in memory only, for the specs that run or are about to.
    secrets: Stash,
    /// The environment's runtime config store and its API.
    store: store::Host,
}

/// Runs a prepared environment until `stop` is cancelled or a `Shutdown` request arrives, then
/// stops every replica in reverse dependency order. Fails, with nothing left running, when the
/// store or the proxies cannot start.
pub async fn run(prepared: Prepared, stop: CancellationToken) -> Result<(), StartError> {
    let Prepared {
        options,
        dir,
        lock,
        control,
        services: prepared_services,
        store,
    } = prepared;
    let environment = options.environment;
    let fail = |message: String| {
        let _ = std::fs::remove_file(dir.socket());
        StartError(format!("{}: {message}", environment.name))
    };
    let store = store::Host::start(&dir, store, &environment)
        .await
        .map_err(|error| fail(error.to_string()))?;
    let workers = match proxy::Workers::start() {
        Ok(workers) => workers,
        Err(error) => {
            store.stop();
            return Err(fail(format!("cannot start the proxy threads: {error}")));
        }
    };
    let mut secrets = Stash::default();
    secrets.add(options.secrets);
    let (events, mut inbox) = mpsc::unbounded_channel();
    let (proxy_events, proxy_inbox) = mpsc::unbounded_channel::<ProxyEvent>();
    let (access, access_inbox) = mpsc::unbounded_channel::<Vec<String>>();
    let halt_proxies = CancellationToken::new();
    tokio::spawn(socket::write_access_log(dir.access_log(), access_inbox));

    let kit = ProxyKit {
        workers,
        events: proxy_events,
        access,
        halt: halt_proxies.clone(),
    };
    let mut proxies = BTreeMap::new();
    let mut programs = BTreeMap::new();
    for ((name, spec), prepared) in environment.services.iter().zip(prepared_services) {
        proxies.insert(
            name.to_string(),
            ServiceProxy::serve(
                &kit,
                name.as_str(),
                spec,
                prepared.listeners,
                prepared.proxy_port,
                store.discovery.clone(),
            ),
        );
        programs.insert(name.to_string(), prepared.program);
    }

    match tokio::net::UnixListener::from_std(control) {
        Ok(listener) => {
            tokio::spawn(socket::serve_control(listener, events.clone()));
        }
        Err(error) => eprintln!("{}: control socket: {error}", environment.name),
    }
    tokio::spawn(forward_proxy_events(proxy_inbox, events.clone()));
    {
        let events = events.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            let _ = events.send(Event::Stop);
        });
    }

    let echo_width = options.echo.then(|| {
        environment
            .services
            .iter()
            .map(|(name, service)| {
                name.as_str().len() + 1 + service.replicas.max(1).to_string().len()
            })
            .max()
            .unwrap_or(0)
    });
    let mut agent = Agent {
        root: options.project_root,
        env: environment.name.to_string(),
        dir,
        supervisor: Supervisor::new(&environment, &programs),
        proxies,
        handles: BTreeMap::new(),
        events,
        echo: echo_width,
        current: environment,
        programs,
        apply: ApplyState::Idle,
        kit,
        secrets,
        store,
    };
    let socket = agent.dir.socket();
    agent.settle();
    while let Some(event) = inbox.recv().await {
        if agent.handle(event) {
            break;
        }
        agent.settle();
    }
    agent.shut_down(&mut inbox).await;
    agent.store.stop();
    halt_proxies.cancel();
    drop(agent);
    let _ = std::fs::remove_file(&socket);
    drop(lock);
    Ok(())
}

/// Hands the proxies' news to the loop.
async fn forward_proxy_events(
    mut proxy_inbox: mpsc::UnboundedReceiver<ProxyEvent>,
    events: mpsc::UnboundedSender<Event>,
) {
    while let Some(ProxyEvent::Refused { service, replica }) = proxy_inbox.recv().await {
        let event = supervisor::Event::Refused {
            service: service.to_string(),
            replica,
        };
        if events.send(Event::Replica(event)).is_err() {
            return;
        }
    }
}

impl Agent {
    /// Handles one event; true when the agent should stop.
    fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Replica(event) => self.supervise(event),
            Event::Control { request, reply } => match request {
                Request::Status => {
                    let _ = reply.send(Response::Status(self.status()));
                }
                Request::Shutdown => {
                    let _ = reply.send(Response::Stopping);
                    return true;
                }
                Request::Apply(mut request) => {
                    self.keep_secrets_in_use();
                    self.secrets.add(std::mem::take(&mut request.secrets));
                    self.start_apply(request, reply);
                }
                Request::Cancel => {
                    self.apply.cancel();
                    let _ = reply.send(Response::Stopping);
                }
            },
            Event::Rollout(command) => self.rollout_command(*command),
            Event::Stop => return true,
        }
        false
    }

    /// Gives the supervisor news about a replica, with the last line the replica wrote when
    /// the news is its exit, and carries out what it decides.
    fn supervise(&mut self, mut event: supervisor::Event) {
        if let supervisor::Event::Exited {
            generation, output, ..
        } = &mut event
        {
            *output = self
                .handles
                .get(generation)
                .and_then(replica::Handles::last_output);
        }
        let effects = self.supervisor.on(event, now());
        self.carry_out(effects);
    }

    /// After each event: starts the services whose dependencies became ready, hands the
    /// proxies their ready sets, and lets go of the handles of spawns no replica runs as.
    fn settle(&mut self) {
        let effects = self.supervisor.start_ready(now());
        self.carry_out(effects);
        if !self.supervisor.is_stopping() {
            for (name, proxy) in &self.proxies {
                proxy.publish(name, self.supervisor.service(name));
            }
        }
        let live: BTreeSet<u64> = self.supervisor.generations().collect();
        self.handles
            .retain(|generation, _| live.contains(generation));
    }

    fn carry_out(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Spawn {
                    service,
                    replica,
                    generation,
                    previous,
                } => self.spawn_replica(&service, replica, generation, previous),
                Effect::StopProbes { generation } => {
                    if let Some(handles) = self.handles.get(&generation) {
                        handles.stop_probes();
                    }
                }
                Effect::Signal { pid, stop } => spawn::signal_group(
                    pid,
                    match stop {
                        Stop::Term => Signal::SIGTERM,
                        Stop::Kill => Signal::SIGKILL,
                    },
                ),
                Effect::RestartAfter {
                    service,
                    replica,
                    generation,
                    delay,
                } => {
                    let events = self.events.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let due = supervisor::Event::RestartDue {
                            service,
                            replica,
                            generation,
                        };
                        let _ = events.send(Event::Replica(due));
                    });
                }
            }
        }
    }

    /// Stops every replica, dependents before what they depend on: SIGTERM to each process
    /// group, then SIGKILL to those still there after the grace period.
    async fn shut_down(&mut self, inbox: &mut mpsc::UnboundedReceiver<Event>) {
        for wave in (0..=self.supervisor.last_wave()).rev() {
            let effects = self.supervisor.stop_wave(wave);
            self.carry_out(effects);
            for name in self.supervisor.wave(wave) {
                if let Some(proxy) = self.proxies.get(&name) {
                    proxy.drain();
                }
            }
            let deadline = tokio::time::Instant::now() + self.supervisor.grace(wave);
            while !self.supervisor.running(wave).is_empty() {
                match tokio::time::timeout_at(deadline, inbox.recv()).await {
                    Ok(Some(event)) => self.during_shutdown(event),
                    Ok(None) => break,
                    Err(_) => {
                        for pid in self.supervisor.running(wave) {
                            spawn::signal_group(pid, Signal::SIGKILL);
                        }
                        let grace = tokio::time::Instant::now() + KILL_GRACE;
                        while !self.supervisor.running(wave).is_empty() {
                            match tokio::time::timeout_at(grace, inbox.recv()).await {
                                Ok(Some(event)) => self.during_shutdown(event),
                                _ => break,
                            }
                        }
                        break;
                    }
                }
            }
        }
    }

    fn during_shutdown(&mut self, event: Event) {
        match event {
            Event::Replica(event @ supervisor::Event::Exited { .. }) => self.supervise(event),
            Event::Control { reply, .. } => {
                let _ = reply.send(Response::Status(self.status()));
            }
            _ => {}
        }
    }

    fn status(&self) -> EnvStatus {
        let now = now();
        EnvStatus {
            environment: self.env.clone(),
            agent_pid: std::process::id(),
            stopping: self.supervisor.is_stopping(),
            services: self
                .supervisor
                .services()
                .iter()
                .map(|(name, service)| {
                    let reach = self.proxies.get(name).map_or(
                        status::Reach {
                            proxy_port: 0,
                            exposed: None,
                        },
                        |proxy| status::Reach {
                            proxy_port: proxy.proxy_port,
                            exposed: proxy.exposed,
                        },
                    );
                    status::service_status(&self.supervisor, name, service, &reach, now)
                })
                .collect(),
        }
    }
}

/// A spec as JSON without its replica count: two specs equal here run the same thing.
pub(crate) fn spec_without_replicas(spec: &Service) -> serde_json::Value {
    let mut value = serde_json::to_value(spec).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("replicas");
    }
    value
}
