//! The state store through its public API: lock, revisions, deployed pointer, serial,
//! corruption and persistence.

use std::collections::BTreeMap;
use std::path::Path;

use tier_model::environment::Artifact;
use tier_state::{Holder, Origin, Outcome, State, StateError};

fn fixed_clock() -> u64 {
    1_700_000_000_000
}

fn open(dir: &Path) -> State {
    State::open_with_clock(dir, fixed_clock).expect("the state opens")
}

fn holder(command: &str) -> Holder {
    Holder::this_process(command, fixed_clock())
}

fn artifacts(digest: &str) -> BTreeMap<String, Artifact> {
    BTreeMap::from([(
        "backend".to_owned(),
        Artifact {
            digest: digest.to_owned(),
            source: "target/release/sample-backend".to_owned(),
        },
    )])
}

fn spec(replicas: u64) -> serde_json::Value {
    serde_json::json!({ "services": { "backend": { "replicas": replicas } } })
}

#[test]
fn open_creates_the_directory_and_the_database() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let env_dir = temp.path().join(".tier").join("dev");
    let state = open(&env_dir);
    assert_eq!(state.path(), env_dir.join("state.redb"));
    assert!(env_dir.join("state.redb").is_file());
    assert_eq!(state.serial().expect("serial"), 0);
    assert_eq!(state.deployed().expect("deployed"), None);
    assert!(state.history().expect("history").is_empty());
    assert_eq!(state.lock_holder().expect("lock holder"), None);
    assert_eq!(state.revision(1).expect("revision"), None);
}

#[test]
fn a_second_lock_fails_naming_the_live_holder() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let state = open(temp.path());
    let first = holder("tier apply dev");
    let _lock = state.lock(first.clone()).expect("the first lock");

    let second = State::open(temp.path()).expect("a second handle opens while locked");
    match second.lock(holder("tier apply dev --again")) {
        Err(StateError::Locked { holder, alive }) => {
            assert_eq!(holder, first);
            assert!(alive);
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let message = second
        .lock(holder("x"))
        .expect_err("still locked")
        .to_string();
    assert!(message.contains("tier apply dev"), "{message}");
    assert!(
        message.contains(&std::process::id().to_string()),
        "{message}"
    );
    assert_eq!(second.lock_holder().expect("lock holder"), Some(first));
}

#[test]
fn release_and_drop_free_the_lock() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let state = open(temp.path());
    let lock = state.lock(holder("one")).expect("lock");
    lock.release().expect("release");
    assert_eq!(state.lock_holder().expect("lock holder"), None);
    {
        let _lock = state.lock(holder("two")).expect("lock again");
    }
    assert_eq!(state.lock_holder().expect("lock holder"), None);
    state.lock(holder("three")).expect("lock after drop");
}

#[test]
#[expect(
    clippy::disallowed_methods,
    reason = "the test needs the pid of a process that has exited; tier_local::spawn is above this crate"
)]
fn a_dead_holder_is_reported_and_its_lock_broken_only_on_request() {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("`true` starts");
    let pid = child.id();
    assert!(child.wait().expect("`true` exits").success());

    let temp = tempfile::tempdir().expect("a temporary directory");
    let state = open(temp.path());
    let dead = Holder {
        pid,
        ..holder("tier apply dev")
    };
    let lock = state.lock(dead.clone()).expect("lock");
    // The holder died without releasing: leave the record behind as a killed process would.
    std::mem::forget(lock);

    assert!(!dead.is_alive());
    match state.lock(holder("tier apply dev")) {
        Err(StateError::Locked { holder, alive }) => {
            assert_eq!(holder, dead);
            assert!(!alive);
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    // Not broken by the failed attempt.
    assert_eq!(
        state.lock_holder().expect("lock holder"),
        Some(dead.clone())
    );

    assert_eq!(state.break_lock().expect("break"), Some(dead));
    assert_eq!(state.lock_holder().expect("lock holder"), None);
    assert_eq!(state.break_lock().expect("break again"), None);
    state
        .lock(holder("tier apply dev"))
        .expect("lock after break");
}

#[test]
fn the_lock_does_not_move_the_serial() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let state = open(temp.path());
    state
        .lock(holder("one"))
        .expect("lock")
        .release()
        .expect("release");
    std::mem::forget(state.lock(holder("two")).expect("lock"));
    state.break_lock().expect("break");
    assert_eq!(state.serial().expect("serial"), 0);
}

#[test]
fn begin_and_finish_record_revisions_and_move_deployed_on_success() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let state = open(temp.path());
    let lock = state.lock(holder("tier apply dev")).expect("lock");

    let first = lock
        .begin(&spec(1), &artifacts("sha256:1"), "ana", Origin::Apply)
        .expect("begin");
    assert_eq!(first, 1);
    assert_eq!(state.serial().expect("serial"), 1);
    assert_eq!(state.deployed().expect("deployed"), None);
    let in_progress = state.revision(1).expect("revision").expect("revision 1");
    assert_eq!(in_progress.outcome, Outcome::InProgress);
    assert_eq!(in_progress.finished_unix_ms, None);
    assert_eq!(in_progress.started_unix_ms, fixed_clock());
    assert_eq!(in_progress.who, "ana");
    assert_eq!(in_progress.spec, spec(1));
    assert_eq!(in_progress.artifacts, artifacts("sha256:1"));

    lock.finish(first, Outcome::Succeeded).expect("finish");
    assert_eq!(state.serial().expect("serial"), 2);
    let deployed = state
        .deployed()
        .expect("deployed")
        .expect("a deployed revision");
    assert_eq!(deployed.number, 1);
    assert_eq!(deployed.outcome, Outcome::Succeeded);
    assert_eq!(deployed.finished_unix_ms, Some(fixed_clock()));

    let second = lock
        .begin(
            &spec(2),
            &artifacts("sha256:2"),
            "ana",
            Origin::Rollback { to: 1 },
        )
        .expect("begin");
    assert_eq!(second, 2);
    lock.finish(second, Outcome::Succeeded).expect("finish");
    let snapshot = state.snapshot().expect("snapshot");
    assert_eq!(snapshot.serial, 4);
    assert_eq!(snapshot.deployed.expect("deployed").number, 2);

    let history = state.history().expect("history");
    let numbers: Vec<u64> = history.iter().map(|revision| revision.number).collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(history[1].origin, Origin::Rollback { to: 1 });
}

#[test]
fn a_failed_or_rolled_back_revision_does_not_change_deployed() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let state = open(temp.path());
    let lock = state.lock(holder("tier apply dev")).expect("lock");
    let good = lock
        .begin(&spec(1), &artifacts("sha256:1"), "ana", Origin::Apply)
        .expect("begin");
    lock.finish(good, Outcome::Succeeded).expect("finish");

    let failed = lock
        .begin(&spec(2), &artifacts("sha256:2"), "ana", Origin::Apply)
        .expect("begin");
    let reason = "backend replica 0 not ready within 30s".to_owned();
    lock.finish(
        failed,
        Outcome::Failed {
            reason: reason.clone(),
        },
    )
    .expect("finish");
    assert_eq!(
        state
            .deployed()
            .expect("deployed")
            .expect("deployed")
            .number,
        good
    );

    let rolled_back = lock
        .begin(&spec(3), &artifacts("sha256:3"), "ana", Origin::Apply)
        .expect("begin");
    lock.finish(
        rolled_back,
        Outcome::RolledBack {
            reason: reason.clone(),
        },
    )
    .expect("finish");
    assert_eq!(
        state
            .deployed()
            .expect("deployed")
            .expect("deployed")
            .number,
        good
    );

    let failed = state
        .revision(failed)
        .expect("revision")
        .expect("failed revision");
    assert_eq!(failed.outcome, Outcome::Failed { reason });
    assert!(failed.finished_unix_ms.is_some());
    assert_eq!(state.serial().expect("serial"), 6);
}

#[test]
fn finish_refuses_misuse_and_changes_nothing() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let state = open(temp.path());
    let lock = state.lock(holder("tier apply dev")).expect("lock");
    let number = lock
        .begin(&spec(1), &artifacts("sha256:1"), "ana", Origin::Apply)
        .expect("begin");
    let serial = state.serial().expect("serial");

    assert!(matches!(
        lock.finish(number, Outcome::InProgress),
        Err(StateError::NotAFinish { number: 1 })
    ));
    assert!(matches!(
        lock.finish(7, Outcome::Succeeded),
        Err(StateError::NoSuchRevision { number: 7 })
    ));
    lock.finish(number, Outcome::Succeeded).expect("finish");
    assert!(matches!(
        lock.finish(
            number,
            Outcome::Failed {
                reason: "late".to_owned()
            }
        ),
        Err(StateError::AlreadyFinished {
            number: 1,
            outcome: Outcome::Succeeded
        })
    ));
    assert_eq!(state.serial().expect("serial"), serial + 1);
}

#[test]
fn an_interrupted_revision_stays_in_progress_and_the_next_begin_works() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let state = open(temp.path());
    let killed = state.lock(holder("tier apply dev")).expect("lock");
    let interrupted = killed
        .begin(&spec(1), &artifacts("sha256:1"), "ana", Origin::Apply)
        .expect("begin");
    // The process dies here: no finish, no release.
    std::mem::forget(killed);
    state.break_lock().expect("break");

    let lock = state.lock(holder("tier apply dev")).expect("lock");
    let next = lock
        .begin(&spec(2), &artifacts("sha256:2"), "ana", Origin::Apply)
        .expect("begin after an interrupted revision");
    assert_eq!(next, interrupted + 1);
    lock.finish(next, Outcome::Succeeded).expect("finish");

    let history = state.history().expect("history");
    assert_eq!(history[0].outcome, Outcome::InProgress);
    assert!(!history[0].is_finished());
    assert_eq!(history[1].outcome, Outcome::Succeeded);

    // The old revision may be closed later, but cannot take deployed back.
    assert!(matches!(
        lock.finish(interrupted, Outcome::Succeeded),
        Err(StateError::Superseded {
            number: 1,
            deployed: 2
        })
    ));
    lock.finish(
        interrupted,
        Outcome::Failed {
            reason: "interrupted".to_owned(),
        },
    )
    .expect("close the interrupted revision");
    assert_eq!(
        state
            .deployed()
            .expect("deployed")
            .expect("deployed")
            .number,
        next
    );
}

#[test]
fn a_broken_lock_stops_its_old_holder_from_writing() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let state = open(temp.path());
    let old = state.lock(holder("tier apply dev")).expect("lock");
    state.break_lock().expect("break");
    let new_holder = holder("tier apply dev (new)");
    let new = state.lock(new_holder.clone()).expect("lock");

    match old.begin(&spec(1), &artifacts("sha256:1"), "ana", Origin::Apply) {
        Err(StateError::LockLost { holder, .. }) => assert_eq!(holder, Some(new_holder.clone())),
        other => panic!("expected LockLost, got {other:?}"),
    }
    assert!(matches!(old.release(), Err(StateError::LockLost { .. })));
    // The old holder's release did not remove the new holder's lock.
    assert_eq!(state.lock_holder().expect("lock holder"), Some(new_holder));
    assert_eq!(state.serial().expect("serial"), 0);
    new.release().expect("release");
}

#[test]
fn a_promotion_records_where_it_came_from() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let state = open(temp.path());
    let lock = state.lock(holder("tier promote stage prod")).expect("lock");
    let origin = Origin::Promote {
        from_environment: "stage".to_owned(),
        from_revision: 4,
    };
    let number = lock
        .begin(&spec(5), &artifacts("sha256:4"), "ana", origin.clone())
        .expect("begin");
    lock.finish(number, Outcome::Succeeded).expect("finish");
    let revision = state.deployed().expect("deployed").expect("deployed");
    assert_eq!(revision.origin, origin);
    let json = serde_json::to_value(&revision).expect("a revision serialises");
    assert_eq!(
        json["origin"],
        serde_json::json!({"kind": "promote", "from_environment": "stage", "from_revision": 4})
    );
    assert_eq!(json["outcome"], serde_json::json!({"status": "succeeded"}));
}

#[test]
fn state_persists_across_reopen() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    {
        let state = open(temp.path());
        let lock = state.lock(holder("tier apply dev")).expect("lock");
        let number = lock
            .begin(&spec(3), &artifacts("sha256:3"), "ana", Origin::Apply)
            .expect("begin");
        lock.finish(number, Outcome::Succeeded).expect("finish");
        let number = lock
            .begin(&spec(4), &artifacts("sha256:4"), "ana", Origin::Apply)
            .expect("begin");
        lock.finish(
            number,
            Outcome::Failed {
                reason: "no".to_owned(),
            },
        )
        .expect("finish");
        std::mem::forget(lock);
    }
    let state = open(temp.path());
    assert_eq!(state.serial().expect("serial"), 4);
    let deployed = state.deployed().expect("deployed").expect("deployed");
    assert_eq!((deployed.number, deployed.spec), (1, spec(3)));
    assert_eq!(state.history().expect("history").len(), 2);
    assert_eq!(
        state.lock_holder().expect("lock holder"),
        Some(holder("tier apply dev"))
    );
}

#[test]
fn a_corrupt_file_is_reported_with_recovery_and_other_environments_still_open() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dev = temp.path().join("dev");
    let prod = temp.path().join("prod");
    let prod_state = open(&prod);
    let lock = prod_state.lock(holder("tier apply prod")).expect("lock");
    let number = lock
        .begin(&spec(5), &artifacts("sha256:5"), "ana", Origin::Apply)
        .expect("begin");
    lock.finish(number, Outcome::Succeeded).expect("finish");
    lock.release().expect("release");

    for garbage in [
        b"this is not a database".repeat(1000),
        b"garbage".to_vec(),
        Vec::new(),
    ] {
        open(&dev);
        std::fs::write(dev.join("state.redb"), &garbage).expect("write garbage");
        match State::open(&dev) {
            Err(StateError::Corrupt { path, detail }) => {
                assert_eq!(path, dev.join("state.redb"));
                assert!(!detail.is_empty());
                let message = StateError::Corrupt { path, detail }.to_string();
                assert!(message.contains("move it away"), "{message}");
                assert!(
                    message.contains("other environments are untouched"),
                    "{message}"
                );
            }
            Ok(_) if garbage.is_empty() => {
                // An empty file is a database that was never written; redb initialises it.
            }
            other => panic!(
                "expected Corrupt for {} bytes, got {other:?}",
                garbage.len()
            ),
        }
        let prod_state = open(&prod);
        assert_eq!(
            prod_state
                .deployed()
                .expect("prod's deployed")
                .expect("deployed")
                .number,
            number
        );
        std::fs::remove_file(dev.join("state.redb")).expect("move dev's state away");
    }
    // After moving the file away, the environment starts afresh.
    assert_eq!(open(&dev).serial().expect("serial"), 0);
}

#[test]
fn a_state_deleted_while_in_use_reads_as_empty() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let state = open(temp.path());
    std::fs::remove_file(state.path()).expect("delete the database");
    assert_eq!(state.serial().expect("serial"), 0);
    assert!(state.history().expect("history").is_empty());
    assert_eq!(state.lock_holder().expect("lock holder"), None);
}

/// Overwrites 4 KiB of the file at `offset`, as a disk error or a stray write would.
fn damage(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).expect("read the database");
    for byte in bytes.iter_mut().skip(offset).take(4096) {
        *byte = 0x5a;
    }
    std::fs::write(path, &bytes).expect("write the damaged database");
}

fn state_with_history(dir: &Path) -> State {
    let state = open(dir);
    let lock = state.lock(holder("tier apply dev")).expect("lock");
    for replicas in 0..20 {
        let number = lock
            .begin(
                &spec(replicas),
                &artifacts("sha256:1"),
                "ana",
                Origin::Apply,
            )
            .expect("begin");
        lock.finish(number, Outcome::Succeeded).expect("finish");
    }
    lock.release().expect("release");
    state
}

#[test]
fn damaged_pages_are_reported_as_corrupt_on_open_not_a_panic() {
    for offset in [512, 4096, 8192, 16384] {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let state = state_with_history(temp.path());
        damage(state.path(), offset);
        match State::open(temp.path()) {
            Err(StateError::Corrupt { .. }) => {}
            other => panic!("expected Corrupt at offset {offset}, got {other:?}"),
        }
    }
}

#[test]
fn damage_after_open_is_reported_as_corrupt_not_a_panic() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    let state = state_with_history(temp.path());
    damage(state.path(), 4096);
    // `open` verified the file before it was damaged; later operations trust it, and redb may
    // panic on what it reads. Whatever happens, the caller gets a result.
    for result in [
        state.history().map(|_| ()),
        state.deployed().map(|_| ()),
        state.lock(holder("x")).map(|_| ()),
    ] {
        if let Err(error) = result {
            assert!(matches!(error, StateError::Corrupt { .. }), "{error:?}");
        }
    }
}

#[test]
fn concurrent_lock_attempts_queue_and_exactly_one_wins() {
    let temp = tempfile::tempdir().expect("a temporary directory");
    open(temp.path());
    let results: Vec<Result<(), StateError>> = std::thread::scope(|scope| {
        let attempts: Vec<_> = (0..8)
            .map(|attempt| {
                let dir = temp.path();
                scope.spawn(move || {
                    let state = State::open(dir)?;
                    let lock = state.lock(holder(&format!("attempt {attempt}")))?;
                    // Keep the lock record: the others must see it, not an open database.
                    std::mem::forget(lock);
                    Ok(())
                })
            })
            .collect();
        attempts
            .into_iter()
            .map(|attempt| attempt.join().expect("no thread panics"))
            .collect()
    });
    let won = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    for result in results {
        if let Err(error) = result {
            assert!(
                matches!(error, StateError::Locked { alive: true, .. }),
                "{error:?}"
            );
        }
    }
}
