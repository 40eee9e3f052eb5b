//! The matrix: every service down the side, every environment across the top, and in each cell
//! what runs there. `Collector::collect` reads it from the environments' records (what is
//! deployed, by whom, when) and from their runtimes (what runs now): a local agent over its
//! control socket, a cluster through its API server. It is plain data, served as JSON and
//! drawn as HTML by `page.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tier_deploy::Workspace;
use tier_local::control::{EnvStatus, ServiceState};
use tier_model::Environment;
use tier_model::environment::Runtime;
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
    /// The environment it extends.
    pub extends: Option<String>,
    /// The group it is shown in: the environment at the top of its `extends` chain (a region
    /// or team environment sits under the one it extends), which may be abstract.
    pub group: String,
    pub protected: bool,
    /// Whether its runtime answered: a local agent runs, or the cluster was reached.
    pub running: bool,
    pub deployed: Option<Deployed>,
    /// Why its runtime or records could not be read, when they could not.
    pub problem: Option<String>,
    /// The revision of its runtime config store, which every config or flag change moves; read
    /// from a running local environment's agent.
    pub config_revision: Option<u64>,
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
    /// What differs from the deployed revision, in a few words each; `None` when not checked.
    pub drift: Option<Vec<String>>,
    /// The newest deployed-or-earlier revision that changed this service (its spec or its
    /// artifact).
    pub changed: Option<Deployed>,
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

/// How many reads apart drift is checked: it compares every service's files and objects.
const DRIFT_EVERY: u64 = 10;

/// How many reads apart a kubernetes environment's cluster is asked again.
const KUBE_EVERY: u64 = 3;

/// What a kubernetes environment's cluster said at its last read.
struct KubeRead {
    revision: Option<Arc<Recorded>>,
    live: Option<tier_deploy::kube::KubeStatus>,
    problem: Option<String>,
}

/// Reads matrices, keeping what did not change since the last one: a deployed revision (and
/// who last changed each service) is read again only when its environment's state moved, a
/// kubernetes environment is resolved once, and drift is checked every [`DRIFT_EVERY`] reads.
pub struct Collector {
    root: PathBuf,
    workspace: Workspace,
    deployed: BTreeMap<String, StateRead>,
    resolved: BTreeMap<String, Option<Environment>>,
    drift: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    reads: u64,
    /// Runs the store client's requests; made on first use, on the collector's own thread.
    store_runtime: Option<tokio::runtime::Runtime>,
    /// A client of each running local environment's store.
    stores: BTreeMap<String, tier_deploy::store::StoreAccess>,
    kube_seen: BTreeMap<String, KubeRead>,
    /// When the project's files last changed, as last seen: a change loads the project again.
    files_changed: Option<std::time::SystemTime>,
}

/// What a local environment's state file said at one serial.
#[derive(Clone)]
struct StateRead {
    serial: u64,
    revision: Option<Arc<Recorded>>,
    /// The revision that last changed each service.
    changes: BTreeMap<String, Deployed>,
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
    pub fn new(workspace: Workspace) -> Collector {
        Collector {
            root: workspace.root().to_owned(),
            workspace,
            deployed: BTreeMap::new(),
            resolved: BTreeMap::new(),
            drift: BTreeMap::new(),
            reads: 0,
            store_runtime: None,
            stores: BTreeMap::new(),
            kube_seen: BTreeMap::new(),
            files_changed: None,
        }
    }

    pub fn collect(&mut self) -> Matrix {
        self.reload_when_changed();
        let check_drift = self.reads.is_multiple_of(DRIFT_EVERY);
        self.reads += 1;
        let services = self.service_names();
        let names: Vec<(String, Option<String>)> = self
            .workspace
            .project()
            .environments
            .iter()
            .filter(|decl| !decl.is_abstract)
            .map(|decl| (decl.name.clone(), decl.extends.clone()))
            .collect();
        let names = grouped(&self.workspace.project().environments, names);
        let mut environments = Vec::new();
        let mut cells = BTreeMap::new();
        for (name, extends, group) in names {
            let (mut column, row) = self.column(&name, extends, &services, check_drift);
            column.group = group;
            environments.push(column);
            cells.insert(name, row);
        }
        Matrix {
            project: self.workspace.project().name().to_owned(),
            environments,
            services,
            cells,
        }
    }

    /// Every service the project file names, in name order.
    fn service_names(&self) -> Vec<String> {
        self.workspace
            .project()
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
        check_drift: bool,
    ) -> (Column, BTreeMap<String, Cell>) {
        let project = self.workspace.project();
        let runtime = project.runtime(env).unwrap_or_default();
        let mut column = Column {
            name: env.to_owned(),
            runtime,
            extends,
            group: env.to_owned(),
            protected: project.protected(env),
            running: false,
            deployed: None,
            problem: None,
            config_revision: None,
        };
        let (revision, live) = match runtime {
            Runtime::Local => (self.local_revision(env, &mut column), self.local_live(env)),
            Runtime::Kubernetes => self.kube_now_and_then(env, &mut column),
        };
        column.running = live.is_some();
        if column.running && runtime == Runtime::Local {
            column.config_revision = self.config_revision(env);
        }
        if check_drift {
            self.check_drift(env, column.running && revision.is_some());
        }
        let drift = self.drift.get(env);
        let changes = self.deployed.get(env).map(|read| &read.changes);
        column.deployed = revision.as_ref().map(|revision| revision.deployed.clone());
        let row = services
            .iter()
            .map(|service| {
                let mut cell = cell(service, revision.as_deref(), live.as_ref());
                if let Some(drift) = drift {
                    cell.drift = Some(drift.get(service).cloned().unwrap_or_default());
                }
                cell.changed = changes.and_then(|changes| changes.get(service)).cloned();
                (service.clone(), cell)
            })
            .collect();
        (column, row)
    }

    /// Loads the project again when `tier.toml` or an override file changed since the last
    /// read, so a service or environment added shows up; a project that no longer loads keeps
    /// the last one.
    fn reload_when_changed(&mut self) {
        let newest = project_files_changed(&self.root);
        if self.files_changed.is_none() {
            self.files_changed = newest;
            return;
        }
        if newest == self.files_changed {
            return;
        }
        self.files_changed = newest;
        if let Ok(workspace) = Workspace::load(&self.root) {
            self.workspace = workspace;
            self.resolved.clear();
            self.drift.clear();
            self.stores.clear();
            self.kube_seen.clear();
        }
    }

    /// The revision of a running local environment's store, from its agent.
    fn config_revision(&mut self, env: &str) -> Option<u64> {
        if self.store_runtime.is_none() {
            self.store_runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok();
        }
        // A client is made once per running environment and kept: an agent that went away or
        // came back on another port fails the request, and the next read makes a new one.
        if !self.stores.contains_key(env) {
            let environment = self.local_environment(env)?;
            let root = self.root.clone();
            let runtime = self.store_runtime.as_ref()?;
            let store = runtime.block_on(async move {
                let shutdown = tokio_util::sync::CancellationToken::new();
                let named = tier_deploy::store::Named::default();
                tier_deploy::store::locate(&root, &environment, &named, &shutdown)
                    .await
                    .ok()
            })?;
            self.stores.insert(env.to_owned(), store);
        }
        let (runtime, store) = (self.store_runtime.as_ref()?, self.stores.get(env)?);
        match runtime.block_on(store.client.list_flags()) {
            Ok(snapshot) => Some(snapshot.revision),
            Err(_) => {
                self.stores.remove(env);
                None
            }
        }
    }

    /// A local environment as `store::locate` needs it: its name and runtime are enough for a
    /// running one, whose agent serves the store.
    fn local_environment(&mut self, env: &str) -> Option<Environment> {
        let workspace = &mut self.workspace;
        self.resolved
            .entry(env.to_owned())
            .or_insert_with(|| {
                workspace
                    .resolve(env, &[])
                    .ok()
                    .map(|resolved| resolved.environment)
            })
            .clone()
    }

    /// What differs from the deployed revision in a running environment, by service; an
    /// environment with nothing running or deployed has nothing to compare.
    fn check_drift(&mut self, env: &str, comparable: bool) {
        if !comparable {
            self.drift.remove(env);
            return;
        }
        match tier_deploy::drift::check(&mut self.workspace, env) {
            Ok(report) => {
                self.drift.insert(env.to_owned(), report.by_service());
            }
            Err(_) => {
                self.drift.remove(env);
            }
        }
    }

    /// The deployed revision of a local environment, and who last changed each service, read
    /// again only when its serial moved. An environment that never ran has no state file, and
    /// none is made.
    fn local_revision(&mut self, env: &str, column: &mut Column) -> Option<Arc<Recorded>> {
        let dir = EnvDir::new(&self.root, env);
        if !dir.state().exists() {
            return None;
        }
        let read = State::open(dir.root()).and_then(|state| {
            let serial = state.serial()?;
            if let Some(seen) = self.deployed.get(env)
                && seen.serial == serial
            {
                return Ok(seen.clone());
            }
            let history = state.history()?;
            let deployed = state.deployed()?;
            let changes = last_changes(&history, deployed.as_ref());
            let revision = deployed
                .as_ref()
                .map(|revision| Arc::new(Recorded::of(revision)));
            Ok(StateRead {
                serial,
                revision,
                changes,
            })
        });
        match read {
            Ok(read) => {
                let revision = read.revision.clone();
                self.deployed.insert(env.to_owned(), read);
                revision
            }
            Err(error) => {
                column.problem = Some(error.to_string());
                self.deployed
                    .get(env)
                    .and_then(|read| read.revision.clone())
            }
        }
    }

    fn local_live(&self, env: &str) -> Option<Live> {
        tier_deploy::local::status(&self.root, env)
            .ok()
            .map(Live::Local)
    }

    /// A kubernetes environment's deployed revision and live Deployments, from its cluster.
    /// A kubernetes environment read from its cluster every [`KUBE_EVERY`] reads (each read
    /// connects and lists its Deployments), and between them as it was last read.
    fn kube_now_and_then(
        &mut self,
        env: &str,
        column: &mut Column,
    ) -> (Option<Arc<Recorded>>, Option<Live>) {
        let due = (self.reads - 1).is_multiple_of(KUBE_EVERY);
        if !due && let Some(seen) = self.kube_seen.get(env) {
            column.problem.clone_from(&seen.problem);
            return (seen.revision.clone(), seen.live.clone().map(Live::Kube));
        }
        let (revision, live) = self.kube(env, column);
        let status = match &live {
            Some(Live::Kube(status)) => Some(status.clone()),
            _ => None,
        };
        let seen = KubeRead {
            revision: revision.clone(),
            live: status,
            problem: column.problem.clone(),
        };
        self.kube_seen.insert(env.to_owned(), seen);
        (revision, live)
    }

    fn kube(&mut self, env: &str, column: &mut Column) -> (Option<Arc<Recorded>>, Option<Live>) {
        let workspace = &mut self.workspace;
        let environment = self.resolved.entry(env.to_owned()).or_insert_with(|| {
            workspace
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
            Ok(revision) => revision.map(|revision| Arc::new(Recorded::of(&revision))),
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
        drift: None,
        changed: None,
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

/// The newest modification time of `tier.toml` and `envs/*.toml`.
fn project_files_changed(root: &std::path::Path) -> Option<std::time::SystemTime> {
    let modified = |path: &std::path::Path| {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok()
    };
    let overrides = std::fs::read_dir(root.join("envs"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| modified(&entry.path()));
    overrides.chain(modified(&root.join("tier.toml"))).max()
}

/// The environments in the order the matrix shows them, each with its group: every group
/// where its first environment is declared, and within a group in declaration order.
fn grouped(
    declared: &[tier_model::project::EnvironmentDecl],
    names: Vec<(String, Option<String>)>,
) -> Vec<(String, Option<String>, String)> {
    let parent = |name: &str| {
        declared
            .iter()
            .find(|decl| decl.name == name)
            .and_then(|decl| decl.extends.clone())
    };
    let top = |name: &str| {
        let mut at = name.to_owned();
        // A chain is at most as long as there are environments (the project refuses loops).
        for _ in 0..declared.len() {
            match parent(&at) {
                Some(up) => at = up,
                None => break,
            }
        }
        at
    };
    let mut groups: Vec<String> = Vec::new();
    let with_groups: Vec<(String, Option<String>, String)> = names
        .into_iter()
        .map(|(name, extends)| {
            let group = top(&name);
            if !groups.contains(&group) {
                groups.push(group.clone());
            }
            (name, extends, group)
        })
        .collect();
    let mut ordered = Vec::with_capacity(with_groups.len());
    for group in &groups {
        ordered.extend(with_groups.iter().filter(|(_, _, of)| of == group).cloned());
    }
    ordered
}

/// For each service of the deployed revision, the newest revision up to it that changed the
/// service: its spec or its artifact differs from the revision that succeeded before.
fn last_changes(history: &[Revision], deployed: Option<&Revision>) -> BTreeMap<String, Deployed> {
    let Some(deployed) = deployed else {
        return BTreeMap::new();
    };
    let succeeded: Vec<&Revision> = history
        .iter()
        .filter(|revision| {
            revision.number <= deployed.number
                && matches!(revision.outcome, tier_state::Outcome::Succeeded)
        })
        .collect();
    let of = |revision: &Revision, service: &str| {
        (
            revision
                .spec
                .get("services")
                .and_then(|services| services.get(service))
                .cloned(),
            revision
                .artifacts
                .get(service)
                .map(|artifact| artifact.digest.clone()),
        )
    };
    let services = deployed
        .spec
        .get("services")
        .and_then(serde_json::Value::as_object)
        .map(|services| services.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    let mut changes = BTreeMap::new();
    for service in services {
        let now = of(deployed, &service);
        // Walk back while the service is as it is now; the last revision walked changed it.
        let mut changed_in = deployed;
        for revision in succeeded.iter().rev() {
            if of(revision, &service) != now {
                break;
            }
            changed_in = revision;
        }
        changes.insert(
            service,
            Deployed {
                revision: changed_in.number,
                who: changed_in.who.clone(),
                finished_unix_ms: changed_in.finished_unix_ms,
            },
        );
    }
    changes
}

/// `sha256:0123456789ab…` as `0123456789ab`; an image reference as it is.
fn short_digest(digest: &str) -> String {
    match digest.strip_prefix("sha256:") {
        Some(hex) => hex.chars().take(12).collect(),
        None => digest.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(
        number: u64,
        who: &str,
        backend: &str,
        frontend: &str,
        succeeded: bool,
    ) -> Revision {
        Revision {
            number,
            spec: serde_json::json!({ "services": {
                "backend": { "version": backend },
                "frontend": { "version": frontend },
            }}),
            artifacts: BTreeMap::new(),
            who: who.to_owned(),
            started_unix_ms: number * 1000,
            finished_unix_ms: Some(number * 1000 + 500),
            origin: tier_state::Origin::Apply,
            outcome: if succeeded {
                tier_state::Outcome::Succeeded
            } else {
                tier_state::Outcome::Failed {
                    reason: "a probe failed".to_owned(),
                }
            },
            bom: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_cell_names_the_revision_that_last_changed_its_service() {
        let history = [
            revision(1, "ana", "1.0", "1.0", true),
            revision(2, "bo", "1.0", "1.1", true),
            // A failed revision changed nothing that runs.
            revision(3, "cy", "2.0", "1.1", false),
            revision(4, "di", "1.0", "1.1", true),
        ];
        let changes = last_changes(&history, Some(&history[3]));
        let by = |service: &str| {
            changes
                .get(service)
                .map(|change| (change.revision, change.who.as_str()))
        };
        assert_eq!(by("backend"), Some((1, "ana")));
        assert_eq!(by("frontend"), Some((2, "bo")));
        assert!(last_changes(&history, None).is_empty());
    }

    #[test]
    fn environments_that_extend_another_sit_in_its_group() {
        let project = "[project]\nname = \"shop\"\n\
            [environments.base]\nabstract = true\n\
            [environments.dev]\nruntime = \"local\"\n\
            [environments.eu]\nextends = \"base\"\n\
            [environments.dev-team]\nextends = \"dev\"\n\
            [environments.us]\nextends = \"base\"\n\
            [services.web]\ncommand = [\"web\"]\n";
        let dir = tier_test::TestProject::with_files(&[("tier.toml", project)]);
        let loaded = tier_model::Project::load(dir.path()).expect("the project loads");
        let names: Vec<(String, Option<String>)> = loaded
            .environments
            .iter()
            .filter(|decl| !decl.is_abstract)
            .map(|decl| (decl.name.clone(), decl.extends.clone()))
            .collect();
        let order: Vec<(String, String)> = grouped(&loaded.environments, names)
            .into_iter()
            .map(|(name, _, group)| (name, group))
            .collect();
        let expected = [
            ("dev", "dev"),
            ("dev-team", "dev"),
            ("eu", "base"),
            ("us", "base"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(name, group)| ((*name).to_owned(), (*group).to_owned()))
            .collect();
        assert_eq!(order, expected);
    }
}
