//! Loading a project directory: `tier.toml`, the override files under `envs/`, and the app
//! config under each service's config directory. This is the only module that reads files.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::choice::UnknownChoice;
use crate::environment::Runtime;
use crate::names::{self, EnvName};
use crate::problem::Problem;
use crate::schema;
use crate::source::{FileId, Location, Origin, SourceMap};
use crate::tree::{self, Node};

pub const PROJECT_FILE: &str = "tier.toml";
pub const OVERRIDES_DIR: &str = "envs";
/// The config layer under every environment's: `config/<service>/base.json`.
pub const CONFIG_BASE: &str = "base";

/// Why a project could not be read at all (as opposed to read and found wrong).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no {PROJECT_FILE} in {}", .0.display())]
    NoProject(PathBuf),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An environment as declared in `[environments.<name>]`.
#[derive(Debug)]
pub struct EnvironmentDecl {
    pub name: String,
    pub node: Node,
    /// Where `[environments.<name>]` is written.
    pub location: Option<Location>,
    pub is_abstract: bool,
    pub extends: Option<String>,
    pub promote_from: Option<String>,
    /// The environment's override file, when it has one.
    pub overrides: Option<Node>,
}

impl EnvironmentDecl {
    fn field(&self, key: &str) -> Option<&Node> {
        self.node.get(key)
    }

    /// The `runtime` written in this declaration: `None` when there is none, an error for a
    /// word that is not a runtime (which the schema check reports).
    pub fn runtime(&self) -> Option<Result<Runtime, UnknownChoice>> {
        self.field("runtime").and_then(Node::as_str).map(str::parse)
    }
}

/// A project as read from disk, before any environment is resolved.
#[derive(Debug)]
pub struct Project {
    pub root: PathBuf,
    pub sources: SourceMap,
    /// `tier.toml` as written.
    pub file: Node,
    /// In declaration order.
    pub environments: Vec<EnvironmentDecl>,
    /// Problems found while reading: syntax, keys and types, the environment graph.
    pub problems: Vec<Problem>,
    /// Config files read so far, by path relative to the root; `None` when absent.
    configs: HashMap<PathBuf, Option<Result<Node, Problem>>>,
    /// Config directories listed so far, by path relative to the root; `None` when absent.
    config_dirs: HashMap<String, Option<Arc<HashSet<String>>>>,
    /// Files with syntax errors, whose trees are the parser's guesses.
    unparsed: Vec<FileId>,
}

impl Project {
    /// Reads `tier.toml` and every override file below `root`.
    pub fn load(root: &Path) -> Result<Project, LoadError> {
        let path = root.join(PROJECT_FILE);
        let (text, not_utf8) = match read_text(&path) {
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(LoadError::NoProject(root.to_path_buf()));
            }
            Err(source) => return Err(LoadError::Read { path, source }),
        };
        let mut sources = SourceMap::default();
        let mut problems = Vec::new();
        let file_id = sources.add(PROJECT_FILE, text);
        problems.extend(not_utf8.map(|at| not_utf8_problem(&sources, file_id, at)));
        let mut unparsed = Vec::new();
        let (file, syntax) = tree::parse_toml(file_id, &sources.get(file_id).text);
        check_parsed(
            &file,
            syntax,
            schema::PROJECT_FILE,
            &mut problems,
            &mut unparsed,
        );

        let mut environments = Vec::new();
        if let Some(declared) = file.get("environments").and_then(Node::as_table) {
            for (name, node) in declared {
                // A name that is not a label is reported by the schema check, and it may not
                // be a file name at all (a NUL, a '/', `..`): its override file is not read.
                let overrides = if names::check_dns1035(name).is_ok() {
                    read_overrides(root, name, &mut sources, &mut problems, &mut unparsed)?
                } else {
                    None
                };
                environments.push(EnvironmentDecl {
                    name: name.clone(),
                    location: node.key.clone().or_else(|| node.origin.location().cloned()),
                    is_abstract: node
                        .get("abstract")
                        .and_then(Node::as_bool)
                        .unwrap_or(false),
                    extends: node
                        .get("extends")
                        .and_then(Node::as_str)
                        .map(str::to_owned),
                    promote_from: node
                        .get("promote_from")
                        .and_then(Node::as_str)
                        .map(str::to_owned),
                    node: node.clone(),
                    overrides,
                });
            }
        }
        environments.sort_by_key(|decl| decl.location.as_ref().map_or(0, |at| at.span.start));

        let mut project = Project {
            root: root.to_path_buf(),
            sources,
            file,
            environments,
            problems,
            configs: HashMap::new(),
            config_dirs: HashMap::new(),
            unparsed,
        };
        project.check_environment_graph();
        project.check_stray_overrides()?;
        Ok(project)
    }

    pub fn name(&self) -> &str {
        self.file
            .lookup(["project", "name"])
            .and_then(Node::as_str)
            .unwrap_or("")
    }

    /// Whether `tier.toml` and the override files of the environment's chain parsed without
    /// syntax errors, so that checks on their trees find what is really written.
    pub fn parses(&self, name: &str) -> bool {
        let parsed = |node: &Node| {
            node.origin
                .location()
                .is_none_or(|at| !self.unparsed.contains(&at.file))
        };
        parsed(&self.file)
            && self
                .chain(name)
                .iter()
                .all(|decl| decl.overrides.as_ref().is_none_or(parsed))
    }

    pub fn environment(&self, name: &str) -> Option<&EnvironmentDecl> {
        self.environments.iter().find(|decl| decl.name == name)
    }

    /// The environment and its ancestors, root ancestor first. Stops at a loop or a missing
    /// parent, which [`Project::load`] has already reported.
    pub fn chain(&self, name: &str) -> Vec<&EnvironmentDecl> {
        let mut chain: Vec<&EnvironmentDecl> = Vec::new();
        let mut next = self.environment(name);
        while let Some(decl) = next {
            if chain.iter().any(|seen| seen.name == decl.name) {
                break;
            }
            chain.push(decl);
            next = decl
                .extends
                .as_deref()
                .and_then(|parent| self.environment(parent));
        }
        chain.reverse();
        chain
    }

    /// The runtime an environment declares or inherits: the nearest `runtime` written in its
    /// chain, local when none is. `None` when that nearest one is not a runtime, which the
    /// schema check reports.
    pub fn runtime(&self, name: &str) -> Option<Runtime> {
        match self
            .chain(name)
            .iter()
            .rev()
            .find_map(|decl| decl.runtime())
        {
            None => Some(Runtime::default()),
            Some(written) => written.ok(),
        }
    }

    /// Whether an environment is protected (changes need `--confirm <env>`): the nearest
    /// `protected` written in its chain, false when none is.
    pub fn protected(&self, name: &str) -> bool {
        self.chain(name)
            .iter()
            .rev()
            .find_map(|decl| decl.field("protected").and_then(Node::as_bool))
            .unwrap_or(false)
    }

    /// A suggestion for a misspelt environment name.
    pub fn unknown_environment(&self, name: &str) -> String {
        let names = self.environments.iter().map(|decl| decl.name.as_str());
        match schema::did_you_mean(name, names) {
            Some(near) => {
                format!("no environment `{name}` in {PROJECT_FILE}: did you mean `{near}`?")
            }
            None => {
                let known: Vec<&str> = self
                    .environments
                    .iter()
                    .map(|decl| decl.name.as_str())
                    .collect();
                if known.is_empty() {
                    format!("no environment `{name}`: {PROJECT_FILE} declares none")
                } else {
                    format!(
                        "no environment `{name}` in {PROJECT_FILE}; known: {}",
                        known.join(", ")
                    )
                }
            }
        }
    }

    /// The merged app config of a service's config directory for an environment chain:
    /// `base.json`, then `<env>.json` of each environment from the root ancestor down.
    pub(crate) fn load_config(
        &mut self,
        dir: &str,
        chain: &[String],
    ) -> Result<Option<Node>, Vec<Problem>> {
        let Some(present) = self.config_listing(dir) else {
            return Ok(None);
        };
        let mut merged: Option<Node> = None;
        let mut problems = Vec::new();
        let mut layers = Vec::new();
        // As with override files, an environment whose name is not a label (already reported)
        // names no config file.
        let environments = chain
            .iter()
            .map(String::as_str)
            .filter(|name| names::check_dns1035(name).is_ok());
        for layer in std::iter::once(CONFIG_BASE).chain(environments) {
            let file_name = format!("{layer}.json");
            if !present.contains(&file_name) {
                continue;
            }
            let relative = Path::new(dir).join(file_name);
            match self.read_json(&relative) {
                None => {}
                Some(Err(problem)) => problems.push(problem),
                Some(Ok(node)) => {
                    if node.as_table().is_none() {
                        problems.push(
                            Problem::new(format!("{} must hold a JSON object", relative.display()))
                                .at(node.origin.location())
                                .label(format!("{} here", node.value.kind()))
                                .help("wrap the settings in { ... }"),
                        );
                        continue;
                    }
                    layers.push(relative.display().to_string());
                    match &mut merged {
                        None => merged = Some(node),
                        Some(base) => base.merge(node),
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut merged = merged.unwrap_or_else(|| Node::table(Origin::Default));
        merged.origin = Origin::Derived(if layers.is_empty() {
            format!("{dir}/ has no base.json or environment file")
        } else {
            layers.join(" < ")
        });
        Ok(Some(merged))
    }

    /// The file names in a config directory, read once per directory; `None` when it is not
    /// a directory. One listing replaces a failed open per service and environment.
    fn config_listing(&mut self, dir: &str) -> Option<Arc<HashSet<String>>> {
        if let Some(listing) = self.config_dirs.get(dir) {
            return listing.clone();
        }
        let listing = std::fs::read_dir(self.root.join(dir)).ok().map(|entries| {
            Arc::new(
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| entry.file_name().into_string().ok())
                    .collect::<HashSet<String>>(),
            )
        });
        self.config_dirs.insert(dir.to_owned(), listing.clone());
        listing
    }

    fn read_json(&mut self, relative: &Path) -> Option<Result<Node, Problem>> {
        if let Some(cached) = self.configs.get(relative) {
            return cached.clone();
        }
        let path = self.root.join(relative);
        let result = match read_text(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => Some(Err(Problem::new(format!(
                "cannot read {}: {error}",
                relative.display()
            ))
            .help("check the file's permissions"))),
            Ok((text, Some(at))) => {
                let id = self.sources.add(relative, text);
                Some(Err(not_utf8_problem(&self.sources, id, at)))
            }
            Ok((text, None)) => Some(self.parse_config(relative, text)),
        };
        self.configs.insert(relative.to_path_buf(), result.clone());
        result
    }

    #[expect(
        clippy::result_large_err,
        reason = "a problem is returned once per mistake, never in a hot path"
    )]
    fn parse_config(&mut self, relative: &Path, text: String) -> Result<Node, Problem> {
        let empty = text.trim().is_empty();
        let id = self.sources.add(relative, text);
        tree::parse_json(id, &self.sources.get(id).text).map_err(|error| {
            Problem::new(error.message)
                .at(Some(&error.location))
                .label("here")
                .help(if empty {
                    "write {} for no settings, or delete the file"
                } else {
                    "config files are strict JSON: no comments, no trailing commas, keys in double quotes"
                })
        })
    }

    fn check_environment_graph(&mut self) {
        let mut problems = Vec::new();
        if let Some(decl) = self.environment(CONFIG_BASE) {
            problems.push(
                Problem::new(format!("`{CONFIG_BASE}` cannot name an environment: {CONFIG_BASE}.json is every environment's app config"))
                    .at(decl.location.as_ref())
                    .label("reserved name")
                    .help("choose another name, e.g. `baseline`"),
            );
        }
        let names: Vec<&str> = self
            .environments
            .iter()
            .map(|decl| decl.name.as_str())
            .collect();
        for decl in &self.environments {
            for (key, target) in [
                ("extends", &decl.extends),
                ("promote_from", &decl.promote_from),
            ] {
                let Some(target) = target else { continue };
                let at = decl.node.get(key).and_then(|node| node.origin.location());
                if target == &decl.name {
                    problems.push(
                        Problem::new(format!(
                            "environment `{}` names itself in `{key}`",
                            decl.name
                        ))
                        .at(at)
                        .label("itself")
                        .help(format!("name another environment, or remove `{key}`")),
                    );
                    continue;
                }
                match self.environment(target) {
                    None => {
                        let mut problem = Problem::new(format!(
                            "environment `{}`: `{key}` names `{target}`, which is not an environment",
                            decl.name
                        ))
                        .at(at);
                        problem = match schema::did_you_mean(target, names.iter().copied()) {
                            Some(near) => problem.label(format!("did you mean `{near}`?")),
                            None => problem.label("unknown environment"),
                        };
                        let others: Vec<&str> = names.iter().copied().filter(|name| *name != decl.name).collect();
                        problems.push(problem.help(if others.is_empty() {
                            format!("declare [environments.{target}] in {PROJECT_FILE}, or remove `{key}`")
                        } else {
                            format!(
                                "declare [environments.{target}] in {PROJECT_FILE}, or name one of: {}",
                                others.join(", ")
                            )
                        }));
                    }
                    Some(source) if key == "promote_from" && source.is_abstract => problems.push(
                        Problem::new(format!(
                            "environment `{}` promotes from `{target}`, which is abstract and never deployed",
                            decl.name
                        ))
                        .at(at)
                        .label("abstract")
                        .help("promote from an environment that runs"),
                    ),
                    Some(_) => {}
                }
            }
            if decl.is_abstract && decl.promote_from.is_some() {
                problems.push(
                    Problem::new(format!(
                        "environment `{}` is abstract, so it is never deployed and cannot be promoted to",
                        decl.name
                    ))
                    .at(decl.node.get("promote_from").and_then(|node| node.origin.location()))
                    .label("on an abstract environment")
                    .help("set `promote_from` on the environments that extend it"),
                );
            }
        }
        for key in ["extends", "promote_from"] {
            problems.extend(self.loops(key));
        }
        self.problems.extend(problems);
    }

    /// Each loop in the `extends` or `promote_from` graph, reported once, with its whole path.
    fn loops(&self, key: &str) -> Vec<Problem> {
        let next = |decl: &EnvironmentDecl| -> Option<String> {
            if key == "extends" {
                decl.extends.clone()
            } else {
                decl.promote_from.clone()
            }
        };
        let mut reported: Vec<Vec<String>> = Vec::new();
        let mut problems = Vec::new();
        for start in &self.environments {
            let mut path: Vec<String> = vec![start.name.clone()];
            let mut current = start;
            while let Some(target) = next(current) {
                if target == current.name {
                    break;
                }
                let Some(decl) = self.environment(&target) else {
                    break;
                };
                if let Some(position) = path.iter().position(|name| name == &target) {
                    let mut cycle: Vec<String> = path[position..].to_vec();
                    let mut sorted = cycle.clone();
                    sorted.sort();
                    if !reported.contains(&sorted) {
                        reported.push(sorted);
                        let first = self.environment(&cycle[0]);
                        cycle.push(target.clone());
                        let word = if key == "extends" {
                            "extends"
                        } else {
                            "promotes from"
                        };
                        let mut problem = Problem::new(format!(
                            "environments form a loop through `{key}`: {}",
                            cycle.join(&format!(" {word} "))
                        ))
                        .at(first
                            .and_then(|decl| decl.node.get(key))
                            .and_then(|node| node.origin.location()))
                        .label("the loop starts here")
                        .help(format!("remove `{key}` from one of these environments"));
                        for name in &cycle[1..cycle.len() - 1] {
                            let at = self
                                .environment(name)
                                .and_then(|decl| decl.node.get(key))
                                .and_then(|node| node.origin.location());
                            problem = problem.related(at, format!("`{name}` continues it"));
                        }
                        problems.push(problem);
                    }
                    break;
                }
                path.push(target);
                current = decl;
            }
        }
        problems
    }

    fn check_stray_overrides(&mut self) -> Result<(), LoadError> {
        let directory = self.root.join(OVERRIDES_DIR);
        let entries = match std::fs::read_dir(&directory) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(LoadError::Read {
                    path: directory,
                    source,
                });
            }
        };
        let mut stray: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter_map(|name| name.strip_suffix(".toml").map(str::to_owned))
            .filter(|name| self.environment(name).is_none())
            .collect();
        stray.sort();
        let names: Vec<&str> = self
            .environments
            .iter()
            .map(|decl| decl.name.as_str())
            .collect();
        for name in stray {
            let relative = Path::new(OVERRIDES_DIR).join(format!("{name}.toml"));
            let text = std::fs::read_to_string(self.root.join(&relative)).unwrap_or_default();
            let first_line = text.lines().next().map_or(0, str::len);
            let file = self.sources.add(relative, text);
            let mut problem = Problem::new(format!(
                "{OVERRIDES_DIR}/{name}.toml overrides environment `{name}`, which {PROJECT_FILE} does not declare"
            ))
            .at(Some(&Location { file, span: 0..first_line }))
            .label("for no environment");
            problem = match schema::did_you_mean(&name, names.iter().copied()) {
                Some(near) => problem.help(format!(
                    "rename it to {OVERRIDES_DIR}/{near}.toml, or declare [environments.{name}]"
                )),
                None => problem.help(format!(
                    "declare [environments.{name}] in {PROJECT_FILE}, or delete the file"
                )),
            };
            self.problems.push(problem);
        }
        Ok(())
    }
}

fn read_overrides(
    root: &Path,
    name: &str,
    sources: &mut SourceMap,
    problems: &mut Vec<Problem>,
    unparsed: &mut Vec<FileId>,
) -> Result<Option<Node>, LoadError> {
    let relative = Path::new(OVERRIDES_DIR).join(format!("{name}.toml"));
    let path = root.join(&relative);
    let (text, not_utf8) = match read_text(&path) {
        Ok(read) => read,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LoadError::Read { path, source }),
    };
    let id = sources.add(relative, text);
    problems.extend(not_utf8.map(|at| not_utf8_problem(sources, id, at)));
    let (node, syntax) = tree::parse_toml(id, &sources.get(id).text);
    check_parsed(&node, syntax, schema::OVERRIDE_FILE, problems, unparsed);
    Ok(Some(node))
}

/// Reads a file as text. A file that is not UTF-8 is read with each bad sequence replaced by
/// U+FFFD, and the byte offset of the first one is returned beside it, so that the file can
/// still be quoted and checked, and the encoding reported at its place, instead of the whole
/// project failing to load with no location.
fn read_text(path: &Path) -> std::io::Result<(String, Option<usize>)> {
    let bytes = std::fs::read(path)?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(error) => {
            let at = error.utf8_error().valid_up_to();
            (
                String::from_utf8_lossy(error.as_bytes()).into_owned(),
                Some(at),
            )
        }
    })
}

/// The problem of a file that is not UTF-8, at its first bad byte. The text before that byte
/// is unchanged by [`read_text`], so the offset holds in the text that was kept, where the bad
/// bytes show as U+FFFD.
fn not_utf8_problem(sources: &SourceMap, file: FileId, at: usize) -> Problem {
    let source = sources.get(file);
    let end = at
        + source
            .text
            .get(at..)
            .and_then(|rest| rest.chars().next())
            .map_or(0, char::len_utf8);
    Problem::new(format!("{} is not UTF-8 text", source.path.display()))
        .at(Some(&Location {
            file,
            span: at..end,
        }))
        .label("not UTF-8")
        .help("save the file as UTF-8")
}

/// Reports a TOML file's syntax errors and checks it against its schema. Past the first
/// syntax error the tree is the parser's guess (an unclosed `[` swallows the rest of the
/// file), so only the schema problems before it are kept, and the file is marked unparsed.
fn check_parsed(
    node: &Node,
    syntax: Vec<tree::SyntaxError>,
    fields: &'static [schema::Field],
    problems: &mut Vec<Problem>,
    unparsed: &mut Vec<FileId>,
) {
    let mut found = Vec::new();
    schema::check_file(node, fields, &mut found);
    let first = syntax.iter().map(|error| error.location.span.start).min();
    if let Some(error) = syntax.first() {
        unparsed.push(error.location.file);
    }
    problems.extend(
        found
            .into_iter()
            .filter(|problem| match (first, &problem.location) {
                (Some(first), Some(at)) => at.span.start < first,
                _ => true,
            }),
    );
    problems.extend(syntax_problems(syntax));
}

fn syntax_problems(errors: Vec<tree::SyntaxError>) -> impl Iterator<Item = Problem> {
    errors.into_iter().map(|error| {
        Problem::new(format!("invalid TOML: {}", error.message))
            .at(Some(&error.location))
            .label("here")
    })
}

/// Parses an environment name given on the command line.
pub fn env_name(name: &str) -> Result<EnvName, String> {
    EnvName::new(name).map_err(|why| format!("`{name}` is not an environment name: {why}"))
}
