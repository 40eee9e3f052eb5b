//! TOML syntax and override files: every syntax error at once, what a syntax error hides,
//! and what an override file may not do.

use crate::support::{WEB, assert_located, blocks, validate, with_dev};

#[test]
fn toml_syntax_errors_are_all_reported() {
    let stderr = validate(&[(
        "tier.toml",
        "[project]\nname = \"shop\n\n[environments.dev]\nruntime = local\n\n[services.web]\ncommand = [\"bin/web\"\nreplicas = 2\n",
    )]);
    let count = blocks(&stderr).len();
    assert!(count >= 2, "expected several syntax errors:\n{stderr}");
    assert_located(&stderr, count);
    insta::assert_snapshot!("toml_syntax_errors_are_all_reported", stderr);
}

#[test]
fn unclosed_array_is_blamed_on_its_bracket() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(
            "[services.web]\ncommand = [\"bin/web\", \"--port\"\nreplicas = 2\n\n[services.api]\ncommand = [\"bin/api\"]\n",
        ),
    )]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("tier.toml:8:11"), "{stderr}");
    insta::assert_snapshot!("unclosed_array_is_blamed_on_its_bracket", stderr);
}

#[test]
fn unclosed_table_header_hides_the_keys_below_it() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev("[services.web\ncommand = [\"bin/web\"]\n"),
    )]);
    assert_located(&stderr, 1);
    assert!(!stderr.contains("unknown key"), "{stderr}");
    insta::assert_snapshot!("unclosed_table_header_hides_the_keys_below_it", stderr);
}

#[test]
fn problems_before_a_syntax_error_are_reported_and_guesses_after_it_are_not() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(
            "[services.web]\ncommand = [\"bin/web\"]\nreplcas = 2\nhealth = { http = \"/healthz\"\n\n[services.api]\ncommand = [\"bin/api\"]\ndepends_on = [\"db\"]\n",
        ),
    )]);
    assert_located(&stderr, 2);
    assert!(stderr.contains("did you mean `replicas`?"), "{stderr}");
    assert!(stderr.contains("unclosed inline table"), "{stderr}");
    insta::assert_snapshot!(
        "problems_before_a_syntax_error_are_reported_and_guesses_after_it_are_not",
        stderr
    );
}

#[test]
fn syntax_error_in_an_override_file_stops_only_its_environment() {
    let stderr = validate(&[
        (
            "tier.toml",
            &format!(
                "[project]\nname = \"shop\"\n\n[environments.dev]\n\n[environments.prod]\n\n{WEB}depends_on = [\"db\"]\n"
            ),
        ),
        (
            "envs/prod.toml",
            "[services.web]\nreplicas = 3\nmemory = 512Mi\n",
        ),
    ]);
    assert_located(&stderr, 2);
    assert!(stderr.contains("envs/prod.toml:3:10"), "{stderr}");
    assert!(stderr.contains("(environment dev)"), "{stderr}");
    insta::assert_snapshot!(
        "syntax_error_in_an_override_file_stops_only_its_environment",
        stderr
    );
}

#[test]
fn duplicate_key_in_toml() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}replicas = 2\nreplicas = 3\n")),
    )]);
    assert_located(&stderr, 1);
    insta::assert_snapshot!("duplicate_key_in_toml", stderr);
}

#[test]
fn override_file_for_an_undeclared_environment() {
    let stderr = validate(&[
        ("tier.toml", &with_dev(WEB)),
        ("envs/qa.toml", "[services.web]\nreplicas = 2\n"),
        ("envs/deb.toml", "[services.web]\nreplicas = 2\n"),
    ]);
    assert_located(&stderr, 2);
    assert!(stderr.contains("rename it to envs/dev.toml"), "{stderr}");
    insta::assert_snapshot!("override_file_for_an_undeclared_environment", stderr);
}

#[test]
fn override_file_cannot_declare_environments() {
    let stderr = validate(&[
        ("tier.toml", &with_dev(WEB)),
        (
            "envs/dev.toml",
            "[environments.dev]\nruntime = \"kubernetes\"\n\n[services.web]\nreplicas = 2\n",
        ),
    ]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("envs/dev.toml:1:2"), "{stderr}");
    assert!(
        stderr.contains("`environments` can only be set in tier.toml"),
        "{stderr}"
    );
    insta::assert_snapshot!("override_file_cannot_declare_environments", stderr);
}

#[test]
fn override_file_cannot_rename_the_project() {
    let stderr = validate(&[
        ("tier.toml", &with_dev(WEB)),
        ("envs/dev.toml", "[project]\nname = \"shop-dev\"\n"),
    ]);
    assert_located(&stderr, 1);
    assert!(
        stderr.contains("`project.name` can only be set in tier.toml"),
        "{stderr}"
    );
    insta::assert_snapshot!("override_file_cannot_rename_the_project", stderr);
}

#[test]
fn wrong_type_in_an_override_file() {
    let stderr = validate(&[
        ("tier.toml", &with_dev(WEB)),
        ("envs/dev.toml", "[services.web]\nreplicas = \"2\"\n"),
    ]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("envs/dev.toml:2:12"), "{stderr}");
    insta::assert_snapshot!("wrong_type_in_an_override_file", stderr);
}
