//! The agent: one process per environment that owns `.tier/<env>/`, supervises every replica
//! as a child process, keeps the proxies' ready sets current, and answers the CLI.
//!
//! It is an event loop over the closed [`Event`] enum: child exits, probe results, backoff
//! timers, proxy ejections and control requests all arrive on one channel, and only the loop
//! changes state. Every event carries the replica's generation, so news about a process that
//! was already replaced is ignored.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tier_model::Environment;
use tier_model::address::{self, Addresses};
use tier_model::environment::{Health, Probe, Protocol, Restart, Service, VolumeSource};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::control::{EnvStatus, ReplicaStatus, Request, Response, ServiceState, ServiceStatus};
use crate::health::Check;
use crate::logs::{self, LogFile, Stream};
use crate::paths::{EnvDir, STORE_PORT, write_atomic};
use crate::probes::{ProbeKind, ProbePlan, Timed, run_probes};
use crate::proxy::{self, Endpoint, ProxyEvent};
use crate::rollout;
use crate::secrets::{SecretValues, Stash};
use crate::spawn::{self, Spawn};
use crate::store::{self, Discovery};

/// How long a replica must stay ready before its earlier failures are forgiven.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Failures in a row, each before the replica became ready, that make a crash loop.
const CRASH_LOOP_AFTER: u32 = 3;
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// How long a replica gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What to run.
pub struct AgentOptions {
    pub project_root: PathBuf,
    pub environment: Environment,
    /// Also print every replica's output, prefixed, on this process's stdout (foreground).
    pub echo: bool,
    /// The program each service runs, when an apply fixed it (its artifact's stored copy);
    /// otherwise the program of its command, found in the project or on PATH.
    pub programs: BTreeMap<String, PathBuf>,
    /// The values of the secrets the environment's services name, by fingerprint.
    pub secrets: SecretValues,
}

/// Why an environment could not start. One line naming the environment, the service and the
/// cause; nothing is left running or half-written when this is returned.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// An environment that passed its checks: lock held, ports bound, config written.
pub struct Prepared {
    options: AgentOptions,
    dir: EnvDir,
    _lock: nix::fcntl::Flock<std::fs::File>,
    control: std::os::unix::net::UnixListener,
    services: Vec<PreparedService>,
    store: store::Claimed,
}

struct PreparedService {
    program: PathBuf,
    listeners: Vec<std::net::TcpListener>,
    proxy_port: u16,
}

impl Prepared {
    pub fn dir(&self) -> &EnvDir {
        &self.dir
    }
}

/// Checks and claims everything an environment needs before any process starts.
pub fn prepare(options: AgentOptions) -> Result<Prepared, StartError> {
    let env = options.environment.name.to_string();
    let dir = EnvDir::new(&options.project_root, &env);
    let fail = |message: String| StartError(format!("{env}: {message}"));
    std::fs::create_dir_all(dir.logs())
        .map_err(|error| fail(format!("cannot create {}: {error}", dir.logs().display())))?;
    let lock = claim(&dir).map_err(fail)?;

    let mut programs = Vec::new();
    for (name, service) in &options.environment.services {
        let Some(program) = service.command.as_ref().and_then(|command| command.first()) else {
            return Err(fail(format!("service {name}: no command to run")));
        };
        let program = match options.programs.get(name.as_str()) {
            Some(artifact) => artifact.clone(),
            None => spawn::find_program(program, &options.project_root)
                .map_err(|why| fail(format!("service {name}: cannot run its command: {why}")))?,
        };
        programs.push(program);
    }

    let remembered = remembered_ports(&dir);
    let mut services = Vec::new();
    let mut ports = BTreeMap::new();
    for ((name, service), program) in options.environment.services.iter().zip(programs) {
        let proxy = bind_proxy(remembered.get(name.as_str()).copied()).map_err(|error| {
            fail(format!(
                "service {name}: cannot open its proxy port: {error}"
            ))
        })?;
        let proxy_port = proxy
            .local_addr()
            .map(|address| address.port())
            .unwrap_or(0);
        ports.insert(name.to_string(), proxy_port);
        let mut listeners = vec![proxy];
        if let Some(port) = service.expose {
            let exposed = std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|error| {
                fail(if error.kind() == std::io::ErrorKind::AddrInUse {
                    format!("service {name}: host port {port} is already in use (expose = {port})")
                } else {
                    format!("service {name}: cannot listen on host port {port}: {error}")
                })
            })?;
            listeners.push(exposed);
        }
        for listener in &listeners {
            listener
                .set_nonblocking(true)
                .map_err(|error| fail(format!("service {name}: {error}")))?;
        }
        services.push(PreparedService {
            program,
            listeners,
            proxy_port,
        });
    }

    let addresses =
        LocalAddresses::new(&options.environment, |service| ports.get(service).copied());
    for (name, service) in &options.environment.services {
        let config = address::substitute_json(&service.config, &addresses);
        let text = serde_json::to_vec_pretty(&config).unwrap_or_else(|_| b"{}".to_vec());
        write_atomic(&dir.config(name.as_str(), &service.config), &text)
            .map_err(|error| fail(format!("service {name}: cannot write its config: {error}")))?;
    }
    let store = store::claim(&dir, &env, remembered.get(STORE_PORT).copied()).map_err(fail)?;
    ports.insert(STORE_PORT.to_owned(), store.port());
    let ports_text = serde_json::to_vec_pretty(&ports).unwrap_or_default();
    write_atomic(&dir.ports(), &ports_text)
        .map_err(|error| fail(format!("cannot write {}: {error}", dir.ports().display())))?;

    let socket = dir.socket();
    let _ = std::fs::remove_file(&socket);
    let control = std::os::unix::net::UnixListener::bind(&socket).map_err(|error| {
        fail(format!(
            "cannot open the control socket {}: {error}",
            socket.display()
        ))
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|error| fail(format!("cannot restrict {}: {error}", socket.display())))?;
    }
    control
        .set_nonblocking(true)
        .map_err(|error| fail(format!("control socket: {error}")))?;
    Ok(Prepared {
        options,
        dir,
        _lock: lock,
        control,
        services,
        store,
    })
}

/// Takes the environment's lock, or says which agent holds it.
fn claim(dir: &EnvDir) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    use std::io::{Read, Seek, Write};
    let path = dir.lock();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let _ = lock.set_len(0);
            let _ = lock.rewind();
            let _ = write!(lock, "{}", std::process::id());
            let _ = lock.flush();
            Ok(lock)
        }
        Err((mut file, _)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            Err(format!(
                "already running (agent pid {}); `tier down {}` stops it",
                pid.trim(),
                dir_env(dir)
            ))
        }
    }
}

fn dir_env(dir: &EnvDir) -> String {
    dir.root()
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn remembered_ports(dir: &EnvDir) -> BTreeMap<String, u16> {
    std::fs::read(dir.ports())
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// The port used last time when it is free, so URLs stay stable; any free port otherwise.
fn bind_proxy(remembered: Option<u16>) -> std::io::Result<std::net::TcpListener> {
    if let Some(port) = remembered
        && let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port))
    {
        return Ok(listener);
    }
    std::net::TcpListener::bind(("127.0.0.1", 0))
}

/// A free port for a replica to listen on.
fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Everything that can change the agent's state.
enum Event {
    Exited {
        service: usize,
        replica: u32,
        generation: u64,
        success: bool,
        how: String,
    },
    Probe {
        service: usize,
        replica: u32,
        generation: u64,
        kind: ProbeKind,
        result: Result<(), String>,
    },
    RestartDue {
        service: usize,
        replica: u32,
        generation: u64,
    },
    Proxy(ProxyEvent),
    Rollout(Box<rollout::Command>),
    Control {
        request: Request,
        reply: oneshot::Sender<Response>,
    },
    Stop,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Spawned, not ready yet.
    Starting,
    Ready,
    /// Was ready; probes fail now.
    Unready,
    /// Exited; starts again at the instant given.
    Backoff,
    /// Exited and stays down (restart policy, or the agent is stopping).
    Exited,
}

struct Replica {
    index: u32,
    generation: u64,
    pid: Option<u32>,
    port: u16,
    phase: Phase,
    restarts: u32,
    failures_in_a_row: u32,
    ready_since: Option<Instant>,
    started_at: Instant,
    probe_failures: u32,
    /// Failed liveness (or startup) probes in a row.
    liveness_failures: u32,
    /// Why the agent killed the replica itself (a failed liveness or startup probe), for the
    /// exit it then reports.
    killed_because: Option<String>,
    last_probe: Option<String>,
    last_exit: Option<String>,
    last_output: Arc<Mutex<Option<String>>>,
    stop_probe: CancellationToken,
    /// What this replica runs; during a rollout old and new replicas run different specs.
    spec: Arc<Service>,
    program: Arc<PathBuf>,
    /// Being stopped on purpose (a rollout or a scale-down): not restarted, not in rotation,
    /// removed when it exits.
    retiring: bool,
}

struct ServiceRuntime {
    name: String,
    /// The desired spec: what new replicas run.
    spec: Arc<Service>,
    program: Arc<PathBuf>,
    wave: usize,
    proxy_port: u16,
    exposed: Option<u16>,
    dependencies: Vec<usize>,
    endpoints: watch::Sender<Arc<Vec<Endpoint>>>,
    /// Lists the ready replicas in the store's service discovery.
    discovery: Discovery,
    replicas: Vec<Replica>,
    started_at: Option<Instant>,
    ever_ready: bool,
    /// Stops this service's proxy alone, when an apply removes the service or moves its host
    /// port.
    halt: CancellationToken,
    /// A handle on the proxy's own listener, so the proxy can be served again (with another
    /// host port) without giving up its port.
    proxy_listener: Option<std::net::TcpListener>,
    /// Taken out by an apply; kept so that indices in pending events stay valid.
    removed: bool,
}

impl ServiceRuntime {
    fn ready(&self) -> u32 {
        self.replicas
            .iter()
            .filter(|replica| replica.phase == Phase::Ready && !replica.retiring)
            .count() as u32
    }

    fn position(&self, id: u32) -> Option<usize> {
        self.replicas.iter().position(|replica| replica.index == id)
    }

    /// The smallest replica number not in use, so names stay `backend-1` to `backend-N`.
    fn free_id(&self) -> u32 {
        (1..).find(|id| self.position(*id).is_none()).unwrap_or(1)
    }

    fn is_ready(&self) -> bool {
        self.started_at.is_some() && self.ready() >= self.spec.replicas
    }

    fn crash_looping(&self) -> Option<&Replica> {
        self.replicas
            .iter()
            .filter(|replica| replica.phase != Phase::Ready)
            .find(|replica| replica.failures_in_a_row >= CRASH_LOOP_AFTER)
    }

    fn url(&self) -> String {
        let scheme = match self.spec.protocol {
            Protocol::Http => "http",
            Protocol::Tcp => "tcp",
        };
        format!("{scheme}://127.0.0.1:{}", self.proxy_port)
    }

    fn publish(&self) {
        let ready: Vec<Endpoint> = self
            .replicas
            .iter()
            .filter(|replica| replica.phase == Phase::Ready && !replica.retiring)
            .map(|replica| Endpoint {
                replica: replica.index,
                address: SocketAddr::from(([127, 0, 0, 1], replica.port)),
            })
            .collect();
        if **self.endpoints.borrow() != ready {
            let before = self.endpoints.send_replace(Arc::new(ready.clone()));
            for gone in before.iter().filter(|old| !ready.contains(old)) {
                self.discovery.gone(&self.name, gone.replica);
            }
            for new in ready.iter().filter(|new| !before.contains(new)) {
                self.discovery.ready(&self.name, new.replica, new.address);
            }
        }
    }
}

struct Agent {
    root: PathBuf,
    env: String,
    dir: EnvDir,
    services: Vec<ServiceRuntime>,
    events: mpsc::UnboundedSender<Event>,
    echo: Option<usize>,
    stopping: bool,
    /// Every spawn gets the next number, so news about a replaced process is never mistaken
    /// for news about its successor.
    generations: u64,
    /// The environment and programs the agent runs, as the last apply left them.
    current: Environment,
    programs: BTreeMap<String, PathBuf>,
    applying: bool,
    cancel_apply: Arc<std::sync::atomic::AtomicBool>,
    queued_applies:
        std::collections::VecDeque<(Box<crate::control::ApplyRequest>, oneshot::Sender<Response>)>,
    kit: ProxyKit,
    /// Secret values, in memory only, for the specs that run or are about to.
    secrets: Stash,
    /// The environment's runtime config store and its API.
    store: store::Host,
}

/// What starting another service's proxy takes.
struct ProxyKit {
    workers: proxy::Workers,
    events: mpsc::UnboundedSender<ProxyEvent>,
    access: mpsc::UnboundedSender<Vec<String>>,
    halt: CancellationToken,
}

impl ProxyKit {
    fn serve(
        &self,
        index: usize,
        name: &str,
        spec: &Service,
        listeners: Vec<std::net::TcpListener>,
        halt: CancellationToken,
        endpoints: proxy::Endpoints,
    ) {
        match spec.protocol {
            Protocol::Http => proxy::serve_http(
                &self.workers,
                name.to_owned(),
                index,
                listeners,
                endpoints,
                self.events.clone(),
                self.access.clone(),
                halt,
            ),
            Protocol::Tcp => proxy::serve_tcp(
                &self.workers,
                index,
                listeners,
                endpoints,
                self.events.clone(),
                halt,
            ),
        }
    }
}

/// Runs a prepared environment until `stop` is cancelled or a `Shutdown` request arrives, then
/// stops every replica in reverse dependency order.
pub async fn run(prepared: Prepared, stop: CancellationToken) {
    let Prepared {
        options,
        dir,
        _lock,
        control,
        services: prepared_services,
        store,
    } = prepared;
    let environment = options.environment;
    let store = match store::Host::start(&dir, store, &environment).await {
        Ok(host) => host,
        Err(error) => {
            eprintln!("error: {}: {error}", environment.name);
            return;
        }
    };
    let mut secrets = Stash::default();
    secrets.add(options.secrets);
    let (events, mut inbox) = mpsc::unbounded_channel();
    let (proxy_events, mut proxy_inbox) = mpsc::unbounded_channel::<ProxyEvent>();
    let (access, access_inbox) = mpsc::unbounded_channel::<Vec<String>>();
    let halt_proxies = CancellationToken::new();
    let workers = match proxy::Workers::start() {
        Ok(workers) => workers,
        Err(error) => {
            eprintln!(
                "error: {}: cannot start the proxy threads: {error}",
                environment.name
            );
            return;
        }
    };
    tokio::spawn(write_access_log(dir.access_log(), access_inbox));

    let names: Vec<String> = environment
        .services
        .keys()
        .map(ToString::to_string)
        .collect();
    let waves: BTreeMap<String, usize> = environment
        .waves()
        .iter()
        .enumerate()
        .flat_map(|(wave, names)| names.iter().map(move |name| (name.to_string(), wave)))
        .collect();
    let kit = ProxyKit {
        workers,
        events: proxy_events.clone(),
        access: access.clone(),
        halt: halt_proxies.clone(),
    };
    let mut services = Vec::new();
    let mut programs = BTreeMap::new();
    for (index, ((name, spec), prepared)) in environment
        .services
        .iter()
        .zip(prepared_services)
        .enumerate()
    {
        let (endpoints, watcher) = watch::channel(Arc::new(Vec::new()));
        let halt = kit.halt.child_token();
        let proxy_listener = prepared
            .listeners
            .first()
            .and_then(|listener| listener.try_clone().ok());
        kit.serve(
            index,
            name.as_str(),
            spec,
            prepared.listeners,
            halt.clone(),
            watcher,
        );
        programs.insert(name.to_string(), prepared.program.clone());
        services.push(ServiceRuntime {
            name: name.to_string(),
            spec: Arc::new(spec.clone()),
            program: Arc::new(prepared.program),
            wave: waves.get(name.as_str()).copied().unwrap_or(0),
            proxy_port: prepared.proxy_port,
            exposed: spec.expose,
            dependencies: spec
                .depends_on
                .iter()
                .filter_map(|dependency| names.iter().position(|name| name == dependency.as_str()))
                .collect(),
            endpoints,
            discovery: store.discovery.clone(),
            replicas: Vec::new(),
            started_at: None,
            ever_ready: false,
            halt,
            proxy_listener,
            removed: false,
        });
    }
    drop(access);

    let control = match tokio::net::UnixListener::from_std(control) {
        Ok(listener) => Some(listener),
        Err(error) => {
            eprintln!("{}: control socket: {error}", environment.name);
            None
        }
    };
    if let Some(listener) = control {
        tokio::spawn(serve_control(listener, events.clone()));
    }
    {
        let events = events.clone();
        tokio::spawn(async move {
            while let Some(event) = proxy_inbox.recv().await {
                if events.send(Event::Proxy(event)).is_err() {
                    return;
                }
            }
        });
    }
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
        services,
        events,
        echo: echo_width,
        stopping: false,
        generations: 0,
        current: environment,
        programs,
        applying: false,
        cancel_apply: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        queued_applies: std::collections::VecDeque::new(),
        kit,
        secrets,
        store,
    };
    let socket = agent.dir.socket();
    agent.reconcile();
    while let Some(event) = inbox.recv().await {
        if agent.handle(event) {
            break;
        }
        agent.reconcile();
    }
    agent.shut_down(&mut inbox).await;
    agent.store.stop();
    halt_proxies.cancel();
    drop(agent);
    let _ = std::fs::remove_file(&socket);
}

/// Where services are reached on this machine: their proxies on 127.0.0.1.
struct LocalAddresses {
    ports: BTreeMap<String, (u16, Protocol)>,
}

impl LocalAddresses {
    fn new(environment: &Environment, proxy_port: impl Fn(&str) -> Option<u16>) -> LocalAddresses {
        LocalAddresses {
            ports: environment
                .services
                .iter()
                .filter_map(|(name, service)| {
                    Some((
                        name.to_string(),
                        (proxy_port(name.as_str())?, service.protocol),
                    ))
                })
                .collect(),
        }
    }
}

impl Addresses for LocalAddresses {
    fn host_port(&self, service: &str) -> Option<(String, u16)> {
        self.ports
            .get(service)
            .map(|(port, _)| ("127.0.0.1".to_owned(), *port))
    }

    fn scheme(&self, service: &str) -> &'static str {
        match self.ports.get(service) {
            Some((_, Protocol::Tcp)) => "tcp",
            _ => "http",
        }
    }
}

/// A name as part of a variable: `grpc-web` is `GRPC_WEB`.
fn variable_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// Makes the directories of a replica's volumes: a `claim` (and a `secret`, empty here) is
/// kept across restarts, an `empty_dir` starts empty every time.
fn prepare_volumes(
    dir: &EnvDir,
    service: &str,
    replica: u32,
    spec: &Service,
) -> std::io::Result<()> {
    for (name, volume) in &spec.volumes {
        match &volume.source {
            VolumeSource::EmptyDir { .. } => {
                let path = dir.volume(service, name, Some(replica));
                match std::fs::remove_dir_all(&path) {
                    Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                        return Err(error);
                    }
                    _ => {}
                }
                std::fs::create_dir_all(&path)?;
            }
            VolumeSource::Claim { .. } | VolumeSource::Secret { .. } => {
                std::fs::create_dir_all(dir.volume(service, name, None))?;
            }
            VolumeSource::Config { .. } => {}
        }
    }
    Ok(())
}

/// Takes a replica out of rotation and kills its process group: a failed liveness or
/// startup probe means the process is wedged, so it gets no grace period. Its exit then
/// restarts it by its policy.
fn kill_for(replica: &mut Replica, why: String) {
    replica.phase = Phase::Unready;
    replica.stop_probe.cancel();
    if let Some(pid) = replica.pid {
        replica.killed_because = Some(why);
        spawn::signal_group(pid, Signal::SIGKILL);
    }
}

impl Agent {
    /// Handles one event; true when the agent should stop.
    fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Exited {
                service,
                replica,
                generation,
                success,
                how,
            } => {
                self.exited(service, replica, generation, success, how);
            }
            Event::Probe {
                service,
                replica,
                generation,
                kind,
                result,
            } => self.probed(service, replica, generation, kind, result),
            Event::RestartDue {
                service,
                replica,
                generation,
            } => {
                let position = self.services[service].position(replica);
                let due = position
                    .and_then(|at| self.services[service].replicas.get(at))
                    .is_some_and(|current| {
                        current.generation == generation
                            && current.phase == Phase::Backoff
                            && !current.retiring
                    });
                if let Some(at) = position
                    && due
                    && !self.stopping
                {
                    self.services[service].replicas[at].restarts += 1;
                    self.start_replica(service, at);
                }
            }
            Event::Proxy(ProxyEvent::Refused { service, replica }) => {
                if let Some(runtime) = self.services.get_mut(service)
                    && let Some(current) = runtime
                        .replicas
                        .iter_mut()
                        .find(|current| current.index == replica)
                    && current.phase == Phase::Ready
                {
                    current.phase = Phase::Unready;
                    current.last_probe = Some("refused a proxied connection".to_owned());
                    runtime.publish();
                }
            }
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
                    self.cancel_apply
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = reply.send(Response::Stopping);
                }
            },
            Event::Rollout(command) => self.rollout_command(*command),
            Event::Stop => return true,
        }
        false
    }

    /// Starts an apply in a task of its own; the answer goes out when it ends.
    fn start_apply(
        &mut self,
        request: Box<crate::control::ApplyRequest>,
        reply: oneshot::Sender<Response>,
    ) {
        if self.applying {
            // One apply at a time: a second one (say, after the first one's CLI was killed
            // while the agent went on) starts when the first has finished.
            self.queued_applies.push_back((request, reply));
            return;
        }
        self.applying = true;
        self.cancel_apply = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cancel = Arc::clone(&self.cancel_apply);
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
    fn keep_secrets_in_use(&mut self) {
        let in_use = self.services.iter().flat_map(|service| {
            std::iter::once((service.name.as_str(), &service.spec.secret_fingerprints)).chain(
                service
                    .replicas
                    .iter()
                    .map(|replica| (service.name.as_str(), &replica.spec.secret_fingerprints)),
            )
        });
        self.secrets.retain(in_use);
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.services
            .iter()
            .position(|service| service.name == name && !service.removed)
    }

    fn rollout_command(&mut self, command: rollout::Command) {
        match command {
            rollout::Command::View { service, reply } => {
                let view = self.find(&service).map(|index| {
                    let service = &self.services[index];
                    let wanted = spec_without_replicas(&service.spec);
                    rollout::ServiceView {
                        replicas: service
                            .replicas
                            .iter()
                            .filter(|replica| !replica.retiring)
                            .map(|replica| rollout::ReplicaView {
                                id: replica.index,
                                current: replica.program == service.program
                                    && spec_without_replicas(&replica.spec) == wanted,
                                ready: replica.phase == Phase::Ready,
                                failed: replica.phase == Phase::Exited
                                    || replica.failures_in_a_row >= CRASH_LOOP_AFTER,
                                last: replica
                                    .last_probe
                                    .clone()
                                    .or_else(|| replica.last_exit.clone()),
                            })
                            .collect(),
                    }
                });
                let _ = reply.send(view);
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
                let id = self.find(&service).map(|index| self.add_replica(index));
                let _ = reply.send(id);
            }
            rollout::Command::Retire { service, replica } => {
                if let Some(index) = self.find(&service) {
                    self.retire_replica(index, replica);
                }
            }
            rollout::Command::Remove { service } => {
                if let Some(index) = self.find(&service) {
                    let ids: Vec<u32> = self.services[index]
                        .replicas
                        .iter()
                        .map(|replica| replica.index)
                        .collect();
                    for id in ids {
                        self.retire_replica(index, id);
                    }
                    let service = &mut self.services[index];
                    service.removed = true;
                    service.halt.cancel();
                    service.endpoints.send_replace(Arc::new(Vec::new()));
                }
            }
            rollout::Command::Finished {
                environment,
                programs,
            } => {
                self.current = *environment;
                self.programs = programs;
                self.applying = false;
                self.rewire();
                if let Some((request, reply)) = self.queued_applies.pop_front() {
                    self.start_apply(request, reply);
                }
            }
        }
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
        let addresses = LocalAddresses::new(environment, |service| {
            self.find(service)
                .map(|index| self.services[index].proxy_port)
        });
        let config = address::substitute_json(&spec.config, &addresses);
        let text = serde_json::to_vec_pretty(&config).unwrap_or_else(|_| b"{}".to_vec());
        write_atomic(&self.dir.config(name, &spec.config), &text)
            .map_err(|error| format!("{name}: cannot write its config: {error}"))?;
        if let Some(index) = self.find(name) {
            if self.services[index].exposed != spec.expose {
                self.move_host_port(index, &spec)?;
            }
            let service = &mut self.services[index];
            service.spec = Arc::new(spec);
            service.program = Arc::new(program);
            return Ok(());
        }
        let proxy = bind_proxy(None)
            .map_err(|error| format!("{name}: cannot open its proxy port: {error}"))?;
        let proxy_port = proxy
            .local_addr()
            .map(|address| address.port())
            .unwrap_or(0);
        let mut listeners = vec![proxy];
        if let Some(port) = spec.expose {
            listeners.push(
                std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|error| {
                    format!("{name}: cannot listen on host port {port}: {error}")
                })?,
            );
        }
        for listener in &listeners {
            listener
                .set_nonblocking(true)
                .map_err(|error| format!("{name}: {error}"))?;
        }
        let index = self.services.len();
        let (endpoints, watcher) = watch::channel(Arc::new(Vec::new()));
        let halt = self.kit.halt.child_token();
        let proxy_listener = listeners
            .first()
            .and_then(|listener| listener.try_clone().ok());
        self.kit
            .serve(index, name, &spec, listeners, halt.clone(), watcher);
        self.services.push(ServiceRuntime {
            name: name.to_owned(),
            exposed: spec.expose,
            spec: Arc::new(spec),
            program: Arc::new(program),
            wave: 0,
            proxy_port,
            dependencies: Vec::new(),
            endpoints,
            discovery: self.store.discovery.clone(),
            replicas: Vec::new(),
            started_at: Some(Instant::now()),
            ever_ready: false,
            halt,
            proxy_listener,
            removed: false,
        });
        self.rewire_with(environment);
        Ok(())
    }

    /// Serves a service's proxy again with the host port of `spec` (or none): the new port is
    /// bound first, so a port in use changes nothing; the proxy's own port stays.
    fn move_host_port(&mut self, index: usize, spec: &Service) -> Result<(), String> {
        let name = self.services[index].name.clone();
        let exposed = match spec.expose {
            Some(port) => Some(std::net::TcpListener::bind(("127.0.0.1", port)).map_err(
                |error| {
                    if error.kind() == std::io::ErrorKind::AddrInUse {
                        format!("{name}: host port {port} is already in use (expose = {port})")
                    } else {
                        format!("{name}: cannot listen on host port {port}: {error}")
                    }
                },
            )?),
            None => None,
        };
        let proxy = self.services[index]
            .proxy_listener
            .as_ref()
            .and_then(|listener| listener.try_clone().ok())
            .ok_or_else(|| format!("{name}: its proxy cannot be served again"))?;
        let mut listeners = vec![proxy];
        listeners.extend(exposed);
        for listener in &listeners {
            listener
                .set_nonblocking(true)
                .map_err(|error| format!("{name}: {error}"))?;
        }
        let service = &mut self.services[index];
        service.halt.cancel();
        let halt = self.kit.halt.child_token();
        service.halt = halt.clone();
        service.exposed = spec.expose;
        let watcher = service.endpoints.subscribe();
        self.kit.serve(index, &name, spec, listeners, halt, watcher);
        Ok(())
    }

    /// Recomputes waves and dependencies from the environment the agent runs.
    fn rewire(&mut self) {
        let environment = self.current.clone();
        self.rewire_with(&environment);
    }

    fn rewire_with(&mut self, environment: &Environment) {
        let waves: BTreeMap<String, usize> = environment
            .waves()
            .iter()
            .enumerate()
            .flat_map(|(wave, names)| names.iter().map(move |name| (name.to_string(), wave)))
            .collect();
        let positions: BTreeMap<String, usize> = self
            .services
            .iter()
            .enumerate()
            .filter(|(_, service)| !service.removed)
            .map(|(index, service)| (service.name.clone(), index))
            .collect();
        for service in &mut self.services {
            if let Some((_, spec)) = environment
                .services
                .iter()
                .find(|(name, _)| name.as_str() == service.name)
            {
                service.wave = waves.get(&service.name).copied().unwrap_or(0);
                service.dependencies = spec
                    .depends_on
                    .iter()
                    .filter_map(|dependency| positions.get(dependency.as_str()).copied())
                    .collect();
            }
        }
    }

    /// Starts every service whose dependencies are all ready.
    fn reconcile(&mut self) {
        if self.stopping {
            return;
        }
        for index in 0..self.services.len() {
            let service = &self.services[index];
            if service.started_at.is_some() {
                continue;
            }
            let dependencies_ready = service
                .dependencies
                .iter()
                .all(|dependency| self.services[*dependency].is_ready());
            if dependencies_ready {
                self.start_service(index);
            }
        }
    }

    fn start_service(&mut self, index: usize) {
        let service = &mut self.services[index];
        service.started_at = Some(Instant::now());
        let count = service.spec.replicas;
        for _ in 0..count {
            self.add_replica(index);
        }
        if count == 0 {
            self.services[index].ever_ready = true;
        }
    }

    /// Adds one replica running the service's desired spec and starts it. Returns its id.
    fn add_replica(&mut self, index: usize) -> u32 {
        let service = &mut self.services[index];
        let id = service.free_id();
        service.replicas.push(Replica {
            index: id,
            generation: 0,
            pid: None,
            port: 0,
            phase: Phase::Starting,
            restarts: 0,
            failures_in_a_row: 0,
            ready_since: None,
            started_at: Instant::now(),
            probe_failures: 0,
            liveness_failures: 0,
            killed_because: None,
            last_probe: None,
            last_exit: None,
            last_output: Arc::new(Mutex::new(None)),
            stop_probe: CancellationToken::new(),
            spec: Arc::clone(&service.spec),
            program: Arc::clone(&service.program),
            retiring: false,
        });
        let position = service.replicas.len() - 1;
        self.start_replica(index, position);
        id
    }

    /// Takes a replica out of rotation and stops it; it is removed when it has exited.
    fn retire_replica(&mut self, index: usize, id: u32) {
        let service = &mut self.services[index];
        let Some(at) = service.position(id) else {
            return;
        };
        let replica = &mut service.replicas[at];
        replica.retiring = true;
        replica.stop_probe.cancel();
        match replica.pid {
            Some(pid) => spawn::signal_group(pid, Signal::SIGTERM),
            None => {
                service.replicas.remove(at);
            }
        }
        service.publish();
    }

    /// Spawns (or respawns) one replica with a fresh port and generation.
    fn start_replica(&mut self, service_index: usize, position: usize) {
        self.generations += 1;
        let generation = self.generations;
        let replica_id = self.services[service_index].replicas[position].index;
        let environment_variables = self.replica_environment(service_index, position);
        let service = &mut self.services[service_index];
        let name = service.name.clone();
        let replica = &mut service.replicas[position];
        replica.generation = generation;
        replica.phase = Phase::Starting;
        replica.ready_since = None;
        replica.started_at = Instant::now();
        replica.probe_failures = 0;
        replica.liveness_failures = 0;
        replica.killed_because = None;
        replica.stop_probe = CancellationToken::new();
        let port = match free_port() {
            Ok(port) => port,
            Err(error) => {
                let _ = self.events.send(Event::Exited {
                    service: service_index,
                    replica: replica_id,
                    generation,
                    success: false,
                    how: format!("no free port: {error}"),
                });
                return;
            }
        };
        replica.port = port;
        let mut variables: Vec<(OsString, OsString)> = environment_variables
            .into_iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect();
        variables.push(("PORT".into(), port.to_string().into()));
        let spec = Arc::clone(&replica.spec);
        match self.secrets.variables(&name, &spec.secret_fingerprints) {
            Ok(secrets) => variables.extend(secrets),
            Err(secret) => {
                let _ = self.events.send(Event::Exited {
                    service: service_index,
                    replica: replica_id,
                    generation,
                    success: false,
                    how: format!(
                        "the value of secret {secret} was not handed to the agent; apply again"
                    ),
                });
                return;
            }
        }
        let command = spec.command.clone().unwrap_or_default();
        let spawn = Spawn {
            program: replica.program.as_ref().clone(),
            args: command
                .iter()
                .skip(1)
                .chain(spec.args.iter().flatten())
                .cloned()
                .collect(),
            dir: self.root.clone(),
            env: variables,
        };
        let probe_command = |argv: &[String]| Spawn {
            program: spawn::find_program(argv.first().map_or("", String::as_str), &self.root)
                .unwrap_or_else(|_| PathBuf::from(argv.first().map_or("", String::as_str))),
            args: argv.iter().skip(1).cloned().collect(),
            dir: self.root.clone(),
            env: spawn.env.clone(),
        };
        let source = format!("{name}-{}", replica.index);
        if let Err(error) = prepare_volumes(&self.dir, &name, replica.index, &spec) {
            let _ = self.events.send(Event::Exited {
                service: service_index,
                replica: replica_id,
                generation,
                success: false,
                how: format!("cannot make its volumes: {error}"),
            });
            return;
        }
        let mut child = match spawn::spawn_replica(&spawn) {
            Ok(child) => child,
            Err(error) => {
                let _ = self.events.send(Event::Exited {
                    service: service_index,
                    replica: replica_id,
                    generation,
                    success: false,
                    how: format!("could not start {}: {error}", spawn.program.display()),
                });
                return;
            }
        };
        replica.pid = child.id();
        let log = match LogFile::open(
            &self.dir.replica_log(&name, replica.index),
            logs::ROTATE_BYTES,
        ) {
            Ok(log) => Some(Arc::new(Mutex::new(log))),
            Err(error) => {
                eprintln!("{}: {source}: cannot open its log: {error}", self.env);
                None
            }
        };
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(pump(
                stdout,
                Stream::Out,
                log.clone(),
                Arc::clone(&replica.last_output),
                self.echo,
                source.clone(),
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(pump(
                stderr,
                Stream::Err,
                log,
                Arc::clone(&replica.last_output),
                self.echo,
                source,
            ));
        }
        let events = self.events.clone();
        tokio::spawn(async move {
            let (success, how) = match child.wait().await {
                Ok(status) => (status.success(), describe_exit(status)),
                Err(error) => (false, format!("could not be waited for: {error}")),
            };
            let _ = events.send(Event::Exited {
                service: service_index,
                replica: replica_id,
                generation,
                success,
                how,
            });
        });
        let to_check = |health: &Health| -> Check {
            match health.probe(spec.port) {
                Some(Probe::Http {
                    path,
                    port: probe_port,
                    headers,
                }) => Check::Http {
                    path: path.to_owned(),
                    // The declared port means the replica's own port here, since every
                    // replica listens on the PORT it was given.
                    port: (probe_port != spec.port).then_some(probe_port),
                    headers: headers.clone(),
                },
                Some(Probe::Tcp(probe_port)) if probe_port == spec.port => Check::Tcp { port },
                Some(Probe::Tcp(probe_port)) => Check::Tcp { port: probe_port },
                Some(Probe::Grpc {
                    port: probe_port,
                    service,
                }) => Check::Grpc {
                    port: if probe_port == spec.port {
                        port
                    } else {
                        probe_port
                    },
                    service: service.to_owned(),
                },
                Some(Probe::Exec(argv)) => Check::Exec(probe_command(argv)),
                None => Check::Tcp { port },
            }
        };
        let plan = ProbePlan {
            readiness: spec.health.as_ref().map_or_else(
                || Timed {
                    check: if spec.service {
                        Check::Tcp { port }
                    } else {
                        Check::Running
                    },
                    interval: Duration::from_secs(2),
                    timeout: Duration::from_secs(1),
                    initial_delay: Duration::ZERO,
                },
                |health| Timed::of(health, to_check(health)),
            ),
            liveness: spec
                .liveness
                .as_ref()
                .map(|health| Timed::of(health, to_check(health))),
            startup: spec
                .startup
                .as_ref()
                .map(|health| Timed::of(health, to_check(health))),
        };
        let events = self.events.clone();
        let stop = replica.stop_probe.clone();
        let send = move |kind: ProbeKind, result: Result<(), String>| {
            events
                .send(Event::Probe {
                    service: service_index,
                    replica: replica_id,
                    generation,
                    kind,
                    result,
                })
                .is_ok()
        };
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = run_probes(plan, port, send) => {}
            }
        });
    }

    /// The environment of a replica, as DESIGN.md lists it.
    fn replica_environment(&self, service_index: usize, position: usize) -> Vec<(String, String)> {
        let service = &self.services[service_index];
        let replica = &service.replicas[position];
        let mut variables = vec![
            ("ENV_NAME".to_owned(), self.env.clone()),
            ("TIER_AGENT_URL".to_owned(), self.store.url.clone()),
            ("TIER_TOKEN".to_owned(), self.store.token.clone()),
            ("TIER_SERVICE".to_owned(), service.name.clone()),
            ("TIER_REPLICA".to_owned(), replica.index.to_string()),
            (
                "TIER_CONFIG".to_owned(),
                self.dir
                    .config(&service.name, &replica.spec.config)
                    .display()
                    .to_string(),
            ),
        ];
        for dependency in &service.dependencies {
            let dependency = &self.services[*dependency];
            let variable = format!(
                "{}_URL",
                dependency.name.to_ascii_uppercase().replace('-', "_")
            );
            variables.push((variable, dependency.url()));
        }
        let addresses = LocalAddresses::new(&self.current, |name| {
            self.find(name).map(|index| self.services[index].proxy_port)
        });
        for (name, port) in &replica.spec.ports {
            variables.push((format!("PORT_{}", variable_name(name)), port.to_string()));
        }
        for (name, volume) in &replica.spec.volumes {
            let path = match &volume.source {
                VolumeSource::Config { dir, .. } => self.root.join(dir),
                VolumeSource::EmptyDir { .. } => {
                    self.dir.volume(&service.name, name, Some(replica.index))
                }
                VolumeSource::Claim { .. } | VolumeSource::Secret { .. } => {
                    self.dir.volume(&service.name, name, None)
                }
            };
            variables.push((
                format!("TIER_VOLUME_{}", variable_name(name)),
                path.display().to_string(),
            ));
        }
        variables.extend(
            replica
                .spec
                .env
                .iter()
                .map(|(key, value)| (key.clone(), address::substitute(value, &addresses))),
        );
        variables
    }

    fn probed(
        &mut self,
        service_index: usize,
        replica_id: u32,
        generation: u64,
        kind: ProbeKind,
        result: Result<(), String>,
    ) {
        let service = &mut self.services[service_index];
        let Some(replica) = service
            .position(replica_id)
            .and_then(|at| service.replicas.get_mut(at))
        else {
            return;
        };
        if replica.generation != generation
            || replica.killed_because.is_some()
            || matches!(replica.phase, Phase::Backoff | Phase::Exited)
        {
            return;
        }
        let threshold =
            |health: Option<&Health>| health.map_or(3, |health| health.failure_threshold);
        match (kind, result) {
            (ProbeKind::Readiness, Ok(())) => {
                replica.probe_failures = 0;
                replica.last_probe = None;
                if replica.phase != Phase::Ready {
                    replica.phase = Phase::Ready;
                    replica.ready_since = Some(Instant::now());
                }
                if replica
                    .ready_since
                    .is_some_and(|since| since.elapsed() >= STABLE_AFTER)
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
                    kill_for(
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
                let (name, health) = match kind {
                    ProbeKind::Startup => ("startup", replica.spec.startup.as_ref()),
                    _ => ("liveness", replica.spec.liveness.as_ref()),
                };
                replica.last_probe = Some(format!("{name}: {why}"));
                let limit = threshold(health);
                if replica.liveness_failures >= limit {
                    kill_for(
                        replica,
                        format!("{name} probe failed {limit} times in a row ({why})"),
                    );
                }
            }
        }
        if service.ready() >= service.spec.replicas {
            service.ever_ready = true;
        }
        service.publish();
    }

    fn exited(
        &mut self,
        service_index: usize,
        replica_id: u32,
        generation: u64,
        success: bool,
        how: String,
    ) {
        let stopping = self.stopping;
        let service = &mut self.services[service_index];
        let Some(position) = service.position(replica_id) else {
            return;
        };
        let replica = &mut service.replicas[position];
        if replica.generation != generation {
            return;
        }
        if replica.retiring && !stopping {
            replica.stop_probe.cancel();
            service.replicas.remove(position);
            service.publish();
            return;
        }
        let policy = replica.spec.restart;
        replica.stop_probe.cancel();
        replica.pid = None;
        let was_stable = replica
            .ready_since
            .is_some_and(|since| since.elapsed() >= STABLE_AFTER);
        replica.failures_in_a_row = if was_stable {
            1
        } else {
            replica.failures_in_a_row + 1
        };
        let output = replica
            .last_output
            .lock()
            .ok()
            .and_then(|line| line.clone());
        let how = match replica.killed_because.take() {
            Some(why) => format!("killed by tier: {why}"),
            None => how,
        };
        replica.last_exit = Some(match output {
            Some(line) if !success => format!("{how}: {line}"),
            _ => how,
        });
        let restart = !stopping
            && match policy {
                Restart::Always => true,
                Restart::OnFailure => !success,
                Restart::Never => false,
            };
        if restart {
            replica.phase = Phase::Backoff;
            let exponent = replica.failures_in_a_row.saturating_sub(1).min(10);
            let delay = BACKOFF_FIRST.saturating_mul(1 << exponent).min(BACKOFF_MAX);
            let events = self.events.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = events.send(Event::RestartDue {
                    service: service_index,
                    replica: replica_id,
                    generation,
                });
            });
        } else {
            replica.phase = Phase::Exited;
        }
        service.publish();
    }

    /// Stops every replica, dependents before what they depend on: SIGTERM to each process
    /// group, then SIGKILL to those still there after the grace period.
    async fn shut_down(&mut self, inbox: &mut mpsc::UnboundedReceiver<Event>) {
        self.stopping = true;
        let last_wave = self
            .services
            .iter()
            .map(|service| service.wave)
            .max()
            .unwrap_or(0);
        for wave in (0..=last_wave).rev() {
            let in_wave: Vec<usize> = (0..self.services.len())
                .filter(|index| self.services[*index].wave == wave)
                .collect();
            for index in &in_wave {
                let service = &mut self.services[*index];
                for replica in &mut service.replicas {
                    replica.stop_probe.cancel();
                    if replica.phase == Phase::Backoff {
                        replica.phase = Phase::Exited;
                    }
                    if let Some(pid) = replica.pid {
                        spawn::signal_group(pid, Signal::SIGTERM);
                    }
                }
                service.endpoints.send_replace(Arc::new(Vec::new()));
            }
            let running = |agent: &Agent| {
                in_wave
                    .iter()
                    .flat_map(|index| agent.services[*index].replicas.iter())
                    .filter_map(|replica| replica.pid)
                    .collect::<Vec<u32>>()
            };
            let grace = in_wave
                .iter()
                .map(|index| {
                    self.services[*index]
                        .spec
                        .termination_grace
                        .map_or(STOP_GRACE, |grace| grace.to_std())
                })
                .max()
                .unwrap_or(STOP_GRACE);
            let deadline = tokio::time::Instant::now() + grace;
            while !running(self).is_empty() {
                match tokio::time::timeout_at(deadline, inbox.recv()).await {
                    Ok(Some(event)) => self.during_shutdown(event),
                    Ok(None) => break,
                    Err(_) => {
                        for pid in running(self) {
                            spawn::signal_group(pid, Signal::SIGKILL);
                        }
                        let grace = tokio::time::Instant::now() + Duration::from_secs(5);
                        while !running(self).is_empty() {
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
            Event::Exited {
                service,
                replica,
                generation,
                success,
                how,
            } => {
                self.exited(service, replica, generation, success, how);
            }
            Event::Control { reply, .. } => {
                let _ = reply.send(Response::Status(self.status()));
            }
            _ => {}
        }
    }

    fn status(&self) -> EnvStatus {
        EnvStatus {
            environment: self.env.clone(),
            agent_pid: std::process::id(),
            stopping: self.stopping,
            services: self
                .services
                .iter()
                .map(|service| self.service_status(service))
                .collect(),
        }
    }

    fn service_status(&self, service: &ServiceRuntime) -> ServiceStatus {
        let ready = service.ready();
        let desired = service.spec.replicas;
        let (state, reason) = if service.started_at.is_none() {
            let waiting: Vec<String> = service
                .dependencies
                .iter()
                .map(|index| &self.services[*index])
                .filter(|dependency| !dependency.is_ready())
                .map(|dependency| {
                    if dependency.crash_looping().is_some() {
                        format!("waiting for {}, which is crash-looping", dependency.name)
                    } else {
                        let probe = dependency.replicas.iter().find_map(|replica| {
                            replica
                                .last_probe
                                .clone()
                                .or_else(|| replica.last_exit.clone())
                        });
                        let mut text = format!(
                            "waiting for {}: {}/{} ready",
                            dependency.name,
                            dependency.ready(),
                            dependency.spec.replicas
                        );
                        if let Some(probe) = probe {
                            text.push_str(&format!(", last probe: {probe}"));
                        }
                        text
                    }
                })
                .collect();
            (ServiceState::Waiting, Some(waiting.join("; ")))
        } else if let Some(looping) = service.crash_looping() {
            let mut reason = format!(
                "crash-looping: replica {} exited {} times in a row",
                looping.index, looping.failures_in_a_row
            );
            if let Some(exit) = &looping.last_exit {
                reason.push_str(&format!(", last: {exit}"));
            }
            (ServiceState::CrashLoop, Some(reason))
        } else if ready >= desired {
            (ServiceState::Running, None)
        } else if !service.replicas.is_empty()
            && service
                .replicas
                .iter()
                .all(|replica| replica.phase == Phase::Exited)
        {
            let exit = service
                .replicas
                .iter()
                .find_map(|replica| replica.last_exit.clone());
            (
                ServiceState::Exited,
                Some(format!("exited: {}", exit.unwrap_or_default())),
            )
        } else {
            let pending = service
                .replicas
                .iter()
                .find(|replica| replica.phase != Phase::Ready);
            let detail = pending.and_then(|replica| {
                replica
                    .last_probe
                    .clone()
                    .or_else(|| replica.last_exit.clone())
            });
            let mut reason = format!("{ready}/{desired} ready");
            if let Some(detail) = detail {
                reason.push_str(&format!(", last probe: {detail}"));
            }
            let state = if service.ever_ready {
                ServiceState::Degraded
            } else {
                ServiceState::Starting
            };
            (state, Some(reason))
        };
        let unready_ms = match (service.started_at, state) {
            (
                Some(started),
                ServiceState::Starting | ServiceState::CrashLoop | ServiceState::Exited,
            ) => Some(started.elapsed().as_millis() as u64),
            _ => None,
        };
        ServiceStatus {
            name: service.name.clone(),
            version: version_of(service),
            desired,
            ready,
            restarts: service
                .replicas
                .iter()
                .map(|replica| replica.restarts)
                .sum(),
            url: service.url(),
            exposed: service.exposed.map(|port| match service.spec.protocol {
                Protocol::Http => format!("http://127.0.0.1:{port}"),
                Protocol::Tcp => format!("tcp://127.0.0.1:{port}"),
            }),
            state,
            reason,
            unready_ms,
            deadline_ms: service.spec.rollout.deadline.as_millis(),
            replicas: service
                .replicas
                .iter()
                .map(|replica| ReplicaStatus {
                    replica: replica.index,
                    pid: replica.pid,
                    port: replica.port,
                    phase: format!("{:?}", replica.phase).to_lowercase(),
                    restarts: replica.restarts,
                    last_probe: replica.last_probe.clone(),
                    last_exit: replica.last_exit.clone(),
                })
                .collect(),
        }
    }
}

/// The service's declared version plus, when it runs an applied artifact, the start of that
/// artifact's digest: `0.0.1+sha256:1a2b3c4d5e6f`.
fn version_of(service: &ServiceRuntime) -> Option<String> {
    let digest = service
        .program
        .parent()
        .and_then(|dir| dir.file_name())
        .filter(|dir| *dir == "artifacts")
        .and_then(|_| service.program.file_name())
        .and_then(|name| name.to_str())
        .filter(|name| name.len() >= 12 && name.bytes().all(|byte| byte.is_ascii_hexdigit()))
        .map(|name| format!("sha256:{}", &name[..12]));
    match (&service.spec.version, digest) {
        (Some(version), Some(digest)) => Some(format!("{version}+{digest}")),
        (Some(version), None) => Some(version.clone()),
        (None, digest) => digest,
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

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(signal) => format!("killed by {}", signal.as_str()),
            Err(_) => format!("killed by signal {signal}"),
        },
        _ => "exited".to_owned(),
    }
}

/// Copies a replica's output, line by line, to its log file and, in the foreground, to the
/// terminal; remembers the last line for status.
async fn pump(
    reader: impl tokio::io::AsyncRead + Unpin,
    stream: Stream,
    log: Option<Arc<Mutex<LogFile>>>,
    last: Arc<Mutex<Option<String>>>,
    echo: Option<usize>,
    source: String,
) {
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(log) = &log
            && let Ok(mut log) = log.lock()
        {
            let _ = log.append(stream, &line);
        }
        if let Some(width) = echo {
            println!("{}", logs::format_line(&source, &line, width));
        }
        if !line.trim().is_empty()
            && let Ok(mut last) = last.lock()
        {
            *last = Some(line);
        }
    }
}

/// Writes access log lines in the batches the proxy workers hand over, one write per batch.
async fn write_access_log(path: PathBuf, mut batches: mpsc::UnboundedReceiver<Vec<String>>) {
    let Ok(mut log) = LogFile::open(&path, logs::ROTATE_BYTES) else {
        return;
    };
    while let Some(batch) = batches.recv().await {
        let _ = log.append_all(Stream::Out, &batch);
    }
}

async fn serve_control(listener: tokio::net::UnixListener, events: mpsc::UnboundedSender<Event>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let events = events.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let Ok(Some(line)) = lines.next_line().await else {
                return;
            };
            let response = match serde_json::from_str::<Request>(&line) {
                Err(error) => Response::Error {
                    message: format!("bad request: {error}"),
                },
                Ok(request) => {
                    let (reply, answer) = oneshot::channel();
                    if events.send(Event::Control { request, reply }).is_err() {
                        return;
                    }
                    match answer.await {
                        Ok(response) => response,
                        Err(_) => return,
                    }
                }
            };
            if let Ok(mut text) = serde_json::to_string(&response) {
                text.push('\n');
                let _ = write.write_all(text.as_bytes()).await;
            }
        });
    }
}

/// Whether an agent runs for this environment: it holds the lock file for as long as it lives,
/// and the kernel lets go of it the moment the process ends, however it ends.
pub fn is_running(dir: &EnvDir) -> bool {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.lock())
    else {
        return false;
    };
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock) {
        Ok(_) => false,
        Err((_, errno)) => errno == nix::errno::Errno::EWOULDBLOCK,
    }
}

/// Where a project's environment keeps its files; for callers that only read them.
pub fn env_dir(project_root: &Path, env: &str) -> EnvDir {
    EnvDir::new(project_root, env)
}
