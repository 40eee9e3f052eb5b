//! Secret values for the calls that run or plan an environment: read from the shell or from
//! owner-only files (never for another environment), fingerprinted into the environment with
//! its own key so state and plans can tell a change, and handed on in memory only.

use std::path::Path;

use tier_local::secrets::{SecretValue, SecretValues};
use tier_model::secrets::{Lookup, Secrets};
use tier_model::{Environment, Resolved};
use tier_state::FingerprintKey;
use tier_state::paths::EnvDir;

use crate::DeployError;

/// Reads the secrets of a freshly resolved environment, each unreadable one a problem located
/// at its reference in the project files: the environment with their fingerprints, and the
/// values.
pub fn attach_resolved(
    root: &Path,
    resolved: &Resolved,
) -> Result<(Environment, SecretValues), DeployError> {
    let mut environment = resolved.environment.clone();
    if no_secrets(&environment) {
        return Ok((environment, SecretValues::default()));
    }
    let lookup = Lookup::from_process(root);
    let secrets = resolved
        .read_secrets(&lookup)
        .map_err(|problems| DeployError::Secrets { problems })?;
    let values = fingerprint(root, &mut environment, &secrets)?;
    Ok((environment, values))
}

/// Reads the secrets an environment from state refers to (a rollback, a promotion, a saved
/// plan) and fingerprints them into it: the values as they are now.
pub fn attach(root: &Path, environment: &mut Environment) -> Result<SecretValues, DeployError> {
    if no_secrets(environment) {
        return Ok(SecretValues::default());
    }
    let lookup = Lookup::from_process(root);
    let secrets = tier_model::secrets::read_secrets(environment, &lookup).map_err(|problems| {
        DeployError::StoredSecrets {
            env: environment.name.to_string(),
            problems: problems
                .into_iter()
                .map(|problem| (problem.message, problem.help))
                .collect(),
        }
    })?;
    fingerprint(root, environment, &secrets)
}

fn no_secrets(environment: &Environment) -> bool {
    environment
        .services
        .values()
        .all(|service| service.secrets.is_empty())
}

fn fingerprint(
    root: &Path,
    environment: &mut Environment,
    secrets: &Secrets,
) -> Result<SecretValues, DeployError> {
    let env = environment.name.to_string();
    let key = FingerprintKey::open_or_create(EnvDir::new(root, &env).root())
        .map_err(|error| DeployError::state(&env, error))?;
    let mut values = SecretValues::default();
    for (service_name, service) in environment.services.iter_mut() {
        service.secret_fingerprints.clear();
        for name in service.secrets.keys() {
            let Some(value) = secrets.get(service_name.as_str(), name) else {
                continue;
            };
            let fingerprint = key.fingerprint(name, value.expose());
            service
                .secret_fingerprints
                .insert(name.clone(), fingerprint.clone());
            values.insert(
                service_name.as_str(),
                name,
                SecretValue::new(fingerprint, value.expose().to_vec()),
            );
        }
    }
    Ok(values)
}
