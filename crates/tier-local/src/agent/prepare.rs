//! Everything that can fail before a process starts: the environment's lock, each command's
//! program, proxy and host ports, config files and the control socket, each claimed here so
//! that `run` starts from a state that is known to work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tier_model::Environment;

use crate::config_file;
use crate::secrets::SecretValues;
use crate::spawn;
use crate::store;
use tier_state::paths::{EnvDir, STORE_PORT, write_atomic};

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
    pub(super) options: AgentOptions,
    pub(super) dir: EnvDir,
    pub(super) lock: nix::fcntl::Flock<std::fs::File>,
    pub(super) control: std::os::unix::net::UnixListener,
    pub(super) services: Vec<PreparedService>,
    pub(super) store: store::Claimed,
}

/// One service's claims, in the order of the environment's services.
pub(super) struct PreparedService {
    pub(super) program: PathBuf,
    /// The proxy's own listener first, then the host port's when it has `expose`.
    pub(super) listeners: Vec<std::net::TcpListener>,
    pub(super) proxy_port: u16,
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

    let remembered = config_file::remembered_ports(&dir);
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
                    format!(
                        "service {name}: {}",
                        super::proxies::port_in_use(name, &env, port)
                    )
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

    for (name, service) in &options.environment.services {
        let text = config_file::contents(&options.environment, &service.config, |service| {
            ports.get(service).copied()
        });
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
    crate::logs::mark_run(&dir.logs())
        .map_err(|error| fail(format!("cannot write to {}: {error}", dir.logs().display())))?;
    Ok(Prepared {
        options,
        dir,
        lock,
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

/// The port used last time when it is free, so URLs stay stable; any free port otherwise.
pub(super) fn bind_proxy(remembered: Option<u16>) -> std::io::Result<std::net::TcpListener> {
    if let Some(port) = remembered
        && let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port))
    {
        return Ok(listener);
    }
    std::net::TcpListener::bind(("127.0.0.1", 0))
}

/// A free port for a replica to listen on.
pub(super) fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
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
