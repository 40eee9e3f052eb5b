//! The one error type of the state store. Each variant is a situation the CLI handles
//! differently (a lock to report or break, a file to move away, a misuse to fix), so callers
//! match on variants instead of parsing messages.

use std::path::PathBuf;

use crate::lock::Holder;
use crate::revision::Outcome;

/// Why a state operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state file cannot be read as a state database. Only this environment's file is
    /// affected, so the message tells the user to move it away rather than to repair anything.
    #[error(
        "state file {} is corrupt ({detail}); move it away (for example to {}.corrupt) to start \
         this environment's state afresh: its history is lost, other environments are untouched",
        path.display(),
        path.display()
    )]
    Corrupt { path: PathBuf, detail: String },

    /// The state file was written by a newer tier that uses a format this one does not know,
    /// so reading on could misinterpret it.
    #[error(
        "state file {} has format {found}, this tier understands format {supported}; use a newer tier",
        path.display()
    )]
    UnsupportedFormat {
        path: PathBuf,
        found: u64,
        supported: u64,
    },

    /// Another process holds the environment's lock. `alive` says whether that process still
    /// runs on this host, so the CLI can offer to break a dead holder's lock.
    #[error(
        "the environment is locked by `{}` (pid {} on {}){}",
        holder.command,
        holder.pid,
        holder.place(),
        if *alive { "" } else { ", which is no longer running; the lock can be broken" }
    )]
    Locked { holder: Holder, alive: bool },

    /// This process's lock was broken (and perhaps taken by another process) while it was
    /// held; writing on would interleave two applies. `place` is the state file, or the
    /// cluster's lease.
    #[error(
        "the lock on {place} was broken while this process held it{}",
        match holder {
            Some(holder) => format!("; it is now held by `{}` (pid {} on {})", holder.command, holder.pid, holder.place()),
            None => String::new(),
        }
    )]
    LockLost {
        place: String,
        holder: Option<Holder>,
    },

    /// The records kept outside this machine (a cluster's) could not be read or written;
    /// the message names the request and the server.
    #[error("{message} ({place})")]
    Remote { place: String, message: String },

    /// A revision number that was never begun.
    #[error("there is no revision {number}")]
    NoSuchRevision { number: u64 },

    /// A revision can be finished once; its outcome is history after that.
    #[error("revision {number} is already finished ({})", outcome.describe())]
    AlreadyFinished { number: u64, outcome: Outcome },

    /// A revision older than the deployed one cannot succeed: that would move what is
    /// deployed backwards behind a newer success. Finish it as failed instead.
    #[error("revision {number} cannot succeed: the newer revision {deployed} is deployed")]
    Superseded { number: u64, deployed: u64 },

    /// `finish` was given `Outcome::InProgress`, which does not finish anything.
    #[error("revision {number} cannot be finished with the outcome in_progress")]
    NotAFinish { number: u64 },

    /// Reading or writing a file failed for a reason outside the store (permissions, a full
    /// disk, a missing program).
    #[error("cannot access {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The database failed for a reason that is neither corruption nor plain IO.
    #[error("state database {} failed: {source}", path.display())]
    Database {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
}
