//! What each environment needs: host ports used twice, and what a local or kubernetes
//! environment and its services must set.

use crate::support::{WEB, assert_located, validate, with_dev};

#[test]
fn two_services_exposed_on_one_host_port() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(concat!(
            "[services.api]\ncommand = [\"bin/api\"]\nexpose = 8080\n\n",
            "[services.web]\ncommand = [\"bin/web\"]\nexpose = 8080\n",
        )),
    )]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("api is exposed on 8080 here"), "{stderr}");
    insta::assert_snapshot!("two_services_exposed_on_one_host_port", stderr);
}

#[test]
fn exposed_port_clash_from_an_override_names_the_environment() {
    let stderr = validate(&[
        (
            "tier.toml",
            concat!(
                "[project]\nname = \"shop\"\n\n",
                "[environments.dev]\n\n[environments.stage]\n\n",
                "[services.api]\ncommand = [\"bin/api\"]\nexpose = 8080\n\n",
                "[services.web]\ncommand = [\"bin/web\"]\nexpose = 8090\n",
            ),
        ),
        ("envs/stage.toml", "[services.web]\nexpose = 8080\n"),
    ]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("(environment stage)"), "{stderr}");
    assert!(stderr.contains("envs/stage.toml:2:10"), "{stderr}");
    insta::assert_snapshot!(
        "exposed_port_clash_from_an_override_names_the_environment",
        stderr
    );
}

// What each runtime needs.

#[test]
fn kubernetes_environment_without_context_or_namespace() {
    let stderr = validate(&[(
        "tier.toml",
        &format!(
            "[project]\nname = \"shop\"\n\n[environments.prod]\nruntime = \"kubernetes\"\n\n[environments.qa]\nruntime = \"kubernetes\"\nkube = {{ context = \"qa-admin\" }}\n\n{WEB}"
        ),
    )]);
    assert_located(&stderr, 2);
    assert!(
        stderr.contains("has no `kube.context` or `kube.namespace`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("add namespace = \"shop-qa\" to the kube table"),
        "{stderr}"
    );
    insta::assert_snapshot!(
        "kubernetes_environment_without_context_or_namespace",
        stderr
    );
}

#[test]
fn kubernetes_service_without_image() {
    let stderr = validate(&[(
        "tier.toml",
        "[project]\nname = \"shop\"\n\n[environments.prod]\nruntime = \"kubernetes\"\nkube = { context = \"admin\", namespace = \"shop-prod\" }\n\n[services.web]\ncommand = [\"bin/web\"]\n",
    )]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("has no `image`"), "{stderr}");
    insta::assert_snapshot!("kubernetes_service_without_image", stderr);
}

#[test]
fn local_service_without_command() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev("[services.web]\nimage = \"shop/web:1.0.0\"\n"),
    )]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("has no `command`"), "{stderr}");
    insta::assert_snapshot!("local_service_without_command", stderr);
}

#[test]
fn two_kubernetes_environments_share_a_namespace() {
    let stderr = validate(&[(
        "tier.toml",
        &format!(
            concat!(
                "[project]\nname = \"shop\"\n\n",
                "[environments.stage]\nruntime = \"kubernetes\"\nkube = {{ context = \"admin\", namespace = \"shop\" }}\n\n",
                "[environments.prod]\nruntime = \"kubernetes\"\nkube = {{ context = \"admin\", namespace = \"shop\" }}\n\n{web}"
            ),
            web = WEB
        ),
    )]);
    assert_located(&stderr, 1);
    assert!(
        stderr.contains("both deploy to namespace `shop`"),
        "{stderr}"
    );
    insta::assert_snapshot!("two_kubernetes_environments_share_a_namespace", stderr);
}
