//! Secret values for the commands that run or plan an environment: read from the shell or
//! from owner-only files (never for another environment), fingerprinted into the environment
//! with its own key so state and plans can tell a change, and handed on in memory only.

use std::path::Path;

use tier_local::paths::EnvDir;
use tier_local::secrets::{SecretValue, SecretValues};
use tier_model::secrets::{Lookup, Secrets};
use tier_model::{Environment, Project, Resolved};
use tier_state::FingerprintKey;

use super::FAILURE;
use crate::output;

/// Reads the secrets of a freshly resolved environment, reporting each unreadable one at its
/// reference in the project files: the environment with their fingerprints, and the values.
pub(super) fn attach_resolved(
    root: &Path,
    project: &Project,
    resolved: &Resolved,
) -> Result<(Environment, SecretValues), i32> {
    let mut environment = resolved.environment.clone();
    if no_secrets(&environment) {
        return Ok((environment, SecretValues::default()));
    }
    let lookup = Lookup::from_process(root);
    let secrets = resolved.read_secrets(&lookup).map_err(|problems| {
        output::problems(&problems, &project.sources);
        FAILURE
    })?;
    let values = fingerprint(root, &mut environment, &secrets)?;
    Ok((environment, values))
}

/// Reads the secrets an environment from state refers to (a rollback, a promotion, a saved
/// plan) and fingerprints them into it: the values as they are now.
pub(super) fn attach(root: &Path, environment: &mut Environment) -> Result<SecretValues, i32> {
    if no_secrets(environment) {
        return Ok(SecretValues::default());
    }
    let lookup = Lookup::from_process(root);
    let secrets = tier_model::secrets::read_secrets(environment, &lookup).map_err(|problems| {
        for problem in &problems {
            output::error(&format!("{}: {}", environment.name, problem.message));
            if let Some(help) = &problem.help {
                output::hint(help);
            }
        }
        FAILURE
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
) -> Result<SecretValues, i32> {
    let env = environment.name.to_string();
    let key = FingerprintKey::open_or_create(EnvDir::new(root, &env).root()).map_err(|error| {
        output::error(&format!("{env}: {error}"));
        FAILURE
    })?;
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
