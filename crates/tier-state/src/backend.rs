//! One API over the two places an environment's records live: its state file
//! (`.tier/<env>/state.redb`, [`State`], for local environments) and its cluster (a Lease and
//! one Secret per revision in its namespace, tier-kube's `ClusterRecords`, for kubernetes
//! environments). The engine, `history`, `rollback`, `promote`, `deps why` and `status` hold a
//! `dyn Records` and never ask which one it is.

use std::collections::BTreeMap;

use tier_model::environment::Artifact;

use crate::error::StateError;
use crate::lock::{Holder, Lock};
use crate::revision::{Origin, Outcome, Revision, Snapshot};
use crate::state::State;

/// What a new revision records, before anything changes.
#[derive(Clone, Copy, Debug)]
pub struct NewRevision<'a> {
    pub spec: &'a serde_json::Value,
    pub artifacts: &'a BTreeMap<String, Artifact>,
    pub who: &'a str,
    pub origin: &'a Origin,
    /// The bill of materials; null when not recorded.
    pub bom: &'a serde_json::Value,
}

/// Who holds an environment's lock, and whether that holder still counts: a process alive on
/// this host (a state file's lock), or a lease renewed within its duration (a cluster's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockHolder {
    pub holder: Holder,
    pub alive: bool,
    /// Whether breaking a live holder's lock is allowed after a confirmation: a lease can be
    /// (its holder notices at its next renewal and stops writing); a local lock cannot.
    pub breakable_when_alive: bool,
}

/// The records of one environment: revisions, what is deployed, and the lock.
pub trait Records: Send + Sync {
    /// Where they are, for messages: a file's path, or a namespace on a server.
    fn place(&self) -> String;

    /// The time by the records' clock, to stamp a lock holder.
    fn now_unix_ms(&self) -> u64;

    /// The serial and the deployed revision, read together.
    fn snapshot(&self) -> Result<Snapshot, StateError>;

    /// Every revision, oldest first.
    fn history(&self) -> Result<Vec<Revision>, StateError>;

    /// One revision by number.
    fn revision(&self, number: u64) -> Result<Option<Revision>, StateError>;

    /// Who holds the lock, if anyone.
    fn lock_holder(&self) -> Result<Option<LockHolder>, StateError>;

    /// Takes the lock for `holder`, or fails with `StateError::Locked`.
    fn take_lock(&self, holder: Holder) -> Result<Box<dyn HeldLock + '_>, StateError>;

    /// Deletes the lock whoever holds it; returns the holder it named.
    fn break_lock(&self) -> Result<Option<Holder>, StateError>;

    /// What is deployed now.
    fn deployed(&self) -> Result<Option<Revision>, StateError> {
        Ok(self.snapshot()?.deployed)
    }

    /// The serial alone.
    fn serial(&self) -> Result<u64, StateError> {
        Ok(self.snapshot()?.serial)
    }
}

/// A held lock: the only way to write revisions.
pub trait HeldLock {
    fn holder(&self) -> &Holder;

    /// Records a new revision, numbered one past the last, as in progress.
    fn begin(&self, revision: NewRevision<'_>) -> Result<u64, StateError>;

    /// Ends an in-progress revision; a success makes it the deployed one.
    fn finish(&self, number: u64, outcome: Outcome) -> Result<(), StateError>;

    /// Writes revisions recorded elsewhere, numbers, times and outcomes as they are, into
    /// records that hold none yet (moving a state file into a cluster).
    fn import(&self, revisions: &[Revision]) -> Result<(), StateError>;

    /// Lets the lock go, reporting a lock that was lost meanwhile.
    fn release(self: Box<Self>) -> Result<(), StateError>;
}

impl Records for State {
    fn place(&self) -> String {
        self.path().display().to_string()
    }

    fn now_unix_ms(&self) -> u64 {
        State::now_unix_ms(self)
    }

    fn snapshot(&self) -> Result<Snapshot, StateError> {
        State::snapshot(self)
    }

    fn history(&self) -> Result<Vec<Revision>, StateError> {
        State::history(self)
    }

    fn revision(&self, number: u64) -> Result<Option<Revision>, StateError> {
        State::revision(self, number)
    }

    fn lock_holder(&self) -> Result<Option<LockHolder>, StateError> {
        Ok(State::lock_holder(self)?.map(|holder| LockHolder {
            alive: holder.is_alive(),
            holder,
            breakable_when_alive: false,
        }))
    }

    fn take_lock(&self, holder: Holder) -> Result<Box<dyn HeldLock + '_>, StateError> {
        Ok(Box::new(self.lock(holder)?))
    }

    fn break_lock(&self) -> Result<Option<Holder>, StateError> {
        State::break_lock(self)
    }
}

impl HeldLock for Lock {
    fn holder(&self) -> &Holder {
        Lock::holder(self)
    }

    fn begin(&self, revision: NewRevision<'_>) -> Result<u64, StateError> {
        self.begin_with_bom(
            revision.spec,
            revision.artifacts,
            revision.who,
            revision.origin.clone(),
            revision.bom,
        )
    }

    fn finish(&self, number: u64, outcome: Outcome) -> Result<(), StateError> {
        Lock::finish(self, number, outcome)
    }

    fn import(&self, revisions: &[Revision]) -> Result<(), StateError> {
        self.state().import_revisions(self.holder(), revisions)
    }

    fn release(self: Box<Self>) -> Result<(), StateError> {
        Lock::release(*self)
    }
}

/// The last number, the deployed revision and the serial that a list of revisions implies:
/// deployed is the newest that succeeded, and the serial counts one change per begin and one
/// per finish, as every backend bumps it. A backend whose summary can fall behind its
/// revisions (a cluster's index, written after each revision) recomputes it from them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub last: u64,
    pub deployed: Option<u64>,
    pub serial: u64,
}

impl Summary {
    pub fn of(revisions: &[Revision]) -> Summary {
        let mut summary = Summary::default();
        for revision in revisions {
            summary.last = summary.last.max(revision.number);
            summary.serial += if revision.is_finished() { 2 } else { 1 };
            if revision.outcome == Outcome::Succeeded
                && summary
                    .deployed
                    .is_none_or(|deployed| deployed < revision.number)
            {
                summary.deployed = Some(revision.number);
            }
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(number: u64, outcome: Outcome) -> Revision {
        Revision {
            number,
            spec: serde_json::Value::Null,
            artifacts: BTreeMap::new(),
            who: String::new(),
            started_unix_ms: 0,
            finished_unix_ms: None,
            origin: Origin::Apply,
            outcome,
            bom: serde_json::Value::Null,
        }
    }

    #[test]
    fn the_summary_is_what_the_revisions_imply() {
        let failed = Outcome::Failed {
            reason: "no".to_owned(),
        };
        let revisions = [
            revision(1, Outcome::Succeeded),
            revision(2, Outcome::InProgress),
            revision(3, Outcome::Succeeded),
            revision(4, failed),
        ];
        assert_eq!(
            Summary::of(&revisions),
            Summary {
                last: 4,
                deployed: Some(3),
                serial: 7,
            }
        );
        assert_eq!(Summary::of(&[]), Summary::default());
    }

    /// A state file's serial and deployed pointer agree with the summary of its revisions, so
    /// a cluster that recomputes its index gets the numbers a state file would hold.
    #[test]
    fn a_state_file_agrees_with_the_summary_of_its_revisions() {
        let dir = tempfile::tempdir().expect("a directory");
        let state = State::open(dir.path()).expect("a state");
        let lock = state
            .lock(Holder::this_process("test", 0))
            .expect("the lock");
        let spec = serde_json::json!({});
        for outcome in [
            Outcome::Succeeded,
            Outcome::RolledBack {
                reason: "x".to_owned(),
            },
        ] {
            let number = lock
                .begin(&spec, &BTreeMap::new(), "me", Origin::Apply)
                .expect("begun");
            lock.finish(number, outcome).expect("finished");
        }
        lock.begin(&spec, &BTreeMap::new(), "me", Origin::Apply)
            .expect("begun");
        let summary = Summary::of(&state.history().expect("history"));
        let snapshot = state.snapshot().expect("snapshot");
        assert_eq!(summary.serial, snapshot.serial);
        assert_eq!(
            summary.deployed,
            snapshot.deployed.map(|revision| revision.number)
        );
        assert_eq!(summary.last, 3);
    }
}
