//! What a request's path names, and label selectors: the parts of the API's addressing the
//! fake speaks.

use serde_json::Value;

/// The resources the fake knows: plural, API group path, kind, namespaced.
pub(super) const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("namespaces", "api/v1", "Namespace", false),
    ("configmaps", "api/v1", "ConfigMap", true),
    ("services", "api/v1", "Service", true),
    ("secrets", "api/v1", "Secret", true),
    ("deployments", "apis/apps/v1", "Deployment", true),
    ("serviceaccounts", "api/v1", "ServiceAccount", true),
    (
        "persistentvolumeclaims",
        "api/v1",
        "PersistentVolumeClaim",
        true,
    ),
    ("ingresses", "apis/networking.k8s.io/v1", "Ingress", true),
    ("leases", "apis/coordination.k8s.io/v1", "Lease", true),
    (
        "horizontalpodautoscalers",
        "apis/autoscaling/v2",
        "HorizontalPodAutoscaler",
        true,
    ),
];

/// What a request's path names.
pub(super) enum Target {
    List {
        resource: &'static str,
        namespace: Option<String>,
    },
    One {
        resource: &'static str,
        namespace: String,
        name: String,
    },
}

pub(super) fn parse_path(path: &str) -> Option<Target> {
    let (group, rest) = if let Some(rest) = path.strip_prefix("/api/v1/") {
        ("api/v1", rest)
    } else {
        RESOURCES
            .iter()
            .map(|(_, group, ..)| *group)
            .filter(|group| *group != "api/v1")
            .find_map(|group| {
                let rest = path
                    .strip_prefix('/')?
                    .strip_prefix(group)?
                    .strip_prefix('/')?;
                Some((group, rest))
            })?
    };
    let known = |plural: &str, namespaced: bool| {
        RESOURCES
            .iter()
            .find(|(name, in_group, _, scoped)| {
                *name == plural && *in_group == group && *scoped == namespaced
            })
            .map(|(name, ..)| *name)
    };
    let segments: Vec<&str> = rest.split('/').filter(|part| !part.is_empty()).collect();
    match segments.as_slice() {
        [plural] => Some(Target::List {
            resource: RESOURCES
                .iter()
                .find(|(name, in_group, ..)| name == plural && *in_group == group)
                .map(|(name, ..)| *name)?,
            namespace: None,
        }),
        ["namespaces", name] if group == "api/v1" => Some(Target::One {
            resource: "namespaces",
            namespace: String::new(),
            name: (*name).to_owned(),
        }),
        ["namespaces", namespace, plural] => Some(Target::List {
            resource: known(plural, true)?,
            namespace: Some((*namespace).to_owned()),
        }),
        ["namespaces", namespace, plural, name] => Some(Target::One {
            resource: known(plural, true)?,
            namespace: (*namespace).to_owned(),
            name: (*name).to_owned(),
        }),
        _ => None,
    }
}

pub(super) fn kind_of(resource: &str) -> (&'static str, &'static str) {
    RESOURCES
        .iter()
        .find(|(name, ..)| *name == resource)
        .map(|(_, group, kind, _)| {
            let api_version = group.strip_prefix("apis/").unwrap_or("v1");
            (*kind, api_version)
        })
        .unwrap_or(("Unknown", "v1"))
}

pub(super) enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

/// Equality-based selectors (`a=b,c!=d,e,!f`); set-based ones are refused.
pub(super) fn parse_selector(text: &str) -> Result<Vec<Term>, String> {
    text.split(',')
        .filter(|term| !term.trim().is_empty())
        .map(|term| {
            let term = term.trim();
            if term.contains(" in ") || term.contains(" notin ") || term.contains('(') {
                Err(format!(
                    "the fake API server does not take set-based selectors: {term}"
                ))
            } else if let Some((label, value)) = term.split_once("!=") {
                Ok(Term::NotEquals(label.to_owned(), value.to_owned()))
            } else if let Some((label, value)) = term.split_once("==") {
                Ok(Term::Equals(label.to_owned(), value.to_owned()))
            } else if let Some((label, value)) = term.split_once('=') {
                Ok(Term::Equals(label.to_owned(), value.to_owned()))
            } else if let Some(label) = term.strip_prefix('!') {
                Ok(Term::Absent(label.to_owned()))
            } else {
                Ok(Term::Exists(term.to_owned()))
            }
        })
        .collect()
}

pub(super) fn matches(selector: &[Term], labels: &Value) -> bool {
    selector.iter().all(|term| match term {
        Term::Equals(label, value) => labels[label].as_str() == Some(value),
        Term::NotEquals(label, value) => labels[label].as_str() != Some(value),
        Term::Exists(label) => !labels[label].is_null(),
        Term::Absent(label) => labels[label].is_null(),
    })
}

/// The legacy discovery documents for the resources above, as kubectl reads them to map a
/// kind to its resource: `/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`.
pub(super) fn discovery(path: &str) -> Option<Value> {
    let resources = |group_version: &str| -> Value {
        let list: Vec<Value> = RESOURCES
            .iter()
            .filter(|(_, group, ..)| {
                group.strip_prefix("apis/") == Some(group_version)
                    || (*group == "api/v1" && group_version == "v1")
            })
            .map(|(plural, _, kind, namespaced)| {
                serde_json::json!({
                    "name": plural,
                    "singularName": kind.to_lowercase(),
                    "namespaced": namespaced,
                    "kind": kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update"],
                })
            })
            .collect();
        serde_json::json!({
            "kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": group_version, "resources": list,
        })
    };
    match path.trim_end_matches('/') {
        "/api" => Some(serde_json::json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        })),
        "/apis" => {
            let mut groups: Vec<&str> = RESOURCES
                .iter()
                .filter_map(|(_, group, ..)| group.strip_prefix("apis/"))
                .collect();
            groups.sort_unstable();
            groups.dedup();
            let groups: Vec<Value> = groups
                .iter()
                .map(|group_version| {
                    let (name, version) =
                        group_version.split_once('/').unwrap_or((group_version, "v1"));
                    let version =
                        serde_json::json!({"groupVersion": group_version, "version": version});
                    serde_json::json!({"name": name, "versions": [version], "preferredVersion": version})
                })
                .collect();
            Some(serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        "/api/v1" => Some(resources("v1")),
        other => {
            let group_version = other.strip_prefix("/apis/")?;
            if group_version.matches('/').count() != 1 {
                return None;
            }
            RESOURCES
                .iter()
                .any(|(_, group, ..)| group.strip_prefix("apis/") == Some(group_version))
                .then(|| resources(group_version))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_selectors_match_labels() {
        let labels = json!({"a": "1", "b": "2"});
        let selector = parse_selector("a=1,b!=3,!c,a").unwrap_or_default();
        assert!(matches(&selector, &labels));
        let selector = parse_selector("a==2").unwrap_or_default();
        assert!(!matches(&selector, &labels));
        assert!(parse_selector("a in (1)").is_err());
    }
}
