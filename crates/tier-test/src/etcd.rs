//! A real etcd server for tests and benchmarks: `/usr/bin/etcd` (Debian's etcd-server, 3.4) on
//! free 127.0.0.1 ports with a data directory of its own, healthy (its `/health` answers
//! `"health":"true"`) before `start` returns, killed when dropped. Only the binary is started
//! here; clients (tier-store's `EtcdStore`, `tier store serve`) connect to [`EtcdServer::endpoint`].
//!
//! A missing binary is an error that names the package to install, so a test that needs etcd
//! fails rather than skips.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long etcd may take to answer after it was started.
const STARTUP: Duration = Duration::from_secs(60);

/// How many times a start is retried with new ports when another process took one of them.
const ATTEMPTS: usize = 5;

/// Ports this process handed out, so two servers of one test binary never get the same one.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

pub struct EtcdServer {
    /// `None` only while a restart is starting the next process.
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    data: tempfile::TempDir,
}

impl EtcdServer {
    /// Starts etcd with its data under a new temporary directory in `parent` (the system's
    /// temporary directory when `None`). Fails, naming the package to install, when there is no
    /// etcd binary.
    ///
    /// etcd is started from the calling thread and dies with it (the parent-death signal
    /// follows the thread that forked), so call this from a thread that outlives the server:
    /// a test's or a runtime's own, not the blocking pool's.
    pub async fn start(parent: Option<&Path>) -> Result<EtcdServer, String> {
        let data = data_dir(parent)?;
        let mut last_error = String::new();
        for _ in 0..ATTEMPTS {
            let client_port = free_port()?;
            let peer_port = free_port()?;
            let mut child = spawn(data.path(), client_port, peer_port)?;
            match wait_healthy_async(&mut child, data.path(), client_port).await {
                Ok(()) => {
                    return Ok(EtcdServer {
                        child: Some(child),
                        client_port,
                        peer_port,
                        data,
                    });
                }
                Err(error) => {
                    last_error = error;
                    kill(&mut child);
                    // etcd keeps its peer address in its data: start the next ports afresh.
                    let _ = std::fs::remove_dir_all(data.path().join("member"));
                }
            }
        }
        Err(format!(
            "etcd did not start after {ATTEMPTS} attempts: {last_error}"
        ))
    }

    /// [`EtcdServer::start`] for code that is not async.
    pub fn start_blocking(parent: Option<&Path>) -> Result<EtcdServer, String> {
        let data = data_dir(parent)?;
        let mut last_error = String::new();
        for _ in 0..ATTEMPTS {
            let client_port = free_port()?;
            let peer_port = free_port()?;
            let mut child = spawn(data.path(), client_port, peer_port)?;
            match wait_healthy(&mut child, data.path(), client_port) {
                Ok(()) => {
                    return Ok(EtcdServer {
                        child: Some(child),
                        client_port,
                        peer_port,
                        data,
                    });
                }
                Err(error) => {
                    last_error = error;
                    kill(&mut child);
                    // etcd keeps its peer address in its data: start the next ports afresh.
                    let _ = std::fs::remove_dir_all(data.path().join("member"));
                }
            }
        }
        Err(format!(
            "etcd did not start after {ATTEMPTS} attempts: {last_error}"
        ))
    }

    /// Kills etcd (SIGKILL) and starts it again on the same ports and data, as after a crash.
    pub async fn restart(&mut self) -> Result<(), String> {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
        let mut child = spawn(self.data.path(), self.client_port, self.peer_port)?;
        let healthy = wait_healthy_async(&mut child, self.data.path(), self.client_port).await;
        self.child = Some(child);
        healthy
    }

    /// `HOST:PORT` of the client listener.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The client listener's port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The server's process id (for reading its memory use); 0 while it restarts.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            kill(child);
        }
    }
}

fn data_dir(parent: Option<&Path>) -> Result<tempfile::TempDir, String> {
    match parent {
        Some(parent) => tempfile::tempdir_in(parent),
        None => tempfile::tempdir(),
    }
    .map_err(|error| format!("cannot create etcd's data directory: {error}"))
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// What one look at a starting etcd found.
enum Health {
    Ready,
    /// Not yet: the last answer, for the error when the wait runs out.
    NotYet(String),
}

/// Asks etcd's `/health` once; an exited etcd is an error with its log.
fn check_health(child: &mut Child, data: &Path, client_port: u16) -> Result<Health, String> {
    if let Ok(Some(status)) = child.try_wait() {
        return Err(format!("etcd exited ({status}):\n{}", log_tail(data)));
    }
    let (status, body) = crate::http_call(client_port, "GET", "/health", None, None);
    if status == 200 && body.replace(' ', "").contains("\"health\":\"true\"") {
        Ok(Health::Ready)
    } else {
        Ok(Health::NotYet(format!("{status}: {body}")))
    }
}

fn not_healthy(data: &Path, last: &str) -> String {
    format!(
        "etcd did not report itself healthy within {STARTUP:?} (last answer {last}):\n{}",
        log_tail(data)
    )
}

#[expect(
    clippy::disallowed_methods,
    reason = "waits for an external process to answer, checking every 50 ms with a deadline"
)]
fn wait_healthy(child: &mut Child, data: &Path, client_port: u16) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP;
    loop {
        let last = match check_health(child, data, client_port)? {
            Health::Ready => return Ok(()),
            Health::NotYet(last) => last,
        };
        if Instant::now() >= deadline {
            return Err(not_healthy(data, &last));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn wait_healthy_async(
    child: &mut Child,
    data: &Path,
    client_port: u16,
) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP;
    loop {
        let last = match check_health(child, data, client_port)? {
            Health::Ready => return Ok(()),
            Health::NotYet(last) => last,
        };
        if Instant::now() >= deadline {
            return Err(not_healthy(data, &last));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn log_tail(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join("etcd.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// The etcd binary, or an error that says how to install it.
pub fn etcd_binary() -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|directory| directory.join("etcd"))
        .chain([PathBuf::from("/usr/bin/etcd")]);
    for candidate in on_path {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(
        "no etcd binary on PATH or at /usr/bin/etcd; these tests need a real etcd 3.4: \
         apt-get install -y etcd-server"
            .to_owned(),
    )
}

fn spawn(data: &Path, client_port: u16, peer_port: u16) -> Result<Child, String> {
    let etcd = etcd_binary()?;
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let log = std::fs::File::create(data.join("etcd.log"))
        .map_err(|error| format!("cannot create etcd's log file: {error}"))?;
    // setpriv makes the kernel kill etcd when the thread that started it dies, so a test
    // process killed by a signal leaves no etcd behind.
    let setpriv = Path::new("/usr/bin/setpriv");
    #[expect(
        clippy::disallowed_methods,
        reason = "tests start a real etcd; tier_local::spawn is for replicas and its users must not depend on tier-local"
    )]
    let mut command = if setpriv.is_file() {
        let mut command = std::process::Command::new(setpriv);
        command.args(["--pdeathsig", "KILL", "--"]).arg(&etcd);
        command
    } else {
        std::process::Command::new(&etcd)
    };
    command
        .arg("--name=default")
        .arg(format!("--data-dir={}", data.join("member").display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=default={peer}"))
        .arg("--logger=zap")
        .arg("--log-outputs=stderr")
        .arg("--log-level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    command
        .spawn()
        .map_err(|error| format!("cannot start {}: {error}", etcd.display()))
}

/// A port that was free a moment ago and that this process has not handed out before.
pub fn free_port() -> Result<u16, String> {
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|error| format!("cannot bind a port on 127.0.0.1: {error}"))?;
        let port = listener
            .local_addr()
            .map_err(|error| format!("cannot read a bound port: {error}"))?
            .port();
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    Err("no free port on 127.0.0.1".to_owned())
}
