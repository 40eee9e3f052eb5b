//! `tier drift` and the DRIFT column of `tier status` on the local runtime, end to end with
//! the real binary and the sample app's processes: a config file edited after the apply, a
//! stored program replaced on disk, and a replica that should run and does not, each with
//! when it was first seen and, once it is gone, when it went.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tier_test::{TestProject, free_port, wait_for};

fn tier(project: &TestProject, args: &[&str]) -> (i32, String, String) {
    let output = project.tier().args(args).output().expect("run tier");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json(project: &TestProject, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    let (code, stdout, stderr) = tier(project, &args);
    assert_eq!(code, 0, "tier {args:?}: {stderr}");
    serde_json::from_str(&stdout).expect("JSON")
}

/// The classes of drift `tier drift dev` finds for `service`.
fn classes(project: &TestProject, service: &str) -> Vec<String> {
    let report = json(project, &["drift", "dev"]);
    report["drift"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|found| found["service"] == service)
        .filter_map(|found| found["change"]["class"].as_str().map(str::to_owned))
        .collect()
}

/// The row of `service` in `tier status dev`.
fn status_row(project: &TestProject, service: &str) -> String {
    let (code, stdout, stderr) = tier(project, &["status", "dev"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("DRIFT"), "{stdout}");
    stdout
        .lines()
        .find(|line| line.starts_with(service))
        .unwrap_or_default()
        .to_owned()
}

/// The stored copy under `.tier/artifacts/` with the same bytes as `program`.
fn stored_copy_of(project: &TestProject, program: &Path) -> PathBuf {
    let wanted = std::fs::read(program).expect("the program");
    std::fs::read_dir(project.path().join(".tier/artifacts"))
        .expect("the artifact store")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| std::fs::read(path).is_ok_and(|bytes| bytes == wanted))
        .expect("a stored copy of the program")
}

struct Down<'a>(&'a TestProject);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.tier().args(["down", "dev"]).output();
    }
}

#[test]
fn edited_config_a_replaced_program_and_a_replica_down_are_drift_with_their_times() {
    let project = TestProject::sample_app();
    let port = free_port();
    // The backend cannot start while the file `down` exists in the project.
    project.write(
        "envs/dev.toml",
        &format!(
            "[services.frontend]\nexpose = {port}\n\n[services.backend]\n\
             command = [\"sh\", \"-c\", \"if [ -e down ]; then echo down >&2; exit 1; fi; exec target/release/sample-backend\"]\n"
        ),
    );
    let (code, _, stderr) = tier(&project, &["apply", "dev"]);
    assert_eq!(code, 0, "{stderr}");
    let _down = Down(&project);

    let (code, stdout, stderr) = tier(&project, &["drift", "dev"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "dev: no drift from revision 1");
    assert!(
        status_row(&project, "frontend").trim_end().ends_with(" -"),
        "{}",
        status_row(&project, "frontend")
    );

    // The frontend's config file, edited by hand.
    let config = std::fs::read_dir(project.path().join(".tier/dev/config"))
        .expect("the config files")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("frontend-"))
        })
        .expect("the frontend's config file");
    let mut text = std::fs::read_to_string(&config).expect("the config file");
    text.push('\n');
    std::fs::write(&config, text).expect("edited");
    assert_eq!(classes(&project, "frontend"), ["config_edited"]);
    assert!(
        status_row(&project, "frontend").contains("config edited"),
        "{}",
        status_row(&project, "frontend")
    );

    // The frontend's stored program, replaced behind tier's back (a running executable
    // cannot be written to, but it can be replaced).
    let stored = stored_copy_of(
        &project,
        &project.path().join("target/release/sample-frontend"),
    );
    let replacement = stored.with_extension("replacement");
    let mut bytes = std::fs::read(&stored).expect("the stored copy");
    bytes.push(0);
    std::fs::write(&replacement, bytes).expect("a replacement");
    std::fs::rename(&replacement, &stored).expect("replaced");
    let (code, stdout, stderr) = tier(&project, &["drift", "dev"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("dev: 2 differences from revision 1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("frontend: its program .tier/artifacts/"),
        "{stdout}"
    );
    assert!(stdout.contains("changed on disk"), "{stdout}");
    assert!(stdout.contains("was edited after the apply"), "{stdout}");

    // With nothing else to apply, an apply puts both back.
    let (code, _, stderr) = tier(&project, &["apply", "dev"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("dev: put back frontend: its program, copied again from")
            && stderr
                .contains("dev: put back frontend: its config file .tier/dev/config/frontend-"),
        "{stderr}"
    );
    assert_eq!(classes(&project, "frontend"), Vec::<String>::new());
    assert_eq!(
        std::fs::read(&stored).expect("the stored copy"),
        std::fs::read(project.path().join("target/release/sample-frontend")).expect("the program")
    );

    // A backend replica killed while it cannot start again: it is down, and that is drift.
    std::fs::write(project.path().join("down"), "").expect("the down file");
    let status = json(&project, &["status", "dev"]);
    let pid = status[0]["status"]["services"][0]["replicas"][0]["pid"]
        .as_i64()
        .unwrap_or(0) as i32;
    assert!(pid > 0, "{status}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the backend replica");
    wait_for(
        Duration::from_secs(20),
        "the backend replica to be drift",
        || classes(&project, "backend") == ["not_running"],
    );
    assert!(
        status_row(&project, "backend").contains("replica 1 down"),
        "{}",
        status_row(&project, "backend")
    );

    // It comes back once it can start; its record says when it was seen and when it went.
    std::fs::remove_file(project.path().join("down")).expect("the down file removed");
    wait_for(Duration::from_secs(30), "the backend to run again", || {
        classes(&project, "backend").is_empty()
    });
    let history = json(&project, &["drift", "dev", "--history"]);
    let records = history["history"].as_array().cloned().unwrap_or_default();
    let record = |key: &str| {
        records
            .iter()
            .find(|record| record["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no record {key}: {history:#}"))
    };
    let replica = record("service backend: replica 1");
    assert!(replica["gone_unix_ms"].as_u64().is_some(), "{replica}");
    assert!(
        replica["first_seen_unix_ms"].as_u64() <= replica["gone_unix_ms"].as_u64(),
        "{replica}"
    );
    let edited = record("service frontend: config");
    assert!(
        edited["gone_unix_ms"].as_u64().is_some(),
        "put back: {edited}"
    );
    assert!(
        edited["first_seen_unix_ms"].as_u64() < edited["last_seen_unix_ms"].as_u64(),
        "seen at the first check and again since: {edited}"
    );
    let (code, text, stderr) = tier(&project, &["drift", "dev", "--history"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(text.contains("FIRST SEEN"), "{text}");
    assert!(
        text.contains("frontend: its config file") && text.contains("backend: replica 1"),
        "{text}"
    );
}

#[test]
fn drift_of_a_stopped_environment_says_nothing_runs_to_compare() {
    let project = TestProject::sample_app();
    let port = free_port();
    project.write(
        "envs/dev.toml",
        &format!("[services.frontend]\nexpose = {port}\n"),
    );
    let (code, stdout, _) = tier(&project, &["drift", "dev"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), "dev: nothing deployed, nothing to compare");
    assert!(
        !project.path().join(".tier/dev/state.redb").exists(),
        "a check creates no state"
    );
    let (code, _, stderr) = tier(&project, &["apply", "dev"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = tier(&project, &["down", "dev"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = tier(&project, &["drift", "dev"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "dev: no drift from revision 1");
    assert!(
        stderr.contains("dev: not running: nothing runs to compare; `tier up dev` starts it"),
        "{stderr}"
    );
}
