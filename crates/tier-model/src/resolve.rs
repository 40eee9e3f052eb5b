//! Resolving one environment: the layers merged in precedence order, then checked and typed.
//!
//! Precedence, lowest first: built-in defaults, `tier.toml`, `envs/<ancestor>.toml` for each
//! ancestor the environment `extends` (the root ancestor first), `envs/<env>.toml`, and
//! `--set path=value` arguments in the order given.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use crate::environment::*;
use crate::names::{EnvName, ServiceName};
use crate::problem::Problem;
use crate::project::{PROJECT_FILE, Project};
use crate::schema::{self, Ty};
use crate::source::{FileId, Origin};
use crate::tree::{Node, Value};

/// A `--set path=value` argument.
#[derive(Clone, Debug)]
pub struct Set {
    pub argument: String,
    pub path: Vec<String>,
    pub value: Node,
}

impl Set {
    /// Parses `services.backend.replicas=5`. The value is read as TOML (`5`, `true`,
    /// `"text"`, `["a", "b"]`, `{ tcp = 8080 }`), else as JSON (`{"tcp": 8080}`), else taken
    /// as a plain string. A value that opens a table or an array but is neither is an error.
    pub fn parse(argument: &str) -> Result<Set, String> {
        let Some((path, raw)) = argument.split_once('=') else {
            return Err(format!(
                "--set {argument}: expected path=value, e.g. services.backend.replicas=3"
            ));
        };
        let path: Vec<String> = path
            .trim()
            .split('.')
            .map(|key| key.trim().to_owned())
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(format!("--set {argument}: the path has an empty key"));
        }
        let origin = Origin::CommandLine(argument.to_owned());
        let raw = raw.trim();
        let (parsed, errors) = crate::tree::parse_toml(FileId::DETACHED, &format!("v = {raw}"));
        let toml = parsed.get("v").filter(|_| errors.is_empty()).cloned();
        let json = || crate::tree::parse_json(FileId::DETACHED, raw);
        let value = match toml {
            Some(node) => Some(node),
            None if raw.starts_with(['{', '[']) => match json() {
                Ok(node) => Some(node),
                Err(error) => {
                    return Err(format!(
                        "--set {argument}: the value is neither TOML nor JSON ({}); write a table as {{ key = value }} or {{\"key\": value}}",
                        error.message.trim_start_matches("invalid JSON: ")
                    ));
                }
            },
            None => None,
        };
        let value = match value {
            Some(mut node) => {
                relabel(&mut node, &origin);
                node
            }
            None => Node::new(Value::String(raw.to_owned()), origin),
        };
        Ok(Set {
            argument: argument.to_owned(),
            path,
            value,
        })
    }
}

fn relabel(node: &mut Node, origin: &Origin) {
    node.origin = origin.clone();
    node.key = None;
    match &mut node.value {
        Value::Array(items) => items.iter_mut().for_each(|item| relabel(item, origin)),
        Value::Table(table) => std::sync::Arc::make_mut(table)
            .values_mut()
            .for_each(|item| relabel(item, origin)),
        _ => {}
    }
}

/// One environment, resolved: the typed value and the tree it was built from, which keeps
/// where every value came from.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub environment: Environment,
    pub tree: Node,
    /// The environment's `extends` chain, root ancestor first, itself last.
    pub chain: Vec<String>,
    pub is_abstract: bool,
    /// What is allowed but worth saying: services below the project's security profile.
    pub warnings: Vec<Problem>,
    /// Keys removed by an override (`unset`, or `null` in a config file), by dotted path:
    /// the node that removed each, with what it removed.
    pub removed: BTreeMap<String, Node>,
}

/// What a command wanted an environment for; each says in its own words why an abstract one
/// cannot serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Plan, apply or render it.
    Deploy,
    /// Start it on this machine (`tier up`).
    Run,
    /// Read what runs (`tier status`, drift).
    Status,
    /// Reach its runtime config store (`tier config`, `tier flag`).
    Store,
}

impl Purpose {
    fn why_not(self) -> &'static str {
        match self {
            Purpose::Deploy => "is never deployed",
            Purpose::Run => "is never run",
            Purpose::Status => "never runs",
            Purpose::Store => "has no store",
        }
    }
}

/// An abstract environment asked for as if it ran: it is only a parent of others.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("environment `{env}` is abstract: it is only a parent and {}", .purpose.why_not())]
pub struct AbstractEnvironment {
    pub env: EnvName,
    pub purpose: Purpose,
}

/// What `tier explain` says about one value.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub path: String,
    pub value: serde_json::Value,
    pub origin: Origin,
    /// Earlier values at the same path, the most recent first.
    pub overridden: Vec<crate::tree::Overridden>,
    /// The key was removed (`unset`, or `null` in a config file); `origin` is what removed it.
    pub removed: bool,
    /// For a value no file wrote, the schema's word on its key: what it is for and its default
    /// (`Replicas started above the desired count during a rollout. Default: 1.`).
    pub default: Option<String>,
}

impl Resolved {
    /// Refuses an abstract environment, which is only a parent: nothing deploys, runs or
    /// reads it.
    pub fn deployable(&self, purpose: Purpose) -> Result<(), AbstractEnvironment> {
        if self.is_abstract {
            return Err(AbstractEnvironment {
                env: self.environment.name.clone(),
                purpose,
            });
        }
        Ok(())
    }

    /// The resolved value at a dotted path, with where it came from.
    pub fn explain(&self, path: &str) -> Option<Explanation> {
        let rendered = serde_json::to_value(&self.environment).ok()?;
        self.explain_in(&rendered, path)
    }

    /// Every value at a path that starts with `prefix` (`services.api.`), explained, with the
    /// environment rendered once for all of them.
    pub fn explain_under(&self, prefix: &str) -> Vec<Explanation> {
        let Ok(rendered) = serde_json::to_value(&self.environment) else {
            return Vec::new();
        };
        let mut leaves = Vec::new();
        crate::diff::flatten(&rendered, "", &mut leaves);
        leaves
            .into_iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .filter_map(|(path, _)| self.explain_in(&rendered, &path))
            .collect()
    }

    fn explain_in(&self, rendered: &serde_json::Value, path: &str) -> Option<Explanation> {
        let keys: Vec<&str> = path.split('.').filter(|key| !key.is_empty()).collect();
        let Some(value) = keys
            .iter()
            .try_fold(rendered, |value, key| value.get(*key))
            .cloned()
        else {
            let removed = self.removed.get(&keys.join("."))?;
            return Some(Explanation {
                path: path.to_owned(),
                value: serde_json::Value::Null,
                origin: removed.origin.clone(),
                overridden: removed.overridden.iter().rev().cloned().collect(),
                removed: true,
                default: None,
            });
        };
        Some(match self.tree.lookup(tree_path(&keys)) {
            Some(node) => Explanation {
                path: path.to_owned(),
                value,
                origin: node.origin.clone(),
                overridden: node.overridden.iter().rev().cloned().collect(),
                removed: false,
                default: None,
            },
            None => {
                let origin = self.origin_of(path);
                let default = (origin == Origin::Default)
                    .then(|| schema::field_at(schema::PROJECT_FILE, path))
                    .flatten()
                    .filter(|field| field.default.is_some())
                    .map(schema::Field::description);
                Explanation {
                    path: path.to_owned(),
                    value,
                    origin,
                    overridden: Vec::new(),
                    removed: false,
                    default,
                }
            }
        })
    }

    /// Where the value at a path came from: the node itself, or the nearest enclosing one
    /// that was written (a path below a secret reference, for example), or a default.
    pub fn origin_of(&self, path: &str) -> Origin {
        let keys: Vec<&str> = tree_path(&path.split('.').collect::<Vec<_>>()).collect();
        if let Some(node) = self.tree.lookup(keys.iter().copied()) {
            return node.origin.clone();
        }
        for length in (1..keys.len()).rev() {
            if let Some(node) = self.tree.lookup(keys[..length].iter().copied())
                && !matches!(node.value, Value::Table(_))
            {
                return node.origin.clone();
            }
        }
        Origin::Default
    }

    /// Every key path of the resolved value that `explain` answers, sorted.
    pub fn paths(&self) -> Vec<String> {
        let rendered = serde_json::to_value(&self.environment).unwrap_or_default();
        let mut out = Vec::new();
        crate::diff::flatten(&rendered, "", &mut out);
        out.into_iter().map(|(path, _)| path).collect()
    }
}

/// The tree path of a path of the resolved value: the environment's patches and manifests are
/// written under `kube`, and resolved beside it.
fn tree_path<'a>(keys: &[&'a str]) -> impl Iterator<Item = &'a str> + use<'a> {
    let under_kube = matches!(keys.first(), Some(&("patches" | "manifests")));
    let keys = keys.to_vec();
    under_kube.then_some("kube").into_iter().chain(keys)
}

impl Project {
    /// Resolves one environment. Problems of the project as a whole ([`Project::problems`])
    /// are not repeated here; callers report both. An environment whose files have syntax
    /// errors is not resolved, and has no problems of its own: checks on the parser's guess
    /// would report mistakes that are not there.
    pub fn resolve(&mut self, name: &str, sets: &[Set]) -> Result<Resolved, Vec<Problem>> {
        let Some(decl) = self.environment(name) else {
            return Err(vec![Problem::new(self.unknown_environment(name))]);
        };
        if !self.parses(name) {
            return Err(Vec::new());
        }
        let is_abstract = decl.is_abstract;
        let own_extends = decl.extends.clone();
        let decl_location = decl.location.clone();
        let chain: Vec<String> = self
            .chain(name)
            .iter()
            .map(|decl| decl.name.clone())
            .collect();
        let mut problems = Vec::new();

        let mut tree = Node::table(Origin::Derived(format!("environment {name}")));
        for key in ["project", "services", "flags", "libraries", "store"] {
            if let Some(node) = self.file.get(key) {
                merge_at(&mut tree, key, node.clone());
            }
        }
        for ancestor in self.chain(name) {
            if let Some(fields) = ancestor.node.as_table() {
                for (key, node) in fields {
                    if key != "abstract" && key != "extends" {
                        merge_at(&mut tree, key, node.clone());
                    }
                }
            }
            if let Some(overrides) = &ancestor.overrides
                && let Some(fields) = overrides.as_table()
            {
                for (key, node) in fields {
                    let node = if key == "services" {
                        crate::unset::apply_unsets(node, &mut problems)
                    } else {
                        node.clone()
                    };
                    merge_at(&mut tree, key, node);
                }
            }
        }
        if let Some(node) = self
            .environment(name)
            .and_then(|decl| decl.node.get("extends"))
        {
            merge_at(&mut tree, "extends", node.clone());
        }
        for set in sets {
            match set_type(&set.path) {
                Err(problem) => problems.push(problem),
                Ok(ty) => {
                    let before = problems.len();
                    schema::check(&set.value, ty, &set.path.join("."), &mut problems);
                    for problem in &mut problems[before..] {
                        problem.message = format!("--set {}: {}", set.argument, problem.message);
                    }
                    replace_at(&mut tree, &set.path, set.value.clone());
                }
            }
        }

        self.attach_configs(&mut tree, &chain, &mut problems);
        let mut removed = BTreeMap::new();
        crate::unset::prune_nulls(&mut tree, "", &mut removed);
        crate::unset::refuse_unset_in_project_file(&self.file, &mut problems);
        let source_runtime = decl_promote_runtime(self, name);
        let attached = self.attach_files(&tree, &mut problems);
        let mut environment = build(name, &tree, own_extends.as_deref(), &attached);
        if !is_abstract {
            crate::environment_checks::check_runtime(
                &environment,
                &tree,
                decl_location.as_ref(),
                &mut problems,
            );
        }
        crate::environment_checks::check_services(&environment, &tree, &mut problems);
        let mut warnings = Vec::new();
        crate::checks::check_workloads(
            &mut environment,
            &tree,
            source_runtime,
            &mut problems,
            &mut warnings,
        );
        for warning in &mut warnings {
            warning.environments = vec![name.to_owned()];
        }
        for problem in &mut problems {
            if problem.environments.is_empty() {
                problem.environments = vec![name.to_owned()];
            }
        }
        if problems.is_empty() {
            Ok(Resolved {
                environment,
                tree,
                chain,
                is_abstract,
                warnings,
                removed,
            })
        } else {
            Err(problems)
        }
    }

    /// Replaces each service's `config` directory with the merged config it names, and keeps
    /// the directory as `config_dir`.
    fn attach_configs(&mut self, tree: &mut Node, chain: &[String], problems: &mut Vec<Problem>) {
        let Some(services) = tree.get("services").and_then(Node::as_table) else {
            return;
        };
        let with_config: Vec<(String, Node)> = services
            .iter()
            .filter_map(|(name, service)| Some((name.clone(), service.get("config")?.clone())))
            .filter(|(_, dir)| dir.as_str().is_some())
            .collect();
        for (service, dir_node) in with_config {
            let dir = dir_node.as_str().unwrap_or_default().to_owned();
            let escapes = Path::new(&dir)
                .components()
                .any(|part| !matches!(part, Component::Normal(_) | Component::CurDir));
            if escapes {
                problems.push(
                    Problem::new(format!("service `{service}`: config directory `{dir}` is outside the project"))
                        .at(dir_node.origin.location())
                        .label("not inside the project")
                        .help(format!(
                            "give a path relative to the directory of {PROJECT_FILE}, without `..`, e.g. config = \"config/{service}\""
                        )),
                );
                continue;
            }
            let config = match self.load_config(&dir, chain) {
                Ok(Some(config)) => config,
                Ok(None) => {
                    problems.push(
                        Problem::new(format!("service `{service}`: config directory `{dir}` does not exist"))
                            .at(dir_node.origin.location())
                            .label("no such directory")
                            .help(format!(
                                "create {dir}/base.json (and {dir}/<env>.json per environment), or fix the path; it is relative to the directory of {PROJECT_FILE}"
                            )),
                    );
                    continue;
                }
                Err(found) => {
                    problems.extend(found);
                    continue;
                }
            };
            if let Some(table) = tree
                .as_table_mut()
                .and_then(|top| top.get_mut("services"))
                .and_then(Node::as_table_mut)
                .and_then(|services| services.get_mut(&service))
                .and_then(Node::as_table_mut)
            {
                table.insert("config_dir".to_owned(), dir_node);
                table.insert("config".to_owned(), config);
            }
        }
    }
}

/// Puts `node` at `path`, in place of whatever was there: a `--set` names the whole value
/// (`health={ tcp = 8080 }` replaces `health = { http = "/healthz" }`; `health.tcp=8080`
/// adds to it).
fn replace_at(tree: &mut Node, path: &[String], node: Node) {
    let Some((last, above)) = path.split_last() else {
        return;
    };
    let mut at = tree;
    for key in above {
        if at.as_table().is_none() {
            *at = Node::table(node.origin.clone());
        }
        let Some(entries) = at.as_table_mut() else {
            return;
        };
        at = entries
            .entry(key.clone())
            .or_insert_with(|| Node::table(node.origin.clone()));
    }
    if at.as_table().is_none() {
        *at = Node::table(node.origin.clone());
    }
    if let Some(entries) = at.as_table_mut() {
        match entries.get_mut(last) {
            Some(existing) => existing.replace(node),
            None => {
                entries.insert(last.clone(), node);
            }
        }
    }
}

fn merge_at(tree: &mut Node, key: &str, node: Node) {
    if let Some(table) = tree.as_table_mut() {
        match table.get_mut(key) {
            Some(existing) => existing.merge(node),
            None => {
                table.insert(key.to_owned(), node);
            }
        }
    }
}

/// The type a `--set` path must have, from the schema of the override files.
#[expect(
    clippy::result_large_err,
    reason = "a problem is returned once per mistake, never in a hot path"
)]
fn set_type(path: &[String]) -> Result<&'static Ty, Problem> {
    let mut fields = schema::OVERRIDE_FILE;
    let mut ty: Option<&'static Ty> = None;
    let joined = path.join(".");
    for (depth, key) in path.iter().enumerate() {
        if let Some(current) = ty {
            match current {
                Ty::Table(inner) | Ty::StringOrTable { table: inner, .. } => fields = inner,
                Ty::Map { value, .. } => {
                    ty = Some(value);
                    continue;
                }
                _ => {
                    return Err(Problem::new(format!(
                        "--set {joined}: `{}` is not a table",
                        path[..depth].join(".")
                    )));
                }
            }
        }
        match fields.iter().find(|field| field.name == key) {
            Some(field) => ty = Some(field.ty),
            None => {
                let mut problem = Problem::new(format!("--set {joined}: unknown key `{key}`"));
                let names = fields.iter().map(|field| field.name);
                if let Some(near) = schema::did_you_mean(key, names) {
                    problem = problem.help(format!("did you mean `{near}`?"));
                } else {
                    let names: Vec<&str> = fields.iter().map(|field| field.name).collect();
                    problem = problem.help(format!("allowed keys here: {}", names.join(", ")));
                }
                return Err(problem);
            }
        }
    }
    ty.ok_or_else(|| Problem::new(format!("--set {joined}: empty path")))
}

/// The runtime of the environment `name` promotes from, when it names one.
fn decl_promote_runtime(project: &Project, name: &str) -> Option<Runtime> {
    let source = project.environment(name)?.promote_from.as_deref()?;
    Some(project.runtime(source).unwrap_or_default())
}

fn build(
    name: &str,
    tree: &Node,
    extends: Option<&str>,
    files: &crate::files::Attached,
) -> Environment {
    let text = |node: &Node, key: &str| node.get(key).and_then(Node::as_str).map(str::to_owned);
    let project = tree.get("project");
    let kube = tree.get("kube").and_then(|kube| {
        Some(Kube {
            context: text(kube, "context")?,
            namespace: text(kube, "namespace")?,
        })
    });
    // The schema check has refused any other word already.
    let security = project
        .and_then(|project| text(project, "security"))
        .and_then(|word| word.parse().ok())
        .unwrap_or_default();
    let services = tree
        .get("services")
        .and_then(Node::as_table)
        .map(|services| {
            services
                .iter()
                .filter_map(|(name, node)| {
                    Some((
                        ServiceName::new(name).ok()?,
                        crate::service::build_service(node, security, files),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let flags = tree
        .get("flags")
        .and_then(Node::as_table)
        .map(|flags| {
            flags
                .iter()
                .map(|(name, node)| {
                    let flag = Flag {
                        default: node
                            .get("default")
                            .map_or(serde_json::Value::Bool(false), Node::to_json),
                        description: text(node, "description"),
                    };
                    (name.clone(), flag)
                })
                .collect()
        })
        .unwrap_or_default();
    let libraries = tree
        .get("libraries")
        .and_then(Node::as_table)
        .map(|libraries| {
            libraries
                .iter()
                .filter_map(|(name, node)| {
                    Some((
                        name.clone(),
                        Library {
                            path: text(node, "path")?,
                        },
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Environment {
        name: EnvName::new_unchecked(name),
        runtime: tree
            .get("runtime")
            .and_then(Node::as_choice)
            .unwrap_or_default(),
        extends: extends.and_then(|parent| EnvName::new(parent).ok()),
        promote_from: tree
            .get("promote_from")
            .and_then(Node::as_str)
            .and_then(|source| EnvName::new(source).ok()),
        protected: tree
            .get("protected")
            .and_then(Node::as_bool)
            .unwrap_or(false),
        region: text(tree, "region"),
        kube,
        patches: files.patches(tree.lookup(["kube", "patches"])),
        manifests: files.manifests(tree.lookup(["kube", "manifests"])),
        project: ProjectSettings {
            name: project
                .and_then(|project| text(project, "name"))
                .unwrap_or_default(),
            ordering: project
                .and_then(|project| project.get("ordering"))
                .and_then(Node::as_bool)
                .unwrap_or(crate::defaults::ORDERING),
            on_failure: project
                .and_then(|project| project.get("on_failure"))
                .and_then(Node::as_choice)
                .unwrap_or_default(),
            security,
        },
        services,
        flags,
        libraries,
        store: StoreSettings {
            kubernetes: tree
                .lookup(["store", "kubernetes"])
                .and_then(Node::as_bool)
                .unwrap_or(false),
            // An address that is not etcd's is reported by the schema check, and kept out of
            // the model.
            etcd: tree
                .lookup(["store", "etcd"])
                .and_then(Node::as_str)
                .filter(|address| schema::check_etcd_address(address).is_ok())
                .map(str::to_owned),
            image: tree
                .lookup(["store", "image"])
                .and_then(Node::as_str)
                .map(str::to_owned),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boutique() -> Project {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/online-boutique");
        Project::load(&root).expect("the online boutique loads")
    }

    #[test]
    fn an_abstract_environment_is_refused_in_the_words_of_each_purpose() {
        let mut project = boutique();
        let prod = project.resolve("prod", &[]).expect("resolves");
        let refused = |purpose| prod.deployable(purpose).map_err(|error| error.to_string());
        let said = "environment `prod` is abstract: it is only a parent and";
        assert_eq!(
            refused(Purpose::Deploy),
            Err(format!("{said} is never deployed"))
        );
        assert_eq!(refused(Purpose::Run), Err(format!("{said} is never run")));
        assert_eq!(refused(Purpose::Status), Err(format!("{said} never runs")));
        assert_eq!(refused(Purpose::Store), Err(format!("{said} has no store")));
        let prod_eu = project.resolve("prod-eu", &[]).expect("resolves");
        assert_eq!(prod_eu.deployable(Purpose::Deploy), Ok(()));
    }

    #[test]
    fn runtime_and_protection_are_inherited_from_the_nearest_ancestor() {
        let project = boutique();
        assert_eq!(project.runtime("dev"), Some(Runtime::Local));
        assert_eq!(project.runtime("prod-eu"), Some(Runtime::Kubernetes));
        assert!(project.protected("prod-us"));
        assert!(!project.protected("stage"));
    }
}

#[cfg(test)]
mod explain_tests {
    #[test]
    fn explaining_everything_under_a_prefix_answers_as_each_path_alone() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-app");
        let mut project = crate::Project::load(&root).expect("the sample app loads");
        let Ok(resolved) = project.resolve("stage", &[]) else {
            panic!("stage resolves");
        };
        let all = resolved.explain_under("services.backend.");
        let paths: Vec<String> = resolved
            .paths()
            .into_iter()
            .filter(|path| path.starts_with("services.backend."))
            .collect();
        assert!(paths.len() > 10, "the backend has values: {paths:?}");
        assert_eq!(all.len(), paths.len());
        for (explained, path) in all.iter().zip(&paths) {
            let alone = resolved.explain(path).expect("explained alone");
            assert_eq!(
                (
                    &explained.path,
                    &explained.value,
                    &explained.origin,
                    explained.default.as_ref()
                ),
                (
                    &alone.path,
                    &alone.value,
                    &alone.origin,
                    alone.default.as_ref()
                )
            );
        }
    }
}
