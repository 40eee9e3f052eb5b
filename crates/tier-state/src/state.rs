//! One environment's state database, `.tier/<env>/state.redb`, opened for one operation at a
//! time.
//!
//! redb holds an exclusive file lock for as long as a `Database` is open. Keeping it open for a
//! whole apply would lock out `tier history` and the "who holds the lock" message that a second
//! `tier apply` must print, so every operation opens the file, runs one transaction and closes
//! it. Operations of several processes are queued on a `flock` of `state.redb.lock` beside the
//! database: a blocking wait, released by the kernel when its holder dies, instead of retrying
//! redb's "already open" error in a sleep loop.
//!
//! Every change is one redb write transaction committed with redb's default durability
//! (`Durability::Immediate`, fsync before the commit returns), so a crash at any point leaves
//! either the old or the new state.
//!
//! redb trusts a cleanly closed file and can panic on pages changed behind its back, so `open`
//! verifies every page's checksum once per command (it reads the whole file), and a panic in any
//! later operation is caught and reported as `StateError::Corrupt`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use redb::{
    Database, Key, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, TableError, Value, WriteTransaction,
};
use tier_model::environment::Artifact;

use crate::error::StateError;
use crate::lock::{Holder, Lock};
use crate::record::{FORMAT, HolderRecord, RevisionRecord};
use crate::revision::{Origin, Outcome, Revision, Snapshot};

/// The current time in milliseconds since the Unix epoch. A plain function so tests can pass a
/// fixed clock, and so every wall-clock read of the store goes through one place.
pub type Clock = fn() -> u64;

/// The real clock: the one wall-clock read of this crate.
pub fn system_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Scalars of the store: `format`, `serial`, `deployed` (absent when nothing is deployed) and
/// `last_revision` (absent before the first revision).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Revision number to its JSON record (`record::RevisionRecord`).
const REVISIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("revisions");
/// At most one row, `holder`, with the lock holder's JSON record (`record::HolderRecord`).
const LOCK: TableDefinition<&str, &[u8]> = TableDefinition::new("lock");

const FORMAT_KEY: &str = "format";
const SERIAL_KEY: &str = "serial";
const DEPLOYED_KEY: &str = "deployed";
const LAST_REVISION_KEY: &str = "last_revision";
const HOLDER_KEY: &str = "holder";

/// The state store of one environment. It holds only paths, so it is cheap to clone and safe
/// to keep for the life of a command.
#[derive(Clone, Debug)]
pub struct State {
    database: PathBuf,
    access: PathBuf,
    clock: Clock,
}

impl State {
    /// Opens the state of the environment whose directory is `env_dir` (`.tier/<env>/`),
    /// creating the directory and the database when missing.
    pub fn open(env_dir: &Path) -> Result<State, StateError> {
        State::open_with_clock(env_dir, system_clock)
    }

    /// `open` with the clock that stamps revisions, for tests that want fixed times.
    pub fn open_with_clock(env_dir: &Path, clock: Clock) -> Result<State, StateError> {
        std::fs::create_dir_all(env_dir).map_err(|source| StateError::Io {
            path: env_dir.to_owned(),
            source,
        })?;
        let state = State {
            database: env_dir.join("state.redb"),
            access: env_dir.join("state.redb.lock"),
            clock,
        };
        let format = state.with_database(Verify::WholeFile, |database| {
            let transaction = database.begin_read()?;
            let Some(meta) = open_for_reading(&transaction, META)? else {
                return Ok(None);
            };
            meta_value(&meta, FORMAT_KEY)
        })?;
        match format {
            Some(found) if found == FORMAT => {}
            Some(found) => {
                return Err(StateError::UnsupportedFormat {
                    path: state.database.clone(),
                    found,
                    supported: FORMAT,
                });
            }
            None => state.write(|transaction| {
                transaction.open_table(REVISIONS)?;
                transaction.open_table(LOCK)?;
                let mut meta = transaction.open_table(META)?;
                meta.insert(FORMAT_KEY, FORMAT)?;
                Ok(())
            })?,
        }
        Ok(state)
    }

    /// The database file, for messages.
    pub fn path(&self) -> &Path {
        &self.database
    }

    /// The time by this store's clock, for callers that stamp records (a lock `Holder`) the
    /// same way the store stamps revisions.
    pub fn now_unix_ms(&self) -> u64 {
        (self.clock)()
    }

    /// Takes the environment's lock for `holder`. When a lock record exists, whether or not
    /// its holder still runs, fails with `Locked`: a dead holder's lock is broken only by
    /// `break_lock`, after a person agreed.
    pub fn lock(&self, holder: Holder) -> Result<Lock, StateError> {
        self.write(|transaction| {
            let mut table = transaction.open_table(LOCK)?;
            if let Some(existing) = holder_in(&table)? {
                let alive = existing.is_alive();
                return Err(Failure::State(StateError::Locked {
                    holder: existing,
                    alive,
                }));
            }
            let record = self.encode(&HolderRecord::from_holder(&holder))?;
            table.insert(HOLDER_KEY, record.as_slice())?;
            Ok(())
        })?;
        Ok(Lock::new(self.clone(), holder))
    }

    /// Who holds the lock, if anyone; `Holder::is_alive` tells whether it still runs.
    pub fn lock_holder(&self) -> Result<Option<Holder>, StateError> {
        self.read(|transaction| match open_for_reading(transaction, LOCK)? {
            Some(table) => holder_in(&table),
            None => Ok(None),
        })
    }

    /// Deletes the lock record whoever holds it and returns the holder it named. A record
    /// that cannot be read is deleted too (and `None` returned), since breaking the lock is
    /// how a user recovers from it.
    pub fn break_lock(&self) -> Result<Option<Holder>, StateError> {
        self.write(|transaction| {
            let mut table = transaction.open_table(LOCK)?;
            let removed = table
                .remove(HOLDER_KEY)?
                .map(|record| decode_holder(record.value()));
            Ok(removed.and_then(Result::ok))
        })
    }

    /// A number that grows with every committed change to revisions or to what is deployed
    /// (not with the lock), so a saved plan can tell whether the state moved since it was made.
    pub fn serial(&self) -> Result<u64, StateError> {
        self.read(|transaction| match open_for_reading(transaction, META)? {
            Some(meta) => Ok(meta_value(&meta, SERIAL_KEY)?.unwrap_or(0)),
            None => Ok(0),
        })
    }

    /// The revision that runs now: the last one that succeeded. A failed or rolled-back
    /// revision never becomes deployed.
    pub fn deployed(&self) -> Result<Option<Revision>, StateError> {
        Ok(self.snapshot()?.deployed)
    }

    /// The serial and the deployed revision read together, for plans that are checked against
    /// the serial later.
    pub fn snapshot(&self) -> Result<Snapshot, StateError> {
        self.read(|transaction| {
            let Some(meta) = open_for_reading(transaction, META)? else {
                return Ok(Snapshot {
                    serial: 0,
                    deployed: None,
                });
            };
            let serial = meta_value(&meta, SERIAL_KEY)?.unwrap_or(0);
            let deployed = match meta_value(&meta, DEPLOYED_KEY)? {
                Some(number) => Some(revision_in(transaction, number)?.ok_or_else(|| {
                    Failure::Corrupt(format!("the deployed revision {number} is missing"))
                })?),
                None => None,
            };
            Ok(Snapshot { serial, deployed })
        })
    }

    /// Every revision, oldest first. Revisions whose process died before finishing them are
    /// listed with `Outcome::InProgress`.
    pub fn history(&self) -> Result<Vec<Revision>, StateError> {
        self.read(|transaction| {
            let Some(table) = open_for_reading(transaction, REVISIONS)? else {
                return Ok(Vec::new());
            };
            let mut revisions = Vec::new();
            for entry in table.range::<u64>(..)? {
                let (number, record) = entry?;
                revisions.push(decode_revision(number.value(), record.value())?);
            }
            Ok(revisions)
        })
    }

    /// One revision by number, `None` when there is no such revision.
    pub fn revision(&self, number: u64) -> Result<Option<Revision>, StateError> {
        self.read(|transaction| revision_in(transaction, number))
    }

    pub(crate) fn release_lock(&self, holder: &Holder) -> Result<(), StateError> {
        self.write(|transaction| {
            self.check_holder(transaction, holder)?;
            transaction.open_table(LOCK)?.remove(HOLDER_KEY)?;
            Ok(())
        })
    }

    pub(crate) fn begin_revision(
        &self,
        holder: &Holder,
        spec: &serde_json::Value,
        artifacts: &BTreeMap<String, Artifact>,
        who: &str,
        origin: Origin,
        bom: &serde_json::Value,
    ) -> Result<u64, StateError> {
        self.write(|transaction| {
            self.check_holder(transaction, holder)?;
            let mut meta = transaction.open_table(META)?;
            let number = meta_value(&meta, LAST_REVISION_KEY)?
                .unwrap_or(0)
                .saturating_add(1);
            let revision = Revision {
                number,
                spec: spec.clone(),
                artifacts: artifacts.clone(),
                who: who.to_owned(),
                started_unix_ms: self.now_unix_ms(),
                finished_unix_ms: None,
                origin,
                outcome: Outcome::InProgress,
                bom: bom.clone(),
            };
            let record = self.encode(&RevisionRecord::from_revision(&revision))?;
            transaction
                .open_table(REVISIONS)?
                .insert(number, record.as_slice())?;
            meta.insert(LAST_REVISION_KEY, number)?;
            bump_serial(&mut meta)?;
            Ok(number)
        })
    }

    pub(crate) fn finish_revision(
        &self,
        holder: &Holder,
        number: u64,
        outcome: Outcome,
    ) -> Result<(), StateError> {
        if outcome == Outcome::InProgress {
            return Err(StateError::NotAFinish { number });
        }
        self.write(|transaction| {
            self.check_holder(transaction, holder)?;
            let mut meta = transaction.open_table(META)?;
            let deployed = meta_value(&meta, DEPLOYED_KEY)?;
            let mut revisions = transaction.open_table(REVISIONS)?;
            let mut revision = match revisions.get(number)? {
                Some(record) => decode_revision(number, record.value())?,
                None => return Err(Failure::State(StateError::NoSuchRevision { number })),
            };
            if revision.is_finished() {
                return Err(Failure::State(StateError::AlreadyFinished {
                    number,
                    outcome: revision.outcome,
                }));
            }
            let succeeded = outcome == Outcome::Succeeded;
            if let Some(deployed) = deployed.filter(|deployed| succeeded && *deployed > number) {
                return Err(Failure::State(StateError::Superseded { number, deployed }));
            }
            revision.outcome = outcome;
            revision.finished_unix_ms = Some(self.now_unix_ms());
            let record = self.encode(&RevisionRecord::from_revision(&revision))?;
            revisions.insert(number, record.as_slice())?;
            if succeeded {
                meta.insert(DEPLOYED_KEY, number)?;
            }
            bump_serial(&mut meta)?;
            Ok(())
        })
    }

    /// Writes revisions from elsewhere as they are, into a state that holds none.
    pub(crate) fn import_revisions(
        &self,
        holder: &Holder,
        revisions: &[Revision],
    ) -> Result<(), StateError> {
        let summary = crate::backend::Summary::of(revisions);
        self.write(|transaction| {
            self.check_holder(transaction, holder)?;
            let mut table = transaction.open_table(REVISIONS)?;
            if table.first()?.is_some() {
                return Err(Failure::Corrupt(
                    "revisions can only be imported into an empty state".to_owned(),
                ));
            }
            for revision in revisions {
                let record = self.encode(&RevisionRecord::from_revision(revision))?;
                table.insert(revision.number, record.as_slice())?;
            }
            let mut meta = transaction.open_table(META)?;
            meta.insert(LAST_REVISION_KEY, summary.last)?;
            meta.insert(SERIAL_KEY, summary.serial)?;
            if let Some(deployed) = summary.deployed {
                meta.insert(DEPLOYED_KEY, deployed)?;
            }
            Ok(())
        })
    }

    /// Fails with `LockLost` unless the lock record is `holder`'s: a lock broken while held
    /// must stop its old holder from writing.
    fn check_holder(&self, transaction: &WriteTransaction, holder: &Holder) -> Result<(), Failure> {
        let current = holder_in(&transaction.open_table(LOCK)?)?;
        if current.as_ref() == Some(holder) {
            return Ok(());
        }
        Err(Failure::State(StateError::LockLost {
            place: self.database.display().to_string(),
            holder: current,
        }))
    }

    pub(crate) fn encode<T: serde::Serialize>(&self, record: &T) -> Result<Vec<u8>, Failure> {
        serde_json::to_vec(record).map_err(|error| {
            Failure::State(StateError::Io {
                path: self.database.clone(),
                source: error.into(),
            })
        })
    }

    /// Runs `change` in one write transaction and commits it durably; when `change` fails,
    /// nothing is written.
    pub(crate) fn write<T>(
        &self,
        change: impl FnOnce(&WriteTransaction) -> Result<T, Failure>,
    ) -> Result<T, StateError> {
        self.with_database(Verify::AsLastVerified, |database| {
            let transaction = database.begin_write()?;
            let value = change(&transaction)?;
            transaction.commit()?;
            Ok(value)
        })
    }

    pub(crate) fn read<T>(
        &self,
        look: impl FnOnce(&ReadTransaction) -> Result<T, Failure>,
    ) -> Result<T, StateError> {
        self.with_database(Verify::AsLastVerified, |database| {
            look(&database.begin_read()?)
        })
    }

    /// Opens the database for one operation, waiting for other processes' operations first,
    /// and closes it afterwards.
    ///
    /// redb trusts a cleanly closed file and may panic on pages altered behind its back, so
    /// `Verify::WholeFile` (used by `open`, once per command) checks every page's checksum
    /// first, and a panic in any operation is caught and reported as corruption rather than
    /// taking the caller down.
    fn with_database<T>(
        &self,
        verify: Verify,
        operation: impl FnOnce(&Database) -> Result<T, Failure>,
    ) -> Result<T, StateError> {
        let _access = self.wait_for_access()?;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let database = redb::Builder::new()
                .set_check_integrity_on_open(verify == Verify::WholeFile)
                .create(&self.database)
                .map_err(|error| Failure::Database(error.into()))?;
            operation(&database)
        }));
        match outcome {
            Ok(result) => result.map_err(|failure| self.to_error(failure)),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|message| (*message).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(StateError::Corrupt {
                    path: self.database.clone(),
                    detail: format!("reading it failed: {message}"),
                })
            }
        }
    }

    fn wait_for_access(&self) -> Result<Flock<File>, StateError> {
        let io_error = |source| StateError::Io {
            path: self.access.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.access)
            .map_err(io_error)?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(lock) => return Ok(lock),
                Err((returned, nix::errno::Errno::EINTR)) => file = returned,
                Err((_, errno)) => return Err(io_error(errno.into())),
            }
        }
    }

    fn to_error(&self, failure: Failure) -> StateError {
        let path = self.database.clone();
        match failure {
            Failure::State(error) => error,
            Failure::Corrupt(detail) => StateError::Corrupt { path, detail },
            Failure::Database(error) => match error {
                redb::Error::Corrupted(detail) => StateError::Corrupt { path, detail },
                redb::Error::Io(source)
                    if matches!(
                        source.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
                    ) =>
                {
                    StateError::Corrupt {
                        path,
                        detail: source.to_string(),
                    }
                }
                redb::Error::Io(source) => StateError::Io { path, source },
                redb::Error::UpgradeRequired { .. }
                | redb::Error::RepairAborted
                | redb::Error::TableTypeMismatch { .. }
                | redb::Error::TableIsMultimap { .. }
                | redb::Error::TableIsNotMultimap { .. }
                | redb::Error::TypeDefinitionChanged { .. } => StateError::Corrupt {
                    path,
                    detail: error.to_string(),
                },
                source => StateError::Database { path, source },
            },
        }
    }
}

/// How far an operation trusts the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verify {
    /// Check every page's checksum before using the file: once per command, in `open`. It
    /// reads the whole file, which is too slow to repeat for every operation.
    WholeFile,
    /// Trust the file as `open` verified it (redb still checks everything after a crash).
    AsLastVerified,
}

/// Why an operation failed, before the database path is attached; lets the transaction code
/// use `?` on every redb error type.
pub(crate) enum Failure {
    Database(redb::Error),
    /// A record that does not decode, or a reference to a missing one.
    Corrupt(String),
    State(StateError),
}

impl From<StateError> for Failure {
    fn from(error: StateError) -> Failure {
        Failure::State(error)
    }
}

impl<E: Into<redb::Error>> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure::Database(error.into())
    }
}

/// A table of a read transaction, or `None` when the file has no such table yet (it was
/// deleted and recreated empty since `open`).
pub(crate) fn open_for_reading<K: Key + 'static, V: Value + 'static>(
    transaction: &ReadTransaction,
    definition: TableDefinition<K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, Failure> {
    match transaction.open_table(definition) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

fn meta_value(
    meta: &impl ReadableTable<&'static str, u64>,
    key: &str,
) -> Result<Option<u64>, Failure> {
    Ok(meta.get(key)?.map(|value| value.value()))
}

fn bump_serial(meta: &mut redb::Table<&'static str, u64>) -> Result<(), Failure> {
    let serial = meta_value(meta, SERIAL_KEY)?.unwrap_or(0);
    meta.insert(SERIAL_KEY, serial.saturating_add(1))?;
    Ok(())
}

fn holder_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<Holder>, Failure> {
    match table.get(HOLDER_KEY)? {
        Some(record) => Ok(Some(decode_holder(record.value())?)),
        None => Ok(None),
    }
}

fn decode_holder(bytes: &[u8]) -> Result<Holder, Failure> {
    serde_json::from_slice::<HolderRecord>(bytes)
        .map(HolderRecord::into_holder)
        .map_err(|error| Failure::Corrupt(format!("the lock record does not decode: {error}")))
}

fn revision_in(transaction: &ReadTransaction, number: u64) -> Result<Option<Revision>, Failure> {
    let Some(table) = open_for_reading(transaction, REVISIONS)? else {
        return Ok(None);
    };
    match table.get(number)? {
        Some(record) => Ok(Some(decode_revision(number, record.value())?)),
        None => Ok(None),
    }
}

fn decode_revision(number: u64, bytes: &[u8]) -> Result<Revision, Failure> {
    serde_json::from_slice::<RevisionRecord>(bytes)
        .map(RevisionRecord::into_revision)
        .map_err(|error| Failure::Corrupt(format!("revision {number} does not decode: {error}")))
}
