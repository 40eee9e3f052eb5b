//! The bill of materials a revision records: what each service with a `source` locks, so
//! `tier deps why --env` can tell which version runs where. Stored in the revision as JSON
//! (`{service: {packages: [...]}}` or `{service: {error: "..."}}`); this is its typed form.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tier_deps::Ecosystem;
use tier_model::Environment;

/// Every scanned service of one revision, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BillOfMaterials {
    pub services: BTreeMap<String, ServiceMaterials>,
}

/// What one service locks, or why its lockfiles could not be read (the apply went on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServiceMaterials {
    Packages { packages: Vec<LockedPackage> },
    Unreadable { error: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPackage {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: String,
    pub direct: bool,
}

impl BillOfMaterials {
    /// Scans each service with a `source` (its `Cargo.lock` and `package-lock.json`).
    pub fn scan(root: &Path, environment: &Environment) -> BillOfMaterials {
        let mut services = BTreeMap::new();
        for (name, service) in &environment.services {
            let Some(source) = &service.source else {
                continue;
            };
            let scanned = tier_deps::scan::scan_service(&tier_deps::scan::ServiceSource {
                name: name.to_string(),
                dir: root.join(source),
            });
            let entry = match scanned {
                Ok(inventory) => ServiceMaterials::Packages {
                    packages: inventory
                        .packages
                        .iter()
                        .filter(|package| !package.root)
                        .map(|package| LockedPackage {
                            ecosystem: package.ecosystem,
                            name: package.name.clone(),
                            version: package.version.to_string(),
                            direct: package.direct,
                        })
                        .collect(),
                },
                Err(error) => ServiceMaterials::Unreadable {
                    error: error.to_string(),
                },
            };
            services.insert(name.to_string(), entry);
        }
        BillOfMaterials { services }
    }

    /// The recorded form. A revision recorded before bills of materials existed holds `null`,
    /// read as an empty bill.
    pub fn from_value(value: &serde_json::Value) -> Result<BillOfMaterials, serde_json::Error> {
        if value.is_null() {
            return Ok(BillOfMaterials::default());
        }
        serde_json::from_value(value.clone())
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|_| serde_json::Value::Object(Default::default()))
    }

    /// The versions of `package` each service locks, for the services that lock it.
    pub fn versions_of(&self, package: &str) -> BTreeMap<String, Vec<String>> {
        self.services
            .iter()
            .filter_map(|(service, materials)| {
                let ServiceMaterials::Packages { packages } = materials else {
                    return None;
                };
                let versions: Vec<String> = packages
                    .iter()
                    .filter(|locked| locked.name == package)
                    .map(|locked| locked.version.clone())
                    .collect();
                (!versions.is_empty()).then(|| (service.clone(), versions))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_form_reads_back_and_answers_versions() {
        // The shape revisions have recorded since bills of materials exist.
        let recorded = serde_json::json!({
            "api": { "packages": [
                { "ecosystem": "cargo", "name": "util-security", "version": "1.4.1", "direct": true },
                { "ecosystem": "npm", "name": "left-pad", "version": "1.3.0", "direct": false },
            ] },
            "web": { "error": "web/Cargo.lock: unreadable" },
        });
        let bom = BillOfMaterials::from_value(&recorded).expect("a recorded bill");
        assert_eq!(bom.to_value(), recorded);
        assert_eq!(
            bom.versions_of("util-security"),
            BTreeMap::from([("api".to_owned(), vec!["1.4.1".to_owned()])])
        );
        assert!(bom.versions_of("serde").is_empty());
        assert_eq!(
            BillOfMaterials::from_value(&serde_json::Value::Null).ok(),
            Some(BillOfMaterials::default())
        );
    }
}
