//! Many problems at once: all of one file reported together, and one problem of every
//! environment reported once.

use crate::support::{WEB, assert_located, validate, with_dev};

#[test]
fn several_problems_in_one_file_are_reported_at_once() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(concat!(
            "[services.web]\n",
            "command = \"bin/web\"\n",
            "replicas = -2\n",
            "memory = \"1 GB\"\n",
            "port = 99999\n",
            "protocl = \"http\"\n",
            "depends_on = [\"ap\"]\n\n",
            "[services.api]\n",
            "command = [\"bin/api\"]\n",
            "restart = \"sometimes\"\n",
        )),
    )]);
    assert_located(&stderr, 7);
    insta::assert_snapshot!("several_problems_in_one_file_are_reported_at_once", stderr);
}

#[test]
fn problem_in_every_environment_is_reported_once() {
    let stderr = validate(&[(
        "tier.toml",
        &format!(
            concat!(
                "[project]\nname = \"shop\"\n\n",
                "[environments.dev]\n\n[environments.stage]\n\n[environments.prod]\n\n",
                "{web}depends_on = [\"db\"]\n"
            ),
            web = WEB
        ),
    )]);
    assert_located(&stderr, 1);
    insta::assert_snapshot!("problem_in_every_environment_is_reported_once", stderr);
}
