//! What a revision runs: each service's artifact, fixed at apply time (for the local runtime
//! a copy of its program in the content-addressed store, for kubernetes its image), and the
//! stored copy found again for a rollback or a promotion.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tier_local::secrets::SecretValues;
use tier_model::Environment;
use tier_model::environment::{Artifact, Runtime};
use tier_state::{ArtifactStore, Revision};

use crate::DeployError;

/// A resolved environment with the artifact each service would run and where its copy is.
#[derive(Clone, Debug)]
pub struct Desired {
    pub environment: Environment,
    pub artifacts: BTreeMap<String, Artifact>,
    /// The stored program of each local service (empty for kubernetes).
    pub programs: BTreeMap<String, PathBuf>,
    /// The values of the secrets the environment names, by fingerprint; memory only.
    pub secrets: SecretValues,
}

/// Fixes what each service runs: for the local runtime, a copy of its program in the
/// content-addressed store; for kubernetes, its image.
pub fn fix_artifacts(
    root: &Path,
    environment: Environment,
    secrets: SecretValues,
) -> Result<Desired, DeployError> {
    let env = environment.name.to_string();
    let store = ArtifactStore::new(root);
    let mut artifacts = BTreeMap::new();
    let mut programs = BTreeMap::new();
    // Services that run the same program share one digest: hash each file once.
    let mut fixed: BTreeMap<PathBuf, (Artifact, PathBuf)> = BTreeMap::new();
    for (name, service) in &environment.services {
        match environment.runtime {
            Runtime::Local => {
                let Some(program) = service.command.as_ref().and_then(|command| command.first())
                else {
                    return Err(DeployError::Artifacts(format!(
                        "{env}: service {name}: no command to run"
                    )));
                };
                let program = tier_local::spawn::find_program(program, root).map_err(|why| {
                    DeployError::Artifacts(format!(
                        "{env}: service {name}: cannot run its command: {why}"
                    ))
                })?;
                let (artifact, stored) = match fixed.get(&program) {
                    Some(known) => known.clone(),
                    None => {
                        let put = store.put(&program).map_err(|error| {
                            DeployError::Artifacts(format!("{env}: service {name}: {error}"))
                        })?;
                        fixed.insert(program.clone(), put.clone());
                        put
                    }
                };
                artifacts.insert(name.to_string(), artifact);
                programs.insert(name.to_string(), stored);
            }
            Runtime::Kubernetes => {
                let image = service.image.clone().unwrap_or_default();
                artifacts.insert(
                    name.to_string(),
                    Artifact {
                        digest: image.clone(),
                        source: image,
                    },
                );
            }
        }
    }
    Ok(Desired {
        environment,
        artifacts,
        programs,
        secrets,
    })
}

/// The stored copy of each local service's artifact, for running it again.
pub fn stored_programs(
    root: &Path,
    environment: &Environment,
    artifacts: &BTreeMap<String, Artifact>,
) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut programs = BTreeMap::new();
    if environment.runtime != Runtime::Local {
        return Ok(programs);
    }
    let store = ArtifactStore::new(root);
    for name in environment.services.keys() {
        let artifact = artifacts
            .get(name.as_str())
            .ok_or_else(|| format!("service {name} has no recorded artifact"))?;
        let path = store.path_of(&artifact.digest).ok_or_else(|| {
            format!(
                "the artifact of {name} ({}) is no longer stored",
                artifact.digest
            )
        })?;
        programs.insert(name.to_string(), path);
    }
    Ok(programs)
}

/// The environment and programs a recorded revision ran, without secret values (they were
/// never kept).
pub fn desired_from_revision(root: &Path, revision: &Revision) -> Result<Desired, String> {
    let environment = environment_of(revision)?;
    let programs = stored_programs(root, &environment, &revision.artifacts)?;
    Ok(Desired {
        environment,
        artifacts: revision.artifacts.clone(),
        programs,
        secrets: SecretValues::default(),
    })
}

/// The resolved environment a revision recorded.
pub fn environment_of(revision: &Revision) -> Result<Environment, String> {
    serde_json::from_value(revision.spec.clone())
        .map_err(|error| format!("revision {} is unreadable: {error}", revision.number))
}
