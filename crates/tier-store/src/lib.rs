//! tier's runtime config store: keys with a global revision, per-key create and mod revisions
//! and versions, compare-and-swap, resumable watches, leases and compacted history, in the
//! shape of etcd's KV API.
//!
//! [`Backend`] is the one interface; [`EmbeddedStore`] implements it on a redb file. An etcd
//! backend and the HTTP API are built on the same trait.

mod backend;
mod codec;
mod embedded;
mod error;
mod etcd;
pub mod http;
mod types;
mod watch_feed;

pub use backend::{Backend, WatchStream};
pub use embedded::{EmbeddedConfig, EmbeddedStore};
pub use error::StoreError;
pub use etcd::EtcdConfig;
#[cfg(feature = "etcd")]
pub use etcd::EtcdStore;
pub use types::{
    CasOutcome, Compare, Event, KeyValue, Lease, LeaseId, Op, Range, Revision, Selector, TxnOutcome,
};
