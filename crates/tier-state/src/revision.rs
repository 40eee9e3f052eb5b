//! Revisions as callers see them: what was deployed, by whom, how it started and how it ended.
//! The stored form lives in `record.rs`, so this type can change without rewriting state files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tier_model::environment::Artifact;

/// One numbered attempt to change an environment, recorded before anything changes and
/// finished when the attempt ends, so history also shows attempts that failed or were killed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    /// Numbers start at 1 and grow by one per `begin`; they are never reused.
    pub number: u64,
    /// The resolved environment that this revision deploys, as JSON, so a rollback can
    /// redeploy it exactly even after the project file has changed.
    pub spec: serde_json::Value,
    /// The artifact each service runs, by service name.
    pub artifacts: BTreeMap<String, Artifact>,
    /// Who started it (a user name, or whatever the CLI records).
    pub who: String,
    pub started_unix_ms: u64,
    /// `None` while the revision is in progress, or when the process applying it died.
    pub finished_unix_ms: Option<u64>,
    pub origin: Origin,
    pub outcome: Outcome,
    /// The bill of materials: what each deployed service locks (`tier deps scan` of its
    /// source), so `tier deps why --env` can say what runs where. Null when not recorded.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub bom: serde_json::Value,
}

impl Revision {
    /// Whether the revision has an outcome; a revision that is not finished and whose lock
    /// holder is gone was interrupted.
    pub fn is_finished(&self) -> bool {
        !matches!(self.outcome, Outcome::InProgress)
    }
}

/// Why a revision exists: an ordinary apply, a rollback to an earlier revision, or a promotion
/// of the artifacts another environment runs. History shows it so nobody has to guess.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    Apply,
    Rollback {
        to: u64,
    },
    Promote {
        from_environment: String,
        from_revision: u64,
    },
}

/// How a revision ended. Only `Succeeded` changes what is deployed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Begun and not finished: either still running, or its process died.
    InProgress,
    Succeeded,
    /// Failed and left as it was (for example with `on_failure = "halt"`).
    Failed {
        reason: String,
    },
    /// Failed, and the previous revision was restored.
    RolledBack {
        reason: String,
    },
}

impl Outcome {
    /// A short lowercase phrase for messages.
    pub fn describe(&self) -> String {
        match self {
            Outcome::InProgress => "in progress".to_owned(),
            Outcome::Succeeded => "succeeded".to_owned(),
            Outcome::Failed { reason } => format!("failed: {reason}"),
            Outcome::RolledBack { reason } => format!("rolled back: {reason}"),
        }
    }
}

/// What is deployed together with the serial it was read at, taken in one read so that a plan
/// made from `deployed` can be checked against `serial` later without a race in between.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub serial: u64,
    pub deployed: Option<Revision>,
}
