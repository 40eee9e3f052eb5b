//! The scanned dependency set of every service: packages as locked, and the edges between them.

use std::path::PathBuf;

use semver::Version;
use serde::{Deserialize, Serialize};

/// Which package manager a package belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    Cargo,
    Npm,
}

impl std::fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cargo => "cargo",
            Self::Npm => "npm",
        })
    }
}

/// Where a locked package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A package registry (crates.io, registry.npmjs.org, ...).
    Registry,
    /// A git repository.
    Git,
    /// A directory: a workspace member, a path dependency, an npm `file:` link.
    Path,
    /// Anything else (a tarball URL, a source the lockfile does not name).
    Other,
}

/// Everything scanned: each service's locked packages, and the project's internal libraries.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inventory {
    pub services: Vec<ServiceInventory>,
    pub libraries: Vec<Library>,
}

/// One service's lockfiles, merged into one graph.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceInventory {
    pub name: String,
    /// The lockfiles read, in the order read; empty when the source has none.
    pub lockfiles: Vec<PathBuf>,
    /// Every locked package; `dependencies` are indices into this list.
    pub packages: Vec<LockedPackage>,
}

/// One package as a lockfile pins it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockedPackage {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: Version,
    pub source: SourceKind,
    /// The service's own package (a workspace member, or `packages[""]` of a package-lock).
    pub root: bool,
    /// A root depends on it directly.
    pub direct: bool,
    /// Indices (into the service's `packages`) of the packages this one depends on.
    pub dependencies: Vec<usize>,
}

impl LockedPackage {
    /// `name@version`, the way chains are written.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

impl ServiceInventory {
    /// Indices of the root packages.
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        self.packages
            .iter()
            .enumerate()
            .filter(|(_, package)| package.root)
            .map(|(index, _)| index)
    }
}

/// An internal library of the project, as its own manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Library {
    /// The name in `[libraries.<name>]`.
    pub name: String,
    /// The package name in its manifest; what lockfiles call it.
    pub package: String,
    pub ecosystem: Ecosystem,
    /// Its current version.
    pub version: Version,
    /// The manifest it was read from.
    pub manifest: PathBuf,
    /// Package names of everything its manifest depends on (all kinds), sorted.
    pub depends_on: Vec<String>,
}

/// The SemVer compatibility class of a version, as Cargo sees it: `1.x.y` share one class,
/// `0.3.x` share one, and each `0.0.z` is its own.
pub(crate) fn compatibility_class(version: &Version) -> (u64, u64, u64) {
    if version.major > 0 {
        (version.major, 0, 0)
    } else if version.minor > 0 {
        (0, version.minor, 0)
    } else {
        (0, 0, version.patch)
    }
}

/// Writes a compatibility class the way people say it: `1.x`, `0.3.x`, `0.0.4`.
pub(crate) fn class_label(class: (u64, u64, u64)) -> String {
    match class {
        (0, 0, patch) => format!("0.0.{patch}"),
        (0, minor, _) => format!("0.{minor}.x"),
        (major, _, _) => format!("{major}.x"),
    }
}
