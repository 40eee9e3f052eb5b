//! A watch of etcd that resumes from its revision after its stream broke.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::client::{EtcdStore, from_etcd};
use crate::error::StoreError;
use crate::types::{Event, Revision, Selector};
use crate::watch_feed::{Fetched, WatchSource};

/// One watch's position: every event before `next` has been fetched.
pub(super) struct Watcher {
    pub(super) store: EtcdStore,
    pub(super) selector: Selector,
    pub(super) next: Revision,
    /// `None` after the stream broke, until it is opened again from `next`.
    pub(super) stream: Option<etcd_client::WatchStream>,
}

impl WatchSource for Watcher {
    async fn fetch(&mut self, events: &mut VecDeque<Event>) -> Result<Fetched, StoreError> {
        let Some(stream) = self.stream.as_mut() else {
            self.stream = Some(self.reconnect().await?);
            return Ok(Fetched::Open);
        };
        let response = match stream.message().await {
            Ok(Some(response)) => response,
            // The connection broke or etcd restarted: resume from `next`.
            Ok(None) | Err(_) => {
                self.stream = None;
                return Ok(Fetched::Open);
            }
        };
        if response.compact_revision() > 0 {
            let compacted = from_etcd(response.compact_revision());
            self.store
                .compacted
                .fetch_max(compacted.0, Ordering::SeqCst);
            return Err(StoreError::Compacted {
                requested: self.next,
                compacted,
            });
        }
        if response.canceled() {
            return Err(StoreError::Etcd(format!(
                "etcd cancelled the watch: {}",
                response.cancel_reason()
            )));
        }
        for event in response.events() {
            let event = self.store.event(event)?;
            self.next = self.next.max(event.revision().next());
            events.push_back(event);
        }
        Ok(Fetched::Open)
    }
}

impl Watcher {
    /// Opens the watch again from `next`, retrying with backoff for `watch_reconnect`.
    async fn reconnect(&self) -> Result<etcd_client::WatchStream, StoreError> {
        let deadline = Instant::now() + self.store.config.watch_reconnect;
        let mut pause = Duration::from_millis(50);
        loop {
            let error = match self.store.retained(self.next).await {
                Ok(false) => {
                    return Err(StoreError::Compacted {
                        requested: self.next,
                        compacted: self.store.compacted_revision().await?,
                    });
                }
                Ok(true) => match self.store.open_watch(&self.selector, self.next).await {
                    Ok(stream) => return Ok(stream),
                    Err(error) => error,
                },
                Err(error) => error,
            };
            if Instant::now() + pause > deadline {
                return Err(error);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}
