//! The behaviour every `Backend` must show, written once over the trait so the embedded and
//! etcd backends run the same cases. Each case takes a fresh store that nobody else writes to
//! and counts revisions from the one it starts at (`base`): an empty embedded store starts at
//! 0, a fresh etcd at 1 (etcd is the reference). Cases assert exact revisions from there, so
//! a backend shared between cases (one etcd for all) must run them one at a time.
//!
//! Use it with `conformance_suite!(factory)`, where `factory` is an async function returning
//! the store and a guard that keeps its resources alive for the test.

use std::time::Duration;

use futures_util::StreamExt;
use tier_store::{
    Backend, CasOutcome, Compare, Event, KeyValue, LeaseId, Op, Revision, Selector, StoreError,
    TxnOutcome, WatchStream,
};

/// How long a case waits for something that should happen promptly (an event, an expiry).
pub const PATIENCE: Duration = Duration::from_secs(20);

#[macro_export]
macro_rules! conformance_suite {
    ($factory:ident) => {
        $crate::conformance_suite!(@cases $factory;
            put_get_range_delete,
            revisions_and_versions,
            compare_and_swap,
            a_transaction_applies_every_op_at_one_revision_or_none,
            a_watch_sees_a_transactions_events_once_in_order,
            watch_from_a_past_revision_then_live,
            watch_resumes_after_disconnect_without_loss_or_duplicates,
            lease_expiry_deletes_attached_keys,
            keep_alive_and_revoke,
            compaction_and_the_compacted_error,
            bad_input_is_an_error_and_changes_nothing,
        );
    };
    (@cases $factory:ident; $($case:ident),* $(,)?) => {
        mod conformance_cases {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _guard) = super::$factory().await;
                    super::conformance::$case(store).await;
                }
            )*
        }
    };
}

pub async fn put_get_range_delete<B: Backend>(store: B) {
    let base = start(&store).await;
    assert_eq!(ok(store.get("app/a").await), None);
    ok(store.put("app/a", b"1".to_vec(), None).await);
    ok(store.put("app/b", b"2".to_vec(), None).await);
    ok(store.put("apple", b"3".to_vec(), None).await);
    ok(store.put("other", b"4".to_vec(), None).await);
    let a = ok(store.get("app/a").await).map(|kv| kv.value);
    assert_eq!(a, Some(b"1".to_vec()));

    let range = ok(store.range("app/").await);
    assert_eq!(keys(&range.kvs), ["app/a", "app/b"]);
    assert_eq!(range.revision, base.at(4));
    assert_eq!(
        keys(&ok(store.range("app").await).kvs),
        ["app/a", "app/b", "apple"]
    );
    assert_eq!(ok(store.range("").await).kvs.len(), 4);
    assert!(ok(store.range("nothing/").await).kvs.is_empty());

    assert_eq!(ok(store.delete("app/a").await), Some(base.at(5)));
    assert_eq!(ok(store.get("app/a").await), None);
    assert_eq!(
        ok(store.delete("app/a").await),
        None,
        "deleting a missing key writes nothing"
    );
    assert_eq!(ok(store.revisions().await).0, base.at(5));
    assert_eq!(keys(&ok(store.range("app/").await).kvs), ["app/b"]);
}

pub async fn revisions_and_versions<B: Backend>(store: B) {
    let base = start(&store).await;
    assert_eq!(ok(store.put("k", b"a".to_vec(), None).await), base.at(1));
    assert_eq!(
        ok(store.put("other", b"x".to_vec(), None).await),
        base.at(2)
    );
    assert_eq!(ok(store.put("k", b"b".to_vec(), None).await), base.at(3));
    let kv = some(ok(store.get("k").await));
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (base.at(1), base.at(3), 2)
    );
    assert_eq!(ok(store.delete("k").await), Some(base.at(4)));
    assert_eq!(ok(store.put("k", b"c".to_vec(), None).await), base.at(5));
    let kv = some(ok(store.get("k").await));
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (base.at(5), base.at(5), 1),
        "a key recreated after a delete starts over"
    );
    assert_eq!(ok(store.revisions().await).0, base.at(5));
}

pub async fn compare_and_swap<B: Backend>(store: B) {
    let base = start(&store).await;
    let created = ok(store
        .txn_put_if_mod_revision("k", Revision(0), b"a".to_vec())
        .await);
    assert_eq!(created, CasOutcome::Written(base.at(1)));
    let again = ok(store
        .txn_put_if_mod_revision("k", Revision(0), b"b".to_vec())
        .await);
    let CasOutcome::Conflict {
        current: Some(current),
    } = again
    else {
        panic!("creating an existing key must conflict, got {again:?}");
    };
    assert_eq!(
        (current.value, current.mod_revision),
        (b"a".to_vec(), base.at(1))
    );

    let swapped = ok(store
        .txn_put_if_mod_revision("k", base.at(1), b"c".to_vec())
        .await);
    assert_eq!(swapped, CasOutcome::Written(base.at(2)));
    let stale = ok(store
        .txn_put_if_mod_revision("k", base.at(1), b"d".to_vec())
        .await);
    assert!(matches!(stale, CasOutcome::Conflict { current: Some(_) }));
    let missing = ok(store
        .txn_put_if_mod_revision("missing", base.at(7), b"e".to_vec())
        .await);
    assert_eq!(missing, CasOutcome::Conflict { current: None });

    let kv = some(ok(store.get("k").await));
    assert_eq!((kv.value, kv.version), (b"c".to_vec(), 2));
    assert_eq!(
        ok(store.revisions().await).0,
        base.at(2),
        "a failed swap writes nothing"
    );
}

fn put_op(key: &str, value: &[u8]) -> Op {
    Op::Put {
        key: key.into(),
        value: value.to_vec(),
        lease: None,
    }
}

pub async fn a_transaction_applies_every_op_at_one_revision_or_none<B: Backend>(store: B) {
    let base = start(&store).await;
    ok(store.put("t/a", b"1".to_vec(), None).await);
    ok(store.put("t/c", b"gone soon".to_vec(), None).await);

    let committed = ok(store
        .txn(
            vec![
                Compare::mod_revision("t/a", base.at(1)),
                Compare::mod_revision("t/b", Revision(0)),
            ],
            vec![
                put_op("t/a", b"2"),
                put_op("t/b", b"3"),
                Op::Delete { key: "t/c".into() },
            ],
        )
        .await);
    assert_eq!(
        committed,
        TxnOutcome::Committed {
            revision: base.at(3)
        }
    );
    let a = some(ok(store.get("t/a").await));
    assert_eq!(
        (a.value, a.create_revision, a.mod_revision, a.version),
        (b"2".to_vec(), base.at(1), base.at(3), 2)
    );
    let b = some(ok(store.get("t/b").await));
    assert_eq!(
        (b.create_revision, b.mod_revision, b.version),
        (base.at(3), base.at(3), 1)
    );
    assert_eq!(ok(store.get("t/c").await), None);
    assert_eq!(
        ok(store.revisions().await).0,
        base.at(3),
        "every op of a transaction shares one revision"
    );

    // One comparison fails: nothing is written, and the compared keys come back as they are.
    let failed = ok(store
        .txn(
            vec![
                Compare::mod_revision("t/b", base.at(3)),
                Compare::mod_revision("t/a", base.at(1)),
                Compare::mod_revision("t/missing", base.at(2)),
            ],
            vec![put_op("t/a", b"lost"), put_op("t/d", b"lost")],
        )
        .await);
    let TxnOutcome::Failed { current } = failed else {
        panic!("a stale comparison must fail the transaction, got {failed:?}");
    };
    let current: Vec<Option<(String, Revision)>> = current
        .into_iter()
        .map(|kv| kv.map(|kv| (kv.key, kv.mod_revision)))
        .collect();
    assert_eq!(
        current,
        [
            Some(("t/b".to_owned(), base.at(3))),
            Some(("t/a".to_owned(), base.at(3))),
            None
        ]
    );
    assert_eq!(some(ok(store.get("t/a").await)).value, b"2".to_vec());
    assert_eq!(ok(store.get("t/d").await), None);

    // An op refused for its own reason refuses the whole transaction.
    let refused = store
        .txn(
            Vec::new(),
            vec![
                put_op("t/e", b"1"),
                Op::Put {
                    key: "t/f".into(),
                    value: b"1".to_vec(),
                    lease: Some(LeaseId(424_242)),
                },
            ],
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::LeaseNotFound(LeaseId(424_242)))),
        "{refused:?}"
    );
    assert_eq!(ok(store.get("t/e").await), None);
    let twice = store
        .txn(Vec::new(), vec![put_op("t/g", b"1"), put_op("t/g", b"2")])
        .await;
    assert!(matches!(twice, Err(StoreError::InvalidTxn(_))), "{twice:?}");
    let empty = store.txn(Vec::new(), vec![put_op("", b"1")]).await;
    assert!(matches!(empty, Err(StoreError::InvalidKey(_))), "{empty:?}");

    // A transaction that changes nothing takes no revision.
    let nothing = ok(store
        .txn(
            vec![Compare::mod_revision("t/c", Revision(0))],
            vec![Op::Delete { key: "t/c".into() }],
        )
        .await);
    assert_eq!(
        nothing,
        TxnOutcome::Committed {
            revision: base.at(3)
        }
    );
    assert_eq!(
        ok(store.revisions().await).0,
        base.at(3),
        "failed, refused and empty transactions write nothing"
    );
}

pub async fn a_watch_sees_a_transactions_events_once_in_order<B: Backend>(store: B) {
    let base = start(&store).await;
    ok(store.put("t/c", b"1".to_vec(), None).await);
    let mut live = ok(store
        .watch(Selector::Prefix("t/".into()), Revision(0))
        .await);
    let mut key = ok(store.watch(Selector::Key("t/a".into()), base.at(1)).await);
    let committed = ok(store
        .txn(
            vec![Compare::mod_revision("t/c", base.at(1))],
            vec![
                put_op("t/b", b"2"),
                put_op("elsewhere/x", b"not watched"),
                put_op("t/a", b"3"),
                Op::Delete { key: "t/c".into() },
            ],
        )
        .await);
    assert_eq!(
        committed,
        TxnOutcome::Committed {
            revision: base.at(2)
        }
    );
    ok(store.put("t/z", b"4".to_vec(), None).await);
    let in_order = ["put t/b@2", "put t/a@2", "delete t/c@2", "put t/z@3"];
    assert_eq!(base.relative(&next_events(&mut live, 4).await), in_order);
    let mut history = ok(store.watch(Selector::Prefix("t/".into()), base.at(2)).await);
    assert_eq!(base.relative(&next_events(&mut history, 4).await), in_order);
    assert_eq!(
        base.relative(&next_events(&mut key, 1).await),
        ["put t/a@2"]
    );
    // Nothing is delivered twice: the next event after a later write is that write.
    ok(store.put("t/a", b"5".to_vec(), None).await);
    assert_eq!(
        base.relative(&next_events(&mut live, 1).await),
        ["put t/a@4"]
    );
    assert_eq!(
        base.relative(&next_events(&mut history, 1).await),
        ["put t/a@4"]
    );
    assert_eq!(
        base.relative(&next_events(&mut key, 1).await),
        ["put t/a@4"]
    );
}

pub async fn watch_from_a_past_revision_then_live<B: Backend>(store: B) {
    let base = start(&store).await;
    ok(store.put("cfg/a", b"1".to_vec(), None).await);
    ok(store.put("elsewhere", b"x".to_vec(), None).await);
    ok(store.put("cfg/b", b"2".to_vec(), None).await);
    ok(store.delete("cfg/a").await);

    let mut prefix = ok(store
        .watch(Selector::Prefix("cfg/".into()), base.at(1))
        .await);
    let mut key = ok(store.watch(Selector::Key("cfg/b".into()), base.at(1)).await);
    let mut from_now = ok(store
        .watch(Selector::Prefix(String::new()), Revision(0))
        .await);
    let history = next_events(&mut prefix, 3).await;
    assert_eq!(
        base.relative(&history),
        ["put cfg/a@1", "put cfg/b@3", "delete cfg/a@4"]
    );
    assert_eq!(
        base.relative(&next_events(&mut key, 1).await),
        ["put cfg/b@3"]
    );

    ok(store.put("cfg/c", b"3".to_vec(), None).await);
    ok(store.put("cfg/b", b"4".to_vec(), None).await);
    let live = next_events(&mut prefix, 2).await;
    assert_eq!(base.relative(&live), ["put cfg/c@5", "put cfg/b@6"]);
    let Event::Put(kv) = &live[1] else {
        panic!("expected a put");
    };
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.version),
        (&b"4"[..], base.at(3), 2)
    );
    assert_eq!(
        base.relative(&next_events(&mut key, 1).await),
        ["put cfg/b@6"]
    );
    assert_eq!(
        base.relative(&next_events(&mut from_now, 2).await),
        ["put cfg/c@5", "put cfg/b@6"]
    );
}

pub async fn watch_resumes_after_disconnect_without_loss_or_duplicates<B: Backend + Clone>(
    store: B,
) {
    const WRITES: u64 = 300;
    let base = start(&store).await;
    let mut writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for index in 0..WRITES {
                let key = format!("load/{}", index % 7);
                if index % 5 == 4 {
                    store.delete(&key).await.map(|_| ())?;
                } else {
                    store
                        .put(&key, index.to_string().into_bytes(), None)
                        .await
                        .map(|_| ())?;
                }
            }
            Ok::<(), StoreError>(())
        })
    };
    let mut seen: Vec<Revision> = Vec::new();
    let mut resume_from = base.at(1);
    // The last revision, known once the writer has finished.
    let mut last: Option<Revision> = None;
    // Disconnect after every few events and resume from the last revision seen plus one,
    // while the writer keeps going.
    'sessions: loop {
        let mut watch = ok(store
            .watch(Selector::Prefix("load/".into()), resume_from)
            .await);
        for _ in 0..13 {
            if last.is_some_and(|last| resume_from > last) {
                break 'sessions;
            }
            let event = tokio::select! {
                event = tokio::time::timeout(PATIENCE, watch.next()) => event,
                finished = &mut writer, if last.is_none() => {
                    ok(ok(finished.map_err(|error| StoreError::Task(error.to_string()))));
                    last = Some(ok(store.revisions().await).0);
                    continue;
                }
            };
            let Ok(Some(event)) = event else {
                panic!("no event within {PATIENCE:?} after revision {resume_from}");
            };
            let revision = ok(event).revision();
            seen.push(revision);
            resume_from = revision.next();
        }
    }
    let current = ok(store.revisions().await).0;
    // Deletes of keys that were already deleted write nothing, so compare with the revisions
    // that exist rather than with the number of calls.
    let expected: Vec<Revision> = (base.at(1).0..=current.0).map(Revision).collect();
    assert_eq!(seen, expected, "every revision exactly once, in order");
}

pub async fn lease_expiry_deletes_attached_keys<B: Backend>(store: B) {
    let base = start(&store).await;
    let lease = ok(store.grant(Duration::from_secs(1)).await);
    ok(store.put("svc/a", b"1".to_vec(), Some(lease.id)).await);
    ok(store.put("svc/b", b"2".to_vec(), Some(lease.id)).await);
    ok(store.put("svc/kept", b"3".to_vec(), None).await);
    let kv = some(ok(store.get("svc/a").await));
    assert_eq!(kv.lease, Some(lease.id));
    let mut watch = ok(store
        .watch(Selector::Prefix("svc/".into()), base.at(4))
        .await);
    let mut deleted: Vec<String> = next_events(&mut watch, 2)
        .await
        .iter()
        .map(|event| {
            assert!(
                matches!(event, Event::Delete { .. }),
                "expected a delete, got {event:?}"
            );
            event.key().to_owned()
        })
        .collect();
    deleted.sort();
    assert_eq!(deleted, ["svc/a", "svc/b"]);
    assert_eq!(keys(&ok(store.range("svc/").await).kvs), ["svc/kept"]);
    assert!(matches!(
        store.keep_alive(lease.id).await,
        Err(StoreError::LeaseNotFound(id)) if id == lease.id
    ));
}

pub async fn keep_alive_and_revoke<B: Backend>(store: B) {
    let lease = ok(store.grant(Duration::from_secs(60)).await);
    ok(store.put("svc/a", b"1".to_vec(), Some(lease.id)).await);
    ok(store.put("svc/b", b"2".to_vec(), Some(lease.id)).await);
    // A put without the lease detaches the key from it.
    ok(store.put("svc/b", b"3".to_vec(), None).await);
    let renewed = ok(store.keep_alive(lease.id).await);
    assert_eq!(renewed.id, lease.id);
    assert!(renewed.ttl >= Duration::from_secs(59));
    let before = ok(store.revisions().await).0;
    ok(store.revoke(lease.id).await);
    let mut watch = ok(store
        .watch(Selector::Prefix("svc/".into()), before.next())
        .await);
    assert_eq!(
        summary(&next_events(&mut watch, 1).await),
        [format!("delete svc/a@{}", before.0 + 1)]
    );
    assert_eq!(keys(&ok(store.range("svc/").await).kvs), ["svc/b"]);
    assert!(matches!(
        store.revoke(lease.id).await,
        Err(StoreError::LeaseNotFound(_))
    ));
    assert!(matches!(
        store.keep_alive(lease.id).await,
        Err(StoreError::LeaseNotFound(_))
    ));
}

pub async fn compaction_and_the_compacted_error<B: Backend>(store: B) {
    let base = start(&store).await;
    for index in 0..10_u8 {
        ok(store.put("k", vec![index], None).await);
    }
    ok(store.compact(base.at(6)).await);
    assert_eq!(ok(store.revisions().await), (base.at(10), base.at(6)));
    let error = store
        .watch(Selector::Key("k".into()), base.at(3))
        .await
        .err();
    assert!(
        matches!(
            error,
            Some(StoreError::Compacted { requested, compacted })
                if requested == base.at(3) && compacted == base.at(6)
        ),
        "got {error:?}"
    );
    let message = error.map(|error| error.to_string()).unwrap_or_default();
    assert!(message.contains("compacted"), "{message}");
    let mut watch = ok(store.watch(Selector::Key("k".into()), base.at(6)).await);
    let revisions: Vec<u64> = next_events(&mut watch, 5)
        .await
        .iter()
        .map(|e| e.revision().0 - base.0.0)
        .collect();
    assert_eq!(revisions, [6, 7, 8, 9, 10]);
    assert!(matches!(
        store.compact(base.at(4)).await,
        Err(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        store.compact(base.at(99)).await,
        Err(StoreError::FutureRevision { .. })
    ));
    let kv = some(ok(store.get("k").await));
    assert_eq!(
        (kv.value, kv.version),
        (vec![9], 10),
        "compaction keeps current keys"
    );
}

pub async fn bad_input_is_an_error_and_changes_nothing<B: Backend>(store: B) {
    let base = start(&store).await;
    ok(store.put("k", b"1".to_vec(), None).await);
    assert!(matches!(
        store.put("", b"1".to_vec(), None).await,
        Err(StoreError::InvalidKey(_))
    ));
    let unknown = tier_store::LeaseId(424_242);
    assert!(matches!(
        store.put("k", b"2".to_vec(), Some(unknown)).await,
        Err(StoreError::LeaseNotFound(_))
    ));
    assert!(matches!(
        store.keep_alive(unknown).await,
        Err(StoreError::LeaseNotFound(_))
    ));
    assert!(matches!(
        store.revoke(unknown).await,
        Err(StoreError::LeaseNotFound(_))
    ));
    assert!(matches!(
        store.grant(Duration::ZERO).await,
        Err(StoreError::InvalidTtl)
    ));
    assert_eq!(ok(store.revisions().await).0, base.at(1));
    assert_eq!(some(ok(store.get("k").await)).value, b"1".to_vec());
}

/// The revision a case started at; the case's own writes are `at(1)`, `at(2)`, ...
#[derive(Clone, Copy, Debug)]
pub struct Base(pub Revision);

impl Base {
    pub fn at(self, offset: u64) -> Revision {
        Revision(self.0.0 + offset)
    }

    /// `summary`, with revisions counted from the base.
    pub fn relative(self, events: &[Event]) -> Vec<String> {
        summary(events)
            .into_iter()
            .zip(events)
            .map(|(line, event)| {
                let absolute = format!("@{}", event.revision());
                let relative = format!("@{}", event.revision().0 - self.0.0);
                line.replace(&absolute, &relative)
            })
            .collect()
    }
}

/// The store's current revision, which the case counts from.
pub async fn start<B: Backend>(store: &B) -> Base {
    Base(ok(store.revisions().await).0)
}

/// Waits for the next `count` events, failing the test after `PATIENCE`.
pub async fn next_events(watch: &mut WatchStream, count: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        match tokio::time::timeout(PATIENCE, watch.next()).await {
            Ok(Some(event)) => events.push(ok(event)),
            Ok(None) => panic!("the watch ended after {events:?}"),
            Err(_) => panic!("no event within {PATIENCE:?} after {events:?}"),
        }
    }
    events
}

pub fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|event| match event {
            Event::Put(kv) => format!("put {}@{}", kv.key, kv.mod_revision),
            Event::Delete { key, revision } => format!("delete {key}@{revision}"),
        })
        .collect()
}

pub fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

#[track_caller]
pub fn ok<T>(result: Result<T, StoreError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("store operation failed: {error}"),
    }
}

#[track_caller]
pub fn some<T>(value: Option<T>) -> T {
    match value {
        Some(value) => value,
        None => panic!("expected a value"),
    }
}
