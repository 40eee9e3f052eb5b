//! The agent's control socket: newline-delimited JSON over a Unix socket that only its owner
//! can open. The CLI sends one request per connection and reads one response.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secrets::SecretValues;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    Status,
    Shutdown,
    /// Roll the running environment to a new spec: waves in dependency order, replica by
    /// replica, each new replica gated on readiness.
    Apply(Box<ApplyRequest>),
    /// Stop the running apply at its next safe point and undo it.
    Cancel,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApplyRequest {
    pub environment: tier_model::Environment,
    /// The program each service runs, by service name: its artifact's stored copy.
    pub programs: BTreeMap<String, PathBuf>,
    /// The values of the secrets the new spec names, by fingerprint. Kept in the agent's
    /// memory only.
    #[serde(default, skip_serializing_if = "SecretValues::is_empty")]
    pub secrets: SecretValues,
}

/// How an apply ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum ApplyOutcome {
    Succeeded,
    /// A service failed its gate; the services already changed were rolled back.
    RolledBack {
        service: String,
        reason: String,
    },
    /// A service failed its gate; what succeeded was kept (`on_failure = "halt"`).
    Halted {
        service: String,
        reason: String,
    },
}

/// One step of an apply on a running environment, as the agent reports it with its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "note", rename_all = "kebab-case")]
pub enum RolloutNote {
    /// New replicas of the service's new spec were started.
    Started {
        service: String,
        replicas: Vec<u32>,
    },
    /// They passed their readiness gate.
    Ready {
        service: String,
        replicas: Vec<u32>,
    },
    /// Every replica runs the new spec.
    RolledOut {
        service: String,
        replicas: usize,
    },
    /// The new spec no longer has the service; its replicas were stopped.
    Removed {
        service: String,
    },
    /// A replica failed its gate (or the apply was interrupted).
    Failed {
        service: String,
        reason: String,
    },
    /// A service this apply changed goes back to its old spec.
    RollingBack {
        service: String,
    },
    NotRolledBack {
        service: String,
        reason: String,
    },
}

impl RolloutNote {
    pub fn service(&self) -> &str {
        match self {
            RolloutNote::Started { service, .. }
            | RolloutNote::Ready { service, .. }
            | RolloutNote::RolledOut { service, .. }
            | RolloutNote::Removed { service }
            | RolloutNote::Failed { service, .. }
            | RolloutNote::RollingBack { service }
            | RolloutNote::NotRolledBack { service, .. } => service,
        }
    }
}

impl std::fmt::Display for RolloutNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |ids: &[u32]| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            RolloutNote::Started { service, replicas } => {
                write!(f, "{service}: started replica {}", join(replicas))
            }
            RolloutNote::Ready { service, replicas } => {
                write!(f, "{service}: replica {} ready", join(replicas))
            }
            RolloutNote::RolledOut { service, replicas } => write!(
                f,
                "{service}: {replicas} replica{} of the new spec",
                if *replicas == 1 { "" } else { "s" }
            ),
            RolloutNote::Removed { service } => write!(f, "{service}: removed"),
            RolloutNote::Failed { service, reason } => write!(f, "{service}: failed: {reason}"),
            RolloutNote::RollingBack { service } => write!(f, "{service}: rolling back"),
            RolloutNote::NotRolledBack { service, reason } => {
                write!(f, "{service}: could not roll back: {reason}")
            }
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Status(EnvStatus),
    Stopping,
    Applied {
        outcome: ApplyOutcome,
        log: Vec<RolloutNote>,
    },
    Error {
        message: String,
    },
}

/// An environment as its agent sees it now.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnvStatus {
    pub environment: String,
    pub agent_pid: u32,
    /// Set once the agent is stopping.
    pub stopping: bool,
    pub services: Vec<ServiceStatus>,
}

impl EnvStatus {
    pub fn all_ready(&self) -> bool {
        self.services
            .iter()
            .all(|service| service.state == ServiceState::Running)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub version: Option<String>,
    pub desired: u32,
    pub ready: u32,
    pub restarts: u32,
    /// The proxy address replicas of other services reach it by (`<SERVICE>_URL`).
    pub url: String,
    /// The host port it is published on, when it has `expose`.
    pub exposed: Option<String>,
    pub state: ServiceState,
    /// Why it is not running, in words: "waiting for backend: 1/3 ready, last probe: ...".
    pub reason: Option<String>,
    /// How long it has been started without being fully ready, in milliseconds.
    pub unready_ms: Option<u64>,
    /// How long it may take to become ready, in milliseconds.
    pub deadline_ms: u64,
    pub replicas: Vec<ReplicaStatus>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceState {
    /// Not started: waiting for the services it depends on.
    Waiting,
    /// Started, not every replica ready yet.
    Starting,
    /// Every replica ready.
    Running,
    /// Was running; some replicas are not ready now.
    Degraded,
    /// Replicas keep exiting before they become ready.
    CrashLoop,
    /// Replicas exited and the restart policy says they stay down.
    Exited,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Waiting => "waiting",
            ServiceState::Starting => "starting",
            ServiceState::Running => "running",
            ServiceState::Degraded => "degraded",
            ServiceState::CrashLoop => "crash-loop",
            ServiceState::Exited => "exited",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub replica: u32,
    pub pid: Option<u32>,
    pub port: u16,
    pub phase: Phase,
    pub restarts: u32,
    pub last_probe: Option<String>,
    pub last_exit: Option<String>,
}

/// Where a replica is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Spawned, not ready yet.
    Starting,
    Ready,
    /// Was ready; probes fail now.
    Unready,
    /// Exited; a restart is scheduled.
    Backoff,
    /// Exited and stays down (restart policy, or the agent is stopping).
    Exited,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Unready => "unready",
            Phase::Backoff => "backoff",
            Phase::Exited => "exited",
        }
    }

    /// Whether the replica's process is gone (exited, restarting later or never).
    pub fn is_down(self) -> bool {
        matches!(self, Phase::Backoff | Phase::Exited)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No agent answers on the socket.
    #[error("not running")]
    NotRunning,
    #[error("the agent did not answer: {0}")]
    Io(#[from] std::io::Error),
    #[error("the agent answered something unreadable: {0}")]
    Protocol(#[from] serde_json::Error),
}

/// Sends one request and waits for the answer.
pub fn call(socket: &Path, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let mut stream = match UnixStream::connect(socket) {
        Ok(stream) => stream,
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ClientError::NotRunning);
        }
        Err(error) => return Err(error.into()),
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    Ok(serde_json::from_str(&answer)?)
}
