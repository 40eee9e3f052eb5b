//! A kubernetes environment's records live in its cluster: two machines (two copies of one
//! project, two users, two home directories) against one API server share one history and
//! one lock; a killed apply's lease expires; a kill at any point leaves no revision half
//! written; an API server that does not answer records nothing and is named.
//!
//! The API server is `tier_test::fake_kube::FakeKube` (no cluster can run here); it keeps
//! Leases, Secrets and ConfigMaps with the resourceVersion conflicts of a real one. The
//! binary, kube-rs and every request are real. With `TIER_TEST_KUBECONFIG` naming a
//! kubeconfig, the tests that need nothing but the API (history and lock, killed applies,
//! leases, drift) run against that cluster instead, each in a namespace of its own
//! (`tier_test::api_server`); the others need the fake (its pod logs, its request log, a
//! server that stops answering).

use std::time::{Duration, Instant};

use tier_test::api_server::ApiServer;
use tier_test::fake_kube::FakeKube;
use tier_test::{FollowedChild, Run, TestContext, wait_for};

const PROJECT: &str = r#"[project]
name = "shop"

[environments.prod]
runtime = "kubernetes"
kube = { context = "prod-admin", namespace = "shop-prod" }

[services.api]
command = ["api"]
image = "shop-api:1.0"
port = 8080
replicas = 2

[services.web]
command = ["web"]
image = "shop-web:1.0"
port = 8081
depends_on = ["api"]
"#;

/// One copy of the project on one "machine": its own directory, home and user.
struct Machine {
    context: TestContext,
    home: tempfile::TempDir,
    user: &'static str,
}

impl Machine {
    /// A machine whose project deploys to `namespace` on `server`.
    fn new(server: &ApiServer, namespace: &str, user: &'static str) -> Machine {
        // tier prunes its labelled objects in every namespace, so on a shared cluster each
        // test's project has a name of its own too.
        let text = PROJECT
            .replace("name = \"shop\"", &format!("name = \"{namespace}\""))
            .replace("shop-prod", namespace)
            .replace("shop-api:1.0", &server.image("shop-api:1.0"))
            .replace("shop-web:1.0", &server.image("shop-web:1.0"));
        let mut context = TestContext::with_files(&[("tier.toml", text.as_str())]);
        let home = tempfile::tempdir().expect("a home directory");
        std::fs::create_dir_all(home.path().join(".kube")).expect("~/.kube");
        server.write_kubeconfig(&home.path().join(".kube/config"), "prod-admin");
        context
            .env("HOME", home.path())
            .env("USER", user)
            .env_remove("KUBECONFIG")
            .env("TIER_LEASE_DURATION", "1");
        Machine {
            context,
            home,
            user,
        }
    }

    fn tier(&self, args: &[&str]) -> Run {
        self.context.tier(args)
    }

    fn ok(&self, args: &[&str]) -> Run {
        let run = self.tier(args);
        assert_eq!(run.code, 0, "{} tier {args:?}\n{run}", self.user);
        run
    }

    fn history(&self) -> serde_json::Value {
        let run = self.ok(&["history", "prod", "--output", "json"]);
        serde_json::from_str(&run.stdout).expect("history as JSON")
    }

    /// Starts `tier apply prod` in the background.
    fn spawn(&self, sets: &[&str]) -> FollowedChild {
        let mut args = vec!["apply", "prod"];
        for set in sets {
            args.extend(["--set", set]);
        }
        self.context.spawn(&args)
    }

    /// Applies, retrying while a killed holder's lease has not expired yet (bounded).
    fn apply_when_free(&self) -> Run {
        let mut last = None;
        wait_for(Duration::from_secs(20), "the lock to be free", || {
            let run = self.tier(&["apply", "prod"]);
            let done = run.code == 0 || !run.stderr.contains("locked");
            last = Some(run);
            done
        });
        last.expect("an apply ran")
    }
}

/// Lets `ms` pass: where a kill lands in an apply, and a killed holder's lease running out.
#[expect(
    clippy::disallowed_methods,
    reason = "the pause is the point: it places a SIGKILL, or outlasts a lease"
)]
fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Waits (bounded) until the fake holds the environment's lease.
fn wait_for_lease(server: &ApiServer, namespace: &str) -> serde_json::Value {
    let mut lease = None;
    wait_for(
        Duration::from_secs(30),
        "the apply to take the lock",
        || {
            lease = server.get("leases", namespace, "tier.prod.lock");
            lease.is_some()
        },
    );
    lease.unwrap_or_default()
}

#[test]
fn two_machines_share_one_history_and_one_lock() {
    let fake = ApiServer::for_test();
    let ns = fake.namespace("shop-prod");
    let alice = Machine::new(&fake, &ns, "alice");
    let bob = Machine::new(&fake, &ns, "bob");

    let applied = alice.ok(&["apply", "prod"]);
    assert!(applied.stdout.contains("prod: revision 1 deployed"));
    // Bob's machine sees Alice's revision, and nothing left to do.
    let history = bob.history();
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history:#}");
    assert!(
        history[0]["who"]
            .as_str()
            .is_some_and(|who| who.starts_with("alice")),
        "{history:#}"
    );
    assert_eq!(history[0]["outcome"]["status"], "succeeded");
    let plan = bob.ok(&["plan", "prod"]);
    assert!(
        plan.stdout.contains("No changes: prod matches revision 1."),
        "{}",
        plan.stdout
    );

    // While Alice's apply runs (its rollout never finishes), Bob is refused, by name.
    let running = alice.spawn(&["services.api.image=shop-api:2.0-hold"]);
    let lease = wait_for_lease(&fake, &ns);
    wait_for(
        Duration::from_secs(30),
        "the apply to record revision 2",
        || fake.get("secrets", ns.as_str(), "tier.prod.v2").is_some(),
    );
    assert!(
        lease["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|holder| holder.starts_with("alice@")),
        "{lease:#}"
    );
    let refused = bob.tier(&["apply", "prod"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("prod is locked")
            && refused.stderr.contains("`tier apply prod`")
            && refused.stderr.contains("on alice@"),
        "{}",
        refused.stderr
    );
    let unlock = bob.tier(&["unlock", "prod"]);
    assert_eq!(unlock.code, 1, "{}", unlock.stderr);
    assert!(
        unlock.stderr.contains("the lock was not broken"),
        "{}",
        unlock.stderr
    );

    // Alice's apply is killed: its lease expires and Bob's apply goes through.
    drop(running);
    let after = bob.apply_when_free();
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert!(
        after.stdout.contains("prod: revision 3 deployed"),
        "{}",
        after.stdout
    );
    let history = alice.history();
    let outcomes: Vec<&str> = history
        .as_array()
        .into_iter()
        .flatten()
        .map(|revision| revision["outcome"]["status"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        outcomes,
        ["succeeded", "in_progress", "succeeded"],
        "{history:#}"
    );
    assert!(
        history[2]["who"]
            .as_str()
            .is_some_and(|who| who.starts_with("bob"))
    );
    let text = alice.ok(&["history", "prod"]);
    assert!(
        text.stdout.contains("in progress or interrupted"),
        "{}",
        text.stdout
    );
    assert_eq!(
        fake.names("leases", ns.as_str()),
        Vec::<String>::new(),
        "released"
    );
}

#[test]
fn a_killed_apply_never_leaves_a_half_written_revision() {
    let fake = ApiServer::for_test();
    let ns = fake.namespace("shop-prod");
    let machine = Machine::new(&fake, &ns, "alice");
    let started = Instant::now();
    machine.ok(&["apply", "prod"]);
    // Kill points spread over a whole apply's length, from before the lock to after the end.
    let length = started.elapsed().as_millis() as u64 + 100;
    for run in 0..20u64 {
        let replicas = format!("services.api.replicas={}", 2 + run % 3);
        let child = machine.spawn(&[replicas.as_str()]);
        pause(length * run / 19);
        drop(child);
        // A killed holder's lease (one second) expires before the next run starts.
        if fake.get("leases", ns.as_str(), "tier.prod.lock").is_some() {
            pause(1100);
        }
        // Every revision reads back whole, numbered without gaps, and the index never points
        // past what exists.
        let history = machine.history();
        let revisions = history.as_array().cloned().unwrap_or_default();
        for (at, revision) in revisions.iter().enumerate() {
            assert_eq!(revision["number"], at as u64 + 1, "run {run}: {history:#}");
        }
        let index = fake
            .get("configmaps", ns.as_str(), "tier.prod.index")
            .expect("the index");
        let number = |key: &str| {
            index["data"][key]
                .as_str()
                .and_then(|text| text.parse::<usize>().ok())
        };
        assert!(number("last").unwrap_or(0) <= revisions.len(), "{index:#}");
        if let Some(deployed) = number("deployed") {
            assert_eq!(
                revisions[deployed - 1]["outcome"]["status"],
                "succeeded",
                "run {run}: the index points at revision {deployed}: {history:#}"
            );
        }
    }
    // The next apply proceeds once the killed holder's lease expired, and brings the index
    // back in line with the revisions.
    let run = machine.apply_when_free();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let history = machine.history();
    let revisions = history.as_array().cloned().unwrap_or_default();
    let last = revisions.len();
    assert_eq!(revisions[last - 1]["outcome"]["status"], "succeeded");
    let interrupted = revisions
        .iter()
        .filter(|revision| revision["outcome"]["status"] == "in_progress")
        .count();
    // The kills landed inside applies (revisions begun and never finished), not only before
    // or after them.
    assert!(interrupted > 0, "{history:#}");
    eprintln!("{} revisions, {interrupted} interrupted", revisions.len());
    let index = fake
        .get("configmaps", ns.as_str(), "tier.prod.index")
        .expect("the index");
    assert_eq!(index["data"]["last"], last.to_string(), "{index:#}");
    assert_eq!(index["data"]["deployed"], last.to_string(), "{index:#}");
}

#[test]
fn an_api_server_that_does_not_answer_is_named_and_nothing_is_recorded() {
    let api = ApiServer::Fake(FakeKube::start());
    let fake = api.fake().expect("the fake");
    let machine = Machine::new(&api, "shop-prod", "alice");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port");
    let config = machine.home.path().join(".kube/config");
    let text = std::fs::read_to_string(&config).expect("the kubeconfig");
    std::fs::write(
        &config,
        text.replace(&fake.url(), &format!("http://127.0.0.1:{port}")),
    )
    .expect("point the kubeconfig at nothing");
    for args in [
        &["apply", "prod"][..],
        &["plan", "prod"],
        &["history", "prod"],
    ] {
        let run = machine.tier(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains(&format!("the API server http://127.0.0.1:{port}"))
                && run.stderr.contains("kube context `prod-admin`")
                && run.stderr.contains("kubeconfig ~/.kube/config")
                && run.stderr.contains("does not answer"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("`kubectl --context prod-admin version`"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("revision"), "{}", run.stderr);
    }
    assert!(
        !machine
            .context
            .path()
            .join(".tier/prod/state.redb")
            .exists()
    );
    assert!(fake.requests().is_empty());
}

#[test]
fn a_state_file_of_a_kubernetes_environment_moves_into_the_cluster_once() {
    let api = ApiServer::Fake(FakeKube::start());
    let fake = api.fake().expect("the fake");
    let machine = Machine::new(&api, "shop-prod", "alice");
    // Two revisions recorded on this machine by an earlier tier, which kept them in a file.
    let spec: serde_json::Value =
        serde_json::from_str(&machine.ok(&["render", "prod", "--format", "json"]).stdout)
            .expect("the environment as JSON");
    let dir = machine.context.path().join(".tier/prod");
    let state = tier_state::State::open(&dir).expect("a state file");
    let lock = state
        .lock(tier_state::Holder::this_process("tier apply prod", 0))
        .expect("its lock");
    for _ in 0..2 {
        let number = lock
            .begin(
                &spec,
                &Default::default(),
                "alice@laptop",
                tier_state::Origin::Apply,
            )
            .expect("a revision");
        lock.finish(number, tier_state::Outcome::Succeeded)
            .expect("finished");
    }
    lock.release().expect("released");

    let run = machine.ok(&["apply", "prod"]);
    assert!(
        run.stderr.contains(&format!(
            "prod: moved 2 revisions from {} into the cluster (namespace shop-prod on {})",
            dir.join("state.redb").display(),
            fake.url()
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("prod: revision 3 deployed"),
        "{}",
        run.stdout
    );
    assert!(!dir.join("state.redb").exists());
    assert!(dir.join("state.redb.moved").exists());
    let history = machine.history();
    let who: Vec<&str> = history
        .as_array()
        .into_iter()
        .flatten()
        .map(|revision| revision["who"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(&who[..2], ["alice@laptop", "alice@laptop"], "{history:#}");
    // Once: the next apply moves nothing.
    let again = machine.ok(&["apply", "prod"]);
    assert!(!again.stderr.contains("moved"), "{}", again.stderr);
}

#[test]
fn a_live_lease_is_broken_only_when_confirmed_and_an_expired_one_is_taken_over() {
    let fake = ApiServer::for_test();
    let ns = fake.namespace("shop-prod");
    let machine = Machine::new(&fake, &ns, "alice");
    machine.ok(&["apply", "prod"]);
    let lease = |renewed: &str| {
        serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": "tier.prod.lock",
                "namespace": ns.as_str(),
                "annotations": {"tier.dev/holder": serde_json::json!({
                    "pid": 4242, "host": "elsewhere", "user": "carol",
                    "command": "tier apply prod", "since_unix_ms": 0,
                }).to_string()},
            },
            "spec": {
                "holderIdentity": "carol@elsewhere",
                "leaseDurationSeconds": 3600,
                "renewTime": renewed,
            },
        })
    };
    let now = tier_state::system_clock() / 1000;
    let stamp = tier_test::fake_kube::rfc3339;
    fake.insert("leases", lease(&stamp(now)));
    let refused = machine.tier(&["apply", "prod"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("(pid 4242 on carol@elsewhere) is changing it"),
        "{}",
        refused.stderr
    );
    let kept = machine.tier(&["unlock", "prod"]);
    assert_eq!(kept.code, 1, "{}", kept.stderr);
    let broke = machine.ok(&["unlock", "prod", "--yes"]);
    assert!(
        broke
            .stderr
            .contains("broke the lock of `tier apply prod` (pid 4242)"),
        "{}",
        broke.stderr
    );
    machine.ok(&["apply", "prod"]);

    // A lease its holder stopped renewing two hours ago has expired: no unlock needed.
    fake.insert("leases", lease(&stamp(now - 7200)));
    let run = machine.ok(&["apply", "prod"]);
    assert!(run.stdout.contains("deployed"), "{}", run.stdout);
}

#[test]
fn drift_names_other_managers_edits_apart_from_what_controllers_own_and_remembers_since_when() {
    let fake = ApiServer::for_test();
    let ns = fake.namespace("shop-prod");
    let machine = Machine::new(&fake, &ns, "alice");
    machine.ok(&["apply", "prod"]);
    let clean = machine.ok(&["drift", "prod"]);
    assert_eq!(clean.stdout, "prod: no drift from revision 1\n");

    // Someone scales api by hand twelve minutes ago; an HPA scales web; web's Service is
    // deleted; api's image is changed.
    fake.edit(
        "deployments",
        ns.as_str(),
        "api",
        "kubectl-edit",
        720,
        |api| {
            api["spec"]["replicas"] = serde_json::json!(5);
        },
    );
    fake.insert(
        "horizontalpodautoscalers",
        serde_json::json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": ns.as_str()},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 4},
        }),
    );
    fake.edit(
        "deployments",
        ns.as_str(),
        "web",
        "kube-controller-manager",
        60,
        |web| {
            web["spec"]["replicas"] = serde_json::json!(4);
        },
    );
    fake.remove("services", ns.as_str(), "web");

    let run = machine.ok(&["drift", "prod"]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0], "prod: 2 differences from revision 1:",
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with("  Deployment api: spec.replicas 2 → 5 by manager kubectl-edit at 20"),
        "{}",
        run.stdout
    );
    assert_eq!(lines[2], "  Service web: deleted", "{}", run.stdout);
    assert!(!run.stdout.contains("Deployment web"), "{}", run.stdout);
    let all = machine.ok(&["drift", "prod", "--all"]);
    assert!(
        all.stdout
            .contains("Deployment web: spec.replicas 1 → 4 by manager kube-controller-manager")
            && all
                .stdout
                .contains("(expected: HorizontalPodAutoscaler web owns the replicas)"),
        "{}",
        all.stdout
    );
    // `tier status` shows each service's drift in its DRIFT column; the HPA's is not drift.
    let status = machine.ok(&["status", "prod"]);
    let row = |service: &str| {
        status
            .stdout
            .lines()
            .find(|line| line.starts_with(service))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(status.stdout.contains("DRIFT"), "{}", status.stdout);
    assert!(
        row("api").contains("Deployment spec.replicas edited"),
        "{}",
        status.stdout
    );
    assert!(
        row("web").contains("Service deleted") && !row("web").contains("more"),
        "{}",
        status.stdout
    );
    // The plan shows them apart from tier's own changes (there are none).
    let plan = machine.ok(&["plan", "prod"]);
    assert!(
        plan.stdout.contains("No changes: prod matches revision 1.")
            && plan
                .stdout
                .contains("Changed outside tier (`tier apply` puts these back):")
            && plan
                .stdout
                .contains("~ Deployment api: spec.replicas 2 → 5"),
        "{}",
        plan.stdout
    );
    let json: serde_json::Value =
        serde_json::from_str(&machine.ok(&["drift", "prod", "--output", "json"]).stdout)
            .expect("JSON");
    assert_eq!(json["drift"][0]["change"]["class"], "edited", "{json:#}");
    assert_eq!(json["drift"][0]["change"]["manager"], "kubectl-edit");
    assert_eq!(json["drift"][1]["change"]["class"], "deleted");

    fake.edit(
        "deployments",
        ns.as_str(),
        "api",
        "kubectl-set-image",
        0,
        |api| {
            api["spec"]["template"]["spec"]["containers"][0]["image"] =
                serde_json::json!("shop-api:hotfix");
        },
    );
    let image = machine.ok(&["drift", "prod"]);
    assert!(
        image.stdout.contains(
            &format!(
                "Deployment api: container api runs image shop-api:hotfix, the revision's is {} by manager kubectl-set-image",
                fake.image("shop-api:1.0")
            )
        ),
        "{}",
        image.stdout
    );

    // An apply puts tier's fields back; the history keeps when each drift was seen.
    machine.ok(&["apply", "prod"]);
    let after = machine.ok(&["drift", "prod"]);
    assert_eq!(
        after.stdout, "prod: no drift from revision 2\n",
        "{}",
        after.stdout
    );
    let history: serde_json::Value = serde_json::from_str(
        &machine
            .ok(&["drift", "prod", "--history", "--output", "json"])
            .stdout,
    )
    .expect("JSON");
    let records = history["history"].as_array().cloned().unwrap_or_default();
    assert_eq!(records.len(), 3, "{history:#}");
    for record in &records {
        assert!(record["gone_unix_ms"].is_u64(), "{history:#}");
        assert!(record["first_seen_unix_ms"].as_u64() <= record["last_seen_unix_ms"].as_u64());
    }
    let replicas = records
        .iter()
        .find(|record| record["key"] == format!("Deployment {ns}/api: spec.replicas"))
        .expect("the replicas record");
    assert!(
        replicas["first_seen_unix_ms"].as_u64() < replicas["last_seen_unix_ms"].as_u64(),
        "seen at several checks: {history:#}"
    );
    let text = machine.ok(&["drift", "prod", "--history"]);
    assert!(text.stdout.starts_with("FIRST SEEN"), "{}", text.stdout);
}

#[test]
fn logs_of_a_kubernetes_environment_come_from_its_pods_merged_and_prefixed() {
    let api = ApiServer::Fake(FakeKube::start());
    let fake = api.fake().expect("the fake");
    let machine = Machine::new(&api, "shop-prod", "alice");
    let none = machine.tier(&["logs", "prod"]);
    assert_eq!(none.code, 1, "{}", none.stderr);
    assert!(none.stderr.contains("prod: no pods"), "{}", none.stderr);
    machine.ok(&["apply", "prod"]);
    fake.log("shop-prod", "api-1-0", "listening on :8080");
    fake.log("shop-prod", "web-1-0", "ready");
    fake.log("shop-prod", "api-1-1", "listening on :8080 too");
    let all = machine.ok(&["logs", "prod"]);
    assert_eq!(
        all.stdout,
        "api-1-0 | listening on :8080\nweb-1-0 | ready\napi-1-1 | listening on :8080 too\n"
    );
    let last = machine.ok(&["logs", "prod", "--tail", "2", "--output", "json"]);
    let texts: Vec<String> = last
        .stdout
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            assert!(line["time"].is_string(), "the pod's time: {line}");
            format!("{} {}", line["source"], line["text"])
        })
        .collect();
    assert_eq!(
        texts,
        [
            r#""web-1-0" "ready""#,
            r#""api-1-1" "listening on :8080 too""#
        ]
    );
    let web = machine.ok(&["logs", "prod", "web", "--follow"]);
    assert_eq!(web.stdout, "web-1-0 | ready\n");
    let unknown = machine.tier(&["logs", "prod", "nope"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("no service `nope` in prod"),
        "{}",
        unknown.stderr
    );
}
