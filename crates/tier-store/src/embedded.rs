//! The embedded backend: one redb file per environment.
//!
//! Tables: `meta` (the global revision, the compacted revision, the next lease id), `kv`
//! (key → value and bookkeeping), `log` (revision → event, the retained history), `leases`
//! (id → time to live and wall-clock expiry) and `lease_keys` ((lease, key) → (), so revoking
//! a lease does not scan every key).
//!
//! Writes are group-committed: every write (put, delete, compare-and-swap, transaction, lease
//! and compaction operations) is queued to one writer thread, which takes everything queued, applies it in
//! order inside one redb transaction, commits it with `Durability::Immediate` (fsynced before
//! `commit` returns), broadcasts the events, and only then answers each caller with its own
//! revision or outcome. Concurrent writers thus share one fsync, while each write still sees
//! every earlier one (a compare-and-swap compares against the writes queued before it), and
//! revisions are handed out in queue order without gaps. A write refused for a reason of its
//! own (an unknown lease, a compacted revision) changes nothing and does not affect the others
//! in its batch; if the file fails during a batch, each write of it is retried alone, so every
//! caller gets the answer its own write deserves. Only the writer thread broadcasts, so
//! broadcast order is revision order; a watcher that misses broadcasts (it lagged) re-reads the
//! log, which already holds every broadcast event.
//!
//! A transaction ([`Backend::txn`]) is one queued write: its comparisons are checked and its
//! operations applied at one revision, their events kept in one `log` record in the order of
//! the operations and broadcast as one message, so a watcher takes a revision whole.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, WatchStream, check_key, check_ttl};
use crate::codec::{self, StoredKey, StoredLease};
use crate::error::StoreError;
use crate::types::{
    CasOutcome, Compare, Event, KeyValue, Lease, LeaseId, Op, Range, Revision, Selector,
    TxnOutcome, check_txn,
};
use crate::watch_feed::{Fetched, WatchSource, watch_stream};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const LEASES: TableDefinition<i64, &[u8]> = TableDefinition::new("leases");
const LEASE_KEYS: TableDefinition<(i64, &str), ()> = TableDefinition::new("lease_keys");

const REVISION: &str = "revision";
const COMPACTED: &str = "compacted";
const NEXT_LEASE: &str = "next_lease";

/// How many committed events a watcher may fall behind before it re-reads the log.
const BROADCAST_CAPACITY: usize = 1024;

/// The most writes one transaction takes from the queue; more wait for the next commit.
const MAX_BATCH: usize = 1024;

/// How the embedded store behaves.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// How many revisions of history to keep for watches; older history is compacted
    /// automatically (between this many and twice this many revisions are retained). `None`
    /// keeps everything until `compact` is called.
    pub history: Option<u64>,
    /// The wall clock, read only to record when leases expire so that a store reopened later
    /// revokes the leases that expired while it was closed. Running expiry uses tokio's clock.
    pub wall_clock: fn() -> SystemTime,
}

impl Default for EmbeddedConfig {
    fn default() -> EmbeddedConfig {
        EmbeddedConfig {
            history: Some(10_000),
            wall_clock: SystemTime::now,
        }
    }
}

/// The store on a redb file. Cheap to clone; the file closes when the last clone and every
/// running operation are gone (open watches do not keep it open: they end instead).
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    writes: Arc<Writes>,
}

/// The queue to the writer thread. Dropping the last one closes the queue and waits for the
/// thread to finish, so the file is closed when the last handle is gone.
struct Writes {
    queue: Option<mpsc::UnboundedSender<WriteRequest>>,
    thread: Option<JoinHandle<()>>,
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
struct WriteRequest {
    op: WriteOp,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// Every kind of write, so the writer thread can batch them. Times are read by the caller, on
/// tokio's clock, so paused-time tests hold.
enum WriteOp {
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
enum Outcome {
    Written(Revision),
    Deleted(Option<Revision>),
    Swap(CasOutcome),
    Txn(TxnOutcome),
    Lease(Lease),
    Done,
}

/// What changes in memory once a write's transaction is durable.
enum Effect {
    None,
    Deadline(LeaseId, Instant),
    Forget(Vec<LeaseId>),
}

struct Inner {
    path: PathBuf,
    database: Database,
    config: EmbeddedConfig,
    /// Every committed revision's events (one, or a transaction's), in revision order.
    events: broadcast::Sender<Arc<Vec<Event>>>,
    /// When each live lease expires, on tokio's clock.
    deadlines: Mutex<HashMap<LeaseId, Instant>>,
    /// Wakes the expiry task when a deadline is added or moved.
    deadlines_changed: Arc<Notify>,
    shutdown: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store file at `path`, revokes the leases that expired
    /// while it was closed, and starts expiring the others on tokio's clock. Must be called
    /// within a tokio runtime, which then runs the store's blocking file work and its expiry
    /// task.
    pub async fn open(path: &Path, config: EmbeddedConfig) -> Result<EmbeddedStore, StoreError> {
        let path = path.to_path_buf();
        let opening = path.clone();
        let wall_now = (config.wall_clock)();
        let (database, live_leases) = run_blocking(move || {
            let database =
                Database::create(&opening).map_err(|error| Failure::Database(error.into()));
            let database = database.map_err(|failure| failure.into_error(&opening))?;
            let live =
                recover(&database, wall_now).map_err(|failure| failure.into_error(&opening))?;
            Ok((database, live))
        })
        .await?;
        let now = Instant::now();
        let deadlines = live_leases
            .into_iter()
            .map(|(id, remaining)| (id, now + remaining))
            .collect();
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let inner = Arc::new(Inner {
            path,
            database,
            config,
            events,
            deadlines: Mutex::new(deadlines),
            deadlines_changed: Arc::new(Notify::new()),
            shutdown: CancellationToken::new(),
        });
        let (queue, requests) = mpsc::unbounded_channel();
        let writer = inner.clone();
        let thread = std::thread::Builder::new()
            .name("tier-store-writer".into())
            .spawn(move || run_writer(&writer, requests))
            .map_err(|error| {
                StoreError::Task(format!("cannot start the writer thread: {error}"))
            })?;
        let writes = Arc::new(Writes {
            queue: Some(queue),
            thread: Some(thread),
        });
        tokio::spawn(expire_leases(
            Arc::downgrade(&inner),
            Arc::downgrade(&writes),
            inner.deadlines_changed.clone(),
            inner.shutdown.clone(),
        ));
        Ok(EmbeddedStore { inner, writes })
    }

    /// The store file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues a write and waits until its batch is durable.
    async fn write(&self, op: WriteOp) -> Result<Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let queued = self
            .writes
            .queue
            .as_ref()
            .map(|queue| queue.send(WriteRequest { op, reply }));
        if !matches!(queued, Some(Ok(()))) {
            return Err(StoreError::Task("the store's writer has stopped".into()));
        }
        // Waiting on the blocking pool rather than on the channel keeps tokio's paused clock
        // from jumping ahead while a commit is in flight, as it would for a task that only
        // awaits another thread (it auto-advances whenever every task is idle).
        run_blocking(move || {
            answer.blocking_recv().map_err(|_| {
                StoreError::Task("the store's writer stopped before the write was committed".into())
            })?
        })
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        look: impl FnOnce(&redb::ReadTransaction) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        run_blocking(move || inner.read(look)).await
    }

    /// Revokes the leases whose deadline is `now` or earlier.
    async fn revoke_expired(&self, now: Instant) -> Result<(), StoreError> {
        self.write(WriteOp::RevokeExpired { at: now })
            .await
            .map(drop)
    }
}

/// The writer thread: takes everything queued, commits it as one transaction, answers each
/// caller; until every handle is gone.
fn run_writer(inner: &Inner, mut requests: mpsc::UnboundedReceiver<WriteRequest>) {
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

    fn read<T>(
        &self,
        look: impl FnOnce(&redb::ReadTransaction) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        self.database
            .begin_read()
            .map_err(Failure::from)
            .and_then(|transaction| look(&transaction))
            .map_err(|failure| failure.into_error(&self.path))
    }

    fn lease_expired(&self, id: LeaseId, now: Instant) -> bool {
        lock(&self.deadlines)
            .get(&id)
            .is_none_or(|deadline| *deadline <= now)
    }
}

impl Backend for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.to_owned();
        self.read(move |transaction| {
            let kv = transaction.open_table(KV)?;
            let stored = kv
                .get(key.as_str())?
                .map(|record| codec::decode_key(record.value()));
            match stored {
                Some(record) => Ok(Some(record.map_err(Failure::Corrupt)?.into_key_value(key))),
                None => Ok(None),
            }
        })
        .await
    }

    async fn range(&self, prefix: &str) -> Result<Range, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |transaction| {
            let revision = Revision(meta_value(&transaction.open_table(META)?, REVISION)?);
            let kv = transaction.open_table(KV)?;
            let mut kvs = Vec::new();
            for entry in kv.range(prefix.as_str()..)? {
                let (key, record) = entry?;
                if !key.value().starts_with(prefix.as_str()) {
                    break;
                }
                let record = codec::decode_key(record.value()).map_err(Failure::Corrupt)?;
                kvs.push(record.into_key_value(key.value().to_owned()));
            }
            Ok(Range { revision, kvs })
        })
        .await
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, StoreError> {
        check_key(key)?;
        let op = WriteOp::Put {
            key: key.to_owned(),
            value,
            lease,
            at: Instant::now(),
        };
        match self.write(op).await? {
            Outcome::Written(revision) => Ok(revision),
            _ => Err(unexpected()),
        }
    }

    async fn delete(&self, key: &str) -> Result<Option<Revision>, StoreError> {
        check_key(key)?;
        let op = WriteOp::Delete {
            key: key.to_owned(),
        };
        match self.write(op).await? {
            Outcome::Deleted(revision) => Ok(revision),
            _ => Err(unexpected()),
        }
    }

    async fn txn_put_if_mod_revision(
        &self,
        key: &str,
        expected: Revision,
        value: Vec<u8>,
    ) -> Result<CasOutcome, StoreError> {
        check_key(key)?;
        let op = WriteOp::PutIfModRevision {
            key: key.to_owned(),
            expected,
            value,
        };
        match self.write(op).await? {
            Outcome::Swap(outcome) => Ok(outcome),
            _ => Err(unexpected()),
        }
    }

    async fn txn(&self, compare: Vec<Compare>, then: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        check_txn(&compare, &then)?;
        let op = WriteOp::Txn {
            compare,
            then,
            at: Instant::now(),
        };
        match self.write(op).await? {
            Outcome::Txn(outcome) => Ok(outcome),
            _ => Err(unexpected()),
        }
    }

    async fn watch(&self, selector: Selector, from: Revision) -> Result<WatchStream, StoreError> {
        // Subscribe before reading the log, so nothing committed in between is missed.
        let receiver = self.inner.events.subscribe();
        let from = if from == Revision(0) {
            self.revisions().await?.0.next()
        } else {
            from
        };
        let mut watcher = Watcher {
            store: Arc::downgrade(&self.inner),
            selector,
            next: from,
            receiver,
        };
        // This call holds the store, so the first catch-up cannot find it gone.
        let mut first = VecDeque::new();
        watcher.catch_up(&mut first).await?;
        Ok(watch_stream(first, watcher))
    }

    async fn grant(&self, ttl: Duration) -> Result<Lease, StoreError> {
        check_ttl(ttl)?;
        let op = WriteOp::Grant {
            ttl,
            at: Instant::now(),
        };
        match self.write(op).await? {
            Outcome::Lease(lease) => Ok(lease),
            _ => Err(unexpected()),
        }
    }

    async fn keep_alive(&self, id: LeaseId) -> Result<Lease, StoreError> {
        let op = WriteOp::KeepAlive {
            id,
            at: Instant::now(),
        };
        match self.write(op).await? {
            Outcome::Lease(lease) => Ok(lease),
            _ => Err(unexpected()),
        }
    }

    async fn revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        self.write(WriteOp::Revoke { id }).await.map(drop)
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.write(WriteOp::Compact { revision }).await.map(drop)
    }

    async fn revisions(&self) -> Result<(Revision, Revision), StoreError> {
        self.read(|transaction| {
            let meta = transaction.open_table(META)?;
            Ok((
                Revision(meta_value(&meta, REVISION)?),
                Revision(meta_value(&meta, COMPACTED)?),
            ))
        })
        .await
    }
}

/// The tables of one write transaction and the events it produced.
struct Writer<'t> {
    meta: redb::Table<'t, &'static str, u64>,
    kv: redb::Table<'t, &'static str, &'static [u8]>,
    log: redb::Table<'t, u64, &'static [u8]>,
    leases: redb::Table<'t, i64, &'static [u8]>,
    lease_keys: redb::Table<'t, (i64, &'static str), ()>,
    revision: Revision,
    compacted: Revision,
    /// The revision a transaction's operations all take while it is being applied.
    open_txn: Option<Revision>,
    events: Vec<Event>,
}

impl<'t> Writer<'t> {
    fn open(transaction: &'t WriteTransaction) -> Result<Writer<'t>, Failure> {
        let meta = transaction.open_table(META)?;
        let revision = Revision(meta_value(&meta, REVISION)?);
        let compacted = Revision(meta_value(&meta, COMPACTED)?);
        Ok(Writer {
            meta,
            kv: transaction.open_table(KV)?,
            log: transaction.open_table(LOG)?,
            leases: transaction.open_table(LEASES)?,
            lease_keys: transaction.open_table(LEASE_KEYS)?,
            revision,
            compacted,
            open_txn: None,
            events: Vec::new(),
        })
    }

    /// Applies one queued write. A refusal (`Failure::Store`) is returned before anything
    /// changed, so the rest of the batch can go on.
    fn apply(&mut self, op: &WriteOp, inner: &Inner) -> Result<(Outcome, Effect), Failure> {
        match op {
            WriteOp::Put {
                key,
                value,
                lease,
                at,
            } => {
                if let Some(id) = *lease
                    && inner.lease_expired(id, *at)
                {
                    return Err(StoreError::LeaseNotFound(id).into());
                }
                let revision = self.put_key(key, value.clone(), *lease)?;
                Ok((Outcome::Written(revision), Effect::None))
            }
            WriteOp::Delete { key } => Ok((Outcome::Deleted(self.delete_key(key)?), Effect::None)),
            WriteOp::PutIfModRevision {
                key,
                expected,
                value,
            } => {
                let current = self.stored(key)?;
                let current_revision = current
                    .as_ref()
                    .map_or(Revision(0), |record| record.mod_revision);
                if current_revision != *expected {
                    let current = current.map(|record| record.into_key_value(key.clone()));
                    return Ok((
                        Outcome::Swap(CasOutcome::Conflict { current }),
                        Effect::None,
                    ));
                }
                let lease = current.and_then(|record| record.lease);
                let revision = self.put_key(key, value.clone(), lease)?;
                Ok((Outcome::Swap(CasOutcome::Written(revision)), Effect::None))
            }
            WriteOp::Txn { compare, then, at } => {
                let mut current = Vec::with_capacity(compare.len());
                let mut holds = true;
                for condition in compare {
                    let stored = self.stored(&condition.key)?;
                    let mod_revision = stored
                        .as_ref()
                        .map_or(Revision(0), |record| record.mod_revision);
                    holds &= mod_revision == condition.mod_revision;
                    current.push(stored.map(|record| record.into_key_value(condition.key.clone())));
                }
                if !holds {
                    let outcome = TxnOutcome::Failed { current };
                    return Ok((Outcome::Txn(outcome), Effect::None));
                }
                // Every refusal before the first change, so a refused transaction writes
                // nothing and the rest of the batch goes on.
                for op in then {
                    if let Op::Put {
                        lease: Some(id), ..
                    } = op
                        && (inner.lease_expired(*id, *at) || self.lease(*id)?.is_none())
                    {
                        return Err(StoreError::LeaseNotFound(*id).into());
                    }
                }
                let revision = self.revision.next();
                self.open_txn = Some(revision);
                let applied = self.apply_ops(then);
                self.open_txn = None;
                let changed = applied?;
                let revision = if changed { revision } else { self.revision };
                Ok((
                    Outcome::Txn(TxnOutcome::Committed { revision }),
                    Effect::None,
                ))
            }
            WriteOp::Grant { ttl, at } => {
                let ttl_millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let id =
                    LeaseId(i64::try_from(self.take_lease_id()?).map_err(|_| {
                        Failure::Corrupt("the lease id counter overflowed".to_owned())
                    })?);
                self.store_lease(id, ttl_millis, (inner.config.wall_clock)())?;
                let lease = Lease { id, ttl: *ttl };
                Ok((Outcome::Lease(lease), Effect::Deadline(id, *at + *ttl)))
            }
            WriteOp::KeepAlive { id, at } => {
                let live = !inner.lease_expired(*id, *at);
                let Some(stored) = self.lease(*id)?.filter(|_| live) else {
                    return Err(StoreError::LeaseNotFound(*id).into());
                };
                self.store_lease(*id, stored.ttl_millis, (inner.config.wall_clock)())?;
                let ttl = Duration::from_millis(stored.ttl_millis);
                let lease = Lease { id: *id, ttl };
                Ok((Outcome::Lease(lease), Effect::Deadline(*id, *at + ttl)))
            }
            WriteOp::Revoke { id } => {
                if !self.revoke_lease(*id)? {
                    return Err(StoreError::LeaseNotFound(*id).into());
                }
                Ok((Outcome::Done, Effect::Forget(vec![*id])))
            }
            WriteOp::RevokeExpired { at } => {
                let expired: Vec<LeaseId> = lock(&inner.deadlines)
                    .iter()
                    .filter(|(_, deadline)| **deadline <= *at)
                    .map(|(id, _)| *id)
                    .collect();
                for id in &expired {
                    self.revoke_lease(*id)?;
                }
                Ok((Outcome::Done, Effect::Forget(expired)))
            }
            WriteOp::Compact { revision } => {
                if *revision > self.revision {
                    return Err(StoreError::FutureRevision {
                        requested: *revision,
                        current: self.revision,
                    }
                    .into());
                }
                if *revision <= self.compacted {
                    return Err(StoreError::Compacted {
                        requested: *revision,
                        compacted: self.compacted,
                    }
                    .into());
                }
                self.compact_to(*revision)?;
                Ok((Outcome::Done, Effect::None))
            }
        }
    }

    /// Applies a transaction's operations at the open revision; `true` if one changed a key.
    fn apply_ops(&mut self, then: &[Op]) -> Result<bool, Failure> {
        let mut changed = false;
        for op in then {
            match op {
                Op::Put { key, value, lease } => {
                    self.put_key(key, value.clone(), *lease)?;
                    changed = true;
                }
                Op::Delete { key } => changed |= self.delete_key(key)?.is_some(),
            }
        }
        Ok(changed)
    }

    /// The revision the next change takes: the open transaction's, or the next one.
    fn next_revision(&self) -> Revision {
        self.open_txn.unwrap_or_else(|| self.revision.next())
    }

    fn stored(&self, key: &str) -> Result<Option<StoredKey>, Failure> {
        match self.kv.get(key)? {
            Some(record) => Ok(Some(
                codec::decode_key(record.value()).map_err(Failure::Corrupt)?,
            )),
            None => Ok(None),
        }
    }

    fn lease(&self, id: LeaseId) -> Result<Option<StoredLease>, Failure> {
        match self.leases.get(id.0)? {
            Some(record) => Ok(Some(
                codec::decode_lease(record.value()).map_err(Failure::Corrupt)?,
            )),
            None => Ok(None),
        }
    }

    fn put_key(
        &mut self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, Failure> {
        if let Some(id) = lease
            && self.lease(id)?.is_none()
        {
            return Err(StoreError::LeaseNotFound(id).into());
        }
        let previous = self.stored(key)?;
        let revision = self.next_revision();
        let (create_revision, version) = match &previous {
            Some(record) => (record.create_revision, record.version.saturating_add(1)),
            None => (revision, 1),
        };
        let previous_lease = previous.and_then(|record| record.lease);
        if previous_lease != lease {
            if let Some(LeaseId(old)) = previous_lease {
                self.lease_keys.remove((old, key))?;
            }
            if let Some(LeaseId(new)) = lease {
                self.lease_keys.insert((new, key), ())?;
            }
        }
        let record = StoredKey {
            value,
            create_revision,
            mod_revision: revision,
            version,
            lease,
        };
        self.kv.insert(key, codec::encode_key(&record).as_slice())?;
        self.append(Event::Put(record.into_key_value(key.to_owned())))?;
        Ok(revision)
    }

    fn delete_key(&mut self, key: &str) -> Result<Option<Revision>, Failure> {
        let Some(previous) = self.stored(key)? else {
            return Ok(None);
        };
        self.kv.remove(key)?;
        if let Some(LeaseId(id)) = previous.lease {
            self.lease_keys.remove((id, key))?;
        }
        let revision = self.next_revision();
        self.append(Event::Delete {
            key: key.to_owned(),
            revision,
        })?;
        Ok(Some(revision))
    }

    /// Records an event in the log under its revision, together with the earlier events of
    /// the same revision (a transaction's).
    fn append(&mut self, event: Event) -> Result<(), Failure> {
        let revision = event.revision();
        self.revision = revision;
        self.events.push(event);
        let first = self
            .events
            .iter()
            .rposition(|event| event.revision() != revision)
            .map_or(0, |index| index + 1);
        self.log.insert(
            revision.0,
            codec::encode_events(&self.events[first..]).as_slice(),
        )?;
        Ok(())
    }

    /// Deletes the lease and its keys; `false` when there is no such lease.
    fn revoke_lease(&mut self, id: LeaseId) -> Result<bool, Failure> {
        if self.leases.remove(id.0)?.is_none() {
            return Ok(false);
        }
        let mut keys = Vec::new();
        for entry in self.lease_keys.range((id.0, "")..)? {
            let (lease_and_key, _) = entry?;
            let (lease, key) = lease_and_key.value();
            if lease != id.0 {
                break;
            }
            keys.push(key.to_owned());
        }
        for key in keys {
            self.delete_key(&key)?;
        }
        Ok(true)
    }

    fn take_lease_id(&mut self) -> Result<u64, Failure> {
        let id = meta_value(&self.meta, NEXT_LEASE)?.max(1);
        self.meta.insert(NEXT_LEASE, id.saturating_add(1))?;
        Ok(id)
    }

    fn store_lease(
        &mut self,
        id: LeaseId,
        ttl_millis: u64,
        wall_now: SystemTime,
    ) -> Result<(), Failure> {
        let record = StoredLease {
            ttl_millis,
            expires_unix_millis: unix_millis(wall_now).saturating_add(ttl_millis),
        };
        self.leases
            .insert(id.0, codec::encode_lease(&record).as_slice())?;
        Ok(())
    }

    fn compact_to(&mut self, revision: Revision) -> Result<(), Failure> {
        self.log.retain_in(..revision.0, |_, _| false)?;
        self.compacted = revision;
        Ok(())
    }

    /// Records the revisions and trims history beyond `history` revisions.
    fn finish(&mut self, history: Option<u64>) -> Result<(), Failure> {
        if let Some(history) = history {
            let keep_from = Revision(
                self.revision
                    .0
                    .saturating_sub(history.max(1))
                    .saturating_add(1),
            );
            if keep_from.0.saturating_sub(self.compacted.0) >= history.max(1) {
                self.compact_to(keep_from)?;
            }
        }
        self.meta.insert(REVISION, self.revision.0)?;
        self.meta.insert(COMPACTED, self.compacted.0)?;
        Ok(())
    }
}

/// Creates the tables of a new file and revokes the leases that expired while the store was
/// closed; returns the other leases with their remaining time.
fn recover(database: &Database, wall_now: SystemTime) -> Result<Vec<(LeaseId, Duration)>, Failure> {
    let mut transaction = database.begin_write()?;
    transaction.set_durability(Durability::Immediate)?;
    let outcome = {
        let mut writer = Writer::open(&transaction)?;
        let now = unix_millis(wall_now);
        let mut live = Vec::new();
        let mut expired = Vec::new();
        for entry in writer.leases.iter()? {
            let (id, record) = entry?;
            let record = codec::decode_lease(record.value()).map_err(Failure::Corrupt)?;
            match record.expires_unix_millis.checked_sub(now) {
                Some(remaining) if remaining > 0 => {
                    live.push((LeaseId(id.value()), Duration::from_millis(remaining)));
                }
                _ => expired.push(LeaseId(id.value())),
            }
        }
        for id in &expired {
            writer.revoke_lease(*id)?;
        }
        writer.finish(None)?;
        live
    };
    transaction.commit()?;
    Ok(outcome)
}

/// Revokes leases as their deadlines pass, until the store is dropped.
async fn expire_leases(
    store: Weak<Inner>,
    writes: Weak<Writes>,
    changed: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let next = match store.upgrade() {
            Some(inner) => lock(&inner.deadlines).values().min().copied(),
            None => return,
        };
        let wait = async {
            match next {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = changed.notified() => {}
            () = wait => {
                let (Some(inner), Some(writes)) = (store.upgrade(), writes.upgrade()) else {
                    return;
                };
                let store = EmbeddedStore { inner, writes };
                if store.revoke_expired(Instant::now()).await.is_err() {
                    // The file is failing; try again later rather than spinning.
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
}

/// One watch's position: every event before `next` has been fetched or skipped.
struct Watcher {
    store: Weak<Inner>,
    selector: Selector,
    next: Revision,
    receiver: broadcast::Receiver<Arc<Vec<Event>>>,
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
    async fn catch_up(&mut self, events: &mut VecDeque<Event>) -> Result<Fetched, StoreError> {
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

fn unexpected() -> StoreError {
    StoreError::Task("the store's writer answered a different kind of write".into())
}

fn meta_value(meta: &impl ReadableTable<&'static str, u64>, name: &str) -> Result<u64, Failure> {
    Ok(meta.get(name)?.map_or(0, |value| value.value()))
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Locks a mutex whose data stays consistent even if a holder panicked (every critical section
/// is a single map update or a redb transaction that rolls back on panic).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StoreError::Task(error.to_string()))?
}

/// Why an operation failed, before the file's path is attached; lets transaction code use `?`
/// on every redb error type.
enum Failure {
    Database(redb::Error),
    /// A record that does not decode.
    Corrupt(String),
    Store(StoreError),
}

impl Failure {
    fn into_error(self, path: &Path) -> StoreError {
        let path = path.to_path_buf();
        match self {
            Failure::Store(error) => error,
            Failure::Corrupt(detail) => StoreError::Corrupt { path, detail },
            Failure::Database(redb::Error::Corrupted(detail)) => {
                StoreError::Corrupt { path, detail }
            }
            Failure::Database(source) => StoreError::Database { path, source },
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        Failure::Store(error)
    }
}

macro_rules! failure_from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for Failure {
            fn from(error: $error) -> Failure {
                Failure::Database(error.into())
            }
        }
    )*};
}

failure_from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
