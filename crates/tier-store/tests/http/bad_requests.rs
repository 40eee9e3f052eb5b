//! Every kind of bad request is a 4xx with a JSON error and leaves the store unchanged.

use reqwest::{Method, StatusCode};
use serde_json::json;
use tier_store::Backend;

use crate::support::{Server, ok};

/// A request and the error it must get: method, path, body, status, error code.
type Case<'a> = (Method, &'a str, Option<Vec<u8>>, StatusCode, &'a str);

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
