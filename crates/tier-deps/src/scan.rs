//! The IO edge: reads each service's lockfiles and each library's manifest from disk.

use std::path::{Path, PathBuf};

use crate::bump::ManifestText;
use crate::error::{DepsError, DepsErrors, Location};
use crate::inventory::{Inventory, Library, ServiceInventory};
use crate::lockfile::{parse_cargo_lock, parse_package_lock};
use crate::manifest::{parse_cargo_manifest, parse_package_json};

/// A service and the directory of its source code (`source = "..."`).
#[derive(Debug, Clone)]
pub struct ServiceSource {
    pub name: String,
    pub dir: PathBuf,
}

/// An internal library and its directory (`[libraries.<name>] path = "..."`).
#[derive(Debug, Clone)]
pub struct LibrarySource {
    pub name: String,
    pub path: PathBuf,
}

/// Reads every service's `Cargo.lock` and `package-lock.json` and every library's manifest.
/// All problems are collected and returned together.
pub fn scan(
    services: &[ServiceSource],
    libraries: &[LibrarySource],
) -> Result<Inventory, DepsErrors> {
    let mut inventory = Inventory::default();
    let mut errors = Vec::new();
    for service in services {
        match scan_service(service) {
            Ok(scanned) => inventory.services.push(scanned),
            Err(error) => errors.push(error),
        }
    }
    for library in libraries {
        match read_library(library) {
            Ok(read) => inventory.libraries.push(read),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(inventory)
    } else {
        Err(DepsErrors(errors))
    }
}

/// Reads one service's lockfiles (whichever of `Cargo.lock` and `package-lock.json` exist).
pub fn scan_service(service: &ServiceSource) -> Result<ServiceInventory, DepsError> {
    if let Err(source) = std::fs::read_dir(&service.dir) {
        return Err(DepsError::Read {
            file: service.dir.clone(),
            source,
        });
    }
    let mut scanned = ServiceInventory {
        name: service.name.clone(),
        lockfiles: Vec::new(),
        packages: Vec::new(),
    };

    if let Some(cargo_lock) = cargo_lockfile(&service.dir)
        && let Some(text) = read_if_present(&cargo_lock)?
    {
        let manifest_file = service.dir.join("Cargo.toml");
        let root_names: Vec<String> = match read_if_present(&manifest_file)? {
            Some(manifest) => parse_cargo_manifest(&manifest_file, &manifest)?
                .name
                .into_iter()
                .collect(),
            None => Vec::new(),
        };
        let mut packages = parse_cargo_lock(&cargo_lock, &text, &root_names)?;
        // A member of a workspace shares the workspace's lockfile: it locks only what
        // its own package reaches.
        if cargo_lock.parent() != Some(service.dir.as_path())
            && let Some(name) = root_names.first()
        {
            packages = reachable_from(packages, name);
        }
        append(&mut scanned, cargo_lock, packages);
    }

    let package_lock = service.dir.join("package-lock.json");
    if let Some(text) = read_if_present(&package_lock)? {
        let packages = parse_package_lock(&package_lock, &text)?;
        append(&mut scanned, package_lock, packages);
    }
    Ok(scanned)
}

/// The `Cargo.lock` a crate in `dir` is locked by, as cargo finds it: `dir`'s own, else that
/// of the nearest enclosing workspace (a directory above whose `Cargo.toml` has
/// `[workspace]`). `None` when there is none, or `dir` is no Cargo package.
pub fn cargo_lockfile(dir: &Path) -> Option<PathBuf> {
    let own = dir.join("Cargo.lock");
    if own.exists() || !dir.join("Cargo.toml").exists() {
        return own.exists().then_some(own);
    }
    let absolute = std::fs::canonicalize(dir).ok()?;
    absolute.ancestors().skip(1).find_map(|above| {
        let manifest = std::fs::read_to_string(above.join("Cargo.toml")).ok()?;
        let is_workspace = manifest
            .parse::<toml::Table>()
            .is_ok_and(|table| table.contains_key("workspace"));
        let lock = above.join("Cargo.lock");
        (is_workspace && lock.exists()).then_some(lock)
    })
}

/// The packages `root` (a path package) reaches, with their indices renumbered; the root is
/// the only one marked so.
fn reachable_from(packages: Vec<crate::LockedPackage>, root: &str) -> Vec<crate::LockedPackage> {
    let Some(start) = packages.iter().position(|package| {
        package.name == root && package.source == crate::inventory::SourceKind::Path
    }) else {
        return packages;
    };
    let mut keep = vec![false; packages.len()];
    let mut stack = vec![start];
    while let Some(index) = stack.pop() {
        if !std::mem::replace(&mut keep[index], true) {
            stack.extend(packages[index].dependencies.iter().copied());
        }
    }
    let mut renumbered = vec![usize::MAX; packages.len()];
    let mut next = 0;
    for (index, kept) in keep.iter().enumerate() {
        if *kept {
            renumbered[index] = next;
            next += 1;
        }
    }
    let mut kept: Vec<crate::LockedPackage> = packages
        .into_iter()
        .enumerate()
        .filter(|(index, _)| keep[*index])
        .map(|(index, mut package)| {
            package.root = index == start;
            package.direct = false;
            package.dependencies = package
                .dependencies
                .iter()
                .map(|dependency| renumbered[*dependency])
                .collect();
            package
        })
        .collect();
    crate::lockfile::mark_direct(&mut kept);
    kept
}

/// Reads a library's `Cargo.toml` (or, when it has none, its `package.json`).
pub fn read_library(library: &LibrarySource) -> Result<Library, DepsError> {
    let cargo = library.path.join("Cargo.toml");
    let npm = library.path.join("package.json");
    let (file, manifest) = if let Some(text) = read_if_present(&cargo)? {
        let manifest = parse_cargo_manifest(&cargo, &text)?;
        (cargo, manifest)
    } else if let Some(text) = read_if_present(&npm)? {
        let manifest = parse_package_json(&npm, &text)?;
        (npm, manifest)
    } else {
        return Err(DepsError::parse(
            Location::file(&library.path),
            format!(
                "library `{}` has neither a Cargo.toml nor a package.json",
                library.name
            ),
        ));
    };
    let Some(version) = manifest.version else {
        return Err(DepsError::parse(
            Location::file(&file),
            format!("library `{}` has no version in its manifest", library.name),
        ));
    };
    Ok(Library {
        name: library.name.clone(),
        package: manifest.name.unwrap_or_else(|| library.name.clone()),
        ecosystem: manifest.ecosystem,
        version,
        manifest: file,
        depends_on: manifest.depends_on,
    })
}

/// Reads the manifests `bump` rewrites: each service's `Cargo.toml` and `package.json`.
pub fn read_manifests(services: &[ServiceSource]) -> Result<Vec<ManifestText>, DepsErrors> {
    let mut manifests = Vec::new();
    let mut errors = Vec::new();
    for service in services {
        for name in ["Cargo.toml", "package.json"] {
            let file = service.dir.join(name);
            match read_if_present(&file) {
                Ok(Some(text)) => manifests.push(ManifestText {
                    service: service.name.clone(),
                    file,
                    text,
                }),
                Ok(None) => {}
                Err(error) => errors.push(error),
            }
        }
    }
    if errors.is_empty() {
        Ok(manifests)
    } else {
        Err(DepsErrors(errors))
    }
}

fn read_if_present(file: &Path) -> Result<Option<String>, DepsError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DepsError::Read {
            file: file.to_path_buf(),
            source,
        }),
    }
}

/// Adds one lockfile's packages to a service, shifting their indices past those already there.
fn append(service: &mut ServiceInventory, lockfile: PathBuf, packages: Vec<crate::LockedPackage>) {
    let offset = service.packages.len();
    service
        .packages
        .extend(packages.into_iter().map(|mut package| {
            for dependency in &mut package.dependencies {
                *dependency += offset;
            }
            package
        }));
    service.lockfiles.push(lockfile);
}
