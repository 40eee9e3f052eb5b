//! The calls every service makes against the real API: typed get and put, discovery, a
//! resumable watch and the flag cache, across a restart of the server.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Agent, PATIENCE, ok, store_path, wait_until};
use tier_client::{Change, Client, ClientError};
use tier_store::http::{self, Registry};
use tier_store::{Backend, EmbeddedConfig, EmbeddedStore};

async fn next_change(watch: &mut tier_client::Watch) -> Change {
    match tokio::time::timeout(PATIENCE, watch.next()).await {
        Ok(Some(Ok(change))) => change,
        other => panic!("expected a change, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_get_put_and_discovery() {
    let directory = ok(tempfile::tempdir());
    let agent = Agent::start(directory.path(), ok("127.0.0.1:0".parse())).await;
    let client = agent.client();

    #[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
    struct Database {
        host: String,
        port: u16,
    }
    assert_eq!(ok(client.get::<Database>("backend/db").await), None);
    let database = Database {
        host: "db.internal".into(),
        port: 5432,
    };
    let revision = ok(client.put("backend/db", &database).await);
    assert!(revision > 0);
    assert_eq!(
        ok(client.get::<Database>("backend/db").await),
        Some(database)
    );
    // A value of another shape is a decode error, not a panic.
    assert!(matches!(
        client.get::<u32>("backend/db").await,
        Err(ClientError::Decode(_))
    ));
    // Keys with characters that need encoding survive the round trip.
    ok(client.put("backend/a b?c#d", &1).await);
    assert_eq!(ok(client.get::<u32>("backend/a b?c#d").await), Some(1));

    let registry = Registry::new(agent.store.clone());
    let lease = ok(agent.store.grant(Duration::from_secs(60)).await);
    ok(registry
        .register("backend", "1", "127.0.0.1:4001", lease.id)
        .await);
    ok(registry
        .register("backend", "2", "127.0.0.1:4002", lease.id)
        .await);
    let endpoints = ok(client.discover("backend").await);
    let addresses: Vec<&str> = endpoints.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(addresses, ["127.0.0.1:4001", "127.0.0.1:4002"]);
    assert!(ok(client.discover("frontend").await).is_empty());

    // A read-only token reads but cannot write; a wrong token is refused.
    let reader = ok(Client::new(
        &agent.url(),
        agent.tokens.read_only().expose(),
        "dev",
    ));
    assert_eq!(ok(reader.get::<u32>("backend/a b?c#d").await), Some(1));
    assert!(matches!(
        reader.put("backend/x", &1).await,
        Err(ClientError::Api { status: 403, .. })
    ));
    let forged = format!("tier_dev_rw_{}", "0".repeat(64));
    let stranger = ok(Client::new(&agent.url(), &forged, "dev"));
    assert!(matches!(
        stranger.get::<u32>("backend/x").await,
        Err(ClientError::Api { status: 401, .. })
    ));
    // A token of another environment is caught before any request.
    assert!(matches!(
        Client::new(&agent.url(), agent.tokens.read_write().expose(), "prod"),
        Err(ClientError::WrongEnvironment { .. })
    ));
    assert!(matches!(
        Client::new("not a url", "t", "dev"),
        Err(ClientError::InvalidUrl { .. })
    ));
    // The token never shows in Debug.
    assert!(!format!("{client:?}").contains(&agent.tokens.read_write().expose()[12..]));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_after_the_server_restarts_without_loss_or_duplicates() {
    let directory = ok(tempfile::tempdir());
    let agent = Agent::start(directory.path(), ok("127.0.0.1:0".parse())).await;
    let address = agent.address;
    let client = agent.client();
    let mut watch = ok(client.watch("app/").await);
    ok(client.put("app/1", &"one").await);
    ok(client.put("other", &"ignored").await);
    let first = next_change(&mut watch).await;
    assert_eq!(
        (first.key.as_str(), first.value.clone()),
        ("app/1", Some(json!("one")))
    );

    // The agent goes away; changes are made while it is down, straight in its store file.
    agent.stop().await;
    {
        let store =
            ok(EmbeddedStore::open(&store_path(directory.path()), EmbeddedConfig::default()).await);
        ok(store.put("app/2", br#""two""#.to_vec(), None).await);
        ok(store.delete("app/1").await);
    }
    let agent = Agent::start(directory.path(), address).await;
    ok(client.put("app/3", &"three").await);

    let mut rest = Vec::new();
    for _ in 0..3 {
        rest.push(next_change(&mut watch).await);
    }
    let seen: Vec<(&str, Option<Value>)> = rest
        .iter()
        .map(|change| (change.key.as_str(), change.value.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("app/2", Some(json!("two"))),
            ("app/1", None),
            ("app/3", Some(json!("three"))),
        ]
    );
    let revisions: Vec<u64> = std::iter::once(first.revision)
        .chain(rest.iter().map(|change| change.revision))
        .collect();
    assert!(
        revisions.windows(2).all(|pair| pair[0] < pair[1]),
        "{revisions:?}"
    );
    drop(watch);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flag_cache_sees_a_flip_and_answers_like_the_server() {
    let directory = ok(tempfile::tempdir());
    let agent = Agent::start(directory.path(), ok("127.0.0.1:0".parse())).await;
    let client = agent.client();
    let flags = ok(client.flags().await);
    assert!(flags.is_enabled("dark-mode"));
    assert!(!flags.is_enabled("no-such-flag"));
    assert!(!flags.is_enabled("new-checkout")); // 40%: only per key
    for user in 0..50 {
        let key = format!("user-{user}");
        let expected =
            http::flag_enabled("new-checkout", &json!({"percent": 40}), Some(&key)) == Some(true);
        assert_eq!(
            flags.is_enabled_for("new-checkout", &key),
            expected,
            "{key}"
        );
    }

    // Someone flips the flag through the API; the cache follows without being asked.
    let http = reqwest::Client::new();
    let flip = http
        .put(format!("{}/v1/flags/dark-mode", agent.url()))
        .bearer_auth(agent.tokens.read_write().expose())
        .json(&json!({"value": false}))
        .send()
        .await;
    assert_eq!(ok(flip).status(), reqwest::StatusCode::OK);
    wait_until("the cache to see dark-mode off", || {
        !flags.is_enabled("dark-mode")
    })
    .await;
    assert_eq!(flags.value("dark-mode"), Some(json!(false)));
    assert!(flags.revision() > 0);

    // It survives an agent restart and sees changes made meanwhile.
    let address = agent.address;
    agent.stop().await;
    let agent = Agent::start(directory.path(), address).await;
    ok(client.put("unrelated", &1).await);
    let flip_back = http
        .delete(format!("{}/v1/flags/dark-mode", agent.url()))
        .bearer_auth(agent.tokens.read_write().expose())
        .send()
        .await;
    assert_eq!(ok(flip_back).status(), reqwest::StatusCode::OK);
    wait_until("the cache to see dark-mode back on", || {
        flags.is_enabled("dark-mode")
    })
    .await;
    drop(flags);
    agent.stop().await;
}
