//! Which records an environment has: a local environment's state file, or a kubernetes
//! environment's namespace in its cluster (reached after the context guard and a first answer
//! from the API server, before anything is locked or recorded). And the one-time move of a
//! kubernetes environment's old state file into its cluster.

use std::path::Path;

use tier_kube::{ClusterRecords, DeployConfig};
use tier_model::Environment;
use tier_model::environment::Runtime as RuntimeKind;
use tier_state::paths::EnvDir;
use tier_state::{HeldLock, Records, State};

use crate::event::{DeployEvent, EventSink};
use crate::{DeployError, Workspace};

/// The records of a resolved environment.
pub(crate) fn open(
    root: &Path,
    environment: &Environment,
    config: DeployConfig,
) -> Result<Box<dyn Records>, DeployError> {
    let env = environment.name.as_str();
    match environment.runtime {
        RuntimeKind::Local => Ok(Box::new(open_file(root, env)?)),
        RuntimeKind::Kubernetes => ClusterRecords::connect(environment, config.lease)
            .map(|records| Box::new(records) as Box<dyn Records>)
            .map_err(|error| crate::kube::refused(env, &error)),
    }
}

/// The records of a resolved environment, for a reader that resolved it once and reads its
/// records again and again (the dashboard).
pub fn records_of(root: &Path, environment: &Environment) -> Result<Box<dyn Records>, DeployError> {
    open(root, environment, DeployConfig::default())
}

/// The records of an environment by name, for commands that read them without deploying
/// (`history`, `unlock`, `rollback`, a promotion's source, `deps why`). The environment is
/// resolved to learn its runtime and cluster; when it does not resolve, a state file that
/// exists is still read, so a broken project file does not hide a local history.
pub fn records(
    workspace: &mut Workspace,
    env: &str,
    config: DeployConfig,
) -> Result<Box<dyn Records>, DeployError> {
    workspace.known(env)?;
    match workspace.resolve(env, &[]) {
        Ok(resolved) => open(workspace.root(), &resolved.environment, config),
        Err(error) => {
            if state_file(workspace.root(), env).exists() {
                Ok(Box::new(open_file(workspace.root(), env)?))
            } else {
                Err(error)
            }
        }
    }
}

fn open_file(root: &Path, env: &str) -> Result<State, DeployError> {
    State::open(EnvDir::new(root, env).root()).map_err(|error| DeployError::state(env, error))
}

fn state_file(root: &Path, env: &str) -> std::path::PathBuf {
    EnvDir::new(root, env).state()
}

/// Moves the revisions of a kubernetes environment's state file (written before its records
/// lived in the cluster) into the cluster, under the lock just taken, when the cluster holds
/// none yet; the file is renamed `state.redb.moved` so nothing reads it again.
pub(crate) fn move_local_state(
    root: &Path,
    environment: &Environment,
    records: &dyn Records,
    lock: &dyn HeldLock,
    events: EventSink,
) -> Result<(), DeployError> {
    let env = environment.name.as_str();
    let file = state_file(root, env);
    if environment.runtime != RuntimeKind::Kubernetes || !file.exists() {
        return Ok(());
    }
    let local = open_file(root, env)?;
    let revisions = local
        .history()
        .map_err(|error| DeployError::state(env, error))?;
    let moved = file.with_extension("redb.moved");
    if !revisions.is_empty() {
        let existing = records
            .history()
            .map_err(|error| DeployError::state(env, error))?;
        if !existing.is_empty() {
            // The cluster has its own records (another machine moved its file first): this
            // file is an old copy; it is set aside without being merged.
            std::fs::rename(&file, &moved).map_err(|error| {
                DeployError::Artifacts(format!("{env}: cannot rename {}: {error}", file.display()))
            })?;
            events(DeployEvent::Warning {
                message: format!(
                    "{env}: the cluster holds revisions already; {} was set aside as {} without being moved",
                    file.display(),
                    moved.display()
                ),
            });
            return Ok(());
        }
        lock.import(&revisions)
            .map_err(|error| DeployError::state(env, error))?;
    }
    std::fs::rename(&file, &moved).map_err(|error| {
        DeployError::Artifacts(format!("{env}: cannot rename {}: {error}", file.display()))
    })?;
    events(DeployEvent::StateMoved {
        env: env.to_owned(),
        revisions: revisions.len(),
        from: file.display().to_string(),
        to: records.place(),
    });
    Ok(())
}
