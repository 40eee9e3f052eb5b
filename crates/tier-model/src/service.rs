//! Building one typed [`Service`] from its merged tree. The tree was checked against the
//! schema already, so a value of the wrong type is skipped here (and reported there).

use std::collections::BTreeMap;

use crate::defaults;
use crate::environment::*;
use crate::files::Attached;
use crate::names::ServiceName;
use crate::quantity::{Duration, Quantity};
use crate::tree::{Node, Value};

pub(crate) fn build_service(node: &Node, profile: SecurityProfile, files: &Attached) -> Service {
    let text = |key: &str| node.get(key).and_then(Node::as_str).map(str::to_owned);
    let port = |key: &str| port_of(node, key);
    let count = |key: &str, default: u32| count_of(Some(node), key, default);
    let strings = |key: &str| strings_of(node, key);
    let security = build_security(node.get("security"), profile);
    Service {
        command: strings("command"),
        image: text("image"),
        version: text("version"),
        source: text("source"),
        test: text("test"),
        port: port("port").unwrap_or(defaults::PORT),
        expose: port("expose"),
        replicas: count("replicas", defaults::REPLICAS),
        memory: text("memory")
            .and_then(|memory| Quantity::parse_memory(&memory).ok())
            .unwrap_or_else(Quantity::default_memory),
        cpu: node.get("cpu").and_then(cpu_of),
        memory_limit: text("memory_limit").and_then(|memory| Quantity::parse_memory(&memory).ok()),
        cpu_limit: node.get("cpu_limit").and_then(cpu_of),
        args: strings("args"),
        port_name: text("port_name"),
        ports: node
            .get("ports")
            .and_then(Node::as_table)
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|(name, port)| {
                        Some((name.clone(), u16::try_from(port.as_integer()?).ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        service_port: port("service_port"),
        service: node
            .get("service")
            .and_then(Node::as_bool)
            .unwrap_or(defaults::REACHABLE),
        host: text("host"),
        security,
        service_account: node.get("service_account").and_then(build_service_account),
        volumes: node
            .get("volumes")
            .and_then(Node::as_table)
            .map(|volumes| {
                volumes
                    .iter()
                    .filter_map(|(name, volume)| Some((name.clone(), build_volume(volume, files)?)))
                    .collect()
            })
            .unwrap_or_default(),
        labels: string_map(node.get("labels")),
        annotations: string_map(node.get("annotations")),
        pod_annotations: string_map(node.get("pod_annotations")),
        termination_grace: node.get("termination_grace").and_then(duration_of),
        patches: files.patches(node.get("patches")),
        manifests: files.manifests(node.get("manifests")),
        protocol: node
            .get("protocol")
            .and_then(Node::as_choice)
            .unwrap_or_default(),
        restart: node
            .get("restart")
            .and_then(Node::as_choice)
            .unwrap_or_default(),
        depends_on: strings("depends_on")
            .unwrap_or_default()
            .iter()
            .filter_map(|name| ServiceName::new(name).ok())
            .collect(),
        health: node.get("health").map(build_health),
        liveness: node.get("liveness").map(build_health),
        startup: node.get("startup").map(build_health),
        rollout: {
            let rollout = node.get("rollout");
            Rollout {
                max_surge: count_of(rollout, "max_surge", defaults::MAX_SURGE),
                max_unavailable: count_of(rollout, "max_unavailable", defaults::MAX_UNAVAILABLE),
                deadline: rollout
                    .and_then(|rollout| rollout.get("deadline"))
                    .and_then(duration_of)
                    .unwrap_or(defaults::ROLLOUT_DEADLINE),
            }
        },
        env: node
            .get("env")
            .and_then(Node::as_table)
            .map(|env| {
                env.iter()
                    .map(|(key, value)| {
                        let value = match &value.value {
                            Value::String(text) => text.clone(),
                            _ => value.to_json().to_string(),
                        };
                        (key.clone(), value)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        secrets: node
            .get("secrets")
            .and_then(Node::as_table)
            .map(|secrets| {
                secrets
                    .iter()
                    .filter_map(|(key, reference)| {
                        let secret = match (
                            reference.get("env").and_then(Node::as_str),
                            reference.get("file").and_then(Node::as_str),
                        ) {
                            (Some(variable), None) => SecretRef::Env(variable.to_owned()),
                            (None, Some(path)) => SecretRef::File(path.to_owned()),
                            _ => return None,
                        };
                        Some((key.clone(), secret))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        secret_fingerprints: BTreeMap::new(),
        config_dir: text("config_dir"),
        config: node
            .get("config")
            .filter(|config| config.as_table().is_some())
            .map_or_else(
                || serde_json::Value::Object(serde_json::Map::new()),
                Node::to_json,
            ),
    }
}

fn build_health(health: &Node) -> Health {
    Health {
        http: health.get("http").and_then(Node::as_str).map(str::to_owned),
        tcp: port_of(health, "tcp"),
        grpc: port_of(health, "grpc"),
        exec: strings_of(health, "exec").filter(|argv| !argv.is_empty()),
        port: port_of(health, "port"),
        headers: string_map(health.get("headers")),
        service: health
            .get("service")
            .and_then(Node::as_str)
            .map(str::to_owned),
        initial_delay: health.get("initial_delay").and_then(duration_of),
        interval: health
            .get("interval")
            .and_then(duration_of)
            .unwrap_or(defaults::PROBE_INTERVAL),
        timeout: health
            .get("timeout")
            .and_then(duration_of)
            .unwrap_or(defaults::PROBE_TIMEOUT),
        failure_threshold: count_of(
            Some(health),
            "failure_threshold",
            defaults::FAILURE_THRESHOLD,
        ),
        success_threshold: count_of(
            Some(health),
            "success_threshold",
            defaults::SUCCESS_THRESHOLD,
        ),
    }
}

/// The profile's defaults, under what the service wrote.
fn build_security(node: Option<&Node>, profile: SecurityProfile) -> Security {
    let mut security = Security::profile_defaults(profile);
    let Some(node) = node else {
        return security;
    };
    let id = |key: &str| node.get(key).and_then(Node::as_integer);
    let flag = |key: &str| node.get(key).and_then(Node::as_bool);
    if let Some(value) = id("run_as_user") {
        security.run_as_user = Some(value);
    }
    if let Some(value) = id("run_as_group") {
        security.run_as_group = Some(value);
    }
    if let Some(value) = id("fs_group") {
        security.fs_group = Some(value);
    }
    if let Some(value) = flag("run_as_non_root") {
        security.run_as_non_root = Some(value);
    }
    if let Some(value) = flag("read_only_root_filesystem") {
        security.read_only_root_filesystem = Some(value);
    }
    if let Some(value) = flag("allow_privilege_escalation") {
        security.allow_privilege_escalation = Some(value);
    }
    if let Some(value) = strings_of(node, "capabilities_drop") {
        security.capabilities_drop = value;
    }
    if let Some(value) = strings_of(node, "capabilities_add") {
        security.capabilities_add = value;
    }
    if let Some(seccomp) = node.get("seccomp").and_then(Node::as_choice) {
        security.seccomp = Some(seccomp);
    }
    security
}

fn build_service_account(node: &Node) -> Option<ServiceAccount> {
    if let Some(name) = node.as_str() {
        return Some(ServiceAccount {
            name: name.to_owned(),
            annotations: BTreeMap::new(),
            automount: defaults::AUTOMOUNT,
        });
    }
    Some(ServiceAccount {
        name: node.get("name")?.as_str()?.to_owned(),
        annotations: string_map(node.get("annotations")),
        automount: node
            .get("automount")
            .and_then(Node::as_bool)
            .unwrap_or(defaults::AUTOMOUNT),
    })
}

/// A volume with exactly one source; anything else is reported by the checks.
fn build_volume(node: &Node, files: &Attached) -> Option<Volume> {
    let mount = node.get("mount")?.as_str()?.to_owned();
    let mut sources = Vec::new();
    if let Some(empty) = node.get("empty_dir") {
        sources.push(VolumeSource::EmptyDir {
            memory: empty.get("medium").and_then(Node::as_str) == Some("memory"),
            size_limit: empty
                .get("size_limit")
                .and_then(Node::as_str)
                .and_then(|size| Quantity::parse_memory(size).ok()),
        });
    }
    if let Some(dir) = node.get("config").and_then(Node::as_str) {
        sources.push(VolumeSource::Config {
            dir: dir.to_owned(),
            files: files.config_files(dir),
        });
    }
    if let Some(name) = node.get("secret").and_then(Node::as_str) {
        sources.push(VolumeSource::Secret {
            name: name.to_owned(),
        });
    }
    if let Some(claim) = node.get("claim") {
        sources.push(VolumeSource::Claim {
            size: claim
                .get("size")
                .and_then(Node::as_str)
                .and_then(|size| Quantity::parse_memory(size).ok())?,
            storage_class: claim
                .get("storage_class")
                .and_then(Node::as_str)
                .map(str::to_owned),
        });
    }
    let [source] = <[VolumeSource; 1]>::try_from(sources).ok()?;
    Some(Volume {
        mount,
        source,
        read_only: node
            .get("read_only")
            .and_then(Node::as_bool)
            .unwrap_or(defaults::READ_ONLY),
    })
}

fn port_of(node: &Node, key: &str) -> Option<u16> {
    node.get(key)
        .and_then(Node::as_integer)
        .and_then(|port| u16::try_from(port).ok())
        .filter(|port| *port > 0)
}

fn count_of(node: Option<&Node>, key: &str, default: u32) -> u32 {
    node.and_then(|node| node.get(key))
        .and_then(Node::as_integer)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(default)
}

fn duration_of(node: &Node) -> Option<Duration> {
    node.as_str().and_then(|text| Duration::parse(text).ok())
}

fn cpu_of(node: &Node) -> Option<Quantity> {
    match &node.value {
        Value::String(text) => Quantity::parse_cpu(text).ok(),
        Value::Integer(number) => Quantity::parse_cpu(&number.to_string()).ok(),
        Value::Float(number) => Quantity::parse_cpu(&number.to_string()).ok(),
        _ => None,
    }
}

fn strings_of(node: &Node, key: &str) -> Option<Vec<String>> {
    node.get(key)?.as_array().map(|items| {
        items
            .iter()
            .filter_map(Node::as_str)
            .map(str::to_owned)
            .collect()
    })
}

fn string_map(node: Option<&Node>) -> BTreeMap<String, String> {
    node.and_then(Node::as_table)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}
