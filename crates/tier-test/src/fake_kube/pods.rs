//! Pods, as far as `tier logs` needs them. The fake runs no pods: each Deployment has
//! `spec.replicas` pods named `<deployment>-<generation>-<index>`, with the pod template's
//! labels, listed by label selector; their logs are the lines a test wrote with
//! [`FakeKube::log`](super::FakeKube::log), each stamped when it was written. `GET
//! .../pods/<name>/log` answers them as the API server does (`timestamps`, `tailLines`);
//! with `follow=true` it sends what there is and ends, as a real stream ends when its
//! container stops.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::routes::{matches, parse_selector};
use super::{Cluster, status};

impl Cluster {
    /// The pods the Deployments of `namespace` have.
    fn pods(&self, namespace: &str) -> Vec<Value> {
        let mut pods = Vec::new();
        for ((resource, space, name), stored) in &self.objects {
            if resource != "deployments" || space != namespace {
                continue;
            }
            let deployment = &stored.object;
            let generation = deployment["metadata"]["generation"].as_i64().unwrap_or(1);
            let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1);
            for index in 0..replicas {
                pods.push(json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": format!("{name}-{generation}-{index}"),
                        "namespace": namespace,
                        "labels": deployment["spec"]["template"]["metadata"]["labels"],
                    },
                    "spec": deployment["spec"]["template"]["spec"],
                    "status": {"phase": "Running"},
                }));
            }
        }
        pods
    }

    pub(super) fn list_pods(&self, namespace: &str, query: &BTreeMap<String, String>) -> Response {
        let selector = match query.get("labelSelector").map(|text| parse_selector(text)) {
            None => Vec::new(),
            Some(Ok(selector)) => selector,
            Some(Err(why)) => return status(StatusCode::BAD_REQUEST, "BadRequest", &why),
        };
        let items: Vec<Value> = self
            .pods(namespace)
            .into_iter()
            .filter(|pod| matches(&selector, &pod["metadata"]["labels"]))
            .collect();
        (
            StatusCode::OK,
            axum::Json(json!({
                "apiVersion": "v1", "kind": "PodList",
                "metadata": {"resourceVersion": self.version.to_string()},
                "items": items,
            })),
        )
            .into_response()
    }

    pub(super) fn pod_log(
        &self,
        namespace: &str,
        pod: &str,
        query: &BTreeMap<String, String>,
    ) -> Response {
        if !self
            .pods(namespace)
            .iter()
            .any(|candidate| candidate["metadata"]["name"] == json!(pod))
        {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("pods \"{pod}\" not found"),
            );
        }
        let lines = self
            .logs
            .get(&(namespace.to_owned(), pod.to_owned()))
            .cloned()
            .unwrap_or_default();
        let tail = query
            .get("tailLines")
            .and_then(|text| text.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        let stamped = query.get("timestamps").is_some_and(|value| value == "true");
        let skip = lines.len().saturating_sub(tail);
        let mut body = String::new();
        for (stamp, line) in lines.iter().skip(skip) {
            if stamped {
                body.push_str(stamp);
                body.push(' ');
            }
            body.push_str(line);
            body.push('\n');
        }
        (StatusCode::OK, body).into_response()
    }
}
