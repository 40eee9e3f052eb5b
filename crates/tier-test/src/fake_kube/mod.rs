//! A fake Kubernetes API server, in process, on 127.0.0.1 and a port the kernel picks.
//!
//! No cluster can run where tier's tests run (no container runtime, no kind, no k3s), so
//! this stands in for a live API server. It is the only mock in tier's kubernetes tests: the
//! real `tier` binary, the real kube-rs client and the real HTTP requests all run against
//! it. It speaks just what tier uses, the way the API server does:
//!
//! - server-side apply: `PATCH` with `Content-Type: application/apply-patch+yaml` and a
//!   `fieldManager` (both required, as the API server requires them), which creates or
//!   replaces the object (tier is the only manager of what it applies, so replacing is what
//!   a merge would give), keeps its uid and a Service's cluster IP, bumps
//!   `resourceVersion`, and bumps a Deployment's `generation` when its spec changed;
//!   a namespaced object needs its Namespace to exist;
//! - `GET` of one object, `GET` of a list (in one namespace or all) with a `labelSelector`
//!   of equality terms, and `DELETE` (a Namespace takes its objects with it) with the
//!   `preconditions` of its body;
//! - `POST` (create: 409 `AlreadyExists` when the name is taken) and `PUT` (replace: 409
//!   `Conflict` when `metadata.resourceVersion` is not the stored one), the optimistic
//!   concurrency a Lease and tier's records rely on (`writes.rs`);
//! - `GET /version`, which tier reads to learn that the server answers, and the legacy
//!   discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`) kubectl
//!   reads; a server-side apply with `dryRun=All` answers without storing (`kubectl diff
//!   --server-side`);
//! - for namespaces, configmaps, services, secrets, serviceaccounts and
//!   persistentvolumeclaims (`/api/v1`), deployments (`/apis/apps/v1`), ingresses
//!   (`/apis/networking.k8s.io/v1`) and leases (`/apis/coordination.k8s.io/v1`).
//!
//! - pods and their logs, synthesized from the Deployments (`pods.rs`).
//!
//! A Lease is stored like any object: the fake does not expire it (a real API server does not
//! either; holders compare `renewTime` plus `leaseDurationSeconds` with their own clock).
//!
//! A Deployment's status plays a controller in fast motion, counted in reads of that
//! Deployment (not in time, so tests never depend on timing): at the first read after a
//! change the new generation is not yet observed; at the second one replica is updated; from
//! the third every replica is updated and available. When an image's tag contains `fail`,
//! the third read instead reports the `Progressing` condition with reason
//! `ProgressDeadlineExceeded`, as a controller does for pods that never become ready; when it
//! contains `hold`, the rollout stays at one updated replica and none ready, for as long as
//! the test wants an apply to be in flight.
//! [`FakeKube::set_ready`] makes a Deployment report fewer ready replicas, for `tier status`.
//!
//! Field ownership is kept as the API server keeps it, in `managedFields` (`fields.rs`): an
//! apply owns every field of its body; [`FakeKube::edit`] changes an object as another
//! manager would and gives that manager the fields it changed, with a time. An apply without
//! `force=true` that would change a field another manager owns is refused with 409
//! `Conflict`, naming each field and its owner as the API server does; with `force=true`
//! (what tier sends) it takes them.
//!
//! It is not a conformance fake: no watches, no admission, no validation beyond the checks
//! above, and an apply replaces the object with its body (fields only another manager set are
//! not merged back in; their ownership entries stay).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

mod apply;
mod controller;
mod fields;
mod pods;
mod routes;
mod writes;

pub use fields::rfc3339;

use controller::deployment_status;
use routes::{Target, kind_of, matches, parse_path, parse_selector};

/// The fake API server; it stops when dropped.
pub struct FakeKube {
    port: u16,
    cluster: Arc<Mutex<Cluster>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One request the fake answered: method, path and query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
}

impl FakeKube {
    /// Starts the server on its own thread and runtime.
    pub fn start() -> FakeKube {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake API server");
        let port = listener.local_addr().expect("its address").port();
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let cluster = Arc::new(Mutex::new(Cluster::default()));
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(cluster.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the fake API server");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        FakeKube {
            port,
            cluster,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`, the cluster's server address in a kubeconfig.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Writes a kubeconfig at `path` with one cluster (this server), one user without
    /// credentials, a context for each name in `contexts`, and `current` as the current
    /// context.
    pub fn write_kubeconfig(&self, path: &Path, contexts: &[&str], current: &str) {
        let contexts: Vec<Value> = contexts
            .iter()
            .map(|name| json!({"name": name, "context": {"cluster": "fake", "user": "fake"}}))
            .collect();
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url()}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": contexts,
            "current-context": current,
        });
        // JSON is YAML: kubectl and kube-rs read it as it is.
        let text = serde_json::to_string_pretty(&config).expect("a kubeconfig");
        std::fs::write(path, text).expect("write the kubeconfig");
    }

    /// An object as a GET would return it (without counting as a read of a Deployment), or
    /// `None`. `resource` is the plural: `namespaces`, `configmaps`, `deployments`, ...;
    /// `namespace` is empty for a Namespace.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let cluster = self.lock();
        let stored = cluster.objects.get(&key(resource, namespace, name))?;
        Some(cluster.shown(stored))
    }

    /// The names of the objects of one resource in one namespace, sorted.
    pub fn names(&self, resource: &str, namespace: &str) -> Vec<String> {
        self.lock()
            .objects
            .keys()
            .filter(|(kind, space, _)| kind == resource && space == namespace)
            .map(|(_, _, name)| name.clone())
            .collect()
    }

    /// Adds an object as if someone else had created it (`metadata.namespace` names its
    /// namespace, which need not exist).
    pub fn insert(&self, resource: &str, object: Value) {
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = object["metadata"]["name"]
            .as_str()
            .expect("the object has a name")
            .to_owned();
        let mut cluster = self.lock();
        cluster.version += 1;
        let mut object = object;
        object["metadata"]["resourceVersion"] = json!(cluster.version.to_string());
        object["metadata"]["generation"] = json!(1);
        cluster.objects.insert(
            key(resource, &namespace, &name),
            Stored {
                object,
                reads: 3,
                ready: None,
            },
        );
    }

    /// Changes an object as another client would with an update (`kubectl edit`, `kubectl
    /// scale`, a controller): `change` edits it, and `manager` (at `seconds_ago` before now)
    /// takes ownership of exactly the fields that changed, from whoever owned them.
    pub fn edit(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        manager: &str,
        seconds_ago: u64,
        change: impl FnOnce(&mut Value),
    ) {
        let mut cluster = self.lock();
        cluster.version += 1;
        let version = cluster.version;
        let Some(stored) = cluster.objects.get_mut(&key(resource, namespace, name)) else {
            panic!("no {resource} {namespace}/{name} to edit");
        };
        let before = stored.object.clone();
        change(&mut stored.object);
        let taken = fields::changed(&before, &stored.object);
        let (_, api_version) = kind_of(resource);
        let metadata = &mut stored.object["metadata"];
        metadata["managedFields"] = fields::take(
            &before["metadata"]["managedFields"],
            manager,
            "Update",
            &fields::rfc3339(now_seconds().saturating_sub(seconds_ago)),
            api_version,
            &taken,
            true,
        );
        metadata["resourceVersion"] = json!(version.to_string());
        if before["spec"] != stored.object["spec"] {
            let generation = before["metadata"]["generation"].as_i64().unwrap_or(1);
            stored.object["metadata"]["generation"] = json!(generation + 1);
            stored.reads = 3;
        }
    }

    /// Appends a line to a pod's log (pods are `<deployment>-<generation>-<index>`), stamped
    /// now.
    pub fn log(&self, namespace: &str, pod: &str, line: &str) {
        let elapsed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let stamp = fields::rfc3339(elapsed.as_secs())
            .replace('Z', &format!(".{:09}Z", elapsed.subsec_nanos()));
        self.lock()
            .logs
            .entry((namespace.to_owned(), pod.to_owned()))
            .or_default()
            .push((stamp, line.to_owned()));
    }

    /// Deletes an object as another client would.
    pub fn remove(&self, resource: &str, namespace: &str, name: &str) {
        let mut cluster = self.lock();
        cluster.version += 1;
        cluster.objects.remove(&key(resource, namespace, name));
    }

    /// Makes a Deployment report `ready` ready and available replicas from now on.
    pub fn set_ready(&self, namespace: &str, name: &str, ready: u32) {
        if let Some(stored) = self
            .lock()
            .objects
            .get_mut(&key("deployments", namespace, name))
        {
            stored.ready = Some(ready);
        }
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// How many requests could have changed something (PATCH, PUT, POST, DELETE).
    pub fn writes(&self) -> usize {
        self.lock()
            .seen
            .iter()
            .filter(|seen| seen.method != "GET")
            .count()
    }

    fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An object as shown, with a status in place of any stored one, serialised without a copy.
struct Shown<'a> {
    object: &'a Value,
    status: Option<&'a Value>,
}

impl serde::Serialize for Shown<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Some(fields) = self.object.as_object() else {
            return self.object.serialize(serializer);
        };
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in fields {
            if key != "status" || self.status.is_none() {
                map.serialize_entry(key, value)?;
            }
        }
        if let Some(status) = self.status {
            map.serialize_entry("status", status)?;
        }
        map.end()
    }
}

fn status_error() -> Response {
    status(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "the fake could not write the list",
    )
}

/// Whether two versions of an object hold the same content, the server's metadata aside.
fn same_content(old: &Value, new: &Value) -> bool {
    let strip = |object: &Value| {
        let mut object = object.clone();
        if let Some(metadata) = object["metadata"].as_object_mut() {
            for server in [
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "managedFields",
            ] {
                metadata.remove(server);
            }
        }
        object
    };
    strip(old) == strip(new)
}

/// The wall clock in seconds, for managedFields times.
pub(super) fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

type Key = (String, String, String);

fn key(resource: &str, namespace: &str, name: &str) -> Key {
    (resource.to_owned(), namespace.to_owned(), name.to_owned())
}

#[derive(Default)]
struct Cluster {
    objects: BTreeMap<Key, Stored>,
    version: u64,
    uids: u64,
    seen: Vec<Seen>,
    /// Log lines by (namespace, pod): an RFC 3339 time with nanoseconds, and the line.
    logs: BTreeMap<(String, String), Vec<(String, String)>>,
}

struct Stored {
    object: Value,
    /// Reads of a Deployment since its generation changed: the fake controller's clock.
    reads: u32,
    ready: Option<u32>,
}

async fn handle(
    State(cluster): State<Arc<Mutex<Cluster>>>,
    method: Method,
    uri: Uri,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut cluster = cluster
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    cluster.seen.push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
    });
    if method == Method::GET && uri.path() == "/version" {
        return (
            StatusCode::OK,
            axum::Json(json!({
                "major": "1", "minor": "32", "gitVersion": "v1.32.0-fake",
                "platform": "linux/amd64",
            })),
        )
            .into_response();
    }
    if method == Method::GET
        && let Some(discovery) = routes::discovery(uri.path())
    {
        return (StatusCode::OK, axum::Json(discovery)).into_response();
    }
    if method == Method::GET {
        let segments: Vec<&str> = uri
            .path()
            .split('/')
            .filter(|part| !part.is_empty())
            .collect();
        match segments.as_slice() {
            ["api", "v1", "namespaces", namespace, "pods"] => {
                return cluster.list_pods(namespace, &query);
            }
            ["api", "v1", "namespaces", namespace, "pods", pod, "log"] => {
                return cluster.pod_log(namespace, pod, &query);
            }
            _ => {}
        }
    }
    let Some(target) = parse_path(uri.path()) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("the fake API server does not serve {}", uri.path()),
        );
    };
    match (method, target) {
        (
            Method::GET,
            Target::List {
                resource,
                namespace,
            },
        ) => cluster.list(resource, namespace.as_deref(), &query),
        (
            Method::GET,
            Target::One {
                resource,
                namespace,
                name,
            },
        ) => cluster.read(resource, &namespace, &name),
        (
            Method::PATCH,
            Target::One {
                resource,
                namespace,
                name,
            },
        ) => cluster.apply(resource, &namespace, &name, &query, &headers, &body),
        (
            Method::POST,
            Target::List {
                resource,
                namespace,
            },
        ) => cluster.create(
            resource,
            namespace.as_deref().unwrap_or_default(),
            &query,
            &body,
        ),
        (
            Method::PUT,
            Target::One {
                resource,
                namespace,
                name,
            },
        ) => cluster.replace(resource, &namespace, &name, &query, &body),
        (
            Method::DELETE,
            Target::One {
                resource,
                namespace,
                name,
            },
        ) => match cluster.check_preconditions(resource, &namespace, &name, &body) {
            Ok(()) => cluster.delete(resource, &namespace, &name),
            Err(refused) => *refused,
        },
        (method, _) => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("the fake API server does not support {method} here"),
        ),
    }
}

impl Cluster {
    fn read(&mut self, resource: &str, namespace: &str, name: &str) -> Response {
        let Some(stored) = self.objects.get_mut(&key(resource, namespace, name)) else {
            return not_found(resource, name);
        };
        stored.reads = stored.reads.saturating_add(1);
        let Some(stored) = self.objects.get(&key(resource, namespace, name)) else {
            return not_found(resource, name);
        };
        (StatusCode::OK, axum::Json(self.shown(stored))).into_response()
    }

    fn list(
        &self,
        resource: &str,
        namespace: Option<&str>,
        query: &BTreeMap<String, String>,
    ) -> Response {
        let selector = match query.get("labelSelector").map(|text| parse_selector(text)) {
            None => Vec::new(),
            Some(Ok(selector)) => selector,
            Some(Err(why)) => return status(StatusCode::BAD_REQUEST, "BadRequest", &why),
        };
        // Written item by item without copying the objects: a list of thousands of objects
        // is what `tier plan` and `kubectl diff` read, and copying them dominated.
        let mut items = Vec::new();
        for ((kind, space, _), stored) in &self.objects {
            if kind != resource
                || namespace.is_some_and(|wanted| wanted != space)
                || !matches(&selector, &stored.object["metadata"]["labels"])
            {
                continue;
            }
            items.push(if items.is_empty() { b'[' } else { b',' });
            let status = (stored.object["kind"] == json!("Deployment"))
                .then(|| controller::deployment_status(stored));
            let shown = Shown {
                object: &stored.object,
                status: status.as_ref(),
            };
            if serde_json::to_writer(&mut items, &shown).is_err() {
                return status_error();
            }
        }
        if items.is_empty() {
            items.push(b'[');
        }
        items.push(b']');
        let (kind, api_version) = kind_of(resource);
        let head = json!({
            "apiVersion": api_version,
            "kind": format!("{kind}List"),
            "metadata": {"resourceVersion": self.version.to_string()},
        })
        .to_string();
        let mut body = head.into_bytes();
        body.pop();
        body.extend_from_slice(b",\"items\":");
        body.extend_from_slice(&items);
        body.push(b'}');
        (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }

    fn delete(&mut self, resource: &str, namespace: &str, name: &str) -> Response {
        if self
            .objects
            .remove(&key(resource, namespace, name))
            .is_none()
        {
            return not_found(resource, name);
        }
        if resource == "namespaces" {
            self.objects.retain(|(_, space, _), _| space != name);
        }
        self.version += 1;
        let (kind, _) = kind_of(resource);
        (
            StatusCode::OK,
            axum::Json(json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "kind": resource, "uid": ""},
                "message": format!("{kind} {name} deleted"),
            })),
        )
            .into_response()
    }

    /// The object as the API server would show it: a Deployment with its status.
    fn shown(&self, stored: &Stored) -> Value {
        let mut object = stored.object.clone();
        if object["kind"] == json!("Deployment") {
            object["status"] = deployment_status(stored);
        }
        object
    }
}

fn not_found(resource: &str, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
    )
}

/// A `Status` object, the API server's error body, which kube-rs reads into its errors.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        axum::Json(json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16(),
        })),
    )
        .into_response()
}
