//! App config: missing or outside directories, the reserved name `base`, and JSON that is
//! invalid, not an object, empty or has a key twice.

use crate::support::{WEB, assert_helpful, assert_located, validate, with_dev};

#[test]
fn missing_config_directory() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}config = \"config/web\"\n")),
    )]);
    assert_located(&stderr, 1);
    assert!(
        stderr.contains("config directory `config/web` does not exist"),
        "{stderr}"
    );
    insta::assert_snapshot!("missing_config_directory", stderr);
}

#[test]
fn config_directory_outside_the_project() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}config = \"../secrets\"\n")),
    )]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("is outside the project"), "{stderr}");
    insta::assert_snapshot!("config_directory_outside_the_project", stderr);
}

#[test]
fn environment_named_base_is_reserved() {
    let stderr = validate(&[(
        "tier.toml",
        &format!("[project]\nname = \"shop\"\n\n[environments.base]\nruntime = \"local\"\n\n{WEB}"),
    )]);
    assert_located(&stderr, 1);
    assert!(
        stderr.contains("`base` cannot name an environment"),
        "{stderr}"
    );
    insta::assert_snapshot!("environment_named_base_is_reserved", stderr);
}

#[test]
fn invalid_json_in_base_config() {
    let stderr = validate(&[
        (
            "tier.toml",
            &with_dev(&format!("{WEB}config = \"config/web\"\n")),
        ),
        (
            "config/web/base.json",
            "{\n  \"title\": \"Shop\",\n  \"items\": 10,\n}\n",
        ),
    ]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("config/web/base.json:3:"), "{stderr}");
    insta::assert_snapshot!("invalid_json_in_base_config", stderr);
}

#[test]
fn invalid_json_in_an_environment_config() {
    let stderr = validate(&[
        (
            "tier.toml",
            &with_dev(&format!("{WEB}config = \"config/web\"\n")),
        ),
        ("config/web/base.json", "{ \"title\": \"Shop\" }\n"),
        (
            "config/web/dev.json",
            "{\n  // dev only\n  \"title\": \"Shop (dev)\"\n}\n",
        ),
    ]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("config/web/dev.json:2:3"), "{stderr}");
    insta::assert_snapshot!("invalid_json_in_an_environment_config", stderr);
}

#[test]
fn config_that_is_an_array() {
    let stderr = validate(&[
        (
            "tier.toml",
            &with_dev(&format!("{WEB}config = \"config/web\"\n")),
        ),
        ("config/web/base.json", "[\"title\", \"Shop\"]\n"),
    ]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("must hold a JSON object"), "{stderr}");
    insta::assert_snapshot!("config_that_is_an_array", stderr);
}

#[test]
fn empty_config_file() {
    let stderr = validate(&[
        (
            "tier.toml",
            &with_dev(&format!("{WEB}config = \"config/web\"\n")),
        ),
        ("config/web/base.json", ""),
    ]);
    assert_located(&stderr, 1);
    assert_helpful(&stderr);
    insta::assert_snapshot!("empty_config_file", stderr);
}

#[test]
fn duplicate_key_in_config() {
    let stderr = validate(&[
        (
            "tier.toml",
            &with_dev(&format!("{WEB}config = \"config/web\"\n")),
        ),
        (
            "config/web/base.json",
            "{\n  \"title\": \"Shop\",\n  \"title\": \"Store\"\n}\n",
        ),
    ]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("config/web/base.json:3:3"), "{stderr}");
    insta::assert_snapshot!("duplicate_key_in_config", stderr);
}
