//! The rendered objects and their two printed forms: one YAML stream, or one file per object.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use serde::{Deserialize, Serialize};

/// One Kubernetes object as tier renders it. Serialises as the object itself (with its
/// `apiVersion` and `kind`), and reads back from that form. Deployments and Services are
/// boxed: they are several times the size of the others. `Other` is an object of the
/// project's own `manifests`, of any kind, kept as written (with tier's namespace and labels).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Object {
    Namespace(Namespace),
    ConfigMap(ConfigMap),
    Secret(Secret),
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    ServiceAccount(ServiceAccount),
    PersistentVolumeClaim(Box<PersistentVolumeClaim>),
    Ingress(Box<Ingress>),
    Other(Box<DynamicObject>),
}

impl Object {
    /// The object's `kind`, as Kubernetes spells it.
    pub fn kind(&self) -> &str {
        match self {
            Object::Namespace(_) => "Namespace",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::Deployment(_) => "Deployment",
            Object::Service(_) => "Service",
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::PersistentVolumeClaim(_) => "PersistentVolumeClaim",
            Object::Ingress(_) => "Ingress",
            Object::Other(object) => object
                .types
                .as_ref()
                .map_or("Unknown", |types| types.kind.as_str()),
        }
    }

    /// The object's `metadata.name`; empty only for an object tier did not render.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The object's `metadata.namespace`; `None` for a Namespace.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Object::Namespace(_) => None,
            _ => self.metadata().namespace.as_deref(),
        }
    }

    /// The value of one of the object's labels.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.metadata()
            .labels
            .as_ref()
            .and_then(|labels| labels.get(key))
            .map(String::as_str)
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(object) => &object.metadata,
            Object::ConfigMap(object) => &object.metadata,
            Object::Secret(object) => &object.metadata,
            Object::Deployment(object) => &object.metadata,
            Object::Service(object) => &object.metadata,
            Object::ServiceAccount(object) => &object.metadata,
            Object::PersistentVolumeClaim(object) => &object.metadata,
            Object::Ingress(object) => &object.metadata,
            Object::Other(object) => &object.metadata,
        }
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Namespace(object) => &mut object.metadata,
            Object::ConfigMap(object) => &mut object.metadata,
            Object::Secret(object) => &mut object.metadata,
            Object::Deployment(object) => &mut object.metadata,
            Object::Service(object) => &mut object.metadata,
            Object::ServiceAccount(object) => &mut object.metadata,
            Object::PersistentVolumeClaim(object) => &mut object.metadata,
            Object::Ingress(object) => &mut object.metadata,
            Object::Other(object) => &mut object.metadata,
        }
    }

    /// The file [`write_dir`] puts the object in: `<kind>-<name>.yaml`, kind in lower case.
    /// Names are DNS labels and kinds differ, so no two rendered objects share a file.
    pub fn file_name(&self) -> String {
        format!("{}-{}.yaml", self.kind().to_ascii_lowercase(), self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {kind} `{name}` as YAML: {source}")]
    Yaml {
        kind: String,
        name: String,
        source: serde_saphyr::SerializeError,
    },
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The objects as one YAML stream, in the given order, documents separated by `---`.
pub fn to_yaml(objects: &[Object]) -> Result<String, OutputError> {
    let mut out = String::new();
    for (index, object) in objects.iter().enumerate() {
        if index > 0 {
            out.push_str("---\n");
        }
        out.push_str(&object_yaml(object)?);
    }
    Ok(out)
}

/// Writes each object to its own file in `dir` (created if missing), named by
/// [`Object::file_name`], ready for a GitOps tool to sync. Returns the paths written, in the
/// objects' order. Files already in `dir` that no object names are left alone.
pub fn write_dir(objects: &[Object], dir: &Path) -> Result<Vec<PathBuf>, OutputError> {
    std::fs::create_dir_all(dir).map_err(|source| OutputError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::with_capacity(objects.len());
    for object in objects {
        let path = dir.join(object.file_name());
        let text = object_yaml(object)?;
        std::fs::write(&path, text).map_err(|source| OutputError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

fn object_yaml(object: &Object) -> Result<String, OutputError> {
    serde_saphyr::to_string(object).map_err(|source| OutputError::Yaml {
        kind: object.kind().to_owned(),
        name: object.name().to_owned(),
        source,
    })
}
