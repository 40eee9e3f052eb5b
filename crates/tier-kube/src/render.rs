//! The resolved environment rendered to typed Kubernetes objects.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, Namespace, ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, Secret, SecretKeySelector, Service, ServicePort, ServiceSpec,
    TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};
use tier_model::environment::{self, Health, Protocol};
use tier_model::quantity::Duration;
use tier_model::{Environment, ServiceName};

use crate::object::Object;

/// Where the ConfigMap is mounted in every pod; `TIER_CONFIG` is `config.json` in it.
pub const CONFIG_DIR: &str = "/etc/tier";
/// The pod template annotation that carries the sha256 of the service's `config.json`, so a
/// config change alone rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "tier.dev/config-hash";
/// The pod template annotation that carries a hash of the service's secret fingerprints, so a
/// changed secret value alone rolls the pods (a Secret read through `secretKeyRef` is read
/// only when a container starts).
pub const SECRETS_HASH_ANNOTATION: &str = "tier.dev/secrets-hash";
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const ENVIRONMENT_LABEL: &str = "tier.dev/environment";

const CONFIG_FILE: &str = "config.json";
const CONFIG_VOLUME: &str = "config";

/// What the caller decides beyond the environment itself.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// The image each named service runs, fixed at apply time (its artifact, e.g. the image a
    /// promotion carries over); a service not named here runs its `image`.
    pub images: BTreeMap<ServiceName, String>,
    /// The values of the services' secrets, by service and secret name, for the Secret
    /// objects; `None` renders each value as its reference (`<secret:env:NAME>`), a
    /// placeholder that is safe to write to disk or commit.
    pub secret_values: Option<BTreeMap<String, BTreeMap<String, Vec<u8>>>>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(
        "service `{service}` has no `image`, which the kubernetes manifests of `{environment}` need"
    )]
    MissingImage {
        environment: String,
        service: ServiceName,
    },
    #[error(
        "namespace `{namespace}` for `{environment}` is longer than 63 characters; set a shorter `kube.namespace` for `{environment}`"
    )]
    NamespaceTooLong {
        environment: String,
        namespace: String,
    },
}

/// The environment's objects in a stable order: the Namespace, then for each service in name
/// order its ConfigMap, its Secret (when it declares secrets), Deployment and Service. Every problem is reported at once.
///
/// A kubernetes Deployment always restarts its containers, so a service's `restart` and
/// `command` (both for the local runtime) do not appear in the manifests.
pub fn render(
    environment: &Environment,
    options: &RenderOptions,
) -> Result<Vec<Object>, Vec<RenderError>> {
    let mut problems = Vec::new();
    let namespace = namespace_of(environment);
    if namespace.len() > 63 {
        problems.push(RenderError::NamespaceTooLong {
            environment: environment.name.to_string(),
            namespace: namespace.clone(),
        });
    }
    let mut objects = vec![Object::Namespace(Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.clone()),
            labels: Some(environment_labels(environment)),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    })];
    for (name, service) in &environment.services {
        let Some(image) = options.images.get(name).or(service.image.as_ref()) else {
            problems.push(RenderError::MissingImage {
                environment: environment.name.to_string(),
                service: name.clone(),
            });
            continue;
        };
        let context = ServiceContext {
            environment,
            namespace: &namespace,
            name,
            service,
            labels: service_labels(environment, name),
        };
        let config = config_json(&service.config);
        objects.push(Object::ConfigMap(config_map(&context, &config)));
        if !service.secrets.is_empty() {
            objects.push(Object::Secret(secret(&context, options)));
        }
        objects.push(Object::Deployment(Box::new(deployment(
            &context, image, &config,
        ))));
        objects.push(Object::Service(Box::new(kube_service(&context))));
    }
    if problems.is_empty() {
        Ok(objects)
    } else {
        Err(problems)
    }
}

/// The environment's namespace: its `kube.namespace`, or `<project>-<env>` for an environment
/// without one (a local environment rendered on request).
pub fn namespace_of(environment: &Environment) -> String {
    match &environment.kube {
        Some(kube) => kube.namespace.clone(),
        None => format!("{}-{}", environment.project.name, environment.name),
    }
}

/// The text of a service's `config.json`: the merged config, keys sorted at every level (so
/// the text, and its hash, depend only on the config's content), pretty-printed.
pub fn config_json(config: &serde_json::Value) -> String {
    // Printing a `serde_json::Value` cannot fail: its keys are strings.
    let mut text = serde_json::to_string_pretty(&sorted(config)).unwrap_or_default();
    text.push('\n');
    text
}

struct ServiceContext<'a> {
    environment: &'a Environment,
    namespace: &'a str,
    name: &'a ServiceName,
    service: &'a environment::Service,
    labels: BTreeMap<String, String>,
}

impl ServiceContext<'_> {
    fn metadata(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.to_owned()),
            labels: Some(self.labels.clone()),
            ..ObjectMeta::default()
        }
    }
}

fn config_map(context: &ServiceContext<'_>, config: &str) -> ConfigMap {
    ConfigMap {
        metadata: context.metadata(config_map_name(context.name)),
        data: Some(BTreeMap::from([(
            CONFIG_FILE.to_owned(),
            config.to_owned(),
        )])),
        ..ConfigMap::default()
    }
}

/// The service's Secret (type Opaque): each secret's value, or its reference as a
/// placeholder when the values were not given.
fn secret(context: &ServiceContext<'_>, options: &RenderOptions) -> Secret {
    let values = options.secret_values.as_ref().map(|values| {
        values
            .get(context.name.as_str())
            .cloned()
            .unwrap_or_default()
    });
    let mut secret = Secret {
        metadata: context.metadata(secret_name(context.name)),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    };
    match values {
        Some(values) => {
            secret.data = Some(
                context
                    .service
                    .secrets
                    .keys()
                    .filter_map(|name| {
                        let value = values.get(name)?;
                        Some((name.clone(), ByteString(value.clone())))
                    })
                    .collect(),
            );
        }
        None => {
            secret.string_data = Some(
                context
                    .service
                    .secrets
                    .iter()
                    .map(|(name, reference)| (name.clone(), reference.to_string()))
                    .collect(),
            );
        }
    }
    secret
}

fn secret_name(service: &ServiceName) -> String {
    format!("{service}-secrets")
}

fn deployment(context: &ServiceContext<'_>, image: &str, config: &str) -> Deployment {
    let service = context.service;
    let rollout = &service.rollout;
    // As the local runtime does: with nothing allowed down, one new pod may always come up
    // (Kubernetes rejects a strategy where both are zero).
    let max_surge = rollout
        .max_surge
        .max(u32::from(rollout.max_unavailable == 0));
    let mut requests = BTreeMap::from([(
        "memory".to_owned(),
        Quantity(service.memory.as_str().to_owned()),
    )]);
    if let Some(cpu) = &service.cpu {
        requests.insert("cpu".to_owned(), Quantity(cpu.as_str().to_owned()));
    }
    let limits = BTreeMap::from([(
        "memory".to_owned(),
        Quantity(service.memory.as_str().to_owned()),
    )]);
    let probe = service
        .health
        .as_ref()
        .and_then(|health| probe(health, service.port));
    let container = Container {
        name: context.name.to_string(),
        image: Some(image.to_owned()),
        ports: Some(vec![ContainerPort {
            name: Some(port_name(service.protocol).to_owned()),
            container_port: i32::from(service.port),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        env: Some(env_vars(context)),
        resources: Some(ResourceRequirements {
            requests: Some(requests),
            limits: Some(limits),
            ..ResourceRequirements::default()
        }),
        readiness_probe: probe.clone(),
        liveness_probe: probe,
        volume_mounts: Some(vec![VolumeMount {
            name: CONFIG_VOLUME.to_owned(),
            mount_path: CONFIG_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    Deployment {
        metadata: context.metadata(context.name.to_string()),
        spec: Some(DeploymentSpec {
            replicas: Some(clamp(u64::from(service.replicas))),
            selector: LabelSelector {
                match_labels: Some(context.labels.clone()),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(clamp(u64::from(max_surge)))),
                    max_unavailable: Some(IntOrString::Int(clamp(u64::from(
                        rollout.max_unavailable,
                    )))),
                }),
            }),
            progress_deadline_seconds: Some(seconds(rollout.deadline)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(context.labels.clone()),
                    annotations: Some(pod_annotations(service, config)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: CONFIG_VOLUME.to_owned(),
                        config_map: Some(ConfigMapVolumeSource {
                            name: config_map_name(context.name),
                            ..ConfigMapVolumeSource::default()
                        }),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The config hash, and the hash of the secret fingerprints when the values were read.
fn pod_annotations(service: &environment::Service, config: &str) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::from([(
        CONFIG_HASH_ANNOTATION.to_owned(),
        sha256_hex(config.as_bytes()),
    )]);
    if !service.secret_fingerprints.is_empty() {
        let fingerprints: String = service
            .secret_fingerprints
            .iter()
            .map(|(name, fingerprint)| format!("{name}={fingerprint}\n"))
            .collect();
        annotations.insert(
            SECRETS_HASH_ANNOTATION.to_owned(),
            sha256_hex(fingerprints.as_bytes()),
        );
    }
    annotations
}

/// A ClusterIP Service on the service's port, or a LoadBalancer on its `expose` port that
/// forwards to its port.
fn kube_service(context: &ServiceContext<'_>) -> Service {
    let service = context.service;
    Service {
        metadata: context.metadata(context.name.to_string()),
        spec: Some(ServiceSpec {
            type_: Some(
                if service.expose.is_some() {
                    "LoadBalancer"
                } else {
                    "ClusterIP"
                }
                .to_owned(),
            ),
            selector: Some(context.labels.clone()),
            ports: Some(vec![ServicePort {
                name: Some(port_name(service.protocol).to_owned()),
                port: i32::from(service_port(service)),
                target_port: Some(IntOrString::Int(i32::from(service.port))),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The variables of DESIGN.md, then the service's own `env`, then its secrets (read from the
/// service's Secret `<service>-secrets`).
fn env_vars(context: &ServiceContext<'_>) -> Vec<EnvVar> {
    let service = context.service;
    let mut vars = vec![
        plain("ENV_NAME", context.environment.name.as_str()),
        plain("TIER_SERVICE", context.name.as_str()),
        // Locally the replica's index; a pod's name is what identifies a replica here.
        EnvVar {
            name: "TIER_REPLICA".to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".to_owned(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        plain("PORT", &service.port.to_string()),
        plain("TIER_CONFIG", &format!("{CONFIG_DIR}/{CONFIG_FILE}")),
    ];
    let mut dependencies: Vec<&ServiceName> = service.depends_on.iter().collect();
    dependencies.sort();
    dependencies.dedup();
    for dependency in dependencies {
        // Validation guarantees the dependency exists; a dangling one gets no variable.
        if let Some(target) = context.environment.services.get(dependency) {
            let scheme = match target.protocol {
                Protocol::Http => "http",
                Protocol::Tcp => "tcp",
            };
            let url = format!(
                "{scheme}://{dependency}.{}.svc.cluster.local:{}",
                context.namespace,
                service_port(target)
            );
            vars.push(plain(&dependency.url_variable(), &url));
        }
    }
    for (name, value) in &service.env {
        vars.push(plain(name, value));
    }
    for name in service.secrets.keys() {
        vars.push(EnvVar {
            name: name.clone(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret_name(context.name),
                    key: name.clone(),
                    ..SecretKeySelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }
    vars
}

fn plain(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

/// A probe from `health`: an HTTP GET of its path on the service's port, or a TCP connect to
/// its port.
fn probe(health: &Health, service_port: u16) -> Option<Probe> {
    let (http_get, tcp_socket) = match health.probe()? {
        environment::Probe::Http(path) => (
            Some(HTTPGetAction {
                path: Some(path.to_owned()),
                port: IntOrString::Int(i32::from(service_port)),
                ..HTTPGetAction::default()
            }),
            None,
        ),
        environment::Probe::Tcp(port) => (
            None,
            Some(TCPSocketAction {
                port: IntOrString::Int(i32::from(port)),
                ..TCPSocketAction::default()
            }),
        ),
    };
    Some(Probe {
        http_get,
        tcp_socket,
        period_seconds: Some(seconds(health.interval)),
        timeout_seconds: Some(seconds(health.timeout)),
        failure_threshold: Some(clamp(u64::from(health.failure_threshold)).max(1)),
        ..Probe::default()
    })
}

/// The port other services reach this one on: its `expose` port when it has one (the
/// LoadBalancer listens there), else its own.
fn service_port(service: &environment::Service) -> u16 {
    service.expose.unwrap_or(service.port)
}

fn port_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Http => "http",
        Protocol::Tcp => "tcp",
    }
}

fn config_map_name(service: &ServiceName) -> String {
    format!("{service}-config")
}

fn environment_labels(environment: &Environment) -> BTreeMap<String, String> {
    BTreeMap::from([
        (PART_OF_LABEL.to_owned(), environment.project.name.clone()),
        (MANAGED_BY_LABEL.to_owned(), "tier".to_owned()),
        (ENVIRONMENT_LABEL.to_owned(), environment.name.to_string()),
    ])
}

fn service_labels(environment: &Environment, service: &ServiceName) -> BTreeMap<String, String> {
    let mut labels = environment_labels(environment);
    labels.insert(NAME_LABEL.to_owned(), service.to_string());
    labels
}

/// Whole seconds, rounded up, at least one (Kubernetes rejects zero periods and timeouts).
fn seconds(duration: Duration) -> i32 {
    clamp(duration.as_millis().div_ceil(1000).max(1))
}

/// Kubernetes counts in `int32`; the model's counts are far below its limit.
fn clamp(value: u64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn sorted(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|left, right| left.0.cmp(right.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key.clone(), sorted(value)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(sorted).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_to_whole_seconds_of_at_least_one() {
        for (millis, expected) in [(0, 1), (1, 1), (1_000, 1), (1_500, 2), (60_000, 60)] {
            assert_eq!(seconds(Duration::from_millis(millis)), expected, "{millis}");
        }
        assert_eq!(seconds(Duration::from_millis(u64::MAX)), i32::MAX);
    }

    #[test]
    fn config_json_sorts_keys_at_every_level() {
        let config = serde_json::json!({"b": {"z": 1, "a": [{"y": 2, "x": 3}]}, "a": null});
        assert_eq!(
            config_json(&config),
            "{\n  \"a\": null,\n  \"b\": {\n    \"a\": [\n      {\n        \"x\": 3,\n        \"y\": 2\n      }\n    ],\n    \"z\": 1\n  }\n}\n"
        );
    }

    #[test]
    fn sha256_is_lower_case_hex() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
