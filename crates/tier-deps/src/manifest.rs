//! Package manifests (`Cargo.toml`, `package.json`): what a library is called, its version,
//! and what it depends on. Pure: the caller reads the files.

use std::path::Path;

use semver::Version;
use serde::Deserialize;

use crate::error::{DepsError, Location};
use crate::inventory::Ecosystem;
use crate::lockfile::toml_error;

/// The parts of a manifest the analysis needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub ecosystem: Ecosystem,
    /// The package name; `None` for a Cargo workspace root without a `[package]`.
    pub name: Option<String>,
    pub version: Option<Version>,
    /// Package names of every dependency of every kind, sorted and without duplicates.
    pub depends_on: Vec<String>,
}

/// The dependency tables of a Cargo manifest, by their key path.
pub(crate) const CARGO_DEPENDENCY_TABLES: [&str; 3] =
    ["dependencies", "dev-dependencies", "build-dependencies"];

/// The dependency maps of a `package.json`.
pub(crate) const NPM_DEPENDENCY_MAPS: [&str; 4] = [
    "dependencies",
    "devDependencies",
    "peerDependencies",
    "optionalDependencies",
];

/// Reads a `Cargo.toml`.
pub fn parse_cargo_manifest(file: &Path, text: &str) -> Result<Manifest, DepsError> {
    let document = toml_edit::Document::parse(text)
        .map_err(|error| toml_error(file, text, error.span(), error.message()))?;
    let root = document.as_table();
    let package = root.get("package").and_then(toml_edit::Item::as_table_like);
    let name = package
        .and_then(|package| package.get("name"))
        .and_then(toml_edit::Item::as_str)
        .map(str::to_owned);
    let version = match package.and_then(|package| package.get("version")) {
        None => None,
        Some(item) => match item.as_str() {
            Some(text_version) => Some(Version::parse(text_version).map_err(|error| {
                let at = item.span().map_or_else(
                    || Location::file(file),
                    |span| Location::at_offset(file, text, span.start),
                );
                DepsError::parse(at, format!("invalid version `{text_version}`: {error}"))
            })?),
            None => {
                let at = item.span().map_or_else(
                    || Location::file(file),
                    |span| Location::at_offset(file, text, span.start),
                );
                return Err(DepsError::parse(
                    at,
                    "`package.version` is not a version string (a version inherited from a \
                     workspace is not supported here)",
                ));
            }
        },
    };
    let mut depends_on = Vec::new();
    for table in cargo_dependency_tables(root) {
        for (key, item) in table.iter() {
            let package = item
                .as_table_like()
                .and_then(|entry| entry.get("package"))
                .and_then(toml_edit::Item::as_str)
                .unwrap_or(key);
            depends_on.push(package.to_owned());
        }
    }
    depends_on.sort();
    depends_on.dedup();
    Ok(Manifest {
        ecosystem: Ecosystem::Cargo,
        name,
        version,
        depends_on,
    })
}

/// Reads a `package.json`.
pub fn parse_package_json(file: &Path, text: &str) -> Result<Manifest, DepsError> {
    #[derive(Deserialize)]
    struct PackageJson {
        name: Option<String>,
        version: Option<String>,
        #[serde(default)]
        dependencies: serde_json::Map<String, serde_json::Value>,
        #[serde(default, rename = "devDependencies")]
        dev_dependencies: serde_json::Map<String, serde_json::Value>,
        #[serde(default, rename = "peerDependencies")]
        peer_dependencies: serde_json::Map<String, serde_json::Value>,
        #[serde(default, rename = "optionalDependencies")]
        optional_dependencies: serde_json::Map<String, serde_json::Value>,
    }
    let parsed: PackageJson =
        serde_json::from_str(text).map_err(|error| DepsError::json(file, &error))?;
    let version = match &parsed.version {
        None => None,
        Some(version) => Some(Version::parse(version).map_err(|error| {
            let at = text.find("\"version\"").map_or_else(
                || Location::file(file),
                |offset| Location::at_offset(file, text, offset),
            );
            DepsError::parse(at, format!("invalid version `{version}`: {error}"))
        })?),
    };
    let mut depends_on: Vec<String> = parsed
        .dependencies
        .keys()
        .chain(parsed.dev_dependencies.keys())
        .chain(parsed.peer_dependencies.keys())
        .chain(parsed.optional_dependencies.keys())
        .cloned()
        .collect();
    depends_on.sort();
    depends_on.dedup();
    Ok(Manifest {
        ecosystem: Ecosystem::Npm,
        name: parsed.name,
        version,
        depends_on,
    })
}

/// Every dependency table of a Cargo manifest: `[dependencies]`, `[dev-dependencies]`,
/// `[build-dependencies]`, the same under each `[target.<cfg>]`, and `[workspace.dependencies]`.
pub(crate) fn cargo_dependency_tables(root: &toml_edit::Table) -> Vec<&dyn toml_edit::TableLike> {
    let mut tables = Vec::new();
    for kind in CARGO_DEPENDENCY_TABLES {
        if let Some(table) = root.get(kind).and_then(toml_edit::Item::as_table_like) {
            tables.push(table);
        }
    }
    if let Some(targets) = root.get("target").and_then(toml_edit::Item::as_table_like) {
        for (_, target) in targets.iter() {
            if let Some(target) = target.as_table_like() {
                for kind in CARGO_DEPENDENCY_TABLES {
                    if let Some(table) = target.get(kind).and_then(toml_edit::Item::as_table_like) {
                        tables.push(table);
                    }
                }
            }
        }
    }
    if let Some(table) = root
        .get("workspace")
        .and_then(|workspace| workspace.get("dependencies"))
        .and_then(toml_edit::Item::as_table_like)
    {
        tables.push(table);
    }
    tables
}
