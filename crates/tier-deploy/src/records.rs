//! The environment's records read and its lock broken: `history` and `unlock`, from whichever
//! records the environment has (its state file, or its cluster).

use tier_kube::DeployConfig;
use tier_state::{Holder, Revision};

use crate::{DeployError, Workspace};

/// Every revision of the environment, oldest first.
pub fn history(workspace: &mut Workspace, env: &str) -> Result<Vec<Revision>, DeployError> {
    let records = crate::state::records(workspace, env, DeployConfig::default())?;
    records
        .history()
        .map_err(|error| DeployError::state(env, error))
}

/// What `unlock` found.
#[derive(Clone, Debug)]
pub enum Unlocked {
    NotLocked,
    /// The lock was broken; `alive` says whether its holder still counted as running (a
    /// cluster's lease within its duration).
    Broke {
        holder: Holder,
        alive: bool,
    },
}

/// Breaks the environment's lock once `confirm(holder, alive)` agrees. A local holder that
/// still runs is never broken; a cluster's lease is, with a confirmation, since its holder
/// checks the lease before each write and stops.
pub fn unlock(
    workspace: &mut Workspace,
    env: &str,
    confirm: &dyn Fn(&Holder, bool) -> bool,
) -> Result<Unlocked, DeployError> {
    let records = crate::state::records(workspace, env, DeployConfig::default())?;
    let found = match records.lock_holder() {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(Unlocked::NotLocked),
        Err(error) => return Err(DeployError::state(env, error)),
    };
    if found.alive && !found.breakable_when_alive {
        return Err(DeployError::LockInUse {
            env: env.to_owned(),
            holder: Box::new(found.holder),
        });
    }
    if !confirm(&found.holder, found.alive) {
        return Err(DeployError::LockKept {
            env: env.to_owned(),
        });
    }
    records
        .break_lock()
        .map_err(|error| DeployError::state(env, error))?;
    Ok(Unlocked::Broke {
        holder: found.holder,
        alive: found.alive,
    })
}
