//! Names: service and environment names that are not DNS labels.

use crate::support::{WEB, assert_helpful, assert_located, validate, with_dev};

#[test]
fn service_names_must_be_dns_labels() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(
            "[services.Web]\ncommand = [\"bin/web\"]\n\n[services.web_api]\ncommand = [\"bin/api\"]\n",
        ),
    )]);
    assert_located(&stderr, 2);
    assert!(stderr.contains("it has uppercase letters"), "{stderr}");
    assert!(stderr.contains("it has '_' (use '-')"), "{stderr}");
    insta::assert_snapshot!("service_names_must_be_dns_labels", stderr);
}

#[test]
fn environment_names_must_be_dns_labels() {
    let stderr = validate(&[(
        "tier.toml",
        &format!(
            "[project]\nname = \"shop\"\n\n[environments.Prod]\n\n[environments.qa_1]\n\n[environments.2nd]\n\n{WEB}"
        ),
    )]);
    assert_located(&stderr, 3);
    assert_helpful(&stderr);
    insta::assert_snapshot!("environment_names_must_be_dns_labels", stderr);
}
