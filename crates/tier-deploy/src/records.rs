//! The environment's records read and its lock broken: `history` and `unlock`.

use tier_local::paths::EnvDir;
use tier_state::{Holder, Revision, State};

use crate::{DeployError, Workspace};

/// Every revision of the environment, oldest first.
pub fn history(workspace: &Workspace, env: &str) -> Result<Vec<Revision>, DeployError> {
    workspace.known(env)?;
    let state = open(workspace, env)?;
    state
        .history()
        .map_err(|error| DeployError::state(env, error))
}

/// What `unlock` found.
#[derive(Clone, Debug)]
pub enum Unlocked {
    NotLocked,
    /// The lock of a process that no longer runs was broken.
    Broke(Holder),
}

/// Breaks the lock of a process that no longer runs, once `confirm(holder)` agrees. A live
/// holder's lock is never broken.
pub fn unlock(
    workspace: &Workspace,
    env: &str,
    confirm: &dyn Fn(&Holder) -> bool,
) -> Result<Unlocked, DeployError> {
    workspace.known(env)?;
    let state = open(workspace, env)?;
    let holder = match state.lock_holder() {
        Ok(Some(holder)) => holder,
        Ok(None) => return Ok(Unlocked::NotLocked),
        Err(error) => return Err(DeployError::state(env, error)),
    };
    if holder.is_alive() {
        return Err(DeployError::LockInUse {
            env: env.to_owned(),
            holder: Box::new(holder),
        });
    }
    if !confirm(&holder) {
        return Err(DeployError::LockKept {
            env: env.to_owned(),
        });
    }
    state
        .break_lock()
        .map_err(|error| DeployError::state(env, error))?;
    Ok(Unlocked::Broke(holder))
}

fn open(workspace: &Workspace, env: &str) -> Result<State, DeployError> {
    State::open(EnvDir::new(workspace.root(), env).root())
        .map_err(|error| DeployError::state(env, error))
}
