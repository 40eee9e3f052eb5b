//! The parts of a resolved service that say how its workload runs: probes, security,
//! service account, volumes, ports and the kubernetes escape hatch. Each runtime reads the
//! same values, so one declaration means the same on both.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::choice::choice;
use crate::quantity::{Duration, Quantity};

/// A probe as declared: what it checks (exactly one of `http`, `tcp`, `grpc`, `exec`) and
/// its timings. `health` (readiness), `liveness` and `startup` all have this shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// The port of an `http` probe, when it is not the service's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The name a `grpc` probe asks about; empty asks about the server as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<Duration>,
    pub interval: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub success_threshold: u32,
}

fn one() -> u32 {
    1
}

fn is_one(value: &u32) -> bool {
    *value == 1
}

/// What a probe checks, with the port it needs decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe<'a> {
    /// An HTTP GET of a path on a port, with extra headers.
    Http {
        path: &'a str,
        port: u16,
        headers: &'a BTreeMap<String, String>,
    },
    Tcp(u16),
    /// The grpc.health.v1 `Check` call on a port, for a service name (empty: the server).
    Grpc {
        port: u16,
        service: &'a str,
    },
    /// A command that exits 0.
    Exec(&'a [String]),
}

impl Health {
    /// What the probe checks; `service_port` is the port of an `http` probe without its own.
    pub fn probe(&self, service_port: u16) -> Option<Probe<'_>> {
        if let Some(path) = &self.http {
            return Some(Probe::Http {
                path,
                port: self.port.unwrap_or(service_port),
                headers: &self.headers,
            });
        }
        if let Some(port) = self.tcp {
            return Some(Probe::Tcp(port));
        }
        if let Some(port) = self.grpc {
            return Some(Probe::Grpc {
                port,
                service: self.service.as_deref().unwrap_or_default(),
            });
        }
        self.exec.as_deref().map(Probe::Exec)
    }

    /// The port the probe connects to, if it connects to one.
    pub fn probe_port(&self, service_port: u16) -> Option<u16> {
        match self.probe(service_port)? {
            Probe::Http { port, .. } | Probe::Tcp(port) | Probe::Grpc { port, .. } => Some(port),
            Probe::Exec(_) => None,
        }
    }
}

choice! {
    /// A Pod Security Standard (kubernetes.io/docs/concepts/security/pod-security-standards),
    /// declared from the loosest to the strictest, which is how they compare.
    #[derive(PartialOrd, Ord)]
    pub enum SecurityProfile {
        /// No profile: nothing is defaulted or checked.
        None = "none",
        Baseline = "baseline",
        Restricted = "restricted",
    }
    default = None;
}

impl SecurityProfile {
    /// The name Kubernetes gives the level in `pod-security.kubernetes.io/enforce`.
    pub fn kubernetes_level(self) -> &'static str {
        match self {
            SecurityProfile::None => "privileged",
            SecurityProfile::Baseline => "baseline",
            SecurityProfile::Restricted => "restricted",
        }
    }

    pub fn is_none(&self) -> bool {
        *self == SecurityProfile::None
    }
}

/// The capabilities the baseline standard lets a container add.
pub const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

choice! {
    /// The seccomp profile a service's processes run under (`security.seccomp`).
    pub enum Seccomp {
        RuntimeDefault = "runtime-default",
        Unconfined = "unconfined",
    }
}

/// Who a service's processes run as and what they may do: the profile's defaults under
/// what the service wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
}

impl Security {
    pub fn is_empty(&self) -> bool {
        *self == Security::default()
    }

    /// The settings the profile asks for, for a service that did not write them.
    pub fn profile_defaults(profile: SecurityProfile) -> Security {
        match profile {
            SecurityProfile::Restricted => Security {
                run_as_non_root: Some(true),
                allow_privilege_escalation: Some(false),
                capabilities_drop: vec!["ALL".to_owned()],
                seccomp: Some(Seccomp::RuntimeDefault),
                ..Security::default()
            },
            SecurityProfile::Baseline | SecurityProfile::None => Security::default(),
        }
    }

    /// Why these settings fall below a profile: one reason per setting, empty when they meet
    /// it.
    pub fn below(&self, profile: SecurityProfile) -> Vec<String> {
        let mut reasons = Vec::new();
        if profile >= SecurityProfile::Baseline {
            if self.seccomp == Some(Seccomp::Unconfined) {
                reasons.push(format!("seccomp = \"{}\"", Seccomp::Unconfined.as_str()));
            }
            for capability in &self.capabilities_add {
                if !BASELINE_CAPABILITIES.contains(&capability.as_str()) {
                    reasons.push(format!("capabilities_add has {capability}"));
                }
            }
        }
        if profile >= SecurityProfile::Restricted {
            if self.run_as_non_root != Some(true) {
                reasons.push("run_as_non_root is not true".to_owned());
            }
            if self.run_as_user == Some(0) {
                reasons.push("run_as_user = 0 (root)".to_owned());
            }
            if self.allow_privilege_escalation != Some(false) {
                reasons.push("allow_privilege_escalation is not false".to_owned());
            }
            if !self.capabilities_drop.iter().any(|cap| cap == "ALL") {
                reasons.push("capabilities_drop does not hold \"ALL\"".to_owned());
            }
            // One beyond baseline's list was named above already.
            for capability in &self.capabilities_add {
                if capability != "NET_BIND_SERVICE"
                    && BASELINE_CAPABILITIES.contains(&capability.as_str())
                {
                    reasons.push(format!(
                        "capabilities_add has {capability} (only NET_BIND_SERVICE may be added)"
                    ));
                }
            }
            if self.seccomp != Some(Seccomp::RuntimeDefault) {
                reasons.push(format!(
                    "seccomp is not \"{}\"",
                    Seccomp::RuntimeDefault.as_str()
                ));
            }
        }
        reasons.dedup();
        reasons
    }

    /// The highest profile these settings meet.
    pub fn meets(&self) -> SecurityProfile {
        [SecurityProfile::Restricted, SecurityProfile::Baseline]
            .into_iter()
            .find(|profile| self.below(*profile).is_empty())
            .unwrap_or(SecurityProfile::None)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Whether pods get the account's API token mounted.
    pub automount: bool,
}

/// A volume and where it is mounted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub mount: String,
    #[serde(flatten)]
    pub source: VolumeSource,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeSource {
    /// Scratch space per replica, empty at every start.
    EmptyDir {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        memory: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_limit: Option<Quantity>,
    },
    /// A project directory, with the files it holds (name to text) read at resolve time.
    Config {
        dir: String,
        files: BTreeMap<String, String>,
    },
    /// A Secret of the namespace, by name.
    Secret { name: String },
    /// Storage that outlives replicas.
    Claim {
        size: Quantity,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        storage_class: Option<String>,
    },
}

impl VolumeSource {
    pub fn kind(&self) -> &'static str {
        match self {
            VolumeSource::EmptyDir { .. } => "empty_dir",
            VolumeSource::Config { .. } => "config",
            VolumeSource::Secret { .. } => "secret",
            VolumeSource::Claim { .. } => "claim",
        }
    }
}

/// One patch of the rendered objects, read from its file when the environment resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Patch {
    /// The file, relative to the project, as written.
    pub file: String,
    /// `file:line:column` of the entry that named the file, for errors about the patch.
    pub declared_at: String,
    /// The object a JSON patch applies to (`Kind/name`); a strategic merge patch names its
    /// own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The patch's documents as JSON: objects for strategic merge, a list of operations for
    /// an RFC 6902 patch.
    pub content: serde_json::Value,
}

impl Patch {
    /// Whether this is an RFC 6902 JSON patch (a list of operations).
    pub fn is_json_patch(&self) -> bool {
        self.content.is_array()
    }
}

/// One extra object from `manifests`, as JSON, with the file it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub file: String,
    pub object: serde_json::Value,
}
