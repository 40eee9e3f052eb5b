//! The escape hatch: patches of the rendered objects, as `kubectl patch` and Kustomize take
//! them. A strategic merge patch is a partial object that names its target by kind and
//! `metadata.name`; maps merge, lists of named things (containers, env, ports, volumes,
//! mounts) merge by their key, other lists are replaced, `null` removes a key and
//! `$patch: delete` an item. An RFC 6902 JSON patch is a list of operations on one target.

use serde_json::{Map, Value};
use tier_model::environment::Patch;

use crate::object::Object;

/// What one patch changed: the object and the paths of the fields that differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchEffect {
    pub file: String,
    pub declared_at: String,
    pub object: String,
    pub fields: Vec<String>,
}

/// Why a patch could not be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("patch {file} (named at {declared_at}): {message}")]
pub struct PatchError {
    pub file: String,
    pub declared_at: String,
    pub message: String,
}

/// Applies the patches in order; `default_target` is the object a patch that names none
/// changes (a service's Deployment).
pub fn apply_patches(
    objects: &mut [Object],
    patches: &[Patch],
    default_target: Option<(&str, &str)>,
) -> Result<Vec<PatchEffect>, PatchError> {
    let mut effects = Vec::new();
    for patch in patches {
        let error = |message: String| PatchError {
            file: patch.file.clone(),
            declared_at: patch.declared_at.clone(),
            message,
        };
        let target = target_of(patch, default_target)
            .ok_or_else(|| error("it names no object: give kind and metadata.name".to_owned()))?;
        let index = objects
            .iter()
            .position(|object| object.kind() == target.0 && object.name() == target.1)
            .ok_or_else(|| {
                error(format!(
                    "no rendered object is {}/{}; the environment renders: {}",
                    target.0,
                    target.1,
                    objects
                        .iter()
                        .map(|object| format!("{}/{}", object.kind(), object.name()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let before = serde_json::to_value(&objects[index])
            .map_err(|cause| error(format!("cannot read the object: {cause}")))?;
        let mut after = before.clone();
        if patch.is_json_patch() {
            let operations: json_patch::Patch = serde_json::from_value(patch.content.clone())
                .map_err(|cause| error(format!("not an RFC 6902 patch: {cause}")))?;
            json_patch::patch(&mut after, &operations)
                .map_err(|cause| error(format!("{cause}")))?;
        } else {
            let mut content = patch.content.clone();
            if let Some(object) = content.as_object_mut() {
                object.remove("apiVersion");
                object.remove("kind");
                if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                    metadata.remove("name");
                    metadata.remove("namespace");
                }
            }
            strategic_merge(&mut after, &content, "");
        }
        let patched: Object = read_back(&objects[index], after.clone()).map_err(|cause| {
            error(format!(
                "the patched {}/{} is not valid: {cause}",
                target.0, target.1
            ))
        })?;
        let kept = serde_json::to_value(&patched).unwrap_or_default();
        let mut lost = Vec::new();
        differences(&after, &kept, "", &mut lost);
        if !lost.is_empty() {
            return Err(error(format!(
                "it sets fields that {} does not have: {}",
                target.0,
                lost.join(", ")
            )));
        }
        if patched.kind() != target.0 || patched.name() != target.1 {
            return Err(error(
                "a patch cannot change an object's kind or name".to_owned(),
            ));
        }
        let mut fields = Vec::new();
        differences(&before, &kept, "", &mut fields);
        effects.push(PatchEffect {
            file: patch.file.clone(),
            declared_at: patch.declared_at.clone(),
            object: format!("{}/{}", target.0, target.1),
            fields,
        });
        objects[index] = patched;
    }
    Ok(effects)
}

fn target_of(patch: &Patch, default_target: Option<(&str, &str)>) -> Option<(String, String)> {
    if let Some((kind, name)) = patch
        .target
        .as_deref()
        .and_then(|target| target.split_once('/'))
    {
        return Some((kind.to_owned(), name.to_owned()));
    }
    let kind = patch.content.get("kind").and_then(Value::as_str);
    let name = patch
        .content
        .get("metadata")
        .and_then(|metadata| metadata.get("name"))
        .and_then(Value::as_str);
    match (kind, name) {
        (Some(kind), Some(name)) => Some((kind.to_owned(), name.to_owned())),
        _ => default_target.map(|(kind, name)| (kind.to_owned(), name.to_owned())),
    }
}

/// The patched value as the same kind of object.
fn read_back(original: &Object, value: Value) -> Result<Object, serde_json::Error> {
    Ok(match original {
        Object::Namespace(_) => Object::Namespace(serde_json::from_value(value)?),
        Object::ConfigMap(_) => Object::ConfigMap(serde_json::from_value(value)?),
        Object::Secret(_) => Object::Secret(serde_json::from_value(value)?),
        Object::Deployment(_) => Object::Deployment(serde_json::from_value(value)?),
        Object::Service(_) => Object::Service(serde_json::from_value(value)?),
        Object::ServiceAccount(_) => Object::ServiceAccount(serde_json::from_value(value)?),
        Object::PersistentVolumeClaim(_) => {
            Object::PersistentVolumeClaim(serde_json::from_value(value)?)
        }
        Object::Ingress(_) => Object::Ingress(serde_json::from_value(value)?),
        Object::Other(_) => Object::Other(serde_json::from_value(value)?),
    })
}

/// The key that identifies an item of a list field, as Kubernetes' strategic merge does;
/// `None` for a list that a patch replaces whole.
fn merge_key(field: &str, path: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => "name",
        "volumeMounts" | "volumeDevices" => "mountPath",
        "hostAliases" => "ip",
        "ports" if path.contains("ontainers") => "containerPort",
        "ports" => "port",
        _ => return None,
    })
}

fn strategic_merge(base: &mut Value, patch: &Value, path: &str) {
    let (Some(base_map), Some(patch_map)) = (base.as_object_mut(), patch.as_object()) else {
        *base = patch.clone();
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch_map.clone();
        replaced.remove("$patch");
        *base_map = replaced;
        return;
    }
    for (key, value) in patch_map {
        if key.starts_with('$') {
            continue;
        }
        let child_path = format!("{path}/{key}");
        match value {
            Value::Null => {
                base_map.remove(key);
            }
            Value::Object(_) => match base_map.get_mut(key) {
                Some(existing) if existing.is_object() => {
                    strategic_merge(existing, value, &child_path);
                }
                _ => {
                    base_map.insert(key.clone(), without_directives(value));
                }
            },
            Value::Array(items) => match (merge_key(key, path), base_map.get_mut(key)) {
                (Some(merge_key), Some(Value::Array(existing))) => {
                    merge_list(existing, items, merge_key, &child_path);
                }
                _ => {
                    let kept: Vec<Value> = items
                        .iter()
                        .filter(|item| item.get("$patch").and_then(Value::as_str) != Some("delete"))
                        .map(without_directives)
                        .collect();
                    base_map.insert(key.clone(), Value::Array(kept));
                }
            },
            _ => {
                base_map.insert(key.clone(), value.clone());
            }
        }
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], merge_key: &str, path: &str) {
    for item in items {
        let key = item.get(merge_key);
        let position = key.and_then(|key| {
            existing
                .iter()
                .position(|current| current.get(merge_key) == Some(key))
        });
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(at), true) => {
                existing.remove(at);
            }
            (None, true) => {}
            (Some(at), false) => strategic_merge(&mut existing[at], item, path),
            (None, false) => existing.push(without_directives(item)),
        }
    }
}

fn without_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| !key.starts_with('$'))
                .map(|(key, value)| (key.clone(), without_directives(value)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_directives).collect()),
        other => other.clone(),
    }
}

/// The paths where two values differ, as JSON pointers; a list is compared as a whole.
fn differences(left: &Value, right: &Value, path: &str, out: &mut Vec<String>) {
    match (left, right) {
        (Value::Object(left), Value::Object(right)) => {
            for (key, value) in left {
                let child = format!("{path}/{key}");
                match right.get(key) {
                    Some(other) => differences(value, other, &child, out),
                    None => out.push(child),
                }
            }
            for key in right.keys().filter(|key| !left.contains_key(*key)) {
                out.push(format!("{path}/{key}"));
            }
        }
        _ if left != right => out.push(if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_named_items_and_replaces_plain_lists() {
        let mut base = json!({"spec": {"containers": [
            {"name": "server", "image": "a", "env": [{"name": "A", "value": "1"}], "args": ["x"]}
        ]}});
        let patch = json!({"spec": {"containers": [
            {"name": "server", "env": [{"name": "B", "value": "2"}, {"name": "A", "$patch": "delete"}], "args": ["y"]},
            {"name": "sidecar", "image": "b"}
        ], "nodeSelector": {"disk": "ssd"}}});
        strategic_merge(&mut base, &patch, "");
        assert_eq!(
            base,
            json!({"spec": {"containers": [
                {"name": "server", "image": "a", "env": [{"name": "B", "value": "2"}], "args": ["y"]},
                {"name": "sidecar", "image": "b"}
            ], "nodeSelector": {"disk": "ssd"}}})
        );
    }

    #[test]
    fn null_removes_a_key() {
        let mut base = json!({"a": {"b": 1, "c": 2}});
        strategic_merge(&mut base, &json!({"a": {"b": null}}), "");
        assert_eq!(base, json!({"a": {"c": 2}}));
    }
}
