//! Watches over server-sent events and long-polls: every change in order, resumed from
//! the last event id, and ended by shutdown.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Server, ok, some};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_streams_every_change_in_order_and_resumes_from_last_event_id() {
    let server = Server::start().await;
    let start = server.revision().await.next();
    let mut events = server
        .events(&format!("/v1/watch?prefix=app/&from={}", start.0), None)
        .await;
    let mut written = Vec::new();
    for index in 0..6 {
        let reply = server
            .put(
                &format!("/v1/kv/app/{}", index % 3),
                json!({"value": index}),
            )
            .await;
        written.push(some(reply.index));
        // Changes outside the prefix are not sent.
        server
            .put("/v1/kv/elsewhere", json!({"value": index}))
            .await
            .expect(StatusCode::OK);
    }
    let deleted = server.delete("/v1/kv/app/0").await.expect(StatusCode::OK);
    written.push(some(deleted["revision"].as_u64()));

    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(some(events.next().await));
    }
    drop(events); // the client disconnects
    let last = some(seen.last().and_then(|event| event.id.clone()));
    let mut resumed = server.events("/v1/watch?prefix=app/", Some(&last)).await;
    for _ in 3..written.len() {
        seen.push(some(resumed.next().await));
    }
    let ids: Vec<u64> = seen
        .iter()
        .map(|event| some(event.id.as_deref().and_then(|id| id.parse().ok())))
        .collect();
    assert_eq!(ids, written, "every change once, in order");
    assert_eq!(seen[0].event, "put");
    assert_eq!(seen[0].data["key"], "app/0");
    assert_eq!(seen[0].data["value"], 0);
    assert_eq!(seen[5].data["value"], 5);
    assert_eq!(seen[6].event, "delete");
    assert_eq!(
        seen[6].data,
        json!({"key": "app/0", "revision": written[6]})
    );

    // A single-key watch from now sees only that key's next change.
    let mut one = server.events("/v1/watch?key=app/1", None).await;
    server
        .put("/v1/kv/app/2", json!({"value": "x"}))
        .await
        .expect(StatusCode::OK);
    let changed = server.put("/v1/kv/app/1", json!({"value": "y"})).await;
    let event = some(one.next().await);
    assert_eq!(event.id, changed.index.map(|index| index.to_string()));
    assert_eq!(event.data["value"], "y");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_returns_when_the_key_changes_after_the_index() {
    let server = Arc::new(Server::start().await);
    let first = server.put("/v1/kv/app/mode", json!({"value": "a"})).await;
    let read = server.get("/v1/kv/app/mode").await;
    let index = some(read.index);
    assert_eq!(Some(index), first.index);

    // Nothing changes: the poll ends at its wait with the same value and index.
    let quiet = server
        .get(&format!("/v1/kv/app/mode?index={index}&wait=200ms"))
        .await;
    assert_eq!(quiet.index, Some(index));
    assert_eq!(quiet.expect(StatusCode::OK)["value"], "a");

    let polling = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .get(&format!("/v1/kv/app/mode?index={index}&wait=60s"))
                .await
        })
    };
    // A change to another key does not end it; a change to this key does.
    server
        .put("/v1/kv/app/other", json!({"value": 1}))
        .await
        .expect(StatusCode::OK);
    let changed = server.put("/v1/kv/app/mode", json!({"value": "b"})).await;
    let reply = ok(ok(
        tokio::time::timeout(crate::support::PATIENCE, polling).await
    ));
    assert_eq!(reply.index, changed.index);
    assert_eq!(reply.expect(StatusCode::OK)["value"], "b");

    // A prefix list long-polls too, and a missing key waits for its creation.
    let listed = server.get("/v1/kv?prefix=app/").await;
    let list_index = some(listed.index);
    let polling = {
        let server = server.clone();
        tokio::spawn(async move {
            let missing = server
                .get(&format!("/v1/kv/app/new?index={list_index}&wait=60s"))
                .await;
            let list = server
                .get(&format!("/v1/kv?prefix=app/&index={list_index}&wait=60s"))
                .await;
            (missing, list)
        })
    };
    let created = server.put("/v1/kv/app/new", json!({"value": 1})).await;
    let (missing, list) = ok(ok(
        tokio::time::timeout(crate::support::PATIENCE, polling).await
    ));
    assert_eq!(missing.index, created.index);
    assert_eq!(missing.expect(StatusCode::OK)["value"], 1);
    assert!(list.index >= created.index);
    assert_eq!(
        list.expect(StatusCode::OK)["kvs"].as_array().map(Vec::len),
        Some(3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_watches_and_long_polls() {
    let mut server = Server::start().await;
    let mut events = server.events("/v1/watch?prefix=", None).await;
    let index = server.revision().await.0;
    let url = format!("{}/v1/kv?prefix=&index={index}&wait=600s", server.url);
    let polling = {
        let request = server.client.get(url).bearer_auth(&server.read_write);
        tokio::spawn(async move { request.send().await.map(|response| response.status()) })
    };
    // Wait until the long-poll is being served before stopping.
    tokio::task::yield_now().await;
    server.stop().await;
    assert_eq!(events.next().await, None);
    let status = ok(tokio::time::timeout(crate::support::PATIENCE, polling).await);
    // The poll either was answered at shutdown or never reached the server.
    if let Ok(Ok(status)) = status {
        assert_eq!(status, StatusCode::OK);
    }
}
