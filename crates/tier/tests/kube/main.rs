//! The kubernetes runtime end to end: the real `tier` binary, with KUBECONFIG pointing at a
//! kubeconfig whose cluster is `tier_test::fake_kube::FakeKube`.
//!
//! No cluster can run where these tests run, so that in-process fake stands in for a live
//! Kubernetes API server (it is the only mock: the binary, kube-rs and every HTTP request are
//! real). README.md says how to run the same commands against kind or k3s.

use tier_test::fake_kube::FakeKube;
use tier_test::{Run, TestContext};

mod dashboard;

const SHOP: &str = r#"[project]
name = "shop"

[environments.dev]
runtime = "local"

[environments.prod]
runtime = "kubernetes"
kube = { context = "prod-admin", namespace = "shop-prod" }

[services.api]
command = ["api"]
image = "shop-api:1.0"
port = 8080
replicas = 3
health = { http = "/healthz" }

[services.web]
command = ["web"]
image = "shop-web:1.0"
port = 8081
depends_on = ["api"]
expose = 8080

[services.worker]
command = ["worker"]
image = "shop-worker:1.0"
port = 9000
depends_on = ["api"]
"#;

/// A project and the fake cluster its kubeconfig points at.
struct Setup {
    context: TestContext,
    fake: FakeKube,
}

impl Setup {
    /// The project, with `.kube/config` naming the fake's contexts `prod-admin` and
    /// `kind-dev`, `current` being the current one; every command reads that kubeconfig.
    fn new(mut context: TestContext, current: &str) -> Setup {
        let fake = FakeKube::start();
        std::fs::create_dir_all(context.path().join(".kube")).expect("a .kube directory");
        let kubeconfig = context.path().join(".kube/config");
        fake.write_kubeconfig(&kubeconfig, &["prod-admin", "kind-dev"], current);
        context.env("KUBECONFIG", kubeconfig);
        Setup { context, fake }
    }

    fn shop(current: &str) -> Setup {
        Setup::new(TestContext::with_files(&[("tier.toml", SHOP)]), current)
    }

    fn run(&self, args: &[&str], code: i32) -> Run {
        self.context.tier(args).expect_code(code)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let run = self.run(args, 0);
        serde_json::from_str(&run.stdout).unwrap_or_else(|error| {
            panic!("tier {args:?} printed no JSON ({error}): {}", run.stdout)
        })
    }

    fn image_of(&self, deployment: &str) -> String {
        self.fake
            .get("deployments", "shop-prod", deployment)
            .and_then(|object| {
                object["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| format!("no Deployment {deployment}"))
    }
}

#[test]
fn apply_creates_every_object_on_the_cluster_and_records_the_revision() {
    let setup = Setup::shop("prod-admin");
    let run = setup.run(&["apply", "prod"], 0);
    assert!(
        run.stdout.contains("prod: revision 1 deployed"),
        "{}",
        run.stdout
    );
    // Waves: the api first, then what depends on it.
    assert!(run.stderr.contains("wave 1: api"), "{}", run.stderr);
    assert!(run.stderr.contains("wave 2: web, worker"), "{}", run.stderr);
    assert!(
        run.stderr.contains("api: rolled out: 3/3 available"),
        "{}",
        run.stderr
    );
    let fake = &setup.fake;
    assert!(fake.get("namespaces", "", "shop-prod").is_some());
    // The environment's records live beside its objects: the index, one Secret per revision.
    assert_eq!(
        fake.names("configmaps", "shop-prod"),
        [
            "api-config",
            "tier.prod.index",
            "web-config",
            "worker-config"
        ]
    );
    assert!(
        fake.names("secrets", "shop-prod")
            .contains(&"tier.prod.v1".to_owned()),
        "{:?}",
        fake.names("secrets", "shop-prod")
    );
    assert!(
        !setup.context.path().join(".tier/prod/state.redb").exists(),
        "a kubernetes environment keeps no state file"
    );
    assert_eq!(
        fake.names("leases", "shop-prod"),
        Vec::<String>::new(),
        "the lock is released"
    );
    assert_eq!(
        fake.names("deployments", "shop-prod"),
        ["api", "web", "worker"]
    );
    assert_eq!(
        fake.names("services", "shop-prod"),
        ["api", "web", "web-external", "worker"]
    );
    let web = fake
        .get("services", "shop-prod", "web")
        .expect("the web Service");
    assert_eq!(web["spec"]["type"], "ClusterIP");
    let external = fake
        .get("services", "shop-prod", "web-external")
        .expect("the exposed web Service");
    assert_eq!(external["spec"]["type"], "LoadBalancer");
    assert_eq!(
        web["metadata"]["managedFields"][0]["manager"], "tier",
        "applied with field manager tier"
    );
    let history = setup.json(&["history", "prod", "--output", "json"]);
    assert_eq!(history[0]["outcome"]["status"], "succeeded", "{history:#}");
    // Nothing changed: a second apply plans nothing and leaves the objects as they are.
    let again = setup.run(&["apply", "prod"], 0);
    assert!(
        again.stdout.contains("revision 2 deployed"),
        "{}",
        again.stdout
    );
    assert_eq!(setup.image_of("api"), "shop-api:1.0");
}

#[test]
fn a_service_removed_from_the_project_is_pruned_and_others_objects_stay() {
    let setup = Setup::shop("prod-admin");
    setup.run(&["apply", "prod"], 0);
    setup.fake.insert(
        "configmaps",
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "someone-elses", "namespace": "shop-prod"}}),
    );
    let without_worker = SHOP
        .split("[services.worker]")
        .next()
        .expect("the worker's section");
    setup.context.write("tier.toml", without_worker);
    let plan = setup.run(&["plan", "prod"], 0);
    assert!(plan.stdout.contains("worker"), "{}", plan.stdout);
    let run = setup.run(&["apply", "prod"], 0);
    assert!(
        run.stderr
            .contains("pruned Deployment shop-prod/worker (no longer declared)"),
        "{}",
        run.stderr
    );
    let fake = &setup.fake;
    assert_eq!(fake.names("deployments", "shop-prod"), ["api", "web"]);
    assert_eq!(
        fake.names("services", "shop-prod"),
        ["api", "web", "web-external"]
    );
    assert_eq!(
        fake.names("configmaps", "shop-prod"),
        [
            "api-config",
            "someone-elses",
            "tier.prod.index",
            "web-config"
        ]
    );
}

#[test]
fn a_failed_rollout_applies_the_previous_revision_again_and_history_shows_it() {
    let setup = Setup::shop("prod-admin");
    setup.run(&["apply", "prod"], 0);
    let run = setup.run(
        &[
            "apply",
            "prod",
            "--set",
            "services.api.image=shop-api:2.0-fail",
            "--set",
            "services.web.image=shop-web:2.0",
        ],
        1,
    );
    assert!(
        run.stderr
            .contains("service api: rollout failed: progress deadline exceeded"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("applying revision 1 again, which was deployed before"),
        "{}",
        run.stderr
    );
    // The api runs its previous image again; the web's wave never started.
    assert_eq!(setup.image_of("api"), "shop-api:1.0");
    assert_eq!(setup.image_of("web"), "shop-web:1.0");
    let history = setup.json(&["history", "prod", "--output", "json"]);
    let last = &history[1];
    assert_eq!(last["number"], 2, "{history:#}");
    assert_eq!(last["outcome"]["status"], "rolled_back", "{history:#}");
    let reason = last["outcome"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("progress deadline exceeded") && reason.contains("revision 1 runs again"),
        "{reason}"
    );
    let text = setup.run(&["history", "prod"], 0);
    assert!(
        text.stdout
            .contains("rolled back: service api: rollout failed"),
        "{}",
        text.stdout
    );
    // What is deployed is still revision 1: the plan shows the failed change again.
    let status = setup.json(&["status", "prod", "--output", "json"]);
    assert_eq!(status[0]["status"]["services"][0]["image"], "shop-api:1.0");
    assert_eq!(status[0]["status"]["services"][0]["state"], "running");
}

#[test]
fn the_context_guard_refuses_another_context_and_changes_nothing() {
    let setup = Setup::shop("kind-dev");
    let run = setup.run(&["apply", "prod"], 1);
    insta::assert_snapshot!(
        "guard_refuses_apply",
        run.stderr
            .lines()
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let status = setup.run(&["status", "prod"], 1);
    assert!(
        status.stderr.contains(
            "`prod` runs in kube context `prod-admin`, but the current context is `kind-dev`"
        ),
        "{}",
        status.stderr
    );
    assert_eq!(setup.fake.writes(), 0, "{:?}", setup.fake.requests());
    assert!(
        setup.fake.requests().is_empty(),
        "nothing reached the cluster"
    );
    // Its history lives in the cluster, behind the same guard.
    let history = setup.run(&["history", "prod"], 1);
    assert!(
        history.stderr.contains("the current context is `kind-dev`"),
        "{}",
        history.stderr
    );
    assert!(setup.fake.requests().is_empty());
}

#[test]
fn status_reads_ready_and_desired_from_the_live_deployments() {
    let setup = Setup::shop("prod-admin");
    setup.run(&["apply", "prod"], 0);
    setup.fake.set_ready("shop-prod", "api", 1);
    let status = setup.json(&["status", "prod", "--output", "json"]);
    let entry = &status[0];
    assert_eq!(entry["environment"], "prod");
    assert_eq!(entry["runtime"], "kubernetes");
    assert_eq!(entry["status"]["namespace"], "shop-prod");
    let api = &entry["status"]["services"][0];
    assert_eq!(
        (&api["name"], &api["ready"], &api["desired"], &api["state"]),
        (
            &serde_json::json!("api"),
            &serde_json::json!(1),
            &serde_json::json!(3),
            &serde_json::json!("not ready")
        )
    );
    insta::assert_snapshot!("status_text", setup.run(&["status", "prod"], 0).stdout);
}

#[test]
fn the_sample_apps_protected_prod_needs_confirm_and_a_saved_plan_applies_as_is() {
    let setup = Setup::new(TestContext::copy_of("examples/sample-app"), "prod-admin");
    let refused = setup.run(&["apply", "prod"], 1);
    assert!(
        refused
            .stderr
            .contains("prod is protected; nothing was changed"),
        "{}",
        refused.stderr
    );
    assert!(setup.fake.requests().is_empty());
    let plan_path = setup.context.path().join("prod.plan.json");
    let plan_file = plan_path.to_str().expect("a UTF-8 path");
    setup.run(&["plan", "prod", "--out", plan_file], 0);
    setup.run(&["apply", plan_file, "--confirm", "prod"], 0);
    assert_eq!(
        setup.fake.names("deployments", "sample-app-prod"),
        ["backend", "frontend"]
    );
    let backend = setup
        .fake
        .get("deployments", "sample-app-prod", "backend")
        .expect("the backend");
    assert_eq!(backend["spec"]["replicas"], 3, "envs/prod.toml's replicas");
    // The saved plan is spent: the state moved on.
    let stale = setup.run(&["apply", plan_file, "--confirm", "prod"], 1);
    assert!(
        stale.stderr.contains("tier plan prod --out FILE"),
        "{}",
        stale.stderr
    );
}

#[test]
fn rollback_applies_an_earlier_revisions_objects_again() {
    let setup = Setup::shop("prod-admin");
    setup.run(&["apply", "prod"], 0);
    setup.run(
        &["apply", "prod", "--set", "services.api.image=shop-api:2.0"],
        0,
    );
    assert_eq!(setup.image_of("api"), "shop-api:2.0");
    let run = setup.run(&["rollback", "prod", "--to", "1"], 0);
    assert!(
        run.stdout.contains("prod: revision 3 deployed"),
        "{}",
        run.stdout
    );
    assert_eq!(setup.image_of("api"), "shop-api:1.0");
    let history = setup.json(&["history", "prod", "--output", "json"]);
    assert_eq!(history[2]["origin"]["kind"], "rollback", "{history:#}");
    assert_eq!(history[2]["outcome"]["status"], "succeeded", "{history:#}");
}

#[test]
fn a_first_deploy_that_fails_is_recorded_as_failed_and_halt_keeps_what_succeeded() {
    let setup = Setup::shop("prod-admin");
    let run = setup.run(
        &[
            "apply",
            "prod",
            "--set",
            "services.web.image=shop-web:1.0-fail",
        ],
        1,
    );
    assert!(
        run.stderr.contains("nothing was deployed before"),
        "{}",
        run.stderr
    );
    let history = setup.json(&["history", "prod", "--output", "json"]);
    assert_eq!(history[0]["outcome"]["status"], "failed", "{history:#}");
    // With on_failure = "halt", a later failure keeps the services that rolled out.
    setup.run(&["apply", "prod"], 0);
    let halting = SHOP.replace(
        "name = \"shop\"\n",
        "name = \"shop\"\non_failure = \"halt\"\n",
    );
    setup.context.write("tier.toml", &halting);
    let run = setup.run(
        &[
            "apply",
            "prod",
            "--set",
            "services.api.image=shop-api:1.1",
            "--set",
            "services.web.image=shop-web:2.0-fail",
        ],
        1,
    );
    assert!(
        run.stderr.contains("what succeeded was kept"),
        "{}",
        run.stderr
    );
    assert_eq!(setup.image_of("api"), "shop-api:1.1");
    assert_eq!(setup.image_of("web"), "shop-web:2.0-fail");
    let history = setup.json(&["history", "prod", "--output", "json"]);
    assert_eq!(history[2]["outcome"]["status"], "failed", "{history:#}");
}

/// A service's secrets become its Secret object, with the value sent only over the API: the
/// manifests `render --out` writes hold the reference, and a changed value rolls the pods.
#[test]
fn secrets_go_to_the_cluster_as_a_secret_and_stay_out_of_rendered_files() {
    let project = TestContext::with_files(&[
        ("tier.toml", SHOP),
        (
            "envs/prod.toml",
            "[services.api]\nsecrets = { DB_PASSWORD = { env = \"SHOP_DB_PASSWORD\" } }\n",
        ),
    ]);
    let setup = Setup::new(project, "prod-admin");
    let canary = "canary-3d9f-kube";
    let apply = |value: &str| {
        let output = setup
            .context
            .command(&["apply", "prod"])
            .env("SHOP_DB_PASSWORD", value)
            .output()
            .expect("run tier");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{printed}");
        assert!(!printed.contains(value), "{printed}");
        printed
    };
    apply(canary);

    let secret = setup
        .fake
        .get("secrets", "shop-prod", "api-secrets")
        .expect("the api's Secret is on the cluster");
    assert_eq!(secret["type"], "Opaque");
    let encoded = secret["data"]["DB_PASSWORD"].as_str().unwrap_or_default();
    assert_eq!(
        encoded, "Y2FuYXJ5LTNkOWYta3ViZQ==",
        "base64 of the value: {secret}"
    );
    let annotation = |setup: &Setup| {
        setup
            .fake
            .get("deployments", "shop-prod", "api")
            .and_then(|object| {
                object["spec"]["template"]["metadata"]["annotations"]["tier.dev/secrets-hash"]
                    .as_str()
                    .map(str::to_owned)
            })
            .expect("the api's pods carry the secrets hash")
    };
    let first = annotation(&setup);

    // A new value: the plan names the secret by fingerprint, and the pods roll.
    let plan = setup
        .context
        .command(&["plan", "prod"])
        .env("SHOP_DB_PASSWORD", "canary-3d9f-other")
        .output()
        .expect("run tier");
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan_text.contains("~ api\n") && plan_text.contains("secret DB_PASSWORD: value changed"),
        "{plan_text}"
    );
    apply("canary-3d9f-other");
    assert_ne!(annotation(&setup), first);

    let dir = setup.context.path().join("manifests");
    let dir_arg = dir.display().to_string();
    let output = setup
        .context
        .command(&["render", "prod", "--format", "k8s", "--out", &dir_arg])
        .env("SHOP_DB_PASSWORD", canary)
        .output()
        .expect("run tier");
    assert!(output.status.success());
    let written = std::fs::read_to_string(dir.join("secret-api-secrets.yaml")).expect("the file");
    assert!(
        written.contains("DB_PASSWORD: <secret:env:SHOP_DB_PASSWORD>"),
        "{written}"
    );
    assert!(!written.contains(canary));

    let output = setup
        .context
        .command(&["render", "prod", "--format", "k8s", "--include-secrets"])
        .env("SHOP_DB_PASSWORD", canary)
        .output()
        .expect("run tier");
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("DB_PASSWORD: Y2FuYXJ5LTNkOWYta3ViZQ=="),
        "{printed}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("keep them out of git"));
    // With no secret among the services there is nothing to warn about.
    let output = TestContext::with_files(&[("tier.toml", SHOP)])
        .command(&["render", "prod", "--format", "k8s", "--include-secrets"])
        .output()
        .expect("run tier");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("secret values"), "{stderr}");

    // Without the variable nothing reaches the cluster.
    let writes = setup.fake.writes();
    let output = setup
        .context
        .command(&["apply", "prod"])
        .env_remove("SHOP_DB_PASSWORD")
        .output()
        .expect("run tier");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("envs/prod.toml:2:") && stderr.contains("`SHOP_DB_PASSWORD` is not set"),
        "{stderr}"
    );
    assert_eq!(setup.fake.writes(), writes);
}

/// With `[store] kubernetes = true`, `tier apply` puts the runtime config store beside the
/// services: its tokens are the ones in `.tier/prod/tokens.json` (made by the apply), sent
/// only over the API, and every service finds the store by its cluster name with the
/// read-only token.
#[test]
fn apply_runs_the_store_beside_the_services_with_the_environments_tokens() {
    let project = TestContext::with_files(&[(
        "tier.toml",
        &format!("{SHOP}\n[store]\nkubernetes = true\n"),
    )]);
    let setup = Setup::new(project, "prod-admin");
    let tokens_path = setup.context.path().join(".tier/prod/tokens.json");
    assert!(!tokens_path.exists());

    let rendered = setup.run(&["render", "prod", "--format", "k8s"], 0);
    assert_eq!(
        rendered.stdout.matches("<generated by tier apply>").count(),
        2,
        "{}",
        rendered.stdout
    );
    assert!(
        !tokens_path.exists(),
        "render without --include-secrets makes no tokens"
    );

    let run = setup.run(&["apply", "prod"], 0);
    assert!(
        run.stderr.contains("runtime config store: tier-store"),
        "{}",
        run.stderr
    );
    let store_done = run
        .stderr
        .find("tier-store: rolled out: 1/1 available")
        .unwrap_or_else(|| panic!("the store rolled out: {}", run.stderr));
    let first_wave = run.stderr.find("wave 1: api").expect("a first wave");
    assert!(store_done < first_wave, "{}", run.stderr);

    let text = std::fs::read_to_string(&tokens_path).expect("the apply made the tokens file");
    let mode = std::fs::metadata(&tokens_path)
        .map(|meta| std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777)
        .expect("the file's mode");
    assert_eq!(mode, 0o600);
    let tokens: serde_json::Value = serde_json::from_str(&text).expect("the tokens are JSON");
    let read_only = tokens["read_only"].as_str().expect("a read-only token");
    let read_write = tokens["read_write"].as_str().expect("a read-write token");
    assert!(read_only.starts_with("tier_prod_ro_"), "{read_only}");
    let printed = format!("{}{}", run.stdout, run.stderr);
    assert!(!printed.contains(read_only) && !printed.contains(read_write));

    let fake = &setup.fake;
    let secret = fake
        .get("secrets", "shop-prod", "tier-store-tokens")
        .expect("the store's Secret is on the cluster");
    let decoded = |key: &str| {
        let encoded = secret["data"][key].as_str().unwrap_or_default();
        let bytes = base64_decode(encoded);
        String::from_utf8(bytes).expect("UTF-8")
    };
    assert_eq!(decoded("tokens.json"), text);
    assert_eq!(decoded("read-only"), read_only);
    assert_eq!(
        fake.names("deployments", "shop-prod"),
        ["api", "tier-store", "web", "worker"]
    );
    assert_eq!(
        fake.names("services", "shop-prod"),
        ["api", "tier-store", "web", "web-external", "worker"]
    );
    let store = fake
        .get("deployments", "shop-prod", "tier-store")
        .expect("the store's Deployment");
    let container = &store["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        concat!("tier:", env!("CARGO_PKG_VERSION"))
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert_eq!(
        args.join(" "),
        "store serve --backend etcd://etcd:2379/tier/shop/prod --env prod --listen 0.0.0.0:7379 --tokens /etc/tier-store/tokens.json"
    );
    for service in ["api", "web", "worker"] {
        let deployment = fake
            .get("deployments", "shop-prod", service)
            .expect("the service's Deployment");
        let vars = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let var = |name: &str| {
            vars.iter()
                .find(|var| var["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{service} has no {name}: {vars:?}"))
        };
        assert_eq!(
            var("TIER_AGENT_URL")["value"],
            "http://tier-store.shop-prod.svc.cluster.local:7379"
        );
        assert_eq!(
            var("TIER_TOKEN")["valueFrom"]["secretKeyRef"],
            serde_json::json!({ "name": "tier-store-tokens", "key": "read-only" })
        );
    }

    // A second apply keeps the tokens and the store's objects.
    setup.run(&["apply", "prod"], 0);
    assert_eq!(
        std::fs::read_to_string(&tokens_path).expect("the tokens file"),
        text
    );
    assert!(fake.get("deployments", "shop-prod", "tier-store").is_some());

    // `render --include-secrets` shows the tokens the cluster has; `--out` never writes them.
    let with_tokens = setup.run(
        &["render", "prod", "--format", "k8s", "--include-secrets"],
        0,
    );
    assert!(
        with_tokens
            .stdout
            .contains(secret["data"]["read-only"].as_str().unwrap_or("<none>")),
        "{}",
        with_tokens.stdout
    );
    let dir = setup.context.path().join("manifests");
    let dir_arg = dir.display().to_string();
    setup.run(&["render", "prod", "--format", "k8s", "--out", &dir_arg], 0);
    let written =
        std::fs::read_to_string(dir.join("secret-tier-store-tokens.yaml")).expect("the file");
    assert!(
        written.contains("read-only: <generated by tier apply>"),
        "{written}"
    );
    assert!(!written.contains(read_only) && !written.contains(read_write));
}

/// Standard base64 (RFC 4648, with padding), as the API server encodes a Secret's data.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes().filter(|byte| *byte != b'=') {
        let value = ALPHABET
            .iter()
            .position(|candidate| *candidate == byte)
            .unwrap_or_else(|| panic!("`{text}` is not base64"));
        buffer = (buffer << 6) | u32::try_from(value).unwrap_or_default();
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).unwrap_or_default());
        }
    }
    out
}

#[test]
fn extra_manifests_service_accounts_and_patches_reach_the_cluster_and_are_pruned() {
    let project = TestContext::with_files(&[
        (
            "tier.toml",
            &SHOP.replace(
                "[services.api]\n",
                "[services.api]\nservice_account = \"api\"\nmanifests = [\"extra/\"]\npatches = [\"api-patch.yaml\"]\n",
            ),
        ),
        (
            "extra/table.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: feature-table\ndata:\n  rows: \"3\"\n",
        ),
        (
            "api-patch.yaml",
            "spec:\n  template:\n    spec:\n      nodeSelector:\n        pool: api\n",
        ),
    ]);
    let setup = Setup::new(project, "prod-admin");
    setup.run(&["apply", "prod"], 0);
    let fake = &setup.fake;
    let table = fake
        .get("configmaps", "shop-prod", "feature-table")
        .expect("the extra object is applied");
    assert_eq!(table["metadata"]["labels"]["tier.dev/environment"], "prod");
    assert_eq!(table["data"]["rows"], "3");
    let account = fake
        .get("serviceaccounts", "shop-prod", "api")
        .expect("the service account");
    assert_eq!(account["automountServiceAccountToken"], false);
    let api = fake
        .get("deployments", "shop-prod", "api")
        .expect("the api Deployment");
    assert_eq!(
        api["spec"]["template"]["spec"]["nodeSelector"]["pool"], "api",
        "the patch reached the cluster"
    );
    assert_eq!(api["spec"]["template"]["spec"]["serviceAccountName"], "api");

    setup.context.write("tier.toml", SHOP);
    let run = setup.run(&["apply", "prod"], 0);
    assert!(
        run.stderr
            .contains("pruned ConfigMap shop-prod/feature-table")
            && run.stderr.contains("pruned ServiceAccount shop-prod/api"),
        "{}",
        run.stderr
    );
    assert!(
        fake.get("configmaps", "shop-prod", "feature-table")
            .is_none()
    );
    assert!(fake.get("serviceaccounts", "shop-prod", "api").is_none());
    let api = fake
        .get("deployments", "shop-prod", "api")
        .expect("the api Deployment");
    assert!(api["spec"]["template"]["spec"]["nodeSelector"].is_null());
}
