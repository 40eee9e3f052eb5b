//! `tier deps`: the libraries every service locks, across the whole project: scan, why,
//! outdated, conflicts, bump and release order.

use std::path::{Path, PathBuf};

use console::style;
use serde_json::json;
use tier_deps::scan::{LibrarySource, ServiceSource};
use tier_deps::{AffectedRange, DepsErrors, Inventory};
use tier_model::Project;
use tier_model::tree::Node;

use super::local::project_root;
use super::{CommandResult, Exit, load};
use crate::args::{DepsCommand, Global, Output};
use crate::output;

pub fn run(global: &Global, command: &DepsCommand) -> CommandResult {
    let project = load(global)?;
    let root = project_root(global);
    let (services, libraries) = sources(&project, &root);
    if services.is_empty() {
        output::error("no service names its source: nothing to scan");
        output::hint("add source = \"services/<name>\" to a [services.<name>] table");
        return Err(Exit::Failure);
    }
    match command {
        DepsCommand::Bump {
            library,
            version,
            dry_run,
        } => bump(
            global, &project, &root, &services, &libraries, library, version, *dry_run,
        ),
        DepsCommand::Order { library } => order(global, &libraries, library.as_deref()),
        _ => {
            let inventory = match tier_deps::scan::scan(&services, &libraries) {
                Ok(inventory) => inventory,
                Err(errors) => return report(&root, &errors),
            };
            match command {
                DepsCommand::Scan => scan(global, &inventory),
                DepsCommand::Why {
                    library,
                    affected,
                    env,
                } => {
                    let deployed = deployed_versions(global, library, &inventory, env.as_deref())?;
                    why(global, &inventory, library, affected.as_deref(), &deployed)
                }
                DepsCommand::Outdated => outdated(global, &inventory),
                DepsCommand::Conflicts => conflicts(global, &inventory),
                DepsCommand::Bump { .. } | DepsCommand::Order { .. } => Ok(()),
            }
        }
    }
}

/// Services with a `source`, and `[libraries]`, as written in tier.toml.
fn sources(project: &Project, root: &Path) -> (Vec<ServiceSource>, Vec<LibrarySource>) {
    let table = |key: &str| {
        project
            .file
            .get(key)
            .and_then(Node::as_table)
            .map(|table| {
                table
                    .iter()
                    .map(|(name, node)| (name.clone(), node.clone()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let services = table("services")
        .into_iter()
        .filter_map(|(name, node)| {
            let source = node.get("source").and_then(Node::as_str)?;
            Some(ServiceSource {
                name,
                dir: root.join(source),
            })
        })
        .collect();
    let libraries = table("libraries")
        .into_iter()
        .filter_map(|(name, node)| {
            let path = node.get("path").and_then(Node::as_str)?;
            Some(LibrarySource {
                name,
                path: root.join(path),
            })
        })
        .collect();
    (services, libraries)
}

/// Every problem, each with its file and line.
fn report(root: &Path, errors: &DepsErrors) -> CommandResult {
    for error in &errors.0 {
        let place = match (error.file(), error.line()) {
            (Some(file), Some(line)) => format!("{}:{line}: ", relative(root, file)),
            (Some(file), None) => format!("{}: ", relative(root, file)),
            _ => String::new(),
        };
        output::error(&format!("{place}{error}"));
    }
    Err(Exit::Failure)
}

fn relative(root: &Path, file: &Path) -> String {
    file.strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string()
}

fn scan(global: &Global, inventory: &Inventory) -> CommandResult {
    if global.output == Output::Json {
        output::json(&json!(inventory));
        return Ok(());
    }
    let mut text = String::new();
    for service in &inventory.services {
        let direct: Vec<String> = service
            .packages
            .iter()
            .filter(|package| package.direct && !package.root)
            .map(|package| format!("{}@{}", package.name, package.version))
            .collect();
        let locked = service
            .packages
            .iter()
            .filter(|package| !package.root)
            .count();
        text.push_str(&format!(
            "{}  {locked} locked, {} direct\n",
            style(&service.name).bold(),
            direct.len()
        ));
        for name in direct {
            text.push_str(&format!("  {name}\n"));
        }
    }
    for library in &inventory.libraries {
        text.push_str(&format!(
            "library {} {} ({})\n",
            library.name,
            library.version,
            library.manifest.display()
        ));
    }
    output::stdout(&text);
    Ok(())
}

/// A library's version deployed in an environment, by service, from the bill of materials its
/// deployed revision recorded.
struct Deployed {
    environment: String,
    revision: u64,
    versions: std::collections::BTreeMap<String, Vec<String>>,
}

/// The deployed versions of `library` in every environment (or the one named) that has a
/// deployed revision with a bill of materials, read from each environment's records (its
/// state file, or its cluster; a cluster that cannot be reached is named and skipped).
fn deployed_versions(
    global: &Global,
    library: &str,
    inventory: &Inventory,
    only: Option<&str>,
) -> Result<Vec<Deployed>, Exit> {
    let mut workspace = super::workspace(global)?;
    if let Some(env) = only
        && workspace.project().environment(env).is_none()
    {
        output::error(&workspace.project().unknown_environment(env));
        return Err(Exit::Usage);
    }
    let package = inventory
        .libraries
        .iter()
        .find(|candidate| candidate.name == library)
        .map_or(library, |candidate| candidate.package.as_str());
    let environments: Vec<String> = workspace
        .project()
        .environments
        .iter()
        .filter(|decl| !decl.is_abstract && only.is_none_or(|env| env == decl.name))
        .map(|decl| decl.name.clone())
        .collect();
    let mut found = Vec::new();
    for env in environments {
        let local = workspace.resolve(&env, &[]).map_or(true, |resolved| {
            resolved.environment.runtime == tier_model::environment::Runtime::Local
        });
        let file = tier_local::paths::EnvDir::new(workspace.root(), &env)
            .root()
            .join("state.redb");
        if local && !file.exists() {
            continue;
        }
        let records = match tier_deploy::records(&mut workspace, &env, Default::default()) {
            Ok(records) => records,
            Err(error) => {
                output::error(&format!("{env}: not read: {error}"));
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
        let Ok(bom) = tier_deploy::BillOfMaterials::from_value(&revision.bom) else {
            continue;
        };
        let versions = bom.versions_of(package);
        found.push(Deployed {
            environment: env.clone(),
            revision: revision.number,
            versions,
        });
    }
    Ok(found)
}

fn why(
    global: &Global,
    inventory: &Inventory,
    library: &str,
    affected: Option<&str>,
    deployed: &[Deployed],
) -> CommandResult {
    let range = match affected.map(AffectedRange::parse).transpose() {
        Ok(range) => range,
        Err(error) => {
            output::error(&error.to_string());
            return Err(Exit::Usage);
        }
    };
    let report = match tier_deps::why(inventory, library, range.as_ref()) {
        Ok(report) => report,
        Err(error) => {
            output::error(&error.to_string());
            return Err(Exit::Failure);
        }
    };
    // Deployed versions count for the gate too: what runs matters more than what is locked.
    let mut deployed_affected = false;
    let mut environments = serde_json::Map::new();
    for environment in deployed {
        let mut services = serde_json::Map::new();
        for (service, versions) in &environment.versions {
            let mut entries = Vec::new();
            for version in versions {
                let inside = match (&range, semver::Version::parse(version)) {
                    (Some(range), Ok(parsed)) => range
                        .contains(tier_deps::Ecosystem::Cargo, &parsed)
                        .or_else(|_| range.contains(tier_deps::Ecosystem::Npm, &parsed))
                        .ok(),
                    _ => None,
                };
                deployed_affected |= inside == Some(true);
                entries.push(json!({ "version": version, "affected": inside }));
            }
            services.insert(service.clone(), json!(entries));
        }
        environments.insert(
            environment.environment.clone(),
            json!({ "revision": environment.revision, "services": services }),
        );
    }
    if global.output == Output::Json {
        let mut value = json!(report);
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "deployed".to_owned(),
                serde_json::Value::Object(environments),
            );
        }
        output::json(&value);
    } else if report.services.is_empty() && deployed.is_empty() {
        output::stdout_line(&format!("no service depends on {library}"));
    } else {
        let mut text = String::new();
        for service in &report.services {
            for used in &service.uses {
                let mark = match used.affected {
                    Some(true) => format!(" {}", style("affected").red().bold()),
                    Some(false) => format!(" {}", style("not affected").green()),
                    None => String::new(),
                };
                text.push_str(&format!(
                    "{} {library}@{} ({}){mark}\n",
                    style(&service.service).bold(),
                    used.version,
                    if used.direct { "direct" } else { "transitive" }
                ));
                for chain in &used.chains {
                    text.push_str(&format!("  {}\n", chain.join(" → ")));
                }
                if used.more_chains > 0 {
                    text.push_str(&format!("  … and {} more paths\n", used.more_chains));
                }
            }
        }
        text.push_str(&format!(
            "{} service{} depend{} on {library}\n",
            report.services.len(),
            plural(report.services.len()),
            if report.services.len() == 1 { "s" } else { "" }
        ));
        for environment in deployed {
            let services: Vec<String> = environment
                .versions
                .iter()
                .map(|(service, versions)| format!("{service} {}", versions.join(", ")))
                .collect();
            text.push_str(&format!(
                "deployed in {} (revision {}): {}\n",
                environment.environment,
                environment.revision,
                if services.is_empty() {
                    "not used".to_owned()
                } else {
                    services.join("; ")
                }
            ));
        }
        output::stdout(&text);
    }
    if report.any_affected || deployed_affected {
        Err(Exit::Failure)
    } else {
        Ok(())
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

fn outdated(global: &Global, inventory: &Inventory) -> CommandResult {
    let found = tier_deps::outdated(inventory);
    if global.output == Output::Json {
        output::json(&json!(found));
        return Ok(());
    }
    if found.is_empty() {
        output::stdout_line("every service locks the newest version known in the project");
        return Ok(());
    }
    let mut rows = vec![
        ["SERVICE", "PACKAGE", "LOCKED", "NEWEST", "UPDATE", "KIND"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for package in &found {
        rows.push(vec![
            package.service.clone(),
            package.name.clone(),
            package.locked.to_string(),
            package.newest.to_string(),
            format!("{:?}", package.kind).to_lowercase(),
            if package.internal {
                "internal library".to_owned()
            } else {
                "external".to_owned()
            },
        ]);
    }
    output::stdout(&super::inspect::columns(&rows));
    Ok(())
}

fn conflicts(global: &Global, inventory: &Inventory) -> CommandResult {
    let found = tier_deps::conflicts(inventory);
    if global.output == Output::Json {
        output::json(&json!(found));
        return Ok(());
    }
    if found.diamonds.is_empty() && found.split_libraries.is_empty() {
        output::stdout_line("no conflicts: no service locks one library at incompatible versions");
        return Ok(());
    }
    let mut text = String::new();
    for diamond in &found.diamonds {
        text.push_str(&format!(
            "{} locks {} at incompatible versions:\n",
            style(&diamond.service).bold(),
            diamond.name
        ));
        for side in &diamond.sides {
            text.push_str(&format!("  {}\n", side.version));
            for chain in &side.chains {
                text.push_str(&format!("    {}\n", chain.join(" → ")));
            }
        }
    }
    for split in &found.split_libraries {
        text.push_str(&format!(
            "library {} (now {}) is used at different major versions:\n",
            style(&split.library).bold(),
            split.current
        ));
        for group in &split.groups {
            let services: Vec<String> = group
                .services
                .iter()
                .map(|used| format!("{} ({})", used.service, used.version))
                .collect();
            text.push_str(&format!("  {}: {}\n", group.class, services.join(", ")));
        }
    }
    output::stdout(&text);
    Ok(())
}

fn order(global: &Global, libraries: &[LibrarySource], library: Option<&str>) -> CommandResult {
    let mut read = Vec::new();
    for source in libraries {
        match tier_deps::scan::read_library(source) {
            Ok(library) => read.push(library),
            Err(error) => {
                output::error(&error.to_string());
                return Err(Exit::Failure);
            }
        }
    }
    let order = match library {
        Some(library) => tier_deps::release_order_from(&read, library),
        None => tier_deps::release_order(&read),
    };
    match order {
        Ok(order) => {
            if global.output == Output::Json {
                output::json(&json!(order));
            } else {
                let lines: Vec<String> = order
                    .iter()
                    .enumerate()
                    .map(|(at, name)| format!("{}. {name}", at + 1))
                    .collect();
                output::stdout_line(&lines.join("\n"));
            }
            Ok(())
        }
        Err(error) => {
            output::error(&error.to_string());
            Err(Exit::Failure)
        }
    }
}

/// One service's result of a bump.
struct Bumped {
    service: String,
    file: PathBuf,
    crosses_major: bool,
    lockfile: String,
    test: String,
    passed: bool,
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site, every argument distinct"
)]
fn bump(
    global: &Global,
    project: &Project,
    root: &Path,
    services: &[ServiceSource],
    libraries: &[LibrarySource],
    library: &str,
    version: &str,
    dry_run: bool,
) -> CommandResult {
    let Ok(version) = semver::Version::parse(version) else {
        output::error(&format!("`{version}` is not a version: write it as 1.4.3"));
        return Err(Exit::Usage);
    };
    let package = libraries
        .iter()
        .find(|source| source.name == library)
        .and_then(|source| tier_deps::scan::read_library(source).ok())
        .map_or_else(|| library.to_owned(), |library| library.package);
    let manifests = match tier_deps::scan::read_manifests(services) {
        Ok(manifests) => manifests,
        Err(errors) => return report(root, &errors),
    };
    let edits = match tier_deps::bump(&manifests, &package, &version) {
        Ok(edits) => edits,
        Err(errors) => return report(root, &errors),
    };
    if edits.is_empty() {
        output::stdout_line(&format!(
            "no service requires {package} at another version than {version}"
        ));
        return Ok(());
    }
    if dry_run {
        if global.output == Output::Json {
            output::json(&json!(edits));
            return Ok(());
        }
        let mut text = String::new();
        for edit in &edits {
            let name = relative(root, &edit.file);
            let diff = similar::TextDiff::from_lines(&edit.before, &edit.after);
            text.push_str(
                &diff
                    .unified_diff()
                    .header(&format!("a/{name}"), &format!("b/{name}"))
                    .to_string(),
            );
            if edit.crosses_major {
                text.push_str(&format!(
                    "{} {}: crosses a major version\n",
                    style("note:").yellow(),
                    edit.service
                ));
            }
        }
        output::stdout(&text);
        return Ok(());
    }
    let tests: std::collections::BTreeMap<String, String> = project
        .file
        .get("services")
        .and_then(Node::as_table)
        .map(|services| {
            services
                .iter()
                .filter_map(|(name, node)| {
                    Some((
                        name.clone(),
                        node.get("test").and_then(Node::as_str)?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut results = Vec::new();
    for edit in &edits {
        if let Err(error) = tier_local::paths::write_atomic(&edit.file, edit.after.as_bytes()) {
            output::error(&format!("cannot write {}: {error}", edit.file.display()));
            return Err(Exit::Failure);
        }
        let dir = edit.file.parent().unwrap_or(root).to_path_buf();
        let is_npm = edit
            .file
            .file_name()
            .is_some_and(|name| name == "package.json");
        let lockfile = refresh_lockfile(&dir, &package, is_npm);
        let (test, passed) = match tests.get(&edit.service) {
            None => ("no test".to_owned(), true),
            Some(command) => match tier_local::spawn::run_to_end("sh", &["-c", command], &dir) {
                Ok(output) if output.status.success() => ("passed".to_owned(), true),
                Ok(output) => (format!("failed ({})", output.status), false),
                Err(error) => (format!("could not run: {error}"), false),
            },
        };
        let passed = passed && !lockfile.contains("failed");
        results.push(Bumped {
            service: edit.service.clone(),
            file: edit.file.clone(),
            crosses_major: edit.crosses_major,
            lockfile,
            test,
            passed,
        });
    }
    let all_passed = results.iter().all(|result| result.passed);
    if global.output == Output::Json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|result| {
                json!({
                    "service": result.service,
                    "file": relative(root, &result.file),
                    "crosses_major": result.crosses_major,
                    "lockfile": result.lockfile,
                    "test": result.test,
                    "passed": result.passed,
                })
            })
            .collect();
        output::json(&json!(rows));
    } else {
        let mut rows = vec![
            ["SERVICE", "FILE", "MAJOR", "LOCKFILE", "TEST"]
                .map(str::to_owned)
                .to_vec(),
        ];
        for result in &results {
            rows.push(vec![
                result.service.clone(),
                relative(root, &result.file),
                if result.crosses_major {
                    "yes".to_owned()
                } else {
                    "no".to_owned()
                },
                result.lockfile.clone(),
                if result.passed {
                    style(&result.test).green().to_string()
                } else {
                    style(&result.test).red().to_string()
                },
            ]);
        }
        output::stdout(&super::inspect::columns(&rows));
    }
    if all_passed {
        Ok(())
    } else {
        Err(Exit::Failure)
    }
}

/// Brings a service's lockfile in line with its edited manifest, when the tool is here.
fn refresh_lockfile(dir: &Path, package: &str, is_npm: bool) -> String {
    let (tool, args): (&str, Vec<&str>) = if is_npm {
        (
            "npm",
            vec!["install", "--package-lock-only", "--ignore-scripts"],
        )
    } else {
        ("cargo", vec!["update", "-p", package])
    };
    if !tier_local::spawn::on_path(tool) {
        return format!("not refreshed ({tool} is not installed)");
    }
    // Offline first: every package but the bumped one is usually cached already.
    if !is_npm {
        let mut offline = args.clone();
        offline.push("--offline");
        if tier_local::spawn::run_to_end(tool, &offline, dir)
            .is_ok_and(|output| output.status.success())
        {
            return "refreshed".to_owned();
        }
    }
    match tier_local::spawn::run_to_end(tool, &args, dir) {
        Ok(output) if output.status.success() => "refreshed".to_owned(),
        Ok(output) => {
            let why = String::from_utf8_lossy(&output.stderr);
            // cargo and npm say what went wrong on their first error line.
            let line = why
                .lines()
                .find(|line| line.trim_start().starts_with("error") || line.contains("ERR!"))
                .or_else(|| why.lines().rev().find(|line| !line.trim().is_empty()))
                .unwrap_or("failed")
                .trim();
            format!("{tool} failed: {line}")
        }
        Err(error) => format!("could not run {tool}: {error}"),
    }
}
