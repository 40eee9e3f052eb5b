//! Secret values on their way to replicas. The agent keeps them in memory only, addressed by
//! service, secret name and keyed fingerprint, so each replica gets the values of the spec it
//! runs (old and new specs differ during a rollout) and nothing else ever sees them: not the
//! agent's own environment, not a file under `.tier/`, not a log line.
//!
//! They travel from the command to the agent over the agent's stdin when it starts and over
//! its 0600 control socket with an apply; `Debug` never shows a value.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use serde::{Deserialize, Serialize};

/// One secret's value with the fingerprint that names it in the spec.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretValue {
    pub fingerprint: String,
    value: Vec<u8>,
}

impl SecretValue {
    pub fn new(fingerprint: String, value: Vec<u8>) -> SecretValue {
        SecretValue { fingerprint, value }
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue({} <redacted>)", self.fingerprint)
    }
}

/// Secret values by service, then secret name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValues(BTreeMap<String, BTreeMap<String, SecretValue>>);

impl SecretValues {
    pub fn insert(&mut self, service: &str, name: &str, value: SecretValue) {
        self.0
            .entry(service.to_owned())
            .or_default()
            .insert(name.to_owned(), value);
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(BTreeMap::is_empty)
    }

    /// The values by service and secret name, for a runtime that stores them itself (a
    /// Kubernetes Secret sent over the API).
    pub fn by_name(&self) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
        self.0
            .iter()
            .map(|(service, secrets)| {
                let values = secrets
                    .iter()
                    .map(|(name, secret)| (name.clone(), secret.value.clone()))
                    .collect();
                (service.clone(), values)
            })
            .collect()
    }
}

/// What the agent holds: every value a running or soon-running spec may need.
#[derive(Default)]
pub(crate) struct Stash {
    values: BTreeMap<(String, String, String), Vec<u8>>,
}

impl std::fmt::Debug for Stash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.values.keys()).finish()
    }
}

impl Stash {
    pub(crate) fn add(&mut self, values: SecretValues) {
        for (service, secrets) in values.0 {
            for (name, secret) in secrets {
                self.values
                    .insert((service.clone(), name, secret.fingerprint), secret.value);
            }
        }
    }

    /// The variables a replica of `service` running `fingerprints` gets, or the name of the
    /// first secret whose value the agent was never given.
    pub(crate) fn variables(
        &self,
        service: &str,
        fingerprints: &BTreeMap<String, String>,
    ) -> Result<Vec<(OsString, OsString)>, String> {
        fingerprints
            .iter()
            .map(|(name, fingerprint)| {
                self.values
                    .get(&(service.to_owned(), name.clone(), fingerprint.clone()))
                    .map(|value| (OsString::from(name), OsString::from_vec(value.clone())))
                    .ok_or_else(|| name.clone())
            })
            .collect()
    }

    /// Forgets every value no spec in `keep` refers to.
    pub(crate) fn retain<'a>(
        &mut self,
        keep: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, String>)>,
    ) {
        let wanted: std::collections::BTreeSet<(String, String, String)> = keep
            .into_iter()
            .flat_map(|(service, fingerprints)| {
                fingerprints.iter().map(move |(name, fingerprint)| {
                    (service.to_owned(), name.clone(), fingerprint.clone())
                })
            })
            .collect();
        self.values.retain(|key, _| wanted.contains(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_by_fingerprint_and_never_debugged() {
        let mut values = SecretValues::default();
        values.insert(
            "api",
            "DB",
            SecretValue::new("hmac:1".to_owned(), b"canary-1".to_vec()),
        );
        assert!(!format!("{values:?}").contains("canary"));
        let mut stash = Stash::default();
        stash.add(values);
        let mut newer = SecretValues::default();
        newer.insert(
            "api",
            "DB",
            SecretValue::new("hmac:2".to_owned(), b"canary-2".to_vec()),
        );
        stash.add(newer);
        let shown = format!("{stash:?}");
        assert!(shown.contains("hmac:2"), "{shown}");
        assert!(
            !shown.contains("canary") && !shown.contains("99, 97, 110"),
            "{shown}"
        );

        let old = BTreeMap::from([("DB".to_owned(), "hmac:1".to_owned())]);
        let new = BTreeMap::from([("DB".to_owned(), "hmac:2".to_owned())]);
        assert_eq!(
            stash.variables("api", &old),
            Ok(vec![(OsString::from("DB"), OsString::from("canary-1"))])
        );
        stash.retain([("api", &new)]);
        assert_eq!(stash.variables("api", &old), Err("DB".to_owned()));
        assert_eq!(
            stash.variables("api", &new),
            Ok(vec![(OsString::from("DB"), OsString::from("canary-2"))])
        );
    }
}
