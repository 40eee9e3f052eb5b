//! The write queue: one writer thread takes everything queued, applies it in order in one
//! redb transaction, commits it durably, broadcasts its events and answers each caller.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use redb::Durability;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::failure::Failure;
use super::writer::Writer;
use super::{Inner, lock};
use crate::error::StoreError;
use crate::types::{CasOutcome, Compare, Event, Lease, LeaseId, Op, Revision, TxnOutcome};

/// The most writes one transaction takes from the queue; more wait for the next commit.
const MAX_BATCH: usize = 1024;

/// The queue to the writer thread. Dropping the last one closes the queue and waits for the
/// thread to finish, so the file is closed when the last handle is gone.
pub(super) struct Writes {
    pub(super) queue: Option<mpsc::UnboundedSender<WriteRequest>>,
    pub(super) thread: Option<JoinHandle<()>>,
}

impl Drop for Writes {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            // The thread only ends by finding the queue closed; a panic in it was already
            // reported to the callers of that batch.
            let _ = thread.join();
        }
    }
}

/// One queued write and where its answer goes.
pub(super) struct WriteRequest {
    pub(super) op: WriteOp,
    pub(super) reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// Every kind of write, so the writer thread can batch them. Times are read by the caller, on
/// tokio's clock, so paused-time tests hold.
pub(super) enum WriteOp {
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
        at: Instant,
    },
    Delete {
        key: String,
    },
    PutIfModRevision {
        key: String,
        expected: Revision,
        value: Vec<u8>,
    },
    Txn {
        compare: Vec<Compare>,
        then: Vec<Op>,
        at: Instant,
    },
    Grant {
        ttl: Duration,
        at: Instant,
    },
    KeepAlive {
        id: LeaseId,
        at: Instant,
    },
    Revoke {
        id: LeaseId,
    },
    RevokeExpired {
        at: Instant,
    },
    Compact {
        revision: Revision,
    },
}

/// What a write answers.
pub(super) enum Outcome {
    Written(Revision),
    Deleted(Option<Revision>),
    Swap(CasOutcome),
    Txn(TxnOutcome),
    Lease(Lease),
    Done,
}

/// What changes in memory once a write's transaction is durable.
pub(super) enum Effect {
    None,
    Deadline(LeaseId, Instant),
    Forget(Vec<LeaseId>),
}

/// The writer thread: takes everything queued, commits it as one transaction, answers each
/// caller; until every handle is gone.
pub(super) fn run_writer(inner: &Inner, mut requests: mpsc::UnboundedReceiver<WriteRequest>) {
    while let Some(first) = requests.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        // A panic inside redb must not stop the store: the batch's callers see their answer
        // channel closed (an error), and the next batch starts a new transaction.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| inner.commit_batch(batch)));
    }
}

impl Inner {
    /// Applies `batch` in order in one transaction, commits it durably, broadcasts its
    /// events, then answers each request. If the file fails, each request is retried alone.
    fn commit_batch(&self, batch: Vec<WriteRequest>) {
        match self.apply_batch(&batch) {
            Ok((results, events)) => {
                for group in by_revision(events) {
                    // No receiver is not an error: nobody is watching.
                    let _ = self.events.send(Arc::new(group));
                }
                let mut deadlines_moved = false;
                for (request, result) in batch.into_iter().zip(results) {
                    let answer = result.map(|(outcome, effect)| {
                        deadlines_moved |= self.take_effect(effect);
                        outcome
                    });
                    // A caller that stopped waiting still had its write committed.
                    let _ = request.reply.send(answer);
                }
                if deadlines_moved {
                    self.deadlines_changed.notify_one();
                }
            }
            Err(failure) if batch.len() == 1 => {
                let error = failure.into_error(&self.path);
                if let Some(request) = batch.into_iter().next() {
                    let _ = request.reply.send(Err(error));
                }
            }
            Err(_) => {
                for request in batch {
                    self.commit_batch(vec![request]);
                }
            }
        }
    }

    #[expect(
        clippy::type_complexity,
        reason = "one result per request plus the batch's events, used once"
    )]
    fn apply_batch(
        &self,
        batch: &[WriteRequest],
    ) -> Result<(Vec<Result<(Outcome, Effect), StoreError>>, Vec<Event>), Failure> {
        let mut transaction = self.database.begin_write()?;
        transaction.set_durability(Durability::Immediate)?;
        let (results, events) = {
            let mut writer = Writer::open(&transaction)?;
            let mut results = Vec::with_capacity(batch.len());
            for request in batch {
                match writer.apply(&request.op, self) {
                    Ok(done) => results.push(Ok(done)),
                    // Refused before it changed anything; the rest of the batch goes on.
                    Err(Failure::Store(error)) => results.push(Err(error)),
                    Err(failure) => return Err(failure),
                }
            }
            writer.finish(self.config.history)?;
            (results, writer.events)
        };
        transaction.commit()?;
        Ok((results, events))
    }

    /// Applies a committed write's change to the lease deadlines; `true` if one was set.
    fn take_effect(&self, effect: Effect) -> bool {
        match effect {
            Effect::None => false,
            Effect::Deadline(id, deadline) => {
                lock(&self.deadlines).insert(id, deadline);
                true
            }
            Effect::Forget(ids) => {
                let mut deadlines = lock(&self.deadlines);
                for id in ids {
                    deadlines.remove(&id);
                }
                false
            }
        }
    }
}

/// Splits a batch's events into one group per revision, in order.
fn by_revision(events: Vec<Event>) -> Vec<Vec<Event>> {
    let mut groups: Vec<Vec<Event>> = Vec::new();
    for event in events {
        match groups.last_mut() {
            Some(group) if group.first().map(Event::revision) == Some(event.revision()) => {
                group.push(event);
            }
            _ => groups.push(vec![event]),
        }
    }
    groups
}
