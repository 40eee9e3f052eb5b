//! Files an environment names beyond its config: patch files and extra manifests (YAML, read
//! into JSON values) and the directories of `config` volumes. They are read when an
//! environment resolves, once per file, so the resolved value holds their content and a
//! changed file shows in `plan` like any other change.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path};

use crate::environment::{Manifest, Patch};
use crate::problem::Problem;
use crate::project::Project;
use crate::source::SourceMap;
use crate::tree::Node;

/// The most a patch, manifest or config-volume file may hold: a ConfigMap's limit.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// What [`Project::attach_files`] read, for the builder to take from.
pub(crate) struct Attached<'a> {
    sources: &'a SourceMap,
    documents: HashMap<String, Vec<serde_json::Value>>,
    listings: HashMap<String, Vec<String>>,
    config_dirs: HashMap<String, BTreeMap<String, String>>,
}

impl Attached<'_> {
    /// The patches a `patches` list names, one per document of each file.
    pub fn patches(&self, list: Option<&Node>) -> Vec<Patch> {
        let mut patches = Vec::new();
        for entry in list.and_then(Node::as_array).unwrap_or_default() {
            let (file, target) = patch_entry(entry);
            let Some(file) = file else { continue };
            let declared_at = entry
                .origin
                .location()
                .map_or_else(|| file.to_owned(), |at| self.sources.describe(at));
            for content in self.documents.get(file).into_iter().flatten() {
                patches.push(Patch {
                    file: file.to_owned(),
                    declared_at: declared_at.clone(),
                    target: target.map(str::to_owned),
                    content: content.clone(),
                });
            }
        }
        patches
    }

    /// The objects a `manifests` list names, file by file in the order given (a directory's
    /// files in name order).
    pub fn manifests(&self, list: Option<&Node>) -> Vec<Manifest> {
        let mut manifests = Vec::new();
        for entry in list.and_then(Node::as_array).unwrap_or_default() {
            let Some(path) = entry.as_str() else { continue };
            for file in self.listings.get(path).into_iter().flatten() {
                for object in self.documents.get(file).into_iter().flatten() {
                    manifests.push(Manifest {
                        file: file.clone(),
                        object: object.clone(),
                    });
                }
            }
        }
        manifests
    }

    /// The files of a `config` volume's directory, name to text.
    pub fn config_files(&self, dir: &str) -> BTreeMap<String, String> {
        self.config_dirs.get(dir).cloned().unwrap_or_default()
    }
}

fn patch_entry(entry: &Node) -> (Option<&str>, Option<&str>) {
    match entry.as_str() {
        Some(file) => (Some(file), None),
        None => (
            entry.get("file").and_then(Node::as_str),
            entry.get("target").and_then(Node::as_str),
        ),
    }
}

impl Project {
    /// Reads every file the resolved tree names in `kube.patches`, `kube.manifests` and each
    /// service's `patches`, `manifests` and `config` volumes; each problem is located at the
    /// entry that named the file.
    pub(crate) fn attach_files(
        &mut self,
        tree: &Node,
        problems: &mut Vec<Problem>,
    ) -> Attached<'_> {
        let mut documents = HashMap::new();
        let mut listings = HashMap::new();
        let mut config_dirs = HashMap::new();
        let kube = tree.get("kube");
        let services: Vec<(&str, &Node)> = tree
            .get("services")
            .and_then(Node::as_table)
            .map(|services| {
                services
                    .iter()
                    .map(|(name, node)| (name.as_str(), node))
                    .collect()
            })
            .unwrap_or_default();
        let mut patch_lists = vec![(None, kube.and_then(|kube| kube.get("patches")))];
        let mut manifest_lists = vec![kube.and_then(|kube| kube.get("manifests"))];
        for (name, service) in &services {
            patch_lists.push((Some(*name), service.get("patches")));
            manifest_lists.push(service.get("manifests"));
        }
        for (service, list) in patch_lists {
            for entry in list.and_then(Node::as_array).unwrap_or_default() {
                let (Some(file), target) = patch_entry(entry) else {
                    continue;
                };
                if documents.contains_key(file) {
                    continue;
                }
                match self.read_documents(file, entry) {
                    Ok(docs) => {
                        check_patch(file, &docs, target, service, entry, problems);
                        documents.insert(file.to_owned(), docs);
                    }
                    Err(problem) => problems.push(problem),
                }
            }
        }
        for list in manifest_lists {
            for entry in list.and_then(Node::as_array).unwrap_or_default() {
                let Some(path) = entry.as_str() else { continue };
                if listings.contains_key(path) {
                    continue;
                }
                let files = match self.list_manifest_files(path, entry) {
                    Ok(files) => files,
                    Err(problem) => {
                        problems.push(problem);
                        continue;
                    }
                };
                for file in &files {
                    if documents.contains_key(file) {
                        continue;
                    }
                    match self.read_documents(file, entry) {
                        Ok(docs) => {
                            check_manifest(file, &docs, entry, problems);
                            documents.insert(file.clone(), docs);
                        }
                        Err(problem) => problems.push(problem),
                    }
                }
                listings.insert(path.to_owned(), files);
            }
        }
        for (_, service) in &services {
            for volume in service
                .get("volumes")
                .and_then(Node::as_table)
                .map(|volumes| volumes.values().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                let Some(entry) = volume.get("config") else {
                    continue;
                };
                let Some(dir) = entry.as_str() else { continue };
                if config_dirs.contains_key(dir) {
                    continue;
                }
                match self.read_config_volume(dir, entry) {
                    Ok(files) => {
                        config_dirs.insert(dir.to_owned(), files);
                    }
                    Err(problem) => problems.push(problem),
                }
            }
        }
        Attached {
            sources: &self.sources,
            documents,
            listings,
            config_dirs,
        }
    }

    /// The YAML documents of one file as JSON values; empty documents are skipped.
    #[expect(
        clippy::result_large_err,
        reason = "a problem is returned once per mistake, never in a hot path"
    )]
    fn read_documents(
        &mut self,
        file: &str,
        entry: &Node,
    ) -> Result<Vec<serde_json::Value>, Problem> {
        let text = self.read_named_file(file, entry)?;
        let documents: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).map_err(|error| {
                let first = error.to_string();
                let first = first.lines().next().unwrap_or_default().to_owned();
                let place = error
                    .location()
                    .map(|at| format!("{file}:{}:{}", at.line(), at.column()))
                    .unwrap_or_else(|| file.to_owned());
                Problem::new(format!("{place}: not valid YAML: {first}"))
                    .at(entry.origin.location())
                    .label("this file")
                    .help("fix the file's syntax; it is YAML (or JSON), one or more documents separated by ---")
            })?;
        Ok(documents
            .into_iter()
            .filter(|document| !document.is_null())
            .collect())
    }

    #[expect(
        clippy::result_large_err,
        reason = "a problem is returned once per mistake, never in a hot path"
    )]
    fn read_named_file(&self, file: &str, entry: &Node) -> Result<String, Problem> {
        let relative = inside_project(file, entry)?;
        let path = self.root.join(relative);
        let too_large = std::fs::metadata(&path)
            .map(|meta| meta.len() > MAX_FILE_BYTES)
            .unwrap_or(false);
        if too_large {
            return Err(Problem::new(format!("{file} is larger than 1 MiB"))
                .at(entry.origin.location())
                .label("too large")
                .help("split it into smaller files; Kubernetes refuses objects over 1 MiB"));
        }
        let bytes = std::fs::read(&path).map_err(|error| {
            Problem::new(format!("cannot read {file}: {error}"))
                .at(entry.origin.location())
                .label(if error.kind() == std::io::ErrorKind::NotFound {
                    "no such file"
                } else {
                    "unreadable"
                })
                .help("give a path relative to the directory of tier.toml")
        })?;
        String::from_utf8(bytes).map_err(|error| {
            Problem::new(format!(
                "{file} is not UTF-8 text (invalid byte at offset {})",
                error.utf8_error().valid_up_to()
            ))
            .at(entry.origin.location())
            .label("not text")
            .help("save the file as UTF-8")
        })
    }

    /// A manifest path's files: the file itself, or a directory's `.yaml`, `.yml` and
    /// `.json` files in name order (not its subdirectories).
    #[expect(
        clippy::result_large_err,
        reason = "a problem is returned once per mistake, never in a hot path"
    )]
    fn list_manifest_files(&self, path: &str, entry: &Node) -> Result<Vec<String>, Problem> {
        let relative = inside_project(path, entry)?;
        let full = self.root.join(relative);
        if !full.is_dir() {
            return Ok(vec![path.to_owned()]);
        }
        let mut files: Vec<String> = std::fs::read_dir(&full)
            .map_err(|error| {
                Problem::new(format!("cannot list {path}: {error}"))
                    .at(entry.origin.location())
                    .label("unreadable")
            })?
            .filter_map(Result::ok)
            .filter(|item| item.file_type().is_ok_and(|kind| kind.is_file()))
            .filter_map(|item| item.file_name().into_string().ok())
            .filter(|name| {
                [".yaml", ".yml", ".json"]
                    .iter()
                    .any(|ext| name.ends_with(ext))
            })
            .map(|name| format!("{}/{name}", path.trim_end_matches('/')))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(
                Problem::new(format!("{path} holds no .yaml, .yml or .json file"))
                    .at(entry.origin.location())
                    .label("empty directory")
                    .help("add the objects' files, or remove the entry"),
            );
        }
        Ok(files)
    }

    #[expect(
        clippy::result_large_err,
        reason = "a problem is returned once per mistake, never in a hot path"
    )]
    fn read_config_volume(
        &self,
        dir: &str,
        entry: &Node,
    ) -> Result<BTreeMap<String, String>, Problem> {
        let relative = inside_project(dir, entry)?;
        let full = self.root.join(relative);
        let listing = std::fs::read_dir(&full).map_err(|error| {
            Problem::new(format!("config volume directory {dir}: {error}"))
                .at(entry.origin.location())
                .label("no such directory")
                .help("give a directory relative to the directory of tier.toml")
        })?;
        let mut files = BTreeMap::new();
        let mut total = 0u64;
        for item in listing.filter_map(Result::ok) {
            if !item.file_type().is_ok_and(|kind| kind.is_file()) {
                continue;
            }
            let Ok(name) = item.file_name().into_string() else {
                continue;
            };
            let text = self.read_named_file(&format!("{dir}/{name}"), entry)?;
            total += text.len() as u64;
            if total > MAX_FILE_BYTES {
                return Err(
                    Problem::new(format!("config volume {dir} holds more than 1 MiB"))
                        .at(entry.origin.location())
                        .label("too large")
                        .help("a ConfigMap holds at most 1 MiB: mount fewer or smaller files"),
                );
            }
            files.insert(name, text);
        }
        Ok(files)
    }
}

#[expect(
    clippy::result_large_err,
    reason = "a problem is returned once per mistake, never in a hot path"
)]
fn inside_project<'a>(path: &'a str, entry: &Node) -> Result<&'a Path, Problem> {
    let relative = Path::new(path);
    let escapes = relative
        .components()
        .any(|part| !matches!(part, Component::Normal(_) | Component::CurDir));
    if escapes || path.is_empty() {
        return Err(Problem::new(format!("`{path}` is outside the project"))
            .at(entry.origin.location())
            .label("not inside the project")
            .help("give a path relative to the directory of tier.toml, without `..`"));
    }
    Ok(relative)
}

/// A strategic merge patch names its object; a JSON patch is a list of operations with a
/// target (a service's patch defaults to its Deployment).
fn check_patch(
    file: &str,
    documents: &[serde_json::Value],
    target: Option<&str>,
    service: Option<&str>,
    entry: &Node,
    problems: &mut Vec<Problem>,
) {
    let at = entry.origin.location();
    if documents.is_empty() {
        problems.push(
            Problem::new(format!("patch {file} is empty"))
                .at(at)
                .label("empty patch")
                .help("write the fields to change, or remove the entry"),
        );
    }
    for document in documents {
        match document {
            serde_json::Value::Array(operations) => {
                if target.is_none() && service.is_none() {
                    problems.push(
                        Problem::new(format!("JSON patch {file} names no object to change"))
                            .at(at)
                            .label("no target")
                            .help(format!("write {{ file = \"{file}\", target = \"Deployment/<service>\" }}")),
                    );
                }
                if let Some(target) = target
                    && target.split_once('/').is_none_or(|(kind, name)| kind.is_empty() || name.is_empty())
                {
                    problems.push(
                        Problem::new(format!("patch target `{target}` is not Kind/name"))
                            .at(at)
                            .label("not Kind/name")
                            .help("write e.g. target = \"Deployment/frontend\""),
                    );
                }
                for (index, operation) in operations.iter().enumerate() {
                    let op = operation.get("op").and_then(serde_json::Value::as_str);
                    let known = matches!(
                        op,
                        Some("add" | "remove" | "replace" | "move" | "copy" | "test")
                    );
                    let path = operation.get("path").and_then(serde_json::Value::as_str);
                    if !known || path.is_none_or(|path| !path.is_empty() && !path.starts_with('/')) {
                        problems.push(
                            Problem::new(format!(
                                "JSON patch {file}: operation {index} is not an RFC 6902 operation"
                            ))
                            .at(at)
                            .label("bad operation")
                            .help("each operation needs op (add, remove, replace, move, copy or test) and a path starting with /"),
                        );
                    }
                }
            }
            serde_json::Value::Object(object) => {
                let kind = object.get("kind").and_then(serde_json::Value::as_str);
                let name = object
                    .get("metadata")
                    .and_then(|metadata| metadata.get("name"))
                    .and_then(serde_json::Value::as_str);
                if (kind.is_none() || name.is_none()) && target.is_none() && service.is_none() {
                    problems.push(
                        Problem::new(format!(
                            "patch {file} does not name its object: it needs kind and metadata.name"
                        ))
                        .at(at)
                        .label("which object?")
                        .help("start the patch with kind: Deployment and metadata: { name: <name> }"),
                    );
                }
            }
            _ => problems.push(
                Problem::new(format!(
                    "patch {file} is neither an object (strategic merge) nor a list of operations (JSON patch)"
                ))
                .at(at)
                .label("not a patch"),
            ),
        }
    }
}

/// Each extra object needs apiVersion, kind and metadata.name.
fn check_manifest(
    file: &str,
    documents: &[serde_json::Value],
    entry: &Node,
    problems: &mut Vec<Problem>,
) {
    for (index, document) in documents.iter().enumerate() {
        let text = |key: &str| document.get(key).and_then(serde_json::Value::as_str);
        let name = document
            .get("metadata")
            .and_then(|metadata| metadata.get("name"))
            .and_then(serde_json::Value::as_str);
        if text("apiVersion").is_none() || text("kind").is_none() || name.is_none() {
            problems.push(
                Problem::new(format!(
                    "{file}: document {} is not a Kubernetes object: it needs apiVersion, kind and metadata.name",
                    index + 1
                ))
                .at(entry.origin.location())
                .label("in this manifest")
                .help("write the object as kubectl apply would take it"),
            );
        }
    }
}
