//! Keys as the API shows them, and the calls beyond get and put that an operator makes:
//! reading a key whole, listing, deleting, a key's audited history and rolling a key back.
//! The types serialise to the API's own JSON, field for field, so a caller can show an
//! answer as the store gave it.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::Written;
use crate::{Client, ClientError};

/// A key with its value and revisions (etcd's model: `docs/api.md`, "Keys and values").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: Value,
    /// When the key was last created.
    pub create_revision: u64,
    /// Its last change.
    pub mod_revision: u64,
    /// Writes since it was created.
    pub version: u64,
    /// The lease it is bound to, if any.
    pub lease: Option<i64>,
}

/// The keys under a prefix, read at one revision; a watch from `revision + 1` continues
/// exactly where the listing ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    pub revision: u64,
    pub kvs: Vec<KeyValue>,
}

/// Every change made to a key through the API, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyHistory {
    pub key: String,
    /// The store's revision when the history was read.
    pub revision: u64,
    pub history: Vec<AuditRecord>,
}

/// One audited change: who made it, when, and the key before and after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The change's revision.
    pub revision: u64,
    pub key: String,
    pub action: Action,
    /// The kind of token that made it (`read-write`).
    pub token: String,
    /// The `X-Tier-Actor` the change was made with, if any.
    pub actor: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// The key before the change; `None` when it did not exist.
    pub old: Option<KeyState>,
    /// The key after the change; `None` when it was deleted.
    pub new: Option<KeyState>,
    /// For a rollback, the revision whose value was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<u64>,
}

/// What an audited change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Put,
    Delete,
    Rollback,
}

impl Action {
    /// The name the API gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Put => "put",
            Action::Delete => "delete",
            Action::Rollback => "rollback",
        }
    }
}

/// A key's value and mod revision on one side of an audited change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyState {
    pub value: Value,
    pub mod_revision: u64,
}

impl Client {
    /// The key under `key` with its revisions; `None` when it does not exist.
    pub async fn entry(&self, key: &str) -> Result<Option<KeyValue>, ClientError> {
        let url = self.url(&["v1", "kv"], key, &[]);
        match self.call(Method::GET, url, None).await {
            Ok(kv) => Ok(Some(kv)),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Every key under `prefix` (all of them for `""`), in key order, at one revision.
    pub async fn list(&self, prefix: &str) -> Result<Listing, ClientError> {
        let url = self.url(&["v1", "kv"], "", &[("prefix", prefix)]);
        self.call(Method::GET, url, None).await
    }

    /// Deletes `key` (needs a read-write token); returns the deletion's revision. A key that
    /// does not exist is `ClientError::Api` with code `key_not_found`.
    pub async fn delete(&self, key: &str) -> Result<u64, ClientError> {
        let url = self.url(&["v1", "kv"], key, &[]);
        let written: Written = self.call(Method::DELETE, url, None).await?;
        written
            .revision
            .ok_or_else(|| ClientError::Decode(format!("{key}: a deletion without a revision")))
    }

    /// Every change made to `key` through the API, oldest first, with who made it.
    pub async fn history(&self, key: &str) -> Result<KeyHistory, ClientError> {
        let url = self.url(&["v1", "kv"], key, &[("history", "")]);
        self.call(Method::GET, url, None).await
    }

    /// Writes, as a new audited change, the value `key` had at revision `to` (or deletes it
    /// if it did not exist then); needs a read-write token. Returns the change's revision,
    /// `None` when the key already is as it was then.
    pub async fn rollback(&self, key: &str, to: u64) -> Result<Option<u64>, ClientError> {
        let mut url = self.url(&["v1", "kv"], key, &[]);
        if let Ok(mut path) = url.path_segments_mut() {
            path.push("rollback");
        }
        let written: Written = self
            .call(Method::POST, url, Some(json!({ "to": to })))
            .await?;
        Ok(written.revision)
    }
}
