//! Property tests: no project, however broken, makes loading or validating panic, and every
//! problem found points into a file.
//!
//! Two families of projects, 10,000 cases in all:
//! - generated from a grammar of plausible `tier.toml` and `envs/<env>.toml` content: the real
//!   keys with values of the right and the wrong types, bad names, `extends`, `promote_from`
//!   and `depends_on` graphs with loops, unknown keys, duplicated tables, and JSON config files
//!   from valid to broken;
//! - the sample app and a project of regions, with their bytes mutated: cut, duplicated,
//!   truncated, and sprinkled with TOML and JSON punctuation and bytes that are not UTF-8.
//!
//! Each case is written to its own temporary directory and read with [`Project::load`] and
//! [`tier_model::validate`], exactly as `tier validate` does. Every problem must have a
//! location inside a file that the project's source map holds, and must render with miette as
//! the CLI renders it. The only problems allowed without a location are those about `--set`
//! arguments (they come from the command line, not a file) and a config file that exists but
//! cannot be read (permissions); neither can arise here, so no exception is made below.

use std::path::Path;

use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::RngSeed;
use tier_model::{LoadError, Problem, Project};

/// A project as files: a path relative to the root, and the bytes it holds.
#[derive(Clone)]
struct Files(Vec<(String, Vec<u8>)>);

/// Shows each file as text, so a failing case reads like the project it is.
impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (path, bytes) in &self.0 {
            writeln!(
                f,
                "--- {path}\n{}",
                String::from_utf8_lossy(bytes).escape_debug()
            )?;
        }
        Ok(())
    }
}

const GENERATED_CASES: u32 = 6_000;
const MUTATED_CASES: u32 = 4_000;

/// The seed of every run unless `PROPTEST_RNG_SEED` names another, so that CI sees the same
/// cases each time and a failure in it is a change in tier, not a roll of the dice. Explore
/// new cases with `PROPTEST_RNG_SEED=<n> cargo test -p tier-model --test fuzz`.
const SEED: u64 = 0x7469_6572;

fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases,
        rng_seed: match default.rng_seed {
            RngSeed::Random => RngSeed::Fixed(SEED),
            chosen => chosen,
        },
        // A failure shrinks toward a small project quickly; a bounded search keeps a failing
        // run from taking minutes.
        max_shrink_iters: 2_000,
        ..default
    }
}

proptest! {
    #![proptest_config(config(GENERATED_CASES))]
    #[test]
    fn generated_projects_load_and_validate(files in generated_project()) {
        check(&files)?;
    }
}

proptest! {
    #![proptest_config(config(MUTATED_CASES))]
    #[test]
    fn mutated_projects_load_and_validate(files in mutated_project()) {
        check(&files)?;
    }
}

/// Loads and validates a project, and checks what came out.
fn check(files: &Files) -> Result<(), TestCaseError> {
    let dir = tempfile::Builder::new()
        .prefix("tier-fuzz-")
        .tempdir()
        .map_err(|error| TestCaseError::fail(format!("create a temporary directory: {error}")))?;
    write(dir.path(), files)?;
    let mut project = match Project::load(dir.path()) {
        Ok(project) => project,
        Err(LoadError::NoProject(_)) => {
            return Err(TestCaseError::fail("tier.toml was written but not found"));
        }
        Err(LoadError::Read { path, source }) => {
            return Err(TestCaseError::fail(format!(
                "a readable project failed to load instead of reporting a located problem: {}: {source}",
                path.display()
            )));
        }
    };
    let validation = tier_model::validate(&mut project, &[]);
    for problem in &validation.problems {
        check_problem(problem, &project)?;
    }
    // The environments that resolved answer explain for every path they list, and diff. A
    // key that holds a '.' (a flag `new.ui`, a config key `a.b`) makes its dotted path
    // ambiguous, so such environments are explained without checking the answer.
    let names: Vec<String> = validation
        .environments
        .iter()
        .take(2)
        .map(|checked| checked.environment.name.to_string())
        .collect();
    let mut resolved = Vec::new();
    for name in &names {
        let Ok(environment) = project.resolve(name, &[]) else {
            return Err(TestCaseError::fail(format!(
                "`{name}` validated but does not resolve"
            )));
        };
        let dotted =
            dotted_keys(&serde_json::to_value(&environment.environment).unwrap_or_default());
        for path in environment.paths() {
            let explained = environment.explain(&path).is_some();
            prop_assert!(
                explained || dotted || !validation.problems.is_empty(),
                "explain has no answer for `{path}`, which paths() lists"
            );
        }
        environment.environment.waves();
        resolved.push(environment);
    }
    if let [left, right] = resolved.as_slice() {
        tier_model::diff::diff(left, right, &project.sources);
    }
    Ok(())
}

/// Whether any key of a JSON value is empty or holds a '.'.
fn dotted_keys(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(object) => object
            .iter()
            .any(|(key, inner)| key.is_empty() || key.contains('.') || dotted_keys(inner)),
        serde_json::Value::Array(items) => items.iter().any(dotted_keys),
        _ => false,
    }
}

fn check_problem(problem: &Problem, project: &Project) -> Result<(), TestCaseError> {
    let Some(location) = &problem.location else {
        return Err(TestCaseError::fail(format!(
            "a problem without a location: {problem:#?}"
        )));
    };
    for location in
        std::iter::once(location).chain(problem.related.iter().map(|(location, _)| location))
    {
        let file = project.sources.get(location.file);
        prop_assert!(
            location.span.start <= location.span.end && location.span.end <= file.text.len(),
            "the span {:?} is outside {} ({} bytes): {problem:#?}",
            location.span,
            file.path.display(),
            file.text.len()
        );
        project.sources.describe(location);
    }
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100);
    let mut rendered = String::new();
    prop_assert!(
        handler
            .render_report(&mut rendered, &problem.report(&project.sources))
            .is_ok(),
        "miette cannot render {problem:#?}"
    );
    tier_model::problem::related_elsewhere(problem, &project.sources);
    Ok(())
}

fn write(root: &Path, files: &Files) -> Result<(), TestCaseError> {
    for (path, bytes) in &files.0 {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| {
                TestCaseError::fail(format!("create {}: {error}", parent.display()))
            })?;
        }
        std::fs::write(&path, bytes)
            .map_err(|error| TestCaseError::fail(format!("write {}: {error}", path.display())))?;
    }
    Ok(())
}

// The grammar. Everything is produced as TOML or JSON text, so that the parser sees duplicate
// keys, redefined tables and syntax errors as a user would write them.

/// Names of environments and services: valid labels, near misses, and names that are no
/// label at all (as TOML basic-string contents, so `\u0000` is a NUL).
const NAMES: &[&str] = &[
    "dev",
    "stage",
    "prod",
    "prod-ie",
    "prod-us",
    "backend",
    "frontend",
    "api",
    "db",
    "base",
    "qa",
    "Web",
    "web_api",
    "a",
    "x-",
    "1a",
    "",
    "ünï",
    "a.b",
    "a b",
    "../x",
    "../tier",
    "envs",
    "a\\u0000b",
    "prod/ie",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];

/// Environments whose override files a case may write: names that are safe as file names.
const FILE_NAMES: &[&str] = &[
    "dev", "stage", "prod", "prod-ie", "prod-us", "base", "qa", "Web", "a",
];

/// Values of every TOML type, right for some keys and wrong for others.
const VALUES: &[&str] = &[
    "\"local\"",
    "\"kubernetes\"",
    "\"k8s\"",
    "3",
    "-1",
    "0",
    "100000",
    "9223372036854775807",
    "0x7fffffffffffffff",
    "1.5",
    "nan",
    "-inf",
    "true",
    "false",
    "\"true\"",
    "\"3\"",
    "[]",
    "[\"a\", \"b\"]",
    "[1, 2]",
    "[[1], [\"a\"]]",
    "{}",
    "{ http = \"/healthz\" }",
    "{ http = \"/h\", tcp = 80 }",
    "{ tcp = 70000 }",
    "{ interval = \"5x\" }",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "\"128Mi\"",
    "\"12 GB\"",
    "\"0\"",
    "\"500m\"",
    "\"0.5\"",
    "\"5s\"",
    "\"99999999999999999999h\"",
    "\"config/backend\"",
    "\"config/frontend\"",
    "\"config\"",
    "\".\"",
    "\"\"",
    "\"/\"",
    "\"config/missing\"",
    "\"config/backend/base.json\"",
    "\"\\u0000\"",
    "'literal'",
    "\"\"\"multi\nline\"\"\"",
    "{ env = \"X\" }",
    "{ env = \"X\", file = \"f\" }",
    "{ file = 3 }",
    "{ context = \"c\", namespace = \"n\" }",
    "{ context = \"c\", namespace = \"Bad_NS\" }",
    "{ context = \"c\" }",
    "{ a = { b = { c = 1 } } }",
];

fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// A table key: bare when it can be, quoted otherwise.
fn key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        name.to_owned()
    } else {
        quoted(name)
    }
}

fn pick(options: &'static [&'static str]) -> BoxedStrategy<String> {
    select(options).prop_map(str::to_owned).boxed()
}

/// A name: mostly one that a project of two services in a few environments would use, so
/// that references between tables often meet.
fn name() -> BoxedStrategy<&'static str> {
    prop_oneof![
        3 => select(&NAMES[..8]),
        1 => select(NAMES),
    ]
    .boxed()
}

fn any_value() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(VALUES).prop_map(str::to_owned),
        1 => name().prop_map(quoted),
        1 => any::<i64>().prop_map(|number| number.to_string()),
        1 => "[a-zA-Z0-9 ._/-]{0,12}".prop_map(|text| quoted(&text)),
    ]
    .boxed()
}

fn name_list() -> BoxedStrategy<String> {
    prop::collection::vec(name(), 0..4)
        .prop_map(|names| {
            format!(
                "[{}]",
                names
                    .iter()
                    .map(|name| quoted(name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .boxed()
}

/// A value for a key: most often of the type the key takes, sometimes anything at all.
fn value_for(key: &'static str) -> BoxedStrategy<String> {
    let good: BoxedStrategy<String> = match key {
        "runtime" => pick(&["\"local\"", "\"kubernetes\""]).boxed(),
        "extends" | "promote_from" | "namespace" | "name" => name().prop_map(quoted).boxed(),
        "abstract" | "protected" | "ordering" | "kubernetes" => {
            any::<bool>().prop_map(|flag| flag.to_string()).boxed()
        }
        "kube" => pick(&[
            "{ context = \"admin\", namespace = \"shop\" }",
            "{ context = \"admin\", namespace = \"shop-prod\" }",
            "{ context = \"admin\" }",
            "{ namespace = \"x\" }",
        ])
        .boxed(),
        "depends_on" => name_list(),
        "command" => pick(&[
            "[\"bin/app\"]",
            "[\"sh\", \"-c\", \"exit 0\"]",
            "[]",
            "\"bin/app --flag\"",
        ])
        .boxed(),
        "port" | "expose" | "tcp" => pick(&["8080", "8081", "0", "65536", "80"]).boxed(),
        "replicas" | "max_surge" | "max_unavailable" | "failure_threshold" => {
            (-2_i64..20).prop_map(|n| n.to_string()).boxed()
        }
        "memory" => pick(&[
            "\"64Mi\"",
            "\"1Gi\"",
            "\"1.5G\"",
            "\"128mi\"",
            "\"0\"",
            "\"1e3\"",
            "\"99999999Ei\"",
        ])
        .boxed(),
        "cpu" => pick(&["\"500m\"", "0.5", "2", "\"1.5m\"", "\"0m\"", "1e300"]).boxed(),
        "interval" | "timeout" | "deadline" => {
            pick(&["\"2s\"", "\"500ms\"", "\"1h\"", "\"5\"", "\"1.5s\""]).boxed()
        }
        "protocol" => pick(&["\"http\"", "\"tcp\"", "\"htpp\""]).boxed(),
        "restart" => pick(&[
            "\"always\"",
            "\"on-failure\"",
            "\"never\"",
            "\"on_failure\"",
        ])
        .boxed(),
        "on_failure" => pick(&["\"rollback\"", "\"halt\"", "\"stop\""]).boxed(),
        "config" => pick(&[
            "\"config/backend\"",
            "\"config/frontend\"",
            "\"config/missing\"",
            "\"config\"",
            "\".\"",
            "\"\"",
        ])
        .boxed(),
        "health" => pick(&[
            "{ http = \"/healthz\" }",
            "{ tcp = 8080 }",
            "{ http = \"/\", tcp = 80 }",
            "{}",
            "{ http = \"/\", interval = \"1s\", timeout = \"2m\", failure_threshold = 0 }",
        ])
        .boxed(),
        "rollout" => pick(&[
            "{ max_surge = 2, max_unavailable = 1, deadline = \"30s\" }",
            "{ max_surge = -1 }",
            "{ deadline = 5 }",
        ])
        .boxed(),
        "env" => pick(&[
            "{ LOG = \"debug\", N = 3, F = 1.5, B = true }",
            "{ \"1BAD\" = \"x\" }",
            "{ A = [1] }",
            "{ A = {} }",
        ])
        .boxed(),
        "secrets" => pick(&[
            "{ DB = { env = \"DB\" } }",
            "{ DB = { file = \"s/db\" } }",
            "{ DB = { env = \"A\", file = \"b\" } }",
            "{ DB = {} }",
            "{ DB = \"hunter2\" }",
            "{ \"bad name\" = { env = \"X\" } }",
        ])
        .boxed(),
        "memory_limit" => pick(&["\"256Mi\"", "\"1G\"", "512", "\"lots\""]).boxed(),
        "cpu_limit" => pick(&["\"1\"", "2", "\"200m\"", "\"-1\""]).boxed(),
        "security" => pick(&[
            "{ run_as_user = 1000, run_as_non_root = true, capabilities_drop = [\"ALL\"] }",
            "{ run_as_user = -1 }",
            "{ seccomp = \"strict\", capabilities_add = [\"cap_x\"] }",
            "{ read_only_root_filesystem = \"yes\" }",
        ])
        .boxed(),
        "service_account" => pick(&[
            "\"shop\"",
            "{ name = \"shop\", annotations = { \"a.example/b\" = \"c\" } }",
            "{ annotations = {} }",
            "\"Bad_Name\"",
        ])
        .boxed(),
        "liveness" | "startup" => pick(&[
            "{ grpc = 8080 }",
            "{ exec = [\"bin/check\"], initial_delay = \"1s\" }",
            "{ exec = [] }",
            "{ grpc = 9999, http = \"/\" }",
            "{ http = \"/\", headers = { \"X Bad\" = \"1\" } }",
        ])
        .boxed(),
        "volumes" => pick(&[
            "{ data = { mount = \"/data\", claim = { size = \"1Gi\" } } }",
            "{ tmp = { mount = \"/tmp\", empty_dir = {} } }",
            "{ c = { mount = \"/c\", config = \"config\" } }",
            "{ c = { mount = \"/c\", config = \"../x\" } }",
            "{ x = { mount = \"rel\", secret = \"s\", empty_dir = {} } }",
            "{ config = { mount = \"/etc/tier\" } }",
        ])
        .boxed(),
        "ports" => pick(&["{ grpc = 9000 }", "{ GRPC = 1 }", "{ metrics = 8080 }"]).boxed(),
        "port_name" => pick(&[
            "\"grpc\"",
            "\"tcp-redis\"",
            "\"--\"",
            "\"way-too-long-port-name\"",
        ])
        .boxed(),
        "service_port" => pick(&["80", "0", "5000"]).boxed(),
        "service" => any::<bool>().prop_map(|flag| flag.to_string()).boxed(),
        "host" => pick(&["\"shop.example.com\"", "\"Shop..com\"", "\"*.example.com\""]).boxed(),
        "labels" | "annotations" | "pod_annotations" => pick(&[
            "{ team = \"a\" }",
            "{ \"example.com/owner\" = \"b c\" }",
            "{ \"/x\" = \"y\" }",
        ])
        .boxed(),
        "termination_grace" => pick(&["\"5s\"", "\"soon\"", "5"]).boxed(),
        "args" => pick(&["[\"--port\", \"1\"]", "\"--port 1\"", "[1]"]).boxed(),
        "patches" => pick(&[
            "[\"patches/missing.yaml\"]",
            "[{ file = \"p.yaml\", target = \"Deployment\" }]",
            "[\"../outside.yaml\"]",
            "[1]",
        ])
        .boxed(),
        "manifests" => pick(&["[\"manifests\"]", "[\"/etc/passwd\"]", "[\"config\"]"]).boxed(),
        "unset" => pick(&[
            "[\"expose\"]",
            "[\"health.interval\"]",
            "[\"nope\"]",
            "[\"env.LOG\"]",
        ])
        .boxed(),
        "default" => any_value(),
        _ => any_value(),
    };
    prop_oneof![4 => good, 1 => any_value()].boxed()
}

/// `key = value` lines for one table: some of its known keys, each once, an occasional unknown
/// key, and now and then a key written twice.
fn entries(keys: &'static [&'static str]) -> BoxedStrategy<String> {
    let known = prop::sample::subsequence(keys, 0..=keys.len().min(6)).prop_flat_map(|chosen| {
        chosen
            .into_iter()
            .map(|key| value_for(key).prop_map(move |value| format!("{key} = {value}\n")))
            .collect::<Vec<_>>()
    });
    let unknown = prop::option::weighted(
        0.15,
        (
            pick(&["colour", "replica", "Runtime", "services", "\"\"", "a.b"]),
            any_value(),
        )
            .prop_map(|(key, value)| format!("{key} = {value}\n")),
    );
    let twice = prop::option::weighted(0.05, select(keys).prop_map(|key| format!("{key} = 1\n")));
    (known, unknown, twice)
        .prop_map(|(known, unknown, twice)| {
            let mut lines = known.concat();
            lines.extend(unknown);
            lines.extend(twice);
            lines
        })
        .boxed()
}

const PROJECT_KEYS: &[&str] = &["name", "ordering", "on_failure"];
const ENVIRONMENT_KEYS: &[&str] = &[
    "runtime",
    "extends",
    "abstract",
    "promote_from",
    "protected",
    "region",
    "kube",
];
const SERVICE_KEYS: &[&str] = &[
    "command",
    "image",
    "version",
    "source",
    "test",
    "port",
    "expose",
    "replicas",
    "memory",
    "cpu",
    "protocol",
    "restart",
    "depends_on",
    "config",
    "health",
    "rollout",
    "env",
    "secrets",
    "memory_limit",
    "cpu_limit",
    "security",
    "service_account",
    "liveness",
    "startup",
    "volumes",
    "ports",
    "port_name",
    "service_port",
    "service",
    "host",
    "labels",
    "annotations",
    "pod_annotations",
    "termination_grace",
    "args",
    "patches",
    "manifests",
    "unset",
];
const HEALTH_KEYS: &[&str] = &["http", "tcp", "interval", "timeout", "failure_threshold"];
const ROLLOUT_KEYS: &[&str] = &["max_surge", "max_unavailable", "deadline"];
const FLAG_KEYS: &[&str] = &["default", "description"];

/// One table of a project file: its header and its entries.
fn section(override_file: bool) -> BoxedStrategy<String> {
    let project = entries(if override_file {
        &PROJECT_KEYS[1..]
    } else {
        PROJECT_KEYS
    })
    .prop_map(|body| format!("[project]\n{body}"));
    let environment = (name(), entries(ENVIRONMENT_KEYS))
        .prop_map(|(env, body)| format!("[environments.{}]\n{body}", key(env)));
    let service = (name(), entries(SERVICE_KEYS))
        .prop_map(|(service, body)| format!("[services.{}]\n{body}", key(service)));
    let health = (name(), entries(HEALTH_KEYS))
        .prop_map(|(service, body)| format!("[services.{}.health]\n{body}", key(service)));
    let rollout = (name(), entries(ROLLOUT_KEYS))
        .prop_map(|(service, body)| format!("[services.{}.rollout]\n{body}", key(service)));
    let flag = ("[a-zA-Z0-9._-]{0,8}", entries(FLAG_KEYS))
        .prop_map(|(flag, body)| format!("[flags.{}]\n{body}", quoted(&flag)));
    let library = (name(), any_value())
        .prop_map(|(library, path)| format!("[libraries.{}]\npath = {path}\n", key(library)));
    let store = any_value().prop_map(|value| format!("[store]\nkubernetes = {value}\n"));
    let odd = pick(&[
        "[[services]]\nname = \"x\"\n",
        "[[environments.dev]]\nruntime = \"local\"\n",
        "services = 3\n",
        "environments = []\n",
        "[services]\nbackend = \"x\"\n",
        "[environments]\ndev = 1\n",
        "[unknown]\nkey = 1\n",
        "[services.backend.config]\ntext = \"inline\"\n",
        "[services.backend.env]\nPORT = 1\n",
        "[project.name]\nfirst = \"a\"\n",
        "project = { name = \"inline\" }\n",
        "[services.backend]\nhealth.http = \"/\"\nhealth.tcp = 1\n",
        "= 3\n",
        "[services.\n",
        "\u{feff}[project]\n",
    ]);
    prop_oneof![
        2 => project,
        if override_file { 1 } else { 4 } => environment,
        5 => service,
        1 => health,
        1 => rollout,
        1 => flag,
        1 => library,
        1 => store,
        1 => odd,
    ]
    .boxed()
}

/// Tables of a file. A table written twice is an error that hides what it holds, so most files
/// keep only the first table of each header.
fn toml_file(override_file: bool) -> BoxedStrategy<String> {
    (
        prop::collection::vec(section(override_file), 0..8),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(mut sections, keep_repeats)| {
            if !keep_repeats {
                let mut seen = std::collections::HashSet::new();
                sections.retain(|section| {
                    seen.insert(section.lines().next().unwrap_or_default().to_owned())
                });
            }
            sections.join("\n")
        })
        .boxed()
}

/// A valid-looking project head, so that most cases get past the first checks and into
/// resolution, followed by generated tables.
fn project_file() -> BoxedStrategy<String> {
    let head = prop_oneof![
        6 => Just("[project]\nname = \"shop\"\n\n".to_owned()),
        1 => Just(String::new()),
        1 => any_value().prop_map(|name| format!("[project]\nname = {name}\n\n")),
    ];
    (head, toml_file(false))
        .prop_map(|(head, body)| head + &body)
        .boxed()
}

/// JSON text: values of every kind nested a few levels, or broken JSON.
fn json_value() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        any::<i64>().prop_map(|number| number.to_string()),
        pick(&[
            "1.5",
            "1e400",
            "-0",
            "123456789012345678901234567890",
            "\"\"",
            "\"text\"",
            "\"\\u0000\"",
            "\"\\ud800\""
        ]),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(", "))),
            prop::collection::vec(
                (
                    select(&["text", "log", "hosts", "limits", "", "a.b", "text"][..]),
                    inner
                ),
                0..4
            )
            .prop_map(|entries| {
                let body: Vec<String> = entries
                    .iter()
                    .map(|(key, value)| format!("\"{key}\": {value}"))
                    .collect();
                format!("{{{}}}", body.join(", "))
            }),
        ]
    })
    .boxed()
}

fn json_file() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        6 => json_value().prop_map(String::into_bytes),
        1 => select(&[
            "", " ", "{", "{\"a\": 1,}", "// comment\n{}", "{'a': 1}", "{a: 1}", "{\"a\": 1} {}", "{\"a\": 01}", "\u{feff}{}",
            "{\"a\": NaN}", "{\"a\": 0x10}", "{\"a\": .5}", "{\"a\": +1}", "{\"a\" 1}", "[1, 2", "\"\\q\"",
        ][..])
        .prop_map(|text| text.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..16),
    ]
    .boxed()
}

/// A generated project: `tier.toml`, override files for some environments, app config files.
fn generated_project() -> impl Strategy<Value = Files> {
    let overrides = prop::collection::vec((select(FILE_NAMES), toml_file(true)), 0..4);
    let configs = prop::collection::vec(
        (
            select(&["config/backend", "config/frontend", "config"][..]),
            select(&["base", "dev", "stage", "prod", "prod-ie", "qa"][..]),
            json_file(),
        ),
        0..5,
    );
    (project_file(), overrides, configs).prop_map(|(project, overrides, configs)| {
        let mut files = vec![("tier.toml".to_owned(), project.into_bytes())];
        for (env, text) in overrides {
            files.push((format!("envs/{env}.toml"), text.into_bytes()));
        }
        for (dir, env, bytes) in configs {
            files.push((format!("{dir}/{env}.json"), bytes));
        }
        Files(files)
    })
}

// Mutations of valid projects.

const SAMPLE: &[(&str, &str)] = &[
    (
        "tier.toml",
        include_str!("../../../examples/sample-app/tier.toml"),
    ),
    (
        "envs/prod.toml",
        include_str!("../../../examples/sample-app/envs/prod.toml"),
    ),
    (
        "envs/stage.toml",
        include_str!("../../../examples/sample-app/envs/stage.toml"),
    ),
    (
        "config/backend/base.json",
        include_str!("../../../examples/sample-app/config/backend/base.json"),
    ),
    (
        "config/backend/dev.json",
        include_str!("../../../examples/sample-app/config/backend/dev.json"),
    ),
    (
        "config/backend/stage.json",
        include_str!("../../../examples/sample-app/config/backend/stage.json"),
    ),
    (
        "config/backend/prod.json",
        include_str!("../../../examples/sample-app/config/backend/prod.json"),
    ),
    (
        "config/frontend/base.json",
        include_str!("../../../examples/sample-app/config/frontend/base.json"),
    ),
];

const REGIONS: &[(&str, &str)] = &[
    (
        "tier.toml",
        "[project]\nname = \"regions\"\n\n[environments.dev]\nruntime = \"local\"\n\n[environments.prod]\nabstract = true\nruntime = \"kubernetes\"\nprotected = true\nkube = { context = \"admin\", namespace = \"regions-prod\" }\n\n[environments.prod-ie]\nextends = \"prod\"\npromote_from = \"dev\"\nregion = \"eu-west-1\"\nkube = { context = \"admin\", namespace = \"regions-ie\" }\n\n[environments.prod-us]\nextends = \"prod\"\nregion = \"us-east-2\"\nkube = { context = \"admin\", namespace = \"regions-us\" }\n\n[services.api]\ncommand = [\"api\"]\nimage = \"api:1\"\nreplicas = 1\nmemory = \"64Mi\"\nconfig = \"config/api\"\nsecrets = { TOKEN = { env = \"TOKEN\" } }\nenv = { LOG = \"info\" }\n\n[services.web]\ncommand = [\"web\"]\nimage = \"web:1\"\ndepends_on = [\"api\"]\nexpose = 8080\nhealth = { http = \"/\", interval = \"5s\" }\nrollout = { max_surge = 2, deadline = \"2m\" }\n\n[flags.new-ui]\ndefault = false\n",
    ),
    (
        "envs/prod.toml",
        "[services.api]\nreplicas = 3\nmemory = \"256Mi\"\n\n[flags.new-ui]\ndefault = true\n",
    ),
    (
        "envs/prod-ie.toml",
        "[services.api]\nreplicas = 5\n\n[project]\non_failure = \"halt\"\n",
    ),
    (
        "config/api/base.json",
        "{\n  \"log\": \"info\",\n  \"limits\": { \"rps\": 10, \"burst\": 20 },\n  \"hosts\": [\"a\", \"b\"],\n  \"debug\": true\n}\n",
    ),
    (
        "config/api/prod.json",
        "{ \"log\": \"warn\", \"hosts\": [\"p\"], \"debug\": null, \"limits\": { \"rps\": 100 } }\n",
    ),
    ("config/api/prod-ie.json", "{ \"region\": \"ie\" }\n"),
];

/// Bytes that matter to TOML and JSON, and some that are not UTF-8.
const INSERTS: &[&[u8]] = &[
    b"[",
    b"]",
    b"[[",
    b"=",
    b"\"",
    b"'",
    b"\n",
    b"{",
    b"}",
    b",",
    b".",
    b"#",
    b"\\",
    b"-",
    b"0",
    b"9",
    b"e",
    b" ",
    b"\r",
    b"\t",
    b"\0",
    b"null",
    b"true",
    "é".as_bytes(),
    "\u{feff}".as_bytes(),
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\"\"\"",
    b"'''",
    b"[services.backend]\n",
    b"[environments.dev]\n",
    b"extends = \"prod\"\n",
    b"depends_on = [\"frontend\"]\n",
    b"promote_from = \"prod\"\n",
];

#[derive(Clone, Debug)]
enum Mutation {
    /// Remove the bytes between two points.
    Delete(Index, Index),
    /// Copy the bytes between two points to a third.
    Duplicate(Index, Index, Index),
    /// Insert a token at a point.
    Insert(Index, &'static [u8]),
    /// Replace one byte.
    Replace(Index, u8),
    /// Keep only the bytes before a point.
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Delete(a, b)),
        2 => (any::<Index>(), any::<Index>(), any::<Index>()).prop_map(|(a, b, c)| Mutation::Duplicate(a, b, c)),
        5 => (any::<Index>(), select(INSERTS)).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Replace(at, byte)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    // Points range over 0..=len, so an empty file can still grow.
    let point = |index: &Index, len: usize| index.index(len + 1);
    let len = bytes.len();
    match mutation {
        Mutation::Delete(a, b) => {
            let (start, end) = ordered(point(a, len), point(b, len));
            // Short cuts are the interesting ones: a quote, a bracket, a key's tail.
            bytes.drain(start..end.min(start + 16));
        }
        Mutation::Duplicate(a, b, at) => {
            let (start, end) = ordered(point(a, len), point(b, len));
            let copy: Vec<u8> = bytes[start..end.min(start + 64)].to_vec();
            let at = point(at, len);
            bytes.splice(at..at, copy);
        }
        Mutation::Insert(at, token) => {
            let at = point(at, len);
            bytes.splice(at..at, token.iter().copied());
        }
        Mutation::Replace(at, byte) => {
            if len > 0 {
                bytes[at.index(len)] = *byte;
            }
        }
        Mutation::Truncate(at) => bytes.truncate(point(at, len)),
    }
}

fn ordered(a: usize, b: usize) -> (usize, usize) {
    if a <= b { (a, b) } else { (b, a) }
}

/// The sample app or the regions project, with a few mutations in one or two of its files.
fn mutated_project() -> impl Strategy<Value = Files> {
    let base = select(&[SAMPLE, REGIONS][..]);
    let edits = prop::collection::vec(
        (any::<Index>(), prop::collection::vec(mutation(), 1..5)),
        1..3,
    );
    (base, edits).prop_map(|(base, edits)| {
        let mut files: Vec<(String, Vec<u8>)> = base
            .iter()
            .map(|(path, text)| ((*path).to_owned(), text.as_bytes().to_vec()))
            .collect();
        for (file, mutations) in edits {
            // tier.toml is where most of a project is, so it is mutated half the time.
            let target = if file.index(2) == 0 {
                0
            } else {
                file.index(files.len())
            };
            for mutation in &mutations {
                apply(&mut files[target].1, mutation);
            }
        }
        Files(files)
    })
}

// Regressions: cases the properties above found, kept as plain tests named after the bug.

/// Loads and validates a project of text files, returning each problem as
/// `file:line:column message`; fails the test when a problem has no location.
fn located_problems(files: &[(&str, &[u8])]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let files = Files(
        files
            .iter()
            .map(|(path, bytes)| ((*path).to_owned(), bytes.to_vec()))
            .collect(),
    );
    write(dir.path(), &files).expect("write the project");
    let mut project = Project::load(dir.path()).expect("the project loads");
    let validation = tier_model::validate(&mut project, &[]);
    validation
        .problems
        .iter()
        .map(|problem| {
            let place = problem
                .place(&project.sources)
                .expect("every problem has a location");
            format!("{place} {}", problem.message)
        })
        .collect()
}

#[test]
fn environment_name_with_a_nul_byte_is_a_located_problem_not_a_load_error() {
    let problems = located_problems(&[(
        "tier.toml",
        b"[project]\nname = \"shop\"\n\n[environments.\"a\\u0000b\"]\nruntime = \"local\"\n",
    )]);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("tier.toml:4:15 `environments.a\0b`"),
        "{problems:#?}"
    );
}

#[test]
fn environment_named_with_dot_dot_reads_no_file_outside_envs() {
    // `envs/../tier.toml` is tier.toml itself, and `config/api/../secret.json` is outside the
    // config directory: neither may be read as a layer of the environment.
    let problems = located_problems(&[
        (
            "tier.toml",
            b"[project]\nname = \"shop\"\n\n[environments.\"../tier\"]\n\n[services.api]\ncommand = [\"api\"]\nconfig = \"config/api\"\n",
        ),
        ("config/api/base.json", b"{}"),
        ("config/tier.json", b"not json"),
    ]);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("is not a valid name"), "{problems:#?}");
}

#[test]
fn project_file_that_is_not_utf8_is_a_located_problem_not_a_load_error() {
    let problems = located_problems(&[("tier.toml", b"[project]\nname = \"shop\" # caf\xe9\n")]);
    assert_eq!(problems, ["tier.toml:2:20 tier.toml is not UTF-8 text"]);
}

#[test]
fn override_file_that_is_not_utf8_is_a_located_problem_not_a_load_error() {
    let problems = located_problems(&[
        (
            "tier.toml",
            b"[project]\nname = \"shop\"\n\n[environments.dev]\n",
        ),
        ("envs/dev.toml", b"[project]\nordering = \"yes\" # \xff\n"),
    ]);
    // The rest of the file is still checked.
    assert_eq!(
        problems,
        [
            "envs/dev.toml:2:12 `project.ordering` must be true or false, found a string",
            "envs/dev.toml:2:20 envs/dev.toml is not UTF-8 text",
        ]
    );
}

#[test]
fn config_file_that_is_not_utf8_is_a_located_problem() {
    let problems = located_problems(&[
        (
            "tier.toml",
            b"[project]\nname = \"shop\"\n\n[environments.dev]\n\n[services.api]\ncommand = [\"api\"]\nconfig = \"config/api\"\n",
        ),
        ("config/api/base.json", b"{\"text\": \"\xc3\"}"),
    ]);
    assert_eq!(
        problems,
        ["config/api/base.json:1:11 config/api/base.json is not UTF-8 text"]
    );
}
