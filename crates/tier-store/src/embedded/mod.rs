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
//!
//! The writer thread and its batches are in `queue`, one write's changes to the tables in
//! `writer`, lease expiry in `expiry`, watches in `watch`, and the failures of redb calls in
//! `failure`.

mod expiry;
mod failure;
mod queue;
mod watch;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::expiry::{expire_leases, recover};
use self::failure::Failure;
use self::queue::{Outcome, WriteOp, WriteRequest, Writes, run_writer};
use self::watch::Watcher;
use crate::backend::{Backend, WatchStream, check_key, check_ttl};
use crate::codec;
use crate::error::StoreError;
use crate::types::{
    CasOutcome, Compare, Event, KeyValue, Lease, LeaseId, Op, Range, Revision, Selector,
    TxnOutcome, check_txn,
};
use crate::watch_feed::watch_stream;

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

/// What every handle, the writer thread and the expiry task share.
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

impl Inner {
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
