//! The values the store hands out, shared by every backend.

use std::fmt;
use std::time::Duration;

/// A point in the store's history. The global revision grows by one with every write;
/// `Revision(0)` means "no revision" (a key that does not exist, or "from now" in a watch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(pub u64);

impl Revision {
    /// The revision after this one.
    pub fn next(self) -> Revision {
        Revision(self.0.saturating_add(1))
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

/// The id of a lease; keys attached to it disappear when it expires or is revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseId(pub i64);

impl fmt::Display for LeaseId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

/// A granted lease and its time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub id: LeaseId,
    pub ttl: Duration,
}

/// One key as stored, with etcd's bookkeeping: the revision that created it (since it last
/// did not exist), the revision that last changed it, and how many times it was written since
/// it was created (1 after the first put).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: u64,
    pub lease: Option<LeaseId>,
}

/// The keys under a prefix, read at one revision, so a watch from `revision.next()` continues
/// exactly where the read ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub revision: Revision,
    pub kvs: Vec<KeyValue>,
}

/// One change in the store's history. A revision holds the events of one write: one event, or
/// every event of a [`txn`](crate::Backend::txn) in the order of its operations; etcd also
/// deletes all the keys of an expired or revoked lease in one revision. A watcher therefore
/// resumes from `revision.next()` only once it has every event of a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The key's new state; its `mod_revision` is the event's revision.
    Put(KeyValue),
    /// The key was deleted by `delete`, or by its lease's expiry or revocation.
    Delete { key: String, revision: Revision },
}

impl Event {
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put(kv) => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Event::Put(kv) => &kv.key,
            Event::Delete { key, .. } => key,
        }
    }
}

/// What a watch follows: one key, or every key under a prefix (the empty prefix is every key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Key(String),
    Prefix(String),
}

impl Selector {
    pub fn matches(&self, key: &str) -> bool {
        match self {
            Selector::Key(wanted) => wanted == key,
            Selector::Prefix(prefix) => key.starts_with(prefix.as_str()),
        }
    }
}

/// The result of a compare-and-swap put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasOutcome {
    /// The key's mod revision was the expected one; the put was written at this revision.
    Written(Revision),
    /// The key's mod revision differed; nothing was written. `current` is the key as it is
    /// (`None` when it does not exist).
    Conflict { current: Option<KeyValue> },
}

/// A condition of a transaction: the key's mod revision is `mod_revision` (`Revision(0)`: the
/// key does not exist). etcd's `Compare` on `MOD`, with `=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub mod_revision: Revision,
}

impl Compare {
    /// The key's mod revision is `mod_revision`; `Revision(0)` means it does not exist.
    pub fn mod_revision(key: impl Into<String>, mod_revision: Revision) -> Compare {
        Compare {
            key: key.into(),
            mod_revision,
        }
    }
}

/// A write of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Writes `value` under `key`, attached to `lease` if given (a put without a lease detaches
    /// the key from any lease, as `put` does).
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    /// Deletes `key`; nothing happens (and no event is written) when it does not exist.
    Delete { key: String },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// The result of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Every comparison held and every operation was applied, all at `revision` (the current
    /// revision, unchanged, when no operation changed anything).
    Committed { revision: Revision },
    /// A comparison failed; nothing was written. `current` holds each compared key as it was
    /// when the comparisons were made, in the order of the comparisons (`None`: absent).
    Failed { current: Vec<Option<KeyValue>> },
}

/// Refuses a transaction that no backend may apply: an empty key, or a key that two
/// operations change (etcd refuses that too, "duplicate key given in txn request").
pub(crate) fn check_txn(compare: &[Compare], then: &[Op]) -> Result<(), crate::StoreError> {
    let empty = crate::StoreError::InvalidKey("a key must not be empty");
    if compare.iter().any(|compare| compare.key.is_empty()) {
        return Err(empty);
    }
    let mut changed = std::collections::HashSet::with_capacity(then.len());
    for op in then {
        if op.key().is_empty() {
            return Err(empty);
        }
        if !changed.insert(op.key()) {
            return Err(crate::StoreError::InvalidTxn(
                "a transaction may change each key only once",
            ));
        }
    }
    Ok(())
}
