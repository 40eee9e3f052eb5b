//! The embedded backend: the conformance suite, plus what only a file-backed store can show
//! (reopening, leases across restarts, automatic compaction, lagging watchers, SIGKILL).

mod conformance;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use conformance::{keys, next_events, ok, some, summary};
use tier_store::{
    Backend, CasOutcome, Compare, EmbeddedConfig, EmbeddedStore, Op, Revision, Selector,
    StoreError, TxnOutcome,
};

async fn fresh_store() -> (EmbeddedStore, tempfile::TempDir) {
    let directory = ok(tempfile::tempdir().map_err(|error| StoreError::Task(error.to_string())));
    let config = EmbeddedConfig {
        history: None,
        ..EmbeddedConfig::default()
    };
    let store = ok(EmbeddedStore::open(&directory.path().join("store.redb"), config).await);
    (store, directory)
}

conformance_suite!(fresh_store);

fn temp_dir() -> tempfile::TempDir {
    ok(tempfile::tempdir().map_err(|error| StoreError::Task(error.to_string())))
}

fn keep_all() -> EmbeddedConfig {
    EmbeddedConfig {
        history: None,
        ..EmbeddedConfig::default()
    }
}

#[tokio::test]
async fn reopening_finds_every_acknowledged_write() {
    let directory = temp_dir();
    let path = directory.path().join("store.redb");
    let mut expected = Vec::new();
    {
        let store = ok(EmbeddedStore::open(&path, keep_all()).await);
        let lease = ok(store.grant(Duration::from_secs(3600)).await);
        for index in 0..200_u32 {
            let key = format!("k/{:03}", index % 50);
            if index % 9 == 8 {
                ok(store.delete(&key).await);
            } else {
                let lease = (index % 4 == 0).then_some(lease.id);
                ok(store.put(&key, index.to_be_bytes().to_vec(), lease).await);
            }
        }
        expected.push(ok(store.range("").await));
        expected.push(ok(store.range("k/01").await));
    }
    let store = ok(EmbeddedStore::open(&path, keep_all()).await);
    assert_eq!(ok(store.range("").await), expected[0]);
    assert_eq!(ok(store.range("k/01").await), expected[1]);
    let (current, _) = ok(store.revisions().await);
    assert_eq!(current, expected[0].revision);
    // The history survives too: a watch from the first revision replays everything.
    let mut watch = ok(store
        .watch(Selector::Prefix(String::new()), Revision(1))
        .await);
    let replayed = next_events(&mut watch, usize::try_from(current.0).unwrap_or(0)).await;
    assert_eq!(replayed.last().map(|event| event.revision()), Some(current));
    assert_eq!(ok(store.put("new", vec![], None).await), current.next());
}

#[tokio::test(start_paused = true)]
async fn leases_expire_on_tokio_time() {
    let (store, _directory) = fresh_store().await;
    let started = tokio::time::Instant::now();
    let lease = ok(store.grant(Duration::from_secs(30)).await);
    ok(store.put("svc/a", b"1".to_vec(), Some(lease.id)).await);
    let mut watch = ok(store
        .watch(Selector::Key("svc/a".into()), Revision(0))
        .await);
    // Keep the lease alive past its first deadline; it must survive.
    tokio::time::sleep(Duration::from_secs(20)).await;
    ok(store.keep_alive(lease.id).await);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        ok(store.get("svc/a").await).is_some(),
        "a kept-alive lease must not expire"
    );
    let events = next_events(&mut watch, 1).await;
    assert_eq!(summary(&events), ["delete svc/a@2"]);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(50) && elapsed < Duration::from_secs(52),
        "expired after {elapsed:?}"
    );
}

static FAKE_UNIX_SECONDS: AtomicU64 = AtomicU64::new(1_900_000_000);

fn fake_wall_clock() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(FAKE_UNIX_SECONDS.load(Ordering::SeqCst))
}

#[tokio::test]
async fn leases_that_expired_while_closed_are_revoked_on_open() {
    let directory = temp_dir();
    let path = directory.path().join("store.redb");
    let config = EmbeddedConfig {
        history: None,
        wall_clock: fake_wall_clock,
    };
    {
        let store = ok(EmbeddedStore::open(&path, config.clone()).await);
        let short = ok(store.grant(Duration::from_secs(10)).await);
        let long = ok(store.grant(Duration::from_secs(3600)).await);
        ok(store.put("svc/short", b"1".to_vec(), Some(short.id)).await);
        ok(store.put("svc/long", b"2".to_vec(), Some(long.id)).await);
    }
    FAKE_UNIX_SECONDS.fetch_add(60, Ordering::SeqCst);
    let store = ok(EmbeddedStore::open(&path, config).await);
    assert_eq!(keys(&ok(store.range("svc/").await).kvs), ["svc/long"]);
    let mut watch = ok(store
        .watch(Selector::Prefix("svc/".into()), Revision(3))
        .await);
    assert_eq!(
        summary(&next_events(&mut watch, 1).await),
        ["delete svc/short@3"]
    );
    let long = some(ok(store.get("svc/long").await)).lease;
    assert!(long.is_some());
    if let Some(id) = long {
        ok(store.keep_alive(id).await);
    }
}

#[tokio::test]
async fn history_is_compacted_automatically_to_the_configured_length() {
    let directory = temp_dir();
    let config = EmbeddedConfig {
        history: Some(10),
        ..EmbeddedConfig::default()
    };
    let store = ok(EmbeddedStore::open(&directory.path().join("store.redb"), config).await);
    for index in 0..100_u8 {
        ok(store.put("k", vec![index], None).await);
    }
    let (current, compacted) = ok(store.revisions().await);
    assert_eq!(current, Revision(100));
    assert!(
        compacted > Revision(80) && compacted <= Revision(91),
        "between 10 and 20 revisions retained, compacted at {compacted}"
    );
    let error = store
        .watch(Selector::Key("k".into()), Revision(1))
        .await
        .err();
    assert!(
        matches!(error, Some(StoreError::Compacted { .. })),
        "{error:?}"
    );
    let mut watch = ok(store.watch(Selector::Key("k".into()), compacted).await);
    let events = next_events(
        &mut watch,
        usize::try_from(current.0 - compacted.0 + 1).unwrap_or(0),
    )
    .await;
    assert_eq!(events.last().map(|event| event.revision()), Some(current));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_lags_behind_the_broadcast_catches_up_from_the_log() {
    let (store, _directory) = fresh_store().await;
    let mut watch = ok(store
        .watch(Selector::Prefix("k/".into()), Revision(0))
        .await);
    // More writes than the broadcast channel holds, while the watcher is not reading.
    let writes = 1500_u64;
    let batch: Vec<_> = (0..writes)
        .map(|index| {
            let store = store.clone();
            tokio::spawn(async move { store.put(&format!("k/{}", index % 10), vec![], None).await })
        })
        .collect();
    for write in batch {
        ok(ok(write
            .await
            .map_err(|error| StoreError::Task(error.to_string()))));
    }
    let events = next_events(&mut watch, usize::try_from(writes).unwrap_or(0)).await;
    let revisions: Vec<u64> = events.iter().map(|event| event.revision().0).collect();
    assert_eq!(revisions, (1..=writes).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transactions_share_commits_and_a_lagging_watcher_takes_each_whole() {
    let directory = temp_dir();
    let path = directory.path().join("store.redb");
    let store = ok(EmbeddedStore::open(&path, keep_all()).await);
    let mut watch = ok(store
        .watch(Selector::Prefix("k/".into()), Revision(0))
        .await);
    // More transactions than the broadcast channel holds, each a change and its record, each
    // guarded by the key's mod revision read before; the losers of a race read and retry.
    let writers = 1200_u64;
    let tasks: Vec<_> = (0..writers)
        .map(|index| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("k/{}", index % 8);
                loop {
                    let seen = store
                        .get(&key)
                        .await?
                        .map_or(Revision(0), |kv| kv.mod_revision);
                    let then = vec![
                        Op::Put {
                            key: key.clone(),
                            value: index.to_le_bytes().to_vec(),
                            lease: None,
                        },
                        Op::Put {
                            key: format!("log/{index}"),
                            value: seen.0.to_le_bytes().to_vec(),
                            lease: None,
                        },
                    ];
                    let compare = vec![Compare::mod_revision(key.clone(), seen)];
                    if let TxnOutcome::Committed { revision } = store.txn(compare, then).await? {
                        return Ok::<Revision, StoreError>(revision);
                    }
                }
            })
        })
        .collect();
    let mut committed = Vec::new();
    for task in tasks {
        committed.push(ok(ok(task
            .await
            .map_err(|error| StoreError::Task(error.to_string())))));
    }
    committed.sort();
    assert_eq!(
        committed,
        (1..=writers).map(Revision).collect::<Vec<_>>(),
        "one revision per transaction, no gaps"
    );
    let events = next_events(&mut watch, usize::try_from(writers).unwrap_or(0)).await;
    let revisions: Vec<u64> = events.iter().map(|event| event.revision().0).collect();
    assert_eq!(revisions, (1..=writers).collect::<Vec<_>>());
    assert_eq!(ok(store.range("log/").await).kvs.len(), 1200);

    drop(watch);
    drop(store);
    let store = ok(EmbeddedStore::open(&path, keep_all()).await);
    let mut again = ok(store
        .watch(Selector::Prefix(String::new()), Revision(1))
        .await);
    let events = next_events(&mut again, 2400).await;
    for pair in events.chunks(2) {
        assert_eq!(pair[0].revision(), pair[1].revision());
        assert!(pair[0].key().starts_with("k/") && pair[1].key().starts_with("log/"));
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_store_is_an_error_not_a_panic() {
    let directory = temp_dir();
    let path = directory.path().join("store.redb");
    ok(std::fs::write(&path, vec![0x5a; 8192])
        .map_err(|error| StoreError::Task(error.to_string())));
    let opened = EmbeddedStore::open(&path, keep_all()).await;
    assert!(opened.is_err());
}

const SIGKILL_WRITER_ENV: &str = "TIER_STORE_SIGKILL_WRITER_DB";

/// The child half of `sigkill_loses_no_acknowledged_write`: the test re-executes itself with
/// the variable set, and that process writes forever, printing each acknowledged write, until
/// it is killed.
fn sigkill_writer(path: std::ffi::OsString) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let Ok(runtime) = runtime else {
        return;
    };
    runtime.block_on(async move {
        let store = ok(EmbeddedStore::open(Path::new(&path), EmbeddedConfig::default()).await);
        let mut stdout = std::io::stdout().lock();
        for index in 0_u64.. {
            let key = format!("k/{}", index % 100);
            let revision = ok(store.put(&key, index.to_string().into_bytes(), None).await);
            if writeln!(stdout, "ack {revision} {key} {index}")
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return;
            }
        }
    });
}

#[test]
fn sigkill_loses_no_acknowledged_write() {
    if let Some(path) = std::env::var_os(SIGKILL_WRITER_ENV) {
        sigkill_writer(path);
        return;
    }
    const KILLS: usize = 10;
    const ACKS_PER_RUN: usize = 100;
    let directory = temp_dir();
    let path = directory.path().join("store.redb");
    let executable =
        ok(std::env::current_exe().map_err(|error| StoreError::Task(error.to_string())));
    let mut last_revision = Revision(0);
    let runtime = ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| StoreError::Task(error.to_string())));
    for _ in 0..KILLS {
        #[expect(
            clippy::disallowed_methods,
            reason = "re-executes this test binary as the writer to kill"
        )]
        let mut command = std::process::Command::new(&executable);
        let child = command
            .args([
                "--exact",
                "sigkill_loses_no_acknowledged_write",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SIGKILL_WRITER_ENV, &path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn();
        let mut child = ok(child.map_err(|error| StoreError::Task(error.to_string())));
        let Some(stdout) = child.stdout.take() else {
            panic!("no stdout from the writer");
        };
        let mut acknowledged = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let fields: Vec<&str> = line.split(' ').collect();
            if let ["ack", revision, key, value] = fields.as_slice() {
                let revision = revision.parse().map(Revision).unwrap_or_default();
                acknowledged.push((revision, (*key).to_owned(), (*value).to_owned()));
                if acknowledged.len() == ACKS_PER_RUN {
                    break;
                }
            }
        }
        // Kill it mid-write (SIGKILL), without letting it finish anything.
        ok(child
            .kill()
            .map_err(|error| StoreError::Task(error.to_string())));
        ok(child
            .wait()
            .map_err(|error| StoreError::Task(error.to_string())));
        assert_eq!(acknowledged.len(), ACKS_PER_RUN, "the writer stopped early");

        runtime.block_on(async {
            let store = ok(EmbeddedStore::open(&path, EmbeddedConfig::default()).await);
            let (current, _) = ok(store.revisions().await);
            let newest = acknowledged
                .iter()
                .map(|(revision, _, _)| *revision)
                .max()
                .unwrap_or_default();
            assert!(
                current >= newest,
                "revision went backwards: {current} < acknowledged {newest}"
            );
            assert!(
                current >= last_revision,
                "revision went backwards: {current} < {last_revision}"
            );
            assert!(
                acknowledged
                    .first()
                    .is_some_and(|(revision, _, _)| *revision > last_revision),
                "a new run reused a revision"
            );
            last_revision = current;
            // Every acknowledged write is in the log at its revision, with its value.
            let mut watch = ok(store
                .watch(Selector::Prefix("k/".into()), acknowledged[0].0)
                .await);
            let logged = next_events(&mut watch, ACKS_PER_RUN).await;
            for ((revision, key, value), event) in acknowledged.iter().zip(&logged) {
                let tier_store::Event::Put(kv) = event else {
                    panic!("expected a put at {revision}");
                };
                assert_eq!(
                    (kv.mod_revision, kv.key.as_str(), kv.value.as_slice()),
                    (*revision, key.as_str(), value.as_bytes())
                );
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_get_distinct_gap_free_revisions_that_survive_reopening() {
    const WRITERS: u64 = 32;
    const PUTS: u64 = 40;
    const INCREMENTS: u64 = 10;
    let directory = temp_dir();
    let path = directory.path().join("store.redb");
    let store = ok(EmbeddedStore::open(&path, keep_all()).await);
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for index in 0..PUTS {
                    let key = format!("w/{writer}/{}", index % 4);
                    let value = format!("{writer}-{index}").into_bytes();
                    let revision = store.put(&key, value.clone(), None).await?;
                    acknowledged.push((revision, key, value));
                }
                // Compare-and-swap increments of one shared counter: every success must have
                // seen the previous one, batched or not.
                let mut done = 0;
                while done < INCREMENTS {
                    let current = store.get("counter").await?;
                    let (expected, count) = current.map_or((Revision(0), 0_u64), |kv| {
                        let count = String::from_utf8_lossy(&kv.value).parse().unwrap_or(0);
                        (kv.mod_revision, count)
                    });
                    let next = (count + 1).to_string().into_bytes();
                    match store
                        .txn_put_if_mod_revision("counter", expected, next.clone())
                        .await?
                    {
                        CasOutcome::Written(revision) => {
                            acknowledged.push((revision, "counter".to_owned(), next));
                            done += 1;
                        }
                        CasOutcome::Conflict { .. } => {}
                    }
                }
                Ok::<_, StoreError>(acknowledged)
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(ok(ok(task
            .await
            .map_err(|error| StoreError::Task(error.to_string())))));
    }
    acknowledged.sort();
    let total = WRITERS * (PUTS + INCREMENTS);
    let revisions: Vec<u64> = acknowledged
        .iter()
        .map(|(revision, ..)| revision.0)
        .collect();
    assert_eq!(
        revisions,
        (1..=total).collect::<Vec<_>>(),
        "every write its own revision, none skipped"
    );
    let counter = some(ok(store.get("counter").await));
    assert_eq!(
        counter.value,
        (WRITERS * INCREMENTS).to_string().into_bytes()
    );
    drop(store);

    let store = ok(EmbeddedStore::open(&path, keep_all()).await);
    assert_eq!(ok(store.revisions().await).0, Revision(total));
    let mut watch = ok(store
        .watch(Selector::Prefix(String::new()), Revision(1))
        .await);
    let logged = next_events(&mut watch, usize::try_from(total).unwrap_or(0)).await;
    for ((revision, key, value), event) in acknowledged.iter().zip(&logged) {
        let tier_store::Event::Put(kv) = event else {
            panic!("expected a put at {revision}");
        };
        assert_eq!(
            (kv.mod_revision, kv.key.as_str(), kv.value.as_slice()),
            (*revision, key.as_str(), value.as_slice())
        );
    }
}
