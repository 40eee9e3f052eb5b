//! One connection's key events: a `GET /v1/watch?key=` or `?prefix=` stream, read through
//! `sse.rs` and decoded into [`WatchEvent`]s. It does not reconnect; [`crate::Watch`] is
//! built on it and does, and the CLI's `tier config watch` uses it as it is.

use reqwest::Method;
use serde::Deserialize;

use crate::error::{check, stream_error};
use crate::keys::KeyValue;
use crate::sse::EventReader;
use crate::{Client, ClientError};

/// What a key watch follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchTarget {
    /// One key.
    Key(String),
    /// Every user key under a prefix (`""` for all of them).
    Prefix(String),
}

/// Where a key watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchStart {
    /// With the next change.
    Next,
    /// From this revision, inclusive (etcd's `start_revision`): retained history first.
    From(u64),
    /// After this revision (`Last-Event-ID`): how a reconnecting watch continues.
    After(u64),
}

/// One change to a watched key.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    /// The key as written; its `mod_revision` is the change's revision.
    Put(KeyValue),
    Delete {
        key: String,
        revision: u64,
    },
}

impl WatchEvent {
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put(kv) => &kv.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }

    pub fn revision(&self) -> u64 {
        match self {
            WatchEvent::Put(kv) => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
        }
    }
}

/// The events of one watch connection, in revision order.
pub struct Events {
    reader: EventReader,
}

#[derive(Deserialize)]
struct DeleteData {
    key: String,
    revision: u64,
}

impl Client {
    /// Opens one watch connection. A start in compacted history is
    /// `ClientError::Compacted`; a refused token is `ClientError::Api`.
    pub async fn events(
        &self,
        target: &WatchTarget,
        start: WatchStart,
    ) -> Result<Events, ClientError> {
        let selector = match target {
            WatchTarget::Key(key) => ("key", key.as_str()),
            WatchTarget::Prefix(prefix) => ("prefix", prefix.as_str()),
        };
        let from = match start {
            WatchStart::From(revision) => Some(revision.to_string()),
            WatchStart::Next | WatchStart::After(_) => None,
        };
        let mut query = vec![selector];
        if let Some(from) = &from {
            query.push(("from", from));
        }
        let url = self.url(&["v1", "watch"], "", &query);
        let mut request = self.request(Method::GET, url);
        if let WatchStart::After(revision) = start {
            request = request.header("last-event-id", revision.to_string());
        }
        let response = request.send().await.map_err(ClientError::Unreachable)?;
        let response = check(response).await?;
        Ok(Events {
            reader: EventReader::new(response),
        })
    }
}

impl Events {
    /// The next change; `Ok(None)` when the stream ended: the server stopped, or the
    /// connection broke or stayed silent past the keep-alives. The `error` event a server
    /// sends before ending a watch it cannot continue is returned as an error
    /// (`ClientError::Compacted` when its history is gone).
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, ClientError> {
        let Ok(Some(event)) = self.reader.next().await else {
            return Ok(None);
        };
        let revision = event.id.as_deref().and_then(|id| id.parse::<u64>().ok());
        let decoded = match (event.event.as_str(), revision) {
            ("put", Some(_)) => serde_json::from_str::<KeyValue>(&event.data)
                .ok()
                .map(WatchEvent::Put),
            ("delete", Some(_)) => {
                serde_json::from_str::<DeleteData>(&event.data)
                    .ok()
                    .map(|delete| WatchEvent::Delete {
                        key: delete.key,
                        revision: delete.revision,
                    })
            }
            ("error", _) => return Err(stream_error(&event.data)),
            _ => None,
        };
        decoded.map(Some).ok_or_else(|| {
            ClientError::Decode(format!(
                "a watch event that is not a change: {}",
                event.event
            ))
        })
    }
}
