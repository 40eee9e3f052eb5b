//! The matrix: every service down the side, every environment across the top, and in each cell
//! what runs there. `Collector::collect` reads it from the environments' records (what is
//! deployed, by whom, when) and from their runtimes (what runs now): a local agent over its
//! control socket, a cluster through its API server. It is plain data, served as JSON and
//! drawn as HTML by `page.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tier_local::control::{EnvStatus, ServiceState};
use tier_model::environment::Runtime;
use tier_model::{Environment, Project};
use tier_state::paths::EnvDir;
use tier_state::{Revision, State};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Matrix {
    pub project: String,
    pub environments: Vec<Column>,
    pub services: Vec<String>,
    /// By environment, then service.
    pub cells: BTreeMap<String, BTreeMap<String, Cell>>,
}

/// One environment: how it runs and what is deployed in it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Column {
    pub name: String,
    pub runtime: Runtime,
    /// The environment it extends, under which it is grouped.
    pub extends: Option<String>,
    pub protected: bool,
    /// Whether its runtime answered: a local agent runs, or the cluster was reached.
    pub running: bool,
    pub deployed: Option<Deployed>,
    /// Why its runtime or records could not be read, when they could not.
    pub problem: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Deployed {
    pub revision: u64,
    pub who: String,
    pub finished_unix_ms: Option<u64>,
}

/// One service in one environment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cell {
    pub health: Health,
    /// The version the project gives it, else its artifact's digest, shortened.
    pub version: Option<String>,
    pub ready: u32,
    pub desired: u32,
    pub restarts: u32,
    /// Why it is not running, in the runtime's words.
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    Running,
    Starting,
    Degraded,
    Failing,
    /// Deployed, and its environment is not running.
    Stopped,
    NotDeployed,
}

impl Health {
    /// A symbol, so a cell reads without its colour.
    pub fn symbol(self) -> &'static str {
        match self {
            Health::Running => "✓",
            Health::Starting => "…",
            Health::Degraded => "!",
            Health::Failing => "✗",
            Health::Stopped => "○",
            Health::NotDeployed => "–",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Running => "running",
            Health::Starting => "starting",
            Health::Degraded => "degraded",
            Health::Failing => "failing",
            Health::Stopped => "stopped",
            Health::NotDeployed => "not deployed",
        }
    }
}

/// Reads matrices, keeping what did not change since the last one: a deployed revision is
/// read again only when its environment's state moved, and a kubernetes environment is
/// resolved once.
pub struct Collector {
    root: PathBuf,
    project: Project,
    /// By environment: the state's serial when it was read, and what was deployed then.
    deployed: BTreeMap<String, (u64, Option<Arc<Recorded>>)>,
    resolved: BTreeMap<String, Option<Environment>>,
}

/// What the matrix needs of a deployed revision, taken from it once per change of the state.
/// A revision carries the whole resolved environment as JSON (megabytes for a thousand
/// services); keeping only this much keeps `tier ui` small, and a refresh copies nothing.
#[derive(Debug, PartialEq)]
struct Recorded {
    deployed: Deployed,
    /// By service.
    services: BTreeMap<String, Desired>,
}

#[derive(Debug, PartialEq)]
struct Desired {
    replicas: u32,
    /// The version the project gives it, else its artifact's digest, shortened.
    version: Option<String>,
}

impl Recorded {
    fn of(revision: &Revision) -> Recorded {
        let specs = revision
            .spec
            .get("services")
            .and_then(serde_json::Value::as_object);
        let services = specs
            .into_iter()
            .flatten()
            .map(|(service, spec)| {
                let replicas = spec
                    .get("replicas")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|replicas| u32::try_from(replicas).ok())
                    .unwrap_or(0);
                let version = spec
                    .get("version")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| {
                        let artifact = revision.artifacts.get(service)?;
                        Some(short_digest(&artifact.digest))
                    });
                (service.clone(), Desired { replicas, version })
            })
            .collect();
        Recorded {
            deployed: Deployed {
                revision: revision.number,
                who: revision.who.clone(),
                finished_unix_ms: revision.finished_unix_ms,
            },
            services,
        }
    }
}

impl Collector {
    pub fn new(root: &Path, project: Project) -> Collector {
        Collector {
            root: root.to_owned(),
            project,
            deployed: BTreeMap::new(),
            resolved: BTreeMap::new(),
        }
    }

    pub fn project(&self) -> &Project {
        &self.project
    }

    pub fn collect(&mut self) -> Matrix {
        let services = self.service_names();
        let names: Vec<(String, Option<String>)> = self
            .project
            .environments
            .iter()
            .filter(|decl| !decl.is_abstract)
            .map(|decl| (decl.name.clone(), decl.extends.clone()))
            .collect();
        let mut environments = Vec::new();
        let mut cells = BTreeMap::new();
        for (name, extends) in names {
            let (column, row) = self.column(&name, extends, &services);
            environments.push(column);
            cells.insert(name, row);
        }
        Matrix {
            project: self.project.name().to_owned(),
            environments,
            services,
            cells,
        }
    }

    /// Every service the project file names, in name order.
    fn service_names(&self) -> Vec<String> {
        self.project
            .file
            .get("services")
            .and_then(tier_model::tree::Node::as_table)
            .map(|services| services.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn column(
        &mut self,
        env: &str,
        extends: Option<String>,
        services: &[String],
    ) -> (Column, BTreeMap<String, Cell>) {
        let runtime = self.project.runtime(env).unwrap_or_default();
        let mut column = Column {
            name: env.to_owned(),
            runtime,
            extends,
            protected: self.project.protected(env),
            running: false,
            deployed: None,
            problem: None,
        };
        let (revision, live) = match runtime {
            Runtime::Local => (self.local_revision(env, &mut column), self.local_live(env)),
            Runtime::Kubernetes => self.kube(env, &mut column),
        };
        column.running = live.is_some();
        column.deployed = revision.as_ref().map(|recorded| recorded.deployed.clone());
        let row = services
            .iter()
            .map(|service| {
                let cell = cell(service, revision.as_deref(), live.as_ref());
                (service.clone(), cell)
            })
            .collect();
        (column, row)
    }

    /// The deployed revision of a local environment, read again only when its serial moved.
    /// An environment that never ran has no state file, and none is made.
    fn local_revision(&mut self, env: &str, column: &mut Column) -> Option<Arc<Recorded>> {
        let dir = EnvDir::new(&self.root, env);
        if !dir.state().exists() {
            return None;
        }
        let read = State::open(dir.root()).and_then(|state| {
            let serial = state.serial()?;
            match self.deployed.get(env) {
                Some((seen, revision)) if *seen == serial => Ok((serial, revision.clone())),
                _ => {
                    let revision = state.deployed()?;
                    Ok((serial, revision.as_ref().map(Recorded::of).map(Arc::new)))
                }
            }
        });
        match read {
            Ok((serial, revision)) => {
                self.deployed
                    .insert(env.to_owned(), (serial, revision.clone()));
                revision
            }
            Err(error) => {
                column.problem = Some(error.to_string());
                self.deployed
                    .get(env)
                    .and_then(|(_, revision)| revision.clone())
            }
        }
    }

    fn local_live(&self, env: &str) -> Option<Live> {
        tier_deploy::local::status(&self.root, env)
            .ok()
            .map(Live::Local)
    }

    /// A kubernetes environment's deployed revision and live Deployments, from its cluster.
    fn kube(&mut self, env: &str, column: &mut Column) -> (Option<Arc<Recorded>>, Option<Live>) {
        let project = &mut self.project;
        let environment = self.resolved.entry(env.to_owned()).or_insert_with(|| {
            project
                .resolve(env, &[])
                .ok()
                .map(|resolved| resolved.environment)
        });
        let Some(environment) = environment.as_ref() else {
            column.problem = Some(format!("{env} does not resolve; `tier validate` says why"));
            return (None, None);
        };
        let revision = tier_deploy::records_of(&self.root, environment)
            .map_err(|error| error.to_string())
            .and_then(|records| {
                records
                    .deployed()
                    .map_err(|error| format!("{env}: {error}"))
            });
        let revision = match revision {
            Ok(revision) => revision.as_ref().map(Recorded::of).map(Arc::new),
            Err(error) => {
                column.problem = Some(error.to_string());
                return (None, None);
            }
        };
        match tier_deploy::kube::status(environment) {
            Ok(status) => (revision, Some(Live::Kube(status))),
            Err(error) => {
                column.problem = Some(error.to_string());
                (revision, None)
            }
        }
    }
}

/// What a runtime says runs now.
enum Live {
    Local(EnvStatus),
    Kube(tier_deploy::kube::KubeStatus),
}

fn cell(service: &str, revision: Option<&Recorded>, live: Option<&Live>) -> Cell {
    let spec = revision.and_then(|revision| revision.services.get(service));
    let mut cell = Cell {
        health: if spec.is_some() {
            Health::Stopped
        } else {
            Health::NotDeployed
        },
        version: spec.and_then(|spec| spec.version.clone()),
        ready: 0,
        desired: spec.map_or(0, |spec| spec.replicas),
        restarts: 0,
        reason: None,
    };
    match live {
        Some(Live::Local(status)) => {
            if let Some(running) = status.services.iter().find(|found| found.name == service) {
                cell.health = match running.state {
                    ServiceState::Running => Health::Running,
                    ServiceState::Waiting | ServiceState::Starting => Health::Starting,
                    ServiceState::Degraded => Health::Degraded,
                    ServiceState::CrashLoop | ServiceState::Exited => Health::Failing,
                };
                cell.ready = running.ready;
                cell.desired = running.desired;
                cell.restarts = running.restarts;
                cell.reason.clone_from(&running.reason);
                if running.version.is_some() {
                    cell.version.clone_from(&running.version);
                }
            }
        }
        Some(Live::Kube(status)) => {
            if let Some(live) = status.services.iter().find(|found| found.name == service) {
                use tier_deploy::kube::LiveState;
                cell.health = match live.state {
                    LiveState::Running => Health::Running,
                    LiveState::NotReady => Health::Starting,
                    LiveState::Failed => Health::Failing,
                    LiveState::Missing if spec.is_some() => Health::Failing,
                    LiveState::Missing => Health::NotDeployed,
                };
                cell.ready = live.ready;
                cell.desired = live.desired;
                cell.reason.clone_from(&live.reason);
            }
        }
        None => {}
    }
    cell
}

/// `sha256:0123456789ab…` as `0123456789ab`; an image reference as it is.
fn short_digest(digest: &str) -> String {
    match digest.strip_prefix("sha256:") {
        Some(hex) => hex.chars().take(12).collect(),
        None => digest.to_owned(),
    }
}
