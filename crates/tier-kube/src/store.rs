//! The runtime config store beside a kubernetes environment's services.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, KeyToPath, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    Secret, SecretVolumeSource, Service, ServicePort, ServiceSpec, TCPSocketAction, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tier_model::Environment;

use crate::object::Object;
use crate::render::{
    NAME_LABEL, READ_ONLY_KEY, RenderOptions, STORE_NAME, STORE_PORT, STORE_TOKENS_DIR,
    STORE_TOKENS_PLACEHOLDER, STORE_TOKENS_SECRET, environment_labels, flags_json,
};

const TOKENS_FILE_KEY: &str = "tokens.json";
const TOKENS_VOLUME: &str = "tokens";
/// How long the store's Deployment may take to roll out (its `progressDeadlineSeconds`).
const STORE_ROLLOUT_DEADLINE_SECONDS: i32 = 120;

/// The runtime config store beside the services: the Secret with its tokens, a Deployment of
/// one `tier store serve` on the environment's etcd, and a ClusterIP Service in front of it.
pub(crate) fn store_objects(
    environment: &Environment,
    namespace: &str,
    options: &RenderOptions,
) -> [Object; 3] {
    let mut labels = environment_labels(environment);
    labels.insert(NAME_LABEL.to_owned(), STORE_NAME.to_owned());
    let metadata = |name: &str| ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels.clone()),
        ..ObjectMeta::default()
    };
    let mut secret = Secret {
        metadata: metadata(STORE_TOKENS_SECRET),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    };
    match &options.store_tokens {
        Some(tokens) => {
            secret.data = Some(BTreeMap::from([
                (
                    TOKENS_FILE_KEY.to_owned(),
                    ByteString(tokens.file.clone().into_bytes()),
                ),
                (
                    READ_ONLY_KEY.to_owned(),
                    ByteString(tokens.read_only.clone().into_bytes()),
                ),
            ]));
        }
        None => {
            secret.string_data = Some(BTreeMap::from([
                (
                    TOKENS_FILE_KEY.to_owned(),
                    STORE_TOKENS_PLACEHOLDER.to_owned(),
                ),
                (
                    READ_ONLY_KEY.to_owned(),
                    STORE_TOKENS_PLACEHOLDER.to_owned(),
                ),
            ]));
        }
    }
    let memory = BTreeMap::from([("memory".to_owned(), Quantity("64Mi".to_owned()))]);
    let port = i32::from(STORE_PORT);
    let mut args: Vec<String> = [
        "store",
        "serve",
        "--backend",
        &environment.store_etcd(),
        "--env",
        environment.name.as_str(),
        "--listen",
        &format!("0.0.0.0:{STORE_PORT}"),
        "--tokens",
        &format!("{STORE_TOKENS_DIR}/{TOKENS_FILE_KEY}"),
    ]
    .map(str::to_owned)
    .to_vec();
    // The declared flags travel in the pod spec (the project is not in the image), so a
    // changed default rolls the store.
    if !environment.flags.is_empty() {
        args.push("--flags".to_owned());
        args.push(flags_json(environment));
    }
    let container = Container {
        name: STORE_NAME.to_owned(),
        image: Some(environment.store_image()),
        args: Some(args),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: port,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(port),
                ..TCPSocketAction::default()
            }),
            ..Probe::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(memory.clone()),
            limits: Some(memory),
            ..ResourceRequirements::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: TOKENS_VOLUME.to_owned(),
            mount_path: STORE_TOKENS_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let deployment = Deployment {
        metadata: metadata(STORE_NAME),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..LabelSelector::default()
            },
            progress_deadline_seconds: Some(STORE_ROLLOUT_DEADLINE_SECONDS),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: TOKENS_VOLUME.to_owned(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some(STORE_TOKENS_SECRET.to_owned()),
                            // Owner-only: `tier store serve` refuses a tokens file that others
                            // can read. Only the file: the read-only token is for the services.
                            default_mode: Some(0o400),
                            items: Some(vec![KeyToPath {
                                key: TOKENS_FILE_KEY.to_owned(),
                                path: TOKENS_FILE_KEY.to_owned(),
                                ..KeyToPath::default()
                            }]),
                            ..SecretVolumeSource::default()
                        }),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    let service = Service {
        metadata: metadata(STORE_NAME),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(labels.clone()),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port,
                target_port: Some(IntOrString::Int(port)),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    [
        Object::Secret(secret),
        Object::Deployment(Box::new(deployment)),
        Object::Service(Box::new(service)),
    ]
}
