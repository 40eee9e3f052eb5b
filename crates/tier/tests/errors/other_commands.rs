//! The reports of `render` and `explain`, and `--set` arguments.

use tier_test::TestContext;

use crate::support::{WEB, assert_located, blocks, run, with_dev};

#[test]
fn render_reports_the_problems_of_its_environment() {
    let context = TestContext::with_files(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}replicas = \"two\"\n")),
    )]);
    let stderr = run(&context, &["render", "dev"], 1);
    assert_located(&stderr, 1);
    insta::assert_snapshot!("render_reports_the_problems_of_its_environment", stderr);
}

#[test]
fn render_an_unknown_environment_is_a_usage_error() {
    let context = TestContext::with_files(&[("tier.toml", &with_dev(WEB))]);
    let stderr = run(&context, &["render", "deb"], 2);
    assert!(stderr.contains("did you mean `dev`?"), "{stderr}");
    insta::assert_snapshot!("render_an_unknown_environment_is_a_usage_error", stderr);
}

#[test]
fn explain_reports_the_problems_of_its_environment() {
    let context = TestContext::with_files(&[
        ("tier.toml", &with_dev(WEB)),
        ("envs/dev.toml", "[services.web]\nmemory = \"512MB\"\n"),
    ]);
    let stderr = run(&context, &["explain", "dev", "services.web.memory"], 1);
    assert_located(&stderr, 1);
    insta::assert_snapshot!("explain_reports_the_problems_of_its_environment", stderr);
}

#[test]
fn set_with_a_value_of_the_wrong_type() {
    let context = TestContext::with_files(&[("tier.toml", &with_dev(WEB))]);
    let stderr = run(
        &context,
        &["validate", "--set", "services.web.replicas=abc"],
        1,
    );
    assert_eq!(blocks(&stderr).len(), 1, "{stderr}");
    assert!(
        stderr.contains("--set services.web.replicas=abc"),
        "{stderr}"
    );
    insta::assert_snapshot!("set_with_a_value_of_the_wrong_type", stderr);
}

#[test]
fn set_with_an_unknown_key_suggests_the_nearest() {
    let context = TestContext::with_files(&[("tier.toml", &with_dev(WEB))]);
    let stderr = run(
        &context,
        &["validate", "--set", "services.web.replcas=3"],
        1,
    );
    assert_eq!(blocks(&stderr).len(), 1, "{stderr}");
    assert!(stderr.contains("did you mean `replicas`?"), "{stderr}");
    insta::assert_snapshot!("set_with_an_unknown_key_suggests_the_nearest", stderr);
}

#[test]
fn set_without_an_equals_sign_is_a_usage_error() {
    let context = TestContext::with_files(&[("tier.toml", &with_dev(WEB))]);
    let stderr = run(&context, &["validate", "--set", "services.web.replicas"], 2);
    insta::assert_snapshot!("set_without_an_equals_sign_is_a_usage_error", stderr);
}
