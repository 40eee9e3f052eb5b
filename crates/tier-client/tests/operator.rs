//! The calls an operator makes (the CLI's `tier config` and `tier flag`) against the real
//! API: listing, history, rollback, watches from a revision, flag overrides, and typed
//! answers that serialise back to the API's own JSON.

#[allow(
    dead_code,
    reason = "the support module serves several test binaries, each using part of it"
)]
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Agent, PATIENCE, ok};
use tier_client::{
    Action, Client, ClientConfig, ClientError, Events, WatchEvent, WatchStart, WatchTarget,
};
use tier_store::{Backend, Revision};

fn operator(agent: &Agent) -> Client {
    let config = ClientConfig {
        actor: Some("alice@laptop".to_owned()),
        request_timeout: Some(PATIENCE),
    };
    ok(Client::with_config(
        &agent.url(),
        agent.tokens.read_write().expose(),
        "dev",
        config,
    ))
}

async fn next_event(events: &mut Events) -> WatchEvent {
    match tokio::time::timeout(PATIENCE, events.next()).await {
        Ok(Ok(Some(event))) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// The answer to a GET as the server wrote it.
async fn raw_get(agent: &Agent, path: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", agent.url()))
        .bearer_auth(agent.tokens.read_write().expose())
        .send()
        .await;
    ok(ok(response).json::<Value>().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_listed_audited_under_the_actor_and_rolled_back() {
    let directory = ok(tempfile::tempdir());
    let agent = Agent::start(directory.path(), ok("127.0.0.1:0".parse())).await;
    let client = operator(&agent);

    let first = ok(client.put("backend/limit", &10).await);
    let second = ok(client.put("backend/limit", &json!({"max": 20})).await);
    ok(client.put("frontend/theme", &"dark").await);

    let listing = ok(client.list("backend/").await);
    let keys: Vec<&str> = listing.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["backend/limit"]);
    assert!(listing.revision >= second);
    assert_eq!(ok(client.list("").await).kvs.len(), 2);

    let entry = ok(client.entry("backend/limit").await);
    let entry = entry.unwrap_or_else(|| panic!("backend/limit is missing"));
    assert_eq!(entry.value, json!({"max": 20}));
    assert_eq!((entry.mod_revision, entry.version), (second, 2));
    assert_eq!(ok(client.entry("backend/none").await), None);

    let restored = ok(client.rollback("backend/limit", first).await);
    let restored = restored.unwrap_or_else(|| panic!("the rollback changed nothing"));
    assert_eq!(ok(client.get::<u32>("backend/limit").await), Some(10));

    let history = ok(client.history("backend/limit").await);
    let actions: Vec<Action> = history.history.iter().map(|record| record.action).collect();
    assert_eq!(actions, [Action::Put, Action::Put, Action::Rollback]);
    let last = &history.history[2];
    assert_eq!(last.revision, restored);
    assert_eq!(last.rolled_back_to, Some(first));
    assert_eq!(last.actor.as_deref(), Some("alice@laptop"));
    assert_eq!(
        last.old.as_ref().map(|old| old.value.clone()),
        Some(json!({"max": 20}))
    );

    let deleted = ok(client.delete("backend/limit").await);
    assert!(deleted > restored);
    assert!(matches!(
        client.delete("backend/limit").await,
        Err(ClientError::Api { status: 404, ref code, .. }) if code == "key_not_found"
    ));
    // A read-only token cannot roll back.
    let reader = ok(Client::new(
        &agent.url(),
        agent.tokens.read_only().expose(),
        "dev",
    ));
    assert!(matches!(
        reader.rollback("backend/limit", first).await,
        Err(ClientError::Api { status: 403, .. })
    ));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_revision_replays_history_then_follows() {
    let directory = ok(tempfile::tempdir());
    let agent = Agent::start(directory.path(), ok("127.0.0.1:0".parse())).await;
    let client = operator(&agent);
    let first = ok(client.put("app/a", &1).await);
    ok(client.put("other", &2).await);
    ok(client.delete("app/a").await);

    let prefix = WatchTarget::Prefix("app/".to_owned());
    let mut events = ok(client.events(&prefix, WatchStart::From(first)).await);
    let put = next_event(&mut events).await;
    assert!(matches!(&put, WatchEvent::Put(kv) if kv.key == "app/a" && kv.value == json!(1)));
    assert_eq!(put.revision(), first);
    let delete = next_event(&mut events).await;
    assert!(matches!(&delete, WatchEvent::Delete { key, .. } if key == "app/a"));
    let live = ok(client.put("app/b", &3).await);
    let next = next_event(&mut events).await;
    assert_eq!((next.key(), next.revision()), ("app/b", live));

    // One key, continuing after a revision, as a reconnecting watch does.
    let key = WatchTarget::Key("app/b".to_owned());
    let mut after = ok(client.events(&key, WatchStart::After(first)).await);
    assert_eq!(next_event(&mut after).await.revision(), live);
    drop(after);

    // A start in compacted history is named, with the store's own words.
    ok(agent.store.compact(Revision(live)).await);
    match client.events(&prefix, WatchStart::From(first)).await {
        Err(ClientError::Compacted { compacted, message }) => {
            assert!(compacted >= first, "{compacted}");
            assert!(!message.is_empty());
        }
        Ok(_) => panic!("a watch from compacted history started"),
        Err(other) => panic!("unexpected error: {other}"),
    }
    // The stream ends when the server stops.
    agent.shutdown.cancel();
    let ended = tokio::time::timeout(PATIENCE, events.next()).await;
    assert!(matches!(ended, Ok(Ok(None))), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flag_overrides_are_set_listed_and_cleared() {
    let directory = ok(tempfile::tempdir());
    let agent = Agent::start(directory.path(), ok("127.0.0.1:0".parse())).await;
    let client = operator(&agent);

    let set = ok(client.set_flag("dark-mode", &json!({"percent": 25})).await);
    let snapshot = ok(client.list_flags().await);
    assert!(snapshot.revision >= set);
    let dark = &snapshot.flags["dark-mode"];
    assert_eq!(dark.value, json!({"percent": 25}));
    assert_eq!((dark.default.clone(), dark.overridden), (json!(true), true));
    assert_eq!(dark.enabled, None);
    assert!(!snapshot.flags["new-checkout"].overridden);

    let cleared = ok(client.clear_flag("dark-mode").await);
    assert!(cleared.is_some_and(|revision| revision > set));
    assert_eq!(ok(client.clear_flag("dark-mode").await), None);
    assert_eq!(
        ok(client.list_flags().await).flags["dark-mode"].value,
        json!(true)
    );

    match client.set_flag("dark-mod", &json!(true)).await {
        Err(ClientError::Api {
            status: 404,
            code,
            did_you_mean,
            ..
        }) => {
            assert_eq!(code, "flag_not_found");
            assert_eq!(did_you_mean.as_deref(), Some("dark-mode"));
        }
        other => panic!("expected flag_not_found, got {other:?}"),
    }
    assert!(matches!(
        client.set_flag("dark-mode", &json!({"percent": 101})).await,
        Err(ClientError::Api { status: 400, .. })
    ));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_answers_serialise_to_the_apis_own_json() {
    let directory = ok(tempfile::tempdir());
    let agent = Agent::start(directory.path(), ok("127.0.0.1:0".parse())).await;
    let client = operator(&agent);
    let first = ok(client
        .put("app/db", &json!({"host": "db", "port": 5432}))
        .await);
    let lease = ok(agent.store.grant(Duration::from_secs(60)).await);
    ok(agent
        .store
        .put("app/leased", b"1".to_vec(), Some(lease.id))
        .await);
    ok(client.put("app/db", &"moved").await);
    ok(client.rollback("app/db", first).await);
    ok(client.set_flag("new-checkout", &json!(false)).await);

    let text = |value: &Value| ok(serde_json::to_string(value));
    let typed = |value: Result<Value, serde_json::Error>| text(&ok(value));
    let entry = ok(client.entry("app/db").await);
    assert_eq!(
        typed(serde_json::to_value(&entry)),
        text(&raw_get(&agent, "/v1/kv/app/db").await)
    );
    let listing = ok(client.list("app/").await);
    assert_eq!(
        typed(serde_json::to_value(&listing)),
        text(&raw_get(&agent, "/v1/kv?prefix=app/").await)
    );
    let history = ok(client.history("app/db").await);
    assert_eq!(
        typed(serde_json::to_value(&history)),
        text(&raw_get(&agent, "/v1/kv/app/db?history").await)
    );
    let flags = ok(client.list_flags().await);
    assert_eq!(
        typed(serde_json::to_value(&flags)),
        text(&raw_get(&agent, "/v1/flags").await)
    );
    agent.stop().await;
}
