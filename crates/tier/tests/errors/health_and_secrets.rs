//! Health checks and secrets declared wrong.

use crate::support::{WEB, assert_helpful, assert_located, validate, with_dev};

#[test]
fn health_with_both_http_and_tcp() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!(
            "{WEB}health = {{ http = \"/healthz\", tcp = 8080 }}\n"
        )),
    )]);
    assert_located(&stderr, 1);
    assert_helpful(&stderr);
    insta::assert_snapshot!("health_with_both_http_and_tcp", stderr);
}

#[test]
fn health_with_neither_http_nor_tcp() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}health = {{ interval = \"5s\" }}\n")),
    )]);
    assert_located(&stderr, 1);
    assert_helpful(&stderr);
    insta::assert_snapshot!("health_with_neither_http_nor_tcp", stderr);
}

#[test]
fn secret_with_both_env_and_file() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!(
            "{WEB}secrets = {{ DB_PASSWORD = {{ env = \"DB_PASSWORD\", file = \"secrets/db\" }} }}\n"
        )),
    )]);
    assert_located(&stderr, 1);
    assert_helpful(&stderr);
    insta::assert_snapshot!("secret_with_both_env_and_file", stderr);
}

#[test]
fn secret_given_by_value() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}secrets = {{ DB_PASSWORD = \"hunter2\" }}\n")),
    )]);
    assert_located(&stderr, 1);
    insta::assert_snapshot!("secret_given_by_value", stderr);
}
