//! Drift: where the live objects differ from what tier applied, with low noise. Pure: the
//! objects tier rendered for the deployed revision, the live objects carrying tier's labels
//! and the namespace's HorizontalPodAutoscalers go in; the differences come out, each
//! classified and attributed to the field manager that owns the field now (from the live
//! object's `managedFields`).
//!
//! Only the fields tier renders are compared, so server defaults (a Service's clusterIP, a
//! Deployment's strategy defaults) are never drift. A field another controller owns by design
//! (the `spec.replicas` of a Deployment an HPA scales) and what other managers added beside
//! tier's fields (an injected sidecar container) are listed apart, as `expected`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use tier_model::quantity::Quantity;

use crate::cluster::FIELD_MANAGER;
use crate::object::Object;
use crate::render::NAME_LABEL;

/// One difference between what tier applied and what runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Drift {
    /// The service the object belongs to (its `app.kubernetes.io/name` label), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `Deployment`, `Service`, ...
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub change: Change,
    /// Why this is not drift: another controller owns the field by design
    /// (`HorizontalPodAutoscaler api`), or another manager added it beside tier's fields.
    /// Such entries are shown only when asked for (`tier drift --all`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
}

/// What changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum Change {
    /// A field tier applied has another value, set by `manager` at `time`.
    Edited {
        path: String,
        applied: Value,
        live: Value,
        manager: Option<String>,
        time: Option<String>,
    },
    /// A container runs another image than the revision's artifact.
    Image {
        container: String,
        applied: String,
        live: String,
        manager: Option<String>,
        time: Option<String>,
    },
    /// The object tier applied is gone.
    Deleted,
    /// An object carries tier's labels for this environment, and the revision has no such object.
    Added,
    /// Another manager added a named entry beside tier's (a sidecar container).
    Extra {
        path: String,
        manager: Option<String>,
    },
}

impl Drift {
    /// A stable key for the drift records (first and last seen): the object and the field.
    pub fn key(&self) -> String {
        let field = match &self.change {
            Change::Edited { path, .. } | Change::Extra { path, .. } => path.clone(),
            Change::Image { container, .. } => format!("image of {container}"),
            Change::Deleted => "deleted".to_owned(),
            Change::Added => "added".to_owned(),
        };
        format!("{} {}/{}: {field}", self.kind, self.namespace, self.name)
    }

    /// One line: `Deployment api: spec.replicas 3 → 5 by kubectl-edit at 2026-12-03T15:04:05Z`.
    pub fn describe(&self) -> String {
        let by = |manager: &Option<String>, time: &Option<String>| {
            let mut text = String::new();
            if let Some(manager) = manager {
                text.push_str(&format!(" by manager {manager}"));
            }
            if let Some(time) = time {
                text.push_str(&format!(" at {time}"));
            }
            text
        };
        let what = match &self.change {
            Change::Edited {
                path,
                applied,
                live,
                manager,
                time,
            } => format!(
                "{path} {} → {}{}",
                short(applied),
                short(live),
                by(manager, time)
            ),
            Change::Image {
                container,
                applied,
                live,
                manager,
                time,
            } => format!(
                "container {container} runs image {live}, the revision's is {applied}{}",
                by(manager, time)
            ),
            Change::Deleted => "deleted".to_owned(),
            Change::Added => "added with tier's labels, not in the revision".to_owned(),
            Change::Extra { path, manager } => format!("{path} added{}", by(manager, &None)),
        };
        let expected = self
            .expected
            .as_ref()
            .map(|why| format!(" (expected: {why})"))
            .unwrap_or_default();
        format!("{} {}: {what}{expected}", self.kind, self.name)
    }
}

fn short(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "(none)".to_owned(),
        other => {
            let text = other.to_string();
            if text.len() > 60 {
                format!(
                    "{}…",
                    &text[..text.char_indices().nth(57).map_or(text.len(), |(at, _)| at)]
                )
            } else {
                text
            }
        }
    }
}

/// `(kind, namespace, name)`.
pub type ObjectKey = (String, String, String);

/// The differences between `applied` (rendered from the deployed revision) and `live` (the
/// objects carrying tier's labels, by key), given the namespace's HPAs.
pub fn drift(applied: &[Object], live: &BTreeMap<ObjectKey, Value>, hpas: &[Value]) -> Vec<Drift> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    for object in applied {
        if matches!(object, Object::Namespace(_)) {
            continue;
        }
        let key = (
            object.kind().to_owned(),
            object.namespace().unwrap_or_default().to_owned(),
            object.name().to_owned(),
        );
        seen.insert(key.clone());
        let Ok(mut want) = serde_json::to_value(object) else {
            continue;
        };
        let service = service_of(&want);
        let entry = |change: Change, expected: Option<String>| Drift {
            service: service.clone(),
            kind: key.0.clone(),
            namespace: key.1.clone(),
            name: key.2.clone(),
            change,
            expected,
        };
        let Some(live) = live.get(&key) else {
            found.push(entry(Change::Deleted, None));
            continue;
        };
        if let Some(map) = want.as_object_mut() {
            // A Secret's values are not kept with the revision; its data is not compared.
            if key.0 == "Secret" {
                map.remove("data");
                map.remove("stringData");
            }
            map.remove("status");
        }
        let owners = &live["metadata"]["managedFields"];
        let scaled_by = hpas.iter().find_map(|hpa| {
            let target = &hpa["spec"]["scaleTargetRef"];
            (key.0 == "Deployment" && target["kind"] == "Deployment" && target["name"] == key.2)
                .then(|| {
                    format!(
                        "HorizontalPodAutoscaler {} owns the replicas",
                        hpa["metadata"]["name"].as_str().unwrap_or_default()
                    )
                })
        });
        let mut differences = Vec::new();
        compare(&want, live, &mut Vec::new(), &mut differences);
        for difference in differences {
            let owner = owner_of(owners, &difference.segments);
            let (manager, time) = match owner {
                Some((manager, _)) if manager == FIELD_MANAGER => (None, None),
                Some((manager, time)) => (Some(manager), time),
                None => (None, None),
            };
            let path = dotted(&difference.segments);
            if difference.applied.is_null() {
                found.push(entry(
                    Change::Extra {
                        path,
                        manager: manager.clone(),
                    },
                    Some(format!(
                        "added by {}",
                        manager.as_deref().unwrap_or("another manager")
                    )),
                ));
                continue;
            }
            let expected = (path == "spec.replicas")
                .then(|| scaled_by.clone())
                .flatten();
            let change = match image_of(&difference) {
                Some(container) => Change::Image {
                    container,
                    applied: short(&difference.applied),
                    live: short(&difference.live),
                    manager,
                    time,
                },
                None => Change::Edited {
                    path,
                    applied: difference.applied,
                    live: difference.live,
                    manager,
                    time,
                },
            };
            found.push(entry(change, expected));
        }
    }
    for (key, object) in live {
        if key.0 != "Namespace" && !seen.contains(key) {
            found.push(Drift {
                service: service_of(object),
                kind: key.0.clone(),
                namespace: key.1.clone(),
                name: key.2.clone(),
                change: Change::Added,
                expected: None,
            });
        }
    }
    found
}

/// The service an object belongs to, by its name label.
fn service_of(object: &Value) -> Option<String> {
    object["metadata"]["labels"][NAME_LABEL]
        .as_str()
        .map(str::to_owned)
}

/// A step into a value: an object's key, or a list entry by its `name`.
#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Key(String),
    Named(String),
    Index(usize),
}

struct Difference {
    segments: Vec<Segment>,
    applied: Value,
    live: Value,
}

/// Every leaf of `want` whose value in `live` differs; named list entries match by name, and
/// named entries only `live` has come out with `applied` null.
fn compare(want: &Value, live: &Value, at: &mut Vec<Segment>, out: &mut Vec<Difference>) {
    match (want, live) {
        (Value::Object(want), Value::Object(live_map)) => {
            for (key, value) in want {
                at.push(Segment::Key(key.clone()));
                compare(value, live_map.get(key).unwrap_or(&Value::Null), at, out);
                at.pop();
            }
        }
        (Value::Array(want), Value::Array(live_items))
            if !want.is_empty() && want.iter().all(|item| item["name"].is_string()) =>
        {
            for item in want {
                let name = item["name"].as_str().unwrap_or_default().to_owned();
                let live_item = live_items
                    .iter()
                    .find(|candidate| candidate["name"] == item["name"])
                    .unwrap_or(&Value::Null);
                at.push(Segment::Named(name));
                compare(item, live_item, at, out);
                at.pop();
            }
            for item in live_items {
                if !want.iter().any(|wanted| wanted["name"] == item["name"]) {
                    at.push(Segment::Named(
                        item["name"].as_str().unwrap_or_default().to_owned(),
                    ));
                    out.push(Difference {
                        segments: at.clone(),
                        applied: Value::Null,
                        live: item.clone(),
                    });
                    at.pop();
                }
            }
        }
        (Value::Array(want_items), Value::Array(live_items))
            if want_items.len() == live_items.len() =>
        {
            for (index, (item, live_item)) in want_items.iter().zip(live_items).enumerate() {
                at.push(Segment::Index(index));
                compare(item, live_item, at, out);
                at.pop();
            }
        }
        (want, live) if !same(want, live, at) => out.push(Difference {
            segments: at.clone(),
            applied: want.clone(),
            live: live.clone(),
        }),
        _ => {}
    }
}

/// Equal as the API server would store them: a number and its string spelling (`"1"` and
/// `1` in quantities) are not told apart, and a resource quantity the server wrote in its
/// canonical form (`0.5` CPU as `500m`, `1024Mi` as `1Gi`) is the same quantity.
fn same(want: &Value, live: &Value, at: &[Segment]) -> bool {
    want == live
        || match (want, live) {
            (Value::Number(number), Value::String(text))
            | (Value::String(text), Value::Number(number)) => number.to_string() == *text,
            (Value::String(want), Value::String(live)) => same_quantity(want, live, at),
            _ => false,
        }
}

fn same_quantity(want: &str, live: &str, at: &[Segment]) -> bool {
    fn key(segment: Option<&Segment>) -> &str {
        match segment {
            Some(Segment::Key(key)) => key,
            _ => "",
        }
    }
    let field = key(at.last());
    let in_resources = matches!(key(at.iter().rev().nth(1)), "limits" | "requests");
    let parse = match field {
        "cpu" if in_resources => Quantity::parse_cpu,
        "memory" | "ephemeral-storage" | "storage" if in_resources => Quantity::parse_memory,
        "sizeLimit" => Quantity::parse_memory,
        _ => return false,
    };
    match (parse(want), parse(live)) {
        (Ok(want), Ok(live)) => want.base_units() == live.base_units(),
        _ => false,
    }
}

fn dotted(segments: &[Segment]) -> String {
    let mut text = String::new();
    for segment in segments {
        match segment {
            Segment::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            Segment::Named(name) => text.push_str(&format!("[{name}]")),
            Segment::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

/// The container whose image this difference is, if it is one.
fn image_of(difference: &Difference) -> Option<String> {
    match difference.segments.as_slice() {
        [
            ..,
            Segment::Key(list),
            Segment::Named(container),
            Segment::Key(field),
        ] if field == "image" && (list == "containers" || list == "initContainers") => {
            Some(container.clone())
        }
        _ => None,
    }
}

/// The manager (and time) whose `fieldsV1` holds this path: the owner of the deepest
/// prefix any entry holds.
fn owner_of(entries: &Value, segments: &[Segment]) -> Option<(String, Option<String>)> {
    let mut best: Option<(usize, String, Option<String>)> = None;
    for entry in entries.as_array().into_iter().flatten() {
        let depth = held_depth(&entry["fieldsV1"], segments);
        if depth > 0 && best.as_ref().is_none_or(|(deepest, ..)| depth > *deepest) {
            best = Some((
                depth,
                entry["manager"].as_str().unwrap_or_default().to_owned(),
                entry["time"].as_str().map(str::to_owned),
            ));
        }
    }
    best.map(|(_, manager, time)| (manager, time))
}

/// How many leading segments of `segments` the set holds (all of them for an owned leaf).
fn held_depth(set: &Value, segments: &[Segment]) -> usize {
    let mut node = set;
    for (depth, segment) in segments.iter().enumerate() {
        let key = match segment {
            Segment::Key(key) => format!("f:{key}"),
            Segment::Named(name) => format!("k:{}", serde_json::json!({"name": name})),
            Segment::Index(_) => return depth,
        };
        match node.get(&key) {
            Some(next) => node = next,
            None => return depth,
        }
    }
    segments.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, image: &str) -> Object {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}},
                                  "spec": {"containers": [{"name": "api", "image": image}]}}},
        }))
        .expect("a Deployment")
    }

    fn live(object: &Object, owners: Value) -> BTreeMap<ObjectKey, Value> {
        let mut value = serde_json::to_value(object).expect("JSON");
        value["metadata"]["managedFields"] = owners;
        value["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        BTreeMap::from([(
            ("Deployment".to_owned(), "shop".to_owned(), "api".to_owned()),
            value,
        )])
    }

    #[test]
    fn server_defaults_are_not_drift_and_an_edit_is_named_by_its_manager() {
        let applied = [deployment(3, "api:1")];
        assert!(drift(&applied, &live(&applied[0], json!([])), &[]).is_empty());
        let owners = json!([
            {"manager": "tier", "fieldsV1": {"f:spec": {"f:template": {}}}},
            {"manager": "kubectl-edit", "time": "2026-12-03T15:00:00Z",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        ]);
        let found = drift(
            &applied,
            &live(&deployment(5, "api:1"), owners.clone()),
            &[],
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].describe(),
            "Deployment api: spec.replicas 3 → 5 by manager kubectl-edit at 2026-12-03T15:00:00Z"
        );
        let hpa = json!({"metadata": {"name": "api"},
                         "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"}}});
        let found = drift(&applied, &live(&deployment(5, "api:1"), owners), &[hpa]);
        assert!(found[0].expected.is_some(), "{found:?}");
    }

    #[test]
    fn images_deletions_additions_and_sidecars_are_classified() {
        let applied = [deployment(3, "api:1")];
        let found = drift(&applied, &live(&deployment(3, "api:2"), json!([])), &[]);
        assert!(
            matches!(&found[0].change, Change::Image { container, live, .. }
            if container == "api" && live == "api:2"),
            "{found:?}"
        );
        let found = drift(&applied, &BTreeMap::new(), &[]);
        assert_eq!(found[0].change, Change::Deleted);
        let mut extra = live(&applied[0], json!([]));
        let key = ("Deployment".to_owned(), "shop".to_owned(), "api".to_owned());
        if let Some(object) = extra.get_mut(&key)
            && let Some(containers) =
                object["spec"]["template"]["spec"]["containers"].as_array_mut()
        {
            containers.push(json!({"name": "istio-proxy", "image": "istio"}));
        }
        extra.insert(
            ("Service".to_owned(), "shop".to_owned(), "old".to_owned()),
            json!({}),
        );
        let found = drift(&applied, &extra, &[]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].expected.is_some() && matches!(found[0].change, Change::Extra { .. }));
        assert_eq!(found[1].change, Change::Added);
    }

    #[test]
    fn a_quantity_the_server_wrote_canonically_is_not_drift_and_another_value_is() {
        let with_cpu = |cpu: &str, memory: &str| {
            let mut object = serde_json::to_value(deployment(1, "api:1")).expect("JSON");
            object["spec"]["template"]["spec"]["containers"][0]["resources"] =
                json!({"limits": {"cpu": cpu, "memory": memory}});
            serde_json::from_value::<Object>(object).expect("a Deployment")
        };
        let applied = [with_cpu("0.5", "1024Mi")];
        assert!(
            drift(&applied, &live(&with_cpu("500m", "1Gi"), json!([])), &[]).is_empty(),
            "0.5 CPU is 500m and 1024Mi is 1Gi"
        );
        let found = drift(&applied, &live(&with_cpu("1", "1Gi"), json!([])), &[]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].describe().contains("limits.cpu 0.5 → 1"),
            "{found:?}"
        );
    }
}
