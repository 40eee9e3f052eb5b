//! `tier deps`: the libraries every service locks, across the whole project: scan, why,
//! outdated, conflicts, bump and release order.

use std::path::Path;

use console::style;
use serde_json::json;
use tier_deploy::deps::{Deployed, Sources, relative};
use tier_deps::scan::LibrarySource;
use tier_deps::{AffectedRange, DepsErrors, Inventory};
use tier_model::Project;

use super::local::project_root;
use super::{CommandResult, Exit, fail, fail_with, load, usage};
use crate::args::{DepsCommand, Global, Output};
use crate::output;

pub fn run(global: &Global, command: &DepsCommand) -> CommandResult {
    let project = load(global)?;
    let root = project_root(global);
    let sources = Sources::of(&project, &root);
    if sources.services.is_empty() {
        return Err(fail_with(
            "no service names its source: nothing to scan",
            "add source = \"services/<name>\" to a [services.<name>] table",
        ));
    }
    let inventory = || {
        let inventory = tier_deps::scan::scan(&sources.services, &sources.libraries)
            .map_err(|errors| report(&root, &errors))?;
        for service in inventory.services.iter().filter(|s| s.lockfiles.is_empty()) {
            let dir = sources
                .services
                .iter()
                .find(|source| source.name == service.name)
                .map_or_else(String::new, |source| relative(&root, &source.dir));
            output::warning(&format!(
                "service {}: its source {dir} has no Cargo.lock or package-lock.json, so none of its libraries are known; `cargo generate-lockfile` or `npm install --package-lock-only` there writes one",
                service.name
            ));
        }
        Ok::<_, Exit>(inventory)
    };
    match command {
        DepsCommand::Bump {
            library,
            version,
            dry_run,
        } => bump(
            global, &project, &root, &sources, library, version, *dry_run,
        ),
        DepsCommand::Order { library } => order(global, &sources.libraries, library.as_deref()),
        DepsCommand::Scan => scan(global, &inventory()?),
        DepsCommand::Why {
            library,
            affected,
            env,
        } => why(
            global,
            &inventory()?,
            library,
            affected.as_deref(),
            env.as_deref(),
        ),
        DepsCommand::Outdated => outdated(global, &inventory()?),
        DepsCommand::Conflicts { exit_code } => conflicts(global, &inventory()?, *exit_code),
    }
}

/// Every problem, each with its file and line.
fn report(root: &Path, errors: &DepsErrors) -> Exit {
    for error in &errors.0 {
        let place = match (error.file(), error.line()) {
            (Some(file), Some(line)) => format!("{}:{line}: ", relative(root, file)),
            (Some(file), None) => format!("{}: ", relative(root, file)),
            _ => String::new(),
        };
        output::error(&format!("{place}{error}"));
    }
    Exit::Failure
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
        if service.lockfiles.is_empty() {
            text.push_str(&format!("{}  no lockfile\n", style(&service.name).bold()));
            continue;
        }
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

fn why(
    global: &Global,
    inventory: &Inventory,
    library: &str,
    affected: Option<&str>,
    only: Option<&str>,
) -> CommandResult {
    let range = affected
        .map(AffectedRange::parse)
        .transpose()
        .map_err(usage)?;
    let mut workspace = super::workspace(global)?;
    let package = inventory
        .libraries
        .iter()
        .find(|candidate| candidate.name == library)
        .map_or(library, |candidate| candidate.package.as_str());
    let (deployed, unread) =
        tier_deploy::deps::deployed_versions(&mut workspace, package, range.as_ref(), only)
            .map_err(|error| match error.is_usage() {
                true => usage(error),
                false => fail(error),
            })?;
    for environment in &unread {
        output::error(&format!(
            "{}: not read: {}",
            environment.environment, environment.error
        ));
    }
    let report = tier_deps::why(inventory, library, range.as_ref()).map_err(fail)?;
    if global.output == Output::Json {
        let mut value = json!(report);
        let by_env: serde_json::Map<String, serde_json::Value> = deployed
            .iter()
            .map(|environment| (environment.environment.clone(), json!(environment)))
            .collect();
        if let Some(object) = value.as_object_mut() {
            object.insert("deployed".to_owned(), serde_json::Value::Object(by_env));
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
        let count = report.services.len();
        text.push_str(&format!(
            "{count} service{} depend{} on {library}\n",
            plural(count),
            if count == 1 { "s" } else { "" }
        ));
        for environment in &deployed {
            let services: Vec<String> = environment
                .services
                .iter()
                .map(|(service, versions)| {
                    let versions: Vec<&str> =
                        versions.iter().map(|used| used.version.as_str()).collect();
                    format!("{service} {}", versions.join(", "))
                })
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
    // What runs counts for the gate as much as what is locked.
    if report.any_affected || deployed.iter().any(Deployed::any_affected) {
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

fn conflicts(global: &Global, inventory: &Inventory, exit_code: bool) -> CommandResult {
    let found = tier_deps::conflicts(inventory);
    let none = found.diamonds.is_empty() && found.split_libraries.is_empty();
    let result = super::found_when(exit_code, !none);
    if global.output == Output::Json {
        output::json(&json!(found));
        return result;
    }
    if none {
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
    result
}

fn order(global: &Global, libraries: &[LibrarySource], library: Option<&str>) -> CommandResult {
    let read = libraries
        .iter()
        .map(tier_deps::scan::read_library)
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    let order = match library {
        Some(library) => tier_deps::release_order_from(&read, library),
        None => tier_deps::release_order(&read),
    }
    .map_err(fail)?;
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

fn bump(
    global: &Global,
    project: &Project,
    root: &Path,
    sources: &Sources,
    library: &str,
    version: &str,
    dry_run: bool,
) -> CommandResult {
    let version = semver::Version::parse(version)
        .map_err(|_| usage(format!("`{version}` is not a version: write it as 1.4.3")))?;
    let package = sources.package_of(library);
    let manifests = tier_deps::scan::read_manifests(&sources.services)
        .map_err(|errors| report(root, &errors))?;
    let edits =
        tier_deps::bump(&manifests, &package, &version).map_err(|errors| report(root, &errors))?;
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
    let results =
        tier_deploy::deps::carry_out_bump(project, root, &package, &edits).map_err(fail)?;
    if global.output == Output::Json {
        output::json(&json!(results));
    } else {
        let mut rows = vec![
            ["SERVICE", "FILE", "MAJOR", "LOCKFILE", "TEST"]
                .map(str::to_owned)
                .to_vec(),
        ];
        for result in &results {
            let test = match result.passed {
                true => style(&result.test).green(),
                false => style(&result.test).red(),
            };
            rows.push(vec![
                result.service.clone(),
                result.file.clone(),
                (if result.crosses_major { "yes" } else { "no" }).to_owned(),
                result.lockfile.clone(),
                test.to_string(),
            ]);
        }
        let mut text = super::inspect::columns(&rows);
        for result in &results {
            if result.restored {
                text.push_str(&format!(
                    "\n{}: not bumped, {} is as it was ({}){}\n",
                    style(&result.service).bold(),
                    result.file,
                    result.lockfile,
                    if result.output.is_empty() { "" } else { ":" }
                ));
            } else if !result.output.is_empty() {
                text.push_str(&format!(
                    "\n{}: its test {}:\n",
                    style(&result.service).bold(),
                    result.test
                ));
            }
            for line in &result.output {
                text.push_str(&format!("  {line}\n"));
            }
        }
        output::stdout(&text);
    }
    if results.iter().all(|result| result.passed) {
        Ok(())
    } else {
        Err(Exit::Failure)
    }
}
