//! Writes other than server-side apply, with the API server's optimistic concurrency: `POST`
//! creates (409 `AlreadyExists` when the name is taken), `PUT` replaces (409 `Conflict` when
//! the body's `metadata.resourceVersion` is not the stored one, 404 when there is nothing to
//! replace; its `fieldManager` takes the fields it changed, as an `Update` in
//! `managedFields`), and a `DELETE` body's `preconditions` (`resourceVersion`, `uid`) must hold.
//! These are what a lock (a Lease) and records written by several machines rely on.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::routes::kind_of;
use super::{Cluster, Stored, fields, key, not_found, now_seconds, status};

impl Cluster {
    /// `POST` to a collection.
    pub(super) fn create(
        &mut self,
        resource: &str,
        namespace: &str,
        query: &BTreeMap<String, String>,
        body: &[u8],
    ) -> Response {
        let mut object = match self.body_of(resource, namespace, body) {
            Ok(object) => object,
            Err(response) => return *response,
        };
        let Some(name) = object["metadata"]["name"].as_str().map(str::to_owned) else {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "metadata.name: Required value: name is required",
            );
        };
        if self.objects.contains_key(&key(resource, namespace, &name)) {
            return status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("{} \"{name}\" already exists", plural_of(resource)),
            );
        }
        self.version += 1;
        self.uids += 1;
        let manager = query
            .get("fieldManager")
            .cloned()
            .unwrap_or_else(|| "unknown".to_owned());
        let (_, api_version) = kind_of(resource);
        let metadata = &mut object["metadata"];
        metadata["uid"] = json!(format!("uid-{}", self.uids));
        metadata["resourceVersion"] = json!(self.version.to_string());
        metadata["generation"] = json!(1);
        metadata["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        metadata["managedFields"] =
            json!([{"manager": manager, "operation": "Update", "apiVersion": api_version}]);
        let stored = Stored {
            object,
            reads: 0,
            ready: None,
        };
        let shown = self.shown(&stored);
        self.objects.insert(key(resource, namespace, &name), stored);
        (StatusCode::CREATED, axum::Json(shown)).into_response()
    }

    /// `PUT` of one object.
    pub(super) fn replace(
        &mut self,
        resource: &str,
        namespace: &str,
        name: &str,
        query: &BTreeMap<String, String>,
        body: &[u8],
    ) -> Response {
        let mut object = match self.body_of(resource, namespace, body) {
            Ok(object) => object,
            Err(response) => return *response,
        };
        if object["metadata"]["name"] != json!(name) {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the name of the object does not match the name on the URL",
            );
        }
        let Some(previous) = self.objects.get(&key(resource, namespace, name)) else {
            return not_found(resource, name);
        };
        let old = &previous.object;
        let sent = &object["metadata"]["resourceVersion"];
        if !sent.is_null() && *sent != old["metadata"]["resourceVersion"] {
            return conflict(resource, name);
        }
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        let changed = old["spec"] != object["spec"];
        let uid = old["metadata"]["uid"].clone();
        let reads = if changed { 0 } else { previous.reads };
        let ready = previous.ready;
        // The manager of an update owns what it changed, from now, as `kubectl edit` does.
        let manager = query.get("fieldManager").map_or("unknown", String::as_str);
        let (_, api_version) = kind_of(resource);
        let mut sent = object.clone();
        sent["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
        sent["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        let owners = fields::take(
            &old["metadata"]["managedFields"],
            manager,
            "Update",
            &fields::rfc3339(now_seconds()),
            api_version,
            &fields::changed(old, &sent),
            true,
        );
        self.version += 1;
        let metadata = &mut object["metadata"];
        metadata["managedFields"] = owners;
        metadata["uid"] = uid;
        metadata["resourceVersion"] = json!(self.version.to_string());
        metadata["generation"] = json!(if changed { generation + 1 } else { generation });
        metadata["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        let stored = Stored {
            object,
            reads,
            ready,
        };
        let shown = self.shown(&stored);
        self.objects.insert(key(resource, namespace, name), stored);
        (StatusCode::OK, axum::Json(shown)).into_response()
    }

    /// A `DELETE` body's preconditions against the stored object; `Err` is the 409.
    pub(super) fn check_preconditions(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        body: &[u8],
    ) -> Result<(), Box<Response>> {
        if body.is_empty() {
            return Ok(());
        }
        let Ok(options) = serde_json::from_slice::<Value>(body) else {
            return Err(Box::new(status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the body is not DeleteOptions",
            )));
        };
        let Some(stored) = self.objects.get(&key(resource, namespace, name)) else {
            return Ok(());
        };
        let preconditions = &options["preconditions"];
        for field in ["resourceVersion", "uid"] {
            let wanted = &preconditions[field];
            if !wanted.is_null() && *wanted != stored.object["metadata"][field] {
                return Err(Box::new(conflict(resource, name)));
            }
        }
        Ok(())
    }

    /// A body that is an object of the resource's kind, in the URL's namespace (which exists).
    fn body_of(
        &self,
        resource: &str,
        namespace: &str,
        body: &[u8],
    ) -> Result<Value, Box<Response>> {
        let mut object: Value = serde_json::from_slice(body).map_err(|error| {
            Box::new(status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("the body is not an object: {error}"),
            ))
        })?;
        let (kind, api_version) = kind_of(resource);
        if object["kind"] != json!(kind) || object["apiVersion"] != json!(api_version) {
            return Err(Box::new(status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("the body is not a {api_version} {kind}"),
            )));
        }
        if !namespace.is_empty() {
            if !self.objects.contains_key(&key("namespaces", "", namespace)) {
                return Err(Box::new(status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("namespaces \"{namespace}\" not found"),
                )));
            }
            object["metadata"]["namespace"] = json!(namespace);
        }
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
        Ok(object)
    }
}

/// The API server's words for a write based on an old resourceVersion.
fn conflict(resource: &str, name: &str) -> Response {
    status(
        StatusCode::CONFLICT,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
             please apply your changes to the latest version and try again",
            plural_of(resource)
        ),
    )
}

/// `leases.coordination.k8s.io`, `secrets`: how the API server names a resource in messages.
fn plural_of(resource: &str) -> String {
    match resource {
        "leases" => "leases.coordination.k8s.io".to_owned(),
        "deployments" => "deployments.apps".to_owned(),
        "ingresses" => "ingresses.networking.k8s.io".to_owned(),
        other => other.to_owned(),
    }
}
