//! The fields of `tier.toml` and of the override files, as static tables of [`Field`] and
//! [`Ty`]; [`crate::schema`] checks files against them and prints them as a JSON Schema.

use crate::defaults;
use crate::environment::{OnFailure, Protocol, Restart, Runtime, Seccomp};
use crate::schema::FieldDefault;
use crate::schema::{Field, Key, Ty, field, required};
use crate::workload::SecurityProfile;

const COUNT: Ty = Ty::Integer {
    min: 0,
    max: 10_000,
};
const POSITIVE: Ty = Ty::Integer {
    min: 1,
    max: 10_000,
};

pub static KUBE: &[Field] = &[
    field(
        "context",
        &Ty::String,
        "The kube context this environment must be applied with.",
    ),
    field(
        "namespace",
        &Ty::Name,
        "The namespace that holds this environment's objects.",
    ),
    field("patches", &PATCHES, PATCHES_DOC),
    field("manifests", &MANIFESTS, MANIFESTS_DOC),
];

/// The escape hatch of an override file's `[kube]`: patches and extra objects only.
pub static KUBE_OVERRIDE: &[Field] = &[
    field("patches", &PATCHES, PATCHES_DOC),
    field("manifests", &MANIFESTS, MANIFESTS_DOC),
];

const PATCHES_DOC: &str = "Patch files applied to the rendered objects: a strategic merge patch naming its object by kind and metadata.name, or an RFC 6902 JSON patch (a list of operations) with a target.";
const MANIFESTS_DOC: &str = "Files or directories of extra objects (YAML), placed in the environment's namespace, labelled, applied in the first wave and pruned like the rest.";

pub static PATCH: &[Field] = &[
    required(
        "file",
        &Ty::String,
        "The patch file, relative to the project.",
    ),
    field(
        "target",
        &Ty::String,
        "The object a JSON patch changes, as Kind/name (e.g. \"Deployment/frontend\"). Default for a service's patch: its Deployment.",
    ),
];

const PATCHES: Ty = Ty::List(&Ty::StringOrTable {
    string: &Ty::String,
    table: PATCH,
});
const MANIFESTS: Ty = Ty::List(&Ty::String);

const ID: Ty = Ty::Integer {
    min: 0,
    max: 2_147_483_647,
};

pub static ENVIRONMENT: &[Field] = &[
    field(
        "runtime",
        &Ty::Choice(Runtime::NAMES),
        "Where the environment runs.",
    )
    .or(FieldDefault::Word(Runtime::DEFAULT.as_str())),
    field(
        "extends",
        &Ty::Name,
        "An environment whose settings and override file this one builds on.",
    ),
    field(
        "abstract",
        &Ty::Bool,
        "Only a parent for others; it cannot be deployed.",
    ),
    field(
        "promote_from",
        &Ty::Name,
        "The environment whose artifacts `tier promote` brings here.",
    ),
    field("protected", &Ty::Bool, "Changes need `--confirm <env>`."),
    field(
        "region",
        &Ty::String,
        "The region the environment runs in, e.g. us-east-2.",
    ),
    field(
        "kube",
        &Ty::Table(KUBE),
        "Kubernetes context and namespace (required for runtime = \"kubernetes\").",
    ),
];

pub static HEALTH: &[Field] = &[
    field(
        "http",
        &Ty::String,
        "An HTTP path that answers 2xx when the replica is ready.",
    ),
    field(
        "tcp",
        &Ty::Port,
        "A port that accepts connections when the replica is ready.",
    ),
    field(
        "grpc",
        &Ty::Port,
        "A port that answers the gRPC health protocol (grpc.health.v1) with SERVING.",
    ),
    field(
        "exec",
        &Ty::Command,
        "A command that exits 0 when the replica is healthy, run beside it (locally in the project directory, on kubernetes in the container).",
    ),
    field("port", &Ty::Port, "The port of an `http` probe.")
        .or(FieldDefault::Said("the service's port")),
    field(
        "headers",
        &Ty::Map {
            key: Key::Header,
            value: &Ty::String,
        },
        "Headers an `http` probe sends.",
    ),
    field(
        "service",
        &Ty::String,
        "The service name a `grpc` probe asks about.",
    )
    .or(FieldDefault::Said("the empty name, the server as a whole")),
    field(
        "initial_delay",
        &Ty::Duration,
        "Time after the start before the first probe.",
    )
    .or(FieldDefault::Duration(defaults::PROBE_INITIAL_DELAY)),
    field("interval", &Ty::Duration, "Time between probes.")
        .or(FieldDefault::Duration(defaults::PROBE_INTERVAL)),
    field("timeout", &Ty::Duration, "Time a probe may take.")
        .or(FieldDefault::Duration(defaults::PROBE_TIMEOUT)),
    field(
        "failure_threshold",
        &POSITIVE,
        "Failed probes in a row before the replica is not ready.",
    )
    .or(FieldDefault::Integer(defaults::FAILURE_THRESHOLD as i64)),
    field(
        "success_threshold",
        &POSITIVE,
        "Passed probes in a row before a failed replica counts as ready again.",
    )
    .or(FieldDefault::Integer(defaults::SUCCESS_THRESHOLD as i64)),
];

pub static SECURITY: &[Field] = &[
    field("run_as_user", &ID, "The user id the processes run as."),
    field("run_as_group", &ID, "The group id the processes run as."),
    field(
        "run_as_non_root",
        &Ty::Bool,
        "Refuse to start a container whose user is root.",
    ),
    field("fs_group", &ID, "The group that owns the pod's volumes."),
    field(
        "read_only_root_filesystem",
        &Ty::Bool,
        "Mount the container's root filesystem read-only.",
    ),
    field(
        "allow_privilege_escalation",
        &Ty::Bool,
        "Whether a process may gain more privileges than its parent (setuid).",
    ),
    field(
        "capabilities_drop",
        &Ty::List(&Ty::String),
        "Linux capabilities to drop, e.g. [\"ALL\"].",
    ),
    field(
        "capabilities_add",
        &Ty::List(&Ty::String),
        "Linux capabilities to add, e.g. [\"NET_BIND_SERVICE\"].",
    ),
    field(
        "seccomp",
        &Ty::Choice(Seccomp::NAMES),
        "The seccomp profile.",
    ),
];

pub static SERVICE_ACCOUNT: &[Field] = &[
    required("name", &Ty::Name, "The ServiceAccount's name."),
    field(
        "annotations",
        &LABELS,
        "Annotations of the ServiceAccount (e.g. a cloud identity).",
    ),
    field(
        "automount",
        &Ty::Bool,
        "Mount the account's API token in the pods.",
    )
    .or(FieldDefault::Bool(defaults::AUTOMOUNT)),
];

pub static EMPTY_DIR: &[Field] = &[
    field(
        "medium",
        &Ty::Choice(&["disk", "memory"]),
        "Where the directory lives.",
    )
    .or(FieldDefault::Word(defaults::MEDIUM)),
    field(
        "size_limit",
        &Ty::Memory,
        "The most the directory may hold.",
    ),
];

pub static CLAIM: &[Field] = &[
    required("size", &Ty::Memory, "The storage requested, e.g. 1Gi."),
    field("storage_class", &Ty::String, "The storage class.")
        .or(FieldDefault::Said("the cluster's default")),
];

pub static VOLUME: &[Field] = &[
    required(
        "mount",
        &Ty::String,
        "Where the volume is mounted in the container (an absolute path).",
    ),
    field(
        "empty_dir",
        &Ty::Table(EMPTY_DIR),
        "A scratch directory per replica, empty at every start.",
    ),
    field(
        "config",
        &Ty::String,
        "A directory of the project whose files are mounted (a ConfigMap on kubernetes).",
    ),
    field(
        "secret",
        &Ty::Name,
        "A Secret of the environment's namespace whose keys are mounted as files.",
    ),
    field(
        "claim",
        &Ty::Table(CLAIM),
        "Storage that outlives replicas (a PersistentVolumeClaim on kubernetes).",
    ),
    field("read_only", &Ty::Bool, "Mount the volume read-only."),
];

const LABELS: Ty = Ty::Map {
    key: Key::Label,
    value: &Ty::String,
};

pub static ROLLOUT: &[Field] = &[
    field(
        "max_surge",
        &COUNT,
        "Replicas started above the desired count during a rollout.",
    )
    .or(FieldDefault::Integer(defaults::MAX_SURGE as i64)),
    field(
        "max_unavailable",
        &COUNT,
        "Replicas that may be unready during a rollout.",
    )
    .or(FieldDefault::Integer(defaults::MAX_UNAVAILABLE as i64)),
    field(
        "deadline",
        &Ty::Duration,
        "Time a new replica has to become ready.",
    )
    .or(FieldDefault::Duration(defaults::ROLLOUT_DEADLINE)),
];

pub static SECRET: &[Field] = &[
    field(
        "env",
        &Ty::String,
        "Read the value from this variable of the shell running tier.",
    ),
    field(
        "file",
        &Ty::String,
        "Read the value from this file (mode 0600).",
    ),
];

pub static SERVICE: &[Field] = &[
    field(
        "command",
        &Ty::Command,
        "How to start the service on the local runtime.",
    ),
    field(
        "image",
        &Ty::String,
        "The container image on the kubernetes runtime.",
    ),
    field("version", &Ty::String, "The service's version."),
    field(
        "source",
        &Ty::String,
        "The service's source directory, for `tier deps`.",
    ),
    field("test", &Ty::String, "A command that tests the service."),
    field(
        "port",
        &Ty::Port,
        "The port the process listens on ($PORT locally).",
    )
    .or(FieldDefault::Integer(defaults::PORT as i64)),
    field(
        "expose",
        &Ty::Port,
        "Publish the service: a host port locally, a LoadBalancer in kubernetes.",
    ),
    field("replicas", &COUNT, "How many copies run.")
        .or(FieldDefault::Integer(defaults::REPLICAS as i64)),
    field(
        "memory",
        &Ty::Memory,
        "Memory request and limit, e.g. 128Mi.",
    )
    .or(FieldDefault::Word(defaults::MEMORY)),
    field("cpu", &Ty::Cpu, "CPU request, e.g. 500m."),
    field(
        "memory_limit",
        &Ty::Memory,
        "Memory limit, when it differs from the request.",
    )
    .or(FieldDefault::Said("`memory`")),
    field("cpu_limit", &Ty::Cpu, "CPU limit, e.g. 1 or 200m.").or(FieldDefault::Said("none")),
    field(
        "args",
        &Ty::List(&Ty::String),
        "Arguments after `command` locally, the container's args on kubernetes.",
    ),
    field("port_name", &Ty::PortName, "The name of `port`.")
        .or(FieldDefault::Said("http, or tcp for protocol = \"tcp\"")),
    field(
        "ports",
        &Ty::Map {
            key: Key::PortName,
            value: &Ty::Port,
        },
        "More ports the process listens on, by name.",
    ),
    field(
        "service_port",
        &Ty::Port,
        "The port other services reach this one on, when it differs from `port`.",
    )
    .or(FieldDefault::Said("`port`")),
    field(
        "service",
        &Ty::Bool,
        "Whether other services can reach this one. A worker that listens on nothing says false.",
    )
    .or(FieldDefault::Bool(defaults::REACHABLE)),
    field(
        "host",
        &Ty::String,
        "A public host name routed to the service (an Ingress on kubernetes), e.g. shop.example.com.",
    ),
    field(
        "security",
        &Ty::Table(SECURITY),
        "Who the processes run as and what they may do (the pod's and container's securityContext).",
    ),
    field(
        "service_account",
        &Ty::StringOrTable {
            string: &Ty::Name,
            table: SERVICE_ACCOUNT,
        },
        "The ServiceAccount the pods run as: a name, or { name, annotations, automount }.",
    ),
    field(
        "volumes",
        &Ty::Map {
            key: Key::Dns1035,
            value: &Ty::Table(VOLUME),
        },
        "Volumes by name: each a mount and one of empty_dir, config, secret or claim.",
    ),
    field(
        "labels",
        &LABELS,
        "Labels on the service's objects and pods.",
    ),
    field(
        "annotations",
        &LABELS,
        "Annotations on the service's Deployment and Services.",
    ),
    field(
        "pod_annotations",
        &LABELS,
        "Annotations on the service's pods.",
    ),
    field(
        "termination_grace",
        &Ty::Duration,
        "Time between SIGTERM and SIGKILL when a replica stops.",
    )
    .or(FieldDefault::Said("30s on kubernetes, 10s locally")),
    field("patches", &PATCHES, PATCHES_DOC),
    field("manifests", &MANIFESTS, MANIFESTS_DOC),
    field(
        "unset",
        &Ty::List(&Ty::String),
        "Only in an override file: keys of this service to remove for the environment, e.g. [\"expose\"].",
    ),
    field(
        "protocol",
        &Ty::Choice(Protocol::NAMES),
        "What the proxy speaks.",
    )
    .or(FieldDefault::Word(Protocol::DEFAULT.as_str())),
    field("restart", &Ty::Choice(Restart::NAMES), "Restart policy.")
        .or(FieldDefault::Word(Restart::DEFAULT.as_str())),
    field(
        "depends_on",
        &Ty::List(&Ty::Name),
        "Services that must be ready before this one starts.",
    ),
    field(
        "config",
        &Ty::String,
        "A directory with base.json and <env>.json, deep-merged into the app config.",
    ),
    field(
        "health",
        &Ty::Table(HEALTH),
        "The readiness check, and the liveness check unless `liveness` is given.",
    ),
    field(
        "liveness",
        &Ty::Table(HEALTH),
        "The check whose failure restarts a replica.",
    )
    .or(FieldDefault::Said("`health`")),
    field(
        "startup",
        &Ty::Table(HEALTH),
        "A check that must pass once before the others start; its failure restarts the replica.",
    ),
    field(
        "rollout",
        &Ty::Table(ROLLOUT),
        "How a new version replaces the old one.",
    ),
    field(
        "env",
        &Ty::Map {
            key: Key::EnvVar,
            value: &Ty::Scalar,
        },
        "Extra environment variables.",
    ),
    field(
        "secrets",
        &Ty::Map {
            key: Key::EnvVar,
            value: &Ty::Table(SECRET),
        },
        "Secrets by reference, never by value.",
    ),
];

pub static FLAG: &[Field] = &[
    field(
        "default",
        &Ty::Scalar,
        "The flag's value unless an environment or the runtime store sets another.",
    ),
    field("description", &Ty::String, "What the flag guards."),
];

pub static LIBRARY: &[Field] = &[required("path", &Ty::String, "The library's directory.")];

pub static STORE: &[Field] = &[
    field(
        "kubernetes",
        &Ty::Bool,
        "Run the runtime config store beside kubernetes environments.",
    ),
    field(
        "etcd",
        &Ty::EtcdAddress,
        "The etcd cluster the store keeps its keys in on kubernetes, etcd://HOST:PORT[,HOST:PORT][/PREFIX].",
    )
    .or(FieldDefault::Said("etcd://etcd:2379/tier/<project>/<env>, an `etcd` Service in the environment's namespace")),
    field(
        "image",
        &Ty::String,
        "The image with the `tier` binary that serves the store on kubernetes.",
    )
    .or(FieldDefault::Said("tier:<tier's version>")),
];

pub static PROJECT: &[Field] = &[
    required("name", &Ty::Name, "The project's name."),
    field("ordering", &Ty::Bool, "Deploy in dependency order.")
        .or(FieldDefault::Bool(defaults::ORDERING)),
    field(
        "on_failure",
        &Ty::Choice(OnFailure::NAMES),
        "What a failed apply does.",
    )
    .or(FieldDefault::Word(OnFailure::DEFAULT.as_str())),
    field(
        "security",
        &Ty::Choice(SecurityProfile::NAMES),
        "The Pod Security Standard every service meets unless it loosens a setting itself.",
    )
    .or(FieldDefault::Word(SecurityProfile::DEFAULT.as_str())),
];

pub static PROJECT_OVERRIDE: &[Field] = &[
    field("ordering", &Ty::Bool, "Deploy in dependency order.")
        .or(FieldDefault::Bool(defaults::ORDERING)),
    field(
        "on_failure",
        &Ty::Choice(OnFailure::NAMES),
        "What a failed apply does.",
    )
    .or(FieldDefault::Word(OnFailure::DEFAULT.as_str())),
    field(
        "security",
        &Ty::Choice(SecurityProfile::NAMES),
        "The Pod Security Standard every service meets unless it loosens a setting itself.",
    )
    .or(FieldDefault::Word(SecurityProfile::DEFAULT.as_str())),
];

const SERVICES: Ty = Ty::Map {
    key: Key::Dns1035,
    value: &Ty::Table(SERVICE),
};
const FLAGS: Ty = Ty::Map {
    key: Key::Flag,
    value: &Ty::Table(FLAG),
};

/// `tier.toml`.
pub static PROJECT_FILE: &[Field] = &[
    required("project", &Ty::Table(PROJECT), "The project."),
    field(
        "environments",
        &Ty::Map {
            key: Key::Dns1035,
            value: &Ty::Table(ENVIRONMENT),
        },
        "The environments, each deployed on its own.",
    ),
    field(
        "services",
        &SERVICES,
        "The services every environment runs.",
    ),
    field("flags", &FLAGS, "Feature flags with their defaults."),
    field(
        "libraries",
        &Ty::Map {
            key: Key::Dns1035,
            value: &Ty::Table(LIBRARY),
        },
        "Internal libraries shared by services.",
    ),
    field("store", &Ty::Table(STORE), "The runtime config store."),
];

/// `envs/<env>.toml`.
pub static OVERRIDE_FILE: &[Field] = &[
    field(
        "project",
        &Ty::Table(PROJECT_OVERRIDE),
        "Project settings for this environment.",
    ),
    field(
        "services",
        &SERVICES,
        "Service settings for this environment.",
    ),
    field("flags", &FLAGS, "Flag defaults for this environment."),
    field(
        "kube",
        &Ty::Table(KUBE_OVERRIDE),
        "Patches and extra objects for this environment on kubernetes.",
    ),
];
