//! The stored form of revisions and lock holders: JSON values in `state.redb`. They are kept
//! apart from the public types so that renaming a public field never changes the file format;
//! a change here is a format change and bumps `FORMAT`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tier_model::environment::Artifact;

use crate::lock::Holder;
use crate::revision::{Origin, Outcome, Revision};

/// The version of the layout and records below, stored in the meta table.
pub(crate) const FORMAT: u64 = 1;

#[derive(Serialize, Deserialize)]
pub(crate) struct RevisionRecord {
    number: u64,
    spec: serde_json::Value,
    artifacts: BTreeMap<String, ArtifactRecord>,
    who: String,
    started_unix_ms: u64,
    finished_unix_ms: Option<u64>,
    origin: OriginRecord,
    outcome: OutcomeRecord,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    bom: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct ArtifactRecord {
    digest: String,
    source: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum OriginRecord {
    Apply,
    Rollback {
        to: u64,
    },
    Promote {
        from_environment: String,
        from_revision: u64,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum OutcomeRecord {
    InProgress,
    Succeeded,
    Failed { reason: String },
    RolledBack { reason: String },
}

#[derive(Serialize, Deserialize)]
pub(crate) struct HolderRecord {
    pid: u32,
    host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    user: String,
    command: String,
    since_unix_ms: u64,
}

impl RevisionRecord {
    pub(crate) fn from_revision(revision: &Revision) -> RevisionRecord {
        RevisionRecord {
            number: revision.number,
            spec: revision.spec.clone(),
            artifacts: revision
                .artifacts
                .iter()
                .map(|(service, artifact)| {
                    let record = ArtifactRecord {
                        digest: artifact.digest.clone(),
                        source: artifact.source.clone(),
                    };
                    (service.clone(), record)
                })
                .collect(),
            who: revision.who.clone(),
            started_unix_ms: revision.started_unix_ms,
            finished_unix_ms: revision.finished_unix_ms,
            origin: match &revision.origin {
                Origin::Apply => OriginRecord::Apply,
                Origin::Rollback { to } => OriginRecord::Rollback { to: *to },
                Origin::Promote {
                    from_environment,
                    from_revision,
                } => OriginRecord::Promote {
                    from_environment: from_environment.clone(),
                    from_revision: *from_revision,
                },
            },
            outcome: match &revision.outcome {
                Outcome::InProgress => OutcomeRecord::InProgress,
                Outcome::Succeeded => OutcomeRecord::Succeeded,
                Outcome::Failed { reason } => OutcomeRecord::Failed {
                    reason: reason.clone(),
                },
                Outcome::RolledBack { reason } => OutcomeRecord::RolledBack {
                    reason: reason.clone(),
                },
            },
            bom: revision.bom.clone(),
        }
    }

    pub(crate) fn into_revision(self) -> Revision {
        Revision {
            number: self.number,
            spec: self.spec,
            artifacts: self
                .artifacts
                .into_iter()
                .map(|(service, record)| {
                    let artifact = Artifact {
                        digest: record.digest,
                        source: record.source,
                    };
                    (service, artifact)
                })
                .collect(),
            who: self.who,
            started_unix_ms: self.started_unix_ms,
            finished_unix_ms: self.finished_unix_ms,
            origin: match self.origin {
                OriginRecord::Apply => Origin::Apply,
                OriginRecord::Rollback { to } => Origin::Rollback { to },
                OriginRecord::Promote {
                    from_environment,
                    from_revision,
                } => Origin::Promote {
                    from_environment,
                    from_revision,
                },
            },
            outcome: match self.outcome {
                OutcomeRecord::InProgress => Outcome::InProgress,
                OutcomeRecord::Succeeded => Outcome::Succeeded,
                OutcomeRecord::Failed { reason } => Outcome::Failed { reason },
                OutcomeRecord::RolledBack { reason } => Outcome::RolledBack { reason },
            },
            bom: self.bom,
        }
    }
}

impl HolderRecord {
    pub(crate) fn from_holder(holder: &Holder) -> HolderRecord {
        HolderRecord {
            pid: holder.pid,
            host: holder.host.clone(),
            user: holder.user.clone(),
            command: holder.command.clone(),
            since_unix_ms: holder.since_unix_ms,
        }
    }

    pub(crate) fn into_holder(self) -> Holder {
        Holder {
            pid: self.pid,
            host: self.host,
            user: self.user,
            command: self.command,
            since_unix_ms: self.since_unix_ms,
        }
    }
}

/// The stored forms for a backend outside this crate (the cluster's Secrets and Lease), so
/// every backend keeps revisions and holders in one format.
pub mod codec {
    use super::{HolderRecord, RevisionRecord};
    use crate::lock::Holder;
    use crate::revision::Revision;

    /// A revision as its stored JSON.
    pub fn encode_revision(revision: &Revision) -> Vec<u8> {
        serde_json::to_vec(&RevisionRecord::from_revision(revision)).unwrap_or_default()
    }

    /// A revision from its stored JSON; the error says what did not parse.
    pub fn decode_revision(bytes: &[u8]) -> Result<Revision, String> {
        serde_json::from_slice::<RevisionRecord>(bytes)
            .map(RevisionRecord::into_revision)
            .map_err(|error| error.to_string())
    }

    /// A lock holder as its stored JSON.
    pub fn encode_holder(holder: &Holder) -> String {
        serde_json::to_string(&HolderRecord::from_holder(holder)).unwrap_or_default()
    }

    /// A lock holder from its stored JSON.
    pub fn decode_holder(text: &str) -> Result<Holder, String> {
        serde_json::from_str::<HolderRecord>(text)
            .map(HolderRecord::into_holder)
            .map_err(|error| error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored JSON is the file format: this pins it, so an accidental change to the
    /// records shows up here rather than as unreadable state files.
    #[test]
    fn stored_revision_json_is_stable() {
        let revision = Revision {
            number: 3,
            spec: serde_json::json!({"services": {}}),
            artifacts: BTreeMap::from([(
                "backend".to_owned(),
                Artifact {
                    digest: "sha256:ab".to_owned(),
                    source: "target/release/backend".to_owned(),
                },
            )]),
            who: "ana".to_owned(),
            started_unix_ms: 10,
            finished_unix_ms: Some(20),
            bom: serde_json::Value::Null,
            origin: Origin::Promote {
                from_environment: "stage".to_owned(),
                from_revision: 7,
            },
            outcome: Outcome::RolledBack {
                reason: "backend failed its health check".to_owned(),
            },
        };
        let json = serde_json::to_string(&RevisionRecord::from_revision(&revision))
            .expect("a record serialises");
        assert_eq!(
            json,
            r#"{"number":3,"spec":{"services":{}},"artifacts":{"backend":{"digest":"sha256:ab","source":"target/release/backend"}},"who":"ana","started_unix_ms":10,"finished_unix_ms":20,"origin":{"kind":"promote","from_environment":"stage","from_revision":7},"outcome":{"status":"rolled_back","reason":"backend failed its health check"}}"#
        );
        let back: RevisionRecord = serde_json::from_str(&json).expect("a record parses");
        assert_eq!(back.into_revision(), revision);
    }
}
