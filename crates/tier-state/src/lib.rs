//! The per-environment state store of plan and apply: the environment's lock, its numbered
//! revisions and which one is deployed (`.tier/<env>/state.redb`), and the project's
//! content-addressed artifact store (`.tier/artifacts/`). [`Records`] is the one API over
//! this file and the cluster that keeps a kubernetes environment's records (tier-kube).
//!
//! Each environment has its own database file, so deleting or corrupting one environment's
//! state never touches another's. Only this crate writes these files.

mod artifacts;
mod backend;
pub mod drift;
mod error;
mod fingerprint;
mod lock;
pub mod paths;
mod record;
mod revision;
mod state;

pub use artifacts::{ArtifactStore, Stored};
pub use backend::{HeldLock, LockHolder, NewRevision, Records, Summary};
pub use drift::DriftRecord;
pub use error::StateError;
pub use fingerprint::FingerprintKey;
pub use lock::{Holder, Lock, who};
pub use record::codec;
pub use revision::{Origin, Outcome, Revision, Snapshot};
pub use state::{Clock, State, system_clock};
