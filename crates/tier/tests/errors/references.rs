//! References between services and between environments: `depends_on` to a missing
//! service, to itself or in a cycle; `extends` and `promote_from` to unknown, looping or
//! abstract environments.

use crate::support::{WEB, assert_helpful, assert_located, unwrapped, validate, with_dev};

#[test]
fn depends_on_a_missing_service_suggests_the_nearest() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(
            "[services.backend]\ncommand = [\"bin/backend\"]\n\n[services.web]\ncommand = [\"bin/web\"]\ndepends_on = [\"backnd\", \"cache\"]\n",
        ),
    )]);
    assert_located(&stderr, 2);
    assert!(stderr.contains("did you mean `backend`?"), "{stderr}");
    insta::assert_snapshot!("depends_on_a_missing_service_suggests_the_nearest", stderr);
}

#[test]
fn depends_on_itself() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}depends_on = [\"web\"]\n")),
    )]);
    assert_located(&stderr, 1);
    assert_helpful(&stderr);
    insta::assert_snapshot!("depends_on_itself", stderr);
}

#[test]
fn dependency_cycle_of_three_services_is_printed() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(concat!(
            "[services.api]\ncommand = [\"bin/api\"]\ndepends_on = [\"db\"]\n\n",
            "[services.db]\ncommand = [\"bin/db\"]\ndepends_on = [\"web\"]\n\n",
            "[services.web]\ncommand = [\"bin/web\"]\ndepends_on = [\"api\"]\n",
        )),
    )]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("api → db → web → api"), "{stderr}");
    insta::assert_snapshot!("dependency_cycle_of_three_services_is_printed", stderr);
}

// The environment graph.

#[test]
fn promote_from_a_missing_environment() {
    let stderr = validate(&[(
        "tier.toml",
        &format!(
            "[project]\nname = \"shop\"\n\n[environments.staging]\n\n[environments.prod]\npromote_from = \"stage\"\n\n{WEB}"
        ),
    )]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("did you mean `staging`?"), "{stderr}");
    insta::assert_snapshot!("promote_from_a_missing_environment", stderr);
}

#[test]
fn promote_from_loop_is_printed() {
    let stderr = validate(&[(
        "tier.toml",
        &format!(
            concat!(
                "[project]\nname = \"shop\"\n\n",
                "[environments.dev]\npromote_from = \"prod\"\n\n",
                "[environments.stage]\npromote_from = \"dev\"\n\n",
                "[environments.prod]\npromote_from = \"stage\"\n\n{web}"
            ),
            web = WEB
        ),
    )]);
    assert_located(&stderr, 1);
    assert!(
        unwrapped(&stderr).contains("dev promotes from prod promotes from stage promotes from dev"),
        "{stderr}"
    );
    insta::assert_snapshot!("promote_from_loop_is_printed", stderr);
}

#[test]
fn extends_an_unknown_parent() {
    let stderr = validate(&[(
        "tier.toml",
        &format!(
            "[project]\nname = \"shop\"\n\n[environments.prod]\n\n[environments.prod-ie]\nextends = \"prd\"\n\n{WEB}"
        ),
    )]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("did you mean `prod`?"), "{stderr}");
    insta::assert_snapshot!("extends_an_unknown_parent", stderr);
}

#[test]
fn extends_loop_is_printed() {
    let stderr = validate(&[(
        "tier.toml",
        &format!(
            "[project]\nname = \"shop\"\n\n[environments.a]\nextends = \"b\"\n\n[environments.b]\nextends = \"a\"\n\n{WEB}"
        ),
    )]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("a extends b extends a"), "{stderr}");
    insta::assert_snapshot!("extends_loop_is_printed", stderr);
}

#[test]
fn extends_itself() {
    let stderr = validate(&[(
        "tier.toml",
        &format!("[project]\nname = \"shop\"\n\n[environments.dev]\nextends = \"dev\"\n\n{WEB}"),
    )]);
    assert_located(&stderr, 1);
    assert_helpful(&stderr);
    insta::assert_snapshot!("extends_itself", stderr);
}

#[test]
fn promote_from_an_abstract_environment() {
    let stderr = validate(&[(
        "tier.toml",
        &format!(
            concat!(
                "[project]\nname = \"shop\"\n\n",
                "[environments.shared]\nabstract = true\n\n",
                "[environments.dev]\nextends = \"shared\"\n\n",
                "[environments.prod]\nextends = \"shared\"\npromote_from = \"shared\"\n\n{web}"
            ),
            web = WEB
        ),
    )]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("which is abstract"), "{stderr}");
    insta::assert_snapshot!("promote_from_an_abstract_environment", stderr);
}

#[test]
fn promote_to_an_abstract_environment() {
    let stderr = validate(&[(
        "tier.toml",
        &format!(
            concat!(
                "[project]\nname = \"shop\"\n\n",
                "[environments.dev]\n\n",
                "[environments.shared]\nabstract = true\npromote_from = \"dev\"\n\n{web}"
            ),
            web = WEB
        ),
    )]);
    assert_located(&stderr, 1);
    assert_helpful(&stderr);
    insta::assert_snapshot!("promote_to_an_abstract_environment", stderr);
}
