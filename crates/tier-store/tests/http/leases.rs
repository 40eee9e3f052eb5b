//! Leases: their keys go when the lease is revoked or expires.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Server, some, wait_for};

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
