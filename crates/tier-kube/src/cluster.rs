//! The edge to a cluster: the kube context guard, server-side apply, pruning and reading
//! Deployments back. Everything else in the crate builds data; this module sends it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tier_model::Environment;

use crate::object::Object;
use crate::render::{ENVIRONMENT_LABEL, MANAGED_BY_LABEL, PART_OF_LABEL};

/// The field manager of every server-side apply tier makes.
pub const FIELD_MANAGER: &str = "tier";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("`{environment}` runs on the local runtime, not on kubernetes")]
    NotKubernetes { environment: String },
    #[error("cannot read the kubeconfig (the files in KUBECONFIG, or ~/.kube/config): {source}")]
    Kubeconfig {
        source: kube::config::KubeconfigError,
    },
    #[error(
        "`{environment}` runs in kube context `{wanted}`, but the current context is {}; nothing was changed",
        match current { Some(current) => format!("`{current}`"), None => "not set".to_owned() }
    )]
    WrongContext {
        environment: String,
        wanted: String,
        current: Option<String>,
    },
    #[error("kube context `{context}` in the kubeconfig is unusable: {source}")]
    ContextConfig {
        context: String,
        source: kube::config::KubeconfigError,
    },
    #[error("cannot connect to kube context `{context}`: {source}")]
    Connect {
        context: String,
        source: kube::Error,
    },
    /// The API server did not answer `GET /version`: nothing was read or changed.
    #[error(
        "the API server {server} (kube context `{context}`, kubeconfig {kubeconfig}) does not answer: {reason}; nothing was changed"
    )]
    Unreachable {
        server: String,
        context: String,
        kubeconfig: String,
        reason: String,
    },
    #[error("cannot {action}: {source}")]
    Api { action: String, source: kube::Error },
}

impl ClusterError {
    /// The next step for the user, when there is an obvious one.
    pub fn hint(&self) -> Option<String> {
        match self {
            ClusterError::WrongContext { wanted, .. } => Some(format!(
                "switch with `kubectl config use-context {wanted}`, then run the command again"
            )),
            ClusterError::Kubeconfig { .. } => Some(
                "point KUBECONFIG at the cluster's kubeconfig, or write ~/.kube/config".to_owned(),
            ),
            ClusterError::Unreachable { context, .. } => Some(format!(
                "check that the cluster runs and that `kubectl --context {context} version` answers, then run the command again"
            )),
            _ => None,
        }
    }
}

/// The guard: `Ok` only when the kubeconfig's current context is the environment's
/// `kube.context`. Pure, so it is tested without files.
pub fn check_context(
    environment: &Environment,
    kubeconfig: &Kubeconfig,
) -> Result<(), ClusterError> {
    let Some(kube) = &environment.kube else {
        return Err(ClusterError::NotKubernetes {
            environment: environment.name.to_string(),
        });
    };
    if kubeconfig.current_context.as_deref() == Some(kube.context.as_str()) {
        Ok(())
    } else {
        Err(ClusterError::WrongContext {
            environment: environment.name.to_string(),
            wanted: kube.context.clone(),
            current: kubeconfig.current_context.clone(),
        })
    }
}

/// A kind of object tier manages, for listing and deleting.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ConfigMap,
    Secret,
    Deployment,
    Service,
    ServiceAccount,
    Ingress,
    /// A kind from the project's `manifests`.
    Other {
        api_version: String,
        kind: String,
    },
}

impl Kind {
    pub fn as_str(&self) -> &str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
            Kind::Deployment => "Deployment",
            Kind::Service => "Service",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::Ingress => "Ingress",
            Kind::Other { kind, .. } => kind,
        }
    }

    /// The kind an object is pruned as; `None` for a Namespace (never pruned) and a
    /// PersistentVolumeClaim (kept, as a StatefulSet keeps its claims: it holds data).
    fn of(object: &Object) -> Option<Kind> {
        Some(match object {
            Object::Namespace(_) | Object::PersistentVolumeClaim(_) => return None,
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::Secret(_) => Kind::Secret,
            Object::Deployment(_) => Kind::Deployment,
            Object::Service(_) => Kind::Service,
            Object::ServiceAccount(_) => Kind::ServiceAccount,
            Object::Ingress(_) => Kind::Ingress,
            Object::Other(object) => {
                let types = object.types.as_ref()?;
                // An extra object of a kind tier renders itself is listed with that kind.
                match (types.api_version.as_str(), types.kind.as_str()) {
                    ("v1", "ConfigMap") => Kind::ConfigMap,
                    ("v1", "Secret") => Kind::Secret,
                    ("v1", "Service") => Kind::Service,
                    ("v1", "ServiceAccount") => Kind::ServiceAccount,
                    ("apps/v1", "Deployment") => Kind::Deployment,
                    ("networking.k8s.io/v1", "Ingress") => Kind::Ingress,
                    ("v1", "PersistentVolumeClaim") | ("v1", "Namespace") => return None,
                    (api_version, kind) => Kind::Other {
                        api_version: api_version.to_owned(),
                        kind: kind.to_owned(),
                    },
                }
            }
        })
    }
}

/// The API resource of a kind from the project's manifests: group and version from its
/// apiVersion, the plural guessed as Kubernetes names its own (lowercase, `s`, `es`, `ies`).
fn api_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// An object tier deleted because the project no longer declares it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pruned {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

/// How long tier waits for the API server to answer its first request.
const REACH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// A client for the environment's own context, made only after the guard passed and the API
/// server answered.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    server: String,
    context: String,
}

impl Cluster {
    /// Reads the kubeconfig (KUBECONFIG, else ~/.kube/config), refuses when its current
    /// context is not the environment's, connects with that context, and checks that the API
    /// server answers (`GET /version`) before anything else is read or written.
    pub async fn connect(environment: &Environment) -> Result<Cluster, ClusterError> {
        let kubeconfig =
            Kubeconfig::read().map_err(|source| ClusterError::Kubeconfig { source })?;
        Cluster::connect_with(environment, kubeconfig).await
    }

    /// As [`Cluster::connect`], with a kubeconfig the caller read.
    pub async fn connect_with(
        environment: &Environment,
        kubeconfig: Kubeconfig,
    ) -> Result<Cluster, ClusterError> {
        check_context(environment, &kubeconfig)?;
        let context = kubeconfig.current_context.clone().unwrap_or_default();
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            ..KubeConfigOptions::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|source| ClusterError::ContextConfig {
                context: context.clone(),
                source,
            })?;
        let server = config.cluster_url.to_string();
        let server = server.trim_end_matches('/').to_owned();
        let client = kube::Client::try_from(config).map_err(|source| ClusterError::Connect {
            context: context.clone(),
            source,
        })?;
        let unreachable = |reason: String| ClusterError::Unreachable {
            server: server.clone(),
            context: context.clone(),
            kubeconfig: kubeconfig_place(),
            reason,
        };
        match tokio::time::timeout(REACH_TIMEOUT, client.apiserver_version()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(unreachable(reach_reason(&error))),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {} s",
                    REACH_TIMEOUT.as_secs()
                )));
            }
        }
        Ok(Cluster {
            client,
            server,
            context,
        })
    }

    /// The API server's URL, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The kube context this client uses.
    pub fn context(&self) -> &str {
        &self.context
    }

    pub(crate) fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Server-side applies one object with field manager `tier`, taking over fields another
    /// manager set (tier owns what it renders).
    pub async fn apply(&self, object: &Object) -> Result<(), ClusterError> {
        let action = format!("apply {}", describe(object));
        let namespace = object.namespace().unwrap_or_default();
        let result = match object {
            Object::Namespace(value) => {
                patch(Api::<Namespace>::all(self.client.clone()), value).await
            }
            Object::ConfigMap(value) => {
                patch(
                    Api::<ConfigMap>::namespaced(self.client.clone(), namespace),
                    value,
                )
                .await
            }
            Object::Secret(value) => {
                patch(
                    Api::<Secret>::namespaced(self.client.clone(), namespace),
                    value,
                )
                .await
            }
            Object::Deployment(value) => {
                patch(
                    Api::<Deployment>::namespaced(self.client.clone(), namespace),
                    &**value,
                )
                .await
            }
            Object::Service(value) => {
                patch(
                    Api::<Service>::namespaced(self.client.clone(), namespace),
                    &**value,
                )
                .await
            }
            Object::ServiceAccount(value) => {
                patch(
                    Api::<ServiceAccount>::namespaced(self.client.clone(), namespace),
                    value,
                )
                .await
            }
            Object::PersistentVolumeClaim(value) => {
                patch(
                    Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(
                        self.client.clone(),
                        namespace,
                    ),
                    &**value,
                )
                .await
            }
            Object::Ingress(value) => {
                patch(
                    Api::<Ingress>::namespaced(self.client.clone(), namespace),
                    &**value,
                )
                .await
            }
            Object::Other(value) => {
                let types = value.types.clone().unwrap_or_default();
                let resource = api_resource(&types.api_version, &types.kind);
                patch(
                    Api::<DynamicObject>::namespaced_with(
                        self.client.clone(),
                        namespace,
                        &resource,
                    ),
                    &**value,
                )
                .await
            }
        };
        result.map_err(|source| ClusterError::Api { action, source })
    }

    /// Deletes every ConfigMap, Secret, Deployment and Service labelled as this project's and this
    /// environment's (in any namespace) that `keep` does not hold. Namespaces are never
    /// deleted: one may hold objects tier does not manage.
    pub async fn prune(
        &self,
        environment: &Environment,
        keep: &[Object],
    ) -> Result<Vec<Pruned>, ClusterError> {
        let kept: BTreeSet<(Kind, &str, &str)> = keep
            .iter()
            .filter_map(|object| {
                Some((
                    Kind::of(object)?,
                    object.namespace().unwrap_or_default(),
                    object.name(),
                ))
            })
            .collect();
        let selector = environment_selector(environment);
        let mut found = Vec::new();
        let mut kinds = vec![
            Kind::Ingress,
            Kind::Service,
            Kind::Deployment,
            Kind::Secret,
            Kind::ConfigMap,
            Kind::ServiceAccount,
        ];
        // A kind of the project's own manifests is listed while some object of it is kept.
        for (kind, ..) in &kept {
            if matches!(kind, Kind::Other { .. }) && !kinds.contains(kind) {
                kinds.push(kind.clone());
            }
        }
        for kind in kinds {
            for (namespace, name) in self.list_labelled(&kind, &selector).await? {
                if !kept.contains(&(kind.clone(), namespace.as_str(), name.as_str())) {
                    found.push(Pruned {
                        kind: kind.clone(),
                        namespace,
                        name,
                    });
                }
            }
        }
        for pruned in &found {
            self.delete(pruned).await?;
        }
        Ok(found)
    }

    /// One Deployment, or `None` when it does not exist.
    pub async fn deployment(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Deployment>, ClusterError> {
        Api::<Deployment>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|source| ClusterError::Api {
                action: format!("read Deployment {namespace}/{name}"),
                source,
            })
    }

    /// The environment's Deployments in its namespace, by name.
    pub async fn deployments(
        &self,
        environment: &Environment,
        namespace: &str,
    ) -> Result<BTreeMap<String, Deployment>, ClusterError> {
        let list = Api::<Deployment>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default().labels(&environment_selector(environment)))
            .await
            .map_err(|source| ClusterError::Api {
                action: format!("list the Deployments in namespace {namespace}"),
                source,
            })?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|deployment| Some((deployment.metadata.name.clone()?, deployment)))
            .collect())
    }

    /// The live objects carrying this environment's labels (of the kinds tier prunes, and the
    /// kinds of `applied`), keyed as `drift` keys them, and the HorizontalPodAutoscalers of
    /// `namespace`: what `drift` compares with.
    pub async fn live(
        &self,
        environment: &Environment,
        applied: &[Object],
        namespace: &str,
    ) -> Result<
        (
            BTreeMap<crate::drift::ObjectKey, serde_json::Value>,
            Vec<serde_json::Value>,
        ),
        ClusterError,
    > {
        let mut kinds: Vec<(String, String)> = [
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("apps/v1", "Deployment"),
            ("v1", "Service"),
            ("v1", "ServiceAccount"),
            ("networking.k8s.io/v1", "Ingress"),
        ]
        .iter()
        .map(|(version, kind)| ((*version).to_owned(), (*kind).to_owned()))
        .collect();
        for object in applied {
            if let Object::Other(other) = object
                && let Some(types) = &other.types
            {
                let kind = (types.api_version.clone(), types.kind.clone());
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
        }
        let params = ListParams::default().labels(&environment_selector(environment));
        let mut live = BTreeMap::new();
        for (api_version, kind) in &kinds {
            let resource = api_resource(api_version, kind);
            // Read as plain JSON: drift compares JSON, and a typed object in between would
            // be decoded and encoded again for each of thousands of objects.
            let path = if resource.group.is_empty() {
                format!("/api/{}/{}", resource.version, resource.plural)
            } else {
                format!(
                    "/apis/{}/{}/{}",
                    resource.group, resource.version, resource.plural
                )
            };
            let action = || format!("list the {kind}s of {}", environment.name);
            let request = kube::core::Request::new(path)
                .list(&params)
                .map_err(|error| ClusterError::Api {
                    action: action(),
                    source: kube::Error::BuildRequest(error),
                })?;
            let mut listed: serde_json::Value =
                self.client
                    .request(request)
                    .await
                    .map_err(|source| ClusterError::Api {
                        action: action(),
                        source,
                    })?;
            let items = match listed.get_mut("items").map(serde_json::Value::take) {
                Some(serde_json::Value::Array(items)) => items,
                _ => Vec::new(),
            };
            for item in items {
                let key = (
                    kind.clone(),
                    item["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    item["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
                live.insert(key, item);
            }
        }
        let resource = api_resource("autoscaling/v2", "HorizontalPodAutoscaler");
        let hpas = Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &resource)
            .list(&ListParams::default())
            .await
            .map(|list| {
                list.items
                    .iter()
                    .filter_map(|item| serde_json::to_value(item).ok())
                    .collect()
            })
            // A cluster without the autoscaling API has no HPAs.
            .unwrap_or_default();
        Ok((live, hpas))
    }

    async fn list_labelled(
        &self,
        kind: &Kind,
        selector: &str,
    ) -> Result<Vec<(String, String)>, ClusterError> {
        let params = ListParams::default().labels(selector);
        let client = self.client.clone();
        let metadata = match kind {
            Kind::ConfigMap => names(Api::<ConfigMap>::all(client), &params).await,
            Kind::Secret => names(Api::<Secret>::all(client), &params).await,
            Kind::Deployment => names(Api::<Deployment>::all(client), &params).await,
            Kind::Service => names(Api::<Service>::all(client), &params).await,
            Kind::ServiceAccount => names(Api::<ServiceAccount>::all(client), &params).await,
            Kind::Ingress => names(Api::<Ingress>::all(client), &params).await,
            Kind::Other { api_version, kind } => {
                let resource = api_resource(api_version, kind);
                names(Api::<DynamicObject>::all_with(client, &resource), &params).await
            }
        };
        metadata.map_err(|source| ClusterError::Api {
            action: format!("list the {}s labelled {selector}", kind.as_str()),
            source,
        })
    }

    async fn delete(&self, pruned: &Pruned) -> Result<(), ClusterError> {
        let client = self.client.clone();
        let namespace = pruned.namespace.as_str();
        let params = DeleteParams::background();
        let result = match &pruned.kind {
            Kind::ConfigMap => Api::<ConfigMap>::namespaced(client, namespace)
                .delete(&pruned.name, &params)
                .await
                .map(drop),
            Kind::Secret => Api::<Secret>::namespaced(client, namespace)
                .delete(&pruned.name, &params)
                .await
                .map(drop),
            Kind::Deployment => Api::<Deployment>::namespaced(client, namespace)
                .delete(&pruned.name, &params)
                .await
                .map(drop),
            Kind::Service => Api::<Service>::namespaced(client, namespace)
                .delete(&pruned.name, &params)
                .await
                .map(drop),
            Kind::ServiceAccount => Api::<ServiceAccount>::namespaced(client, namespace)
                .delete(&pruned.name, &params)
                .await
                .map(drop),
            Kind::Ingress => Api::<Ingress>::namespaced(client, namespace)
                .delete(&pruned.name, &params)
                .await
                .map(drop),
            Kind::Other { api_version, kind } => {
                let resource = api_resource(api_version, kind);
                Api::<DynamicObject>::namespaced_with(client, namespace, &resource)
                    .delete(&pruned.name, &params)
                    .await
                    .map(drop)
            }
        };
        match result {
            // Already gone: what pruning wanted.
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            other => other.map_err(|source| ClusterError::Api {
                action: format!(
                    "delete {} {namespace}/{}",
                    pruned.kind.as_str(),
                    pruned.name
                ),
                source,
            }),
        }
    }
}

/// Where the kubeconfig was read from, as a user would name it: `KUBECONFIG`'s value, or
/// `~/.kube/config`.
pub fn kubeconfig_place() -> String {
    match std::env::var("KUBECONFIG") {
        Ok(paths) if !paths.is_empty() => paths,
        _ => "~/.kube/config".to_owned(),
    }
}

/// The innermost cause of a failed first request, which names what went wrong
/// (`Connection refused`) where the outer ones say only "client error".
fn reach_reason(error: &kube::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    let innermost = source.to_string();
    let outer = error.to_string();
    if innermost == outer {
        outer
    } else {
        format!("{outer} ({innermost})")
    }
}

/// The label selector of everything tier applied for this project and environment.
pub fn environment_selector(environment: &Environment) -> String {
    format!(
        "{MANAGED_BY_LABEL}=tier,{PART_OF_LABEL}={},{ENVIRONMENT_LABEL}={}",
        environment.project.name, environment.name
    )
}

fn describe(object: &Object) -> String {
    match object.namespace() {
        Some(namespace) => format!("{} {namespace}/{}", object.kind(), object.name()),
        None => format!("{} {}", object.kind(), object.name()),
    }
}

async fn patch<K>(api: Api<K>, value: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = value.meta().name.clone().unwrap_or_default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(value))
        .await
        .map(drop)
}

async fn names<K>(api: Api<K>, params: &ListParams) -> Result<Vec<(String, String)>, kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let list = api.list(params).await?;
    Ok(list
        .items
        .iter()
        .filter_map(|item| {
            let meta = item.meta();
            Some((meta.namespace.clone()?, meta.name.clone()?))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(current: Option<&str>) -> Kubeconfig {
        Kubeconfig {
            current_context: current.map(str::to_owned),
            ..Kubeconfig::default()
        }
    }

    fn environment(context: &str) -> Environment {
        let text = serde_json::json!({
            "name": "prod",
            "runtime": "kubernetes",
            "protected": false,
            "kube": { "context": context, "namespace": "app-prod" },
            "project": { "name": "app", "ordering": true, "on_failure": "rollback" },
            "services": {},
            "store": { "kubernetes": false },
        });
        serde_json::from_value(text).unwrap_or_else(|error| panic!("a test environment: {error}"))
    }

    #[test]
    fn the_guard_passes_only_for_the_environments_context() {
        let prod = environment("prod-admin");
        assert!(check_context(&prod, &kubeconfig(Some("prod-admin"))).is_ok());
        let refused = check_context(&prod, &kubeconfig(Some("kind-dev")));
        let Err(error) = refused else {
            panic!("another context must be refused");
        };
        assert_eq!(
            error.to_string(),
            "`prod` runs in kube context `prod-admin`, but the current context is `kind-dev`; nothing was changed"
        );
        assert_eq!(
            error.hint().as_deref(),
            Some("switch with `kubectl config use-context prod-admin`, then run the command again")
        );
        let unset = check_context(&prod, &kubeconfig(None));
        assert!(
            matches!(unset, Err(ClusterError::WrongContext { current: None, .. })),
            "{unset:?}"
        );
    }
}
