//! The interface every store backend implements.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;

use crate::error::StoreError;
use crate::types::{
    CasOutcome, Compare, KeyValue, Lease, LeaseId, Op, Range, Revision, Selector, TxnOutcome,
};

/// The longest lease a backend grants (etcd's limit is about 9e10 seconds; ours is a year).
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Events in revision order. A backend ends the stream with `Err(StoreError::Compacted)` when
/// the watcher fell behind history that was compacted meanwhile.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<crate::types::Event, StoreError>> + Send>>;

/// A key-value store with a global revision, in the shape of etcd's KV, Watch and Lease APIs.
///
/// Every method that writes returns only after the write is durable.
pub trait Backend: Send + Sync + 'static {
    /// The key as it is now, or `None`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KeyValue>, StoreError>> + Send;

    /// Every key starting with `prefix`, in key order, and the revision they were read at.
    fn range(&self, prefix: &str) -> impl Future<Output = Result<Range, StoreError>> + Send;

    /// Writes `value` under `key`, attached to `lease` if given, and returns the new revision.
    /// A put without a lease detaches the key from any lease it had.
    fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> impl Future<Output = Result<Revision, StoreError>> + Send;

    /// Deletes `key`; returns the revision of the deletion, or `None` (and writes nothing)
    /// when the key did not exist.
    fn delete(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Revision>, StoreError>> + Send;

    /// Writes `value` under `key` only if the key's mod revision is `expected`;
    /// `Revision(0)` expects the key not to exist.
    fn txn_put_if_mod_revision(
        &self,
        key: &str,
        expected: Revision,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<CasOutcome, StoreError>> + Send;

    /// Applies every operation of `then`, atomically and at one revision, if every comparison
    /// of `compare` holds; otherwise writes nothing and answers the compared keys as they are
    /// (etcd's `Txn`, without an else branch). The operations' events share that revision and
    /// come in the order of `then`; a watcher sees each once. A key may be changed by one
    /// operation only (`StoreError::InvalidTxn`); an operation refused for its own reason (an
    /// unknown lease) fails the whole transaction and writes nothing.
    fn txn(
        &self,
        compare: Vec<Compare>,
        then: Vec<Op>,
    ) -> impl Future<Output = Result<TxnOutcome, StoreError>> + Send;

    /// Every event for `selector` with revision `from` or later: first the retained history,
    /// then live events, in revision order, none missed or repeated. `Revision(0)` starts
    /// after the current revision. A revision older than the compacted one fails with
    /// `StoreError::Compacted`.
    fn watch(
        &self,
        selector: Selector,
        from: Revision,
    ) -> impl Future<Output = Result<WatchStream, StoreError>> + Send;

    /// Grants a lease that expires `ttl` after its grant or last keep-alive.
    fn grant(&self, ttl: Duration) -> impl Future<Output = Result<Lease, StoreError>> + Send;

    /// Restarts the lease's time to live.
    fn keep_alive(&self, id: LeaseId) -> impl Future<Output = Result<Lease, StoreError>> + Send;

    /// Ends the lease now, deleting its keys (one delete event each).
    fn revoke(&self, id: LeaseId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Drops history older than `revision`: watches and reads from an earlier revision fail
    /// with `StoreError::Compacted`. Current keys are unaffected.
    fn compact(&self, revision: Revision) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The current global revision and the oldest retained one.
    fn revisions(&self) -> impl Future<Output = Result<(Revision, Revision), StoreError>> + Send;
}

/// Refuses the empty key, which no backend stores.
pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::InvalidKey("a key must not be empty"));
    }
    Ok(())
}

/// Refuses a lease time to live of zero or above `MAX_LEASE_TTL`.
pub(crate) fn check_ttl(ttl: Duration) -> Result<(), StoreError> {
    if ttl.is_zero() || ttl > MAX_LEASE_TTL {
        return Err(StoreError::InvalidTtl);
    }
    Ok(())
}
