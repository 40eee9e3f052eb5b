//! Tokens: none or a forged one is 401, another environment's is 403, a read-only one
//! reads but cannot write.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::Server;

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
