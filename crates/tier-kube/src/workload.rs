//! A service's Deployment: its container (image, args, ports, resources, probes, security,
//! mounts) and its pod (service account, security, volumes, grace), and the objects its
//! volumes need (a ConfigMap per `config` volume, a PersistentVolumeClaim per `claim`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, TCPSocketAction, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tier_model::environment::{self, Health, Seccomp, Security, VolumeSource};

use crate::object::Object;
use crate::render::{
    CONFIG_DIR, CONFIG_HASH_ANNOTATION, SECRETS_HASH_ANNOTATION, ServiceContext, clamp,
    config_map_name, env_vars, seconds, sha256_hex,
};

const CONFIG_VOLUME: &str = "config";

pub(crate) fn deployment(context: &ServiceContext<'_>, image: &str, config: &str) -> Deployment {
    let service = context.service;
    let rollout = &service.rollout;
    // As the local runtime does: with nothing allowed down, one new pod may always come up
    // (Kubernetes rejects a strategy where both are zero).
    let max_surge = rollout
        .max_surge
        .max(u32::from(rollout.max_unavailable == 0));
    let mut pod_labels = context.labels.clone();
    pod_labels.extend(service.labels.clone());
    let mut annotations = pod_annotations(service, config);
    annotations.extend(service.pod_annotations.clone());
    let account = service.service_account.as_ref();
    Deployment {
        metadata: context.metadata(context.name.to_string()),
        spec: Some(DeploymentSpec {
            replicas: Some(clamp(u64::from(service.replicas))),
            selector: LabelSelector {
                match_labels: Some(context.selector.clone()),
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
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container(context, image)],
                    volumes: Some(volumes(context)),
                    service_account_name: account.map(|account| account.name.clone()),
                    // Off unless asked: with its own account as declared, and under a
                    // security profile for the namespace's default account too.
                    automount_service_account_token: account
                        .map(|account| account.automount)
                        .or_else(|| {
                            (!context.environment.project.security.is_none()).then_some(false)
                        }),
                    security_context: pod_security(&service.security),
                    termination_grace_period_seconds: service
                        .termination_grace
                        .map(|grace| i64::try_from(grace.as_millis() / 1000).unwrap_or(i64::MAX)),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn container(context: &ServiceContext<'_>, image: &str) -> Container {
    let service = context.service;
    let mut requests = BTreeMap::from([(
        "memory".to_owned(),
        Quantity(service.memory.as_str().to_owned()),
    )]);
    if let Some(cpu) = &service.cpu {
        requests.insert("cpu".to_owned(), Quantity(cpu.as_str().to_owned()));
    }
    let memory_limit = service.memory_limit.as_ref().unwrap_or(&service.memory);
    let mut limits = BTreeMap::from([(
        "memory".to_owned(),
        Quantity(memory_limit.as_str().to_owned()),
    )]);
    if let Some(cpu) = &service.cpu_limit {
        limits.insert("cpu".to_owned(), Quantity(cpu.as_str().to_owned()));
    }
    // A worker with no Service listens on nothing but its named ports, if any.
    let skip_main = usize::from(!service.service);
    let ports: Vec<ContainerPort> = service
        .all_ports()
        .skip(skip_main)
        .map(|(name, port)| ContainerPort {
            name: Some(name.to_owned()),
            container_port: i32::from(port),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        })
        .collect();
    let mut mounts = vec![VolumeMount {
        name: CONFIG_VOLUME.to_owned(),
        mount_path: CONFIG_DIR.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    for (name, volume) in &service.volumes {
        mounts.push(VolumeMount {
            name: name.clone(),
            mount_path: volume.mount.clone(),
            read_only: volume.read_only.then_some(true),
            ..VolumeMount::default()
        });
    }
    Container {
        name: context.name.to_string(),
        image: Some(image.to_owned()),
        args: service.args.clone().filter(|args| !args.is_empty()),
        ports: (!ports.is_empty()).then_some(ports),
        env: Some(env_vars(context)),
        resources: Some(ResourceRequirements {
            requests: Some(requests),
            limits: Some(limits),
            ..ResourceRequirements::default()
        }),
        readiness_probe: service
            .health
            .as_ref()
            .and_then(|health| probe(health, service.port)),
        liveness_probe: service
            .liveness_check()
            .and_then(|health| probe(health, service.port)),
        startup_probe: service
            .startup
            .as_ref()
            .and_then(|health| probe(health, service.port)),
        security_context: container_security(&service.security),
        volume_mounts: Some(mounts),
        ..Container::default()
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

/// A probe of any kind, with the declared timings.
pub(crate) fn probe(health: &Health, service_port: u16) -> Option<Probe> {
    let mut probe = Probe {
        initial_delay_seconds: health
            .initial_delay
            .map(|delay| clamp(delay.as_millis() / 1000)),
        period_seconds: Some(seconds(health.interval)),
        timeout_seconds: Some(seconds(health.timeout)),
        failure_threshold: Some(clamp(u64::from(health.failure_threshold)).max(1)),
        success_threshold: (health.success_threshold > 1)
            .then(|| clamp(u64::from(health.success_threshold))),
        ..Probe::default()
    };
    match health.probe(service_port)? {
        environment::Probe::Http {
            path,
            port,
            headers,
        } => {
            probe.http_get = Some(HTTPGetAction {
                path: Some(path.to_owned()),
                port: IntOrString::Int(i32::from(port)),
                http_headers: (!headers.is_empty()).then(|| {
                    headers
                        .iter()
                        .map(|(name, value)| HTTPHeader {
                            name: name.clone(),
                            value: value.clone(),
                        })
                        .collect()
                }),
                ..HTTPGetAction::default()
            });
        }
        environment::Probe::Tcp(port) => {
            probe.tcp_socket = Some(TCPSocketAction {
                port: IntOrString::Int(i32::from(port)),
                ..TCPSocketAction::default()
            });
        }
        environment::Probe::Grpc { port, service } => {
            probe.grpc = Some(GRPCAction {
                port: i32::from(port),
                service: (!service.is_empty()).then(|| service.to_owned()),
            });
        }
        environment::Probe::Exec(argv) => {
            probe.exec = Some(ExecAction {
                command: Some(argv.to_vec()),
            });
        }
    }
    Some(probe)
}

/// The pod-level settings: who the processes run as, the volumes' group, seccomp.
fn pod_security(security: &Security) -> Option<PodSecurityContext> {
    let context = PodSecurityContext {
        run_as_user: security.run_as_user,
        run_as_group: security.run_as_group,
        run_as_non_root: security.run_as_non_root,
        fs_group: security.fs_group,
        seccomp_profile: security.seccomp.map(|seccomp| SeccompProfile {
            type_: match seccomp {
                Seccomp::RuntimeDefault => "RuntimeDefault",
                Seccomp::Unconfined => "Unconfined",
            }
            .to_owned(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    };
    (context != PodSecurityContext::default()).then_some(context)
}

/// The container-level settings: privilege escalation, the root filesystem, capabilities.
fn container_security(security: &Security) -> Option<SecurityContext> {
    let capabilities = Capabilities {
        drop: (!security.capabilities_drop.is_empty()).then(|| security.capabilities_drop.clone()),
        add: (!security.capabilities_add.is_empty()).then(|| security.capabilities_add.clone()),
    };
    let context = SecurityContext {
        allow_privilege_escalation: security.allow_privilege_escalation,
        read_only_root_filesystem: security.read_only_root_filesystem,
        run_as_non_root: security.run_as_non_root,
        capabilities: (capabilities != Capabilities::default()).then_some(capabilities),
        ..SecurityContext::default()
    };
    (context != SecurityContext::default()).then_some(context)
}

fn volumes(context: &ServiceContext<'_>) -> Vec<Volume> {
    let mut volumes = vec![Volume {
        name: CONFIG_VOLUME.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map_name(context.name),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    for (name, volume) in &context.service.volumes {
        let mut entry = Volume {
            name: name.clone(),
            ..Volume::default()
        };
        match &volume.source {
            VolumeSource::EmptyDir { memory, size_limit } => {
                entry.empty_dir = Some(EmptyDirVolumeSource {
                    medium: memory.then(|| "Memory".to_owned()),
                    size_limit: size_limit
                        .as_ref()
                        .map(|size| Quantity(size.as_str().to_owned())),
                });
            }
            VolumeSource::Config { .. } => {
                entry.config_map = Some(ConfigMapVolumeSource {
                    name: volume_object_name(context, name),
                    ..ConfigMapVolumeSource::default()
                });
            }
            VolumeSource::Secret { name: secret } => {
                entry.secret = Some(SecretVolumeSource {
                    secret_name: Some(secret.clone()),
                    ..SecretVolumeSource::default()
                });
            }
            VolumeSource::Claim { .. } => {
                entry.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                    claim_name: volume_object_name(context, name),
                    read_only: volume.read_only.then_some(true),
                });
            }
        }
        volumes.push(entry);
    }
    volumes
}

/// The ConfigMap of each `config` volume and the PersistentVolumeClaim of each `claim`.
pub(crate) fn volume_objects(context: &ServiceContext<'_>) -> Vec<Object> {
    let mut objects = Vec::new();
    for (name, volume) in &context.service.volumes {
        match &volume.source {
            VolumeSource::Config { files, .. } => {
                objects.push(Object::ConfigMap(ConfigMap {
                    metadata: context.metadata(volume_object_name(context, name)),
                    data: Some(files.clone()),
                    ..ConfigMap::default()
                }));
            }
            VolumeSource::Claim {
                size,
                storage_class,
            } => {
                objects.push(Object::PersistentVolumeClaim(Box::new(
                    PersistentVolumeClaim {
                        metadata: context.metadata(volume_object_name(context, name)),
                        spec: Some(PersistentVolumeClaimSpec {
                            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                            storage_class_name: storage_class.clone(),
                            resources: Some(VolumeResourceRequirements {
                                requests: Some(BTreeMap::from([(
                                    "storage".to_owned(),
                                    Quantity(size.as_str().to_owned()),
                                )])),
                                ..VolumeResourceRequirements::default()
                            }),
                            ..PersistentVolumeClaimSpec::default()
                        }),
                        ..PersistentVolumeClaim::default()
                    },
                )));
            }
            VolumeSource::EmptyDir { .. } | VolumeSource::Secret { .. } => {}
        }
    }
    objects
}

fn volume_object_name(context: &ServiceContext<'_>, volume: &str) -> String {
    format!("{}-{volume}", context.name)
}
