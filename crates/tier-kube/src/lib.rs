//! tier's kubernetes runtime. So far only rendering: a resolved [`tier_model::Environment`]
//! becomes typed k8s-openapi objects (a Namespace, then per service a ConfigMap, a Deployment
//! and a Service), which print as multi-document YAML or one file per object.
//!
//! Rendering is pure: [`render`] takes data and returns data. [`write_dir`] is the only
//! function that touches the file system; nothing here talks to a cluster.

mod object;
mod render;

pub use object::{Object, OutputError, to_yaml, write_dir};
pub use render::{
    CONFIG_DIR, CONFIG_HASH_ANNOTATION, ENVIRONMENT_LABEL, MANAGED_BY_LABEL, NAME_LABEL,
    PART_OF_LABEL, RenderError, RenderOptions, config_json, namespace_of, render,
};
