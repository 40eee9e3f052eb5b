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
