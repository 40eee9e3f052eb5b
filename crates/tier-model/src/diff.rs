//! What differs between two resolved environments, value by value, with where each side's
//! value came from.

use serde::Serialize;

use crate::resolve::Resolved;
use crate::source::SourceMap;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Difference {
    pub path: String,
    /// `None` when the path has no value on that side.
    pub left: Option<serde_json::Value>,
    pub right: Option<serde_json::Value>,
    pub left_origin: Option<String>,
    pub right_origin: Option<String>,
}

/// Paths whose values differ, in path order. The environments' own names and their
/// `extends` are left out: they always differ and say nothing about behaviour.
pub fn diff(left: &Resolved, right: &Resolved, sources: &SourceMap) -> Vec<Difference> {
    let flat = |resolved: &Resolved| {
        let mut out = Vec::new();
        if let Ok(value) = serde_json::to_value(&resolved.environment) {
            flatten(&value, "", &mut out);
        }
        out.retain(|(path, _)| path != "name" && path != "extends");
        out
    };
    let left_values = flat(left);
    let right_values = flat(right);
    let mut paths: Vec<&String> = left_values
        .iter()
        .chain(&right_values)
        .map(|(path, _)| path)
        .collect();
    paths.sort();
    paths.dedup();
    let find = |values: &[(String, serde_json::Value)], path: &str| {
        values
            .binary_search_by(|(candidate, _)| candidate.as_str().cmp(path))
            .ok()
            .map(|at| values[at].1.clone())
    };
    paths
        .into_iter()
        .filter_map(|path| {
            let left_value = find(&left_values, path);
            let right_value = find(&right_values, path);
            if left_value == right_value {
                return None;
            }
            Some(Difference {
                path: path.clone(),
                left_origin: left_value
                    .as_ref()
                    .map(|_| left.origin_of(path).describe(sources)),
                right_origin: right_value
                    .as_ref()
                    .map(|_| right.origin_of(path).describe(sources)),
                left: left_value,
                right: right_value,
            })
        })
        .collect()
}

/// Every leaf of a JSON value by dotted path, sorted. Arrays and empty objects are leaves.
pub fn flatten(
    value: &serde_json::Value,
    prefix: &str,
    out: &mut Vec<(String, serde_json::Value)>,
) {
    match value {
        serde_json::Value::Object(object) if !object.is_empty() => {
            let mut entries: Vec<_> = object.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (key, inner) in entries {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(inner, &path, out);
            }
        }
        _ => out.push((prefix.to_owned(), value.clone())),
    }
    if prefix.is_empty() {
        out.sort_by(|a, b| a.0.cmp(&b.0));
    }
}
