//! The questions asked of an inventory: why (who uses a library), outdated, conflicts.

use std::collections::{BTreeMap, BTreeSet};

use semver::{Version, VersionReq};
use serde::Serialize;

use crate::error::DepsError;
use crate::graph::{chains_to, labels};
use crate::inventory::{
    Ecosystem, Inventory, Library, ServiceInventory, SourceKind, class_label, compatibility_class,
};

/// How many chains `why` shows per locked version.
pub const WHY_CHAINS: usize = 5;
/// How many chains `conflicts` shows per side of a diamond.
pub const CONFLICT_CHAINS: usize = 3;

/// A version range to test locked versions against, read once per ecosystem's rules:
/// Cargo's (`semver::VersionReq`) and npm's (`nodejs-semver`, with `||` and hyphen ranges).
#[derive(Debug, Clone)]
pub struct AffectedRange {
    text: String,
    cargo: Result<VersionReq, String>,
    npm: Result<nodejs_semver::Range, String>,
}

impl AffectedRange {
    /// Reads a range; fails only when neither ecosystem can read it.
    pub fn parse(text: &str) -> Result<Self, DepsError> {
        let cargo = VersionReq::parse(text).map_err(|error| error.to_string());
        let npm = nodejs_semver::Range::parse(text).map_err(|error| error.to_string());
        if let (Err(message), Err(_)) = (&cargo, &npm) {
            return Err(DepsError::Range {
                ecosystem: Ecosystem::Cargo,
                range: text.to_owned(),
                message: message.clone(),
            });
        }
        Ok(Self {
            text: text.to_owned(),
            cargo,
            npm,
        })
    }

    /// The range as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `version` of a package of `ecosystem` is inside the range.
    pub fn contains(&self, ecosystem: Ecosystem, version: &Version) -> Result<bool, DepsError> {
        let error = |message: &String| DepsError::Range {
            ecosystem,
            range: self.text.clone(),
            message: message.clone(),
        };
        match ecosystem {
            Ecosystem::Cargo => match &self.cargo {
                Ok(requirement) => Ok(requirement.matches(version)),
                Err(message) => Err(error(message)),
            },
            Ecosystem::Npm => match &self.npm {
                Ok(range) => {
                    let version = nodejs_semver::Version::parse(version.to_string())
                        .map_err(|parse| error(&parse.to_string()))?;
                    Ok(range.satisfies(&version))
                }
                Err(message) => Err(error(message)),
            },
        }
    }
}

/// The answer to "who uses this library".
#[derive(Debug, Clone, Serialize)]
pub struct WhyReport {
    pub library: String,
    pub affected_range: Option<String>,
    /// Services that depend on the library, by name.
    pub services: Vec<ServiceUse>,
    /// Some service locks a version inside the affected range.
    pub any_affected: bool,
}

/// How one service depends on the library.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceUse {
    pub service: String,
    pub uses: Vec<LockedUse>,
}

/// One locked version of the library in a service.
#[derive(Debug, Clone, Serialize)]
pub struct LockedUse {
    pub ecosystem: Ecosystem,
    pub version: Version,
    pub direct: bool,
    /// Inside the affected range; `None` when no range was given.
    pub affected: Option<bool>,
    /// `name@version` chains from the service's root to the library, shortest first.
    pub chains: Vec<Vec<String>>,
    /// Chains left out to keep the answer short.
    pub more_chains: usize,
}

/// Every service that depends on `library` (a `[libraries]` name or a package name), directly
/// or transitively, with its chains and locked versions, checked against `affected`.
pub fn why(
    inventory: &Inventory,
    library: &str,
    affected: Option<&AffectedRange>,
) -> Result<WhyReport, DepsError> {
    let package = package_name(inventory, library);
    let mut report = WhyReport {
        library: library.to_owned(),
        affected_range: affected.map(|range| range.as_str().to_owned()),
        services: Vec::new(),
        any_affected: false,
    };
    for service in &inventory.services {
        let mut uses = Vec::new();
        for (index, locked) in service.packages.iter().enumerate() {
            if locked.name != package || locked.root {
                continue;
            }
            let affected = match affected {
                Some(range) => Some(range.contains(locked.ecosystem, &locked.version)?),
                None => None,
            };
            report.any_affected |= affected == Some(true);
            let (chains, more_chains) = chains_to(service, index, WHY_CHAINS);
            uses.push(LockedUse {
                ecosystem: locked.ecosystem,
                version: locked.version.clone(),
                direct: locked.direct,
                affected,
                chains: chains.iter().map(|chain| labels(service, chain)).collect(),
                more_chains,
            });
        }
        if !uses.is_empty() {
            uses.sort_by(|left, right| left.version.cmp(&right.version));
            report.services.push(ServiceUse {
                service: service.name.clone(),
                uses,
            });
        }
    }
    report
        .services
        .sort_by(|left, right| left.service.cmp(&right.service));
    Ok(report)
}

/// How far a locked version is behind the newest known one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BumpKind {
    Patch,
    Minor,
    /// A SemVer-incompatible update (for `0.x`, a minor bump; for `0.0.x`, a patch bump).
    Major,
}

/// One package of one service that is behind.
#[derive(Debug, Clone, Serialize)]
pub struct OutdatedPackage {
    pub service: String,
    pub ecosystem: Ecosystem,
    pub name: String,
    pub locked: Version,
    pub newest: Version,
    pub kind: BumpKind,
    /// An internal library (newest = its current version) rather than an external package
    /// (newest = the newest version locked anywhere in the project).
    pub internal: bool,
    pub direct: bool,
}

/// Classifies the update from `from` to `to` by SemVer, as Cargo does.
pub fn bump_kind(from: &Version, to: &Version) -> BumpKind {
    if compatibility_class(from) != compatibility_class(to) {
        BumpKind::Major
    } else if from.minor != to.minor {
        BumpKind::Minor
    } else {
        BumpKind::Patch
    }
}

/// Every locked package that is older than the newest known version, by service.
/// Pre-releases are never the newest known version of an external package.
pub fn outdated(inventory: &Inventory) -> Vec<OutdatedPackage> {
    let internal: BTreeMap<(Ecosystem, &str), &Library> = inventory
        .libraries
        .iter()
        .map(|library| ((library.ecosystem, library.package.as_str()), library))
        .collect();
    let mut newest_external: BTreeMap<(Ecosystem, &str), &Version> = BTreeMap::new();
    for service in &inventory.services {
        for package in &service.packages {
            if package.root || package.source == SourceKind::Path || !package.version.pre.is_empty()
            {
                continue;
            }
            let newest = newest_external
                .entry((package.ecosystem, package.name.as_str()))
                .or_insert(&package.version);
            if package.version > **newest {
                *newest = &package.version;
            }
        }
    }

    let mut found = Vec::new();
    for service in &inventory.services {
        let mut seen = BTreeSet::new();
        for package in &service.packages {
            if package.root || !seen.insert((package.ecosystem, &package.name, &package.version)) {
                continue;
            }
            let key = (package.ecosystem, package.name.as_str());
            let (newest, is_internal) = match internal.get(&key) {
                Some(library) => (&library.version, true),
                None if package.source == SourceKind::Path => continue,
                None => match newest_external.get(&key) {
                    Some(newest) => (*newest, false),
                    None => continue,
                },
            };
            if *newest <= package.version {
                continue;
            }
            found.push(OutdatedPackage {
                service: service.name.clone(),
                ecosystem: package.ecosystem,
                name: package.name.clone(),
                locked: package.version.clone(),
                newest: newest.clone(),
                kind: bump_kind(&package.version, newest),
                internal: is_internal,
                direct: package.direct,
            });
        }
    }
    found.sort_by(|left, right| {
        (&left.service, left.ecosystem, &left.name, &left.locked).cmp(&(
            &right.service,
            right.ecosystem,
            &right.name,
            &right.locked,
        ))
    });
    found
}

/// Both kinds of conflict in a project.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Conflicts {
    pub diamonds: Vec<Diamond>,
    pub split_libraries: Vec<SplitLibrary>,
}

/// One package locked at SemVer-incompatible versions inside one service's graph.
#[derive(Debug, Clone, Serialize)]
pub struct Diamond {
    pub service: String,
    pub ecosystem: Ecosystem,
    pub name: String,
    /// One side per locked version, lowest first.
    pub sides: Vec<DiamondSide>,
}

/// One version in a diamond and how the service reaches it.
#[derive(Debug, Clone, Serialize)]
pub struct DiamondSide {
    pub version: Version,
    pub chains: Vec<Vec<String>>,
}

/// An internal library locked at different major versions (compatibility classes) across
/// services.
#[derive(Debug, Clone, Serialize)]
pub struct SplitLibrary {
    pub library: String,
    pub current: Version,
    /// One group per compatibility class (`1.x`, `0.9.x`), lowest first.
    pub groups: Vec<MajorGroup>,
}

/// The services that lock a library within one compatibility class.
#[derive(Debug, Clone, Serialize)]
pub struct MajorGroup {
    pub class: String,
    pub services: Vec<ServiceVersion>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceVersion {
    pub service: String,
    pub version: Version,
}

/// Diamonds in every service, and internal libraries split across major versions.
pub fn conflicts(inventory: &Inventory) -> Conflicts {
    let mut found = Conflicts::default();
    for service in &inventory.services {
        found.diamonds.extend(diamonds(service));
    }
    for library in &inventory.libraries {
        let mut groups: BTreeMap<(u64, u64, u64), BTreeSet<(String, Version)>> = BTreeMap::new();
        for service in &inventory.services {
            for package in &service.packages {
                if !package.root
                    && package.ecosystem == library.ecosystem
                    && package.name == library.package
                {
                    groups
                        .entry(compatibility_class(&package.version))
                        .or_default()
                        .insert((service.name.clone(), package.version.clone()));
                }
            }
        }
        if groups.len() > 1 {
            found.split_libraries.push(SplitLibrary {
                library: library.name.clone(),
                current: library.version.clone(),
                groups: groups
                    .into_iter()
                    .map(|(class, services)| MajorGroup {
                        class: class_label(class),
                        services: services
                            .into_iter()
                            .map(|(service, version)| ServiceVersion { service, version })
                            .collect(),
                    })
                    .collect(),
            });
        }
    }
    found
}

fn diamonds(service: &ServiceInventory) -> Vec<Diamond> {
    let mut by_name: BTreeMap<(Ecosystem, &str), Vec<usize>> = BTreeMap::new();
    for (index, package) in service.packages.iter().enumerate() {
        if !package.root {
            by_name
                .entry((package.ecosystem, package.name.as_str()))
                .or_default()
                .push(index);
        }
    }
    let mut found = Vec::new();
    for ((ecosystem, name), mut indices) in by_name {
        let classes: BTreeSet<_> = indices
            .iter()
            .map(|&index| compatibility_class(&service.packages[index].version))
            .collect();
        if classes.len() < 2 {
            continue;
        }
        indices.sort_by(|&left, &right| {
            service.packages[left]
                .version
                .cmp(&service.packages[right].version)
        });
        found.push(Diamond {
            service: service.name.clone(),
            ecosystem,
            name: name.to_owned(),
            sides: indices
                .iter()
                .map(|&index| DiamondSide {
                    version: service.packages[index].version.clone(),
                    chains: chains_to(service, index, CONFLICT_CHAINS)
                        .0
                        .iter()
                        .map(|chain| labels(service, chain))
                        .collect(),
                })
                .collect(),
        });
    }
    found
}

/// The package name lockfiles use for `library`: its manifest's name when it is an internal
/// library, the name itself otherwise.
fn package_name<'a>(inventory: &'a Inventory, library: &'a str) -> &'a str {
    inventory
        .libraries
        .iter()
        .find(|candidate| candidate.name == library)
        .map_or(library, |candidate| candidate.package.as_str())
}
