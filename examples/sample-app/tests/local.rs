//! The local runtime end to end: the real `tier` binary, real agents, real replica processes
//! of the sample app, real sockets. Every test picks its own host ports, so tests can run in
//! parallel, and stops what it started even when it fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tier_test::{KeepAliveClient, Stream, TestContext, http_get, tier_snapshot, wait_for};

#[test]
fn dev_and_stage_run_side_by_side_each_with_its_own_config() {
    let mut context = TestContext::sample_app();
    let dev_port = context.free_port();
    let stage_port = context.free_port();
    let dev = context.up("dev", &[&format!("services.frontend.expose={dev_port}")]);
    let stage = context.up(
        "stage",
        &[&format!("services.frontend.expose={stage_port}")],
    );

    let (status, body) = http_get(dev_port, "/");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "Hello from <b>development config</b>!");
    let (status, body) = http_get(stage_port, "/");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "Hello from <b>staging config</b>!");

    let dev_status = dev.status();
    let stage_status = stage.status();
    assert_ne!(dev_status["agent_pid"], stage_status["agent_pid"]);
    assert_ne!(
        dev_status["services"][0]["url"], stage_status["services"][0]["url"],
        "each environment has its own proxy ports"
    );
    assert_eq!(
        stage_status["services"][0]["desired"], 2,
        "stage runs 2 backends: {stage_status}"
    );
}

#[test]
fn killing_a_backend_replica_fails_no_request_and_it_comes_back() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let env = context.up(
        "dev",
        &[
            &format!("services.frontend.expose={port}"),
            "services.backend.replicas=3",
        ],
    );
    let backend_url = env.status()["services"][0]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let backend_port: u16 = backend_url
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or(0);
    let victim = env.status()["services"][0]["replicas"][1]["pid"]
        .as_u64()
        .unwrap_or(0) as i32;
    assert!(victim > 0);

    // One keep-alive connection, so the proxy's upstream connections are reused too, and
    // the one to the killed replica goes stale under the load.
    let mut client = KeepAliveClient::new(backend_port);
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut sent = 0;
    let mut failed = Vec::new();
    let mut killed = false;
    while Instant::now() < deadline && sent < 3000 {
        if !killed && sent == 200 {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(victim),
                nix::sys::signal::Signal::SIGKILL,
            )
            .ok();
            killed = true;
        }
        match client.get("/") {
            Ok((200, _)) => {}
            Ok((status, body)) => failed.push(format!("{status} {body}")),
            Err(error) => failed.push(error),
        }
        sent += 1;
    }
    assert!(killed, "the load ran long enough to kill a replica");
    assert!(
        failed.is_empty(),
        "{} of {sent} requests failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    wait_for(
        Duration::from_secs(10),
        "the killed replica to come back",
        || {
            let status = env.status();
            let backend = &status["services"][0];
            backend["ready"] == 3 && backend["restarts"].as_u64() >= Some(1)
        },
    );
}

#[test]
fn killing_the_agent_leaves_no_replica_behind() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let env = context.up(
        "dev",
        &[
            &format!("services.frontend.expose={port}"),
            "services.backend.replicas=2",
        ],
    );
    let status = env.status();
    let agent = status["agent_pid"].as_u64().unwrap_or(0) as i32;
    let replicas = replica_pids(&status);
    assert_eq!(replicas.len(), 3, "{status}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the agent");
    wait_for(
        Duration::from_secs(5),
        "every replica's process group to be gone",
        || {
            replicas.iter().all(|pid| {
                nix::sys::signal::killpg(nix::unistd::Pid::from_raw(*pid), None).is_err()
            })
        },
    );
}

#[test]
fn a_crash_looping_service_is_reported_and_its_dependents_wait() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let env = context.up_no_wait(
        "dev",
        &[
            &format!("services.frontend.expose={port}"),
            r#"services.backend.command=["sh", "-c", "echo backend cannot start >&2; exit 3"]"#,
        ],
    );
    wait_for(
        Duration::from_secs(10),
        "the backend to be reported crash-looping",
        || env.status()["services"][0]["state"] == "crash-loop",
    );
    let status = env.status();
    let backend = &status["services"][0];
    let reason = backend["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("exit code 3"), "{reason}");
    assert!(reason.contains("backend cannot start"), "{reason}");
    let frontend = &status["services"][1];
    assert_eq!(frontend["state"], "waiting", "{status}");
    assert_eq!(
        frontend["replicas"].as_array().map(Vec::len),
        Some(0),
        "the frontend never started"
    );
    assert!(
        frontend["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("waiting for backend, which is crash-looping"),
        "{status}"
    );
    let text = context.tier(&["status", "dev"]).stdout;
    assert!(text.contains("crash-loop"), "{text}");
}

#[test]
fn up_with_a_missing_command_says_so_and_leaves_nothing() {
    let context = TestContext::sample_app();
    tier_snapshot!(context.tier(&[
        "up",
        "dev",
        "-d",
        "--set",
        r#"services.backend.command=["bin/not-there"]"#,
    ]));
    assert!(!context.path().join(".tier/dev/agent.sock").exists());
}

#[test]
fn up_on_a_port_in_use_says_so_and_leaves_nothing() {
    let mut context = TestContext::sample_app();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    context.filter(&format!(r"\b{port}\b"), "[TAKEN]");
    // The port it suggests is whichever is free at the time.
    context.filter(r"expose=\d+`", "expose=[FREE]`");
    context.filter(r"`expose = \d+`", "`expose = [FREE]`");
    let expose = format!("services.frontend.expose={port}");
    tier_snapshot!(context.tier(&["up", "dev", "-d", "--set", &expose]));
    assert!(!context.path().join(".tier/dev/agent.sock").exists());
}

#[test]
fn a_project_from_the_sample_template_runs_as_its_readme_says() {
    let context = TestContext::empty();
    let dir = context.path().display().to_string();
    context
        .tier(&["init", "--template", "sample-app", &dir])
        .success();
    // Its own ports, not the sample's 8080 and 8090, and the sample's programs as built
    // beside this tier binary.
    let project = context.read("tier.toml");
    let dev_port: u16 = project
        .lines()
        .find_map(|line| line.strip_prefix("expose = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("the new project exposes its frontend:\n{project}"));
    assert!((18_000..19_000).contains(&dev_port), "{dev_port}");
    assert!(!project.contains("target/release"), "{project}");
    let readme = context.read("README.md");
    assert!(
        readme.contains(&format!("http://127.0.0.1:{dev_port}")),
        "the README names the dev port:\n{readme}"
    );
    // Every file the README names by its path is there.
    for word in readme.split('`').skip(1).step_by(2) {
        let path_like = word.ends_with(".toml") || word.ends_with(".json") || word.ends_with('/');
        if path_like && word.contains('/') {
            assert!(
                context.path().join(word).exists(),
                "the README names {word}, which init did not write"
            );
        }
    }

    let _dev = context.up("dev", &[]);
    let (status, body) = http_get(dev_port, "/");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "Hello from <b>development config</b>!");
}

#[test]
fn up_lines_its_services_up_whatever_the_length_of_their_names() {
    let mut context = TestContext::sample_app();
    let long = "frontend-for-every-visitor";
    for file in ["tier.toml", "envs/stage.toml", "envs/prod.toml"] {
        let text = context
            .read(file)
            .replace("[services.frontend]", &format!("[services.{long}]"));
        context.write(file, &text);
    }
    let port = context.free_port();
    let _dev = context.down_on_drop("dev");
    let up = context
        .tier(&[
            "up",
            "dev",
            "-d",
            "--set",
            &format!("services.{long}.expose={port}"),
        ])
        .success();
    let rows: Vec<&str> = up
        .stdout
        .lines()
        .filter(|line| line.contains(" ready"))
        .collect();
    assert_eq!(rows.len(), 2, "{}", up.stdout);
    let column = |row: &str| row.find(" ready").unwrap_or_default();
    assert_eq!(
        column(rows[0]),
        column(rows[1]),
        "the ready counts line up:\n{}",
        up.stdout
    );
    assert!(
        rows.iter().any(|row| row.trim_start().starts_with(long)),
        "{}",
        up.stdout
    );
}

#[test]
fn a_service_that_never_becomes_ready_fails_up_and_leaves_nothing() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    tier_snapshot!(context.tier(&[
        "up",
        "dev",
        "-d",
        "--set",
        &format!("services.frontend.expose={port}"),
        "--set",
        r#"services.backend.health.http="/not-here""#,
        "--set",
        r#"services.backend.rollout.deadline="2s""#,
    ]));
    wait_for(Duration::from_secs(5), "the agent to be gone", || {
        !context.path().join(".tier/dev/agent.sock").exists()
    });
}

#[test]
fn down_of_an_environment_that_is_not_running_succeeds() {
    let context = TestContext::sample_app();
    tier_snapshot!(context.tier(&["down", "stage"]), @r"
    success: true
    exit_code: 0
    ----- stdout -----

    ----- stderr -----
    stage is not running
    ");
}

#[test]
fn logs_are_prefixed_per_replica_and_kept_on_disk() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let _env = context.up(
        "dev",
        &[
            &format!("services.frontend.expose={port}"),
            "services.backend.replicas=2",
        ],
    );
    let stdout = context.tier(&["logs", "dev", "backend"]).success().stdout;
    assert!(
        stdout.contains("backend-1 | sample-backend replica 1 listening"),
        "{stdout}"
    );
    assert!(
        stdout.contains("backend-2 | sample-backend replica 2 listening"),
        "{stdout}"
    );
    assert!(!stdout.contains("frontend"), "only the backend: {stdout}");
    assert!(context.path().join(".tier/dev/logs/backend-1.log").exists());
}

#[test]
fn logs_as_json_are_one_object_per_line() {
    let context = TestContext::sample_app();
    context.write(
        ".tier/dev/logs/backend-1.log",
        "1700000000000 out listening on \"127.0.0.1\"\n1700000000002 err gone\n",
    );
    context.write(".tier/dev/logs/frontend-1.log", "1700000000001 out ready\n");
    tier_snapshot!(context.tier(&["logs", "dev", "--output", "json"]), @r#"
    success: true
    exit_code: 0
    ----- stdout -----
    {"source":"backend-1","text":"listening on \"127.0.0.1\"","unix_ms":1700000000000,"time":"[TIME]"}
    {"source":"frontend-1","text":"ready","unix_ms":1700000000001,"time":"[TIME]"}
    {"source":"backend-1","text":"gone","unix_ms":1700000000002,"time":"[TIME]"}

    ----- stderr -----
    "#);
}

#[test]
fn logs_show_the_latest_run_unless_asked_since_when_and_the_last_lines() {
    let context = TestContext::sample_app();
    // backend-1 of an earlier run, then backend-1 of the run that began at ...50000.
    context.write(
        ".tier/dev/logs/backend-1.log",
        "1700000000000 out old run\n1700000060000 out new run\n1700000070000 err still new\n",
    );
    context.write(".tier/dev/logs/frontend-1.log", "1700000065000 out ready\n");
    context.write(".tier/dev/logs/run-started", "1700000050000\n");
    tier_snapshot!(context.tier(&["logs", "dev"]), @r"
    success: true
    exit_code: 0
    ----- stdout -----
    backend-1  | new run
    frontend-1 | ready
    backend-1  | still new

    ----- stderr -----
    ");
    tier_snapshot!(context.tier(&["logs", "dev", "--since", "2023-11-14T22:13:00Z", "--tail", "3", "--timestamps"]), @r"
    success: true
    exit_code: 0
    ----- stdout -----
    backend-1  | [TIME] new run
    frontend-1 | [TIME] ready
    backend-1  | [TIME] still new

    ----- stderr -----
    ");
    let stamped = context
        .tier(&["logs", "dev", "frontend", "--timestamps"])
        .success()
        .stdout;
    assert_eq!(stamped, "frontend-1 | 2023-11-14T22:14:25.000Z ready\n");
    let all = context
        .tier(&["logs", "dev", "backend", "--since", "2023-11-14T22:13:00Z"])
        .success()
        .stdout;
    assert_eq!(all.lines().count(), 3, "earlier runs with --since: {all}");
    // Every line is from 2023: none in the last 10 minutes.
    let recent = context
        .tier(&["logs", "dev", "--since", "10m"])
        .success()
        .stdout;
    assert_eq!(recent, "", "nothing in the last 10 minutes: {recent}");
    tier_snapshot!(context.tier(&["logs", "dev", "--since", "yesterday"]), @r#"
    success: false
    exit_code: 2
    ----- stdout -----

    ----- stderr -----
    error: --since "yesterday" is neither a duration (10m, 2h, 90s) nor an RFC 3339 time ([TIME])
    "#);
}

#[test]
fn logs_after_a_restart_hold_only_the_new_run() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let expose = format!("services.frontend.expose={port}");
    drop(context.up("dev", &[&expose]));
    let _dev = context.up("dev", &[&expose]);
    let stdout = context.tier(&["logs", "dev", "backend"]).success().stdout;
    assert_eq!(
        stdout
            .matches("backend-1 | sample-backend replica 1 listening")
            .count(),
        1,
        "the first run's lines stay out:\n{stdout}"
    );
    let both = context
        .tier(&["logs", "dev", "backend", "--since", "1h"])
        .success()
        .stdout;
    assert_eq!(
        both.matches("sample-backend replica 1 listening").count(),
        2,
        "--since reaches the first run:\n{both}"
    );
}

#[test]
fn the_proxy_adds_a_request_id_and_logs_each_request() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let _env = context.up("dev", &[&format!("services.frontend.expose={port}")]);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let id = answer
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no x-request-id in {answer}"))
        .trim()
        .to_owned();
    wait_for(Duration::from_secs(5), "the access log line", || {
        std::fs::read_to_string(context.path().join(".tier/dev/logs/access.log")).is_ok_and(|log| {
            log.contains(&format!("request_id={id}"))
                && log.contains(
                    "service=frontend replica=frontend-1 method=GET path=/healthz status=200",
                )
        })
    });
}

#[test]
fn foreground_up_prints_prefixed_output_and_ctrl_c_stops_everything() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let mut child = context.spawn(&[
        "up",
        "dev",
        "--set",
        &format!("services.frontend.expose={port}"),
    ]);
    let status = || {
        serde_json::from_str::<serde_json::Value>(
            &context.tier(&["status", "dev", "--output", "json"]).stdout,
        )
        .map(|all| all[0]["status"].clone())
        .unwrap_or_default()
    };
    wait_for(Duration::from_secs(20), "dev to be ready", || {
        status()["services"].as_array().is_some_and(|services| {
            !services.is_empty() && services.iter().all(|service| service["state"] == "running")
        })
    });
    let pids = replica_pids(&status());
    assert_eq!(
        http_get(port, "/").1,
        "Hello from <b>development config</b>!"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("send Ctrl-C");
    let code = child.wait(Duration::from_secs(20));
    let stdout = child.text(Stream::Stdout);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("backend-1  | sample-backend replica 1 listening"),
        "{stdout}"
    );
    assert!(
        stdout.contains("frontend-1 | sample-frontend replica 1 listening"),
        "{stdout}"
    );
    for pid in pids {
        assert!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err(),
            "replica {pid} outlived the agent"
        );
    }
    assert!(
        !context.path().join(".tier/dev/agent.sock").exists(),
        "the socket is removed"
    );
}

#[test]
fn the_control_socket_is_for_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let _env = context.up("dev", &[&format!("services.frontend.expose={port}")]);
    let mode = std::fs::metadata(context.path().join(".tier/dev/agent.sock"))
        .expect("the socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_tcp_service_is_balanced_connection_by_connection() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let env = context.up(
        "dev",
        &[
            &format!("services.frontend.expose={port}"),
            r#"services.backend.protocol="tcp""#,
            "services.backend.replicas=2",
        ],
    );
    let status = env.status();
    let backend = &status["services"][0];
    let url = backend["url"].as_str().unwrap_or_default();
    assert!(url.starts_with("tcp://127.0.0.1:"), "{url}");
    let backend_port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or(0);
    let mut replicas = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let (code, body) = http_get(backend_port, "/");
        assert_eq!(code, 200, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("the backend's JSON");
        assert_eq!(answer["text"], "development config", "{body}");
        replicas.insert(answer["replica"].as_str().unwrap_or_default().to_owned());
    }
    // Each new connection may go to another replica: both answered.
    assert_eq!(
        replicas.into_iter().collect::<Vec<_>>(),
        ["backend-1", "backend-2"]
    );
    // No HTTP proxy in between: no request id is added and nothing is access-logged.
    let access = std::fs::read_to_string(context.path().join(".tier/dev/logs/access.log"))
        .unwrap_or_default();
    assert!(!access.contains("service=backend"), "{access}");
}

#[test]
fn restart_never_leaves_an_exited_replica_down() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let env = context.up(
        "dev",
        &[
            &format!("services.frontend.expose={port}"),
            r#"services.backend.restart="never""#,
        ],
    );
    let pid = env.status()["services"][0]["replicas"][0]["pid"]
        .as_u64()
        .unwrap_or(0) as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("stop the backend");
    wait_for(
        Duration::from_secs(10),
        "the backend to be reported exited",
        || env.status()["services"][0]["state"] == "exited",
    );
    // Nothing may happen here, so there is no condition to wait for: give a restart more
    // than twice the first backoff to show up.
    #[expect(
        clippy::disallowed_methods,
        reason = "waiting for something that must not happen"
    )]
    std::thread::sleep(Duration::from_millis(600));
    let status = env.status();
    assert_eq!(status["services"][0]["restarts"], 0, "{status}");
    assert_eq!(status["services"][0]["ready"], 0, "{status}");
    assert!(
        status["services"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("exit code 0"),
        "{status}"
    );
    let (code, body) = http_get(port, "/");
    assert_eq!(code, 502, "the frontend says the backend is gone: {body}");
    assert!(body.contains("could not be reached"), "{body}");
}

#[test]
fn up_with_a_command_that_is_not_executable_says_so() {
    let context = TestContext::sample_app();
    context.write("bin/backend.sh", "#!/bin/sh\nexit 0\n");
    tier_snapshot!(context.tier(&[
        "up",
        "dev",
        "-d",
        "--set",
        r#"services.backend.command=["bin/backend.sh"]"#,
    ]));
}

/// The pid of every replica in an environment's status.
fn replica_pids(status: &serde_json::Value) -> Vec<i32> {
    status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|service| service["replicas"].as_array().cloned().unwrap_or_default())
        .filter_map(|replica| replica["pid"].as_u64())
        .map(|pid| pid as i32)
        .collect()
}

#[test]
fn logs_follow_prints_new_lines_as_replicas_write_them() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let env = context.up("dev", &[&format!("services.frontend.expose={port}")]);
    let mut follow = context.spawn(&["logs", "dev", "backend", "-f"]);
    // The backend's first start is already on disk; a restart writes a new line.
    let first = follow.wait_for_line(Stream::Stdout, "backend-1 |", Duration::from_secs(10));
    assert!(
        first.starts_with("backend-1 | sample-backend replica 1 listening"),
        "{first}"
    );
    let pid = env.status()["services"][0]["replicas"][0]["pid"]
        .as_u64()
        .unwrap_or(0) as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the backend");
    let next = follow.wait_for_line(Stream::Stdout, "backend-1 |", Duration::from_secs(10));
    assert!(
        next.starts_with("backend-1 | sample-backend replica 1 listening"),
        "{next}"
    );
}
