//! The sample app's manifests, and how a change to the model shows in them.

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{EnvVar, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tier_kube::{
    CONFIG_HASH_ANNOTATION, NAME_LABEL, Object, RenderError, RenderOptions,
    SECRETS_HASH_ANNOTATION, STORE_NAME, STORE_TOKENS_PLACEHOLDER, StoreTokens, render, to_yaml,
};
use tier_model::environment::SecretRef;
use tier_model::quantity::Quantity;
use tier_model::{Environment, Project, ServiceName};

fn sample(environment: &str) -> Environment {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-app");
    let mut project = Project::load(&root).expect("the sample app loads");
    project
        .resolve(environment, &[])
        .expect("the sample app resolves")
        .environment
}

fn objects(environment: &Environment) -> Vec<Object> {
    render(environment, &RenderOptions::default()).expect("renders")
}

fn service_name(name: &str) -> ServiceName {
    ServiceName::new(name).expect("a valid name")
}

fn deployment<'a>(objects: &'a [Object], name: &str) -> &'a Deployment {
    objects
        .iter()
        .find_map(|object| match object {
            Object::Deployment(deployment) if object.name() == name => Some(&**deployment),
            _ => None,
        })
        .expect("the deployment is rendered")
}

fn service<'a>(objects: &'a [Object], name: &str) -> &'a Service {
    objects
        .iter()
        .find_map(|object| match object {
            Object::Service(service) if object.name() == name => Some(&**service),
            _ => None,
        })
        .expect("the service is rendered")
}

fn env_var<'a>(deployment: &'a Deployment, name: &str) -> &'a EnvVar {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod| pod.containers[0].env.as_ref())
        .and_then(|vars| vars.iter().find(|var| var.name == name))
        .expect("the variable is set")
}

fn order(objects: &[Object]) -> Vec<String> {
    objects
        .iter()
        .map(|object| format!("{} {}", object.kind(), object.name()))
        .collect()
}

#[test]
fn sample_app_prod_manifests() {
    let yaml = to_yaml(&objects(&sample("prod"))).expect("prints");
    insta::assert_snapshot!(yaml);
}

#[test]
fn sample_app_stage_manifests_on_request() {
    let environment = sample("stage");
    assert!(environment.kube.is_none());
    let rendered = objects(&environment);
    assert_eq!(rendered[0].name(), "sample-app-stage");
    insta::assert_snapshot!(to_yaml(&rendered).expect("prints"));
}

#[test]
fn objects_come_in_a_stable_order() {
    let rendered = objects(&sample("prod"));
    assert_eq!(
        order(&rendered),
        [
            "Namespace sample-app-prod",
            "ConfigMap backend-config",
            "Deployment backend",
            "Service backend",
            "ConfigMap frontend-config",
            "Deployment frontend",
            "Service frontend",
            "Service frontend-external",
        ]
    );
    assert_eq!(rendered, objects(&sample("prod")));
}

#[test]
fn every_rendered_document_reads_back_as_the_same_object() {
    for environment in ["dev", "stage", "prod"] {
        let rendered = objects(&sample(environment));
        let yaml = to_yaml(&rendered).expect("prints");
        let back: Vec<Object> = serde_saphyr::from_multiple(&yaml).expect("reads back");
        assert_eq!(back, rendered, "{environment}");
    }
}

#[test]
fn write_dir_writes_one_readable_file_per_object() {
    let rendered = objects(&sample("prod"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let written = tier_kube::write_dir(&rendered, dir.path()).expect("writes");
    let names: Vec<String> = written
        .iter()
        .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
        .collect();
    assert_eq!(
        names,
        [
            "namespace-sample-app-prod.yaml",
            "configmap-backend-config.yaml",
            "deployment-backend.yaml",
            "service-backend.yaml",
            "configmap-frontend-config.yaml",
            "deployment-frontend.yaml",
            "service-frontend.yaml",
            "service-frontend-external.yaml",
        ]
    );
    for (path, object) in written.iter().zip(&rendered) {
        let text = std::fs::read_to_string(path).expect("reads the file");
        let back: Object = serde_saphyr::from_str(&text).expect("parses");
        assert_eq!(&back, object, "{}", path.display());
    }
}

#[test]
fn a_config_change_changes_only_the_config_map_and_the_hash() {
    let before = sample("prod");
    let mut after = before.clone();
    let backend = after
        .services
        .get_mut("backend")
        .expect("the sample app has a backend");
    backend.config["greeting"] = serde_json::json!("changed");
    let old = objects(&before);
    let mut new = objects(&after);
    assert_ne!(old, new);

    let hash = |objects: &[Object]| {
        deployment(objects, "backend")
            .spec
            .as_ref()
            .and_then(|spec| spec.template.metadata.as_ref())
            .and_then(|metadata| metadata.annotations.as_ref())
            .and_then(|annotations| annotations.get(CONFIG_HASH_ANNOTATION))
            .cloned()
            .expect("the pod template carries the config hash")
    };
    assert_ne!(hash(&old), hash(&new));

    // Put the old ConfigMap and hash back: nothing else may differ.
    for (object, previous) in new.iter_mut().zip(&old) {
        match (object, previous) {
            (Object::ConfigMap(config), Object::ConfigMap(previous)) if config != previous => {
                assert_eq!(config.metadata.name.as_deref(), Some("backend-config"));
                *config = previous.clone();
            }
            (Object::Deployment(deployment), Object::Deployment(previous)) => {
                let annotations = deployment
                    .spec
                    .as_mut()
                    .and_then(|spec| spec.template.metadata.as_mut())
                    .and_then(|metadata| metadata.annotations.as_mut())
                    .expect("annotations");
                let previous_hash = previous
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.template.metadata.as_ref())
                    .and_then(|metadata| metadata.annotations.as_ref())
                    .and_then(|annotations| annotations.get(CONFIG_HASH_ANNOTATION))
                    .cloned()
                    .expect("hash");
                annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), previous_hash);
            }
            _ => {}
        }
    }
    assert_eq!(new, old);
}

#[test]
fn the_config_hash_ignores_key_order() {
    let before = sample("prod");
    let mut after = before.clone();
    let backend = after
        .services
        .get_mut("backend")
        .expect("the sample app has a backend");
    let serde_json::Value::Object(map) = &backend.config else {
        panic!("the backend's config is an object");
    };
    let reversed: serde_json::Map<String, serde_json::Value> = map
        .iter()
        .rev()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    backend.config = serde_json::Value::Object(reversed);
    assert_eq!(objects(&before), objects(&after));
}

#[test]
fn expose_adds_a_load_balancer_beside_the_internal_service() {
    let mut environment = sample("prod");
    let rendered = objects(&environment);
    let internal = service(&rendered, "frontend").spec.as_ref().expect("spec");
    assert_eq!(internal.type_.as_deref(), Some("ClusterIP"));
    let port = &internal.ports.as_ref().expect("ports")[0];
    assert_eq!(
        (port.port, port.target_port.clone()),
        (8081, Some(IntOrString::Int(8081)))
    );
    let external = service(&rendered, "frontend-external")
        .spec
        .as_ref()
        .expect("spec");
    assert_eq!(external.type_.as_deref(), Some("LoadBalancer"));
    let port = &external.ports.as_ref().expect("ports")[0];
    assert_eq!(
        (port.port, port.target_port.clone()),
        (8080, Some(IntOrString::Int(8081)))
    );
    let backend = service(&rendered, "backend").spec.as_ref().expect("spec");
    assert_eq!(backend.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(
        env_var(deployment(&rendered, "frontend"), "BACKEND_URL")
            .value
            .as_deref(),
        Some("http://backend.sample-app-prod.svc.cluster.local:8080")
    );

    // Exposing the backend leaves how other services call it alone; a service_port moves it.
    let backend = environment.services.get_mut("backend").expect("backend");
    backend.expose = Some(9000);
    backend.service_port = Some(80);
    let rendered = objects(&environment);
    let external = service(&rendered, "backend-external")
        .spec
        .as_ref()
        .expect("spec");
    assert_eq!(external.type_.as_deref(), Some("LoadBalancer"));
    let port = &external.ports.as_ref().expect("ports")[0];
    assert_eq!(
        (port.port, port.target_port.clone()),
        (9000, Some(IntOrString::Int(8080)))
    );
    let internal = service(&rendered, "backend").spec.as_ref().expect("spec");
    let port = &internal.ports.as_ref().expect("ports")[0];
    assert_eq!(
        (port.port, port.target_port.clone()),
        (80, Some(IntOrString::Int(8080)))
    );
    assert_eq!(
        env_var(deployment(&rendered, "frontend"), "BACKEND_URL")
            .value
            .as_deref(),
        Some("http://backend.sample-app-prod.svc.cluster.local:80")
    );
}

#[test]
fn secrets_come_from_the_service_secret_and_cpu_is_requested() {
    let mut environment = sample("prod");
    let backend = environment.services.get_mut("backend").expect("backend");
    backend.secrets.insert(
        "DATABASE_PASSWORD".to_owned(),
        SecretRef::Env("PROD_DB_PASSWORD".to_owned()),
    );
    backend.cpu = Some(Quantity::parse_cpu("500m").expect("a cpu quantity"));
    backend.cpu_limit = None;
    let rendered = objects(&environment);
    let yaml = to_yaml(&rendered).expect("prints");
    // Without values the Secret holds the reference as a placeholder; nothing else names it.
    assert_eq!(
        yaml.matches("<secret:env:PROD_DB_PASSWORD>").count(),
        1,
        "{yaml}"
    );
    let backend = deployment(&rendered, "backend");
    let reference = env_var(backend, "DATABASE_PASSWORD")
        .value_from
        .as_ref()
        .and_then(|source| source.secret_key_ref.as_ref())
        .expect("a secret reference");
    assert_eq!(
        (reference.name.as_str(), reference.key.as_str()),
        ("backend-secrets", "DATABASE_PASSWORD")
    );
    let resources = backend
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod| pod.containers[0].resources.as_ref())
        .expect("resources");
    let requests = resources.requests.as_ref().expect("requests");
    assert_eq!(requests.get("cpu").map(|cpu| cpu.0.as_str()), Some("500m"));
    assert_eq!(
        requests.get("memory").map(|memory| memory.0.as_str()),
        Some("128Mi")
    );
    let limits = resources.limits.as_ref().expect("limits");
    assert!(!limits.contains_key("cpu"));
}

#[test]
fn an_image_fixed_by_the_caller_wins() {
    let environment = sample("prod");
    let options = RenderOptions {
        images: [(
            service_name("backend"),
            "registry.example/backend@sha256:abc".to_owned(),
        )]
        .into(),
        ..RenderOptions::default()
    };
    let rendered = render(&environment, &options).expect("renders");
    let image = deployment(&rendered, "backend")
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod| pod.containers[0].image.clone());
    assert_eq!(
        image.as_deref(),
        Some("registry.example/backend@sha256:abc")
    );
}

#[test]
fn services_without_an_image_are_all_reported() {
    let mut environment = sample("dev");
    for service in environment.services.values_mut() {
        service.image = None;
    }
    let problems = render(&environment, &RenderOptions::default()).expect_err("fails");
    assert_eq!(
        problems,
        [
            RenderError::MissingImage {
                environment: "dev".to_owned(),
                service: service_name("backend"),
            },
            RenderError::MissingImage {
                environment: "dev".to_owned(),
                service: service_name("frontend"),
            },
        ]
    );
    assert_eq!(
        problems[0].to_string(),
        "service `backend` has no `image`, which the kubernetes manifests of `dev` need"
    );
}

#[test]
fn a_rollout_with_nothing_allowed_down_or_up_still_surges_one() {
    let mut environment = sample("prod");
    let rollout = &mut environment
        .services
        .get_mut("backend")
        .expect("backend")
        .rollout;
    rollout.max_surge = 0;
    rollout.max_unavailable = 0;
    let rendered = objects(&environment);
    let strategy = deployment(&rendered, "backend")
        .spec
        .as_ref()
        .and_then(|spec| spec.strategy.as_ref())
        .and_then(|strategy| strategy.rolling_update.as_ref())
        .expect("a rolling update");
    assert_eq!(strategy.max_surge, Some(IntOrString::Int(1)));
    assert_eq!(strategy.max_unavailable, Some(IntOrString::Int(0)));
}

#[test]
fn a_derived_namespace_longer_than_a_label_is_refused() {
    let mut environment = sample("stage");
    environment.project.name = "a".repeat(60);
    let problems = render(&environment, &RenderOptions::default()).expect_err("fails");
    assert!(
        matches!(&problems[..], [RenderError::NamespaceTooLong { namespace, .. }] if namespace.len() == 66),
        "{problems:?}"
    );
}

fn secret<'a>(objects: &'a [Object], name: &str) -> &'a k8s_openapi::api::core::v1::Secret {
    objects
        .iter()
        .find_map(|object| match object {
            Object::Secret(secret) if secret.metadata.name.as_deref() == Some(name) => Some(secret),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Secret {name}"))
}

#[test]
fn a_service_with_secrets_gets_an_opaque_secret_with_placeholders_or_values() {
    let mut environment = sample("prod");
    let backend = environment.services.get_mut("backend").expect("backend");
    backend.secrets.insert(
        "DB_PASSWORD".to_owned(),
        SecretRef::Env("PROD_DB_PASSWORD".to_owned()),
    );

    let placeholders = objects(&environment);
    let kinds: Vec<&str> = placeholders
        .iter()
        .filter(|object| object.label(NAME_LABEL) == Some("backend"))
        .map(Object::kind)
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Secret", "Deployment", "Service"]);
    let placeholder = secret(&placeholders, "backend-secrets");
    assert_eq!(placeholder.type_.as_deref(), Some("Opaque"));
    assert_eq!(placeholder.data, None);
    assert_eq!(
        placeholder
            .string_data
            .as_ref()
            .and_then(|data| data.get("DB_PASSWORD"))
            .map(String::as_str),
        Some("<secret:env:PROD_DB_PASSWORD>")
    );
    assert!(
        placeholders
            .iter()
            .all(|object| object.label(NAME_LABEL) != Some("frontend") || object.kind() != "Secret"),
        "a service without secrets has no Secret"
    );

    let options = RenderOptions {
        secret_values: Some(
            [(
                "backend".to_owned(),
                [("DB_PASSWORD".to_owned(), b"canary-value".to_vec())].into(),
            )]
            .into(),
        ),
        ..RenderOptions::default()
    };
    let filled = render(&environment, &options).expect("renders");
    let with_value = secret(&filled, "backend-secrets");
    assert_eq!(with_value.string_data, None);
    assert_eq!(
        with_value
            .data
            .as_ref()
            .and_then(|data| data.get("DB_PASSWORD"))
            .map(|bytes| bytes.0.as_slice()),
        Some(&b"canary-value"[..])
    );
}

#[test]
fn a_changed_secret_fingerprint_changes_the_pod_template() {
    let mut environment = sample("prod");
    let backend = environment.services.get_mut("backend").expect("backend");
    backend.secrets.insert(
        "DB_PASSWORD".to_owned(),
        SecretRef::Env("PROD_DB_PASSWORD".to_owned()),
    );
    let annotation = |environment: &Environment| {
        deployment(&objects(environment), "backend")
            .spec
            .as_ref()
            .and_then(|spec| spec.template.metadata.as_ref())
            .and_then(|metadata| metadata.annotations.as_ref())
            .and_then(|annotations| annotations.get(SECRETS_HASH_ANNOTATION).cloned())
    };
    assert_eq!(
        annotation(&environment),
        None,
        "no fingerprint, no annotation"
    );
    let backend = environment.services.get_mut("backend").expect("backend");
    backend
        .secret_fingerprints
        .insert("DB_PASSWORD".to_owned(), "hmac:1111".to_owned());
    let first = annotation(&environment).expect("an annotation");
    let backend = environment.services.get_mut("backend").expect("backend");
    backend
        .secret_fingerprints
        .insert("DB_PASSWORD".to_owned(), "hmac:2222".to_owned());
    let second = annotation(&environment).expect("an annotation");
    assert_ne!(first, second);
}

/// The sample app's prod with `[store] kubernetes = true`.
fn with_store() -> Environment {
    let mut environment = sample("prod");
    environment.store.kubernetes = true;
    environment
}

fn tokens() -> StoreTokens {
    StoreTokens {
        file: "{\"environment\":\"prod\",\"read_only\":\"tier_prod_ro_canary\",\"read_write\":\"tier_prod_rw_canary\"}\n".to_owned(),
        read_only: "tier_prod_ro_canary".to_owned(),
    }
}

fn pod_spec(deployment: &Deployment) -> &k8s_openapi::api::core::v1::PodSpec {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .expect("a pod spec")
}

#[test]
fn the_store_comes_right_after_the_namespace_and_belongs_to_no_service() {
    let rendered = objects(&with_store());
    assert_eq!(
        order(&rendered),
        [
            "Namespace sample-app-prod",
            "Secret tier-store-tokens",
            "Deployment tier-store",
            "Service tier-store",
            "ConfigMap backend-config",
            "Deployment backend",
            "Service backend",
            "ConfigMap frontend-config",
            "Deployment frontend",
            "Service frontend",
            "Service frontend-external",
        ]
    );
    for object in &rendered[1..4] {
        assert_eq!(object.label(NAME_LABEL), Some(STORE_NAME));
        assert_eq!(object.label("tier.dev/environment"), Some("prod"));
        assert_eq!(object.namespace(), Some("sample-app-prod"));
    }
    insta::assert_snapshot!(to_yaml(&rendered[1..4]).expect("prints"));
}

#[test]
fn without_the_store_there_is_no_store_and_no_store_variable() {
    let rendered = objects(&sample("prod"));
    assert!(
        rendered
            .iter()
            .all(|object| object.label(NAME_LABEL) != Some(STORE_NAME))
    );
    let vars = pod_spec(deployment(&rendered, "backend")).containers[0]
        .env
        .as_ref()
        .expect("variables");
    assert!(
        vars.iter()
            .all(|var| var.name != "TIER_AGENT_URL" && var.name != "TIER_TOKEN"),
        "{vars:?}"
    );
}

#[test]
fn the_stores_secret_holds_placeholders_unless_the_tokens_are_given() {
    let environment = with_store();
    let rendered = objects(&environment);
    let placeholder = secret(&rendered, "tier-store-tokens");
    assert_eq!(placeholder.type_.as_deref(), Some("Opaque"));
    assert_eq!(placeholder.data, None);
    let expected = [
        ("read-only".to_owned(), STORE_TOKENS_PLACEHOLDER.to_owned()),
        (
            "tokens.json".to_owned(),
            STORE_TOKENS_PLACEHOLDER.to_owned(),
        ),
    ];
    assert_eq!(placeholder.string_data, Some(expected.into()));

    let options = RenderOptions {
        store_tokens: Some(tokens()),
        ..RenderOptions::default()
    };
    let filled = render(&environment, &options).expect("renders");
    let with_tokens = secret(&filled, "tier-store-tokens");
    assert_eq!(with_tokens.string_data, None);
    let data = with_tokens.data.as_ref().expect("data");
    assert_eq!(
        data.get("read-only").map(|bytes| bytes.0.as_slice()),
        Some(&b"tier_prod_ro_canary"[..])
    );
    assert_eq!(
        data.get("tokens.json").map(|bytes| bytes.0.as_slice()),
        Some(tokens().file.as_bytes())
    );
    // The tokens are in the Secret only: nothing else carries them.
    let yaml = to_yaml(&filled[2..]).expect("prints");
    assert!(!yaml.contains("canary"), "{yaml}");
    assert_eq!(format!("{:?}", tokens()), "StoreTokens(<redacted>)");
}

#[test]
fn the_store_serves_the_environments_etcd_with_its_tokens_file() {
    let mut environment = with_store();
    let rendered = objects(&environment);
    let store = deployment(&rendered, "tier-store");
    assert_eq!(store.spec.as_ref().and_then(|spec| spec.replicas), Some(1));
    let pod = pod_spec(store);
    let container = &pod.containers[0];
    assert_eq!(container.name, "tier-store");
    assert_eq!(
        container.image.as_deref(),
        Some(concat!("tier:", env!("CARGO_PKG_VERSION")))
    );
    let args = container.args.as_deref().expect("args");
    assert_eq!(
        args[..10].join(" "),
        "store serve --backend etcd://etcd:2379/tier/sample-app/prod --env prod --listen 0.0.0.0:7379 --tokens /etc/tier-store/tokens.json"
    );
    // The project's declared flags go with it: the project is not in the store's image.
    assert_eq!(args[10], "--flags");
    let flags: serde_json::Value = serde_json::from_str(&args[11]).expect("flags as JSON");
    assert_eq!(flags["show-replica"]["default"], false, "{flags}");
    let probe = container
        .readiness_probe
        .as_ref()
        .expect("a readiness probe");
    assert_eq!(
        probe.tcp_socket.as_ref().map(|tcp| tcp.port.clone()),
        Some(IntOrString::Int(7379))
    );
    let resources = container.resources.as_ref().expect("resources");
    for quantities in [&resources.requests, &resources.limits] {
        assert_eq!(
            quantities
                .as_ref()
                .and_then(|quantities| quantities.get("memory"))
                .map(|memory| memory.0.as_str()),
            Some("64Mi")
        );
    }
    let mount = &container.volume_mounts.as_ref().expect("mounts")[0];
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/etc/tier-store", Some(true))
    );
    let volume = &pod.volumes.as_ref().expect("volumes")[0];
    assert_eq!(volume.name, mount.name);
    let source = volume.secret.as_ref().expect("a Secret volume");
    assert_eq!(source.secret_name.as_deref(), Some("tier-store-tokens"));
    assert_eq!(source.default_mode, Some(0o400));
    let items: Vec<&str> = source
        .items
        .iter()
        .flatten()
        .map(|item| item.key.as_str())
        .collect();
    assert_eq!(items, ["tokens.json"], "the read-only token is not mounted");
    let service = service(&rendered, "tier-store")
        .spec
        .as_ref()
        .expect("spec");
    assert_eq!(service.type_.as_deref(), Some("ClusterIP"));
    let port = &service.ports.as_ref().expect("ports")[0];
    assert_eq!(
        (port.port, port.target_port.clone()),
        (7379, Some(IntOrString::Int(7379)))
    );

    environment.store.etcd = Some("etcd://etcd-0.db:2379,etcd-1.db:2379/shared".to_owned());
    environment.store.image = Some("registry.example/tier:0.1.0".to_owned());
    let rendered = objects(&environment);
    let container = &pod_spec(deployment(&rendered, "tier-store")).containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example/tier:0.1.0")
    );
    let args = container.args.as_deref().expect("args");
    assert_eq!(
        args[..4],
        [
            "store",
            "serve",
            "--backend",
            "etcd://etcd-0.db:2379,etcd-1.db:2379/shared"
        ]
    );
}

#[test]
fn every_service_reaches_the_store_by_its_cluster_name_with_the_read_only_token() {
    let rendered = objects(&with_store());
    for name in ["backend", "frontend"] {
        let backend = deployment(&rendered, name);
        assert_eq!(
            env_var(backend, "TIER_AGENT_URL").value.as_deref(),
            Some("http://tier-store.sample-app-prod.svc.cluster.local:7379"),
            "{name}"
        );
        let token = env_var(backend, "TIER_TOKEN");
        assert_eq!(token.value, None);
        let reference = token
            .value_from
            .as_ref()
            .and_then(|source| source.secret_key_ref.as_ref())
            .expect("a secret reference");
        assert_eq!(
            (reference.name.as_str(), reference.key.as_str()),
            ("tier-store-tokens", "read-only")
        );
    }
    assert_eq!(
        tier_kube::store_url("shop-prod"),
        "http://tier-store.shop-prod.svc.cluster.local:7379"
    );
}

#[test]
fn a_service_named_like_the_store_is_refused_beside_it() {
    let mut environment = with_store();
    let backend = environment
        .services
        .remove("backend")
        .expect("the sample app has a backend");
    environment
        .services
        .insert(service_name("tier-store"), backend);
    let problems = render(&environment, &RenderOptions::default()).expect_err("fails");
    assert_eq!(
        problems,
        [RenderError::StoreNameTaken {
            environment: "prod".to_owned()
        }]
    );
    assert_eq!(
        problems[0].to_string(),
        "service `tier-store` in `prod` has the name of the runtime config store's objects; rename the service, or set `[store] kubernetes = false`"
    );
}
