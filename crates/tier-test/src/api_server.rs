//! The Kubernetes API server a test runs against: the in-process fake by default, or a real
//! cluster when `TIER_TEST_KUBECONFIG` names a kubeconfig (its current context, or the one
//! `TIER_TEST_KUBE_CONTEXT` names), so a user with kind or k3s can run the same tests.
//!
//! Against a cluster every test works in a namespace of its own (`<base>-<pid>-<n>`, deleted
//! when the test ends) and its services run `TIER_TEST_IMAGE` (default
//! `registry.k8s.io/pause:3.10`, which is ready as soon as it runs), since the fixtures'
//! images exist nowhere. What a test does "as another client" (an edit by another field
//! manager, a delete, an object someone else created) goes through the API server like any
//! client's request; there the server stamps its own times.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

use crate::fake_kube::FakeKube;

/// The image a cluster runs for every service of a test project.
pub const DEFAULT_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// An API server for one test.
pub enum ApiServer {
    Fake(FakeKube),
    Cluster(Box<RealCluster>),
}

/// A cluster reached through a user's kubeconfig.
pub struct RealCluster {
    kubeconfig: Kubeconfig,
    context: String,
    client: kube::Client,
    runtime: tokio::runtime::Runtime,
    /// The namespaces this test made, deleted when it ends.
    namespaces: std::sync::Mutex<Vec<String>>,
}

impl ApiServer {
    /// The fake, unless `TIER_TEST_KUBECONFIG` names a cluster's kubeconfig.
    pub fn for_test() -> ApiServer {
        match std::env::var_os("TIER_TEST_KUBECONFIG") {
            Some(path) => ApiServer::Cluster(Box::new(RealCluster::open(Path::new(&path)))),
            None => ApiServer::Fake(FakeKube::start()),
        }
    }

    /// The fake, for what only it can do (pod logs, counting requests).
    pub fn fake(&self) -> Option<&FakeKube> {
        match self {
            ApiServer::Fake(fake) => Some(fake),
            ApiServer::Cluster(_) => None,
        }
    }

    /// A namespace for the test's environment: `base` on the fake (each test has a fake of
    /// its own), a name no other test uses on a cluster.
    pub fn namespace(&self, base: &str) -> String {
        match self {
            ApiServer::Fake(_) => base.to_owned(),
            ApiServer::Cluster(cluster) => {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                let name = format!(
                    "{base}-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                );
                cluster
                    .namespaces
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(name.clone());
                name
            }
        }
    }

    /// The image services run: `image` on the fake (its controller reads the tag), the
    /// cluster's test image otherwise.
    pub fn image(&self, image: &str) -> String {
        match self {
            ApiServer::Fake(_) => image.to_owned(),
            ApiServer::Cluster(_) => {
                std::env::var("TIER_TEST_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_owned())
            }
        }
    }

    /// Writes a kubeconfig whose context `context` (the current one) reaches this server.
    pub fn write_kubeconfig(&self, path: &Path, context: &str) {
        match self {
            ApiServer::Fake(fake) => fake.write_kubeconfig(path, &[context], context),
            ApiServer::Cluster(cluster) => cluster.write_kubeconfig(path, context),
        }
    }

    /// An object as the server has it, as JSON, or `None`. `resource` is the plural.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        match self {
            ApiServer::Fake(fake) => fake.get(resource, namespace, name),
            ApiServer::Cluster(cluster) => cluster.get(resource, namespace, name),
        }
    }

    /// The names of one resource's objects in one namespace, sorted.
    pub fn names(&self, resource: &str, namespace: &str) -> Vec<String> {
        match self {
            ApiServer::Fake(fake) => fake.names(resource, namespace),
            ApiServer::Cluster(cluster) => cluster.names(resource, namespace),
        }
    }

    /// Creates an object as another client would.
    pub fn insert(&self, resource: &str, object: Value) {
        match self {
            ApiServer::Fake(fake) => fake.insert(resource, object),
            ApiServer::Cluster(cluster) => cluster.insert(resource, object),
        }
    }

    /// Changes an object as another field manager would with an update (`kubectl edit`);
    /// the fake stamps the change `seconds_ago`, a cluster stamps it now.
    pub fn edit(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        manager: &str,
        seconds_ago: u64,
        change: impl FnOnce(&mut Value),
    ) {
        match self {
            ApiServer::Fake(fake) => {
                fake.edit(resource, namespace, name, manager, seconds_ago, change);
            }
            ApiServer::Cluster(cluster) => cluster.edit(resource, namespace, name, manager, change),
        }
    }

    /// Deletes an object as another client would.
    pub fn remove(&self, resource: &str, namespace: &str, name: &str) {
        match self {
            ApiServer::Fake(fake) => fake.remove(resource, namespace, name),
            ApiServer::Cluster(cluster) => cluster.remove(resource, namespace, name),
        }
    }
}

impl RealCluster {
    fn open(path: &Path) -> RealCluster {
        let kubeconfig = Kubeconfig::read_from(path)
            .unwrap_or_else(|error| panic!("TIER_TEST_KUBECONFIG {}: {error}", path.display()));
        let context = std::env::var("TIER_TEST_KUBE_CONTEXT")
            .ok()
            .or_else(|| kubeconfig.current_context.clone())
            .expect("TIER_TEST_KUBECONFIG has no current context: set TIER_TEST_KUBE_CONTEXT");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            ..KubeConfigOptions::default()
        };
        let client = runtime
            .block_on(async {
                let config = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
                    .await
                    .map_err(|error| error.to_string())?;
                kube::Client::try_from(config).map_err(|error| error.to_string())
            })
            .unwrap_or_else(|error| panic!("the cluster of context {context}: {error}"));
        RealCluster {
            kubeconfig,
            context,
            client,
            runtime,
            namespaces: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A copy of the user's kubeconfig with one more context, `name`, on the chosen context's
    /// cluster and user, made current.
    fn write_kubeconfig(&self, path: &Path, name: &str) {
        let mut config = self.kubeconfig.clone();
        let chosen = config
            .contexts
            .iter()
            .find(|context| context.name == self.context)
            .cloned()
            .expect("the chosen context");
        config.contexts.retain(|context| context.name != name);
        let mut alias = chosen;
        alias.name = name.to_owned();
        config.contexts.push(alias);
        config.current_context = Some(name.to_owned());
        // JSON is YAML: kubectl and kube-rs read it as it is.
        let text = serde_json::to_string_pretty(&config).expect("a kubeconfig");
        std::fs::write(path, text).expect("write the kubeconfig");
    }

    fn api(&self, resource: &str, namespace: &str) -> Api<DynamicObject> {
        let (group, version, kind) = match resource {
            "deployments" => ("apps", "v1", "Deployment"),
            "leases" => ("coordination.k8s.io", "v1", "Lease"),
            "ingresses" => ("networking.k8s.io", "v1", "Ingress"),
            "horizontalpodautoscalers" => ("autoscaling", "v2", "HorizontalPodAutoscaler"),
            "configmaps" => ("", "v1", "ConfigMap"),
            "services" => ("", "v1", "Service"),
            "secrets" => ("", "v1", "Secret"),
            "serviceaccounts" => ("", "v1", "ServiceAccount"),
            "persistentvolumeclaims" => ("", "v1", "PersistentVolumeClaim"),
            "namespaces" => ("", "v1", "Namespace"),
            other => panic!("no resource {other} in the test's API server"),
        };
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, kind),
            resource,
        );
        if namespace.is_empty() {
            Api::all_with(self.client.clone(), &resource)
        } else {
            Api::namespaced_with(self.client.clone(), namespace, &resource)
        }
    }

    fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let found = self
            .runtime
            .block_on(self.api(resource, namespace).get_opt(name))
            .unwrap_or_else(|error| panic!("get {resource} {namespace}/{name}: {error}"))?;
        serde_json::to_value(found).ok()
    }

    fn names(&self, resource: &str, namespace: &str) -> Vec<String> {
        let list = self
            .runtime
            .block_on(self.api(resource, namespace).list(&Default::default()))
            .unwrap_or_else(|error| panic!("list {resource} in {namespace}: {error}"));
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|object| object.metadata.name)
            .collect();
        names.sort();
        names
    }

    fn insert(&self, resource: &str, object: Value) {
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !namespace.is_empty() && self.get("namespaces", "", &namespace).is_none() {
            self.insert(
                "namespaces",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            );
        }
        let object: DynamicObject = serde_json::from_value(object).expect("an object");
        self.runtime
            .block_on(
                self.api(resource, &namespace)
                    .create(&PostParams::default(), &object),
            )
            .unwrap_or_else(|error| panic!("create {resource} in {namespace}: {error}"));
    }

    fn edit(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        manager: &str,
        change: impl FnOnce(&mut Value),
    ) {
        let mut object = self
            .get(resource, namespace, name)
            .unwrap_or_else(|| panic!("no {resource} {namespace}/{name} to edit"));
        change(&mut object);
        let object: DynamicObject = serde_json::from_value(object).expect("an object");
        let params = PostParams {
            dry_run: false,
            field_manager: Some(manager.to_owned()),
        };
        self.runtime
            .block_on(
                self.api(resource, namespace)
                    .replace(name, &params, &object),
            )
            .unwrap_or_else(|error| panic!("edit {resource} {namespace}/{name}: {error}"));
    }

    fn remove(&self, resource: &str, namespace: &str, name: &str) {
        self.runtime
            .block_on(
                self.api(resource, namespace)
                    .delete(name, &DeleteParams::default()),
            )
            .unwrap_or_else(|error| panic!("delete {resource} {namespace}/{name}: {error}"));
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        let namespaces = std::mem::take(
            &mut *self
                .namespaces
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for namespace in namespaces {
            let api = self.api("namespaces", "");
            let _ = self
                .runtime
                .block_on(api.delete(&namespace, &DeleteParams::default()));
        }
    }
}
