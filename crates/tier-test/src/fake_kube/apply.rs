//! Server-side apply (`PATCH` with `application/apply-patch+yaml`), as the API server does
//! it: a `fieldManager` is required; the applier owns every field of its body; without
//! `force=true` a change to a field another manager owns is a 409 `Conflict`; an apply that
//! changes nothing keeps the object as it was; `dryRun=All` answers without storing.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::routes::kind_of;
use super::{Cluster, Stored, fields, key, now_seconds, same_content, status};

impl Cluster {
    pub(super) fn apply(
        &mut self,
        resource: &str,
        namespace: &str,
        name: &str,
        query: &BTreeMap<String, String>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let content_type = headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if content_type != "application/apply-patch+yaml" {
            return status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                &format!("the fake API server only takes server-side apply, not {content_type:?}"),
            );
        }
        let Some(manager) = query
            .get("fieldManager")
            .filter(|manager| !manager.is_empty())
        else {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "fieldManager is required for apply requests",
            );
        };
        let mut object: Value = match serde_json::from_slice(body) {
            Ok(object) => object,
            Err(error) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("the body is not an object: {error}"),
                );
            }
        };
        let (kind, api_version) = kind_of(resource);
        if object["kind"] != json!(kind) || object["apiVersion"] != json!(api_version) {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("the body is not a {api_version} {kind}"),
            );
        }
        if object["metadata"]["name"] != json!(name) {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the name of the object does not match the name on the URL",
            );
        }
        if !namespace.is_empty() {
            if !object["metadata"]["namespace"].is_null()
                && object["metadata"]["namespace"] != json!(namespace)
            {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the namespace of the object does not match the namespace on the URL",
                );
            }
            if !self.objects.contains_key(&key("namespaces", "", namespace)) {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("namespaces \"{namespace}\" not found"),
                );
            }
            object["metadata"]["namespace"] = json!(namespace);
        }
        self.version += 1;
        let version = self.version;
        let previous = self.objects.get(&key(resource, namespace, name));
        let owners = previous
            .map(|previous| previous.object["metadata"]["managedFields"].clone())
            .unwrap_or_else(|| json!([]));
        let applied_fields = fields::fields_of(&object);
        // Without `force`, an apply may not change a field another manager owns.
        if query.get("force").is_none_or(|force| force != "true")
            && let Some(previous) = previous
        {
            let conflicts = fields::conflicts(
                &owners,
                manager,
                &applied_fields,
                &fields::changed(&previous.object, &object),
            );
            if !conflicts.is_empty() {
                self.version -= 1;
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    &format!(
                        "Apply failed with {} conflict{}: {}",
                        conflicts.len(),
                        if conflicts.len() == 1 { "" } else { "s" },
                        conflicts.join(", ")
                    ),
                );
            }
        }
        let (uid, generation, reads, ready, cluster_ip) = match previous {
            Some(previous) => {
                let old = &previous.object;
                let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
                let changed = old["spec"] != object["spec"];
                (
                    old["metadata"]["uid"].clone(),
                    if changed { generation + 1 } else { generation },
                    if changed { 0 } else { previous.reads },
                    previous.ready,
                    old["spec"]["clusterIP"].clone(),
                )
            }
            None => {
                self.uids += 1;
                let cluster_ip = if resource == "services" {
                    json!(format!("10.96.0.{}", self.uids % 250 + 1))
                } else {
                    Value::Null
                };
                (json!(format!("uid-{}", self.uids)), 1, 0, None, cluster_ip)
            }
        };
        let metadata = &mut object["metadata"];
        metadata["uid"] = uid;
        metadata["resourceVersion"] = json!(version.to_string());
        metadata["generation"] = json!(generation);
        metadata["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        // Forced: the applier owns every field of its body; others keep the rest.
        metadata["managedFields"] = fields::take(
            &owners,
            manager,
            "Apply",
            &fields::rfc3339(now_seconds()),
            api_version,
            &applied_fields,
            false,
        );
        if !cluster_ip.is_null() {
            object["spec"]["clusterIP"] = cluster_ip;
        }
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
        let stored = Stored {
            object,
            reads,
            ready,
        };
        let mut stored = stored;
        // An apply that changes nothing keeps the object as it was (its resourceVersion and
        // its owners' times), as the API server does.
        if let Some(previous) = self.objects.get(&key(resource, namespace, name))
            && same_content(&previous.object, &stored.object)
        {
            stored.object["metadata"] = previous.object["metadata"].clone();
            self.version -= 1;
        }
        let shown = self.shown(&stored);
        // A dry run (`kubectl diff --server-side`) answers what the apply would store.
        if query.get("dryRun").is_none_or(|value| value != "All") {
            self.objects.insert(key(resource, namespace, name), stored);
        }
        (StatusCode::OK, axum::Json(shown)).into_response()
    }
}
