//! Snapshots of what `tier validate` says about the workload keys used wrong: each problem
//! located at file:line:column with what to do, all of them in one run, and nothing written.

use tier_test::{TestProject, redact};

fn with_dev(rest: &str) -> String {
    format!(
        "[project]\nname = \"shop\"\n\n[environments.dev]\nruntime = \"local\"\n\n[environments.prod]\nruntime = \"kubernetes\"\npromote_from = \"dev\"\nkube = {{ context = \"prod\", namespace = \"shop-prod\" }}\n\n{rest}"
    )
}

/// `tier validate` fails with exit code 1, prints nothing to stdout and changes nothing.
fn validate(project: &TestProject) -> String {
    let output = project
        .tier()
        .args(["validate"])
        .output()
        .expect("run tier");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !project.path().join(".tier").exists(),
        "a failed validate writes nothing"
    );
    redact(&stderr, project)
}

#[test]
fn bad_types_and_unknown_names_of_workload_keys() {
    let project = TestProject::with_files(&[(
        "tier.toml",
        &with_dev(
            r#"[services.web]
command = ["bin/web"]
image = "shop/web:1"
cpu_limit = "lots"
memory_limit = 512
security = { run_as_user = -1, seccomp = "strict", capabilities_add = ["cap_net_raw"] }
service_account = { annotations = {} }
liveness = { grpc = 9000, http = "/healthz" }
startup = { exec = "bin/check" }
volumes = { data = { mount = "data", claim = { size = "1Gi" }, empty_dir = {} }, config = { mount = "/etc/x", empty_dir = {} } }
ports = { "GRPC" = 9000, metrics = 8080 }
labels = { team = "a team with spaces", "app.kubernetes.io/name" = "x" }
termination_grace = "soon"
unset = ["expose"]
env = { PORT = "1", TIER_X = "2", OTHER = "${services.db.address}", URL = "${services.web.scheme}" }

[services.worker]
command = ["bin/worker"]
service = false
expose = 9999
health = { tcp = 7000 }
host = "Shop.Example.com"
"#,
        ),
    )]);
    insta::assert_snapshot!(validate(&project));
}

#[test]
fn bad_patches_and_manifests_are_located_at_the_entry_that_names_them() {
    let project = TestProject::with_files(&[
        (
            "tier.toml",
            &with_dev(
                r#"[services.web]
command = ["bin/web"]
image = "shop/web:1"
patches = ["patches/broken.yaml", "patches/missing.yaml", "patches/ops.yaml"]
manifests = ["manifests/"]

[services.api]
command = ["bin/api"]
image = "shop/api:1"
depends_on = ["worker"]

[services.worker]
command = ["bin/worker"]
image = "shop/worker:1"
service = false
"#,
            ),
        ),
        (
            "envs/prod.toml",
            "[kube]\npatches = [\"patches/ops.yaml\", \"../outside.yaml\"]\n",
        ),
        ("patches/broken.yaml", "spec: [unclosed\n"),
        ("patches/ops.yaml", "- op: frobnicate\n  path: spec\n"),
        (
            "manifests/extra.yaml",
            "kind: ConfigMap\nmetadata:\n  name: x\n",
        ),
    ]);
    insta::assert_snapshot!(validate(&project));
}

#[test]
fn a_patch_that_names_no_rendered_object_fails_render_naming_its_file() {
    let project = TestProject::with_files(&[
        (
            "tier.toml",
            &with_dev("[services.web]\ncommand = [\"bin/web\"]\nimage = \"shop/web:1\"\n"),
        ),
        (
            "envs/prod.toml",
            "[kube]\npatches = [\"patches/nothing.yaml\", { file = \"patches/typo.yaml\", target = \"Deployment/web\" }]\n",
        ),
        (
            "patches/nothing.yaml",
            "kind: Deployment\nmetadata:\n  name: nothing\nspec:\n  replicas: 2\n",
        ),
        (
            "patches/typo.yaml",
            "- op: add\n  path: /spec/template/spec/nodeSelektor\n  value: { pool: a }\n",
        ),
    ]);
    let output = project
        .tier()
        .args(["render", "prod", "--format", "k8s"])
        .output()
        .expect("render");
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    insta::assert_snapshot!(redact(&String::from_utf8_lossy(&output.stderr), &project));

    project.write(
        "patches/nothing.yaml",
        "kind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n",
    );
    let output = project
        .tier()
        .args(["render", "prod", "--format", "k8s"])
        .output()
        .expect("render");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("patches/typo.yaml") && stderr.contains("nodeSelektor"),
        "a field the object does not have is refused, not dropped: {stderr}"
    );
}

#[test]
fn a_service_below_the_security_profile_is_a_warning_and_its_namespace_enforces_less() {
    let project = TestProject::with_files(&[(
        "tier.toml",
        "[project]\nname = \"shop\"\nsecurity = \"restricted\"\n\n[environments.prod]\nruntime = \"kubernetes\"\nkube = { context = \"prod\", namespace = \"shop-prod\" }\n\n[services.web]\nimage = \"shop/web:1\"\n\n[services.legacy]\nimage = \"shop/legacy:1\"\nsecurity = { run_as_non_root = false, capabilities_add = [\"NET_ADMIN\"] }\n",
    )]);
    let output = project
        .tier()
        .args(["validate"])
        .output()
        .expect("validate");
    let stderr = redact(&String::from_utf8_lossy(&output.stderr), &project);
    assert_eq!(
        output.status.code(),
        Some(0),
        "a warning refuses nothing: {stderr}"
    );
    insta::assert_snapshot!(stderr);

    let rendered = project
        .tier()
        .args(["render", "prod", "--format", "k8s"])
        .output()
        .expect("render");
    let yaml = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        yaml.contains("pod-security.kubernetes.io/enforce: privileged")
            && yaml.contains("pod-security.kubernetes.io/warn: restricted"),
        "the namespace enforces what every service meets and warns at the profile:\n{yaml}"
    );
}

#[test]
fn two_services_cannot_claim_one_host() {
    let project = TestProject::with_files(&[(
        "tier.toml",
        &with_dev(
            "[services.web]\ncommand = [\"bin/web\"]\nimage = \"shop/web:1\"\nhost = \"shop.example.com\"\n\n[services.api]\ncommand = [\"bin/api\"]\nimage = \"shop/api:1\"\nhost = \"shop.example.com\"\n",
        ),
    )]);
    let stderr = validate(&project);
    assert!(
        stderr.contains("services `api` and `web` both claim host shop.example.com")
            && stderr.contains("tier.toml:15:8"),
        "{stderr}"
    );
}

#[test]
fn null_in_base_json_removes_the_key_and_explain_names_the_line() {
    let project = TestProject::with_files(&[
        (
            "tier.toml",
            &with_dev(
                "[services.web]\ncommand = [\"bin/web\"]\nimage = \"shop/web:1\"\nconfig = \"config/web\"\n",
            ),
        ),
        (
            "config/web/base.json",
            "{\n  \"keep\": 1,\n  \"gone\": null\n}\n",
        ),
    ]);
    let rendered = project
        .tier()
        .args(["render", "dev", "--output", "json"])
        .output()
        .expect("render");
    let value: serde_json::Value = serde_json::from_slice(&rendered.stdout).expect("json");
    assert_eq!(
        value["services"]["web"]["config"],
        serde_json::json!({ "keep": 1 }),
        "null removes the key even in base.json"
    );
    let explain = project
        .tier()
        .args(["explain", "dev", "services.web.config.gone"])
        .output()
        .expect("explain");
    assert_eq!(
        String::from_utf8_lossy(&explain.stdout),
        "services.web.config.gone is removed\n  by config/web/base.json:3:11\n"
    );
}
