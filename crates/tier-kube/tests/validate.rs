//! The rendered manifests against Kubernetes' own OpenAPI schemas, with the real
//! `kubernetes-validate` (PyPI; `.ci/run` installs it). Strict: an unknown field fails too.
//! A missing tool fails the test, it never skips it.

use std::fmt::Write as _;
use std::path::Path;

use tier_kube::{Object, RenderOptions, render, to_yaml};
use tier_model::Project;

/// The Kubernetes version the manifests are checked against: the one the k8s-openapi
/// feature (`v1_36`) targets.
const KUBERNETES_VERSION: &str = "1.36";
/// The generated project's size.
const SERVICES: usize = 320;

fn rendered(root: &Path, environment: &str) -> Vec<Object> {
    let mut project = Project::load(root).expect("the project loads");
    let resolved = project
        .resolve(environment, &[])
        .unwrap_or_else(|problems| panic!("{environment} resolves: {problems:?}"));
    render(&resolved.environment, &RenderOptions::default()).expect("renders")
}

/// Runs `kubernetes-validate --strict` once on every file given, and fails with its report.
#[expect(
    clippy::disallowed_methods,
    reason = "the validator is an external tool run once, with its output checked"
)]
fn kubernetes_validate(files: &[&Path]) {
    let output = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "--kubernetes-version", KUBERNETES_VERSION])
        .args(files)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run kubernetes-validate ({error}); install it with `pip install kubernetes-validate`"
            )
        });
    assert!(
        output.status.success(),
        "kubernetes-validate rejected the manifests:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A project that uses every shape the renderer knows: HTTP, TCP, gRPC and exec probes with
/// their timings, startup and liveness probes, limits, security, service accounts, volumes,
/// named ports, labels and annotations, hosts, exposed services, secrets, CPU, extra variables, rollout settings, dependency
/// chains, app config, and the runtime config store beside the services.
fn large_project(dir: &Path) {
    let mut text = String::from(
        "[project]\nname = \"large\"\n\n[environments.prod]\nruntime = \"kubernetes\"\nkube = { context = \"prod\", namespace = \"large-prod\" }\n\n[store]\nkubernetes = true\netcd = \"etcd://etcd-0.etcd:2379,etcd-1.etcd:2379/tier/large/prod\"\nimage = \"registry.example.com:5000/tier:0.1.0\"\n\n",
    );
    for index in 0..SERVICES {
        let _ = writeln!(text, "[services.s{index:03}]");
        let _ = writeln!(
            text,
            "image = \"registry.example.com:5000/team/s{index:03}:1.{index}\""
        );
        let _ = writeln!(text, "port = {}", 8000 + index);
        let _ = writeln!(text, "replicas = {}", index % 5);
        let _ = writeln!(text, "memory = \"{}Mi\"", 64 * (1 + index % 4));
        if index % 3 == 0 {
            let _ = writeln!(text, "cpu = \"{}m\"", 100 + index);
        }
        match index % 4 {
            0 => {
                let _ = writeln!(text, "health = {{ http = \"/healthz\" }}");
            }
            1 => {
                let _ = writeln!(
                    text,
                    "protocol = \"tcp\"\nhealth = {{ tcp = {}, interval = \"500ms\", timeout = \"250ms\", failure_threshold = 5 }}",
                    8000 + index
                );
            }
            2 => {
                let _ = writeln!(
                    text,
                    "health = {{ http = \"/ready\", interval = \"10s\", timeout = \"2s\" }}"
                );
            }
            _ => {}
        }
        if index % 40 == 7 {
            let _ = writeln!(text, "expose = {}", 30000 + index);
        }
        if index % 7 == 0 {
            let _ = writeln!(
                text,
                "secrets = {{ API_KEY = {{ env = \"API_KEY\" }}, TLS_KEY = {{ file = \"secrets/tls.key\" }} }}"
            );
        }
        if index % 5 == 0 {
            let _ = writeln!(
                text,
                "env = {{ LOG_LEVEL = \"info\", WORKERS = 4, DEBUG = false }}"
            );
        }
        if index % 6 == 0 {
            let _ = writeln!(
                text,
                "rollout = {{ max_surge = 0, max_unavailable = 1, deadline = \"5m\" }}"
            );
        }
        if index % 6 == 0 {
            let _ = writeln!(text, "cpu_limit = \"1\"\nmemory_limit = \"1Gi\"");
        }
        if index % 8 == 3 {
            let port = 8000 + index;
            let _ = writeln!(
                text,
                "security = {{ run_as_user = 1000, run_as_group = 1000, fs_group = 1000, read_only_root_filesystem = true, capabilities_add = [\"NET_BIND_SERVICE\"] }}\n\
                 service_account = {{ name = \"sa{index:03}\", annotations = {{ \"iam.example.com/role\" = \"r{index}\" }} }}\n\
                 startup = {{ grpc = {port}, service = \"s{index:03}\", failure_threshold = 30, interval = \"1s\" }}\n\
                 liveness = {{ exec = [\"/bin/check\", \"--quick\"], initial_delay = \"5s\", success_threshold = 1 }}\n\
                 ports = {{ metrics = {} }}\n\
                 service_port = 80\n\
                 labels = {{ team = \"t{}\" }}\n\
                 annotations = {{ \"example.com/owner\" = \"team {}\" }}\n\
                 pod_annotations = {{ \"prometheus.io/scrape\" = \"true\" }}\n\
                 termination_grace = \"5s\"\n\
                 args = [\"--port\", \"{port}\"]\n\
                 volumes = {{ scratch = {{ mount = \"/tmp\", empty_dir = {{ medium = \"memory\", size_limit = \"64Mi\" }} }}, data = {{ mount = \"/data\", claim = {{ size = \"1Gi\", storage_class = \"fast\" }} }}, certs = {{ mount = \"/certs\", secret = \"certs\", read_only = true }} }}",
                9000 + index,
                index % 3,
                index % 3,
            );
        }
        if index % 50 == 9 {
            let _ = writeln!(text, "host = \"s{index:03}.example.com\"");
        }
        if index > 0 {
            let mut dependencies = vec![format!("\"s{:03}\"", index - 1)];
            if index > 10 {
                dependencies.push(format!("\"s{:03}\"", index / 2));
            }
            let _ = writeln!(text, "depends_on = [{}]", dependencies.join(", "));
        }
        if index % 10 == 0 {
            let config = format!("config/s{index:03}");
            let _ = writeln!(text, "config = \"{config}\"");
            std::fs::create_dir_all(dir.join(&config)).expect("a config directory");
            std::fs::write(
                dir.join(&config).join("base.json"),
                format!("{{\"name\": \"s{index:03}\", \"limits\": {{\"rps\": {index}}}, \"tags\": [\"a\", \"b\"]}}"),
            )
            .expect("base.json");
            std::fs::write(
                dir.join(&config).join("prod.json"),
                "{\"limits\": {\"rps\": 1000}, \"text\": \"prod: \\\"quoted\\\"\\nnew line\"}",
            )
            .expect("prod.json");
        }
        text.push('\n');
    }
    std::fs::write(dir.join("tier.toml"), text).expect("tier.toml");
}

#[test]
fn the_sample_app_and_a_large_project_pass_kubernetes_validate() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-app");
    let mut files = Vec::new();
    // prod is the sample app's kubernetes environment; dev and stage render on request.
    for environment in ["dev", "stage", "prod"] {
        let path = dir.path().join(format!("sample-app-{environment}.yaml"));
        let yaml = to_yaml(&rendered(&sample, environment)).expect("prints");
        std::fs::write(&path, yaml).expect("write the manifests");
        files.push(path);
    }
    let project = dir.path().join("large");
    large_project(&project);
    let objects = rendered(&project, "prod");
    let with_secrets = objects
        .iter()
        .filter(|object| object.kind() == "Secret" && object.name() != "tier-store-tokens")
        .count();
    assert!(with_secrets > 0, "the large project renders Secrets too");
    // The Namespace, the store's Secret, Deployment and Service, then the services'.
    let count = |kind: &str| {
        objects
            .iter()
            .filter(|object| object.kind() == kind)
            .count()
    };
    assert_eq!(count("Deployment"), 1 + SERVICES);
    assert!(count("ServiceAccount") > 0 && count("PersistentVolumeClaim") > 0);
    assert!(count("Ingress") > 0);
    assert_eq!(objects[2].kind(), "Deployment");
    assert_eq!(objects[2].name(), "tier-store");
    let path = dir.path().join("large-prod.yaml");
    std::fs::write(&path, to_yaml(&objects).expect("prints")).expect("write the manifests");
    files.push(path);
    let files: Vec<&Path> = files.iter().map(|path| path.as_path()).collect();
    kubernetes_validate(&files);
}

#[test]
fn kubernetes_validate_rejects_an_unknown_field() {
    // The check above is only worth something if the tool really rejects a bad manifest.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\n  colour: blue\n",
    )
    .expect("write a manifest");
    let result = std::panic::catch_unwind(|| kubernetes_validate(&[&path]));
    let Err(panic) = result else {
        panic!("kubernetes-validate accepted an unknown field");
    };
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("'colour' was unexpected"), "{message}");
}
