//! Why an engine call changed nothing, or did not finish as asked. Each error says what
//! happened in one line (lowercase, naming the environment) and, where there is one, the next
//! step in [`DeployError::hint`]. The binary alone turns them into exit codes.

use tier_model::Problem;
use tier_state::{Holder, Outcome, StateError};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The project names no such environment (the message lists the known ones).
    #[error("{message}")]
    UnknownEnvironment { message: String },
    /// The project or the environment does not resolve; every problem is here, each located.
    #[error("{} problem{} found", problems.len(), if problems.len() == 1 { "" } else { "s" })]
    Invalid { problems: Vec<Problem> },
    /// A `--set` argument that does not parse.
    #[error("{0}")]
    BadSet(String),
    /// An abstract environment, which is only a parent of others.
    #[error(transparent)]
    Abstract(#[from] tier_model::AbstractEnvironment),
    /// The secrets of a freshly resolved environment that cannot be read, each located at its
    /// reference in the project files.
    #[error("{} secret{} cannot be read", problems.len(), if problems.len() == 1 { "" } else { "s" })]
    Secrets { problems: Vec<Problem> },
    /// The secrets that an environment from state (a revision, a saved plan) refers to and
    /// that cannot be read now; no location, the files may have changed since.
    #[error("{env}: {}", problems.first().map(|problem| problem.0.as_str()).unwrap_or("a secret cannot be read"))]
    StoredSecrets {
        env: String,
        /// Each problem's message and its help.
        problems: Vec<(String, Option<String>)>,
    },
    /// What a service runs cannot be fixed or found again (a missing program, an artifact no
    /// longer stored, an unreadable revision); the message names the environment or service.
    #[error("{0}")]
    Artifacts(String),
    #[error("{env}: {source}")]
    State {
        env: String,
        source: Box<StateError>,
    },
    #[error("{}", locked_message(env, holder, *alive))]
    Locked {
        env: String,
        holder: Box<Holder>,
        alive: bool,
    },
    /// A protected environment that was not confirmed; `named` is the environment that
    /// `--confirm` named instead, if any.
    #[error("{env} is protected; {}nothing was changed", named_instead(env, named.as_deref()))]
    Protected {
        env: String,
        action: String,
        named: Option<String>,
    },
    /// A saved plan that cannot be read or no longer matches.
    #[error("{0}")]
    SavedPlan(String),
    /// A saved plan whose secrets or base moved since it was made.
    #[error("{message}")]
    StalePlan { env: String, message: String },
    #[error("{env}: there is no revision {revision}")]
    NoRevision { env: String, revision: u64 },
    #[error(
        "{env}: revision {revision} {}; only a revision that was deployed can be rolled back to",
        outcome.describe()
    )]
    NotDeployable {
        env: String,
        revision: u64,
        outcome: Outcome,
    },
    #[error("{to} is not promoted from {from}{}", match promote_from {
        Some(source) => format!(": its promote_from is {source}"),
        None => ": it has no promote_from".to_owned(),
    })]
    NotPromotedFrom {
        from: String,
        to: String,
        promote_from: Option<String>,
    },
    #[error("{from} has nothing deployed to promote")]
    NothingToPromote { from: String },
    #[error(
        "service {service} does not run in {from} (revision {revision}), so there is nothing to promote for it"
    )]
    NotInSource {
        service: String,
        from: String,
        revision: u64,
    },
    /// The environment does not render to Kubernetes objects; each problem names its service.
    #[error("{}", problems.join("; "))]
    Unrenderable { problems: Vec<String> },
    /// The runtime refused before anything was recorded (rendering, the kube context guard,
    /// connecting, starting a tokio runtime).
    #[error("{message}")]
    Refused {
        message: String,
        hint: Option<String>,
    },
    #[error("{env}: revision {revision} ran, but recording it failed: {source}")]
    NotRecorded {
        env: String,
        revision: u64,
        source: Box<StateError>,
    },
    /// The revision was recorded and carried out, and did not end deployed: it was rolled back,
    /// halted or failed, as its outcome says.
    #[error("{env}: revision {revision} {}", outcome.describe())]
    NotDeployed {
        env: String,
        revision: u64,
        outcome: Outcome,
    },
    #[error(
        "{env} is locked by `{}` (pid {} on {}), which is still running; it was not broken",
        holder.command, holder.pid, holder.place()
    )]
    LockInUse { env: String, holder: Box<Holder> },
    #[error("{env}: the lock was not broken")]
    LockKept { env: String },
}

impl DeployError {
    /// The next step, in words, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            DeployError::UnknownEnvironment { .. } => {
                Some("`tier envs` lists the environments".to_owned())
            }
            DeployError::Protected { env, action, .. } => {
                Some(format!("add --confirm {env} to {action} it"))
            }
            DeployError::StalePlan { env, .. } => {
                Some(format!("make a new plan with `tier plan {env} --out FILE`"))
            }
            DeployError::NoRevision { env, .. } => Some(format!("`tier history {env}` lists them")),
            DeployError::NothingToPromote { from } => Some(format!("`tier apply {from}` first")),
            DeployError::Refused { hint, .. } => hint.clone(),
            DeployError::NotDeployed { env, .. } => Some(format!(
                "`tier history {env}` shows it; `tier status {env}` shows what runs"
            )),
            DeployError::LockKept { env } => Some(format!("`tier unlock {env} --yes` breaks it")),
            DeployError::StoredSecrets { problems, .. } => {
                problems.first().and_then(|problem| problem.1.clone())
            }
            _ => None,
        }
    }

    /// Whether the command was asked for something that does not exist (an environment, a
    /// revision, a promotion path): a usage error rather than a failure.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            DeployError::UnknownEnvironment { .. }
                | DeployError::BadSet(_)
                | DeployError::NoRevision { .. }
                | DeployError::NotPromotedFrom { .. }
        )
    }

    pub(crate) fn state(env: &str, source: StateError) -> DeployError {
        DeployError::State {
            env: env.to_owned(),
            source: Box::new(source),
        }
    }
}

fn locked_message(env: &str, holder: &Holder, alive: bool) -> String {
    if alive {
        format!(
            "{env} is locked: `{}` (pid {} on {}) is changing it; try again when it is done",
            holder.command,
            holder.pid,
            holder.place()
        )
    } else {
        format!(
            "{env} is locked by `{}` (pid {} on {}), which is no longer running; `tier unlock {env}` breaks the lock",
            holder.command,
            holder.pid,
            holder.place()
        )
    }
}

/// The part of [`DeployError::Protected`]'s message that says `--confirm` named another
/// environment, so a typo or a stale script does not read as a missing flag.
fn named_instead(env: &str, named: Option<&str>) -> String {
    match named {
        Some(named) if named != env => format!("--confirm names {named}, not {env}; "),
        _ => String::new(),
    }
}
