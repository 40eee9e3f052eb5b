//! Snapshots of what `tier` says about a broken project: one bad input per test, each named
//! after the mistake it guards. Every problem must name its file, line and column and say
//! what to do, and every problem in a run must be reported at once.

use tier_test::{TestProject, redact};

/// `tier.toml` with a project and one local environment, `dev`, followed by `rest`.
fn with_dev(rest: &str) -> String {
    format!("[project]\nname = \"shop\"\n\n[environments.dev]\nruntime = \"local\"\n\n{rest}")
}

/// A service that is valid everywhere: `[services.web]` with a command and an image.
const WEB: &str = "[services.web]\ncommand = [\"bin/web\"]\nimage = \"shop/web:1.0.0\"\n";

/// Runs `tier` in the project, checks the exit code and that nothing went to stdout, and
/// returns stderr with the project's path redacted.
fn run(project: &TestProject, args: &[&str], code: i32) -> String {
    let output = project.tier().args(args).output().expect("run tier");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "tier {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.is_empty(),
        "a failed `tier {args:?}` printed to stdout:\n{stdout}"
    );
    assert!(!stderr.contains("panicked"), "tier panicked:\n{stderr}");
    redact(&stderr, project)
}

/// `tier validate` on a project made of `files`; it must fail with exit code 1.
fn validate(files: &[(&str, &str)]) -> String {
    let project = TestProject::with_files(files);
    run(&project, &["validate"], 1)
}

/// The problems of a report, one string per `×` block.
fn blocks(stderr: &str) -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    for line in stderr.lines() {
        if line.trim_start().starts_with('×') {
            blocks.push(String::new());
        } else if line.starts_with("error:") {
            break;
        }
        if let Some(block) = blocks.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    blocks
}

/// The `path:line:column` a problem's snippet is headed with, if it has one.
fn snippet_place(block: &str) -> Option<&str> {
    let start = block.find("╭─[")? + "╭─[".len();
    let end = start + block[start..].find(']')?;
    Some(&block[start..end])
}

/// Whether `place` is `path:line:column` with a non-empty path and numbers from 1.
fn is_file_line_column(place: &str) -> bool {
    let mut parts = place.rsplitn(3, ':');
    let numbers = [parts.next(), parts.next()];
    let path = parts.next();
    numbers
        .iter()
        .all(|part| part.is_some_and(|part| part.parse::<usize>().is_ok_and(|number| number >= 1)))
        && path.is_some_and(|path| !path.is_empty())
}

/// Checks that stderr reports exactly `count` problems, that the summary line says so, and
/// that each problem quotes its file at a line and column.
fn assert_located(stderr: &str, count: usize) {
    let blocks = blocks(stderr);
    assert_eq!(blocks.len(), count, "expected {count} problems:\n{stderr}");
    let summary = format!(
        "error: {count} problem{} found",
        if count == 1 { "" } else { "s" }
    );
    assert!(stderr.contains(&summary), "no `{summary}` in:\n{stderr}");
    for block in &blocks {
        let place = snippet_place(block);
        assert!(
            place.is_some_and(is_file_line_column),
            "a problem without a file:line:column:\n{block}\nin:\n{stderr}"
        );
    }
    assert_eq!(
        stderr.matches("╭─[").count(),
        count,
        "one snippet per problem:\n{stderr}"
    );
}

/// The report with miette's wrapped message lines joined again.
fn unwrapped(stderr: &str) -> String {
    stderr.replace("\n  │ ", " ")
}

/// Checks that every problem has a `help:` line, so each says what to do.
fn assert_helpful(stderr: &str) {
    for block in blocks(stderr) {
        assert!(block.contains("help:"), "a problem without help:\n{block}");
    }
}

// Keys and types.

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

// Names.

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

// Dependencies between services.

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

// Ports.

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

// App config.

#[test]
fn missing_config_directory() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}config = \"config/web\"\n")),
    )]);
    assert_located(&stderr, 1);
    assert!(
        stderr.contains("config directory `config/web` does not exist"),
        "{stderr}"
    );
    insta::assert_snapshot!("missing_config_directory", stderr);
}

#[test]
fn config_directory_outside_the_project() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}config = \"../secrets\"\n")),
    )]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("is outside the project"), "{stderr}");
    insta::assert_snapshot!("config_directory_outside_the_project", stderr);
}

#[test]
fn environment_named_base_is_reserved() {
    let stderr = validate(&[(
        "tier.toml",
        &format!("[project]\nname = \"shop\"\n\n[environments.base]\nruntime = \"local\"\n\n{WEB}"),
    )]);
    assert_located(&stderr, 1);
    assert!(
        stderr.contains("`base` cannot name an environment"),
        "{stderr}"
    );
    insta::assert_snapshot!("environment_named_base_is_reserved", stderr);
}

#[test]
fn invalid_json_in_base_config() {
    let stderr = validate(&[
        (
            "tier.toml",
            &with_dev(&format!("{WEB}config = \"config/web\"\n")),
        ),
        (
            "config/web/base.json",
            "{\n  \"title\": \"Shop\",\n  \"items\": 10,\n}\n",
        ),
    ]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("config/web/base.json:3:"), "{stderr}");
    insta::assert_snapshot!("invalid_json_in_base_config", stderr);
}

#[test]
fn invalid_json_in_an_environment_config() {
    let stderr = validate(&[
        (
            "tier.toml",
            &with_dev(&format!("{WEB}config = \"config/web\"\n")),
        ),
        ("config/web/base.json", "{ \"title\": \"Shop\" }\n"),
        (
            "config/web/dev.json",
            "{\n  // dev only\n  \"title\": \"Shop (dev)\"\n}\n",
        ),
    ]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("config/web/dev.json:2:3"), "{stderr}");
    insta::assert_snapshot!("invalid_json_in_an_environment_config", stderr);
}

#[test]
fn config_that_is_an_array() {
    let stderr = validate(&[
        (
            "tier.toml",
            &with_dev(&format!("{WEB}config = \"config/web\"\n")),
        ),
        ("config/web/base.json", "[\"title\", \"Shop\"]\n"),
    ]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("must hold a JSON object"), "{stderr}");
    insta::assert_snapshot!("config_that_is_an_array", stderr);
}

#[test]
fn empty_config_file() {
    let stderr = validate(&[
        (
            "tier.toml",
            &with_dev(&format!("{WEB}config = \"config/web\"\n")),
        ),
        ("config/web/base.json", ""),
    ]);
    assert_located(&stderr, 1);
    assert_helpful(&stderr);
    insta::assert_snapshot!("empty_config_file", stderr);
}

#[test]
fn duplicate_key_in_config() {
    let stderr = validate(&[
        (
            "tier.toml",
            &with_dev(&format!("{WEB}config = \"config/web\"\n")),
        ),
        (
            "config/web/base.json",
            "{\n  \"title\": \"Shop\",\n  \"title\": \"Store\"\n}\n",
        ),
    ]);
    assert_located(&stderr, 1);
    assert!(stderr.contains("config/web/base.json:3:3"), "{stderr}");
    insta::assert_snapshot!("duplicate_key_in_config", stderr);
}

// Syntax and files.

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

// Health checks and secrets.

#[test]
fn health_with_both_http_and_tcp() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!(
            "{WEB}health = {{ http = \"/healthz\", tcp = 8080 }}\n"
        )),
    )]);
    assert_located(&stderr, 1);
    assert_helpful(&stderr);
    insta::assert_snapshot!("health_with_both_http_and_tcp", stderr);
}

#[test]
fn health_with_neither_http_nor_tcp() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}health = {{ interval = \"5s\" }}\n")),
    )]);
    assert_located(&stderr, 1);
    assert_helpful(&stderr);
    insta::assert_snapshot!("health_with_neither_http_nor_tcp", stderr);
}

#[test]
fn secret_with_both_env_and_file() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!(
            "{WEB}secrets = {{ DB_PASSWORD = {{ env = \"DB_PASSWORD\", file = \"secrets/db\" }} }}\n"
        )),
    )]);
    assert_located(&stderr, 1);
    assert_helpful(&stderr);
    insta::assert_snapshot!("secret_with_both_env_and_file", stderr);
}

#[test]
fn secret_given_by_value() {
    let stderr = validate(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}secrets = {{ DB_PASSWORD = \"hunter2\" }}\n")),
    )]);
    assert_located(&stderr, 1);
    insta::assert_snapshot!("secret_given_by_value", stderr);
}

// Many at once.

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

// Other commands, and `--set`.

#[test]
fn render_reports_the_problems_of_its_environment() {
    let project = TestProject::with_files(&[(
        "tier.toml",
        &with_dev(&format!("{WEB}replicas = \"two\"\n")),
    )]);
    let stderr = run(&project, &["render", "dev"], 1);
    assert_located(&stderr, 1);
    insta::assert_snapshot!("render_reports_the_problems_of_its_environment", stderr);
}

#[test]
fn render_an_unknown_environment_is_a_usage_error() {
    let project = TestProject::with_files(&[("tier.toml", &with_dev(WEB))]);
    let stderr = run(&project, &["render", "deb"], 2);
    assert!(stderr.contains("did you mean `dev`?"), "{stderr}");
    insta::assert_snapshot!("render_an_unknown_environment_is_a_usage_error", stderr);
}

#[test]
fn explain_reports_the_problems_of_its_environment() {
    let project = TestProject::with_files(&[
        ("tier.toml", &with_dev(WEB)),
        ("envs/dev.toml", "[services.web]\nmemory = \"512MB\"\n"),
    ]);
    let stderr = run(&project, &["explain", "dev", "services.web.memory"], 1);
    assert_located(&stderr, 1);
    insta::assert_snapshot!("explain_reports_the_problems_of_its_environment", stderr);
}

#[test]
fn set_with_a_value_of_the_wrong_type() {
    let project = TestProject::with_files(&[("tier.toml", &with_dev(WEB))]);
    let stderr = run(
        &project,
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
    let project = TestProject::with_files(&[("tier.toml", &with_dev(WEB))]);
    let stderr = run(
        &project,
        &["validate", "--set", "services.web.replcas=3"],
        1,
    );
    assert_eq!(blocks(&stderr).len(), 1, "{stderr}");
    assert!(stderr.contains("did you mean `replicas`?"), "{stderr}");
    insta::assert_snapshot!("set_with_an_unknown_key_suggests_the_nearest", stderr);
}

#[test]
fn set_without_an_equals_sign_is_a_usage_error() {
    let project = TestProject::with_files(&[("tier.toml", &with_dev(WEB))]);
    let stderr = run(&project, &["validate", "--set", "services.web.replicas"], 2);
    insta::assert_snapshot!("set_without_an_equals_sign_is_a_usage_error", stderr);
}
