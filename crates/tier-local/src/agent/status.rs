//! What `tier status` shows of a service, worked out from the supervisor's state alone, so the
//! words a user reads (waiting, crash-looping, exited, degraded) follow from the same state
//! the supervisor acts on.

use std::time::Instant;

use tier_model::environment::Protocol;

use super::supervisor::{Phase, Supervised, Supervisor};
use crate::control::{ReplicaStatus, ServiceState, ServiceStatus};

/// Where a service is reached: its proxy, and its host port when it has `expose`.
pub(crate) struct Reach {
    pub proxy_port: u16,
    pub exposed: Option<u16>,
}

/// A service's proxy address as its dependents get it in `<SERVICE>_URL`, the protocol's word
/// as its scheme.
pub(crate) fn url(protocol: Protocol, port: u16) -> String {
    format!("{protocol}://127.0.0.1:{port}")
}

/// One service's status at `now`.
pub(crate) fn service_status(
    supervisor: &Supervisor,
    name: &str,
    service: &Supervised,
    reach: &Reach,
    now: Instant,
) -> ServiceStatus {
    let ready = service.ready();
    let desired = service.spec.replicas;
    let (state, reason) = if service.started_at.is_none() {
        (
            ServiceState::Waiting,
            Some(waiting_for(supervisor, service)),
        )
    } else if let Some(looping) = service.crash_looping() {
        let mut reason = format!(
            "crash-looping: replica {} exited {} times in a row",
            looping.id, looping.failures_in_a_row
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
        ) => Some(now.saturating_duration_since(started).as_millis() as u64),
        _ => None,
    };
    ServiceStatus {
        name: name.to_owned(),
        version: version_of(service),
        desired,
        ready,
        restarts: service
            .replicas
            .iter()
            .map(|replica| replica.restarts)
            .sum(),
        url: url(service.spec.protocol, reach.proxy_port),
        exposed: reach.exposed.map(|port| url(service.spec.protocol, port)),
        state,
        reason,
        unready_ms,
        deadline_ms: service.spec.rollout.deadline.as_millis(),
        replicas: service
            .replicas
            .iter()
            .map(|replica| ReplicaStatus {
                replica: replica.id,
                pid: replica.pid,
                port: replica.port,
                phase: replica.phase,
                restarts: replica.restarts,
                last_probe: replica.last_probe.clone(),
                last_exit: replica.last_exit.clone(),
            })
            .collect(),
    }
}

/// Why a service that has not started waits: each dependency not ready yet, with its own
/// trouble.
fn waiting_for(supervisor: &Supervisor, service: &Supervised) -> String {
    let waiting: Vec<String> = service
        .dependencies
        .iter()
        .filter_map(|name| Some((name, supervisor.service(name)?)))
        .filter(|(_, dependency)| !dependency.is_ready())
        .map(|(name, dependency)| {
            if dependency.crash_looping().is_some() {
                format!("waiting for {name}, which is crash-looping")
            } else {
                let probe = dependency.replicas.iter().find_map(|replica| {
                    replica
                        .last_probe
                        .clone()
                        .or_else(|| replica.last_exit.clone())
                });
                let mut text = format!(
                    "waiting for {name}: {}/{} ready",
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
    waiting.join("; ")
}

/// The service's declared version plus, when it runs an applied artifact, the start of that
/// artifact's digest: `0.0.1+sha256:1a2b3c4d5e6f`.
fn version_of(service: &Supervised) -> Option<String> {
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
