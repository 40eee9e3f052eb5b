//! Discovery: registered replicas are listed until deregistered or their lease expires.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tier_store::http::Registry;
use tier_store::{Backend, Revision};

use crate::support::{Server, ok, some, wait_for};

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
