//! Flags: defaults merged with overrides, stable percent rollouts, and the flag watch.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tier_store::http::flag_enabled;

use crate::support::{Server, some};

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
