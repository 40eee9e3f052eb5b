//! The environment's lock: a record in the state database naming the process that changes the
//! environment. It is a record rather than a file lock so that it outlives its holder: a killed
//! `tier apply` leaves it behind, the next command sees who held it and that the holder is
//! gone, and a person decides to break it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tier_model::environment::Artifact;

use crate::error::StateError;
use crate::revision::{Origin, Outcome};
use crate::state::State;

/// The process that holds (or held) an environment's lock, as shown to whoever finds it locked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// The user who runs it (`$USER`, else its account name); empty in records written before
    /// it was kept.
    #[serde(default)]
    pub user: String,
    /// The command line, e.g. `tier apply prod`, so the message says what is running.
    pub command: String,
    pub since_unix_ms: u64,
}

impl Holder {
    /// A holder describing the calling process on this host. The time is passed in so that
    /// wall-clock reads stay in `State`'s clock.
    pub fn this_process(command: impl Into<String>, since_unix_ms: u64) -> Holder {
        Holder {
            pid: std::process::id(),
            host: this_host(),
            user: this_user(),
            command: command.into(),
            since_unix_ms,
        }
    }

    /// `user@host`, or the host alone when the user is not known: who to ask about the lock.
    pub fn place(&self) -> String {
        if self.user.is_empty() {
            self.host.clone()
        } else {
            format!("{}@{}", self.user, self.host)
        }
    }

    /// Whether the holder still runs: it is on this host and its pid exists. A holder on
    /// another host cannot be checked and counts as not alive, so a person decides.
    pub fn is_alive(&self) -> bool {
        self.host == this_host() && pid_exists(self.pid)
    }
}

/// The held lock of one environment. Revisions can only be written through it, so two
/// processes never write revisions of one environment at once. Dropping it releases the lock
/// best-effort; `release` reports a failure.
#[derive(Debug)]
pub struct Lock {
    state: State,
    holder: Holder,
    held: bool,
}

impl Lock {
    pub(crate) fn new(state: State, holder: Holder) -> Lock {
        Lock {
            state,
            holder,
            held: true,
        }
    }

    /// The record this lock wrote.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The state this lock belongs to, for reads while holding it.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Records a new revision, numbered one past the last, as in progress; returns its number.
    /// It is written before anything changes so that an apply killed half way is visible in
    /// history.
    pub fn begin(
        &self,
        spec: &serde_json::Value,
        artifacts: &BTreeMap<String, Artifact>,
        who: &str,
        origin: Origin,
    ) -> Result<u64, StateError> {
        self.begin_with_bom(spec, artifacts, who, origin, &serde_json::Value::Null)
    }

    /// [`Lock::begin`], also recording the bill of materials of what the revision deploys.
    pub fn begin_with_bom(
        &self,
        spec: &serde_json::Value,
        artifacts: &BTreeMap<String, Artifact>,
        who: &str,
        origin: Origin,
        bom: &serde_json::Value,
    ) -> Result<u64, StateError> {
        self.state
            .begin_revision(&self.holder, spec, artifacts, who, origin, bom)
    }

    /// Ends an in-progress revision with `outcome` and, when it succeeded, makes it the
    /// deployed revision. Any in-progress revision can be finished, so a new apply may close
    /// one that a killed process left behind.
    pub fn finish(&self, number: u64, outcome: Outcome) -> Result<(), StateError> {
        self.state.finish_revision(&self.holder, number, outcome)
    }

    /// Deletes the lock record. Fails with `LockLost` when the record is no longer this
    /// lock's, because it was broken meanwhile.
    pub fn release(mut self) -> Result<(), StateError> {
        self.held = false;
        self.state.release_lock(&self.holder)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if self.held {
            // Best-effort: an error here has no one to go to, and the record left behind is
            // reported as a dead holder's lock next time.
            let _ = self.state.release_lock(&self.holder);
        }
    }
}

/// This machine's host name, or an empty string when it cannot be read (then no holder counts
/// as alive, and a person decides).
/// `user@host` of this process, or the one that is known: who a revision, a lock or a config
/// change is recorded under. Printable ASCII only, at most 128 characters (it travels in an
/// HTTP header); `unknown` when neither is known.
pub fn who() -> String {
    let (user, host) = (this_user(), this_host());
    let who = match (user.is_empty(), host.is_empty()) {
        (false, false) => format!("{user}@{host}"),
        (true, _) => host,
        (false, true) => user,
    };
    let who: String = who
        .chars()
        .filter(char::is_ascii_graphic)
        .take(128)
        .collect();
    if who.is_empty() {
        "unknown".to_owned()
    } else {
        who
    }
}

fn this_host() -> String {
    nix::unistd::gethostname()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The user running this process, from `$USER` (or `$LOGNAME`), else the account name of its
/// uid (a service, a container or `env -i` often runs without either variable); empty when
/// none is known.
fn this_user() -> String {
    let from_env = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok();
    user_name(from_env, account_name)
}

/// The name from the environment when it is set and not empty, else the account's.
fn user_name(from_env: Option<String>, account: impl FnOnce() -> Option<String>) -> String {
    from_env
        .filter(|name| !name.is_empty())
        .or_else(account)
        .unwrap_or_default()
}

/// The account name of this process's real uid, from the system's user database.
fn account_name() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|user| user.name)
}

/// Whether a process with this pid exists: `kill(pid, 0)` sends nothing and only checks. A
/// process owned by another user answers EPERM, which still means it exists.
fn pid_exists(pid: u32) -> bool {
    // Pid 0 and negative pids address process groups, never one process.
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive() {
        assert!(Holder::this_process("test", 0).is_alive());
    }

    #[test]
    fn a_holder_on_another_host_is_not_alive() {
        let mut holder = Holder::this_process("test", 0);
        holder.host.push_str(".elsewhere");
        assert!(!holder.is_alive());
    }

    #[test]
    fn user_name_falls_back_to_the_account_when_the_environment_has_none() {
        let account = || Some("deploy".to_owned());
        assert_eq!(user_name(Some("ana".to_owned()), account), "ana");
        assert_eq!(user_name(None, account), "deploy");
        assert_eq!(user_name(Some(String::new()), account), "deploy");
        assert_eq!(user_name(None, || None), "");
    }

    #[test]
    fn process_group_pids_are_not_processes() {
        assert!(!pid_exists(0));
        assert!(!pid_exists(u32::MAX));
    }
}
