//! `tier drift` and the drift column of `tier status`: what runs differently from the
//! deployed revision, and since when. A kubernetes environment's live objects are compared
//! with the revision's ([`kube`]); a local environment's replicas, stored programs and config
//! files with what its agent was given ([`local`]). Each check is recorded with first- and
//! last-seen times in the environment's own records (its cluster, or its state file), so
//! `tier drift --history` answers "since when".

mod kube;
mod local;

use std::collections::BTreeMap;

use serde::Serialize;
use tier_model::Purpose;
use tier_model::environment::Runtime as RuntimeKind;
use tier_state::{DriftRecord, Records};

use crate::{DeployError, Workspace};

pub(crate) use kube::live_drift;
pub(crate) use local::repair as repair_local;
pub use local::{LocalChange, LocalDrift};

/// What a drift check found.
#[derive(Clone, Debug, Serialize)]
pub struct DriftReport {
    pub env: String,
    /// The revision compared with; `None` when nothing is deployed.
    pub revision: Option<u64>,
    /// Why nothing runs to compare with, when that is so: a local environment whose agent is
    /// stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Every difference, drift and `expected` ones alike.
    pub found: Vec<Found>,
    /// The records over time, newest first (filled by [`drift`], empty after [`check`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<DriftRecord>,
}

/// One difference, from either runtime.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Found {
    Kube(Box<tier_kube::Drift>),
    Local(LocalDrift),
}

impl Found {
    /// The service it belongs to, when it belongs to one.
    pub fn service(&self) -> Option<&str> {
        match self {
            Found::Kube(drift) => drift.service.as_deref(),
            Found::Local(drift) => Some(&drift.service),
        }
    }

    /// Why it is not drift, when it is not (shown only with `--all`).
    pub fn expected(&self) -> Option<&str> {
        match self {
            Found::Kube(drift) => drift.expected.as_deref(),
            Found::Local(drift) => drift.expected.as_deref(),
        }
    }

    /// A stable key for the records over time.
    pub fn key(&self) -> String {
        match self {
            Found::Kube(drift) => drift.key(),
            Found::Local(drift) => drift.key(),
        }
    }

    /// One line, in words.
    pub fn describe(&self) -> String {
        match self {
            Found::Kube(drift) => drift.describe(),
            Found::Local(drift) => drift.describe(),
        }
    }

    /// A few words for a table cell: `spec.replicas edited`, `replica 2 down`.
    pub fn short(&self) -> String {
        match self {
            Found::Kube(drift) => match &drift.change {
                tier_kube::Change::Edited { path, .. } => {
                    format!("{} {path} edited", drift.kind)
                }
                tier_kube::Change::Image { .. } => "image differs".to_owned(),
                tier_kube::Change::Deleted => format!("{} deleted", drift.kind),
                tier_kube::Change::Added => format!("{} added", drift.kind),
                tier_kube::Change::Extra { path, .. } => format!("{path} added"),
            },
            Found::Local(drift) => drift.change.short(),
        }
    }
}

impl DriftReport {
    /// The drift (not the `expected` differences) of each service, in a few words each.
    pub fn by_service(&self) -> BTreeMap<String, Vec<String>> {
        let mut shown: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for found in self.found.iter().filter(|found| found.expected().is_none()) {
            if let Some(service) = found.service() {
                shown
                    .entry(service.to_owned())
                    .or_default()
                    .push(found.short());
            }
        }
        shown
    }
}

/// Compares what runs with the deployed revision, recording nothing: the drift column of
/// `tier status`. Quick: a local environment's stored programs are checked for presence,
/// not hashed (`tier drift` hashes them).
pub fn check(workspace: &mut Workspace, env: &str) -> Result<DriftReport, DeployError> {
    Ok(run(workspace, env, local::Programs::Present)?.0)
}

/// Compares what runs with the deployed revision and records what differs, with first- and
/// last-seen times, in the environment's records.
pub fn drift(workspace: &mut Workspace, env: &str) -> Result<DriftReport, DeployError> {
    let (mut report, backend) = run(workspace, env, local::Programs::Hashed)?;
    let current: Vec<(String, String)> = report
        .found
        .iter()
        .filter(|found| found.expected().is_none())
        .map(|found| (found.key(), found.describe()))
        .collect();
    report.history = match backend {
        Backend::Cluster(records) => records.record_drift(&current, records.now_unix_ms()),
        Backend::File(Some(state)) => state.record_drift(&current, state.now_unix_ms()),
        Backend::File(None) => Ok(Vec::new()),
    }
    .map_err(|error| DeployError::state(env, error))?;
    Ok(report)
}

/// Where a check's environment keeps its records.
enum Backend {
    Cluster(Box<tier_kube::ClusterRecords>),
    /// `None` when the environment has no state file yet.
    File(Option<tier_state::State>),
}

fn run(
    workspace: &mut Workspace,
    env: &str,
    programs: local::Programs,
) -> Result<(DriftReport, Backend), DeployError> {
    let resolved = workspace.resolve(env, &[])?;
    resolved.deployable(Purpose::Status)?;
    match resolved.environment.runtime {
        RuntimeKind::Kubernetes => {
            let (report, records) = kube::check(workspace.root(), &resolved.environment)?;
            Ok((report, Backend::Cluster(Box::new(records))))
        }
        RuntimeKind::Local => {
            let (report, state) = local::check(workspace.root(), env, programs)?;
            Ok((report, Backend::File(state)))
        }
    }
}
