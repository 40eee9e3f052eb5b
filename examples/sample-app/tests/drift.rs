//! `tier drift` and the DRIFT column of `tier status` on the local runtime, end to end with
//! the real binary and the sample app's processes: a config file edited after the apply, a
//! stored program replaced on disk, and a replica that should run and does not, each with
//! when it was first seen and, once it is gone, when it went.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tier_test::{TestContext, tier_snapshot, wait_for};

/// The classes of drift `tier drift dev` finds for `service`.
fn classes(context: &TestContext, service: &str) -> Vec<String> {
    let report = context.json(&["drift", "dev"]);
    report["drift"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|found| found["service"] == service)
        .filter_map(|found| found["change"]["class"].as_str().map(str::to_owned))
        .collect()
}

/// The row of `service` in `tier status dev`.
fn status_row(context: &TestContext, service: &str) -> String {
    let status = context.tier(&["status", "dev"]).success();
    assert!(status.stdout.contains("DRIFT"), "{status}");
    status
        .stdout
        .lines()
        .find(|line| line.starts_with(service))
        .unwrap_or_default()
        .to_owned()
}

/// The stored copy under `.tier/artifacts/` with the same bytes as `program`.
fn stored_copy_of(context: &TestContext, program: &Path) -> PathBuf {
    let wanted = std::fs::read(program).expect("the program");
    std::fs::read_dir(context.path().join(".tier/artifacts"))
        .expect("the artifact store")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| std::fs::read(path).is_ok_and(|bytes| bytes == wanted))
        .expect("a stored copy of the program")
}

/// Runs `tier down dev` when dropped, so a failing test leaves nothing running.
struct Down<'a>(&'a TestContext);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.tier(&["down", "dev"]);
    }
}

#[test]
fn edited_config_a_replaced_program_and_a_replica_down_are_drift_with_their_times() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    // The backend cannot start while the file `down` exists in the project.
    context.write(
        "envs/dev.toml",
        &format!(
            "[services.frontend]\nexpose = {port}\n\n[services.backend]\n\
             command = [\"sh\", \"-c\", \"if [ -e down ]; then echo down >&2; exit 1; fi; exec target/release/sample-backend\"]\n"
        ),
    );
    context.tier(&["apply", "dev"]).success();
    let _down = Down(&context);

    tier_snapshot!("no_drift", context.tier(&["drift", "dev"]));
    assert!(
        status_row(&context, "frontend").trim_end().ends_with(" -"),
        "{}",
        status_row(&context, "frontend")
    );

    // The frontend's config file, edited by hand.
    let config = std::fs::read_dir(context.path().join(".tier/dev/config"))
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
    assert_eq!(classes(&context, "frontend"), ["config_edited"]);
    tier_snapshot!("status_config_edited", context.tier(&["status", "dev"]));

    // The frontend's stored program, replaced behind tier's back (a running executable
    // cannot be written to, but it can be replaced).
    let stored = stored_copy_of(
        &context,
        &context.path().join("target/release/sample-frontend"),
    );
    let replacement = stored.with_extension("replacement");
    let mut bytes = std::fs::read(&stored).expect("the stored copy");
    bytes.push(0);
    std::fs::write(&replacement, bytes).expect("a replacement");
    std::fs::rename(&replacement, &stored).expect("replaced");
    tier_snapshot!("two_differences", context.tier(&["drift", "dev"]));

    // With nothing else to apply, an apply puts both back.
    tier_snapshot!("apply_puts_back", context.tier(&["apply", "dev"]));
    assert_eq!(classes(&context, "frontend"), Vec::<String>::new());
    assert_eq!(
        std::fs::read(&stored).expect("the stored copy"),
        std::fs::read(context.path().join("target/release/sample-frontend")).expect("the program")
    );

    // A backend replica killed while it cannot start again: it is down, and that is drift.
    std::fs::write(context.path().join("down"), "").expect("the down file");
    let status = context.json(&["status", "dev"]);
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
        || classes(&context, "backend") == ["not_running"],
    );
    assert!(
        status_row(&context, "backend").contains("replica 1 down"),
        "{}",
        status_row(&context, "backend")
    );

    // It comes back once it can start; its record says when it was seen and when it went.
    std::fs::remove_file(context.path().join("down")).expect("the down file removed");
    wait_for(Duration::from_secs(30), "the backend to run again", || {
        classes(&context, "backend").is_empty()
    });
    let history = context.json(&["drift", "dev", "--history"]);
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
    let text = context
        .tier(&["drift", "dev", "--history"])
        .success()
        .stdout;
    assert!(text.contains("FIRST SEEN"), "{text}");
    assert!(
        text.contains("frontend: its config file") && text.contains("backend: replica 1"),
        "{text}"
    );
}

#[test]
fn drift_of_a_stopped_environment_says_nothing_runs_to_compare() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    context.write(
        "envs/dev.toml",
        &format!("[services.frontend]\nexpose = {port}\n"),
    );
    tier_snapshot!("nothing_deployed", context.tier(&["drift", "dev"]));
    assert!(
        !context.path().join(".tier/dev/state.redb").exists(),
        "a check creates no state"
    );
    context.tier(&["apply", "dev"]).success();
    context.tier(&["down", "dev"]).success();
    tier_snapshot!("not_running", context.tier(&["drift", "dev"]));
}
