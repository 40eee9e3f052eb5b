//! Bump planning: the new text of every manifest that asks for a library, formatting kept.
//! Pure: the caller reads the files (`scan::read_manifests`) and writes the results.

use std::path::PathBuf;

use semver::Version;
use serde::Serialize;

use crate::error::{DepsError, DepsErrors, Location};
use crate::inventory::compatibility_class;
use crate::lockfile::toml_error;
use crate::manifest::{CARGO_DEPENDENCY_TABLES, NPM_DEPENDENCY_MAPS};

/// A service's manifest as read from disk.
#[derive(Debug, Clone)]
pub struct ManifestText {
    pub service: String,
    pub file: PathBuf,
    pub text: String,
}

/// The rewrite of one manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Edit {
    pub service: String,
    pub file: PathBuf,
    #[serde(skip)]
    pub before: String,
    #[serde(skip)]
    pub after: String,
    /// Some requirement moves to another major version (compatibility class).
    pub crosses_major: bool,
    pub changes: Vec<RequirementChange>,
}

/// One requirement rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequirementChange {
    /// The table or map it is in: `dependencies`, `dev-dependencies`,
    /// `target.'cfg(unix)'.dependencies`, `devDependencies`, ...
    pub table: String,
    pub from: String,
    pub to: String,
    pub crosses_major: bool,
}

/// Rewrites the requirement on `package` to `new_version` in every manifest that has one.
/// The operator of each requirement is kept (`^1.2` becomes `^<new>`, `~1.2` becomes
/// `~<new>`); a compound requirement becomes the plain new version. Path-only and `git`
/// dependencies, `workspace = true` and npm `file:`/`link:`/`workspace:` specs have no version
/// to bump and are left alone. Manifests that do not change are not returned.
pub fn bump(
    manifests: &[ManifestText],
    package: &str,
    new_version: &Version,
) -> Result<Vec<Edit>, DepsErrors> {
    let mut edits = Vec::new();
    let mut errors = Vec::new();
    for manifest in manifests {
        let is_npm = manifest
            .file
            .file_name()
            .is_some_and(|name| name == "package.json");
        let result = if is_npm {
            bump_package_json(manifest, package, new_version)
        } else {
            bump_cargo_toml(manifest, package, new_version)
        };
        match result {
            Ok((after, changes)) if !changes.is_empty() && after != manifest.text => {
                edits.push(Edit {
                    service: manifest.service.clone(),
                    file: manifest.file.clone(),
                    before: manifest.text.clone(),
                    after,
                    crosses_major: changes.iter().any(|change| change.crosses_major),
                    changes,
                });
            }
            Ok(_) => {}
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(edits)
    } else {
        Err(DepsErrors(errors))
    }
}

fn bump_cargo_toml(
    manifest: &ManifestText,
    package: &str,
    new_version: &Version,
) -> Result<(String, Vec<RequirementChange>), DepsError> {
    let mut document: toml_edit::DocumentMut =
        manifest
            .text
            .parse()
            .map_err(|error: toml_edit::TomlError| {
                toml_error(
                    &manifest.file,
                    &manifest.text,
                    error.span(),
                    error.message(),
                )
            })?;
    let mut changes = Vec::new();
    let root = document.as_table_mut();
    for kind in CARGO_DEPENDENCY_TABLES {
        if let Some(table) = root
            .get_mut(kind)
            .and_then(toml_edit::Item::as_table_like_mut)
        {
            bump_cargo_table(table, kind, package, new_version, &mut changes);
        }
    }
    if let Some(targets) = root
        .get_mut("target")
        .and_then(toml_edit::Item::as_table_like_mut)
    {
        for (cfg, target) in targets.iter_mut() {
            let cfg = cfg.get().to_owned();
            if let Some(target) = target.as_table_like_mut() {
                for kind in CARGO_DEPENDENCY_TABLES {
                    if let Some(table) = target
                        .get_mut(kind)
                        .and_then(toml_edit::Item::as_table_like_mut)
                    {
                        let path = format!("target.'{cfg}'.{kind}");
                        bump_cargo_table(table, &path, package, new_version, &mut changes);
                    }
                }
            }
        }
    }
    if let Some(table) = root
        .get_mut("workspace")
        .and_then(|workspace| workspace.get_mut("dependencies"))
        .and_then(toml_edit::Item::as_table_like_mut)
    {
        bump_cargo_table(
            table,
            "workspace.dependencies",
            package,
            new_version,
            &mut changes,
        );
    }
    Ok((document.to_string(), changes))
}

fn bump_cargo_table(
    table: &mut dyn toml_edit::TableLike,
    table_name: &str,
    package: &str,
    new_version: &Version,
    changes: &mut Vec<RequirementChange>,
) {
    for (key, item) in table.iter_mut() {
        let renamed_to = item
            .as_table_like()
            .and_then(|entry| entry.get("package"))
            .and_then(toml_edit::Item::as_str);
        if renamed_to.unwrap_or(key.get()) != package {
            continue;
        }
        let value = if item.is_str() {
            item.as_value_mut()
        } else {
            item.as_table_like_mut()
                .and_then(|entry| entry.get_mut("version"))
                .and_then(toml_edit::Item::as_value_mut)
        };
        let Some(value) = value else { continue };
        let Some(old) = value.as_str().map(str::to_owned) else {
            continue;
        };
        let Some(change) = requirement_change(table_name, &old, new_version) else {
            continue;
        };
        let decor = value.decor().clone();
        *value = toml_edit::Value::from(change.to.as_str());
        *value.decor_mut() = decor;
        changes.push(change);
    }
}

fn bump_package_json(
    manifest: &ManifestText,
    package: &str,
    new_version: &Version,
) -> Result<(String, Vec<RequirementChange>), DepsError> {
    use jsonc_parser::ast::Value as Json;
    let text = &manifest.text;
    let parsed =
        jsonc_parser::parse_to_ast(text, &Default::default(), &tier_model::tree::STRICT_JSON)
            .map_err(|error| {
                let at = Location::at_offset(&manifest.file, text, error.range().start);
                DepsError::parse(at, format!("invalid JSON: {}", error.kind()))
            })?;
    let Some(Json::Object(root)) = parsed.value else {
        return Err(DepsError::parse(
            Location::file(&manifest.file),
            "package.json is not a JSON object",
        ));
    };
    // Replacements as (byte range of the string literal, new literal), applied back to front.
    let mut replacements = Vec::new();
    let mut changes = Vec::new();
    for map in &root.properties {
        let map_name = map.name.as_str();
        if !NPM_DEPENDENCY_MAPS.contains(&map_name) {
            continue;
        }
        let Json::Object(dependencies) = &map.value else {
            continue;
        };
        for dependency in &dependencies.properties {
            if dependency.name.as_str() != package {
                continue;
            }
            let Json::StringLit(spec) = &dependency.value else {
                continue;
            };
            let Some(change) = requirement_change(map_name, &spec.value, new_version) else {
                continue;
            };
            let literal = serde_json::to_string(&change.to).unwrap_or_default();
            replacements.push((spec.range.start..spec.range.end, literal));
            changes.push(change);
        }
    }
    let mut after = text.clone();
    replacements.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    for (range, literal) in replacements {
        if after.get(range.clone()).is_some() {
            after.replace_range(range, &literal);
        }
    }
    Ok((after, changes))
}

/// The rewrite of one requirement, or `None` when it names no version to bump or already
/// asks for exactly the new one.
fn requirement_change(table: &str, old: &str, new_version: &Version) -> Option<RequirementChange> {
    let trimmed = old.trim();
    let operator_end = trimmed
        .find(|c: char| !matches!(c, '^' | '~' | '=' | '>' | '<' | ' ' | 'v'))
        .unwrap_or(trimmed.len());
    let (operator, rest) = trimmed.split_at(operator_end);
    if !rest.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let compound = rest.contains([',', ' ', '|', '<', '>']);
    let operator = operator.trim().trim_end_matches('v');
    let to = if compound || operator.starts_with(['>', '<']) {
        new_version.to_string()
    } else {
        format!("{operator}{new_version}")
    };
    if to == trimmed {
        return None;
    }
    let crosses_major = lowest_version(rest)
        .is_none_or(|lowest| compatibility_class(&lowest) != compatibility_class(new_version));
    Some(RequirementChange {
        table: table.to_owned(),
        from: old.to_owned(),
        to,
        crosses_major,
    })
}

/// The version a requirement starts from, missing parts as zero: `1.2` is `1.2.0`.
fn lowest_version(requirement: &str) -> Option<Version> {
    let first: String = requirement
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = first.split('.').filter(|part| !part.is_empty());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |part| part.parse().ok())?;
    let patch = parts.next().map_or(Some(0), |part| part.parse().ok())?;
    Some(Version::new(major, minor, patch))
}
