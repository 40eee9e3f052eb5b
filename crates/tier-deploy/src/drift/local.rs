//! Drift of a local environment, against its deployed revision: a replica that should run and
//! does not (its agent's status), a stored program changed or removed on disk (the copy
//! under `.tier/artifacts/` that replicas run from no longer has the revision's digest), and
//! a service's config file edited after the apply (its bytes are not what the agent wrote).
//! An environment whose agent is stopped has nothing running to compare; its stored programs
//! are still checked.

use std::path::Path;

use serde::Serialize;
use tier_local::config_file;
use tier_local::control::{EnvStatus, Phase};
use tier_model::Environment;
use tier_model::environment::Restart;
use tier_state::paths::EnvDir;
use tier_state::{ArtifactStore, Revision, State, Stored};

use super::{DriftReport, Found};
use crate::DeployError;
use crate::artifacts::environment_of;

/// One difference between a local environment and its deployed revision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocalDrift {
    pub service: String,
    pub change: LocalChange,
    /// Why this is not drift (a replica its restart policy leaves down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
}

/// What differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum LocalChange {
    /// A replica's process is gone: restarting after a back-off, or down for good.
    NotRunning {
        replica: u32,
        phase: Phase,
        last_exit: Option<String>,
    },
    /// The stored program replicas run has other bytes than the revision's artifact, or is
    /// gone (`now` is `None`).
    ProgramChanged {
        path: String,
        digest: String,
        now: Option<String>,
    },
    /// The config file replicas read is not what the agent wrote, or is gone.
    ConfigEdited { path: String, missing: bool },
}

impl LocalChange {
    /// A few words for a table cell.
    pub fn short(&self) -> String {
        match self {
            LocalChange::NotRunning { replica, .. } => format!("replica {replica} down"),
            LocalChange::ProgramChanged { now: Some(_), .. } => "program changed".to_owned(),
            LocalChange::ProgramChanged { now: None, .. } => "program missing".to_owned(),
            LocalChange::ConfigEdited { missing: false, .. } => "config edited".to_owned(),
            LocalChange::ConfigEdited { missing: true, .. } => "config missing".to_owned(),
        }
    }
}

impl LocalDrift {
    /// A stable key for the records over time: the service and what of it.
    pub fn key(&self) -> String {
        let what = match &self.change {
            LocalChange::NotRunning { replica, .. } => format!("replica {replica}"),
            LocalChange::ProgramChanged { .. } => "program".to_owned(),
            LocalChange::ConfigEdited { .. } => "config".to_owned(),
        };
        format!("service {}: {what}", self.service)
    }

    /// One line: `backend: replica 2 is not running (backoff; last exit: exit status 1)`.
    pub fn describe(&self) -> String {
        let what = match &self.change {
            LocalChange::NotRunning {
                replica,
                phase,
                last_exit,
            } => {
                let exit = last_exit
                    .as_ref()
                    .map(|exit| format!("; last exit: {exit}"))
                    .unwrap_or_default();
                format!(
                    "replica {replica} is not running ({}{exit})",
                    phase.as_str()
                )
            }
            LocalChange::ProgramChanged {
                path,
                digest,
                now: Some(now),
            } => format!("its program {path} changed on disk: {now}, the revision's is {digest}"),
            LocalChange::ProgramChanged {
                path,
                digest,
                now: None,
            } => format!("its program {path} ({digest}) is gone"),
            LocalChange::ConfigEdited {
                path,
                missing: false,
            } => format!("its config file {path} was edited after the apply"),
            LocalChange::ConfigEdited {
                path,
                missing: true,
            } => format!("its config file {path} is gone"),
        };
        let expected = self
            .expected
            .as_ref()
            .map(|why| format!(" (expected: {why})"))
            .unwrap_or_default();
        format!("{}: {what}{expected}", self.service)
    }
}

/// Compares the environment with its deployed revision. Reads the state file only when it
/// exists: checking never creates one.
pub(super) fn check(
    root: &Path,
    env: &str,
    programs_by: Programs,
) -> Result<(DriftReport, Option<State>), DeployError> {
    let dir = EnvDir::new(root, env);
    let mut report = DriftReport {
        env: env.to_owned(),
        revision: None,
        stopped: None,
        found: Vec::new(),
        history: Vec::new(),
    };
    if !dir.state().exists() {
        return Ok((report, None));
    }
    let state = State::open(dir.root()).map_err(|error| DeployError::state(env, error))?;
    let Some(deployed) = state
        .deployed()
        .map_err(|error| DeployError::state(env, error))?
    else {
        return Ok((report, Some(state)));
    };
    let environment =
        environment_of(&deployed).map_err(|why| DeployError::Artifacts(format!("{env}: {why}")))?;
    report.revision = Some(deployed.number);
    let shown = |path: &Path| {
        path.strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let mut found = programs(root, &deployed, programs_by, &shown);
    match crate::local::status(root, env) {
        Ok(status) if !status.stopping => {
            found.extend(replicas(&environment, &status));
            found.extend(configs(&dir, &environment, &status, &shown));
        }
        Ok(_) => report.stopped = Some(format!("{env} is stopping")),
        Err(why) => report.stopped = Some(format!("{env}: {why}")),
    }
    report.found = found.into_iter().map(Found::Local).collect();
    Ok((report, Some(state)))
}

/// How the stored programs are checked: by their bytes (`tier drift`, an apply), or only
/// whether each is still there (the DRIFT column of `tier status`, which must stay quick:
/// hashing every program reads them all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Programs {
    Hashed,
    Present,
}

/// The stored copies of the revision's programs that no longer hold its bytes (or, by
/// `Programs::Present`, that are gone).
fn programs(
    root: &Path,
    deployed: &Revision,
    by: Programs,
    shown: &dyn Fn(&Path) -> String,
) -> Vec<LocalDrift> {
    let store = ArtifactStore::new(root);
    let mut found = Vec::new();
    for (service, artifact) in &deployed.artifacts {
        let stored = match by {
            Programs::Hashed => store.check(&artifact.digest),
            Programs::Present => store.check_present(&artifact.digest),
        };
        let (path, now) = match stored {
            None | Some(Stored::Intact) => continue,
            Some(Stored::Changed { path, digest }) => (path, Some(digest)),
            Some(Stored::Missing { path }) => (path, None),
        };
        found.push(LocalDrift {
            service: service.clone(),
            change: LocalChange::ProgramChanged {
                path: shown(&path),
                digest: artifact.digest.clone(),
                now,
            },
            expected: None,
        });
    }
    found
}

/// The replicas whose process is gone. One its restart policy leaves down after it exited is
/// listed as expected.
fn replicas(environment: &Environment, status: &EnvStatus) -> Vec<LocalDrift> {
    let mut found = Vec::new();
    for service in &status.services {
        let restart = environment
            .services
            .iter()
            .find(|(name, _)| name.as_str() == service.name)
            .map(|(_, spec)| spec.restart);
        for replica in &service.replicas {
            if !replica.phase.is_down() {
                continue;
            }
            let expected = match (replica.phase, restart) {
                (Phase::Exited, Some(Restart::Never)) => Some("restart = \"never\"".to_owned()),
                (Phase::Exited, Some(Restart::OnFailure)) => {
                    Some("restart = \"on-failure\" after a clean exit".to_owned())
                }
                _ => None,
            };
            found.push(LocalDrift {
                service: service.name.clone(),
                change: LocalChange::NotRunning {
                    replica: replica.replica,
                    phase: replica.phase,
                    last_exit: replica.last_exit.clone(),
                },
                expected,
            });
        }
    }
    found
}

/// The config files of running services whose bytes are not what the agent wrote.
fn configs(
    dir: &EnvDir,
    environment: &Environment,
    status: &EnvStatus,
    shown: &dyn Fn(&Path) -> String,
) -> Vec<LocalDrift> {
    let ports = config_file::remembered_ports(dir);
    let mut found = Vec::new();
    for name in environment.services.keys() {
        if !status
            .services
            .iter()
            .any(|running| running.name == name.as_str())
        {
            continue;
        }
        let (path, wanted) = expected_config(dir, environment, name.as_str(), &ports);
        let missing = match std::fs::read(&path) {
            Ok(bytes) if bytes == wanted => continue,
            Ok(_) => false,
            Err(_) => true,
        };
        found.push(LocalDrift {
            service: name.to_string(),
            change: LocalChange::ConfigEdited {
                path: shown(&path),
                missing,
            },
            expected: None,
        });
    }
    found
}

/// Puts back what an apply with nothing else to do can: each stored program changed or gone
/// (copied again from its source, which still has the revision's bytes when the plan is
/// empty) and each config file edited or gone (written again as the agent wrote it). A
/// replica down is its agent's to restart. Returns what was put back, in words.
pub(crate) fn repair(root: &Path, env: &str) -> Result<Vec<String>, DeployError> {
    let (report, state) = check(root, env, Programs::Hashed)?;
    let Some(state) = state else {
        return Ok(Vec::new());
    };
    let Some(deployed) = state
        .deployed()
        .map_err(|error| DeployError::state(env, error))?
    else {
        return Ok(Vec::new());
    };
    let environment =
        environment_of(&deployed).map_err(|why| DeployError::Artifacts(format!("{env}: {why}")))?;
    let dir = EnvDir::new(root, env);
    let store = ArtifactStore::new(root);
    let ports = config_file::remembered_ports(&dir);
    let mut fixed = Vec::new();
    for found in &report.found {
        let Found::Local(drift) = found else {
            continue;
        };
        match &drift.change {
            LocalChange::ProgramChanged { digest, .. } => {
                let Some(artifact) = deployed.artifacts.get(&drift.service) else {
                    continue;
                };
                let source = root.join(&artifact.source);
                if store
                    .repair(digest, &source)
                    .map_err(|error| DeployError::state(env, error))?
                {
                    fixed.push(format!(
                        "{}: its program, copied again from {}",
                        drift.service, artifact.source
                    ));
                }
            }
            LocalChange::ConfigEdited { path, .. } => {
                let (file, text) = expected_config(&dir, &environment, &drift.service, &ports);
                tier_state::paths::write_atomic(&file, &text).map_err(|error| {
                    DeployError::Artifacts(format!("{env}: cannot write {path}: {error}"))
                })?;
                fixed.push(format!("{}: its config file {path}", drift.service));
            }
            LocalChange::NotRunning { .. } => {}
        }
    }
    Ok(fixed)
}

/// The path and the bytes of a service's config file as its agent writes it, with each
/// service's proxy on the port `ports.json` remembers.
fn expected_config(
    dir: &EnvDir,
    environment: &Environment,
    service: &str,
    ports: &std::collections::BTreeMap<String, u16>,
) -> (std::path::PathBuf, Vec<u8>) {
    let config = environment
        .services
        .iter()
        .find(|(name, _)| name.as_str() == service)
        .map(|(_, spec)| spec.config.clone())
        .unwrap_or_default();
    let bytes = config_file::contents(environment, &config, |service| ports.get(service).copied());
    (dir.config(service, &config), bytes)
}
