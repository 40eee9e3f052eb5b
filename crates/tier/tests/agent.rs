//! The agent process itself (`tier agent`, and `tier up` in the foreground) when it cannot
//! start after its checks passed: it says why and exits 1, leaving no control socket behind.

use tier_test::TestProject;

const PROJECT: &str = r#"[project]
name = "shop"

[environments.dev]

[services.web]
command = ["sleep", "30"]
port = 8080
"#;

/// A project whose store file cannot be opened: a directory stands where it belongs.
fn project_with_a_broken_store() -> TestProject {
    let project = TestProject::with_files(&[("tier.toml", PROJECT)]);
    std::fs::create_dir_all(project.path().join(".tier/dev/store.redb"))
        .expect("a directory where the store file goes");
    project
}

#[test]
fn the_agent_command_exits_1_when_the_store_cannot_open() {
    let project = project_with_a_broken_store();
    let output = project
        .tier()
        .args(["agent", "dev"])
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .expect("run tier agent");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.starts_with("error: dev: runtime config store: store file ")
            && stderr.contains("store.redb"),
        "stderr: {stderr}"
    );
    assert!(!project.path().join(".tier/dev/agent.sock").exists());
}

#[test]
fn a_foreground_up_exits_1_when_the_store_cannot_open() {
    let project = project_with_a_broken_store();
    let output = project
        .tier()
        .args(["up", "dev"])
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .expect("run tier up");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("error: dev: runtime config store: store file "),
        "stderr: {stderr}"
    );
    assert!(!project.path().join(".tier/dev/agent.sock").exists());
}

/// db never becomes ready (nothing listens on its port); api needs no port and depends on it.
const WAVES: &str = r#"[project]
name = "shop"

[environments.dev]

[environments.stage]

[services.db]
command = ["sleep", "60"]
port = 8080

[services.api]
command = ["sleep", "60"]
port = 8081
service = false
depends_on = ["db"]
"#;

/// Stops the environments a test started, however the test ends.
struct Running<'a> {
    project: &'a TestProject,
    envs: Vec<&'static str>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        for env in &self.envs {
            let _ = self.project.tier().args(["down", env]).output();
        }
    }
}

/// The state and reason `tier status` gives a service.
fn state_of(project: &TestProject, env: &str, service: &str) -> (String, String) {
    let output = project
        .tier()
        .args(["status", env, "--output", "json"])
        .output()
        .expect("run tier status");
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    value[0]["status"]["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["name"] == service)
        .map(|entry| {
            (
                entry["state"].as_str().unwrap_or_default().to_owned(),
                entry["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .unwrap_or_default()
}

#[test]
fn with_ordering_off_a_service_starts_before_its_dependency_is_ready() {
    let project = TestProject::with_files(&[
        ("tier.toml", WAVES),
        ("envs/dev.toml", "[project]\nordering = false\n"),
    ]);
    let _running = Running {
        project: &project,
        envs: vec!["dev", "stage"],
    };
    for env in ["dev", "stage"] {
        let output = project
            .tier()
            .args(["up", env, "-d", "--no-wait"])
            .output()
            .expect("run tier up");
        assert!(output.status.success(), "{output:?}");
    }
    tier_test::wait_for(
        std::time::Duration::from_secs(20),
        "api to run in dev while db is not ready",
        || state_of(&project, "dev", "api").0 == "running",
    );
    assert_eq!(state_of(&project, "dev", "db").0, "starting");
    tier_test::wait_for(
        std::time::Duration::from_secs(20),
        "stage's agent to answer",
        || !state_of(&project, "stage", "api").0.is_empty(),
    );
    let (state, reason) = state_of(&project, "stage", "api");
    assert_eq!(state, "waiting", "with ordering on, api waits for db");
    assert!(reason.starts_with("waiting for db: 0/1 ready"), "{reason}");
}
