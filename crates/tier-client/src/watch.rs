//! A watch that survives disconnects: it reconnects with a bounded backoff and asks the
//! server to continue after the last revision it delivered (`Last-Event-ID`).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::check;
use crate::sse::EventReader;
use crate::{Client, ClientError};

/// The first wait before reconnecting, and the longest.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(3);

/// One change to a watched key.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub key: String,
    /// The new value; `None` when the key was deleted.
    pub value: Option<Value>,
    pub revision: u64,
}

/// The changes of a watch, in revision order. Dropping it stops the watch.
#[derive(Debug)]
pub struct Watch {
    changes: mpsc::Receiver<Result<Change, ClientError>>,
    task: JoinHandle<()>,
}

impl Watch {
    /// The next change. An error ends the watch: the token was refused, or the watch fell
    /// so far behind that the history it needs is gone (`ClientError::Compacted`).
    pub async fn next(&mut self) -> Option<Result<Change, ClientError>> {
        self.changes.recv().await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Deserialize)]
struct PutEvent {
    key: String,
    value: Value,
}

#[derive(Deserialize)]
struct DeleteEvent {
    key: String,
}

pub(crate) fn start(client: Client, prefix: String, after: u64) -> Watch {
    let (sender, changes) = mpsc::channel(64);
    let task = tokio::spawn(follow(client, prefix, after, sender));
    Watch { changes, task }
}

async fn follow(
    client: Client,
    prefix: String,
    mut last: u64,
    changes: mpsc::Sender<Result<Change, ClientError>>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match stream(&client, &prefix, &mut last, &changes, &mut backoff).await {
            Ok(()) => {}
            Err(error) => {
                // Fatal: report it and stop (a closed receiver is fine too).
                let _ = changes.send(Err(error)).await;
                return;
            }
        }
        if changes.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Streams until the connection ends (`Ok`, retry) or a fatal error (`Err`).
async fn stream(
    client: &Client,
    prefix: &str,
    last: &mut u64,
    changes: &mpsc::Sender<Result<Change, ClientError>>,
    backoff: &mut Duration,
) -> Result<(), ClientError> {
    let url = client.url(&["v1", "watch"], "", &[("prefix", prefix)]);
    let request = client
        .request(Method::GET, url)
        .header("last-event-id", last.to_string());
    let Ok(response) = request.send().await else {
        return Ok(());
    };
    if response.status().is_server_error() {
        return Ok(());
    }
    let response = check(response).await?;
    *backoff = FIRST_BACKOFF;
    let mut events = EventReader::new(response);
    while let Ok(Some(event)) = events.next().await {
        let revision = event.id.as_deref().and_then(|id| id.parse::<u64>().ok());
        let change = match (event.event.as_str(), revision) {
            ("put", Some(revision)) => {
                serde_json::from_str::<PutEvent>(&event.data)
                    .ok()
                    .map(|put| Change {
                        key: put.key,
                        value: Some(put.value),
                        revision,
                    })
            }
            ("delete", Some(revision)) => serde_json::from_str::<DeleteEvent>(&event.data)
                .ok()
                .map(|delete| Change {
                    key: delete.key,
                    value: None,
                    revision,
                }),
            ("error", _) => return Err(stream_error(&event.data)),
            _ => None,
        };
        let Some(change) = change else {
            return Err(ClientError::Decode(format!(
                "a watch event that is not a change: {}",
                event.event
            )));
        };
        *last = change.revision;
        if changes.send(Ok(change)).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// The error event a server sends before ending a watch it cannot continue.
pub(crate) fn stream_error(data: &str) -> ClientError {
    #[derive(Deserialize)]
    struct ErrorEvent {
        error: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        compacted_revision: Option<u64>,
    }
    match serde_json::from_str::<ErrorEvent>(data) {
        Ok(event) if event.error == "compacted" => ClientError::Compacted {
            compacted: event.compacted_revision.unwrap_or(0),
        },
        Ok(event) => ClientError::Api {
            status: StatusCode::OK.as_u16(),
            code: event.error,
            message: event.message,
        },
        Err(error) => ClientError::Decode(error.to_string()),
    }
}
