//! A watch of the embedded store: the writer's broadcasts, and the log when a watcher fell
//! behind them.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use tokio::sync::broadcast;

use super::failure::Failure;
use super::{COMPACTED, Inner, LOG, META, REVISION, meta_value, run_blocking};
use crate::codec;
use crate::error::StoreError;
use crate::types::{Event, Revision, Selector};
use crate::watch_feed::{Fetched, WatchSource};

/// One watch's position: every event before `next` has been fetched or skipped.
pub(super) struct Watcher {
    pub(super) store: Weak<Inner>,
    pub(super) selector: Selector,
    pub(super) next: Revision,
    pub(super) receiver: broadcast::Receiver<Arc<Vec<Event>>>,
}

impl WatchSource for Watcher {
    async fn fetch(&mut self, events: &mut VecDeque<Event>) -> Result<Fetched, StoreError> {
        let received = self.receiver.recv().await;
        let revision = match &received {
            Ok(group) => group.first().map_or(Revision(0), Event::revision),
            Err(_) => Revision(0),
        };
        match received {
            Ok(_) if revision < self.next => Ok(Fetched::Open),
            Ok(group) if revision == self.next => {
                self.next = self.next.next();
                let matching = group
                    .iter()
                    .filter(|event| self.selector.matches(event.key()))
                    .cloned();
                events.extend(matching);
                Ok(Fetched::Open)
            }
            // A gap (the receiver lagged): the log has everything that was broadcast.
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up(events).await,
            Err(broadcast::error::RecvError::Closed) => Ok(Fetched::Ended),
        }
    }
}

impl Watcher {
    /// Adds every retained event from `next` on to `events` and moves `next` past the current
    /// revision; `Fetched::Ended` once the store is gone.
    pub(super) async fn catch_up(
        &mut self,
        events: &mut VecDeque<Event>,
    ) -> Result<Fetched, StoreError> {
        let Some(inner) = self.store.upgrade() else {
            return Ok(Fetched::Ended);
        };
        let from = self.next;
        let selector = self.selector.clone();
        let (retained, current) = run_blocking(move || {
            inner.read(move |transaction| {
                let meta = transaction.open_table(META)?;
                let current = Revision(meta_value(&meta, REVISION)?);
                let compacted = Revision(meta_value(&meta, COMPACTED)?);
                if from < compacted {
                    return Err(StoreError::Compacted {
                        requested: from,
                        compacted,
                    }
                    .into());
                }
                let log = transaction.open_table(LOG)?;
                let mut events = Vec::new();
                for entry in log.range(from.0..)? {
                    let (revision, record) = entry?;
                    let group = codec::decode_events(Revision(revision.value()), record.value())
                        .map_err(Failure::Corrupt)?;
                    events.extend(
                        group
                            .into_iter()
                            .filter(|event| selector.matches(event.key())),
                    );
                }
                Ok((events, current))
            })
        })
        .await?;
        events.extend(retained);
        self.next = self.next.max(current.next());
        Ok(Fetched::Open)
    }
}
