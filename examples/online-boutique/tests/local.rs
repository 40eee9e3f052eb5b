//! The workload fields on the local runtime, end to end: the real `tier` binary, real agents
//! and the real `boutique-standin` processes (gRPC servers with the standard health service,
//! a TCP listener, an HTTP page). Every test picks its own host ports and stops what it
//! started, even when it fails.

use std::path::Path;
use std::time::Duration;

use tier_test::{RunningEnv, TestProject, free_port, http_get, wait_for};

fn boutique() -> TestProject {
    TestProject::example("examples/online-boutique", &["boutique-standin"])
}

fn service<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["services"]
        .as_array()
        .and_then(|services| services.iter().find(|service| service["name"] == name))
        .unwrap_or_else(|| panic!("{name} is in the status: {status}"))
}

#[test]
fn dev_runs_every_service_and_the_frontend_reaches_each_by_its_address() {
    let project = boutique();
    let port = free_port();
    let env = RunningEnv::up(
        &project,
        "dev",
        &[&format!("services.frontend.expose={port}")],
    );
    let status = env.status();
    let services = status["services"].as_array().expect("services");
    assert_eq!(services.len(), 12, "{status}");
    for entry in services {
        assert_eq!(
            entry["ready"], entry["desired"],
            "{} is ready by its probe: {entry}",
            entry["name"]
        );
    }

    let (code, page) = http_get(port, "/");
    assert_eq!(code, 200, "{page}");
    let lines: Vec<&str> = page.lines().skip(1).collect();
    assert_eq!(
        lines.len(),
        7,
        "one line per address the frontend is given:\n{page}"
    );
    for line in &lines {
        let mut words = line.split_whitespace();
        let (variable, address, answer) = (words.next(), words.next(), words.next());
        let target = variable
            .and_then(|variable| variable.strip_suffix("_ADDR"))
            .map(|name| name.replace('_', "").to_ascii_lowercase())
            .expect("an address variable");
        let url = service(&status, &target)["url"]
            .as_str()
            .expect("a proxy url")
            .to_owned();
        assert_eq!(
            address.map(|address| format!("tcp://{address}")),
            Some(url),
            "${{services.{target}.address}} is {target}'s local proxy"
        );
        assert_eq!(answer, Some("SERVING"), "{line}");
    }

    // The worker has no Service: it is ready while it runs, and calls the frontend.
    let worker = service(&status, "loadgenerator");
    assert_eq!(worker["ready"], 1, "{worker}");
    wait_for(
        Duration::from_secs(10),
        "the load generator's requests",
        || {
            std::fs::read_to_string(project.path().join(".tier/dev/logs/loadgenerator-1.log"))
                .is_ok_and(|log| log.contains("HTTP/1.1 200 OK"))
        },
    );
}

/// A project of stand-ins for the probe kinds and volumes, written in the test.
fn probes_project() -> TestProject {
    let project = TestProject::with_files(&[
        (
            "tier.toml",
            r#"[project]
name = "probes"

[environments.dev]
runtime = "local"

# A gRPC server; its liveness is a command that fails while the file `wedged` exists.
[services.orders]
command = ["target/release/boutique-standin"]
protocol = "tcp"
port = 9000
health = { grpc = 9000, interval = "200ms" }
liveness = { exec = ["sh", "-c", "test ! -e wedged"], interval = "200ms", failure_threshold = 2 }
volumes = { data = { mount = "/data", claim = { size = "1Gi" } }, scratch = { mount = "/tmp", empty_dir = {} } }

# Serving from the start, but not ready until its startup probe (a file) passes.
[services.catalog]
command = ["target/release/boutique-standin"]
protocol = "tcp"
port = 9100
health = { grpc = 9100, interval = "200ms" }
startup = { exec = ["test", "-e", "warmed-up"], interval = "200ms", failure_threshold = 1000 }

# The gRPC health answer follows a file: `down` makes it NOT_SERVING.
[services.payments]
command = ["target/release/boutique-standin"]
protocol = "tcp"
port = 9200
env = { STANDIN_HEALTH_FILE = "payments-health" }
health = { grpc = 9200, interval = "200ms", failure_threshold = 2 }
liveness = { tcp = 9200 }
"#,
        ),
        ("payments-health", "up"),
    ]);
    project.link_binaries(&["boutique-standin"]);
    project
}

fn replica(status: &serde_json::Value, name: &str) -> serde_json::Value {
    service(status, name)["replicas"][0].clone()
}

#[test]
fn grpc_exec_startup_and_liveness_probes_act_on_real_processes() {
    let project = probes_project();
    let env = RunningEnv::up_no_wait(&project, "dev", &[]);
    wait_for(Duration::from_secs(15), "orders and payments ready", || {
        let status = env.status();
        service(&status, "orders")["ready"] == 1 && service(&status, "payments")["ready"] == 1
    });

    // The startup probe holds readiness although the gRPC health check would pass.
    wait_for(
        Duration::from_secs(10),
        "catalog's startup probe run",
        || {
            replica(&env.status(), "catalog")["last_probe"]
                .as_str()
                .is_some_and(|probe| probe.starts_with("startup:"))
        },
    );
    let held = env.status();
    let catalog = replica(&held, "catalog");
    assert_ne!(catalog["phase"], "ready", "{catalog}");
    assert!(
        catalog["last_probe"]
            .as_str()
            .is_some_and(|probe| probe.starts_with("startup:")),
        "the replica says it waits on its startup probe: {catalog}"
    );
    std::fs::write(project.path().join("warmed-up"), "").expect("pass the startup probe");
    wait_for(
        Duration::from_secs(10),
        "catalog ready after its startup probe",
        || service(&env.status(), "catalog")["ready"] == 1,
    );

    // A failing gRPC health answer takes a replica out of rotation; its liveness (TCP)
    // still passes, so it is not restarted.
    let before = replica(&env.status(), "payments");
    std::fs::write(project.path().join("payments-health"), "down").expect("mark it down");
    wait_for(Duration::from_secs(10), "payments not ready", || {
        service(&env.status(), "payments")["ready"] == 0
    });
    let unready = replica(&env.status(), "payments");
    assert!(
        unready["last_probe"]
            .as_str()
            .is_some_and(|probe| probe.contains("NOT_SERVING")),
        "{unready}"
    );
    assert_eq!(
        unready["pid"], before["pid"],
        "readiness never restarts: {unready}"
    );
    std::fs::write(project.path().join("payments-health"), "up").expect("mark it up");
    wait_for(Duration::from_secs(10), "payments ready again", || {
        service(&env.status(), "payments")["ready"] == 1
    });

    // A failing liveness command restarts the replica.
    let before = replica(&env.status(), "orders");
    std::fs::write(project.path().join("wedged"), "").expect("wedge it");
    wait_for(Duration::from_secs(10), "orders restarted", || {
        let now = replica(&env.status(), "orders");
        now["restarts"].as_u64() > before["restarts"].as_u64() && now["pid"] != before["pid"]
    });
    std::fs::remove_file(project.path().join("wedged")).expect("unwedge it");
    let restarted = replica(&env.status(), "orders");
    assert!(
        restarted["last_exit"]
            .as_str()
            .is_some_and(|exit| exit.contains("liveness probe failed 2 times")),
        "{restarted}"
    );
    wait_for(
        Duration::from_secs(10),
        "orders ready after its restart",
        || service(&env.status(), "orders")["ready"] == 1,
    );
}

#[test]
fn a_claim_outlives_a_restart_and_an_empty_dir_does_not() {
    let project = probes_project();
    std::fs::write(project.path().join("warmed-up"), "").expect("no startup wait");
    let env = RunningEnv::up(&project, "dev", &[]);
    let volumes = project.path().join(".tier/dev/volumes/orders");
    let claim = volumes.join("data");
    let scratch = volumes.join("scratch-1");
    assert!(claim.is_dir() && scratch.is_dir(), "both volumes exist");
    std::fs::write(claim.join("kept"), "1").expect("write into the claim");
    std::fs::write(scratch.join("lost"), "1").expect("write into the empty dir");

    let before = replica(&env.status(), "orders");
    let pid = before["pid"].as_i64().expect("a pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the replica");
    wait_for(Duration::from_secs(15), "orders back after SIGKILL", || {
        let now = replica(&env.status(), "orders");
        now["pid"] != before["pid"] && now["phase"] == "ready"
    });
    assert!(
        claim.join("kept").is_file(),
        "a claim is kept across restarts"
    );
    assert!(scratch.is_dir(), "the empty dir is made again");
    assert!(!scratch.join("lost").exists(), "an empty dir starts empty");
    assert_variable(&project, "TIER_VOLUME_DATA", &claim);
}

/// The replica got the volume's directory in the variable (its mount path is for
/// kubernetes; a local process cannot mount).
fn assert_variable(project: &TestProject, variable: &str, path: &Path) {
    let status = project
        .tier()
        .args(["status", "dev", "--output", "json"])
        .output()
        .expect("status");
    let all: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    let pid = all[0]["status"]["services"]
        .as_array()
        .and_then(|services| services.iter().find(|service| service["name"] == "orders"))
        .and_then(|service| service["replicas"][0]["pid"].as_u64())
        .expect("orders' pid");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("the replica's environment");
    let wanted = format!("{variable}={}", path.display());
    assert!(
        environ
            .split(|byte| *byte == 0)
            .any(|entry| entry == wanted.as_bytes()),
        "{wanted} is in the replica's environment"
    );
}

#[test]
fn unset_in_an_override_file_removes_a_key_and_explain_names_the_line() {
    let project = boutique();
    let rendered = project
        .tier()
        .args(["render", "dev", "--output", "json"])
        .output()
        .expect("render");
    assert!(rendered.status.success());
    let value: serde_json::Value = serde_json::from_slice(&rendered.stdout).expect("json");
    let frontend = &value["services"]["frontend"];
    assert!(
        frontend["health"].get("initial_delay").is_none(),
        "{frontend}"
    );
    assert_eq!(frontend["expose"], 8090);

    project.write(
        "envs/stage.toml",
        "[services.frontend]\nunset = [\"expose\", \"pod_annotations\"]\n",
    );
    let explain = project
        .tier()
        .args(["explain", "stage", "services.frontend.expose"])
        .output()
        .expect("explain");
    assert_eq!(
        String::from_utf8_lossy(&explain.stdout),
        "services.frontend.expose is removed\n  by envs/stage.toml:2:10\n  overriding 80 from tier.toml:128:10\n"
    );
    let rendered = project
        .tier()
        .args(["render", "stage", "--format", "k8s"])
        .output()
        .expect("render k8s");
    let yaml = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        !yaml.contains("frontend-external"),
        "no LoadBalancer without expose"
    );
    assert_eq!(
        yaml.matches("rewriteAppHTTPProbers").count(),
        1,
        "the frontend's pod annotation is gone; the load generator keeps its own"
    );
}

#[test]
fn explain_and_diff_name_each_patch_its_line_and_what_it_changes() {
    let project = boutique();
    let explain = project
        .tier()
        .args(["explain", "prod-us", "patches"])
        .output()
        .expect("explain");
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(explain.status.success(), "{text}");
    assert!(text.contains("  from envs/prod-us.toml:4:11\n"), "{text}");
    assert!(
        text.contains(
            "  patch patches/prod-us-spread.yaml (envs/prod-us.toml:4:12) changes Deployment/frontend: /spec/template/spec/topologySpreadConstraints\n"
        ),
        "{text}"
    );

    let diff = project
        .tier()
        .args(["diff", "prod-eu", "prod-us", "--output", "json"])
        .output()
        .expect("diff");
    let differences: serde_json::Value = serde_json::from_slice(&diff.stdout).expect("json");
    let patches = differences["differences"]
        .as_array()
        .and_then(|all| all.iter().find(|entry| entry["path"] == "patches"))
        .expect("the patches differ");
    assert_eq!(
        patches["left_origin"], "envs/prod-eu.toml:4:11",
        "{patches}"
    );
    assert_eq!(
        patches["right_origin"], "envs/prod-us.toml:4:11",
        "{patches}"
    );
}
