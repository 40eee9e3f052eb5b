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
