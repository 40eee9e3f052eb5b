//! Keys and types: unknown keys and tables with the nearest known name, values of the
//! wrong type or out of range, a missing project name or table.

use crate::support::{WEB, assert_helpful, assert_located, validate, with_dev};

#[test]
fn unknown_service_key_suggests_the_nearest() {
    let stderr = validate(&[("tier.toml", &with_dev(&format!("{WEB}replcas = 2\n")))]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("did you mean `replicas`?"), "{stderr}");
    assert!(stderr.contains("tier.toml:10:1"), "{stderr}");
    insta::assert_snapshot!("unknown_service_key_suggests_the_nearest", stderr);
}

#[test]
fn unknown_top_level_table_lists_the_allowed_ones() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(
            "[deployment]\nstrategy = \"blue-green\"\n\n[service.web]\ncommand = [\"bin/web\"]\n",
        ),
    )]);
    assert_located(&stderr, 2);
    assert!(stderr.contains("did you mean `services`?"), "{stderr}");
    insta::assert_snapshot!("unknown_top_level_table_lists_the_allowed_ones", stderr);
}

#[test]
fn string_where_an_integer_is_expected() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}replicas = \"three\"\n")),
    )]);
    assert_located(&stderr, 1);
    assert!(
        stderr.contains("must be an integer, found a string"),
        "{stderr}"
    );
    insta::assert_snapshot!("string_where_an_integer_is_expected", stderr);
}

#[test]
fn quoted_number_says_to_remove_the_quotes() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}replicas = \"3\"\nport = \"8080\"\n")),
    )]);
    assert_located(&stderr, 2);
    assert!(
        stderr.contains("remove the quotes: replicas = 3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("remove the quotes: port = 8080"),
        "{stderr}"
    );
    insta::assert_snapshot!("quoted_number_says_to_remove_the_quotes", stderr);
}

#[test]
fn command_written_as_a_string_is_shown_as_a_list() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev("[services.web]\ncommand = \"bin/web --port 80\"\n"),
    )]);
    assert_located(&stderr, 1);
    assert!(
        stderr.contains(r#"command = ["bin/web", "--port", "80"]"#),
        "{stderr}"
    );
    insta::assert_snapshot!("command_written_as_a_string_is_shown_as_a_list", stderr);
}

#[test]
fn empty_command() {
    let stderr = validate(&[("tier.toml", &with_dev("[services.web]\ncommand = []\n"))]);
    assert_located(&stderr, 1);
    assert_helpful(&stderr);
    insta::assert_snapshot!("empty_command", stderr);
}

#[test]
fn negative_replicas() {
    let stderr = validate(&[("tier.toml", &with_dev(&format!("{WEB}replicas = -1\n")))]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("too small"), "{stderr}");
    insta::assert_snapshot!("negative_replicas", stderr);
}

#[test]
fn replicas_too_large() {
    let stderr = validate(&[("tier.toml", &with_dev(&format!("{WEB}replicas = 100000\n")))]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("too large"), "{stderr}");
    insta::assert_snapshot!("replicas_too_large", stderr);
}

#[test]
fn memory_with_a_space_and_a_decimal_unit() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}memory = \"12 GB\"\n")),
    )]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("did you mean \"12G\"?"), "{stderr}");
    assert_helpful(&stderr);
    insta::assert_snapshot!("memory_with_a_space_and_a_decimal_unit", stderr);
}

#[test]
fn memory_with_a_lowercase_suffix() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}memory = \"128mi\"\n")),
    )]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("did you mean \"128Mi\"?"), "{stderr}");
    insta::assert_snapshot!("memory_with_a_lowercase_suffix", stderr);
}

#[test]
fn memory_as_a_bare_number() {
    let stderr = validate(&[("tier.toml", &with_dev(&format!("{WEB}memory = 128\n")))]);
    assert_located(&stderr, 1);
    assert_helpful(&stderr);
    insta::assert_snapshot!("memory_as_a_bare_number", stderr);
}

#[test]
fn cpu_in_words() {
    let stderr = validate(&[("tier.toml", &with_dev(&format!("{WEB}cpu = \"2 cores\"\n")))]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("did you mean \"2\"?"), "{stderr}");
    assert_helpful(&stderr);
    insta::assert_snapshot!("cpu_in_words", stderr);
}

#[test]
fn health_interval_without_a_unit_it_knows() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!(
            "{WEB}health = {{ http = \"/healthz\", interval = \"5 seconds\", timeout = 3 }}\n"
        )),
    )]);
    assert_located(&stderr, 2);
    assert!(stderr.contains("did you mean \"5s\"?"), "{stderr}");
    assert_helpful(&stderr);
    insta::assert_snapshot!("health_interval_without_a_unit_it_knows", stderr);
}

#[test]
fn port_above_65535() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}port = 70000\nexpose = 0\n")),
    )]);
    assert_located(&stderr, 2);
    assert_helpful(&stderr);
    insta::assert_snapshot!("port_above_65535", stderr);
}

#[test]
fn protocol_and_restart_typos_suggest_the_choice() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!(
            "{WEB}protocol = \"htpp\"\nrestart = \"on_failure\"\n"
        )),
    )]);
    assert_located(&stderr, 2);
    assert!(stderr.contains("did you mean \"http\"?"), "{stderr}");
    assert!(stderr.contains("did you mean \"on-failure\"?"), "{stderr}");
    insta::assert_snapshot!("protocol_and_restart_typos_suggest_the_choice", stderr);
}

#[test]
fn boolean_written_as_a_string() {
    let stderr = validate(&[(
        "tier.toml",
        "[project]\nname = \"shop\"\nordering = \"false\"\n\n[environments.dev]\nprotected = \"yes\"\n",
    )]);
    assert_located(&stderr, 2);
    assert!(
        stderr.contains("remove the quotes: ordering = false"),
        "{stderr}"
    );
    insta::assert_snapshot!("boolean_written_as_a_string", stderr);
}

#[test]
fn missing_project_name() {
    let stderr = validate(&[(
        "tier.toml",
        "[project]\nordering = true\n\n[environments.dev]\n",
    )]);
    assert_located(&stderr, 1);
    assert!(
        stderr.contains("missing the required key `name`"),
        "{stderr}"
    );
    insta::assert_snapshot!("missing_project_name", stderr);
}

#[test]
fn missing_project_table() {
    let stderr = validate(&[("tier.toml", "[environments.dev]\nruntime = \"local\"\n")]);
    assert_located(&stderr, 1);
    assert_helpful(&stderr);
    insta::assert_snapshot!("missing_project_table", stderr);
}
