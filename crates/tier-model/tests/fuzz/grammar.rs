//! The grammar of generated projects: plausible `tier.toml`, override and JSON config files
//! with the real keys, right and wrong values, bad names and reference graphs with loops.

use proptest::prelude::*;
use proptest::sample::select;

use crate::Files;

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
pub(crate) fn generated_project() -> impl Strategy<Value = Files> {
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
