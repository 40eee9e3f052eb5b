//! Plans of the sample app's stage environment: resolved from `examples/sample-app` (with
//! `--set`-style changes), against a deployed spec that is itself a resolved environment.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use tier_model::environment::Artifact;
use tier_model::{Environment, Project, Set};
use tier_plan::{Action, Counts, Deployed, FieldChange, Plan, PlanError, plan};

const BACKEND_V1: &str = "sha256:1a2b3c4d5e6f70811a2b3c4d5e6f70811a2b3c4d5e6f70811a2b3c4d5e6f7081";
const BACKEND_V2: &str = "sha256:9f8e7d6c5b4a30219f8e7d6c5b4a30219f8e7d6c5b4a30219f8e7d6c5b4a3021";
const FRONTEND_V1: &str = "sha256:5e5e5e5e0f0f0f0f5e5e5e5e0f0f0f0f5e5e5e5e0f0f0f0f5e5e5e5e0f0f0f0f";
const CACHE_V1: &str = "sha256:cacecacecacecacecacecacecacecacecacecacecacecacecacecacecacecace";

/// Stage of the sample app, resolved with `--set` arguments.
fn stage(sets: &[&str]) -> Environment {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-app");
    let mut project = Project::load(&root).expect("the sample app loads");
    let sets: Vec<Set> = sets
        .iter()
        .map(|set| Set::parse(set).expect("a valid --set"))
        .collect();
    match project.resolve("stage", &sets) {
        Ok(resolved) => resolved.environment,
        Err(problems) => panic!("stage does not resolve: {problems:?}"),
    }
}

fn artifacts(digests: &[(&str, &str)]) -> BTreeMap<String, Artifact> {
    digests
        .iter()
        .map(|(service, digest)| {
            (
                (*service).to_owned(),
                Artifact {
                    digest: (*digest).to_owned(),
                    source: format!("target/release/sample-{service}"),
                },
            )
        })
        .collect()
}

fn v1() -> BTreeMap<String, Artifact> {
    artifacts(&[("backend", BACKEND_V1), ("frontend", FRONTEND_V1)])
}

/// What the last successful apply recorded.
struct State {
    revision: u64,
    spec: Value,
    artifacts: BTreeMap<String, Artifact>,
}

impl State {
    fn of(environment: &Environment, artifacts: BTreeMap<String, Artifact>) -> State {
        State {
            revision: 4,
            spec: serde_json::to_value(environment).expect("serialises"),
            artifacts,
        }
    }

    fn deployed(&self) -> Option<Deployed<'_>> {
        Some(Deployed {
            revision: self.revision,
            spec: &self.spec,
            artifacts: &self.artifacts,
        })
    }
}

/// Stage deployed at revision 4 with the v1 artifacts.
fn deployed_stage() -> State {
    State::of(&stage(&[]), v1())
}

fn change(path: &str, old: Option<Value>, new: Option<Value>) -> FieldChange {
    FieldChange {
        path: path.to_owned(),
        old,
        new,
    }
}

fn actions(plan: &Plan) -> Vec<(&str, Action)> {
    plan.services
        .iter()
        .map(|service| (service.service.as_str(), service.action))
        .collect()
}

fn service<'a>(plan: &'a Plan, name: &str) -> &'a tier_plan::ServiceChange {
    plan.services
        .iter()
        .find(|service| service.service == name)
        .expect("the service is in the plan")
}

#[test]
fn first_deploy_creates_every_service() {
    let plan = plan(&stage(&[]), &v1(), None, 0);
    assert_eq!(plan.base_revision, None);
    assert_eq!(
        actions(&plan),
        [("backend", Action::Create), ("frontend", Action::Create)]
    );
    assert_eq!(plan.waves, [vec!["backend"], vec!["frontend"]]);
    assert!(!plan.is_empty());
    insta::assert_snapshot!("first_deploy", plan.render_text(false));
}

#[test]
fn nothing_changed_is_an_empty_plan() {
    let state = deployed_stage();
    let plan = plan(&stage(&[]), &v1(), state.deployed(), 7);
    assert!(plan.is_empty());
    assert!(plan.settings.is_empty());
    assert_eq!(
        plan.counts(),
        Counts {
            unchanged: 2,
            ..Counts::default()
        }
    );
    assert_eq!(
        plan.render_text(false),
        "No changes: stage matches revision 4.\n"
    );
}

#[test]
fn only_replicas_changed_is_a_scale() {
    let state = deployed_stage();
    let plan = plan(
        &stage(&["services.backend.replicas=3"]),
        &v1(),
        state.deployed(),
        7,
    );
    let backend = service(&plan, "backend");
    assert_eq!(backend.action, Action::Update);
    assert_eq!(
        backend.fields,
        [change("replicas", Some(json!(2)), Some(json!(3)))]
    );
    assert!(backend.is_scale());
    assert_eq!(service(&plan, "frontend").action, Action::Unchanged);
    insta::assert_snapshot!("scale", plan.render_text(false));
}

#[test]
fn a_changed_app_config_key_is_named() {
    // The deployed revision was made when the backend's stage config said otherwise: another
    // text, a key since removed, and no items_per_page yet.
    let mut state = deployed_stage();
    let config = &mut state.spec["services"]["backend"]["config"];
    config["text"] = json!("old staging config");
    config["legacy_mode"] = json!(true);
    config
        .as_object_mut()
        .expect("config is an object")
        .remove("items_per_page");
    let plan = plan(&stage(&[]), &v1(), state.deployed(), 7);
    let backend = service(&plan, "backend");
    assert_eq!(backend.action, Action::Update);
    assert!(!backend.is_scale());
    assert_eq!(
        backend.fields,
        [
            change("config.items_per_page", None, Some(json!(10))),
            change("config.legacy_mode", Some(json!(true)), None),
            change(
                "config.text",
                Some(json!("old staging config")),
                Some(json!("staging config"))
            ),
        ]
    );
    insta::assert_snapshot!("config_key", plan.render_text(false));
}

#[test]
fn a_new_artifact_is_an_update() {
    let state = deployed_stage();
    let desired = artifacts(&[("backend", BACKEND_V2), ("frontend", FRONTEND_V1)]);
    let plan = plan(&stage(&[]), &desired, state.deployed(), 7);
    assert_eq!(
        service(&plan, "backend").fields,
        [change(
            "artifact",
            Some(json!(BACKEND_V1)),
            Some(json!(BACKEND_V2))
        )]
    );
    assert_eq!(plan.artifacts, desired);
    let text = plan.render_text(false);
    assert!(
        text.contains("  ~ artifact: sha256:1a2b3c4d5e6f… → sha256:9f8e7d6c5b4a…\n"),
        "{text}"
    );
    insta::assert_snapshot!("artifact", text);
}

#[test]
fn services_added_and_removed() {
    // Deployed: stage with a cache. Desired: the cache is gone and a worker is new.
    let with_cache = stage(&[
        r#"services.cache.command=["target/release/sample-backend"]"#,
        "services.cache.port=8082",
    ]);
    let state = State::of(
        &with_cache,
        artifacts(&[
            ("backend", BACKEND_V1),
            ("cache", CACHE_V1),
            ("frontend", FRONTEND_V1),
        ]),
    );
    let desired = stage(&[
        r#"services.worker.command=["target/release/sample-backend"]"#,
        "services.worker.port=8083",
        r#"services.worker.depends_on=["backend"]"#,
    ]);
    let desired_artifacts = artifacts(&[
        ("backend", BACKEND_V1),
        ("frontend", FRONTEND_V1),
        ("worker", BACKEND_V2),
    ]);
    let plan = plan(&desired, &desired_artifacts, state.deployed(), 7);
    assert_eq!(
        actions(&plan),
        [
            ("backend", Action::Unchanged),
            ("frontend", Action::Unchanged),
            ("worker", Action::Create),
            ("cache", Action::Delete),
        ],
        "waves first, deletions last"
    );
    assert_eq!(plan.waves, [vec!["backend"], vec!["frontend", "worker"]]);
    assert_eq!(
        plan.counts(),
        Counts {
            create: 1,
            update: 0,
            delete: 1,
            unchanged: 2
        }
    );
    let cache = service(&plan, "cache");
    assert!(cache.fields.iter().all(|field| field.new.is_none()));
    assert_eq!(
        cache.fields.first(),
        Some(&change("artifact", Some(json!(CACHE_V1)), None))
    );
    insta::assert_snapshot!("added_and_removed", plan.render_text(false));
}

#[test]
fn without_ordering_every_service_is_in_one_wave() {
    let state = deployed_stage();
    let plan = plan(
        &stage(&["project.ordering=false"]),
        &v1(),
        state.deployed(),
        7,
    );
    assert_eq!(plan.waves, [vec!["backend", "frontend"]]);
    assert_eq!(
        plan.settings,
        [change(
            "project.ordering",
            Some(json!(true)),
            Some(json!(false))
        )]
    );
    assert!(!plan.is_empty(), "a setting change is something to apply");
    insta::assert_snapshot!("ordering_off", plan.render_text(false));
}

#[test]
fn environment_settings_come_first() {
    let state = deployed_stage();
    let plan = plan(
        &stage(&[
            "project.on_failure=halt",
            "flags.new-ui.default=true",
            "services.frontend.replicas=2",
        ]),
        &v1(),
        state.deployed(),
        7,
    );
    assert_eq!(
        plan.settings,
        [
            change("flags.new-ui.default", None, Some(json!(true))),
            change(
                "project.on_failure",
                Some(json!("rollback")),
                Some(json!("halt"))
            ),
        ]
    );
    insta::assert_snapshot!("settings", plan.render_text(false));
}

#[test]
fn secrets_are_shown_as_references() {
    let state = deployed_stage();
    let plan = plan(
        &stage(&["services.backend.secrets.DB.env=DB_PASSWORD"]),
        &v1(),
        state.deployed(),
        7,
    );
    assert_eq!(
        service(&plan, "backend").fields,
        [change(
            "secrets.DB",
            None,
            Some(json!("<secret:env:DB_PASSWORD>"))
        )]
    );
    assert!(
        plan.render_text(false)
            .contains("  + secrets.DB: \"<secret:env:DB_PASSWORD>\"\n")
    );
}

#[test]
fn a_changed_secret_value_is_an_update_named_by_fingerprint_only() {
    let mut deployed = stage(&["services.backend.secrets.DB.env=DB_PASSWORD"]);
    let backend = deployed.services.get_mut("backend").expect("backend");
    backend
        .secret_fingerprints
        .insert("DB".to_owned(), "hmac:1111222233334444".to_owned());
    let state = State::of(&deployed, v1());

    let mut desired = deployed.clone();
    let backend = desired.services.get_mut("backend").expect("backend");
    backend
        .secret_fingerprints
        .insert("DB".to_owned(), "hmac:aaaabbbbccccdddd".to_owned());
    let plan = plan(&desired, &v1(), state.deployed(), 7);

    assert_eq!(
        actions(&plan),
        [("backend", Action::Update), ("frontend", Action::Unchanged)]
    );
    assert_eq!(
        service(&plan, "backend").fields,
        [change(
            "secret_fingerprints.DB",
            Some(json!("hmac:1111222233334444")),
            Some(json!("hmac:aaaabbbbccccdddd"))
        )]
    );
    assert!(
        plan.render_text(false).contains(
            "  ~ secret DB: value changed (hmac:1111222233334444 → hmac:aaaabbbbccccdddd)\n"
        ),
        "{}",
        plan.render_text(false)
    );
}

#[test]
fn color_only_when_asked() {
    let state = deployed_stage();
    let plan = plan(
        &stage(&["services.backend.replicas=3"]),
        &v1(),
        state.deployed(),
        7,
    );
    assert!(!plan.render_text(false).contains('\u{1b}'));
    let colored = plan.render_text(true);
    assert!(colored.contains("\u{1b}["), "{colored:?}");
    assert_eq!(console::strip_ansi_codes(&colored), plan.render_text(false));
}

#[test]
fn a_deployed_spec_that_is_not_an_environment_is_compared_as_nothing() {
    let spec = json!("not an environment");
    let no_artifacts = BTreeMap::new();
    let deployed = Deployed {
        revision: 1,
        spec: &spec,
        artifacts: &no_artifacts,
    };
    let plan = plan(&stage(&[]), &v1(), Some(deployed), 7);
    assert_eq!(
        actions(&plan),
        [("backend", Action::Create), ("frontend", Action::Create)]
    );
    assert!(plan.settings.iter().all(|field| field.old.is_none()));
}

#[test]
fn a_saved_plan_reads_back_the_same() {
    let state = deployed_stage();
    let plan = plan(
        &stage(&["services.backend.replicas=3", "project.on_failure=halt"]),
        &artifacts(&[("backend", BACKEND_V2), ("frontend", FRONTEND_V1)]),
        state.deployed(),
        7,
    );
    let text = plan.to_json();
    let back = Plan::from_json(&text).expect("reads back");
    assert_eq!(back, plan);
    assert_eq!(back.to_json(), text);
    assert_eq!(back.state_serial, 7);
    let environment = back.desired_environment().expect("the desired environment");
    assert_eq!(environment.services["backend"].replicas, 3);
    insta::assert_snapshot!("saved_plan", text);
}

#[test]
fn a_null_value_survives_a_round_trip() {
    let state = deployed_stage();
    let mut plan = plan(&stage(&[]), &v1(), state.deployed(), 7);
    plan.settings
        .push(change("flags.x.default", Some(Value::Null), None));
    let back = Plan::from_json(&plan.to_json()).expect("reads back");
    assert_eq!(back.settings, plan.settings);
}

#[test]
fn a_plan_saved_in_another_format_is_refused() {
    let state = deployed_stage();
    let plan = plan(&stage(&[]), &v1(), state.deployed(), 7);
    let mut saved: Value = serde_json::from_str(&plan.to_json()).expect("JSON");
    saved["format_version"] = json!(2);
    let error = Plan::from_json(&saved.to_string()).expect_err("refused");
    assert!(
        matches!(&error, PlanError::UnsupportedFormat { found, expected: 1 } if found == "2"),
        "{error:?}"
    );
    insta::assert_snapshot!("wrong_format", error.to_string());

    saved
        .as_object_mut()
        .expect("an object")
        .remove("format_version");
    let error = Plan::from_json(&saved.to_string()).expect_err("refused");
    assert!(matches!(error, PlanError::NotAPlan), "{error:?}");

    let error = Plan::from_json("{ not json").expect_err("refused");
    assert!(matches!(error, PlanError::NotJson(_)), "{error:?}");
}

#[test]
fn a_plan_whose_environment_is_damaged_is_refused() {
    let state = deployed_stage();
    let plan = plan(&stage(&[]), &v1(), state.deployed(), 7);
    let mut saved: Value = serde_json::from_str(&plan.to_json()).expect("JSON");
    saved["desired"]["services"]["backend"]["replicas"] = json!("three");
    let error = Plan::from_json(&saved.to_string()).expect_err("refused");
    assert!(matches!(error, PlanError::Damaged(_)), "{error:?}");
}

#[test]
fn a_saved_plan_is_refused_once_the_state_moved() {
    let state = deployed_stage();
    let plan = plan(
        &stage(&["services.backend.replicas=3"]),
        &v1(),
        state.deployed(),
        7,
    );
    assert!(plan.ensure_current(7).is_ok());
    let error = plan.ensure_current(8).expect_err("refused");
    assert_eq!(
        error.to_string(),
        "the state of stage moved since the plan was made (serial 7, now 8); make the plan again"
    );
}
