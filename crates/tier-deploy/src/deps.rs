//! `tier deps` where it meets the project and its environments: which services and libraries
//! the project names, which version of a library each environment's deployed revision runs,
//! and a bump carried out (manifests written, lockfiles refreshed, each service's test run).
//! Reading lockfiles and working out edits is tier-deps'; this module does what touches
//! files, state and child processes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tier_deps::scan::{LibrarySource, ServiceSource};
use tier_deps::{AffectedRange, Ecosystem, Edit};
use tier_model::Project;
use tier_model::tree::Node;

use crate::{DeployError, Workspace};

/// The services with a `source`, and the `[libraries]`, as written in tier.toml.
pub struct Sources {
    pub services: Vec<ServiceSource>,
    pub libraries: Vec<LibrarySource>,
}

impl Sources {
    pub fn of(project: &Project, root: &Path) -> Sources {
        let entries = |table: &str, key: &str| -> Vec<(String, PathBuf)> {
            project
                .file
                .get(table)
                .and_then(Node::as_table)
                .into_iter()
                .flatten()
                .filter_map(|(name, node)| {
                    let path = node.get(key).and_then(Node::as_str)?;
                    Some((name.clone(), root.join(path)))
                })
                .collect()
        };
        Sources {
            services: entries("services", "source")
                .into_iter()
                .map(|(name, dir)| ServiceSource { name, dir })
                .collect(),
            libraries: entries("libraries", "path")
                .into_iter()
                .map(|(name, path)| LibrarySource { name, path })
                .collect(),
        }
    }

    /// The package a library is published as (its manifest's name), or `library` itself when
    /// the project declares no such library.
    pub fn package_of(&self, library: &str) -> String {
        self.libraries
            .iter()
            .find(|source| source.name == library)
            .and_then(|source| tier_deps::scan::read_library(source).ok())
            .map_or_else(|| library.to_owned(), |library| library.package)
    }
}

/// The versions of one package an environment's deployed revision runs, by service, from the
/// bill of materials the revision recorded.
#[derive(Debug, Serialize)]
pub struct Deployed {
    #[serde(skip)]
    pub environment: String,
    pub revision: u64,
    pub services: BTreeMap<String, Vec<DeployedVersion>>,
}

#[derive(Debug, Serialize)]
pub struct DeployedVersion {
    pub version: String,
    /// Whether the version falls in the affected range; `None` without a range, or for a
    /// version that is not SemVer.
    pub affected: Option<bool>,
}

/// An environment whose records could not be read (a cluster out of reach); the others are
/// still answered.
pub struct Unread {
    pub environment: String,
    pub error: DeployError,
}

/// The versions of `package` deployed in every environment (or the one named) that has a
/// deployed revision with a bill of materials, judged against `range`. A local environment
/// that never ran has no state file and is skipped without creating one.
pub fn deployed_versions(
    workspace: &mut Workspace,
    package: &str,
    range: Option<&AffectedRange>,
    only: Option<&str>,
) -> Result<(Vec<Deployed>, Vec<Unread>), DeployError> {
    if let Some(env) = only {
        workspace.known(env)?;
    }
    let environments: Vec<String> = workspace
        .project()
        .environments
        .iter()
        .filter(|decl| !decl.is_abstract && only.is_none_or(|env| env == decl.name))
        .map(|decl| decl.name.clone())
        .collect();
    let (mut found, mut unread) = (Vec::new(), Vec::new());
    for env in environments {
        let local = workspace.resolve(&env, &[]).map_or(true, |resolved| {
            resolved.environment.runtime == tier_model::environment::Runtime::Local
        });
        let file = tier_state::paths::EnvDir::new(workspace.root(), &env).state();
        if local && !file.exists() {
            continue;
        }
        let records = match crate::records(workspace, &env, Default::default()) {
            Ok(records) => records,
            Err(error) => {
                unread.push(Unread {
                    environment: env,
                    error,
                });
                continue;
            }
        };
        let Ok(Some(revision)) = records.deployed() else {
            continue;
        };
        // A revision recorded before bills of materials existed has none.
        if !revision.bom.is_object() {
            continue;
        }
        let Ok(bom) = crate::BillOfMaterials::from_value(&revision.bom) else {
            continue;
        };
        let services = bom
            .versions_of(package)
            .into_iter()
            .map(|(service, versions)| {
                let judged = versions
                    .into_iter()
                    .map(|version| DeployedVersion {
                        affected: range.and_then(|range| inside(range, &version)),
                        version,
                    })
                    .collect();
                (service, judged)
            })
            .collect();
        found.push(Deployed {
            environment: env,
            revision: revision.number,
            services,
        });
    }
    Ok((found, unread))
}

impl Deployed {
    pub fn any_affected(&self) -> bool {
        self.services
            .values()
            .flatten()
            .any(|version| version.affected == Some(true))
    }
}

/// A recorded version against a range, read as a Cargo requirement or else an npm one.
fn inside(range: &AffectedRange, version: &str) -> Option<bool> {
    let parsed = semver::Version::parse(version).ok()?;
    range
        .contains(Ecosystem::Cargo, &parsed)
        .or_else(|_| range.contains(Ecosystem::Npm, &parsed))
        .ok()
}

/// One service's result of a bump carried out.
#[derive(Debug, Serialize)]
pub struct Bumped {
    pub service: String,
    /// The edited manifest, relative to the project root.
    pub file: String,
    pub crosses_major: bool,
    /// `refreshed`, `no lockfile`, or why the lockfile was not refreshed.
    pub lockfile: String,
    /// `passed`, `no test`, `not run`, or how the service's `test` command failed.
    pub test: String,
    pub passed: bool,
    /// The manifest and lockfile were put back as they were: the lockfile could not follow
    /// the manifest, so the service is not bumped at all.
    pub restored: bool,
    /// What the lockfile's tool or the test printed when it failed, trimmed to its error lines.
    pub output: Vec<String>,
}

/// For each edit: writes the manifest, refreshes the service's lockfile, and runs the
/// service's `test` command (from tier.toml) in its directory. A bump is all or nothing per
/// service: when the lockfile cannot be refreshed (its tool fails or is not installed), the
/// manifest and lockfile are written back as they were.
pub fn carry_out_bump(
    project: &Project,
    root: &Path,
    package: &str,
    edits: &[Edit],
) -> Result<Vec<Bumped>, DeployError> {
    let tests: BTreeMap<String, String> = project
        .file
        .get("services")
        .and_then(Node::as_table)
        .into_iter()
        .flatten()
        .filter_map(|(name, node)| {
            let test = node.get("test").and_then(Node::as_str)?;
            Some((name.clone(), test.to_owned()))
        })
        .collect();
    let mut results = Vec::new();
    for edit in edits {
        let dir = edit.file.parent().unwrap_or(root);
        let is_npm = edit
            .file
            .file_name()
            .is_some_and(|name| name == "package.json");
        let lockfile = match is_npm {
            true => dir.join("package-lock.json"),
            false => tier_deps::scan::cargo_lockfile(dir).unwrap_or_else(|| dir.join("Cargo.lock")),
        };
        let locked_before = std::fs::read(&lockfile).ok();
        write(&edit.file, edit.after.as_bytes())?;
        let refresh = match &locked_before {
            None => Ok("no lockfile".to_owned()),
            Some(_) => refresh_lockfile(dir, package, is_npm),
        };
        let mut result = Bumped {
            service: edit.service.clone(),
            file: relative(root, &edit.file),
            crosses_major: edit.crosses_major,
            lockfile: String::new(),
            test: String::new(),
            passed: false,
            restored: false,
            output: Vec::new(),
        };
        match refresh {
            Err(failure) => {
                write(&edit.file, edit.before.as_bytes())?;
                if let Some(before) = &locked_before {
                    write(&lockfile, before)?;
                }
                result.lockfile = failure.summary;
                result.output = failure.lines;
                result.test = "not run".to_owned();
                result.restored = true;
            }
            Ok(refreshed) => {
                result.lockfile = refreshed;
                match tests.get(&edit.service) {
                    None => {
                        result.test = "no test".to_owned();
                        result.passed = true;
                    }
                    Some(command) => {
                        match tier_local::spawn::run_to_end("sh", &["-c", command], dir) {
                            Ok(output) if output.status.success() => {
                                result.test = "passed".to_owned();
                                result.passed = true;
                            }
                            Ok(output) => {
                                result.test = format!("failed ({})", output.status);
                                result.output = last_lines(&output, 20);
                            }
                            Err(error) => result.test = format!("could not run: {error}"),
                        }
                    }
                }
            }
        }
        results.push(result);
    }
    Ok(results)
}

fn write(file: &Path, contents: &[u8]) -> Result<(), DeployError> {
    tier_state::paths::write_atomic(file, contents).map_err(|error| DeployError::Refused {
        message: format!("cannot write {}: {error}", file.display()),
        hint: None,
    })
}

/// A path as the user would write it from the project root.
pub fn relative(root: &Path, file: &Path) -> String {
    file.strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string()
}

/// Why a lockfile could not follow its manifest: a line for the table, and the tool's own
/// error lines.
struct RefreshFailure {
    summary: String,
    lines: Vec<String>,
}

/// Brings a service's lockfile in line with its edited manifest.
fn refresh_lockfile(dir: &Path, package: &str, is_npm: bool) -> Result<String, RefreshFailure> {
    let (tool, args): (&str, Vec<&str>) = if is_npm {
        (
            "npm",
            vec!["install", "--package-lock-only", "--ignore-scripts"],
        )
    } else {
        ("cargo", vec!["update", "-p", package])
    };
    if !tier_local::spawn::on_path(tool) {
        return Err(RefreshFailure {
            summary: format!("not refreshed: {tool} is not installed"),
            lines: Vec::new(),
        });
    }
    // Offline first: every package but the bumped one is usually cached already.
    if !is_npm {
        let mut offline = args.clone();
        offline.push("--offline");
        if tier_local::spawn::run_to_end(tool, &offline, dir)
            .is_ok_and(|output| output.status.success())
        {
            return Ok("refreshed".to_owned());
        }
    }
    match tier_local::spawn::run_to_end(tool, &args, dir) {
        Ok(output) if output.status.success() => Ok("refreshed".to_owned()),
        Ok(output) => Err(RefreshFailure {
            summary: format!("{tool} failed"),
            lines: error_lines(&String::from_utf8_lossy(&output.stderr)),
        }),
        Err(error) => Err(RefreshFailure {
            summary: format!("could not run {tool}: {error}"),
            lines: Vec::new(),
        }),
    }
}

/// The lines of a tool's error output worth reading: cargo's from its first `error` on (with
/// the `Caused by:` chain), npm's `npm error` lines without the pointer to its debug log.
fn error_lines(stderr: &str) -> Vec<String> {
    let lines: Vec<&str> = stderr.lines().collect();
    let first_error = lines
        .iter()
        .position(|line| line.trim_start().starts_with("error") || line.contains("npm error"));
    let mut kept: Vec<String> = lines[first_error.unwrap_or(0)..]
        .iter()
        .filter(|line| !line.trim().is_empty())
        .filter(|line| !line.contains("A complete log of this run can be found in"))
        .filter(|line| !(line.contains("npm error") && line.trim_end().ends_with("-debug-0.log")))
        .map(|line| line.trim_end().to_owned())
        .collect();
    kept.truncate(30);
    kept
}

/// The last lines a failed test printed, stdout then stderr.
fn last_lines(output: &std::process::Output, count: usize) -> Vec<String> {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<String> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.trim_end().to_owned())
        .collect();
    lines[lines.len().saturating_sub(count)..].to_vec()
}
