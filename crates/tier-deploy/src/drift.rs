//! `tier drift`: what runs differently from the deployed revision, and since when; and the
//! same differences for `tier plan` ("changed outside tier"). Kubernetes environments: the
//! deployed revision's objects, rendered again with its images, against the live objects
//! (tier-kube's `drift`), recorded in the cluster with first- and last-seen times.

use std::collections::BTreeMap;
use std::path::Path;

use tier_kube::{ClusterRecords, DeployConfig, Drift, DriftRecord};
use tier_model::environment::Runtime as RuntimeKind;
use tier_state::Records;

use crate::artifacts::environment_of;
use crate::{DeployError, Workspace};

/// What `tier drift` found.
#[derive(Clone, Debug)]
pub struct DriftReport {
    pub env: String,
    /// The revision compared with; `None` when nothing is deployed.
    pub revision: Option<u64>,
    /// Every difference, drift and `expected` ones alike.
    pub found: Vec<Drift>,
    /// The records over time, newest first.
    pub history: Vec<DriftRecord>,
}

/// Compares the deployed revision of a kubernetes environment with its live objects and
/// records what differs.
pub fn drift(workspace: &mut Workspace, env: &str) -> Result<DriftReport, DeployError> {
    let resolved = workspace.resolve(env, &[])?;
    if resolved.environment.runtime != RuntimeKind::Kubernetes {
        return Err(DeployError::Refused {
            message: format!(
                "{env} runs on the local runtime; `tier drift` compares a kubernetes environment's live objects with its deployed revision"
            ),
            hint: Some(format!("`tier status {env}` shows what runs locally")),
        });
    }
    let records = ClusterRecords::connect(&resolved.environment, DeployConfig::default().lease)
        .map_err(|error| crate::kube::refused(env, &error))?;
    let (revision, found) = live_drift(workspace.root(), &records, env)?;
    let history = records
        .record_drift(&found, records.now_unix_ms())
        .map_err(|error| DeployError::state(env, error))?;
    Ok(DriftReport {
        env: env.to_owned(),
        revision,
        found,
        history,
    })
}

/// The deployed revision's number and its differences with the live objects.
pub(crate) fn live_drift(
    root: &Path,
    records: &ClusterRecords,
    env: &str,
) -> Result<(Option<u64>, Vec<Drift>), DeployError> {
    let Some(deployed) = records
        .deployed()
        .map_err(|error| DeployError::state(env, error))?
    else {
        return Ok((None, Vec::new()));
    };
    let environment =
        environment_of(&deployed).map_err(|why| DeployError::Artifacts(format!("{env}: {why}")))?;
    let objects = crate::kube::render(root, &environment, &deployed.artifacts, &BTreeMap::new())
        .map_err(|why| DeployError::Refused {
            message: format!("{env}: {why}"),
            hint: None,
        })?;
    let found = records
        .drift(&environment, &objects)
        .map_err(|error| crate::kube::refused(env, &error))?;
    Ok((Some(deployed.number), found))
}
