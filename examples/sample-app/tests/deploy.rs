//! Plan, apply, history, rollback, promote and the lock, end to end on the local runtime with
//! the real binary and the sample app's processes.

use std::time::{Duration, Instant};

use tier_test::{KeepAliveClient, TestProject, free_port, http_get, wait_for};

/// Runs `tier` in the project; answers (exit code, stdout, stderr).
fn tier(project: &TestProject, args: &[&str]) -> (i32, String, String) {
    let output = project.tier().args(args).output().expect("run tier");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The sample app with dev exposed on a free port, and stage promoted from dev, also local.
fn project() -> (TestProject, u16) {
    let project = TestProject::sample_app();
    let port = free_port();
    project.write(
        "envs/dev.toml",
        &format!("[services.frontend]\nexpose = {port}\n\n[services.backend]\nreplicas = 2\n"),
    );
    (project, port)
}

fn history(project: &TestProject, env: &str) -> serde_json::Value {
    let (code, stdout, stderr) = tier(project, &["history", env, "--output", "json"]);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).expect("history is JSON")
}

fn backend_port(project: &TestProject, env: &str) -> u16 {
    let (_, stdout, _) = tier(project, &["status", env, "--output", "json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("status is JSON");
    let url = status[0]["status"]["services"][0]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    url.rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or(0)
}

struct Down<'a>(&'a TestProject, &'a str);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.tier().args(["down", self.1]).output();
    }
}

#[test]
#[expect(
    clippy::disallowed_methods,
    reason = "the test runs tier apply beside its own load"
)]
fn a_new_version_rolls_out_under_load_with_no_failed_request() {
    let (project, _) = project();
    let _down = Down(&project, "dev");
    let (code, _, stderr) = tier(&project, &["apply", "dev"]);
    assert_eq!(code, 0, "{stderr}");
    let port = backend_port(&project, "dev");
    assert_eq!(text_of(&http_get(port, "/").1), "development config");

    project.write(
        "config/backend/dev.json",
        r#"{"text": "development config v2"}"#,
    );
    let (code, stdout, _) = tier(&project, &["plan", "dev"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(r#"~ config.text: "development config" → "development config v2""#),
        "{stdout}"
    );

    let mut apply = std::process::Command::new(tier_test::tier_binary());
    apply
        .env("NO_COLOR", "1")
        .arg("--project")
        .arg(project.path())
        .args(["apply", "dev"]);
    let running = std::thread::spawn(move || apply.output().expect("run tier apply"));
    let mut client = KeepAliveClient::new(port);
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    let mut failures = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !running.is_finished() && Instant::now() < deadline {
        match client.get("/") {
            Ok((200, body)) => *answers.entry(body).or_default() += 1,
            Ok((status, body)) => failures.push(format!("{status} {body}")),
            Err(error) => failures.push(error),
        }
    }
    let output = running.join().expect("apply thread");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        failures.is_empty(),
        "failed requests during the rollout: {failures:?}"
    );
    for body in answers.keys() {
        assert!(
            ["development config", "development config v2"].contains(&text_of(body).as_str()),
            "an answer from neither version: {body}"
        );
    }
    for _ in 0..20 {
        assert_eq!(
            client.get("/").map(|answer| text_of(&answer.1)),
            Ok("development config v2".to_owned())
        );
    }
    let revisions = history(&project, "dev");
    assert_eq!(revisions.as_array().map(Vec::len), Some(2));
    assert_eq!(
        revisions[1]["outcome"]["status"], "succeeded",
        "{revisions}"
    );
    // What runs is the declared version plus the artifact's digest.
    let digest = revisions[1]["artifacts"]["backend"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, status, _) = tier(&project, &["status", "dev"]);
    assert!(
        status.contains(&format!("0.0.1+{}", &digest[..19])),
        "{status}"
    );
}

#[test]
fn a_version_that_fails_its_gate_is_rolled_back_and_recorded() {
    let (project, front) = project();
    let _down = Down(&project, "dev");
    assert_eq!(tier(&project, &["apply", "dev"]).0, 0);
    let port = backend_port(&project, "dev");

    // The backend changes and becomes ready; the frontend's new version never does: the
    // backend, already rolled, must go back too.
    project.write(
        "config/backend/dev.json",
        r#"{"text": "development config v3"}"#,
    );
    let (code, _, stderr) = tier(
        &project,
        &[
            "apply",
            "dev",
            "--set",
            r#"services.frontend.health.http="/not-here""#,
            "--set",
            r#"services.frontend.rollout.deadline="2s""#,
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("frontend"), "{stderr}");
    assert!(stderr.contains("rolled back"), "{stderr}");
    for _ in 0..20 {
        assert_eq!(
            text_of(&http_get(port, "/").1),
            "development config",
            "the backend is back on the old config"
        );
        assert_eq!(
            http_get(front, "/").1,
            "Hello from <b>development config</b>!"
        );
    }
    let revisions = history(&project, "dev");
    let last = &revisions[1];
    assert_eq!(last["outcome"]["status"], "rolled_back", "{revisions}");
    assert!(
        last["outcome"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("/not-here answered 404"),
        "{revisions}"
    );
    let (_, text, _) = tier(&project, &["history", "dev"]);
    assert!(text.contains("rolled back"), "{text}");
}

#[test]
fn rollback_deploys_an_earlier_revision_as_a_new_one() {
    let (project, front) = project();
    let _down = Down(&project, "dev");
    assert_eq!(tier(&project, &["apply", "dev"]).0, 0);
    project.write("config/backend/dev.json", r#"{"text": "second"}"#);
    assert_eq!(tier(&project, &["apply", "dev"]).0, 0);
    assert_eq!(http_get(front, "/").1, "Hello from <b>second</b>!");
    let (code, _, stderr) = tier(&project, &["rollback", "dev", "--to", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        http_get(front, "/").1,
        "Hello from <b>development config</b>!"
    );
    let revisions = history(&project, "dev");
    assert_eq!(revisions[2]["origin"]["kind"], "rollback", "{revisions}");
    assert_eq!(revisions[2]["origin"]["to"], 1, "{revisions}");
}

#[test]
fn a_saved_plan_is_refused_once_the_state_moved() {
    let (project, _) = project();
    let _down = Down(&project, "dev");
    let plan = project.path().join("dev.plan.json");
    let plan = plan.to_str().unwrap_or_default();
    assert_eq!(tier(&project, &["plan", "dev", "--out", plan]).0, 0);
    assert_eq!(tier(&project, &["apply", "dev"]).0, 0);
    let (code, _, stderr) = tier(&project, &["apply", plan]);
    assert_eq!(code, 1);
    assert!(stderr.contains("tier plan dev --out"), "{stderr}");
    assert_eq!(
        history(&project, "dev").as_array().map(Vec::len),
        Some(1),
        "nothing was applied"
    );
    // A fresh plan applies.
    project.write("config/backend/dev.json", r#"{"text": "planned"}"#);
    assert_eq!(tier(&project, &["plan", "dev", "--out", plan]).0, 0);
    let (code, _, stderr) = tier(&project, &["apply", plan]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(history(&project, "dev").as_array().map(Vec::len), Some(2));
}

#[test]
fn promote_deploys_the_artifact_that_runs_in_the_source_not_a_rebuild() {
    let (project, _) = project();
    let stage_port = free_port();
    let toml = project.read("tier.toml").replace(
        "[environments.stage]\nruntime = \"local\"\npromote_from = \"dev\"",
        "[environments.stage]\nruntime = \"local\"\npromote_from = \"dev\"\nprotected = true",
    );
    project.write("tier.toml", &toml);
    project.write(
        "envs/stage.toml",
        &format!("[services.frontend]\nexpose = {stage_port}\n"),
    );
    let _down_dev = Down(&project, "dev");
    assert_eq!(tier(&project, &["apply", "dev"]).0, 0);
    let dev_digest = history(&project, "dev")[0]["artifacts"]["backend"]["digest"].clone();

    // Rebuild the backend: another program with another digest at the same path.
    let release = project.path().join("target/release");
    let original = std::fs::read_link(release.join("sample-backend")).expect("a link");
    std::fs::remove_file(release.join("sample-backend")).expect("remove the link");
    let mut bytes = std::fs::read(&original).expect("read the backend");
    bytes.extend_from_slice(b"rebuilt");
    std::fs::write(release.join("sample-backend"), bytes).expect("write the rebuild");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            release.join("sample-backend"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
    }

    // Protected: nothing happens without --confirm.
    let (code, _, stderr) = tier(&project, &["promote", "dev", "stage"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("stage is protected"), "{stderr}");
    assert_eq!(history(&project, "stage").as_array().map(Vec::len), Some(0));

    let _down_stage = Down(&project, "stage");
    let (code, _, stderr) = tier(&project, &["promote", "dev", "stage", "--confirm", "stage"]);
    assert_eq!(code, 0, "{stderr}");
    let stage = history(&project, "stage");
    assert_eq!(
        stage[0]["artifacts"]["backend"]["digest"], dev_digest,
        "{stage}"
    );
    assert_eq!(stage[0]["origin"]["kind"], "promote", "{stage}");
    assert_eq!(stage[0]["origin"]["from_environment"], "dev", "{stage}");
    assert_eq!(
        http_get(stage_port, "/").1,
        "Hello from <b>staging config</b>!",
        "stage's own config"
    );
    // A plain apply of stage would deploy the rebuild instead.
    let (_, plan, _) = tier(&project, &["plan", "stage"]);
    assert!(plan.contains("~ artifact: sha256:"), "{plan}");
    let (code, _, stderr) = tier(&project, &["down", "stage"]);
    assert_eq!(code, 1, "protected: {stderr}");
    assert_eq!(
        tier(&project, &["down", "stage", "--confirm", "stage"]).0,
        0
    );
}

#[test]
#[expect(
    clippy::disallowed_methods,
    reason = "the test needs the child itself to kill it"
)]
fn sigkilled_applies_leave_a_state_that_opens_and_converges() {
    let (project, _) = project();
    let _down = Down(&project, "dev");
    let mut killed = 0;
    let mut seed: u64 = 0x5eed;
    for round in 0..20 {
        project.write(
            "config/backend/dev.json",
            &format!(r#"{{"text": "round {round}"}}"#),
        );
        let mut child = std::process::Command::new(tier_test::tier_binary())
            .env("NO_COLOR", "1")
            .arg("--project")
            .arg(project.path())
            .args(["apply", "dev"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start tier apply");
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let after = Duration::from_millis(20 + (seed >> 33) % 400);
        let started = Instant::now();
        wait_for(Duration::from_secs(5), "the kill time", || {
            started.elapsed() >= after || child.try_wait().ok().flatten().is_some()
        });
        if child.try_wait().ok().flatten().is_none() {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .expect("kill tier apply");
            killed += 1;
        }
        let _ = child.wait();
        // The state always opens; a lock left by the dead apply is reported and breakable.
        let (code, _, stderr) = tier(&project, &["history", "dev"]);
        assert_eq!(code, 0, "history after a kill: {stderr}");
        let (code, _, stderr) = tier(&project, &["unlock", "dev", "--yes"]);
        assert_eq!(code, 0, "unlock after a kill: {stderr}");
    }
    assert!(
        killed >= 10,
        "only {killed} of 20 applies were killed mid-way"
    );
    project.write("config/backend/dev.json", r#"{"text": "converged"}"#);
    let (code, _, stderr) = tier(&project, &["apply", "dev"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = tier(&project, &["plan", "dev"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("No changes"), "{stdout}");
    let port = backend_port(&project, "dev");
    for _ in 0..10 {
        assert_eq!(text_of(&http_get(port, "/").1), "converged");
    }
}

#[test]
#[expect(
    clippy::disallowed_methods,
    reason = "the test needs the child itself to send it Ctrl-C"
)]
fn ctrl_c_stops_an_apply_at_a_safe_point_and_undoes_it() {
    let (project, front) = project();
    let _down = Down(&project, "dev");
    assert_eq!(tier(&project, &["apply", "dev"]).0, 0);
    project.write("config/backend/dev.json", r#"{"text": "never served"}"#);
    let mut child = std::process::Command::new(tier_test::tier_binary())
        .env("NO_COLOR", "1")
        .arg("--project")
        .arg(project.path())
        .args([
            "apply",
            "dev",
            "--set",
            r#"services.backend.health.http="/not-yet""#,
            "--set",
            r#"services.backend.rollout.deadline="30s""#,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start tier apply");
    // Wait until the new replica is up and failing its gate, then press Ctrl-C.
    wait_for(Duration::from_secs(10), "the new backend replica", || {
        let (_, stdout, _) = tier(&project, &["status", "dev", "--output", "json"]);
        stdout.matches("\"replica\":").count() >= 4
    });
    let interrupted = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("send Ctrl-C");
    let mut exit = None;
    wait_for(
        Duration::from_secs(15),
        "tier apply to stop after Ctrl-C",
        || {
            exit = child.try_wait().expect("wait for tier apply");
            exit.is_some()
        },
    );
    assert!(
        interrupted.elapsed() < Duration::from_secs(10),
        "it stopped at the next safe point, not at the deadline"
    );
    assert_eq!(exit.and_then(|status| status.code()), Some(1));
    let revisions = history(&project, "dev");
    assert_eq!(
        revisions[1]["outcome"]["status"], "rolled_back",
        "{revisions}"
    );
    assert!(
        revisions[1]["outcome"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("interrupted"),
        "{revisions}"
    );
    assert_eq!(
        http_get(front, "/").1,
        "Hello from <b>development config</b>!"
    );
}

#[test]
fn on_failure_halt_keeps_what_succeeded() {
    let (project, _) = project();
    let _down = Down(&project, "dev");
    assert_eq!(tier(&project, &["apply", "dev"]).0, 0);
    let port = backend_port(&project, "dev");
    project.write("config/backend/dev.json", r#"{"text": "kept"}"#);
    let (code, _, stderr) = tier(
        &project,
        &[
            "apply",
            "dev",
            "--set",
            r#"project.on_failure="halt""#,
            "--set",
            r#"services.frontend.health.http="/not-here""#,
            "--set",
            r#"services.frontend.rollout.deadline="2s""#,
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("what succeeded was kept"), "{stderr}");
    for _ in 0..10 {
        assert_eq!(
            text_of(&http_get(port, "/").1),
            "kept",
            "the backend keeps its new config"
        );
    }
    let revisions = history(&project, "dev");
    assert_eq!(revisions[1]["outcome"]["status"], "failed", "{revisions}");
}

#[test]
fn an_apply_moves_a_host_port() {
    let (project, old_port) = project();
    let _down = Down(&project, "dev");
    assert_eq!(tier(&project, &["apply", "dev"]).0, 0);
    assert_eq!(http_get(old_port, "/").0, 200);
    let new_port = free_port();
    project.write(
        "envs/dev.toml",
        &format!("[services.frontend]\nexpose = {new_port}\n\n[services.backend]\nreplicas = 2\n"),
    );
    let (code, stdout, stderr) = tier(&project, &["apply", "dev"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("~ expose: {old_port} → {new_port}")),
        "{stdout}"
    );
    assert_eq!(
        http_get(new_port, "/").1,
        "Hello from <b>development config</b>!"
    );
    wait_for(Duration::from_secs(5), "the old host port to close", || {
        http_get(old_port, "/").0 == 0
    });
}

/// The `text` of the backend's JSON answer; the body itself when it is not one.
fn text_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|answer| answer.get("text")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}
