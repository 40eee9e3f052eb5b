//! Drift of a kubernetes environment: the deployed revision's objects, rendered again with its
//! images, against the live objects (tier-kube's `drift`). The same differences are what
//! `tier plan` reports as "changed outside tier".

use std::collections::BTreeMap;
use std::path::Path;

use tier_kube::{ClusterRecords, DeployConfig, Drift};
use tier_model::Environment;
use tier_state::Records;

use super::{DriftReport, Found};
use crate::DeployError;
use crate::artifacts::environment_of;

/// Connects to the environment's cluster (context guard, then a first answer from the API
/// server) and compares its deployed revision with the live objects.
pub(super) fn check(
    root: &Path,
    environment: &Environment,
) -> Result<(DriftReport, ClusterRecords), DeployError> {
    let env = environment.name.as_str();
    let records = ClusterRecords::connect(environment, DeployConfig::default().lease)
        .map_err(|error| crate::kube::refused(env, &error))?;
    let (revision, found) = live_drift(root, &records, env)?;
    let report = DriftReport {
        env: env.to_owned(),
        revision,
        stopped: None,
        found: found
            .into_iter()
            .map(|drift| Found::Kube(Box::new(drift)))
            .collect(),
        history: Vec::new(),
    };
    Ok((report, records))
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
