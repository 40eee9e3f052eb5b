//! The runtime config store end to end: each environment's agent serves its store, the sample
//! frontend follows a feature flag through `tier-client`, `tier config` and `tier flag` change
//! values at run time, tokens keep environments apart, discovery lists ready replicas, and
//! acknowledged writes survive the agent killed with SIGKILL. The real `tier` binary, real
//! agents and replicas, real sockets.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tier_test::{RunningEnv, Stream, TestContext, http_call, http_get, tier_snapshot, wait_for};

/// The store's port and the environment's tokens, as the agent left them under `.tier/<env>/`.
struct StoreAccess {
    port: u16,
    read_only: String,
    read_write: String,
}

fn store_access(context: &TestContext, env: &str) -> StoreAccess {
    let ports: Value = serde_json::from_str(&context.read(&format!(".tier/{env}/ports.json")))
        .expect("ports.json is JSON");
    let tokens: Value = serde_json::from_str(&context.read(&format!(".tier/{env}/tokens.json")))
        .expect("tokens.json is JSON");
    StoreAccess {
        port: ports["_store"].as_u64().expect("the store's port") as u16,
        read_only: tokens["read_only"]
            .as_str()
            .expect("a read-only token")
            .to_owned(),
        read_write: tokens["read_write"]
            .as_str()
            .expect("a read-write token")
            .to_owned(),
    }
}

fn frontend_replica(env: &RunningEnv<'_>) -> (Value, Value) {
    let status = env.status();
    let frontend = status["services"]
        .as_array()
        .and_then(|services| {
            services
                .iter()
                .find(|service| service["name"] == "frontend")
        })
        .cloned()
        .expect("the frontend's status");
    let replica = frontend["replicas"][0].clone();
    (replica["pid"].clone(), replica["restarts"].clone())
}

#[test]
fn a_flag_turned_on_changes_the_page_without_a_restart() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let env = context.up("dev", &[&format!("services.frontend.expose={port}")]);
    assert_eq!(
        http_get(port, "/").1,
        "Hello from <b>development config</b>!"
    );
    let before = frontend_replica(&env);

    tier_snapshot!(
        "flag_on",
        context.tier(&["flag", "on", "dev", "show-replica"])
    );
    let started = std::time::Instant::now();
    wait_for(
        Duration::from_secs(10),
        "the page to name the replica",
        || {
            http_get(port, "/").1
                == "Hello from <b>development config</b>!<p>Served by <code>backend-1</code>.</p>"
        },
    );
    eprintln!(
        "the page changed {:?} after `tier flag on`",
        started.elapsed()
    );
    assert_eq!(
        frontend_replica(&env),
        before,
        "the frontend was neither restarted nor replaced"
    );

    tier_snapshot!("flag_ls", context.tier(&["flag", "ls", "dev"]));

    context
        .tier(&["flag", "off", "dev", "show-replica"])
        .success();
    wait_for(
        Duration::from_secs(10),
        "the page to drop the replica",
        || http_get(port, "/").1 == "Hello from <b>development config</b>!",
    );

    // A rollout to every key, then to half of them, then to none.
    tier_snapshot!(
        "flag_on_for_every_key",
        context.tier(&["flag", "on", "dev", "show-replica", "--percent", "100"])
    );
    wait_for(Duration::from_secs(10), "a 100% rollout to show", || {
        http_get(port, "/").1.contains("Served by")
    });
    // Half the keys: the page's key is its `visitor` cookie, set on a first visit, so one
    // visitor keeps its answer and about half of them see the replica.
    context
        .tier(&["flag", "on", "dev", "show-replica", "--percent", "50"])
        .success();
    let (_, head, _) = tier_test::http_get_with(port, "/", &[]);
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nset-cookie: visitor="),
        "a first visit gets a visitor cookie:\n{head}"
    );
    let shown = |visitor: usize| {
        let cookie = format!("visitor=v{visitor}");
        tier_test::http_get_with(port, "/", &[("Cookie", &cookie)])
            .2
            .contains("Served by")
    };
    wait_for(
        Duration::from_secs(10),
        "a 50% rollout to reach the page",
        || !(0..40).all(shown),
    );
    let seen: Vec<bool> = (0..40).map(shown).collect();
    let count = seen.iter().filter(|shown| **shown).count();
    assert!(
        (8..=32).contains(&count),
        "{count} of 40 visitors see the replica at 50%"
    );
    assert_eq!(
        (0..40).map(shown).collect::<Vec<_>>(),
        seen,
        "each visitor keeps its answer"
    );
    context
        .tier(&["flag", "on", "dev", "show-replica", "--percent", "0"])
        .success();
    wait_for(Duration::from_secs(10), "a 0% rollout to hide", || {
        http_get(port, "/").1 == "Hello from <b>development config</b>!"
    });

    tier_snapshot!(
        "flag_misspelt",
        context.tier(&["flag", "on", "dev", "show-replicas"])
    );
}

#[test]
fn config_changes_are_audited_and_roll_back_through_the_running_agent() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let _env = context.up("dev", &[&format!("services.frontend.expose={port}")]);
    let first = context
        .tier(&["config", "set", "dev", "backend/limit", "10"])
        .success()
        .stdout;
    let first_revision: u64 = first
        .trim()
        .rsplit_once("(revision ")
        .and_then(|(_, rest)| rest.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("a revision in {first:?}"));
    context
        .tier(&["config", "set", "dev", "backend/limit", r#"{"max": 20}"#])
        .success();
    assert_eq!(
        context
            .tier(&["config", "get", "dev", "backend/limit"])
            .stdout,
        "{\"max\":20}\n"
    );

    tier_snapshot!(
        "config_ls",
        context.tier(&["config", "ls", "dev", "backend/"])
    );

    let history = context.json(&["config", "history", "dev", "backend/limit"]);
    let records = history["history"].as_array().expect("records");
    assert_eq!(records.len(), 2, "{history}");
    assert_eq!(records[0]["old"], Value::Null);
    assert_eq!(records[0]["new"]["value"], 10);
    assert_eq!(records[1]["old"]["value"], 10);
    assert_eq!(records[1]["new"]["value"]["max"], 20);
    assert!(
        records[1]["actor"]
            .as_str()
            .is_some_and(|actor| !actor.is_empty()),
        "{history}"
    );

    context
        .tier(&[
            "config",
            "rollback",
            "dev",
            "backend/limit",
            "--to",
            &first_revision.to_string(),
        ])
        .success();
    assert_eq!(
        context
            .tier(&["config", "get", "dev", "backend/limit"])
            .stdout,
        "10\n"
    );

    context
        .tier(&["config", "rm", "dev", "backend/limit"])
        .success();
    tier_snapshot!(
        "config_get_of_a_removed_key",
        context.tier(&["config", "get", "dev", "backend/limit"])
    );
}

#[test]
fn rollback_to_before_a_key_existed_says_it_deletes_it_and_needs_yes() {
    let context = TestContext::sample_app();
    let set = |key: &str, value: &str| {
        context.json(&["config", "set", "dev", key, value])["revision"]
            .as_u64()
            .expect("a revision")
    };
    let before = set("greeting", "\"hi\"");
    set("limit", "10");
    let to = before.to_string();

    tier_snapshot!(context.tier(&["config", "rollback", "dev", "limit", "--to", &to]), @r"
    success: false
    exit_code: 2
    ----- stdout -----

    ----- stderr -----
    error: limit did not exist at revision 1: rolling back deletes it
    hint: add --yes to delete limit
    ");
    assert_eq!(
        context.tier(&["config", "get", "dev", "limit"]).stdout,
        "10\n"
    );
    // A key that existed then needs no --yes.
    context
        .tier(&["config", "rollback", "dev", "greeting", "--to", &to])
        .success();

    let deleted = context
        .tier(&["config", "rollback", "dev", "limit", "--to", &to, "--yes"])
        .success();
    assert_eq!(
        deleted.stdout,
        "dev: limit deleted, as it was at revision 1 (revision 4)\n"
    );
    context
        .tier(&["config", "get", "dev", "limit"])
        .expect_code(1);
}

#[test]
fn config_works_on_a_stopped_environment_and_the_agent_serves_it_later() {
    let mut context = TestContext::sample_app();
    context
        .tier(&["config", "set", "dev", "greeting", "\"hi\""])
        .success();
    let port = context.free_port();
    let _env = context.up("dev", &[&format!("services.frontend.expose={port}")]);
    let store = store_access(&context, "dev");
    let (status, body) = http_call(
        store.port,
        "GET",
        "/v1/kv/greeting",
        Some(&store.read_only),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["value"], "hi");
}

#[test]
fn each_environment_has_its_own_tokens_and_discovery() {
    let mut context = TestContext::sample_app();
    let dev_port = context.free_port();
    let stage_port = context.free_port();
    let _dev = context.up("dev", &[&format!("services.frontend.expose={dev_port}")]);
    let _stage = context.up(
        "stage",
        &[
            &format!("services.frontend.expose={stage_port}"),
            "services.backend.replicas=2",
        ],
    );
    let dev = store_access(&context, "dev");
    let stage = store_access(&context, "stage");
    assert_ne!(dev.port, stage.port);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(context.path().join(".tier/stage/tokens.json"))
            .expect("the tokens file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let put = r#"{"value": "from dev"}"#;
    let (status, body) = http_call(
        stage.port,
        "PUT",
        "/v1/kv/x",
        Some(&dev.read_write),
        Some(put),
    );
    assert_eq!(status, 403, "dev's token on stage's store: {body}");
    let (status, body) = http_call(stage.port, "GET", "/v1/kv/x", None, None);
    assert_eq!(status, 401, "no token: {body}");
    let (status, body) = http_call(
        stage.port,
        "PUT",
        "/v1/kv/x",
        Some(&stage.read_only),
        Some(put),
    );
    assert_eq!(status, 403, "a read-only token writing: {body}");
    let (status, _) = http_call(stage.port, "GET", "/v1/kv/x", Some(&stage.read_only), None);
    assert_eq!(status, 404, "nothing was written");

    let (status, body) = http_call(
        stage.port,
        "GET",
        "/v1/services/backend",
        Some(&stage.read_only),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).expect("JSON");
    let replicas: Vec<&str> = listed["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .filter_map(|endpoint| endpoint["replica"].as_str())
        .collect();
    assert_eq!(replicas, ["1", "2"], "{body}");
    for endpoint in listed["endpoints"].as_array().into_iter().flatten() {
        let address = endpoint["address"].as_str().unwrap_or_default();
        let port: u16 = address
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or(0);
        let (status, body) = http_get(port, "/");
        assert_eq!(status, 200, "a listed endpoint answers: {body}");
    }
}

/// At least 10 kills and 1,000 acknowledged writes: every acknowledged write is there after
/// each restart, and the revision never goes backwards.
#[test]
fn acknowledged_writes_survive_the_agent_killed_with_sigkill() {
    const ROUNDS: usize = 10;
    const WRITERS: usize = 4;
    const ACKED_BEFORE_KILL: usize = 120;
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let sets = [format!("services.frontend.expose={port}")];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let acknowledged: Arc<Mutex<BTreeMap<String, (String, u64)>>> = Arc::default();
    let mut highest_seen = 0u64;

    for round in 0..ROUNDS {
        let env = context.up("dev", &sets);
        let store = store_access(&context, "dev");

        // Everything acknowledged so far is there, and the store is not behind it.
        let (status, body) = http_call(
            store.port,
            "GET",
            "/v1/kv?prefix=load/",
            Some(&store.read_only),
            None,
        );
        assert_eq!(status, 200, "{body}");
        let listing: Value = serde_json::from_str(&body).expect("JSON");
        let revision = listing["revision"].as_u64().expect("a revision");
        assert!(
            revision >= highest_seen,
            "round {round}: the revision went back from {highest_seen} to {revision}"
        );
        let present: BTreeMap<String, String> = listing["kvs"]
            .as_array()
            .expect("kvs")
            .iter()
            .map(|kv| {
                (
                    kv["key"].as_str().unwrap_or_default().to_owned(),
                    kv["value"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        for (key, (value, _)) in acknowledged.lock().expect("the log").iter() {
            assert_eq!(
                present.get(key),
                Some(value),
                "round {round}: the acknowledged write of {key} is missing"
            );
        }

        // Writers until the agent dies under them.
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let acknowledged = Arc::clone(&acknowledged);
                let stop = Arc::clone(&stop);
                let token = store.read_write.clone();
                let store_port = store.port;
                std::thread::spawn(move || {
                    for i in 0.. {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let key = format!("load/{round}/{writer}/{i}");
                        let value = format!("v{round}-{writer}-{i}");
                        let body = format!(r#"{{"value": "{value}"}}"#);
                        let (status, answer) = http_call(
                            store_port,
                            "PUT",
                            &format!("/v1/kv/{key}"),
                            Some(&token),
                            Some(&body),
                        );
                        if status != 200 {
                            return;
                        }
                        let revision = serde_json::from_str::<Value>(&answer)
                            .ok()
                            .and_then(|answer| answer["revision"].as_u64())
                            .unwrap_or(0);
                        acknowledged
                            .lock()
                            .expect("the log")
                            .insert(key, (value, revision));
                    }
                })
            })
            .collect();
        let target = (round + 1) * ACKED_BEFORE_KILL;
        wait_for(Duration::from_secs(30), "writes to be acknowledged", || {
            acknowledged.lock().expect("the log").len() >= target
        });
        let pid = env.status()["agent_pid"].as_i64().expect("the agent's pid") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the agent");
        stop.store(true, Ordering::SeqCst);
        for writer in writers {
            writer.join().expect("a writer");
        }
        wait_for(Duration::from_secs(10), "the agent to be gone", || {
            context
                .tier(&["status", "dev"])
                .stdout
                .contains("not running")
        });
        highest_seen = acknowledged
            .lock()
            .expect("the log")
            .values()
            .map(|(_, revision)| *revision)
            .max()
            .unwrap_or(0);
        drop(env);
    }

    let total = acknowledged.lock().expect("the log").len();
    assert!(
        total >= ROUNDS * ACKED_BEFORE_KILL,
        "{total} acknowledged writes"
    );
    let env = context.up("dev", &sets);
    let store = store_access(&context, "dev");
    let (status, body) = http_call(
        store.port,
        "GET",
        "/v1/kv?prefix=load/",
        Some(&store.read_only),
        None,
    );
    assert_eq!(status, 200);
    let listing: Value = serde_json::from_str(&body).expect("JSON");
    let count = listing["kvs"].as_array().map_or(0, Vec::len);
    assert!(
        count >= total,
        "{count} keys for {total} acknowledged writes"
    );
    drop(env);
}

#[test]
fn config_watch_prints_each_change_as_it_happens() {
    let mut context = TestContext::sample_app();
    let port = context.free_port();
    let _env = context.up("dev", &[&format!("services.frontend.expose={port}")]);
    let mut watch = context.spawn(&["config", "watch", "dev", "backend/", "--prefix"]);
    let mut printed = |within| loop {
        match watch.next_line(within) {
            Some((Stream::Stdout, line)) => return Some(line),
            Some((Stream::Stderr, _)) => {}
            None => return None,
        }
    };
    // The watch starts from the next change: keep writing until it has seen one, so the
    // test does not depend on when the stream opened.
    let mut seen = Vec::new();
    wait_for(
        Duration::from_secs(10),
        "the watch to print a change",
        || {
            let _ = context.tier(&["config", "set", "dev", "backend/ping", "1"]);
            while let Some(line) = printed(Duration::from_millis(200)) {
                seen.push(line);
            }
            !seen.is_empty()
        },
    );
    assert!(
        seen.iter()
            .all(|line| line.ends_with(" put backend/ping = 1")),
        "{seen:?}"
    );
    context
        .tier(&["config", "rm", "dev", "backend/ping"])
        .success();
    context
        .tier(&["config", "set", "dev", "elsewhere", "1"])
        .success();
    context
        .tier(&["config", "set", "dev", "backend/limit", "{\"max\": 3}"])
        .success();
    let mut after = Vec::new();
    wait_for(Duration::from_secs(10), "the delete and the put", || {
        while let Some(line) = printed(Duration::from_millis(100)) {
            after.push(line);
        }
        after.len() >= 2
    });
    assert!(after[0].ends_with(" delete backend/ping"), "{after:?}");
    assert!(
        after[1].ends_with(r#" put backend/limit = {"max":3}"#),
        "{after:?}"
    );
    assert!(
        after.iter().all(|line| !line.contains("elsewhere")),
        "a key outside the prefix is not printed: {after:?}"
    );
    let revisions: Vec<u64> = seen
        .iter()
        .chain(&after)
        .filter_map(|line| line.split(' ').next()?.parse().ok())
        .collect();
    assert!(
        revisions.windows(2).all(|pair| pair[0] < pair[1]),
        "revisions only grow: {revisions:?}"
    );
}
