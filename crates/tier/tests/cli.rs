//! End-to-end tests of the `tier` binary: every command on the sample app and on small
//! projects written for one behaviour each, with the output snapshotted.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use tier_test::TestContext;

/// Runs `tier` in a project with the given arguments and expects success with nothing on stderr.
fn stdout_of(context: &TestContext, args: &[&str]) -> String {
    let run = context.tier(args).success();
    assert_eq!(run.stderr, "", "tier {args:?} wrote to stderr");
    run.stdout
}

fn json_of(context: &TestContext, args: &[&str]) -> serde_json::Value {
    let stdout = stdout_of(context, args);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("tier {args:?} printed invalid JSON ({error}):\n{stdout}"))
}

fn sample_app() -> TestContext {
    TestContext::copy_of("examples/sample-app")
}

/// A project with an abstract `prod` and two regions that extend it, each layer setting
/// something, and app config at every level of the chain.
fn regions() -> TestContext {
    TestContext::with_files(&[
        (
            "tier.toml",
            r#"[project]
name = "regions"

[environments.dev]
runtime = "local"

[environments.prod]
abstract = true
runtime = "local"
protected = true

[environments.prod-ie]
extends = "prod"
region = "eu-west-1"

[environments.prod-us]
extends = "prod"
region = "us-east-2"

[services.api]
command = ["api"]
replicas = 1
memory = "64Mi"
config = "config/api"
"#,
        ),
        (
            "envs/prod.toml",
            "[services.api]\nreplicas = 3\nmemory = \"256Mi\"\n",
        ),
        ("envs/prod-ie.toml", "[services.api]\nreplicas = 5\n"),
        (
            "config/api/base.json",
            r#"{
  "log": "info",
  "region": "none",
  "limits": { "rps": 10, "burst": 20 },
  "hosts": ["a", "b"],
  "debug": true
}
"#,
        ),
        (
            "config/api/prod.json",
            r#"{
  "log": "warn",
  "hosts": ["p"],
  "debug": null,
  "limits": { "rps": 100 }
}
"#,
        ),
        ("config/api/prod-ie.json", "{ \"region\": \"ie\" }\n"),
    ])
}

#[test]
fn envs_lists_every_environment() {
    let context = sample_app();
    insta::assert_snapshot!(stdout_of(&context, &["envs"]));
    insta::assert_json_snapshot!(
        "envs_json",
        json_of(&context, &["envs", "--output", "json"])
    );
}

#[test]
fn render_every_environment_as_json_and_yaml() {
    let context = sample_app();
    for env in ["dev", "stage", "prod"] {
        let json = stdout_of(&context, &["render", env]);
        serde_json::from_str::<serde_json::Value>(&json).expect("render prints JSON");
        insta::assert_snapshot!(format!("render_{env}_json"), json);
        let yaml = stdout_of(&context, &["render", env, "--format", "yaml"]);
        insta::assert_snapshot!(format!("render_{env}_yaml"), yaml);
    }
}

#[test]
fn render_is_deterministic() {
    let context = regions();
    for format in ["json", "yaml"] {
        let first = stdout_of(&context, &["render", "prod-ie", "--format", format]);
        let second = stdout_of(&context, &["render", "prod-ie", "--format", format]);
        assert_eq!(first, second, "two renders of prod-ie as {format} differ");
    }
    let sample = sample_app();
    let first = stdout_of(&sample, &["render", "prod"]);
    let second = stdout_of(&sample, &["render", "prod"]);
    assert_eq!(
        first.as_bytes(),
        second.as_bytes(),
        "two renders of prod differ"
    );
}

#[test]
fn explain_replicas_in_prod_overrides_tier_toml() {
    let context = sample_app();
    let text = stdout_of(&context, &["explain", "prod", "services.backend.replicas"]);
    assert!(text.contains("from envs/prod.toml:"), "{text}");
    assert!(text.contains("overriding 1 from tier.toml:"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn explain_a_config_key_names_the_json_file() {
    let context = sample_app();
    insta::assert_snapshot!(stdout_of(
        &context,
        &["explain", "prod", "services.backend.config.text"]
    ));
}

#[test]
fn explain_a_builtin_default() {
    let context = sample_app();
    let text = stdout_of(
        &context,
        &["explain", "prod", "services.backend.rollout.max_surge"],
    );
    assert!(text.contains("built-in default"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn explain_as_json() {
    let context = sample_app();
    insta::assert_json_snapshot!(json_of(
        &context,
        &[
            "explain",
            "prod",
            "services.backend.replicas",
            "--output",
            "json"
        ]
    ));
}

#[test]
fn diff_stage_prod() {
    let context = sample_app();
    insta::assert_snapshot!(
        "diff_stage_prod_text",
        stdout_of(&context, &["diff", "stage", "prod"])
    );
    insta::assert_json_snapshot!(
        "diff_stage_prod_json",
        json_of(&context, &["diff", "stage", "prod", "--output", "json"])
    );
}

#[test]
fn diff_of_an_environment_with_itself_is_empty() {
    let context = sample_app();
    let text = stdout_of(&context, &["diff", "prod", "prod"]);
    assert_eq!(text, "prod and prod resolve to the same values\n");
}

#[test]
fn diff_exit_code_is_1_when_the_environments_differ() {
    let context = sample_app();
    let without = context.tier(&["diff", "stage", "prod"]).success();
    let with = context
        .tier(&["diff", "stage", "prod", "--exit-code"])
        .expect_code(1);
    assert_eq!(with.stdout, without.stdout);
    assert_eq!(with.stderr, "");
    context
        .tier(&["diff", "stage", "prod", "--exit-code", "--output", "json"])
        .expect_code(1);
    tier_test::tier_snapshot!(context.tier(&["diff", "prod", "prod", "--exit-code"]), @r"
    success: true
    exit_code: 0
    ----- stdout -----
    prod and prod resolve to the same values

    ----- stderr -----
    ");
}

#[test]
fn graph_of_the_sample_app_as_dot_and_mermaid() {
    let context = sample_app();
    tier_test::tier_snapshot!("graph_dev_dot", context.tier(&["graph", "dev"]));
    tier_test::tier_snapshot!(
        "graph_dev_mermaid",
        context.tier(&["graph", "dev", "--format", "mermaid"])
    );
}

#[test]
fn graph_as_svg_and_json() {
    let context = sample_app();
    let svg = stdout_of(&context, &["graph", "dev", "--format", "svg"]);
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    for service in ["backend", "frontend"] {
        assert!(
            svg.contains(&format!("data-service=\"{service}\"")),
            "{service} is drawn:\n{svg}"
        );
    }
    let graph = json_of(&context, &["graph", "dev", "--output", "json"]);
    assert_eq!(
        graph,
        serde_json::json!({
            "environment": "dev",
            "waves": [["backend"], ["frontend"]],
            "edges": [{ "from": "frontend", "to": "backend" }],
        })
    );
}

#[test]
fn graph_of_an_unknown_or_abstract_environment_fails() {
    let cases = [
        (
            sample_app(),
            "prdo",
            2,
            "error: no environment `prdo` in tier.toml: did you mean `prod`?\nhint: `tier envs` lists the environments\n",
        ),
        (
            regions(),
            "prod",
            1,
            "error: environment `prod` is abstract: it is only a parent and is never deployed\nhint: draw one of the environments that extend it\n",
        ),
    ];
    for (context, env, code, stderr) in cases {
        let failed = context.tier(&["graph", env]).expect_code(code);
        assert_eq!(failed.stdout, "");
        assert_eq!(failed.stderr, stderr);
    }
}

#[test]
fn validate_the_sample_app() {
    let context = sample_app();
    insta::assert_snapshot!("validate_ok_text", stdout_of(&context, &["validate"]));
    insta::assert_json_snapshot!(
        "validate_ok_json",
        json_of(&context, &["validate", "--output", "json"])
    );
}

#[test]
fn project_flag_short_form_and_global_position() {
    let context = sample_app();
    let mut command = tier_test::tier();
    command.arg("validate").arg("-C").arg(context.path());
    let run = context.run(command).expect_code(0);
    assert!(run.stdout.starts_with("ok sample-app:"), "{}", run.stdout);
}

#[test]
fn color_always_styles_and_never_does_not() {
    let context = sample_app();
    let mut always = context.command(&[]);
    always.args(["--color", "always", "validate"]);
    assert!(
        context.run(always).expect_code(0).stdout.contains('\u{1b}'),
        "--color always printed no escape codes"
    );
    let mut never = context.command(&[]);
    never
        .args(["--color", "never", "validate"])
        .env_remove("NO_COLOR");
    assert!(
        !context.run(never).expect_code(0).stdout.contains('\u{1b}'),
        "--color never printed escape codes"
    );
}

#[test]
fn init_minimal_then_validate_and_envs() {
    let context = TestContext::empty();
    let mut init = context.command(&[]);
    init.args(["init", "shop"]);
    let created = context.run(init).expect_code(0);
    assert_eq!(created.stdout, "", "init writes its report to stderr");
    insta::assert_snapshot!(
        "init_minimal_stderr",
        tier_test::redact(&created.stderr, context.project())
    );

    let shop = context.path().join("shop");
    let mut validate = tier_test::tier();
    validate.arg("-C").arg(&shop).arg("validate");
    insta::assert_snapshot!(
        "init_minimal_validate",
        context.run(validate).expect_code(0).stdout
    );
    let mut envs = tier_test::tier();
    envs.arg("-C").arg(&shop).arg("envs");
    insta::assert_snapshot!("init_minimal_envs", context.run(envs).expect_code(0).stdout);
}

#[test]
fn init_sample_app_then_validate() {
    let context = TestContext::empty();
    let mut init = context.command(&[]);
    init.args(["init", "--template", "sample-app", "demo"]);
    context.run(init).expect_code(0);
    let demo = context.path().join("demo");
    for file in [
        "tier.toml",
        "envs/prod.toml",
        "config/backend/base.json",
        "README.md",
    ] {
        assert!(
            demo.join(file).is_file(),
            "init --template sample-app wrote no {file}"
        );
    }
    let mut validate = tier_test::tier();
    validate.arg("-C").arg(&demo).arg("validate");
    let text = context.run(validate).expect_code(0).stdout;
    assert!(
        text.contains("3 environments (dev, stage, prod), 2 services, no problems"),
        "{text}"
    );
}

#[test]
fn init_into_a_project_fails_and_writes_nothing() {
    let context = sample_app();
    let before = listing(context.path());
    let tier_toml = context.read("tier.toml");
    for template in ["minimal", "sample-app"] {
        let mut init = context.command(&[]);
        init.args(["init", "--template", template]);
        let failed = context.run(init).expect_code(1);
        assert_eq!(failed.stdout, "");
        insta::assert_snapshot!(
            format!("init_existing_{template}"),
            tier_test::redact(&failed.stderr, context.project())
        );
        assert_eq!(
            listing(context.path()),
            before,
            "init {template} changed the directory"
        );
        assert_eq!(context.read("tier.toml"), tier_toml);
    }
}

/// Every file below a directory with its contents, sorted.
fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read a directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .expect("below the root")
                    .display()
                    .to_string();
                files.push((relative, std::fs::read(&path).expect("read a file")));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn completions_for_every_shell() {
    let context = TestContext::empty();
    for shell in ["bash", "zsh", "fish"] {
        let mut command = tier_test::tier();
        command.args(["completions", shell]);
        let script = context.run(command).expect_code(0).stdout;
        assert!(
            script.len() > 100,
            "the {shell} completion script is nearly empty"
        );
        assert!(
            script.contains("validate"),
            "the {shell} completion script does not offer validate"
        );
    }
}

#[test]
fn set_beats_the_override_file() {
    let context = sample_app();
    let args = [
        "explain",
        "prod",
        "services.backend.replicas",
        "--set",
        "services.backend.replicas=7",
    ];
    let text = stdout_of(&context, &args);
    assert!(
        text.starts_with(
            "services.backend.replicas = 7\n  from --set services.backend.replicas=7\n"
        ),
        "{text}"
    );
    insta::assert_snapshot!(text);
    let rendered = json_of(
        &context,
        &["render", "prod", "--set", "services.backend.replicas=7"],
    );
    assert_eq!(rendered["services"]["backend"]["replicas"], 7);
}

#[test]
fn set_takes_a_table_as_toml_or_json_in_place_of_the_one_there() {
    let context = sample_app();
    let render = |set: &str| json_of(&context, &["render", "prod", "--set", set]);
    for table in [
        "services.backend.health={ tcp = 8080 }",
        r#"services.backend.health={"tcp": 8080}"#,
    ] {
        let health = &render(table)["services"]["backend"]["health"];
        assert_eq!(health["tcp"], 8080, "{table}: {health}");
        assert!(
            health.get("http").is_none(),
            "{table} replaces the project's health check: {health}"
        );
    }
    // A dotted key adds to the table instead.
    let health =
        &render(r#"services.backend.health.initial_delay="2s""#)["services"]["backend"]["health"];
    assert_eq!(health["http"], "/healthz", "{health}");
    assert_eq!(health["initial_delay"], "2s", "{health}");
    let run = context
        .tier(&[
            "render",
            "prod",
            "--set",
            "services.backend.health={tcp: 8080",
        ])
        .expect_code(2);
    assert!(
        run.stderr.contains("the value is neither TOML nor JSON (")
            && run
                .stderr
                .contains("write a table as { key = value } or {\"key\": value}"),
        "{}",
        run.stderr
    );
}

#[test]
fn extends_layers_the_parent_override_file_under_the_child() {
    let context = regions();
    insta::assert_snapshot!("regions_envs", stdout_of(&context, &["envs"]));
    let replicas = stdout_of(&context, &["explain", "prod-ie", "services.api.replicas"]);
    insta::assert_snapshot!("regions_explain_replicas", replicas);
    let memory = stdout_of(&context, &["explain", "prod-ie", "services.api.memory"]);
    assert!(
        memory.contains("from envs/prod.toml:3:10"),
        "prod-ie takes memory from its parent: {memory}"
    );
    let us = stdout_of(&context, &["explain", "prod-us", "services.api.replicas"]);
    assert!(
        us.starts_with("services.api.replicas = 3\n  from envs/prod.toml:2:12\n"),
        "{us}"
    );
    let region = stdout_of(
        &context,
        &["explain", "prod-ie", "services.api.config.region"],
    );
    insta::assert_snapshot!("regions_explain_config_region", region);
    let log = stdout_of(&context, &["explain", "prod-ie", "services.api.config.log"]);
    assert!(
        log.contains("from config/api/prod.json:"),
        "prod-ie takes prod.json: {log}"
    );
}

#[test]
fn extends_inherits_the_parent_declaration() {
    let context = regions();
    let rendered = json_of(&context, &["render", "prod-ie"]);
    assert_eq!(
        rendered["protected"], true,
        "prod-ie is protected like prod"
    );
    assert_eq!(rendered["extends"], "prod");
    assert_eq!(rendered["region"], "eu-west-1");
}

#[test]
fn render_of_an_abstract_environment_fails() {
    let context = regions();
    let mut command = context.command(&[]);
    command.args(["render", "prod"]);
    let failed = context.run(command).expect_code(1);
    assert_eq!(failed.stdout, "");
    insta::assert_snapshot!(failed.stderr);
}

#[test]
fn config_null_removes_a_key_arrays_replace_objects_merge() {
    let context = regions();
    let rendered = json_of(&context, &["render", "prod-ie"]);
    let config = &rendered["services"]["api"]["config"];
    assert!(
        config.get("debug").is_none(),
        "prod.json's null removes debug: {config}"
    );
    assert_eq!(config["hosts"], serde_json::json!(["p"]), "arrays replace");
    assert_eq!(
        config["limits"],
        serde_json::json!({ "burst": 20, "rps": 100 }),
        "objects merge"
    );
    insta::assert_json_snapshot!("regions_prod_ie_config", config);

    let dev = json_of(&context, &["render", "dev"]);
    assert_eq!(
        dev["services"]["api"]["config"]["debug"], true,
        "dev keeps base.json's debug"
    );

    let mut explain = context.command(&[]);
    explain.args(["explain", "prod-ie", "services.api.config.debug"]);
    let removed = context.run(explain).expect_code(0);
    assert_eq!(
        removed.stdout,
        "services.api.config.debug is removed\n  by config/api/prod.json:4:12\n  overriding true from config/api/base.json:6:12\n",
        "explain names the file and line that removed the key"
    );
}

#[test]
fn unknown_environment_is_a_usage_error_with_a_suggestion() {
    let context = sample_app();
    for args in [
        &["render", "prdo"][..],
        &["explain", "stgae", "services.backend.replicas"],
        &["diff", "stage", "prdo"],
    ] {
        let mut command = context.command(&[]);
        command.args(args);
        let failed = context.run(command).expect_code(2);
        assert_eq!(failed.stdout, "");
        assert!(
            failed.stderr.contains("did you mean `"),
            "tier {args:?}: {}",
            failed.stderr
        );
    }
    let mut command = context.command(&[]);
    command.args(["render", "prdo"]);
    insta::assert_snapshot!(context.run(command).expect_code(2).stderr);
}

#[test]
fn explain_of_an_unknown_path_is_a_usage_error() {
    let context = sample_app();
    let mut near = context.command(&[]);
    near.args(["explain", "prod", "services.backend.replica"]);
    insta::assert_snapshot!(
        "explain_unknown_path_near",
        context.run(near).expect_code(2).stderr
    );
    let mut far = context.command(&[]);
    far.args(["explain", "prod", "nothing.here"]);
    insta::assert_snapshot!(
        "explain_unknown_path_far",
        context.run(far).expect_code(2).stderr
    );
}

#[test]
fn no_project_file_hints_tier_init() {
    let context = TestContext::empty();
    for args in [&["validate"][..], &["envs"], &["render", "dev"]] {
        let mut command = context.command(&[]);
        command.args(args);
        let failed = context.run(command).expect_code(1);
        assert_eq!(failed.stdout, "");
        assert!(
            failed.stderr.contains("hint: run `tier init`"),
            "tier {args:?}: {}",
            failed.stderr
        );
    }
    let mut command = context.command(&[]);
    command.arg("validate");
    insta::assert_snapshot!(tier_test::redact(
        &context.run(command).expect_code(1).stderr,
        context.project()
    ));
}

/// `tier render dev | head -1`: the reader goes away after one line. The project is large
/// enough that its render cannot fit in a pipe's buffer, so tier is certain to meet the
/// closed pipe while writing.
#[test]
#[expect(
    clippy::disallowed_methods,
    reason = "the test closes the child's stdout pipe itself"
)]
fn broken_pipe_exits_zero() {
    let mut text =
        String::from("[project]\nname = \"wide\"\n\n[environments.dev]\nruntime = \"local\"\n");
    for index in 0..400 {
        text.push_str(&format!(
            "\n[services.service-{index}]\ncommand = [\"program-{index}\", \"--flag\"]\nversion = \"1.0.{index}\"\nhealth = {{ http = \"/healthz\" }}\n"
        ));
    }
    let context = TestContext::with_files(&[("tier.toml", &text)]);
    let mut child = std::process::Command::new(tier_test::tier_binary())
        .env("NO_COLOR", "1")
        .arg("--project")
        .arg(context.path())
        .args(["render", "dev"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tier");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut first = [0_u8; 2];
    stdout.read_exact(&mut first).expect("read the first line");
    assert_eq!(&first, b"{\n");
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("wait for tier");
    assert_eq!(
        status.code(),
        Some(0),
        "tier exited with {status} on a closed pipe; stderr:\n{stderr}"
    );
    assert_eq!(stderr, "", "a closed pipe is not an error");
}

#[test]
fn schema_is_printed_and_written() {
    let context = TestContext::empty();
    let mut command = tier_test::tier();
    command.args(["schema"]);
    let schema: serde_json::Value =
        serde_json::from_str(&context.run(command).expect_code(0).stdout).expect("schema is JSON");
    assert_eq!(schema["title"], "tier.toml");
    let mut write = tier_test::tier();
    write
        .args(["schema", "--out"])
        .arg(context.path().join("schema"));
    context.run(write).expect_code(0);
    assert!(context.path().join("schema/tier.schema.json").is_file());
    assert!(context.path().join("schema/tier-env.schema.json").is_file());
}

/// The committed `schema/` is what editors and CI point at; it must match what tier prints.
#[test]
fn committed_schema_is_not_stale() {
    let context = TestContext::empty();
    for (file, name) in [
        ("project", "tier.schema.json"),
        ("override", "tier-env.schema.json"),
    ] {
        let mut command = tier_test::tier();
        command.args(["schema", "--file", file]);
        let generated = context.run(command).expect_code(0).stdout;
        let path = tier_test::repo_root().join("schema").join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "schema/ is stale: run `tier schema --out schema` ({} differs from `tier schema --file {file}`)",
            path.display()
        );
    }
}

/// The sample app's own files satisfy the schemas tier publishes for them.
#[test]
fn sample_app_files_satisfy_the_committed_schemas() {
    let root = tier_test::repo_root();
    let schema = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(root.join("schema").join(name))
            .expect("read a committed schema");
        serde_json::from_str(&text).expect("a schema is JSON")
    };
    let project_schema =
        jsonschema::validator_for(&schema("tier.schema.json")).expect("a valid JSON Schema");
    let override_schema =
        jsonschema::validator_for(&schema("tier-env.schema.json")).expect("a valid JSON Schema");
    let sample = root.join("examples/sample-app");
    let mut files = vec![(sample.join("tier.toml"), &project_schema)];
    for entry in std::fs::read_dir(sample.join("envs")).expect("read envs/") {
        files.push((entry.expect("an entry of envs/").path(), &override_schema));
    }
    assert!(files.len() >= 3, "the sample app has override files");
    for (path, validator) in files {
        let text = std::fs::read_to_string(&path).expect("read a project file");
        let value: serde_json::Value = toml::from_str(&text).expect("the file is TOML");
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|error| error.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{} does not satisfy its schema: {errors:#?}",
            path.display()
        );
    }
}

/// The schema rejects what `tier validate` rejects, so editors warn early.
#[test]
fn committed_schema_rejects_unknown_keys_and_bad_names() {
    let text = std::fs::read_to_string(tier_test::repo_root().join("schema/tier.schema.json"))
        .expect("read the schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let bad = [
        "[project]\nname = \"a\"\ncolour = \"blue\"\n",
        "[project]\nname = \"Bad_Name\"\n",
        "[project]\nname = \"a\"\n[services.api]\nreplicas = \"3\"\n",
        "[services.api]\nreplicas = 3\n",
    ];
    for text in bad {
        let value: serde_json::Value = toml::from_str(text).expect("TOML");
        assert!(!validator.is_valid(&value), "the schema accepts:\n{text}");
    }
}

#[test]
fn render_k8s_prints_manifests_and_writes_one_file_per_object() {
    let context = TestContext::copy_of("examples/sample-app");
    let output = context
        .command(&[])
        .args(["render", "prod", "--format", "k8s"])
        .output()
        .expect("run tier");
    assert!(output.status.success());
    let yaml = String::from_utf8_lossy(&output.stdout);
    assert_eq!(yaml.matches("kind: Deployment").count(), 2, "{yaml}");
    assert!(
        yaml.contains("type: LoadBalancer"),
        "the exposed frontend: {yaml}"
    );
    assert!(
        yaml.contains("value: http://backend.sample-app-prod.svc.cluster.local:8080"),
        "{yaml}"
    );

    let out = context.path().join("manifests");
    let output = context
        .command(&[])
        .args(["render", "prod", "--format", "k8s", "--out"])
        .arg(&out)
        .output()
        .expect("run tier");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .expect("the directory")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "configmap-backend-config.yaml",
            "configmap-frontend-config.yaml",
            "deployment-backend.yaml",
            "deployment-frontend.yaml",
            "namespace-sample-app-prod.yaml",
            "service-backend.yaml",
            "service-frontend-external.yaml",
            "service-frontend.yaml",
        ]
    );
    let output = context
        .command(&[])
        .args(["render", "prod", "--out", "elsewhere"])
        .output()
        .expect("run tier");
    assert_eq!(
        output.status.code(),
        Some(2),
        "--out without --format k8s is a usage error"
    );
}

#[test]
fn the_readme_quotes_the_rollout_defaults_tier_renders() {
    let readme =
        std::fs::read_to_string(tier_test::repo_root().join("README.md")).expect("the README");
    let quoted = readme
        .split("(`rollout = ")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .expect("the README quotes the rollout defaults");
    let quoted: toml::Value = toml::from_str(&format!("rollout = {quoted}")).expect("TOML");
    let quoted = serde_json::to_value(&quoted["rollout"]).expect("JSON");
    let context = sample_app();
    let rendered = json_of(&context, &["render", "prod"]);
    assert_eq!(rendered["services"]["backend"]["rollout"], quoted);
}
