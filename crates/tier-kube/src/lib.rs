//! tier's kubernetes runtime: a resolved [`tier_model::Environment`] becomes typed
//! k8s-openapi objects (a Namespace, the runtime config store's Secret, Deployment and
//! Service with `[store] kubernetes = true`, then per service a ConfigMap, a Secret, a
//! Deployment and a Service), which print as multi-document YAML or one file per object, or go to a cluster
//! with server-side apply.
//!
//! Rendering and reading a rollout's state are pure: [`render`] and [`rollout_state`] take
//! data and return data. [`write_dir`] is the only function that touches the file system;
//! [`Cluster`] (with [`deploy`] on top of it) is the only thing that talks to a cluster, and
//! it connects only when the kube context guard ([`check_context`]) passes.

mod cluster;
mod deploy;
mod drift;
mod drift_records;
mod lease;
mod logs;
mod network;
mod object;
mod patch;
mod records;
mod render;
mod rollout;
mod store;
mod workload;

pub use cluster::{
    Cluster, ClusterError, FIELD_MANAGER, Kind, Pruned, check_context, environment_selector,
    kubeconfig_place,
};
pub use deploy::{DeployConfig, DeployFailure, Event, deploy};
pub use drift::{Change, Drift, ObjectKey, drift};
pub use logs::PodLine;
pub use network::EXTERNAL_SUFFIX;
pub use object::{Object, OutputError, to_yaml, write_dir};
pub use patch::{PatchEffect, PatchError};
pub use records::{ClusterRecords, RECORDS_LABEL};
pub use render::{
    CONFIG_DIR, CONFIG_HASH_ANNOTATION, ENVIRONMENT_LABEL, MANAGED_BY_LABEL, NAME_LABEL,
    PART_OF_LABEL, POD_SECURITY_AUDIT, POD_SECURITY_ENFORCE, POD_SECURITY_WARN, RenderError,
    RenderOptions, Rendered, SECRETS_HASH_ANNOTATION, STORE_NAME, STORE_PORT, STORE_TOKENS_DIR,
    STORE_TOKENS_PLACEHOLDER, STORE_TOKENS_SECRET, StoreTokens, config_json, flags_json,
    namespace_of, render, render_with_patches, store_url,
};
pub use rollout::{Counts, RolloutState, counts, rollout_state};
pub use tier_state::DriftRecord;
