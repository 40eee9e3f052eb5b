//! The flag cache: the environment's flags with their effective values, replaced by each
//! snapshot a `GET /v1/watch?flags` stream sends, so questions need no request.
//!
//! Questions are answered by [`flag_enabled`], the definition the server uses too, so a
//! service and the CLI agree on who is in a rollout.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::Written;
use crate::error::check;
use crate::rollout::flag_enabled;
use crate::sse::EventReader;
use crate::watch::{FIRST_BACKOFF, MAX_BACKOFF};
use crate::{Client, ClientError};

/// The environment's flags as last seen. Cheap to clone; the background watch stops when the
/// last clone is dropped.
#[derive(Clone, Debug)]
pub struct Flags {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    current: watch::Receiver<FlagSnapshot>,
    task: JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every declared flag of the environment at one revision, as `GET /v1/flags` answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FlagSnapshot {
    pub revision: u64,
    pub flags: BTreeMap<String, FlagState>,
}

/// One flag: its effective value and where it comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlagState {
    /// The override if there is one, else the declared default.
    pub value: Value,
    /// `flag_enabled` of the value without a key.
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub default: Value,
    /// Whether the value is a run-time override.
    #[serde(default)]
    pub overridden: bool,
    #[serde(default)]
    pub description: Option<String>,
}

impl Flags {
    /// Whether `name` is on: `true` for a flag set to `true` or to a 100% rollout; `false`
    /// for anything else, including an unknown flag.
    pub fn is_enabled(&self, name: &str) -> bool {
        self.value(name)
            .is_some_and(|value| flag_enabled(name, &value, None) == Some(true))
    }

    /// Whether `name` is on for `key` (a user id, say): percentage rollouts decide by the key.
    pub fn is_enabled_for(&self, name: &str, key: &str) -> bool {
        self.value(name)
            .is_some_and(|value| flag_enabled(name, &value, Some(key)) == Some(true))
    }

    /// The flag's effective value (an override, or the declared default).
    pub fn value(&self, name: &str) -> Option<Value> {
        let current = self.shared.current.borrow();
        current.flags.get(name).map(|flag| flag.value.clone())
    }

    /// Every flag's name and effective value.
    pub fn all(&self) -> BTreeMap<String, Value> {
        let current = self.shared.current.borrow();
        current
            .flags
            .iter()
            .map(|(name, flag)| (name.clone(), flag.value.clone()))
            .collect()
    }

    /// The store revision of the flags as last seen.
    pub fn revision(&self) -> u64 {
        self.shared.current.borrow().revision
    }
}

impl Client {
    /// Every declared flag with its effective value, default and whether it is overridden.
    pub async fn list_flags(&self) -> Result<FlagSnapshot, ClientError> {
        let url = self.url(&["v1", "flags"], "", &[]);
        self.call(Method::GET, url, None).await
    }

    /// Overrides flag `name` with `value` (`true`, `false`, `{"percent": p}`, a string or a
    /// number) until it is cleared; needs a read-write token. Returns the change's revision.
    /// An undeclared name is `ClientError::Api` with code `flag_not_found` and, when a
    /// declared flag has a close name, `did_you_mean`.
    pub async fn set_flag(&self, name: &str, value: &Value) -> Result<u64, ClientError> {
        let url = self.url(&["v1", "flags", name], "", &[]);
        let written: Written = self
            .call(Method::PUT, url, Some(json!({ "value": value })))
            .await?;
        written
            .revision
            .ok_or_else(|| ClientError::Decode(format!("{name}: an override without a revision")))
    }

    /// Drops the override of flag `name`, so its default applies again; needs a read-write
    /// token. Returns the change's revision, `None` when there was no override.
    pub async fn clear_flag(&self, name: &str) -> Result<Option<u64>, ClientError> {
        let url = self.url(&["v1", "flags", name], "", &[]);
        let written: Written = self.call(Method::DELETE, url, None).await?;
        Ok(written.revision)
    }
}

pub(crate) async fn start(client: Client) -> Result<Flags, ClientError> {
    let first = client.list_flags().await?;
    let (sender, current) = watch::channel(first);
    let task = tokio::spawn(follow(client, sender));
    Ok(Flags {
        shared: Arc::new(Shared { current, task }),
    })
}

/// Replaces the snapshot with each one the server sends; reconnects with a bounded backoff.
/// Every connection starts with a full snapshot, so nothing is lost across a disconnect.
async fn follow(client: Client, snapshots: watch::Sender<FlagSnapshot>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let url = client.url(&["v1", "watch"], "", &[("flags", "")]);
        if let Ok(response) = client.request(Method::GET, url).send().await {
            if response.status().is_client_error() {
                // The token was refused: keep the last values, stop asking.
                return;
            }
            if let Ok(response) = check(response).await {
                backoff = FIRST_BACKOFF;
                let mut events = EventReader::new(response);
                while let Ok(Some(event)) = events.next().await {
                    if event.event != "flags" {
                        continue;
                    }
                    if let Ok(snapshot) = serde_json::from_str::<FlagSnapshot>(&event.data) {
                        snapshots.send_replace(snapshot);
                    }
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
