//! Keys written, read, listed and deleted with their revisions, and compare-and-swap.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Server, some};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_written_read_listed_and_deleted_with_their_revisions() {
    let server = Server::start().await;
    let missing = server.get("/v1/kv/app/db").await;
    assert!(missing.index.is_some());
    missing.expect_error(StatusCode::NOT_FOUND, "key_not_found");

    let config = json!({"host": "db.internal", "port": 5432, "tls": true});
    let written = server
        .put("/v1/kv/app/db", json!({ "value": config }))
        .await;
    let first = some(written.index);
    assert_eq!(written.expect(StatusCode::OK)["revision"], first);
    server
        .put("/v1/kv/app/name", json!({"value": "shop"}))
        .await
        .expect(StatusCode::OK);
    server
        .put("/v1/kv/other", json!({"value": null}))
        .await
        .expect(StatusCode::OK);
    let updated = server
        .put("/v1/kv/app/db", json!({"value": {"host": "db2.internal"}}))
        .await;
    let second = some(updated.index);
    assert!(second > first);

    let read = server.get("/v1/kv/app/db").await;
    assert_eq!(read.index, Some(second));
    let read = read.expect(StatusCode::OK);
    assert_eq!(read["value"], json!({"host": "db2.internal"}));
    assert_eq!(read["create_revision"], first);
    assert_eq!(read["mod_revision"], second);
    assert_eq!(read["version"], 2);
    assert_eq!(read["lease"], Value::Null);

    // Listing shows user keys only: audit records live in the same store.
    let listed = server
        .get("/v1/kv?prefix=app/")
        .await
        .expect(StatusCode::OK);
    let keys: Vec<&str> = listed["kvs"]
        .as_array()
        .map(|kvs| kvs.iter().filter_map(|kv| kv["key"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(keys, ["app/db", "app/name"]);
    let everything = server.get("/v1/kv").await.expect(StatusCode::OK);
    assert_eq!(everything["kvs"].as_array().map(Vec::len), Some(3));
    assert_eq!(everything["revision"], server.revision().await.0);

    // A key with spaces and unicode, percent-encoded in the path.
    server
        .put("/v1/kv/app/gr%C3%BC%C3%9F%20dich", json!({"value": 1}))
        .await
        .expect(StatusCode::OK);
    let unicode = server
        .get("/v1/kv?prefix=app/gr")
        .await
        .expect(StatusCode::OK);
    assert_eq!(unicode["kvs"][0]["key"], "app/grüß dich");

    let deleted = server.delete("/v1/kv/app/db").await.expect(StatusCode::OK);
    assert!(deleted["revision"].as_u64() > Some(second.max(first)));
    server
        .get("/v1/kv/app/db")
        .await
        .expect_error(StatusCode::NOT_FOUND, "key_not_found");
    server
        .delete("/v1/kv/app/db")
        .await
        .expect_error(StatusCode::NOT_FOUND, "key_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compare_and_swap_conflict_is_409_with_the_current_key() {
    let server = Server::start().await;
    let created = server
        .put("/v1/kv/lock", json!({"value": "a", "if_mod_revision": 0}))
        .await;
    let revision = some(created.index);
    let conflict = server
        .put("/v1/kv/lock", json!({"value": "b", "if_mod_revision": 0}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(conflict["current"]["value"], "a");
    assert_eq!(conflict["current"]["mod_revision"], revision);
    let stale = server
        .put(
            "/v1/kv/lock",
            json!({"value": "b", "if_mod_revision": revision - 1}),
        )
        .await;
    stale.expect_error(StatusCode::CONFLICT, "conflict");
    server
        .put(
            "/v1/kv/lock",
            json!({"value": "b", "if_mod_revision": revision}),
        )
        .await
        .expect(StatusCode::OK);
    let read = server.get("/v1/kv/lock").await.expect(StatusCode::OK);
    assert_eq!(read["value"], "b");
}
