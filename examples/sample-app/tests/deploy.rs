//! Plan, apply, history, rollback, promote and the lock, end to end on the local runtime with
//! the real binary and the sample app's processes.

use std::time::{Duration, Instant};

use tier_test::{KeepAliveClient, TestContext, free_port, http_get, tier_snapshot, wait_for};

/// The sample app with dev exposed on a free port, and stage promoted from dev, also local.
fn context() -> (TestContext, u16) {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    context.write(
        "envs/dev.toml",
        &format!("[services.frontend]\nexpose = {port}\n\n[services.backend]\nreplicas = 2\n"),
    );
    (context, port)
}

fn history(context: &TestContext, env: &str) -> serde_json::Value {
    context.json(&["history", env])
}

fn backend_port(context: &TestContext, env: &str) -> u16 {
    let status = context.tier(&["status", env, "--output", "json"]).json();
    let url = status[0]["status"]["services"][0]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    url.rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_new_version_rolls_out_under_load_with_no_failed_request() {
    let (context, _) = context();
    let _down = context.down_on_drop("dev");
    context.tier(&["apply", "dev"]).success();
    let port = backend_port(&context, "dev");
    assert_eq!(text_of(&http_get(port, "/").1), "development config");

    context.write(
        "config/backend/dev.json",
        r#"{"text": "development config v2"}"#,
    );
    tier_snapshot!("plan_of_a_new_config", context.tier(&["plan", "dev"]));

    let mut apply = context.command(&["apply", "dev"]);
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
    let revisions = history(&context, "dev");
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
    let status = context.tier(&["status", "dev"]).stdout;
    assert!(
        status.contains(&format!("0.0.1+{}", &digest[..19])),
        "{status}"
    );
}

#[test]
fn a_version_that_fails_its_gate_is_rolled_back_and_recorded() {
    let (context, front) = context();
    let _down = context.down_on_drop("dev");
    context.tier(&["apply", "dev"]).success();
    let port = backend_port(&context, "dev");

    // The backend changes and becomes ready; the frontend's new version never does: the
    // backend, already rolled, must go back too.
    context.write(
        "config/backend/dev.json",
        r#"{"text": "development config v3"}"#,
    );
    let gate = r#"services.frontend.health.http="/not-here""#;
    let deadline = r#"services.frontend.rollout.deadline="2s""#;
    tier_snapshot!(
        "apply_rolled_back",
        context.tier(&["apply", "dev", "--set", gate, "--set", deadline])
    );
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
    let revisions = history(&context, "dev");
    let last = &revisions[1];
    assert_eq!(last["outcome"]["status"], "rolled_back", "{revisions}");
    assert!(
        last["outcome"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("/not-here answered 404"),
        "{revisions}"
    );
    tier_snapshot!("history_rolled_back", context.tier(&["history", "dev"]));
}

#[test]
fn rollback_deploys_an_earlier_revision_as_a_new_one() {
    let (context, front) = context();
    let _down = context.down_on_drop("dev");
    context.tier(&["apply", "dev"]).success();
    context.write("config/backend/dev.json", r#"{"text": "second"}"#);
    context.tier(&["apply", "dev"]).success();
    assert_eq!(http_get(front, "/").1, "Hello from <b>second</b>!");
    tier_snapshot!(context.tier(&["rollback", "dev", "--to", "1"]));
    assert_eq!(
        http_get(front, "/").1,
        "Hello from <b>development config</b>!"
    );
    let revisions = history(&context, "dev");
    assert_eq!(revisions[2]["origin"]["kind"], "rollback", "{revisions}");
    assert_eq!(revisions[2]["origin"]["to"], 1, "{revisions}");
}

#[test]
fn a_saved_plan_is_refused_once_the_state_moved() {
    let (context, _) = context();
    let _down = context.down_on_drop("dev");
    let plan = context.path().join("dev.plan.json");
    let plan = plan.to_str().unwrap_or_default();
    context.tier(&["plan", "dev", "--out", plan]).success();
    context.tier(&["apply", "dev"]).success();
    tier_snapshot!("stale_plan_refused", context.tier(&["apply", plan]));
    assert_eq!(
        history(&context, "dev").as_array().map(Vec::len),
        Some(1),
        "nothing was applied"
    );
    // A fresh plan applies.
    context.write("config/backend/dev.json", r#"{"text": "planned"}"#);
    context.tier(&["plan", "dev", "--out", plan]).success();
    context.tier(&["apply", plan]).success();
    assert_eq!(history(&context, "dev").as_array().map(Vec::len), Some(2));
}

#[test]
fn promote_deploys_the_artifact_that_runs_in_the_source_not_a_rebuild() {
    let (context, _) = context();
    let stage_port = free_port();
    let toml = context.read("tier.toml").replace(
        "[environments.stage]\nruntime = \"local\"\npromote_from = \"dev\"",
        "[environments.stage]\nruntime = \"local\"\npromote_from = \"dev\"\nprotected = true",
    );
    context.write("tier.toml", &toml);
    context.write(
        "envs/stage.toml",
        &format!("[services.frontend]\nexpose = {stage_port}\n"),
    );
    let _down_dev = context.down_on_drop("dev");
    context.tier(&["apply", "dev"]).success();
    let dev_digest = history(&context, "dev")[0]["artifacts"]["backend"]["digest"].clone();

    // Rebuild the backend: another program with another digest at the same path.
    let release = context.path().join("target/release");
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
    tier_snapshot!(
        "promote_protected",
        context.tier(&["promote", "dev", "stage"])
    );
    assert_eq!(history(&context, "stage").as_array().map(Vec::len), Some(0));

    let _down_stage = context.down_on_drop("stage");
    context
        .tier(&["promote", "dev", "stage", "--confirm", "stage"])
        .success();
    let stage = history(&context, "stage");
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
    let plan = context.tier(&["plan", "stage"]).stdout;
    assert!(plan.contains("~ artifact: sha256:"), "{plan}");
    tier_snapshot!("down_protected", context.tier(&["down", "stage"]));
    context
        .tier(&["down", "stage", "--confirm", "stage"])
        .success();
}

#[test]
fn confirm_naming_another_environment_says_so_and_changes_nothing() {
    let context = TestContext::sample_app();
    let toml = context.read("tier.toml").replace(
        "[environments.stage]\nruntime = \"local\"",
        "[environments.stage]\nruntime = \"local\"\nprotected = true",
    );
    context.write("tier.toml", &toml);
    tier_snapshot!(context.tier(&["apply", "stage", "--confirm", "dev"]), @r"
    success: false
    exit_code: 1
    ----- stdout -----

    ----- stderr -----
    error: stage is protected; --confirm names dev, not stage; nothing was changed
    hint: add --confirm stage to apply to it
    ");
    assert_eq!(history(&context, "stage").as_array().map(Vec::len), Some(0));
}

#[test]
fn sigkilled_applies_leave_a_state_that_opens_and_converges() {
    let (context, _) = context();
    let _down = context.down_on_drop("dev");
    let mut killed = 0;
    let mut seed: u64 = 0x5eed;
    for round in 0..20 {
        context.write(
            "config/backend/dev.json",
            &format!(r#"{{"text": "round {round}"}}"#),
        );
        let mut child = context.spawn(&["apply", "dev"]);
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let after = Duration::from_millis(20 + (seed >> 33) % 400);
        let started = Instant::now();
        wait_for(Duration::from_secs(5), "the kill time", || {
            started.elapsed() >= after || child.has_exited()
        });
        if !child.has_exited() {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .expect("kill tier apply");
            killed += 1;
        }
        child.wait(Duration::from_secs(10));
        // The state always opens; a lock left by the dead apply is reported and breakable.
        context.tier(&["history", "dev"]).success();
        context.tier(&["unlock", "dev", "--yes"]).success();
    }
    assert!(
        killed >= 10,
        "only {killed} of 20 applies were killed mid-way"
    );
    context.write("config/backend/dev.json", r#"{"text": "converged"}"#);
    context.tier(&["apply", "dev"]).success();
    tier_snapshot!("converged_no_changes", context.tier(&["plan", "dev"]));
    let port = backend_port(&context, "dev");
    for _ in 0..10 {
        assert_eq!(text_of(&http_get(port, "/").1), "converged");
    }
}

#[test]
fn ctrl_c_stops_an_apply_at_a_safe_point_and_undoes_it() {
    let (context, front) = context();
    let _down = context.down_on_drop("dev");
    context.tier(&["apply", "dev"]).success();
    context.write("config/backend/dev.json", r#"{"text": "never served"}"#);
    let mut child = context.spawn(&[
        "apply",
        "dev",
        "--set",
        r#"services.backend.health.http="/not-yet""#,
        "--set",
        r#"services.backend.rollout.deadline="30s""#,
    ]);
    // Wait until the new replica is up and failing its gate, then press Ctrl-C.
    wait_for(Duration::from_secs(10), "the new backend replica", || {
        let stdout = context.tier(&["status", "dev", "--output", "json"]).stdout;
        stdout.matches("\"replica\":").count() >= 4
    });
    let interrupted = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("send Ctrl-C");
    let code = child.wait(Duration::from_secs(15));
    assert!(
        interrupted.elapsed() < Duration::from_secs(10),
        "it stopped at the next safe point, not at the deadline"
    );
    assert_eq!(code, 1);
    let revisions = history(&context, "dev");
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
    let (context, _) = context();
    let _down = context.down_on_drop("dev");
    context.tier(&["apply", "dev"]).success();
    let port = backend_port(&context, "dev");
    context.write("config/backend/dev.json", r#"{"text": "kept"}"#);
    tier_snapshot!(
        "halted_apply_keeps_what_succeeded",
        context.tier(&[
            "apply",
            "dev",
            "--set",
            r#"project.on_failure="halt""#,
            "--set",
            r#"services.frontend.health.http="/not-here""#,
            "--set",
            r#"services.frontend.rollout.deadline="2s""#,
        ])
    );
    for _ in 0..10 {
        assert_eq!(
            text_of(&http_get(port, "/").1),
            "kept",
            "the backend keeps its new config"
        );
    }
    let revisions = history(&context, "dev");
    assert_eq!(revisions[1]["outcome"]["status"], "failed", "{revisions}");
}

#[test]
fn an_apply_moves_a_host_port() {
    let (context, old_port) = context();
    let _down = context.down_on_drop("dev");
    context.tier(&["apply", "dev"]).success();
    assert_eq!(http_get(old_port, "/").0, 200);
    let new_port = free_port();
    context.write(
        "envs/dev.toml",
        &format!("[services.frontend]\nexpose = {new_port}\n\n[services.backend]\nreplicas = 2\n"),
    );
    let moved = context.tier(&["apply", "dev"]).success();
    assert!(
        moved
            .stdout
            .contains(&format!("~ expose: {old_port} → {new_port}")),
        "{moved}"
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
