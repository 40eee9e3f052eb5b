//! A watch that survives disconnects: it reconnects with a bounded backoff and asks the
//! server to continue after the last revision it delivered (`Last-Event-ID`).

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::events::{WatchEvent, WatchStart, WatchTarget};
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

/// Streams until the connection ends (`Ok`, retry) or a fatal error (`Err`): a refused
/// token, compacted history, an answer that is not a change.
async fn stream(
    client: &Client,
    prefix: &str,
    last: &mut u64,
    changes: &mpsc::Sender<Result<Change, ClientError>>,
    backoff: &mut Duration,
) -> Result<(), ClientError> {
    let target = WatchTarget::Prefix(prefix.to_owned());
    let mut events = match client.events(&target, WatchStart::After(*last)).await {
        Ok(events) => events,
        // The store is away or restarting: try again after the backoff.
        Err(ClientError::Unreachable(_)) => return Ok(()),
        Err(ClientError::Api { status, .. }) if status >= 500 => return Ok(()),
        Err(error) => return Err(error),
    };
    *backoff = FIRST_BACKOFF;
    while let Some(event) = events.next().await? {
        let change = Change {
            key: event.key().to_owned(),
            revision: event.revision(),
            value: match event {
                WatchEvent::Put(kv) => Some(kv.value),
                WatchEvent::Delete { .. } => None,
            },
        };
        *last = change.revision;
        if changes.send(Ok(change)).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}
