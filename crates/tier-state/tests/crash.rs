//! SIGKILL at random points while a process writes the state: the state always opens, no
//! acknowledged write is lost, no record is half-written, and the dead process's lock is
//! recoverable.
//!
//! The writer is this test binary itself, re-executed to run only
//! `crash_helper_writes_until_killed`, which loops lock → begin → finish → release and prints a
//! line after each write returns. Those lines are the acknowledgements checked after each kill.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use tier_state::{Holder, Origin, Outcome, State, StateError};

const TEST: &str = "sigkill_at_random_points_never_loses_or_tears_state";
/// Set only for the helper process: the environment directory to write.
const DIR_VARIABLE: &str = "TIER_STATE_CRASH_DIR";
const ROUNDS: usize = 25;
const TIME_BOUND: Duration = Duration::from_secs(10);

/// The writer: the test re-executes itself with `TIER_STATE_CRASH_DIR` set, and that process
/// writes until it is killed.
fn write_until_killed(dir: &str) -> ! {
    let state = State::open(Path::new(&dir)).expect("the state opens in the helper");
    println!("ready");
    let artifacts = BTreeMap::new();
    loop {
        let holder = Holder::this_process("crash helper", state.now_unix_ms());
        let lock = state.lock(holder).expect("the helper locks");
        let number = lock
            .begin(
                &serde_json::json!({ "padding": "x".repeat(2000) }),
                &artifacts,
                "helper",
                Origin::Apply,
            )
            .expect("begin");
        println!("begun {number}");
        let (outcome, word) = match number % 3 {
            0 => (Outcome::Succeeded, "succeeded"),
            1 => (
                Outcome::Failed {
                    reason: "gate".to_owned(),
                },
                "failed",
            ),
            _ => (
                Outcome::RolledBack {
                    reason: "gate".to_owned(),
                },
                "rolled_back",
            ),
        };
        lock.finish(number, outcome).expect("finish");
        println!("finished {number} {word}");
        lock.release().expect("release");
        println!("released");
    }
}

#[test]
#[expect(
    clippy::disallowed_methods,
    reason = "re-executes this test binary as the process to kill; tier_local::spawn is above this crate"
)]
fn sigkill_at_random_points_never_loses_or_tears_state() {
    if let Ok(dir) = std::env::var(DIR_VARIABLE) {
        write_until_killed(&dir);
    }
    let started = Instant::now();
    let temp = tempfile::tempdir().expect("a temporary directory");
    let env_dir = temp.path().join(".tier").join("dev");
    let stderr_path = temp.path().join("helper.stderr");
    let mut random = Random::new();
    let mut acknowledged = Acknowledged::default();
    let mut last_serial = 0;
    let mut rounds = 0;
    let mut locks_left_behind = 0;

    while rounds < ROUNDS && started.elapsed() < TIME_BOUND {
        let stderr = std::fs::File::create(&stderr_path).expect("the helper's stderr file");
        let mut child =
            std::process::Command::new(std::env::current_exe().expect("the test binary's path"))
                .args(["--exact", TEST, "--nocapture"])
                .env(DIR_VARIABLE, &env_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr)
                .spawn()
                .expect("the helper starts");
        let pid = child.id();
        let stdout = child.stdout.take().expect("the helper's stdout is piped");
        let (sender, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let helper_failed = |what: &str| -> ! {
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!("round {rounds}: {what}; helper stderr:\n{stderr}");
        };

        // Wait for the helper to have opened the state, then let it write for 5-50 ms.
        let ready_by = Instant::now() + Duration::from_secs(5);
        loop {
            match lines.recv_timeout(ready_by.saturating_duration_since(Instant::now())) {
                Ok(line) if line == "ready" => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    helper_failed("the helper did not get ready");
                }
            }
        }
        // On a loaded machine the first write can take longer than the whole window: wait
        // for it, so every round kills a process that is writing.
        loop {
            match lines.recv_timeout(ready_by.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let begun = line.starts_with("begun");
                    acknowledged.record(&line);
                    if begun {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    helper_failed("the helper did not begin a revision");
                }
            }
        }
        let kill_at = Instant::now() + Duration::from_millis(random.between(0, 50));
        loop {
            match lines.recv_timeout(kill_at.saturating_duration_since(Instant::now())) {
                Ok(line) => acknowledged.record(&line),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = child.wait();
                    helper_failed("the helper exited before it was killed");
                }
            }
        }
        // `Child::kill` sends SIGKILL.
        child.kill().expect("SIGKILL the helper");
        child.wait().expect("reap the helper");
        reader.join().expect("the reader thread");
        for line in lines.try_iter() {
            acknowledged.record(&line);
        }

        let state = State::open(&env_dir).expect("the state opens after SIGKILL");
        let serial = state.serial().expect("serial");
        assert!(
            serial >= last_serial,
            "serial went back from {last_serial} to {serial}"
        );
        last_serial = serial;
        check_revisions(&state, &acknowledged, serial);
        if check_lock_left_by(&state, pid) {
            locks_left_behind += 1;
        }
        rounds += 1;
    }

    eprintln!(
        "{rounds} kills in {:?}: {} revisions begun, {locks_left_behind} locks left behind",
        started.elapsed(),
        acknowledged.begun.len()
    );
    assert!(rounds >= 5, "only {rounds} rounds within {TIME_BOUND:?}");
    assert!(
        !acknowledged.finished.is_empty(),
        "the helper never finished a revision: the kills proved nothing"
    );
    if rounds >= 10 {
        assert!(
            locks_left_behind > 0,
            "no kill landed while the lock was held"
        );
    }
}

/// Every revision is whole and consistent with what the helper acknowledged, and the serial and
/// deployed pointer agree with the revisions.
fn check_revisions(state: &State, acknowledged: &Acknowledged, serial: u64) {
    let history = state.history().expect("history");
    let numbers: Vec<u64> = history.iter().map(|revision| revision.number).collect();
    let expected: Vec<u64> = (1..=history.len() as u64).collect();
    assert_eq!(numbers, expected, "revision numbers have gaps");

    let mut finished = 0;
    for revision in &history {
        assert_eq!(
            revision.is_finished(),
            revision.finished_unix_ms.is_some(),
            "revision {} is half finished: {revision:?}",
            revision.number
        );
        if revision.is_finished() {
            finished += 1;
        }
    }
    for number in &acknowledged.begun {
        assert!(
            numbers.contains(number),
            "acknowledged revision {number} is lost"
        );
    }
    for (number, word) in &acknowledged.finished {
        let revision = &history[usize::try_from(*number - 1).expect("a small number")];
        let status =
            serde_json::to_value(&revision.outcome).expect("an outcome serialises")["status"]
                .clone();
        assert_eq!(
            status, *word,
            "acknowledged finish of revision {number} is lost"
        );
    }
    // Each begin and each finish bumps the serial once, in the same transaction.
    assert_eq!(serial, history.len() as u64 + finished, "serial disagrees");

    let last_success = history
        .iter()
        .filter(|revision| revision.outcome == Outcome::Succeeded)
        .map(|revision| revision.number)
        .max();
    let deployed = state.deployed().expect("deployed");
    assert_eq!(
        deployed.as_ref().map(|revision| revision.number),
        last_success
    );
    if let Some(deployed) = deployed {
        assert_eq!(deployed.outcome, Outcome::Succeeded);
    }
}

/// When the killed helper left its lock behind, it names the helper, reports it dead, is not
/// broken by a lock attempt, and breaks on request. Returns whether a lock was left.
fn check_lock_left_by(state: &State, pid: u32) -> bool {
    let Some(holder) = state.lock_holder().expect("lock holder") else {
        return false;
    };
    assert_eq!(holder.pid, pid);
    match state.lock(Holder::this_process("checker", 0)) {
        Err(StateError::Locked {
            holder: reported,
            alive,
        }) => {
            assert_eq!(reported, holder);
            assert!(!alive, "a SIGKILLed and reaped helper counts as alive");
        }
        other => panic!("expected Locked by the dead helper, got {other:?}"),
    }
    assert_eq!(state.break_lock().expect("break"), Some(holder));
    assert_eq!(state.lock_holder().expect("lock holder"), None);
    true
}

/// What the helpers reported as written, across all rounds.
#[derive(Default)]
struct Acknowledged {
    begun: Vec<u64>,
    finished: BTreeMap<u64, String>,
}

impl Acknowledged {
    fn record(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["begun", number] => self.begun.push(number.parse().expect("a revision number")),
            ["finished", number, word] => {
                self.finished.insert(
                    number.parse().expect("a revision number"),
                    (*word).to_owned(),
                );
            }
            _ => {}
        }
    }
}

/// A small xorshift generator seeded by the standard library's per-process random hasher
/// keys, so each run kills at different points without a clock or a dependency.
struct Random(u64);

impl Random {
    fn new() -> Random {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Random(seed | 1)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low + 1)
    }
}
