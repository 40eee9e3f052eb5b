//! The audit log: every change recorded at its own revision, a complete chain under
//! concurrent servers, and rollback to an old value.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tier_store::Backend;

use crate::support::{Server, ok, some};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_audited_and_a_rollback_restores_an_old_value() {
    let server = Server::start().await;
    let as_actor = |actor: &'static str, body: Value| {
        server
            .client
            .put(format!("{}/v1/kv/app/limit", server.url))
            .bearer_auth(&server.read_write)
            .header("x-tier-actor", actor)
            .json(&body)
    };
    server
        .put("/v1/kv/app/other", json!({"value": 0}))
        .await
        .expect(StatusCode::OK);
    let first = ok(as_actor("alice", json!({"value": 10})).send().await);
    let first: u64 = some(
        first
            .headers()
            .get("x-tier-index")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok()),
    );
    ok(as_actor("bob", json!({"value": 20})).send().await);
    server
        .delete("/v1/kv/app/limit")
        .await
        .expect(StatusCode::OK);

    let history = server
        .get("/v1/kv/app/limit?history")
        .await
        .expect(StatusCode::OK);
    let entries = some(history["history"].as_array().cloned());
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["action"], "put");
    assert_eq!(entries[0]["actor"], "alice");
    assert_eq!(entries[0]["token"], "read-write");
    assert_eq!(entries[0]["revision"], first);
    assert_eq!(entries[0]["old"], Value::Null);
    assert_eq!(entries[0]["new"]["value"], 10);
    assert!(entries[0]["at_unix_ms"].as_u64() > Some(0));
    assert_eq!(entries[1]["actor"], "bob");
    assert_eq!(entries[1]["old"]["value"], 10);
    assert_eq!(entries[1]["new"]["value"], 20);
    assert_eq!(entries[2]["action"], "delete");
    assert_eq!(entries[2]["actor"], Value::Null);
    assert_eq!(entries[2]["old"]["value"], 20);
    assert_eq!(entries[2]["new"], Value::Null);

    // Back to what alice wrote, as a new change.
    let rolled = server
        .post("/v1/kv/app/limit/rollback", json!({"to": first}))
        .await
        .expect(StatusCode::OK);
    let read = server.get("/v1/kv/app/limit").await.expect(StatusCode::OK);
    assert_eq!(read["value"], 10);
    assert_eq!(read["mod_revision"], rolled["revision"]);
    let history = server
        .get("/v1/kv/app/limit?history")
        .await
        .expect(StatusCode::OK);
    let last = &history["history"][3];
    assert_eq!(last["action"], "rollback");
    assert_eq!(last["rolled_back_to"], first);
    assert_eq!(last["old"], Value::Null);
    assert_eq!(last["new"]["value"], 10);

    // Before its first write the key did not exist: rolling back there deletes it.
    server
        .post("/v1/kv/app/limit/rollback", json!({"to": first - 1}))
        .await
        .expect(StatusCode::OK);
    server
        .get("/v1/kv/app/limit")
        .await
        .expect_error(StatusCode::NOT_FOUND, "key_not_found");
    // A key nobody wrote through the API has no history to roll back to.
    let before = server.revision().await;
    server
        .post("/v1/kv/app/never/rollback", json!({"to": 1}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "no_history");
    assert_eq!(server.revision().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_and_its_audit_record_are_written_at_one_revision() {
    let server = Server::start().await;
    let before = server.revision().await;
    let first = server
        .put("/v1/kv/app/limit", json!({"value": 1}))
        .await
        .expect(StatusCode::OK);
    let second = server
        .put("/v1/kv/app/limit", json!({"value": 2}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(first["revision"], before.0 + 1);
    assert_eq!(
        second["revision"],
        before.0 + 2,
        "the record takes no revision of its own"
    );
    let records = ok(server.store.range("_tier/audit/app/limit\u{0}").await);
    let mut revisions: Vec<u64> = records.kvs.iter().map(|kv| kv.mod_revision.0).collect();
    revisions.sort_unstable();
    assert_eq!(revisions, [before.0 + 1, before.0 + 2]);
    let history = server
        .get("/v1/kv/app/limit?history")
        .await
        .expect(StatusCode::OK);
    assert_eq!(history["history"][0]["revision"], before.0 + 1);
    assert_eq!(history["history"][1]["revision"], before.0 + 2);
    assert_eq!(history["history"][1]["old"]["mod_revision"], before.0 + 1);
    assert_eq!(history["history"][1]["new"]["mod_revision"], before.0 + 2);

    // A refused change writes no record either.
    server
        .put("/v1/kv/app/limit", json!({"value": 3, "lease": 424242}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "lease_not_found");
    server
        .put(
            "/v1/kv/app/limit",
            json!({"value": 3, "if_mod_revision": before.0 + 1}),
        )
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(server.revision().await.0, before.0 + 2);
    let records = ok(server.store.range("_tier/audit/").await);
    assert_eq!(records.kvs.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_through_two_servers_are_each_audited_once_in_a_complete_chain() {
    const WRITERS: u64 = 24;
    let server = Server::start().await;
    let other = server.another_api().await;
    let writes: Vec<_> = (0..WRITERS)
        .map(|index| {
            let client = server.client.clone();
            let token = server.read_write.clone();
            // Half through each server, so the two race for the key and one must retry.
            let url = if index % 2 == 0 {
                server.url.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                let hot = client
                    .put(format!("{url}/v1/kv/app/hot"))
                    .bearer_auth(&token)
                    .json(&json!({"value": index}))
                    .send();
                let own = client
                    .put(format!("{url}/v1/kv/app/own-{index}"))
                    .bearer_auth(&token)
                    .json(&json!({"value": index}))
                    .send();
                let (hot, own) = tokio::join!(hot, own);
                let revision = |reply: reqwest::Result<reqwest::Response>| async move {
                    let reply = ok(reply);
                    assert_eq!(reply.status(), StatusCode::OK);
                    let body: Value = ok(reply.json().await);
                    some(body["revision"].as_u64())
                };
                (revision(hot).await, revision(own).await)
            })
        })
        .collect();
    let mut hot_revisions = Vec::new();
    for write in writes {
        let (hot, _) = ok(write.await);
        hot_revisions.push(hot);
    }
    hot_revisions.sort_unstable();
    let history = server
        .get("/v1/kv/app/hot?history")
        .await
        .expect(StatusCode::OK);
    let records = some(history["history"].as_array().cloned());
    let recorded: Vec<u64> = records
        .iter()
        .map(|record| some(record["revision"].as_u64()))
        .collect();
    assert_eq!(recorded, hot_revisions, "one record per change, in order");
    // Each record's old value is the previous record's new one: no change slipped between.
    assert_eq!(records[0]["old"], Value::Null);
    for pair in records.windows(2) {
        assert_eq!(pair[1]["old"]["mod_revision"], pair[0]["revision"]);
        assert_eq!(pair[1]["old"]["value"], pair[0]["new"]["value"]);
    }
    let last = server.get("/v1/kv/app/hot").await.expect(StatusCode::OK);
    assert_eq!(last["mod_revision"], some(hot_revisions.last().copied()));
    let audit = ok(server.store.range("_tier/audit/").await);
    assert_eq!(audit.kvs.len(), usize::try_from(WRITERS * 2).unwrap_or(0));
}
