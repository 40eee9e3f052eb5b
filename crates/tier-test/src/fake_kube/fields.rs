//! Field ownership as the API server records it in `metadata.managedFields`: one entry per
//! field manager, its operation (`Apply` or `Update`), its time and the fields it owns in the
//! `FieldsV1` shape (`{"f:spec": {"f:replicas": {}}}`, list entries keyed by name as
//! `k:{"name":"api"}`). A server-side apply gives the applier every field of its body (forced:
//! taken from whoever owned them); an edit by another manager takes the fields it changed.
//! Only what a change touched moves, so a field tier applied and nobody edited stays tier's.

use serde_json::{Map, Value, json};

/// The `FieldsV1` set of every leaf in `object` (metadata's server fields aside).
pub(super) fn fields_of(object: &Value) -> Value {
    let mut set = fields(object);
    if let Some(metadata) = set.get_mut("f:metadata").and_then(Value::as_object_mut) {
        for server in [
            "f:uid",
            "f:resourceVersion",
            "f:generation",
            "f:creationTimestamp",
            "f:managedFields",
            "f:namespace",
            "f:name",
        ] {
            metadata.remove(server);
        }
    }
    for top in ["f:apiVersion", "f:kind", "f:status"] {
        if let Some(map) = set.as_object_mut() {
            map.remove(top);
        }
    }
    set
}

fn fields(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (format!("f:{key}"), fields(value)))
                .collect(),
        ),
        Value::Array(items)
            if items.iter().all(|item| item["name"].is_string()) && !items.is_empty() =>
        {
            Value::Object(
                items
                    .iter()
                    .map(|item| {
                        let key = json!({"name": item["name"]}).to_string();
                        let mut owned = fields(item);
                        if let Some(map) = owned.as_object_mut() {
                            map.insert(".".to_owned(), json!({}));
                        }
                        (format!("k:{key}"), owned)
                    })
                    .collect(),
            )
        }
        _ => json!({}),
    }
}

/// The leaf fields whose values differ between `old` and `new` (added, changed or removed),
/// as a `FieldsV1` set.
pub(super) fn changed(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(before), Value::Object(after)) => {
            let mut set = Map::new();
            for key in before.keys().chain(after.keys()) {
                let (a, b) = (
                    before.get(key).unwrap_or(&Value::Null),
                    after.get(key).unwrap_or(&Value::Null),
                );
                if a != b && !set.contains_key(&format!("f:{key}")) {
                    set.insert(format!("f:{key}"), changed(a, b));
                }
            }
            Value::Object(set)
        }
        (Value::Array(before), Value::Array(after))
            if before
                .iter()
                .chain(after)
                .all(|item| item["name"].is_string()) =>
        {
            let mut set = Map::new();
            for item in after {
                let old = before
                    .iter()
                    .find(|candidate| candidate["name"] == item["name"])
                    .unwrap_or(&Value::Null);
                if old != item {
                    let key = json!({"name": item["name"]}).to_string();
                    set.insert(format!("k:{key}"), changed(old, item));
                }
            }
            Value::Object(set)
        }
        _ => json!({}),
    }
}

/// `set` without the fields of `taken`: what a manager keeps when another takes those;
/// `None` when nothing is left.
pub(super) fn without(set: &Value, taken: &Value) -> Option<Value> {
    match (set, taken) {
        (_, Value::Object(taken)) if taken.is_empty() => None,
        (Value::Object(owned), Value::Object(taken)) => {
            if owned.is_empty() {
                return Some(set.clone());
            }
            let mut kept = Map::new();
            for (key, sub) in owned {
                match taken.get(key) {
                    None => {
                        kept.insert(key.clone(), sub.clone());
                    }
                    Some(inner) => {
                        if let Some(rest) = without(sub, inner) {
                            kept.insert(key.clone(), rest);
                        }
                    }
                }
            }
            if kept.keys().all(|key| key == ".") {
                None
            } else {
                Some(Value::Object(kept))
            }
        }
        _ => Some(set.clone()),
    }
}

/// The object's managedFields after `manager` took `taken` with `operation` at `time`: every
/// other entry loses those fields (and disappears when it owns nothing), the manager's entry
/// owns them, besides what it owned before when `keep_own` (an edit adds to what the editor
/// owns; an apply owns exactly its body).
pub(super) fn take(
    entries: &Value,
    manager: &str,
    operation: &str,
    time: &str,
    api_version: &str,
    taken: &Value,
    keep_own: bool,
) -> Value {
    let mut result = Vec::new();
    let mut own = json!({});
    for entry in entries.as_array().into_iter().flatten() {
        let fields = &entry["fieldsV1"];
        if entry["manager"] == json!(manager) && entry["operation"] == json!(operation) {
            if keep_own {
                own = fields.clone();
            }
            continue;
        }
        if let Some(rest) = without(fields, taken) {
            let mut entry = entry.clone();
            entry["fieldsV1"] = rest;
            result.push(entry);
        }
    }
    let mut mine = own;
    merge(&mut mine, taken);
    result.push(json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": mine,
    }));
    Value::Array(result)
}

fn merge(into: &mut Value, from: &Value) {
    let (Value::Object(into), Value::Object(from)) = (into, from) else {
        return;
    };
    for (key, value) in from {
        match into.get_mut(key) {
            Some(existing) => merge(existing, value),
            None => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The fields an apply by `manager` without `force` may not take: those of `applied` whose
/// value it changes (`changed`) and that another manager owns, as the API server reports
/// them (`conflict with "kubectl-edit" using apps/v1: .spec.replicas`), one per field.
pub(super) fn conflicts(
    entries: &Value,
    manager: &str,
    applied: &Value,
    changed: &Value,
) -> Vec<String> {
    let Some(taken) = intersect(applied, changed) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.as_array().into_iter().flatten() {
        if entry["manager"] == json!(manager) {
            continue;
        }
        if let Some(owned) = intersect(&entry["fieldsV1"], &taken) {
            let mut paths = Vec::new();
            leaves(&owned, &mut String::new(), &mut paths);
            for path in paths {
                found.push(format!(
                    "conflict with {} using {}: {path}",
                    entry["manager"],
                    entry["apiVersion"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    found
}

/// The leaf fields both sets hold; `None` when they share none.
fn intersect(a: &Value, b: &Value) -> Option<Value> {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return None;
    };
    if a.is_empty() && b.is_empty() {
        return Some(json!({}));
    }
    let mut both = Map::new();
    for (key, value) in a {
        if key == "." {
            continue;
        }
        if let Some(other) = b.get(key)
            && let Some(shared) = intersect(value, other)
        {
            both.insert(key.clone(), shared);
        }
    }
    (!both.is_empty()).then_some(Value::Object(both))
}

/// Every leaf of a `FieldsV1` set as a path: `.spec.template.spec.containers[name="api"].image`.
fn leaves(set: &Value, at: &mut String, out: &mut Vec<String>) {
    let Some(map) = set.as_object().filter(|map| !map.is_empty()) else {
        out.push(at.clone());
        return;
    };
    for (key, sub) in map {
        let length = at.len();
        if let Some(field) = key.strip_prefix("f:") {
            at.push('.');
            at.push_str(field);
        } else if let Some(keys) = key.strip_prefix("k:") {
            let name: Value = serde_json::from_str(keys).unwrap_or_default();
            at.push_str(&format!("[name={}]", name["name"]));
        }
        leaves(sub, at, out);
        at.truncate(length);
    }
}

/// `2026-12-03T15:04:05Z` for a Unix time in seconds, as the API server writes times.
pub fn rfc3339(seconds: u64) -> String {
    let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
    jiff::Timestamp::from_second(seconds)
        .unwrap_or(jiff::Timestamp::MAX)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_takes_only_the_fields_it_changed() {
        let applied = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "api", "image": "api:1"}]}}}});
        let mut edited = applied.clone();
        edited["spec"]["replicas"] = json!(5);
        let entries = take(
            &json!([]),
            "tier",
            "Apply",
            "t0",
            "apps/v1",
            &fields_of(&applied),
            false,
        );
        let taken = changed(&applied, &edited);
        assert_eq!(taken, json!({"f:spec": {"f:replicas": {}}}));
        let entries = take(
            &entries,
            "kubectl-edit",
            "Update",
            "t1",
            "apps/v1",
            &taken,
            true,
        );
        assert_eq!(entries[0]["manager"], "tier");
        assert!(entries[0]["fieldsV1"]["f:spec"]["f:replicas"].is_null());
        assert!(
            !entries[0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
                ["k:{\"name\":\"api\"}"]["f:image"]
                .is_null()
        );
        assert_eq!(
            entries[1]["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}}})
        );
    }

    #[test]
    fn an_apply_that_changes_a_field_another_manager_owns_conflicts() {
        let applied = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "api", "image": "api:1"}]}}}});
        let entries = json!([
            {"manager": "tier", "apiVersion": "apps/v1", "fieldsV1": fields_of(&applied)},
            {"manager": "kubectl-edit", "apiVersion": "apps/v1",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        ]);
        let mut live = applied.clone();
        live["spec"]["replicas"] = json!(5);
        let found = conflicts(
            &entries,
            "tier",
            &fields_of(&applied),
            &changed(&live, &applied),
        );
        assert_eq!(
            found,
            ["conflict with \"kubectl-edit\" using apps/v1: .spec.replicas"]
        );
        // Applying the value the other manager set changes nothing, so nothing conflicts.
        assert!(conflicts(&entries, "tier", &fields_of(&live), &changed(&live, &live)).is_empty());
        let mut image = applied.clone();
        image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("api:2");
        assert!(
            conflicts(
                &entries,
                "tier",
                &fields_of(&image),
                &changed(&applied, &image)
            )
            .is_empty(),
            "tier owns the image"
        );
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_310_245), "2026-12-03T15:04:05Z");
    }
}
