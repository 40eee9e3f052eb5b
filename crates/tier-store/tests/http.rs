//! The HTTP API over a real socket and a real redb file: access, keys, watches, long-polls,
//! leases, audit and rollback, flags and discovery, as a client sees them.

#[path = "http/support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Server, ok, some, wait_for};
use tier_store::http::{Registry, flag_enabled};
use tier_store::{Backend, Revision};

/// A request and the error it must get: method, path, body, status, error code.
type Case<'a> = (Method, &'a str, Option<Vec<u8>>, StatusCode, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_valid_token_is_401_and_another_environments_token_is_403() {
    let server = Server::start().await;
    server
        .send(Method::GET, "/v1/kv/app/a", None, None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let garbled = "tier_dev_rw_not-a-real-secret";
    server
        .send(Method::GET, "/v1/kv/app/a", Some(garbled), None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let forged = format!("tier_dev_rw_{}", "0".repeat(64));
    server
        .send(Method::GET, "/v1/kv?prefix=", Some(&forged), None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let refused = server
        .send(Method::GET, "/v1/kv/app/a", Some(&server.prod), None)
        .await
        .expect_error(StatusCode::FORBIDDEN, "wrong_environment");
    // The error names the environments, never the token.
    let text = refused.to_string();
    assert!(text.contains("prod") && text.contains("dev"));
    assert!(!text.contains(&server.prod[12..]));

    let before = server.revision().await;
    let body = Some(br#"{"value": 1}"#.to_vec());
    server
        .send(
            Method::PUT,
            "/v1/kv/app/a",
            Some(&server.prod),
            body.clone(),
        )
        .await
        .expect_error(StatusCode::FORBIDDEN, "wrong_environment");
    server
        .send(Method::PUT, "/v1/kv/app/a", None, body)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(server.revision().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_reads_but_cannot_write() {
    let server = Server::start().await;
    server
        .put("/v1/kv/app/a", json!({"value": "one"}))
        .await
        .expect(StatusCode::OK);
    let read_only = Some(server.read_only.as_str());
    let read = server
        .send(Method::GET, "/v1/kv/app/a", read_only, None)
        .await;
    assert_eq!(read.expect(StatusCode::OK)["value"], "one");
    let before = server.revision().await;
    let attempts = [
        (Method::PUT, "/v1/kv/app/a", Some(json!({"value": "two"}))),
        (Method::DELETE, "/v1/kv/app/a", None),
        (
            Method::POST,
            "/v1/kv/app/a/rollback",
            Some(json!({"to": 1})),
        ),
        (Method::POST, "/v1/leases", Some(json!({"ttl": 10}))),
        (
            Method::PUT,
            "/v1/flags/dark-mode",
            Some(json!({"value": false})),
        ),
    ];
    for (method, path, body) in attempts {
        let body = body.map(|body| body.to_string().into_bytes());
        server
            .send(method, path, read_only, body)
            .await
            .expect_error(StatusCode::FORBIDDEN, "read_only_token");
    }
    assert_eq!(server.revision().await, before);
    let read = server.get("/v1/kv/app/a").await.expect(StatusCode::OK);
    assert_eq!(read["value"], "one");
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_4xx_with_a_json_error_and_change_nothing() {
    let server = Server::start().await;
    server
        .put("/v1/kv/app/a", json!({"value": 1}))
        .await
        .expect(StatusCode::OK);
    let before = server.revision().await;
    let raw = |body: &[u8]| Some(body.to_vec());
    let rw = Some(server.read_write.as_str());
    let long_key = format!("/v1/kv/{}", "k".repeat(2000));
    let oversize = format!(r#"{{"value": "{}"}}"#, "x".repeat(1024 * 1024 + 1));
    let cases: Vec<Case<'_>> = vec![
        (
            Method::PUT,
            "/v1/kv/app/a",
            raw(b"{\"value\": "),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::PUT,
            "/v1/kv/app/a",
            raw(b"plain text"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::PUT,
            "/v1/kv/app/a",
            raw(b"{}"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::PUT,
            "/v1/kv/app/a",
            raw(br#"{"value": 2, "if_mod_rev": 1}"#),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::PUT,
            "/v1/kv/app/a",
            Some(oversize.into_bytes()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            Method::PUT,
            "/v1/kv/app/a",
            raw(br#"{"value": 2, "if_mod_revision": "two"}"#),
            StatusCode::BAD_REQUEST,
            "bad_revision",
        ),
        (
            Method::PUT,
            "/v1/kv/app/a",
            raw(br#"{"value": 2, "if_mod_revision": -1}"#),
            StatusCode::BAD_REQUEST,
            "bad_revision",
        ),
        (
            Method::PUT,
            "/v1/kv/app/a",
            raw(br#"{"value": 2, "lease": 999}"#),
            StatusCode::NOT_FOUND,
            "lease_not_found",
        ),
        (
            Method::PUT,
            "/v1/kv/app/a",
            raw(br#"{"value": 2, "lease": "x"}"#),
            StatusCode::BAD_REQUEST,
            "bad_lease",
        ),
        (
            Method::PUT,
            &long_key,
            raw(br#"{"value": 2}"#),
            StatusCode::BAD_REQUEST,
            "key_too_long",
        ),
        (
            Method::PUT,
            "/v1/kv/_tier/flags/dark-mode",
            raw(br#"{"value": false}"#),
            StatusCode::BAD_REQUEST,
            "reserved_key",
        ),
        (
            Method::DELETE,
            "/v1/kv/_tier/audit/x",
            None,
            StatusCode::BAD_REQUEST,
            "reserved_key",
        ),
        (
            Method::GET,
            "/v1/kv/app/a?index=soon",
            None,
            StatusCode::BAD_REQUEST,
            "bad_revision",
        ),
        (
            Method::GET,
            "/v1/kv/app/a?index=1&wait=forever",
            None,
            StatusCode::BAD_REQUEST,
            "bad_wait",
        ),
        (
            Method::GET,
            "/v1/kv?prefix=_tier/",
            None,
            StatusCode::BAD_REQUEST,
            "reserved_key",
        ),
        (
            Method::GET,
            "/v1/watch?prefix=app/&from=x",
            None,
            StatusCode::BAD_REQUEST,
            "bad_revision",
        ),
        (
            Method::GET,
            "/v1/watch",
            None,
            StatusCode::BAD_REQUEST,
            "bad_watch",
        ),
        (
            Method::POST,
            "/v1/leases",
            raw(br#"{"ttl": 0}"#),
            StatusCode::BAD_REQUEST,
            "invalid_ttl",
        ),
        (
            Method::POST,
            "/v1/leases/77/keepalive",
            None,
            StatusCode::NOT_FOUND,
            "lease_not_found",
        ),
        (
            Method::POST,
            "/v1/leases/seven/keepalive",
            None,
            StatusCode::BAD_REQUEST,
            "bad_lease",
        ),
        (
            Method::DELETE,
            "/v1/leases/77",
            None,
            StatusCode::NOT_FOUND,
            "lease_not_found",
        ),
        (
            Method::POST,
            "/v1/kv/app/a/rollback",
            raw(br#"{"to": "x"}"#),
            StatusCode::BAD_REQUEST,
            "bad_revision",
        ),
        (
            Method::POST,
            "/v1/kv/app/a/rollback",
            raw(br#"{"to": 99999}"#),
            StatusCode::BAD_REQUEST,
            "future_revision",
        ),
        (
            Method::POST,
            "/v1/kv/app/a",
            raw(b"{}"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/v1/nothing",
            None,
            StatusCode::NOT_FOUND,
            "no_such_path",
        ),
        (
            Method::PATCH,
            "/v1/kv",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let short: String = path.chars().take(60).collect();
        let reply = server.send(method.clone(), path, rw, body).await;
        assert_eq!(
            (reply.status, reply.body["error"].as_str()),
            (status, Some(code)),
            "{method} {short}: {}",
            reply.body
        );
        assert_eq!(
            server.revision().await,
            before,
            "{method} {short} changed the store"
        );
    }
    let read = server.get("/v1/kv/app/a").await.expect(StatusCode::OK);
    assert_eq!(read["value"], 1);

    // A watch from compacted history is gone (410), as in etcd.
    for index in 0..5 {
        server
            .put("/v1/kv/app/b", json!({"value": index}))
            .await
            .expect(StatusCode::OK);
    }
    let current = server.revision().await;
    ok(server.store.compact(current).await);
    let gone = server
        .get("/v1/watch?prefix=app/&from=2")
        .await
        .expect_error(StatusCode::GONE, "compacted");
    assert_eq!(gone["compacted_revision"], current.0);
    assert_eq!(server.revision().await, current);
}

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
    let reply = ok(ok(tokio::time::timeout(support::PATIENCE, polling).await));
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
    let (missing, list) = ok(ok(tokio::time::timeout(support::PATIENCE, polling).await));
    assert_eq!(missing.index, created.index);
    assert_eq!(missing.expect(StatusCode::OK)["value"], 1);
    assert!(list.index >= created.index);
    assert_eq!(
        list.expect(StatusCode::OK)["kvs"].as_array().map(Vec::len),
        Some(3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_on_a_lease_go_when_it_is_revoked_or_expires() {
    let server = Server::start().await;
    let lease = server
        .post("/v1/leases", json!({"ttl": 30}))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(lease["ttl"], 30);
    let id = some(lease["id"].as_i64());
    server
        .put(
            "/v1/kv/locks/job",
            json!({"value": "worker-1", "lease": id}),
        )
        .await
        .expect(StatusCode::OK);
    let read = server.get("/v1/kv/locks/job").await.expect(StatusCode::OK);
    assert_eq!(read["lease"], id);
    let kept = server
        .post(&format!("/v1/leases/{id}/keepalive"), json!(null))
        .await
        .expect(StatusCode::OK);
    assert_eq!(kept["id"], id);
    server
        .delete(&format!("/v1/leases/{id}"))
        .await
        .expect(StatusCode::OK);
    server
        .get("/v1/kv/locks/job")
        .await
        .expect_error(StatusCode::NOT_FOUND, "key_not_found");
    server
        .post(&format!("/v1/leases/{id}/keepalive"), json!(null))
        .await
        .expect_error(StatusCode::NOT_FOUND, "lease_not_found");

    // A short lease that nobody keeps alive takes its key with it.
    let short = server
        .post("/v1/leases", json!({"ttl": 3}))
        .await
        .expect(StatusCode::CREATED);
    let short = some(short["id"].as_i64());
    server
        .put(
            "/v1/kv/session/42",
            json!({"value": {"user": 42}, "lease": short}),
        )
        .await
        .expect(StatusCode::OK);
    wait_for("the lease to expire", || async {
        let reply = server.get("/v1/kv/session/42").await;
        (reply.status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_merge_defaults_and_overrides_and_percent_rollouts_are_stable() {
    let server = Server::start().await;
    let flags = server.get("/v1/flags").await.expect(StatusCode::OK);
    assert_eq!(flags["flags"]["dark-mode"]["value"], true);
    assert_eq!(flags["flags"]["dark-mode"]["enabled"], true);
    assert_eq!(flags["flags"]["dark-mode"]["overridden"], false);
    assert_eq!(flags["flags"]["banner-color"]["value"], "blue");
    assert_eq!(flags["flags"]["banner-color"]["enabled"], Value::Null);
    assert_eq!(
        flags["flags"]["new-checkout"]["description"],
        "the new checkout page"
    );

    server
        .put("/v1/flags/new-checkout", json!({"value": {"percent": 30}}))
        .await
        .expect(StatusCode::OK);
    let flag = server
        .get("/v1/flags/new-checkout")
        .await
        .expect(StatusCode::OK);
    assert_eq!(flag["value"], json!({"percent": 30}));
    assert_eq!(flag["default"], false);
    assert_eq!(flag["overridden"], true);
    assert_eq!(flag["enabled"], Value::Null); // depends on the key

    let mut on = 0;
    for user in 0..40 {
        let path = format!("/v1/flags/new-checkout?key=user-{user}");
        let first = server.get(&path).await.expect(StatusCode::OK)["enabled"].clone();
        let again = server.get(&path).await.expect(StatusCode::OK)["enabled"].clone();
        assert_eq!(
            first, again,
            "user-{user} must get the same answer every time"
        );
        let expected = flag_enabled(
            "new-checkout",
            &json!({"percent": 30}),
            Some(&format!("user-{user}")),
        );
        assert_eq!(first.as_bool(), expected);
        on += usize::from(first == true);
    }
    assert!((4..=24).contains(&on), "{on} of 40 users at 30%");
    // Raising the rollout keeps everyone who was in.
    server
        .put("/v1/flags/new-checkout", json!({"value": {"percent": 60}}))
        .await
        .expect(StatusCode::OK);
    for user in 0..40 {
        let key = format!("user-{user}");
        let at_30 = flag_enabled("new-checkout", &json!({"percent": 30}), Some(&key));
        let reply = server
            .get(&format!("/v1/flags/new-checkout?key={key}"))
            .await
            .expect(StatusCode::OK);
        if at_30 == Some(true) {
            assert_eq!(
                reply["enabled"], true,
                "{key} dropped out when the rollout grew"
            );
        }
    }

    let before = server.revision().await;
    let unknown = server
        .put("/v1/flags/dark-mod", json!({"value": true}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "flag_not_found");
    assert_eq!(unknown["did_you_mean"], "dark-mode");
    server
        .put("/v1/flags/dark-mode", json!({"value": {"percent": 120}}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_flag_value");
    server
        .put("/v1/flags/dark-mode", json!({"value": [1]}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_flag_value");
    assert_eq!(server.revision().await, before);

    // Dropping the override brings the default back, and the flag's history has it all.
    server
        .delete("/v1/flags/new-checkout")
        .await
        .expect(StatusCode::OK);
    let flag = server
        .get("/v1/flags/new-checkout")
        .await
        .expect(StatusCode::OK);
    assert_eq!(flag["value"], false);
    assert_eq!(flag["overridden"], false);
    let history = server
        .get("/v1/flags/new-checkout?history")
        .await
        .expect(StatusCode::OK);
    assert_eq!(history["history"].as_array().map(Vec::len), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_watch_sends_the_whole_map_after_each_change() {
    let server = Server::start().await;
    let mut events = server.events("/v1/watch?flags", None).await;
    let first = some(events.next().await);
    assert_eq!(first.event, "flags");
    assert_eq!(first.data["flags"]["dark-mode"]["value"], true);
    let flipped = server
        .put("/v1/flags/dark-mode", json!({"value": false}))
        .await;
    let second = some(events.next().await);
    assert_eq!(second.id, flipped.index.map(|index| index.to_string()));
    assert_eq!(second.data["flags"]["dark-mode"]["enabled"], false);
    assert_eq!(second.data["flags"]["banner-color"]["value"], "blue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_replicas_are_listed_until_deregistered_or_their_lease_expires() {
    let server = Server::start().await;
    let registry = Registry::new(server.store.clone());
    let long = ok(server.store.grant(Duration::from_secs(60)).await);
    let key = ok(registry
        .register("backend", "1", "127.0.0.1:4001", long.id)
        .await);
    assert_eq!(key, "_tier/services/backend/1");
    ok(registry
        .register("backend", "2", "127.0.0.1:4002", long.id)
        .await);
    ok(registry
        .register("backend-admin", "1", "127.0.0.1:5001", long.id)
        .await);
    let listed = server.get("/v1/services/backend").await;
    let index = some(listed.index);
    assert_eq!(
        listed.expect(StatusCode::OK)["endpoints"],
        json!([
            {"replica": "1", "address": "127.0.0.1:4001"},
            {"replica": "2", "address": "127.0.0.1:4002"},
        ])
    );
    // Discovery data is not a user key.
    let keys = server.get("/v1/kv").await.expect(StatusCode::OK);
    assert_eq!(keys["kvs"], json!([]));

    let mut watch = server.events("/v1/watch?service=backend", None).await;
    assert_eq!(
        some(watch.next().await).data["endpoints"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert!(ok(registry.deregister("backend", "2").await));
    let after = some(watch.next().await);
    assert_eq!(
        after.data["endpoints"],
        json!([{"replica": "1", "address": "127.0.0.1:4001"}])
    );
    let polled = server
        .get(&format!("/v1/services/backend?index={index}&wait=60s"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(polled["endpoints"].as_array().map(Vec::len), Some(1));

    // A replica whose registrar stops keeping its lease alive disappears.
    let short = ok(server.store.grant(Duration::from_secs(2)).await);
    ok(registry
        .register("backend", "3", "127.0.0.1:4003", short.id)
        .await);
    wait_for("replica 3 to be listed, then to expire", || async {
        let listed = server
            .get("/v1/services/backend")
            .await
            .expect(StatusCode::OK);
        let addresses: Vec<String> = listed["endpoints"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|e| e["address"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        (addresses == ["127.0.0.1:4001"]).then_some(())
    })
    .await;
    let after = ok(registry.endpoints("backend").await);
    assert_eq!(after.1.len(), 1);
    assert!(after.0 > Revision(0));

    let bad = server.get("/v1/services/no%2Fslash").await;
    bad.expect_error(StatusCode::BAD_REQUEST, "invalid_name");
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
    let status = ok(tokio::time::timeout(support::PATIENCE, polling).await);
    // The poll either was answered at shutdown or never reached the server.
    if let Ok(Ok(status)) = status {
        assert_eq!(status, StatusCode::OK);
    }
}
