//! Probes: an HTTP GET that must answer 2xx or 3xx, a TCP connect, the gRPC health check
//! (grpc.health.v1 `Check` answering SERVING), or a command that must exit 0. The same kinds
//! a kubelet runs, so one declaration means the same on both runtimes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::spawn::{self, Spawn};

/// What to check on a replica.
#[derive(Clone, Debug)]
pub enum Check {
    /// A GET of `path`; on the replica's own port unless `port` names another.
    Http {
        path: String,
        port: Option<u16>,
        headers: BTreeMap<String, String>,
    },
    Tcp {
        port: u16,
    },
    Grpc {
        port: u16,
        service: String,
    },
    /// A command, started like a replica (its directory and variables).
    Exec(Spawn),
    /// Nothing to ask: a worker with no Service and no probe is ready while it runs.
    Running,
}

/// Runs one probe against a replica listening on `port`. The error says what went wrong in
/// words a user can act on ("connection refused", "answered 500", "exited with 1").
pub async fn probe(check: &Check, port: u16, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, run(check, port)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {}ms", timeout.as_millis())),
    }
}

async fn run(check: &Check, port: u16) -> Result<(), String> {
    match check {
        Check::Http {
            path,
            port: own,
            headers,
        } => http(path, own.unwrap_or(port), headers).await,
        Check::Tcp { port } => connect(*port).await.map(drop),
        Check::Grpc { port, service } => grpc(*port, service).await,
        Check::Exec(command) => exec(command).await,
        Check::Running => Ok(()),
    }
}

async fn connect(port: u16) -> Result<TcpStream, String> {
    TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|error| describe(&error))
}

async fn http(path: &str, port: u16, headers: &BTreeMap<String, String>) -> Result<(), String> {
    let mut stream = connect(port).await?;
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: tier-probe\r\n{extra}Connection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|error| describe(&error))?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        let count = stream
            .read(&mut head[read..])
            .await
            .map_err(|error| describe(&error))?;
        if count == 0 {
            return Err("closed the connection without an answer".to_owned());
        }
        read += count;
    }
    let line = String::from_utf8_lossy(&head[..read]);
    let status: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "did not answer HTTP".to_owned())?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("{path} answered {status}"))
    }
}

/// The gRPC health check over plain HTTP/2, as the kubelet's gRPC probe makes it.
async fn grpc(port: u16, service: &str) -> Result<(), String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .map_err(|error| error.to_string())?;
    let channel = endpoint.connect().await.map_err(|error| {
        let text = error.to_string();
        if text.contains("refused") || format!("{error:?}").contains("ConnectionRefused") {
            "connection refused".to_owned()
        } else {
            format!("no gRPC connection: {text}")
        }
    })?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map_err(|status| {
            format!(
                "health check failed: {} {}",
                status.code(),
                status.message()
            )
        })?;
    match ServingStatus::try_from(answer.into_inner().status) {
        Ok(ServingStatus::Serving) => Ok(()),
        Ok(other) => Err(format!("gRPC health is {}", other.as_str_name())),
        Err(_) => Err("gRPC health answered an unknown status".to_owned()),
    }
}

/// The command's exit status; a command that outlives the timeout is killed with its
/// process group when the probe gives up (the child is dropped).
async fn exec(command: &Spawn) -> Result<(), String> {
    let mut child =
        spawn::spawn_probe(command).map_err(|error| format!("cannot start: {error}"))?;
    let pid = child.id();
    let guard = KillGroup(pid);
    let status = child.wait().await.map_err(|error| error.to_string())?;
    drop(guard);
    if status.success() {
        Ok(())
    } else {
        Err(match status.code() {
            Some(code) => format!("exited with {code}"),
            None => "was killed by a signal".to_owned(),
        })
    }
}

/// Kills a probe command's whole group when the probe ends early (its timeout).
struct KillGroup(Option<u32>);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            spawn::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn describe(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        _ => error.to_string(),
    }
}
