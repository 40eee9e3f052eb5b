//! `[store]`: the runtime config store's settings, their defaults, and a located problem for
//! an etcd address that `tier store serve` could not use.

mod support;

use tier_model::Project;
use tier_model::environment::DEFAULT_STORE_IMAGE;

const PROJECT: &str = r#"[project]
name = "shop"

[environments.prod]
runtime = "kubernetes"
kube = { context = "prod-admin", namespace = "shop-prod" }

[services.api]
image = "shop-api:1.0"
"#;

fn project(store: &str) -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().expect("a project directory");
    std::fs::write(dir.path().join("tier.toml"), format!("{PROJECT}\n{store}"))
        .expect("write tier.toml");
    let project = Project::load(dir.path()).expect("the project loads");
    (dir, project)
}

/// Every problem of the project as `file:line:column message`.
fn problems(project: &mut Project) -> Vec<String> {
    let validation = tier_model::validate(project, &[]);
    support::located(&validation.problems, &project.sources)
}

#[test]
fn without_etcd_or_image_the_store_uses_the_namespaces_etcd_and_this_tiers_image() {
    let (_dir, mut project) = project("[store]\nkubernetes = true\n");
    assert_eq!(problems(&mut project), Vec::<String>::new());
    let environment = project.resolve("prod", &[]).expect("resolves").environment;
    assert!(environment.store.kubernetes);
    assert_eq!(
        environment.store_etcd(),
        "etcd://etcd:2379/tier/shop/prod",
        "an `etcd` Service in the environment's namespace, keys under the environment"
    );
    assert_eq!(environment.store_image(), DEFAULT_STORE_IMAGE);
    assert_eq!(
        DEFAULT_STORE_IMAGE,
        format!("tier:{}", env!("CARGO_PKG_VERSION"))
    );
    // Unset keys stay out of the rendered environment, so earlier renders read the same.
    let rendered = serde_json::to_value(&environment).expect("serialises");
    assert_eq!(rendered["store"], serde_json::json!({ "kubernetes": true }));
}

#[test]
fn etcd_and_image_are_taken_as_written_and_explained() {
    let (_dir, mut project) = project(
        "[store]\nkubernetes = true\netcd = \"etcd://etcd-0.db:2379,etcd-1.db:2379/shop\"\nimage = \"registry.example/tier:0.1.0\"\n",
    );
    assert_eq!(problems(&mut project), Vec::<String>::new());
    let resolved = project.resolve("prod", &[]).expect("resolves");
    let environment = &resolved.environment;
    assert_eq!(
        environment.store_etcd(),
        "etcd://etcd-0.db:2379,etcd-1.db:2379/shop"
    );
    assert_eq!(environment.store_image(), "registry.example/tier:0.1.0");
    let explained = resolved.explain("store.etcd").expect("explained");
    assert_eq!(
        project
            .sources
            .describe(explained.origin.location().expect("written")),
        "tier.toml:13:8"
    );
}

#[test]
fn an_etcd_address_that_is_not_etcds_is_a_located_problem() {
    for (address, why) in [
        ("http://etcd:2379", "it must start with etcd://"),
        ("etcd://etcd", "every endpoint needs a port: HOST:PORT"),
        ("etcd://etcd:0", "a port must be a number from 1 to 65535"),
        (
            "etcd://user@etcd:2379",
            "it takes no user, query, fragment or spaces",
        ),
    ] {
        let (_dir, mut project) = project(&format!("[store]\netcd = \"{address}\"\n"));
        assert_eq!(
            problems(&mut project),
            [format!(
                "tier.toml:12:8 `store.etcd`: \"{address}\" is not an etcd address: {why}"
            )],
            "{address}"
        );
    }
    let (_dir, mut project) = project("[store]\netcd = 2379\n");
    let found = problems(&mut project);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("tier.toml:12:8 `store.etcd` must be an etcd address"),
        "{found:?}"
    );
}

#[test]
fn a_misspelt_store_key_names_the_new_keys() {
    let (_dir, mut project) = project("[store]\netc = \"etcd://etcd:2379\"\n");
    let validation = tier_model::validate(&mut project, &[]);
    let [problem] = &validation.problems[..] else {
        panic!("one problem: {:?}", validation.problems);
    };
    assert_eq!(problem.message, "unknown key `etc` in `store`");
    assert_eq!(
        problem.help.as_deref(),
        Some("allowed keys here: kubernetes, etcd, image")
    );
}
