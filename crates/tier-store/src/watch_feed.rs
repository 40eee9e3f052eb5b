//! What both backends' watches share: a source fetches events in groups, and the stream hands
//! them out one at a time, ending after the source ends or after its first error.

use std::collections::VecDeque;
use std::future::Future;

use futures_util::stream;

use crate::backend::WatchStream;
use crate::error::StoreError;
use crate::types::Event;

/// Where one backend's watch gets its events from.
pub(crate) trait WatchSource: Send + 'static {
    /// Waits for the next events and adds those the watch selects to `events`, in revision
    /// order (perhaps none, when it only moved on). An error ends the watch.
    fn fetch(
        &mut self,
        events: &mut VecDeque<Event>,
    ) -> impl Future<Output = Result<Fetched, StoreError>> + Send;
}

/// Whether a source has more to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fetched {
    Open,
    /// Nothing follows the events already fetched (the store was closed).
    Ended,
}

/// The stream of a watch: `first` (what the watch read before it returned), then everything
/// `source` fetches.
pub(crate) fn watch_stream(first: VecDeque<Event>, source: impl WatchSource) -> WatchStream {
    let feed = Feed {
        source: Some(source),
        pending: first,
    };
    Box::pin(stream::unfold(feed, |mut feed| async move {
        feed.next_event().await.map(|item| (item, feed))
    }))
}

/// Events fetched but not handed out yet; `source` is `None` once the watch has ended.
struct Feed<S> {
    source: Option<S>,
    pending: VecDeque<Event>,
}

impl<S: WatchSource> Feed<S> {
    async fn next_event(&mut self) -> Option<Result<Event, StoreError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            let source = self.source.as_mut()?;
            match source.fetch(&mut self.pending).await {
                Ok(Fetched::Open) => {}
                Ok(Fetched::Ended) => self.source = None,
                // Events fetched with the error are not handed out: the watch fails at the
                // first event it cannot deliver whole.
                Err(error) => {
                    self.source = None;
                    self.pending.clear();
                    return Some(Err(error));
                }
            }
        }
    }
}
