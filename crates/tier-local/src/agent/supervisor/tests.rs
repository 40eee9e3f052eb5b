//! The supervisor's rules, driven event by event with a clock that is only ever moved by
//! hand: nothing here sleeps or starts a process.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{Effect, Event, Phase, Stop, Supervisor, backoff};
use crate::agent::status::{Reach, service_status};
use crate::control::ServiceState;
use crate::probes::ProbeKind;

/// The `dev` environment of a project whose services are given as TOML tables.
fn environment(project: &str, services: &str) -> tier_model::Environment {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let text = format!("[project]\nname = \"shop\"\n{project}\n[environments.dev]\n\n{services}");
    std::fs::write(dir.path().join("tier.toml"), text).expect("tier.toml written");
    let mut loaded = tier_model::Project::load(dir.path()).expect("the project loads");
    loaded
        .resolve("dev", &[])
        .map(|resolved| resolved.environment)
        .unwrap_or_else(|problems| panic!("dev resolves: {problems:?}"))
}

/// db <- api (2 replicas) <- web.
const CHAIN: &str = r#"
[services.db]
command = ["db"]
port = 5432

[services.api]
command = ["api"]
port = 8080
replicas = 2
depends_on = ["db"]

[services.web]
command = ["web"]
port = 8081
depends_on = ["api"]
"#;

fn supervisor(project: &str, services: &str) -> Supervisor {
    Supervisor::new(&environment(project, services), &BTreeMap::new())
}

/// The (service, replica, generation) of every spawn among the effects.
fn spawns(effects: &[Effect]) -> Vec<(String, u32, u64)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Spawn {
                service,
                replica,
                generation,
                ..
            } => Some((service.clone(), *replica, *generation)),
            _ => None,
        })
        .collect()
}

fn started_services(effects: &[Effect]) -> Vec<String> {
    let mut names: Vec<String> = spawns(effects).into_iter().map(|(name, ..)| name).collect();
    names.dedup();
    names
}

/// Marks every spawn as running with a pid of its own, as the agent does once it spawned.
fn run_all(supervisor: &mut Supervisor, effects: &[Effect]) {
    for (service, replica, generation) in spawns(effects) {
        let pid = 1000 + generation as u32;
        supervisor.started(
            &service,
            replica,
            generation,
            40000 + replica as u16,
            Some(pid),
        );
    }
}

fn ready(supervisor: &mut Supervisor, spawn: &(String, u32, u64), now: Instant) -> Vec<Effect> {
    supervisor.on(
        Event::Probe {
            service: spawn.0.clone(),
            replica: spawn.1,
            generation: spawn.2,
            kind: ProbeKind::Readiness,
            result: Ok(()),
        },
        now,
    )
}

fn exit(
    supervisor: &mut Supervisor,
    spawn: &(String, u32, u64),
    success: bool,
    now: Instant,
) -> Vec<Effect> {
    supervisor.on(
        Event::Exited {
            service: spawn.0.clone(),
            replica: spawn.1,
            generation: spawn.2,
            success,
            how: if success {
                "exit code 0"
            } else {
                "exit code 1"
            }
            .to_owned(),
            output: Some("boom".to_owned()),
        },
        now,
    )
}

/// The delay of the restart among the effects, if one was scheduled.
fn restart_delay(effects: &[Effect]) -> Option<Duration> {
    effects.iter().find_map(|effect| match effect {
        Effect::RestartAfter { delay, .. } => Some(*delay),
        _ => None,
    })
}

/// Lets the scheduled restart come due and answers the new spawn.
fn restart(
    supervisor: &mut Supervisor,
    spawn: &(String, u32, u64),
    now: Instant,
) -> (String, u32, u64) {
    let effects = supervisor.on(
        Event::RestartDue {
            service: spawn.0.clone(),
            replica: spawn.1,
            generation: spawn.2,
        },
        now,
    );
    run_all(supervisor, &effects);
    let respawned = spawns(&effects);
    assert_eq!(respawned.len(), 1, "one respawn: {effects:?}");
    respawned[0].clone()
}

fn state(supervisor: &Supervisor, name: &str, now: Instant) -> (ServiceState, Option<String>) {
    let service = supervisor.service(name).expect("the service exists");
    let reach = Reach {
        proxy_port: 1,
        exposed: None,
    };
    let status = service_status(supervisor, name, service, &reach, now);
    (status.state, status.reason)
}

#[test]
fn backoff_doubles_from_a_quarter_second_and_stops_at_fifteen() {
    let delays: Vec<u64> = (1..=9).map(|n| backoff(n).as_millis() as u64).collect();
    assert_eq!(
        delays,
        [250, 500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]
    );
    assert_eq!(backoff(u32::MAX), Duration::from_secs(15));
}

#[test]
fn each_failure_in_a_row_waits_longer_before_the_restart() {
    let mut supervisor = supervisor("", "[services.db]\ncommand = [\"db\"]\nport = 1\n");
    let t0 = Instant::now();
    let effects = supervisor.start_ready(t0);
    run_all(&mut supervisor, &effects);
    let mut spawn = spawns(&effects)[0].clone();
    let mut delays = Vec::new();
    for step in 0..8 {
        let now = t0 + Duration::from_secs(step);
        let effects = exit(&mut supervisor, &spawn, false, now);
        delays.push(restart_delay(&effects).expect("a restart is scheduled"));
        spawn = restart(&mut supervisor, &spawn, now);
    }
    let millis: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
    assert_eq!(millis, [250, 500, 1000, 2000, 4000, 8000, 15000, 15000]);
    let replica = &supervisor.service("db").expect("db").replicas[0];
    assert_eq!(replica.restarts, 8);
}

#[test]
fn a_replica_ready_long_enough_is_forgiven_its_earlier_failures() {
    let mut supervisor = supervisor("", "[services.db]\ncommand = [\"db\"]\nport = 1\n");
    let t0 = Instant::now();
    let effects = supervisor.start_ready(t0);
    run_all(&mut supervisor, &effects);
    let mut spawn = spawns(&effects)[0].clone();
    for _ in 0..4 {
        exit(&mut supervisor, &spawn, false, t0);
        spawn = restart(&mut supervisor, &spawn, t0);
    }
    ready(&mut supervisor, &spawn, t0);
    let later = t0 + Duration::from_secs(11);
    let effects = exit(&mut supervisor, &spawn, false, later);
    assert_eq!(restart_delay(&effects), Some(Duration::from_millis(250)));
}

#[test]
fn a_crash_loop_is_reported_on_the_service_and_on_its_dependents() {
    let mut supervisor = supervisor("", CHAIN);
    let t0 = Instant::now();
    let effects = supervisor.start_ready(t0);
    run_all(&mut supervisor, &effects);
    let mut db = spawns(&effects)[0].clone();
    for _ in 0..2 {
        exit(&mut supervisor, &db, false, t0);
        db = restart(&mut supervisor, &db, t0);
    }
    assert_eq!(state(&supervisor, "db", t0).0, ServiceState::Starting);
    exit(&mut supervisor, &db, false, t0);
    assert_eq!(
        state(&supervisor, "db", t0),
        (
            ServiceState::CrashLoop,
            Some(
                "crash-looping: replica 1 exited 3 times in a row, last: exit code 1: boom"
                    .to_owned()
            )
        )
    );
    assert_eq!(
        state(&supervisor, "api", t0),
        (
            ServiceState::Waiting,
            Some("waiting for db, which is crash-looping".to_owned())
        )
    );
}

#[test]
fn readiness_of_a_whole_wave_gates_the_next_one() {
    let mut supervisor = supervisor("", CHAIN);
    let t0 = Instant::now();
    let first = supervisor.start_ready(t0);
    run_all(&mut supervisor, &first);
    assert_eq!(started_services(&first), ["db"]);
    assert!(supervisor.start_ready(t0).is_empty(), "api waits for db");
    assert_eq!(
        state(&supervisor, "api", t0),
        (
            ServiceState::Waiting,
            Some("waiting for db: 0/1 ready".to_owned())
        )
    );

    ready(&mut supervisor, &spawns(&first)[0], t0);
    let second = supervisor.start_ready(t0);
    run_all(&mut supervisor, &second);
    assert_eq!(spawns(&second).len(), 2, "both api replicas start");
    assert_eq!(started_services(&second), ["api"]);

    ready(&mut supervisor, &spawns(&second)[0], t0);
    assert!(
        supervisor.start_ready(t0).is_empty(),
        "web waits until every api replica is ready"
    );
    ready(&mut supervisor, &spawns(&second)[1], t0);
    assert_eq!(started_services(&supervisor.start_ready(t0)), ["web"]);
}

#[test]
fn a_dependency_that_stops_being_ready_does_not_stop_started_dependents() {
    let mut supervisor = supervisor("", CHAIN);
    let t0 = Instant::now();
    let first = supervisor.start_ready(t0);
    run_all(&mut supervisor, &first);
    ready(&mut supervisor, &spawns(&first)[0], t0);
    let second = supervisor.start_ready(t0);
    assert_eq!(started_services(&second), ["api"]);
    exit(&mut supervisor, &spawns(&first)[0], false, t0);
    assert!(supervisor.start_ready(t0).is_empty());
    assert_eq!(supervisor.service("api").expect("api").replicas.len(), 2);
}

#[test]
fn without_ordering_every_service_starts_at_once() {
    let mut supervisor = supervisor("ordering = false", CHAIN);
    let effects = supervisor.start_ready(Instant::now());
    assert_eq!(started_services(&effects), ["api", "db", "web"]);
    assert_eq!(spawns(&effects).len(), 4);
}

#[test]
fn restart_policy_decides_which_exits_come_back() {
    let services = r#"
[services.always]
command = ["a"]
port = 1

[services.failing]
command = ["f"]
port = 2
restart = "on-failure"

[services.once]
command = ["o"]
port = 3
restart = "never"
"#;
    let mut supervisor = supervisor("ordering = false", services);
    let t0 = Instant::now();
    let effects = supervisor.start_ready(t0);
    run_all(&mut supervisor, &effects);
    let spawn = |name: &str| {
        spawns(&effects)
            .into_iter()
            .find(|(service, ..)| service == name)
            .expect("spawned")
    };
    assert!(restart_delay(&exit(&mut supervisor, &spawn("always"), true, t0)).is_some());
    assert!(restart_delay(&exit(&mut supervisor, &spawn("failing"), true, t0)).is_none());
    assert!(restart_delay(&exit(&mut supervisor, &spawn("once"), false, t0)).is_none());
    assert_eq!(
        state(&supervisor, "once", t0),
        (
            ServiceState::Exited,
            Some("exited: exit code 1: boom".to_owned())
        )
    );
    assert_eq!(
        state(&supervisor, "failing", t0),
        (ServiceState::Exited, Some("exited: exit code 0".to_owned()))
    );
}

#[test]
fn news_about_a_replaced_process_is_ignored() {
    let mut supervisor = supervisor("", "[services.db]\ncommand = [\"db\"]\nport = 1\n");
    let t0 = Instant::now();
    let effects = supervisor.start_ready(t0);
    run_all(&mut supervisor, &effects);
    let old = spawns(&effects)[0].clone();
    exit(&mut supervisor, &old, false, t0);
    let new = restart(&mut supervisor, &old, t0);
    assert!(exit(&mut supervisor, &old, false, t0).is_empty());
    assert!(ready(&mut supervisor, &old, t0).is_empty());
    let replica = &supervisor.service("db").expect("db").replicas[0];
    assert_eq!(
        (replica.phase, replica.generation),
        (Phase::Starting, new.2)
    );
}

#[test]
fn failed_liveness_probes_kill_the_replica_and_its_exit_says_why() {
    let services = r#"
[services.db]
command = ["db"]
port = 1
liveness = { tcp = 1, failure_threshold = 2 }
"#;
    let mut supervisor = supervisor("", services);
    let t0 = Instant::now();
    let effects = supervisor.start_ready(t0);
    run_all(&mut supervisor, &effects);
    let spawn = spawns(&effects)[0].clone();
    let probe = |supervisor: &mut Supervisor| {
        supervisor.on(
            Event::Probe {
                service: spawn.0.clone(),
                replica: spawn.1,
                generation: spawn.2,
                kind: ProbeKind::Liveness,
                result: Err("connection refused".to_owned()),
            },
            t0,
        )
    };
    assert!(
        probe(&mut supervisor).is_empty(),
        "one failure is not enough"
    );
    let effects = probe(&mut supervisor);
    let pid = 1000 + spawn.2 as u32;
    assert!(effects.contains(&Effect::Signal {
        pid,
        stop: Stop::Kill
    }));
    let effects = supervisor.on(
        Event::Exited {
            service: spawn.0.clone(),
            replica: spawn.1,
            generation: spawn.2,
            success: false,
            how: "killed by SIGKILL".to_owned(),
            output: None,
        },
        t0,
    );
    assert!(restart_delay(&effects).is_some());
    let replica = &supervisor.service("db").expect("db").replicas[0];
    assert_eq!(
        replica.last_exit.as_deref(),
        Some("killed by tier: liveness probe failed 2 times in a row (connection refused)")
    );
}

#[test]
fn a_stopping_supervisor_restarts_nothing_and_signals_each_wave() {
    let mut supervisor = supervisor("", CHAIN);
    let t0 = Instant::now();
    let first = supervisor.start_ready(t0);
    run_all(&mut supervisor, &first);
    let db = spawns(&first)[0].clone();
    ready(&mut supervisor, &db, t0);
    let second = supervisor.start_ready(t0);
    run_all(&mut supervisor, &second);

    assert_eq!(supervisor.last_wave(), 2);
    let top = supervisor.stop_wave(2);
    assert!(
        top.iter()
            .all(|effect| !matches!(effect, Effect::Signal { .. })),
        "web never started"
    );
    let api = supervisor.stop_wave(1);
    let terms = api
        .iter()
        .filter(|effect| {
            matches!(
                effect,
                Effect::Signal {
                    stop: Stop::Term,
                    ..
                }
            )
        })
        .count();
    assert_eq!(terms, 2);
    assert_eq!(supervisor.running(0), [1000 + db.2 as u32]);
    assert!(restart_delay(&exit(&mut supervisor, &db, false, t0)).is_none());
    assert!(supervisor.running(0).is_empty());
    assert!(supervisor.start_ready(t0).is_empty());
}

#[test]
fn a_retired_replica_leaves_rotation_at_once_and_the_service_when_it_exits() {
    let mut supervisor = supervisor(
        "",
        "[services.db]\ncommand = [\"db\"]\nport = 1\nreplicas = 2\n",
    );
    let t0 = Instant::now();
    let effects = supervisor.start_ready(t0);
    run_all(&mut supervisor, &effects);
    for spawn in spawns(&effects) {
        ready(&mut supervisor, &spawn, t0);
    }
    assert_eq!(supervisor.service("db").expect("db").ready(), 2);
    let first = spawns(&effects)[0].clone();
    supervisor.retire("db", first.1);
    assert_eq!(supervisor.service("db").expect("db").ready(), 1);
    assert!(restart_delay(&exit(&mut supervisor, &first, true, t0)).is_none());
    let ids: Vec<u32> = supervisor
        .service("db")
        .expect("db")
        .replicas
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, [2]);
    let (id, _) = supervisor.add_replica("db").expect("db exists");
    assert_eq!(
        id, 3,
        "the apply that retired replica 1 does not number another 1"
    );
    supervisor.release_held();
    let (id, _) = supervisor.add_replica("db").expect("db exists");
    assert_eq!(
        id, 1,
        "once the apply finished, the freed number is used again"
    );
}
