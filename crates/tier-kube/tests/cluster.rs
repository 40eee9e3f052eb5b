//! Server-side apply, pruning, rollout waits and the context guard against
//! `tier_test::fake_kube::FakeKube`, an in-process fake of the Kubernetes API server: no
//! cluster can run where these tests run, so the fake stands in for a live API server (the
//! client, its requests and the rollout logic are the real ones).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use kube::config::Kubeconfig;
use tier_kube::{
    Cluster, ClusterError, DeployConfig, Event, Object, RenderOptions, deploy, render,
};
use tier_model::{Environment, Project, ServiceName};
use tier_test::fake_kube::FakeKube;

const NAMESPACE: &str = "sample-app-prod";

fn sample_prod() -> Environment {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-app");
    let mut project = Project::load(&root).expect("the sample app loads");
    project
        .resolve("prod", &[])
        .expect("the sample app resolves")
        .environment
}

fn kubeconfig(fake: &FakeKube, current: &str) -> Kubeconfig {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("config");
    fake.write_kubeconfig(&path, &["prod-admin", "kind-dev"], current);
    Kubeconfig::read_from(&path).expect("the kubeconfig reads")
}

async fn connect(fake: &FakeKube, environment: &Environment) -> Cluster {
    Cluster::connect_with(environment, kubeconfig(fake, "prod-admin"))
        .await
        .expect("connects")
}

/// Polls quickly: the fake controller counts reads, not time.
fn fast() -> DeployConfig {
    DeployConfig {
        poll: Duration::from_millis(10),
        grace: Duration::from_secs(60),
        ..DeployConfig::default()
    }
}

fn objects(environment: &Environment) -> Vec<Object> {
    render(environment, &RenderOptions::default()).expect("renders")
}

#[tokio::test]
async fn apply_creates_every_object_with_field_manager_tier_and_waits_wave_by_wave() {
    let fake = FakeKube::start();
    let environment = sample_prod();
    let cluster = connect(&fake, &environment).await;
    let events = Mutex::new(Vec::new());
    let report = |event: Event| {
        let line = match event {
            Event::Shared { deployments } => format!(
                "shared: {}",
                deployments
                    .iter()
                    .map(ServiceName::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Event::Wave { index, services } => format!(
                "wave {index}: {}",
                services
                    .iter()
                    .map(ServiceName::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Event::Rollout { service, state } => format!("{service}: {state:?}"),
            Event::Pruned(pruned) => format!("pruned {pruned:?}"),
        };
        events.lock().expect("events").push(line);
    };
    let pruned = deploy(
        &cluster,
        &environment,
        &objects(&environment),
        fast(),
        &report,
    )
    .await
    .expect("deploys");
    assert!(pruned.is_empty());
    assert!(fake.get("namespaces", "", NAMESPACE).is_some());
    assert_eq!(
        fake.names("configmaps", NAMESPACE),
        ["backend-config", "frontend-config"]
    );
    assert_eq!(
        fake.names("deployments", NAMESPACE),
        ["backend", "frontend"]
    );
    assert_eq!(
        fake.names("services", NAMESPACE),
        ["backend", "frontend", "frontend-external"]
    );
    let applies: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|seen| seen.method == "PATCH")
        .collect();
    assert_eq!(applies.len(), 8);
    assert!(
        applies
            .iter()
            .all(|seen| seen.query.contains("fieldManager=tier")
                && seen.query.contains("force=true")),
        "{applies:?}"
    );
    // The frontend depends on the backend: its wave starts after the backend rolled out.
    let events = events.into_inner().expect("events");
    let backend_done = events
        .iter()
        .position(|line| line.starts_with("backend: Done"))
        .expect("the backend rolled out");
    let second_wave = events
        .iter()
        .position(|line| line == "wave 1: frontend")
        .expect("a second wave");
    assert_eq!(events[0], "wave 0: backend");
    assert!(backend_done < second_wave, "{events:#?}");
    assert!(events.iter().any(|line| line.starts_with("frontend: Done")));
}

#[tokio::test]
async fn a_service_the_project_no_longer_declares_is_pruned_and_nothing_else() {
    let fake = FakeKube::start();
    let environment = sample_prod();
    let cluster = connect(&fake, &environment).await;
    deploy(
        &cluster,
        &environment,
        &objects(&environment),
        fast(),
        &|_| {},
    )
    .await
    .expect("deploys");
    // Someone else's ConfigMap in the same namespace, and one of another environment.
    fake.insert(
        "configmaps",
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "not-ours", "namespace": NAMESPACE}}),
    );
    fake.insert(
        "configmaps",
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "backend-config", "namespace": "sample-app-stage", "labels": {
            "app.kubernetes.io/managed-by": "tier",
            "app.kubernetes.io/part-of": "sample-app",
            "tier.dev/environment": "stage",
        }}}),
    );
    let mut smaller = environment.clone();
    let frontend = ServiceName::new("frontend").expect("a name");
    smaller.services.remove(&frontend);
    let pruned = deploy(&cluster, &smaller, &objects(&smaller), fast(), &|_| {})
        .await
        .expect("deploys");
    let pruned: Vec<String> = pruned
        .iter()
        .map(|pruned| {
            format!(
                "{} {}/{}",
                pruned.kind.as_str(),
                pruned.namespace,
                pruned.name
            )
        })
        .collect();
    assert_eq!(
        pruned,
        [
            "Service sample-app-prod/frontend",
            "Service sample-app-prod/frontend-external",
            "Deployment sample-app-prod/frontend",
            "ConfigMap sample-app-prod/frontend-config",
        ]
    );
    assert_eq!(
        fake.names("configmaps", NAMESPACE),
        ["backend-config", "not-ours"]
    );
    assert_eq!(fake.names("deployments", NAMESPACE), ["backend"]);
    assert_eq!(fake.names("services", NAMESPACE), ["backend"]);
    assert_eq!(
        fake.names("configmaps", "sample-app-stage"),
        ["backend-config"]
    );
}

#[tokio::test]
async fn a_rollout_that_exceeds_its_progress_deadline_fails_its_wave_and_stops() {
    let fake = FakeKube::start();
    let mut environment = sample_prod();
    let backend = ServiceName::new("backend").expect("a name");
    if let Some(service) = environment.services.get_mut(&backend) {
        service.image = Some("sample-app-backend:0.0.2-fail".to_owned());
    }
    let cluster = connect(&fake, &environment).await;
    let failure = deploy(
        &cluster,
        &environment,
        &objects(&environment),
        fast(),
        &|_| {},
    )
    .await
    .expect_err("the backend never becomes available");
    assert_eq!(failure.service, Some(backend));
    assert!(
        failure
            .reason
            .starts_with("rollout failed: progress deadline exceeded"),
        "{failure}"
    );
    // The frontend's wave never started.
    assert_eq!(fake.names("deployments", NAMESPACE), ["backend"]);
}

#[tokio::test]
async fn the_guard_refuses_another_context_before_any_request() {
    let fake = FakeKube::start();
    let environment = sample_prod();
    let refused = Cluster::connect_with(&environment, kubeconfig(&fake, "kind-dev")).await;
    match refused {
        Err(error @ ClusterError::WrongContext { .. }) => assert_eq!(
            error.to_string(),
            "`prod` runs in kube context `prod-admin`, but the current context is `kind-dev`; nothing was changed"
        ),
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("the guard let another context through"),
    }
    assert!(fake.requests().is_empty());
}

/// The sample app's prod with the runtime config store beside it.
fn with_store(image: Option<&str>) -> Environment {
    let mut environment = sample_prod();
    environment.store.kubernetes = true;
    environment.store.image = image.map(str::to_owned);
    environment
}

#[tokio::test]
async fn the_store_rolls_out_before_the_first_wave_and_stays_until_it_is_switched_off() {
    let fake = FakeKube::start();
    let environment = with_store(None);
    let cluster = connect(&fake, &environment).await;
    let events = Mutex::new(Vec::new());
    let report = |event: Event| {
        let line = match event {
            Event::Shared { deployments } => format!("shared: {deployments:?}"),
            Event::Wave { index, .. } => format!("wave {index}"),
            Event::Rollout { service, state } => format!("{service}: {state:?}"),
            Event::Pruned(pruned) => format!("pruned {pruned:?}"),
        };
        events.lock().expect("events").push(line);
    };
    deploy(
        &cluster,
        &environment,
        &objects(&environment),
        fast(),
        &report,
    )
    .await
    .expect("deploys");
    let events = events.into_inner().expect("events");
    assert_eq!(
        events[0], "shared: [ServiceName(\"tier-store\")]",
        "{events:#?}"
    );
    let store_done = events
        .iter()
        .position(|line| line.starts_with("tier-store: Done"))
        .expect("the store rolled out");
    let first_wave = events
        .iter()
        .position(|line| line == "wave 0")
        .expect("a first wave");
    assert!(store_done < first_wave, "{events:#?}");
    assert_eq!(
        fake.names("deployments", NAMESPACE),
        ["backend", "frontend", "tier-store"]
    );
    assert_eq!(fake.names("secrets", NAMESPACE), ["tier-store-tokens"]);

    // Applied again, nothing is pruned: the store's objects are the environment's own.
    let pruned = deploy(
        &cluster,
        &environment,
        &objects(&environment),
        fast(),
        &|_| {},
    )
    .await
    .expect("deploys again");
    assert!(pruned.is_empty(), "{pruned:?}");

    // Switched off, its objects go like any the project no longer declares.
    let without = sample_prod();
    let pruned = deploy(&cluster, &without, &objects(&without), fast(), &|_| {})
        .await
        .expect("deploys without the store");
    let pruned: Vec<String> = pruned
        .iter()
        .map(|pruned| format!("{} {}", pruned.kind.as_str(), pruned.name))
        .collect();
    assert_eq!(
        pruned,
        [
            "Service tier-store",
            "Deployment tier-store",
            "Secret tier-store-tokens"
        ]
    );
}

#[tokio::test]
async fn a_store_that_does_not_roll_out_fails_the_deploy_before_any_service() {
    let fake = FakeKube::start();
    let environment = with_store(Some("tier:0.1.0-fail"));
    let cluster = connect(&fake, &environment).await;
    let failure = deploy(
        &cluster,
        &environment,
        &objects(&environment),
        fast(),
        &|_| {},
    )
    .await
    .expect_err("the store never becomes available");
    assert_eq!(failure.service, None);
    assert!(
        failure.to_string().starts_with(
            "Deployment sample-app-prod/tier-store: rollout failed: progress deadline exceeded"
        ),
        "{failure}"
    );
    assert_eq!(fake.names("deployments", NAMESPACE), ["tier-store"]);
    assert!(fake.names("configmaps", NAMESPACE).is_empty());
}
