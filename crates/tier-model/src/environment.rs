//! The resolved environment: every value decided, typed, ready for a runtime.
//! Its serialised form is what `tier render` prints; it mirrors the project file's paths, so
//! `explain` and `diff` can name a value by the same path in both.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::choice::choice;
use crate::names::{EnvName, ServiceName};
use crate::quantity::{Duration, Quantity};
pub use crate::workload::{
    Health, Manifest, Patch, Probe, Seccomp, Security, SecurityProfile, ServiceAccount, Volume,
    VolumeSource,
};

/// Where every replica finds its config: `TIER_CONFIG` is `config.json` in it (a ConfigMap
/// mounted there on kubernetes).
pub const CONFIG_MOUNT: &str = "/etc/tier";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Environment {
    pub name: EnvName,
    pub runtime: Runtime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<EnvName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_from: Option<EnvName>,
    pub protected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<Kube>,
    /// Patches of the environment's rendered objects (`kube.patches`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
    /// Extra objects for the environment's namespace (`kube.manifests`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<Manifest>,
    pub project: ProjectSettings,
    pub services: BTreeMap<ServiceName, Service>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flags: BTreeMap<String, Flag>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub libraries: BTreeMap<String, Library>,
    pub store: StoreSettings,
}

impl Environment {
    /// The etcd address the store uses on kubernetes: `[store] etcd`, or an `etcd` Service in
    /// the environment's namespace with the keys under `tier/<project>/<env>`.
    pub fn store_etcd(&self) -> String {
        self.store
            .etcd
            .clone()
            .unwrap_or_else(|| format!("etcd://etcd:2379/tier/{}/{}", self.project.name, self.name))
    }

    /// The image that serves the store on kubernetes: `[store] image`, or
    /// [`DEFAULT_STORE_IMAGE`].
    pub fn store_image(&self) -> String {
        self.store
            .image
            .clone()
            .unwrap_or_else(|| DEFAULT_STORE_IMAGE.to_owned())
    }
}

choice! {
    /// Where an environment runs (`runtime`).
    pub enum Runtime {
        Local = "local",
        Kubernetes = "kubernetes",
    }
    default = Local;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kube {
    pub context: String,
    pub namespace: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProjectSettings {
    pub name: String,
    pub ordering: bool,
    pub on_failure: OnFailure,
    /// The Pod Security Standard services meet unless they loosen a setting themselves.
    #[serde(default, skip_serializing_if = "SecurityProfile::is_none")]
    pub security: SecurityProfile,
}

choice! {
    /// What a failed apply does (`project.on_failure`).
    pub enum OnFailure {
        Rollback = "rollback",
        Halt = "halt",
    }
    default = Rollback;
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Service {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<u16>,
    pub replicas: u32,
    pub memory: Quantity,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::quantity::deserialize_cpu"
    )]
    pub cpu: Option<Quantity>,
    /// The memory limit when it differs from `memory` (which is then the request only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<Quantity>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::quantity::deserialize_cpu"
    )]
    pub cpu_limit: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// The name of `port`, as written; [`Service::port_name`] gives the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// More ports by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u16>,
    /// The port others reach the service on, as written; [`Service::service_port`] decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_port: Option<u16>,
    /// Whether other services can reach this one (false: a worker with no Service).
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub service: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Security::is_empty")]
    pub security: Security,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccount>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace: Option<Duration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<Manifest>,
    pub protocol: Protocol,
    pub restart: Restart,
    pub depends_on: Vec<ServiceName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<Health>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Health>,
    pub rollout: Rollout,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretRef>,
    /// A keyed fingerprint of each secret's value, by secret name, filled in by the commands
    /// that read the values (plan, apply) so a changed value shows as a change. Never the
    /// value; empty when nothing was read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_fingerprints: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_dir: Option<String>,
    /// The merged app config: `base.json` under each `<env>.json` of the environment's chain.
    pub config: serde_json::Value,
}

fn yes() -> bool {
    true
}

fn is_yes(value: &bool) -> bool {
    *value
}

impl Service {
    /// The name of the main port: `port_name`, or `http`/`tcp` by protocol.
    pub fn port_name(&self) -> &str {
        self.port_name.as_deref().unwrap_or(self.protocol.as_str())
    }

    /// The port other services reach this one on inside a cluster: `service_port`, or its
    /// own port.
    pub fn service_port(&self) -> u16 {
        self.service_port.unwrap_or(self.port)
    }

    /// The liveness check: `liveness`, or `health` when none is given.
    pub fn liveness_check(&self) -> Option<&Health> {
        self.liveness.as_ref().or(self.health.as_ref())
    }

    /// Every port the process listens on: the main one first, then the named ones.
    pub fn all_ports(&self) -> impl Iterator<Item = (&str, u16)> {
        std::iter::once((self.port_name(), self.port))
            .chain(self.ports.iter().map(|(name, port)| (name.as_str(), *port)))
    }
}

choice! {
    /// What a service's proxy speaks (`protocol`).
    pub enum Protocol {
        Http = "http",
        Tcp = "tcp",
    }
    default = Http;
}

choice! {
    /// When a replica that exited is started again (`restart`).
    pub enum Restart {
        Always = "always",
        OnFailure = "on-failure",
        Never = "never",
    }
    default = Always;
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rollout {
    pub max_surge: u32,
    pub max_unavailable: u32,
    pub deadline: Duration,
}

/// Where a secret's value comes from. The value itself is never part of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(String),
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(variable) => write!(f, "<secret:env:{variable}>"),
            SecretRef::File(path) => write!(f, "<secret:file:{path}>"),
        }
    }
}

impl Serialize for SecretRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let inner = text
            .strip_prefix("<secret:")
            .and_then(|rest| rest.strip_suffix('>'))
            .ok_or_else(|| {
                serde::de::Error::custom(format!("`{text}` is not a secret reference"))
            })?;
        match inner.split_once(':') {
            Some(("env", variable)) => Ok(SecretRef::Env(variable.to_owned())),
            Some(("file", path)) => Ok(SecretRef::File(path.to_owned())),
            _ => Err(serde::de::Error::custom(format!(
                "`{text}` is not a secret reference"
            ))),
        }
    }
}

/// What a service runs, fixed at apply time: for the local runtime a copy of its executable in
/// the content-addressed store, for kubernetes its image reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// `sha256:<hex>` of the executable, or the image reference.
    pub digest: String,
    /// Where it came from: the command's program as resolved at apply time, or the image.
    pub source: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flag {
    pub default: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Library {
    pub path: String,
}

/// The runtime config store. Locally each environment's agent serves it; on kubernetes, with
/// `kubernetes = true`, a Deployment runs `tier store serve` on an etcd cluster beside the
/// services.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoreSettings {
    pub kubernetes: bool,
    /// The etcd cluster's address as written; [`Environment::store_etcd`] gives the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<String>,
    /// The image with the `tier` binary as written; [`Environment::store_image`] gives the
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// The image `tier store serve` runs from on kubernetes unless `[store] image` names another:
/// `tier:<this tier's version>`.
pub const DEFAULT_STORE_IMAGE: &str = concat!("tier:", env!("CARGO_PKG_VERSION"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_environment_reads_back_the_same() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-app");
        let mut project = crate::Project::load(&root).expect("the sample app loads");
        for name in ["dev", "stage", "prod"] {
            let resolved = project.resolve(name, &[]).expect("resolves");
            let json = serde_json::to_value(&resolved.environment).expect("serialises");
            let back: Environment = serde_json::from_value(json.clone()).expect("reads back");
            assert_eq!(
                serde_json::to_value(&back).expect("serialises again"),
                json,
                "{name}"
            );
        }
    }

    #[test]
    fn cpu_and_secrets_read_back() {
        let text = r#"{"command":["x"],"port":8080,"replicas":1,"memory":"1Gi","cpu":"2","protocol":"http","restart":"always","depends_on":[],"rollout":{"max_surge":1,"max_unavailable":0,"deadline":"1m"},"secrets":{"DB":"<secret:env:DB_PASSWORD>"},"config":{}}"#;
        let service: Service = serde_json::from_str(text).expect("reads");
        assert_eq!(service.cpu.map(|cpu| cpu.base_units()), Some(2000));
        assert_eq!(service.memory.base_units(), 1 << 30);
        assert_eq!(
            service.secrets.get("DB"),
            Some(&SecretRef::Env("DB_PASSWORD".to_owned()))
        );
    }
}
