//! Value-by-value comparison: both sides flattened to sorted `(path, leaf)` lists with
//! `tier_model::diff::flatten`, then merged in one pass.

use std::cmp::Ordering;

use serde_json::Value;
use tier_model::diff::flatten;

use crate::{ARTIFACT_FIELD, Action, FieldChange, ServiceChange};

/// Leaves by dotted path, sorted by path.
pub(crate) type Leaves = Vec<(String, Value)>;

/// The environment-level leaves of a spec: everything but `services`, and but `name`, which
/// is the plan's own environment on both sides.
pub(crate) fn setting_leaves(spec: &Value) -> Leaves {
    let mut out = Vec::new();
    if let Some(object) = spec.as_object() {
        for (key, value) in object {
            if key != "services" && key != "name" {
                flatten(value, key, &mut out);
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// One service's change. `old` and `new` are the service's values in the deployed and the
/// desired spec, the artifacts their digests.
pub(crate) fn service_change(
    name: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    old_artifact: Option<&str>,
    new_artifact: Option<&str>,
) -> ServiceChange {
    let unchanged = || ServiceChange {
        service: name.to_owned(),
        action: Action::Unchanged,
        fields: Vec::new(),
    };
    let action = match (old, new) {
        (None, None) => return unchanged(),
        (None, Some(_)) => Action::Create,
        (Some(_), None) => Action::Delete,
        // Most services of a large environment are unchanged: one comparison of the two
        // values settles them without flattening either.
        (Some(old), Some(new)) if old == new && old_artifact == new_artifact => {
            return unchanged();
        }
        (Some(_), Some(_)) => Action::Update,
    };
    let mut fields = Vec::new();
    if old_artifact != new_artifact {
        fields.push(FieldChange {
            path: ARTIFACT_FIELD.to_owned(),
            old: old_artifact.map(Value::from),
            new: new_artifact.map(Value::from),
        });
    }
    fields.extend(changes(&leaves(old), &leaves(new)));
    if fields.is_empty() {
        return unchanged();
    }
    ServiceChange {
        service: name.to_owned(),
        action,
        fields,
    }
}

fn leaves(value: Option<&Value>) -> Leaves {
    let mut out = Vec::new();
    if let Some(value) = value {
        flatten(value, "", &mut out);
    }
    out
}

/// The paths whose values differ between two sorted leaf lists, in path order.
pub(crate) fn changes(old: &[(String, Value)], new: &[(String, Value)]) -> Vec<FieldChange> {
    let removed = |(path, value): &(String, Value)| FieldChange {
        path: path.clone(),
        old: Some(value.clone()),
        new: None,
    };
    let added = |(path, value): &(String, Value)| FieldChange {
        path: path.clone(),
        old: None,
        new: Some(value.clone()),
    };
    let mut out = Vec::new();
    let (mut at_old, mut at_new) = (0, 0);
    loop {
        match (old.get(at_old), new.get(at_new)) {
            (None, None) => break,
            (Some(old_leaf), None) => {
                out.push(removed(old_leaf));
                at_old += 1;
            }
            (None, Some(new_leaf)) => {
                out.push(added(new_leaf));
                at_new += 1;
            }
            (Some(old_leaf), Some(new_leaf)) => match old_leaf.0.cmp(&new_leaf.0) {
                Ordering::Less => {
                    out.push(removed(old_leaf));
                    at_old += 1;
                }
                Ordering::Greater => {
                    out.push(added(new_leaf));
                    at_new += 1;
                }
                Ordering::Equal => {
                    if old_leaf.1 != new_leaf.1 {
                        out.push(FieldChange {
                            path: old_leaf.0.clone(),
                            old: Some(old_leaf.1.clone()),
                            new: Some(new_leaf.1.clone()),
                        });
                    }
                    at_old += 1;
                    at_new += 1;
                }
            },
        }
    }
    drop_filled_empty_objects(&mut out);
    out
}

/// An empty object is a leaf of its own, so `config: {}` becoming `config: {"a": 1}` reads as
/// "`config` removed, `config.a` added". The keys added (or removed) say it all; the empty
/// object's line is dropped.
fn drop_filled_empty_objects(changes: &mut Vec<FieldChange>) {
    let is_empty_object =
        |value: &Option<Value>| matches!(value, Some(Value::Object(object)) if object.is_empty());
    if !changes
        .iter()
        .any(|change| is_empty_object(&change.old) || is_empty_object(&change.new))
    {
        return;
    }
    let under = |parent: &str, child: &str| {
        child
            .strip_prefix(parent)
            .is_some_and(|rest| rest.starts_with('.'))
    };
    let redundant: Vec<bool> = changes
        .iter()
        .map(|change| {
            let emptied_into_keys = is_empty_object(&change.old)
                && change.new.is_none()
                && changes
                    .iter()
                    .any(|other| other.old.is_none() && under(&change.path, &other.path));
            let keys_emptied = is_empty_object(&change.new)
                && change.old.is_none()
                && changes
                    .iter()
                    .any(|other| other.new.is_none() && under(&change.path, &other.path));
            emptied_into_keys || keys_emptied
        })
        .collect();
    let mut redundant = redundant.into_iter();
    changes.retain(|_| !redundant.next().unwrap_or(false));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn flat(value: Value) -> Leaves {
        leaves(Some(&value))
    }

    fn change(path: &str, old: Option<Value>, new: Option<Value>) -> FieldChange {
        FieldChange {
            path: path.to_owned(),
            old,
            new,
        }
    }

    #[test]
    fn leaves_are_compared_key_by_key() {
        let old = flat(json!({"replicas": 1, "config": {"text": "a", "gone": true}}));
        let new = flat(json!({"replicas": 1, "config": {"text": "b", "added": 2}}));
        assert_eq!(
            changes(&old, &new),
            vec![
                change("config.added", None, Some(json!(2))),
                change("config.gone", Some(json!(true)), None),
                change("config.text", Some(json!("a")), Some(json!("b"))),
            ]
        );
    }

    #[test]
    fn an_empty_object_that_gains_keys_shows_only_the_keys() {
        let old = flat(json!({"config": {}}));
        let new = flat(json!({"config": {"a": 1}}));
        assert_eq!(
            changes(&old, &new),
            vec![change("config.a", None, Some(json!(1)))]
        );
        assert_eq!(
            changes(&new, &old),
            vec![change("config.a", Some(json!(1)), None)]
        );
    }

    #[test]
    fn an_empty_object_replacing_a_value_is_a_change() {
        let old = flat(json!({"config": {"a": 1}}));
        let new = flat(json!({"config": {"a": {}}}));
        assert_eq!(
            changes(&old, &new),
            vec![change("config.a", Some(json!(1)), Some(json!({})))]
        );
    }

    #[test]
    fn a_null_leaf_is_a_value() {
        let old = flat(json!({"flag": null, "replicas": 1}));
        let new = flat(json!({"replicas": 1}));
        assert_eq!(
            changes(&old, &new),
            vec![change("flag", Some(Value::Null), None)]
        );
    }

    #[test]
    fn the_artifact_counts_as_a_field_and_comes_first() {
        let value = json!({"replicas": 1});
        let service = service_change(
            "backend",
            Some(&value),
            Some(&value),
            Some("sha256:aa"),
            Some("sha256:bb"),
        );
        assert_eq!(service.action, Action::Update);
        assert_eq!(
            service.fields,
            vec![change(
                "artifact",
                Some(json!("sha256:aa")),
                Some(json!("sha256:bb"))
            )]
        );
    }

    #[test]
    fn equal_values_with_keys_in_another_order_are_unchanged() {
        let old: Value =
            serde_json::from_str(r#"{"a": 1, "b": {"c": 2, "d": 3}}"#).unwrap_or_default();
        let new: Value =
            serde_json::from_str(r#"{"b": {"d": 3, "c": 2}, "a": 1}"#).unwrap_or_default();
        let service = service_change("backend", Some(&old), Some(&new), None, None);
        assert_eq!(service.action, Action::Unchanged);
    }

    #[test]
    fn settings_leave_out_the_services_and_the_name() {
        let spec = json!({
            "name": "stage",
            "runtime": "local",
            "project": {"ordering": true},
            "services": {"a": {}},
        });
        let paths: Vec<String> = setting_leaves(&spec)
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        assert_eq!(paths, ["project.ordering", "runtime"]);
    }
}
