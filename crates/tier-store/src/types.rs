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

/// One change in the store's history. In the embedded store every revision holds exactly one
/// event; etcd deletes all the keys of an expired or revoked lease in one revision, so a
/// watcher resumes from `revision.next()` only once it has every event of a revision.
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
