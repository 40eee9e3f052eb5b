use std::path::PathBuf;

use crate::types::{LeaseId, Revision};

/// Why a store operation failed. Every variant leaves the store unchanged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("revision {requested} has been compacted; the oldest retained revision is {compacted}")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("revision {requested} is in the future; the current revision is {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("lease {0} not found (it expired, was revoked or never existed)")]
    LeaseNotFound(LeaseId),
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// A transaction that no backend may apply (a key changed twice).
    #[error("invalid transaction: {0}")]
    InvalidTxn(&'static str),
    #[error("invalid lease ttl: it must be more than zero and at most {max} seconds", max = crate::backend::MAX_LEASE_TTL.as_secs())]
    InvalidTtl,
    #[error("store file {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("store file {path}: {source}")]
    Database {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("store task failed: {0}")]
    Task(String),
    /// The etcd cluster refused or failed a request, or could not be reached in time.
    #[error("etcd: {0}")]
    Etcd(String),
    /// An `etcd://` address that does not parse.
    #[error("invalid etcd address {address:?}: {reason}")]
    InvalidAddress {
        address: String,
        reason: &'static str,
    },
}
