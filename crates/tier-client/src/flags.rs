//! The flag cache: the environment's flags with their effective values, replaced by each
//! snapshot a `GET /v1/watch?flags` stream sends, so questions need no request.
//!
//! Questions are answered by [`flag_enabled`], the definition the server uses too, so a
//! service and the CLI agree on who is in a rollout.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
    current: watch::Receiver<Snapshot>,
    task: JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
struct Snapshot {
    revision: u64,
    flags: BTreeMap<String, FlagBody>,
}

#[derive(Clone, Debug, Deserialize)]
struct FlagBody {
    value: Value,
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

pub(crate) async fn start(client: Client) -> Result<Flags, ClientError> {
    let url = client.url(&["v1", "flags"], "", &[]);
    let first: Snapshot = client.call(Method::GET, url, None).await?;
    let (sender, current) = watch::channel(first);
    let task = tokio::spawn(follow(client, sender));
    Ok(Flags {
        shared: Arc::new(Shared { current, task }),
    })
}

/// Replaces the snapshot with each one the server sends; reconnects with a bounded backoff.
/// Every connection starts with a full snapshot, so nothing is lost across a disconnect.
async fn follow(client: Client, snapshots: watch::Sender<Snapshot>) {
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
                    if let Ok(snapshot) = serde_json::from_str::<Snapshot>(&event.data) {
                        snapshots.send_replace(snapshot);
                    }
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
