//! Lockfile parsers: `Cargo.lock` (v1 to v4) and `package-lock.json` (v2 and v3), text in,
//! packages and edges out. Pure: the caller reads the files.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use semver::Version;
use serde::Deserialize;

use crate::error::{DepsError, Location};
use crate::inventory::{Ecosystem, LockedPackage, SourceKind};

/// Reads a `Cargo.lock`. Roots are the path packages named in `root_names` (the service's own
/// package) and every path package nothing else depends on (workspace members).
pub fn parse_cargo_lock(
    file: &Path,
    text: &str,
    root_names: &[String],
) -> Result<Vec<LockedPackage>, DepsError> {
    // Check the syntax first: the TOML parser says where the text stops being TOML.
    if let Err(error) = toml::from_str::<toml::Table>(text) {
        return Err(toml_error(file, text, error.span(), error.message()));
    }
    let lockfile: cargo_lock::Lockfile = text
        .parse()
        .map_err(|error: cargo_lock::Error| cargo_lock_error(file, text, &error))?;

    let all: Vec<&cargo_lock::Package> = lockfile
        .root
        .iter()
        .chain(lockfile.packages.iter())
        .collect();
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, package) in all.iter().enumerate() {
        by_name
            .entry(package.name.as_str())
            .or_default()
            .push(index);
    }

    let mut packages: Vec<LockedPackage> = all
        .iter()
        .map(|package| LockedPackage {
            ecosystem: Ecosystem::Cargo,
            name: package.name.as_str().to_owned(),
            version: package.version.clone(),
            source: match &package.source {
                None => SourceKind::Path,
                Some(source) if source.is_path() => SourceKind::Path,
                Some(source) if source.is_registry() => SourceKind::Registry,
                Some(source) if source.is_git() => SourceKind::Git,
                Some(_) => SourceKind::Other,
            },
            root: false,
            direct: false,
            dependencies: Vec::new(),
        })
        .collect();

    let mut depended_on = vec![false; all.len()];
    for (index, package) in all.iter().enumerate() {
        let mut dependencies = Vec::with_capacity(package.dependencies.len());
        for dependency in &package.dependencies {
            let target = by_name
                .get(dependency.name.as_str())
                .and_then(|candidates| {
                    candidates
                        .iter()
                        .copied()
                        .find(|&candidate| dependency.matches(all[candidate]))
                })
                .ok_or_else(|| {
                    let at = locate_package(file, text, package.name.as_str());
                    DepsError::parse(
                        at,
                        format!(
                            "`{} {}` depends on `{} {}`, which the lockfile does not list",
                            package.name, package.version, dependency.name, dependency.version
                        ),
                    )
                })?;
            depended_on[target] = true;
            dependencies.push(target);
        }
        dependencies.sort_unstable();
        dependencies.dedup();
        packages[index].dependencies = dependencies;
    }

    for (index, package) in packages.iter_mut().enumerate() {
        package.root = package.source == SourceKind::Path
            && (root_names.contains(&package.name) || !depended_on[index]);
    }
    mark_direct(&mut packages);
    Ok(packages)
}

/// Reads a `package-lock.json` of lockfile version 2 or 3 (its `packages` map). The root is
/// `packages[""]`; `node_modules/a/node_modules/b` entries nest, and a dependency resolves as
/// Node does, from the innermost `node_modules` outwards. Links (`"link": true`) take the
/// version and dependencies of the entry they point at.
pub fn parse_package_lock(file: &Path, text: &str) -> Result<Vec<LockedPackage>, DepsError> {
    let lock: PackageLock =
        serde_json::from_str(text).map_err(|error| DepsError::json(file, &error))?;
    let Some(entries) = lock.packages else {
        let version = lock
            .lockfile_version
            .map_or_else(|| "unknown".to_owned(), |version| version.to_string());
        return Err(DepsError::parse(
            Location::file(file),
            format!(
                "package-lock.json has no `packages` map (lockfileVersion {version}); \
                 only lockfile versions 2 and 3 are read: run `npm install --package-lock-only` \
                 with npm 7 or later"
            ),
        ));
    };

    // The nodes: the root, every installed package, and every link (as the package it links).
    struct Node<'a> {
        key: &'a str,
        /// Where its dependencies resolve from: its own key, or a link's target.
        base: &'a str,
        entry: &'a NpmEntry,
    }
    let mut nodes = Vec::new();
    let mut packages = Vec::new();
    for (key, entry) in &entries {
        let (base, content) = if entry.link {
            let Some(target) = entry.resolved.as_deref() else {
                continue;
            };
            match entries.get(target) {
                Some(content) => (target, content),
                None => continue,
            }
        } else if key.is_empty()
            || key.starts_with("node_modules/")
            || key.contains("/node_modules/")
        {
            (key.as_str(), entry)
        } else {
            // The target of a link (a workspace member, a `file:` dependency): seen through it.
            continue;
        };
        let root = key.is_empty();
        let version = match &content.version {
            Some(NpmVersion(version)) => version.clone(),
            None if root => Version::new(0, 0, 0),
            None => continue,
        };
        let name = match (&entry.name, &content.name) {
            (Some(name), _) if !entry.link => name.clone(),
            _ if root => content.name.clone().unwrap_or_else(|| "(root)".to_owned()),
            _ => installed_name(key).to_owned(),
        };
        let source = if entry.link || root {
            SourceKind::Path
        } else {
            match content.resolved.as_deref() {
                Some(resolved) if resolved.starts_with("git") => SourceKind::Git,
                Some(resolved) if resolved.starts_with("file:") => SourceKind::Path,
                Some(resolved) if resolved.starts_with("http") => SourceKind::Registry,
                Some(_) => SourceKind::Other,
                None => SourceKind::Registry,
            }
        };
        nodes.push(Node {
            key,
            base,
            entry: content,
        });
        packages.push(LockedPackage {
            ecosystem: Ecosystem::Npm,
            name,
            version,
            source,
            root,
            direct: false,
            dependencies: Vec::new(),
        });
    }

    let index_of: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(index, node)| (node.key, index))
        .collect();
    for (index, node) in nodes.iter().enumerate() {
        let with_dev =
            packages[index].root || entries.get(node.key).is_some_and(|entry| entry.link);
        let entry = node.entry;
        let names = entry
            .dependencies
            .keys()
            .chain(entry.optional_dependencies.keys())
            .chain(entry.peer_dependencies.keys())
            .chain(entry.dev_dependencies.keys().filter(|_| with_dev));
        let mut dependencies: Vec<usize> = names
            .filter_map(|name| resolve_npm(&index_of, node.base, name))
            .filter(|&target| target != index)
            .collect();
        dependencies.sort_unstable();
        dependencies.dedup();
        packages[index].dependencies = dependencies;
    }
    mark_direct(&mut packages);
    Ok(packages)
}

/// Marks every package a root depends on as direct.
pub(crate) fn mark_direct(packages: &mut [LockedPackage]) {
    let direct: Vec<usize> = packages
        .iter()
        .filter(|package| package.root)
        .flat_map(|package| package.dependencies.iter().copied())
        .collect();
    for index in direct {
        packages[index].direct = true;
    }
}

/// Finds where `name` is installed as seen from the package at `base`, as Node's resolution
/// does: `base/node_modules/name`, then the same from each enclosing `node_modules`.
fn resolve_npm(index_of: &HashMap<&str, usize>, base: &str, name: &str) -> Option<usize> {
    let mut base = Some(base);
    while let Some(current) = base {
        let candidate = if current.is_empty() {
            format!("node_modules/{name}")
        } else {
            format!("{current}/node_modules/{name}")
        };
        if let Some(&index) = index_of.get(candidate.as_str()) {
            return Some(index);
        }
        base = if current.is_empty() {
            None
        } else {
            Some(
                current
                    .rfind("/node_modules/")
                    .map_or("", |cut| &current[..cut]),
            )
        };
    }
    None
}

/// The package name an installed path stands for: what follows its last `node_modules/`.
fn installed_name(key: &str) -> &str {
    key.rfind("node_modules/")
        .map_or(key, |cut| &key[cut + "node_modules/".len()..])
}

#[derive(Deserialize)]
struct PackageLock {
    #[serde(rename = "lockfileVersion")]
    lockfile_version: Option<u64>,
    packages: Option<BTreeMap<String, NpmEntry>>,
}

#[derive(Deserialize)]
struct NpmEntry {
    name: Option<String>,
    version: Option<NpmVersion>,
    resolved: Option<String>,
    #[serde(default)]
    link: bool,
    #[serde(default)]
    dependencies: BTreeMap<String, String>,
    #[serde(default, rename = "optionalDependencies")]
    optional_dependencies: BTreeMap<String, String>,
    #[serde(default, rename = "peerDependencies")]
    peer_dependencies: BTreeMap<String, String>,
    #[serde(default, rename = "devDependencies")]
    dev_dependencies: BTreeMap<String, String>,
}

/// A version checked while the JSON is read, so a bad one is reported at its line.
struct NpmVersion(Version);

impl<'de> Deserialize<'de> for NpmVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Version::parse(&text)
            .map(NpmVersion)
            .map_err(|error| serde::de::Error::custom(format!("invalid version `{text}`: {error}")))
    }
}

/// A TOML error located by its span, or as the whole file when it has none.
pub(crate) fn toml_error(
    file: &Path,
    text: &str,
    span: Option<std::ops::Range<usize>>,
    message: &str,
) -> DepsError {
    let at = match span {
        Some(span) => Location::at_offset(file, text, span.start),
        None => Location::file(file),
    };
    DepsError::parse(at, format!("invalid TOML: {}", message.trim_end()))
}

/// cargo-lock reports TOML errors as text ("TOML parse error at line L, column C" followed by
/// a snippet and the message); this takes the location and the message back out of it.
fn cargo_lock_error(file: &Path, text: &str, error: &cargo_lock::Error) -> DepsError {
    let rendered = match error {
        cargo_lock::Error::Parse(message) => message.clone(),
        other => other.to_string(),
    };
    let mut at = Location::file(file);
    let mut message = rendered.trim().to_owned();
    if let Some(rest) = rendered.strip_prefix("TOML parse error at line ") {
        let mut numbers = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|part| !part.is_empty())
            .map(str::parse::<usize>);
        if let (Some(Ok(line)), Some(Ok(column))) = (numbers.next(), numbers.next()) {
            at.line = Some(line);
            at.column = Some(column);
        }
        if let Some(last) = rendered.lines().rev().find(|line| !line.trim().is_empty()) {
            message = last.trim().to_owned();
        }
    }
    let message = message
        .strip_prefix("parse error: ")
        .unwrap_or(&message)
        .to_owned();
    if at.line.is_none() {
        // Point at the line that mentions the name the message ends with, when there is one
        // ("couldn't resolve dependency: NAME").
        if let Some((_, name)) = message.rsplit_once(": ")
            && let Some(offset) = text.find(&format!("\"{name}"))
        {
            at = Location::at_offset(file, text, offset);
        }
    }
    DepsError::parse(at, format!("invalid Cargo.lock: {message}"))
}

/// The line of `name = "<package>"` in a lockfile, or the whole file.
fn locate_package(file: &Path, text: &str, package: &str) -> Location {
    let needle = format!("name = \"{package}\"");
    match text.find(&needle) {
        Some(offset) => Location::at_offset(file, text, offset),
        None => Location::file(file),
    }
}
