//! The shape of `tier.toml` and of the override files, as data. One table drives three things:
//! the key and type checks of [`check`], the JSON Schema of `tier schema`, and the list of keys
//! offered when a key is misspelt.

use serde_json::json;

use crate::names;
use crate::problem::Problem;
use crate::quantity::{self, Duration, Quantity};
use crate::tree::{Node, Value};

pub use crate::field::{Field, FieldDefault, field_at};
pub(crate) use crate::field::{field, required};
pub use crate::fields::*;

pub enum Ty {
    String,
    Bool,
    Integer {
        min: i64,
        max: i64,
    },
    /// A TCP port, 1 to 65535.
    Port,
    Memory,
    Cpu,
    Duration,
    Choice(&'static [&'static str]),
    /// A reference to a service or environment: a DNS-1035 label.
    Name,
    /// A string, number or boolean.
    Scalar,
    /// A command: an array of strings, the first the program.
    Command,
    /// An etcd cluster's address: `etcd://HOST:PORT[,HOST:PORT][/PREFIX]`.
    EtcdAddress,
    /// A Kubernetes port name (an IANA service name).
    PortName,
    List(&'static Ty),
    Table(&'static [Field]),
    /// Either a plain value (`service_account = "shop"`) or a table with more settings
    /// (`service_account = { name = "shop", annotations = { ... } }`).
    StringOrTable {
        string: &'static Ty,
        table: &'static [Field],
    },
    Map {
        key: Key,
        value: &'static Ty,
    },
}

#[derive(Clone, Copy)]
pub enum Key {
    /// Services and environments: DNS-1035 labels, so they map to Kubernetes unchanged.
    Dns1035,
    /// Feature flags: letters, digits, `-`, `_` and `.`.
    Flag,
    /// Environment variable names.
    EnvVar,
    /// Kubernetes label and annotation keys: `team`, `example.com/owner`.
    Label,
    /// Kubernetes port names.
    PortName,
    /// HTTP header names.
    Header,
}

/// What an etcd address looks like, for the JSON Schema; [`check_etcd_address`] is the
/// same rule with a reason.
pub const ETCD_ADDRESS_PATTERN: &str = r"^etcd://([^\s,/?#@:]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}(,([^\s,/?#@:]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5})*(/[^\s?#@]*)?$";

const ETCD_ADDRESS_HELP: &str = "write etcd://HOST:PORT, several endpoints separated by commas, and an optional key prefix: etcd = \"etcd://etcd-0:2379,etcd-1:2379/tier/prod\"";

/// Whether `text` is `etcd://HOST:PORT[,HOST:PORT][/PREFIX]`, as `tier store serve --backend`
/// reads it; the reason when it is not.
pub fn check_etcd_address(text: &str) -> Result<(), &'static str> {
    let rest = text
        .strip_prefix("etcd://")
        .ok_or("it must start with etcd://")?;
    if rest.contains(['?', '#', '@']) || rest.chars().any(char::is_whitespace) {
        return Err("it takes no user, query, fragment or spaces");
    }
    let (hosts, _prefix) = rest.split_once('/').unwrap_or((rest, ""));
    for endpoint in hosts.split(',') {
        let (host, port) = endpoint
            .rsplit_once(':')
            .ok_or("every endpoint needs a port: HOST:PORT")?;
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if host.is_empty() || (host.contains(':') && !bracketed) {
            return Err("an endpoint's host is empty or an IPv6 address without brackets");
        }
        match port.parse::<u16>() {
            Ok(port) if port > 0 => {}
            _ => return Err("a port must be a number from 1 to 65535"),
        }
    }
    Ok(())
}

/// Checks keys and types of a whole file. Every problem is reported; nothing stops at the first.
pub fn check_file(root: &Node, fields: &'static [Field], problems: &mut Vec<Problem>) {
    check_table(root, fields, "", problems);
}

/// Checks one value against a type, reporting each problem with its location.
pub fn check(node: &Node, ty: &Ty, path: &str, problems: &mut Vec<Problem>) {
    let at = node.origin.location();
    let mismatch = |expected: &str| {
        Problem::new(format!(
            "`{path}` must be {expected}, found {}",
            node.value.kind()
        ))
        .at(at)
        .label(format!("expected {expected}"))
        .help(mismatch_help(node, ty, path))
    };
    match ty {
        Ty::String => {
            if node.as_str().is_none() {
                problems.push(mismatch("a string"));
            }
        }
        Ty::Bool => {
            if node.as_bool().is_none() {
                problems.push(mismatch("true or false"));
            }
        }
        Ty::Integer { min, max } => match node.as_integer() {
            None => problems.push(mismatch("an integer")),
            Some(number) if number < *min || number > *max => problems.push(
                Problem::new(format!(
                    "`{path}` must be between {min} and {max}, found {number}"
                ))
                .at(at)
                .label(if number < *min {
                    "too small"
                } else {
                    "too large"
                })
                .help(format!("use a whole number from {min} to {max}")),
            ),
            Some(_) => {}
        },
        Ty::Port => match node.as_integer() {
            None => problems.push(mismatch("a port number")),
            Some(port) if !(1..=65535).contains(&port) => problems.push(
                Problem::new(format!(
                    "`{path}` must be a port from 1 to 65535, found {port}"
                ))
                .at(at)
                .label("not a port")
                .help("use a whole number from 1 to 65535"),
            ),
            Some(_) => {}
        },
        Ty::Memory | Ty::Cpu => {
            let memory = matches!(ty, Ty::Memory);
            let parsed = match &node.value {
                Value::String(text) if memory => Quantity::parse_memory(text),
                Value::String(text) => Quantity::parse_cpu(text),
                Value::Integer(number) if !memory => Quantity::parse_cpu(&number.to_string()),
                Value::Float(number) if !memory => Quantity::parse_cpu(&number.to_string()),
                _ => {
                    problems.push(mismatch(if memory {
                        "a memory quantity such as \"128Mi\""
                    } else {
                        "a CPU quantity such as \"500m\""
                    }));
                    return;
                }
            };
            if let Err(error) = parsed {
                let suggestion = node.as_str().and_then(|text| {
                    if memory {
                        quantity::suggest_memory(text)
                    } else {
                        quantity::suggest_cpu(text)
                    }
                });
                problems.push(
                    Problem::new(format!("`{path}`: {error}"))
                        .at(at)
                        .label(suggestion.map_or_else(
                            || "not a quantity".to_owned(),
                            |near| format!("did you mean \"{near}\"?"),
                        ))
                        .help(if memory {
                            "write a number with a binary suffix, e.g. \"128Mi\" or \"1Gi\" (Ki, Mi, Gi, Ti; or k, M, G, T)"
                        } else {
                            "write cores as a number (\"0.5\", \"2\") or millicores (\"500m\")"
                        }),
                );
            }
        }
        Ty::Duration => match node.as_str() {
            None => problems.push(mismatch("a duration such as \"5s\"")),
            Some(text) => {
                if let Err(error) = Duration::parse(text) {
                    problems.push(
                        Problem::new(format!("`{path}`: {error}"))
                            .at(at)
                            .label(quantity::suggest_duration(text).map_or_else(
                                || "not a duration".to_owned(),
                                |near| format!("did you mean \"{near}\"?"),
                            ))
                            .help("write a number with a unit: \"500ms\", \"5s\", \"2m\", \"1h\""),
                    );
                }
            }
        },
        Ty::Choice(choices) => match node.as_str() {
            None => problems.push(mismatch("a string")),
            Some(text) if !choices.contains(&text) => {
                let mut problem = Problem::new(format!(
                    "`{path}` must be one of {}, found \"{text}\"",
                    quoted_list(choices)
                ))
                .at(at);
                problem = match did_you_mean(text, choices.iter().copied()) {
                    Some(near) => problem
                        .label(format!("did you mean \"{near}\"?"))
                        .help(format!("write {} = \"{near}\"", last_key(path))),
                    None => problem
                        .label("not allowed here")
                        .help(format!("use one of {}", quoted_list(choices))),
                };
                problems.push(problem);
            }
            Some(_) => {}
        },
        Ty::Name => match node.as_str() {
            None => problems.push(mismatch("a name")),
            Some(text) => {
                if let Err(why) = names::check_dns1035(text) {
                    problems.push(
                        Problem::new(format!("`{path}`: \"{text}\" is not a valid name: {why}"))
                            .at(at)
                            .label("not a DNS-1035 label")
                            .help(names::DNS1035_HELP),
                    );
                }
            }
        },
        Ty::Scalar => {
            if !matches!(
                node.value,
                Value::String(_) | Value::Integer(_) | Value::Float(_) | Value::Bool(_)
            ) {
                problems.push(mismatch("a string, number or boolean"));
            }
        }
        Ty::Command => match node.as_array() {
            None => {
                let mut problem = mismatch("an array of strings");
                if let Some(text) = node.as_str() {
                    let words: Vec<String> = text
                        .split_whitespace()
                        .map(|word| format!("\"{word}\""))
                        .collect();
                    problem = problem.help(format!(
                        "write the program and its arguments as a list: {} = [{}]",
                        last_key(path),
                        words.join(", ")
                    ));
                }
                problems.push(problem);
            }
            Some([]) => problems.push(
                Problem::new(format!("`{path}` is empty"))
                    .at(at)
                    .label("no program")
                    .help("name the program to run first, then its arguments"),
            ),
            Some(items) => {
                for (index, item) in items.iter().enumerate() {
                    check(item, &Ty::String, &format!("{path}[{index}]"), problems);
                }
            }
        },
        Ty::EtcdAddress => match node.as_str() {
            None => problems.push(mismatch("an etcd address such as \"etcd://etcd:2379\"")),
            Some(text) => {
                if let Err(why) = check_etcd_address(text) {
                    problems.push(
                        Problem::new(format!(
                            "`{path}`: \"{text}\" is not an etcd address: {why}"
                        ))
                        .at(at)
                        .label("not etcd://HOST:PORT")
                        .help(ETCD_ADDRESS_HELP),
                    );
                }
            }
        },
        Ty::PortName => match node.as_str() {
            None => problems.push(mismatch("a port name")),
            Some(text) => {
                if let Err(why) = names::check_port_name(text) {
                    problems.push(
                        Problem::new(format!(
                            "`{path}`: \"{text}\" is not a valid port name: {why}"
                        ))
                        .at(at)
                        .label("not a port name")
                        .help(names::PORT_NAME_HELP),
                    );
                }
            }
        },
        Ty::StringOrTable { string, table } => {
            if node.as_table().is_some() {
                check_table(node, table, path, problems);
            } else {
                check(node, string, path, problems);
            }
        }
        Ty::List(item_ty) => match node.as_array() {
            None => problems.push(mismatch("an array")),
            Some(items) => {
                for (index, item) in items.iter().enumerate() {
                    check(item, item_ty, &format!("{path}[{index}]"), problems);
                }
            }
        },
        Ty::Table(fields) => {
            if node.as_table().is_none() {
                problems.push(mismatch("a table"));
            } else {
                check_table(node, fields, path, problems);
            }
        }
        Ty::Map { key, value } => match node.as_table() {
            None => problems.push(mismatch("a table")),
            Some(entries) => {
                for (name, entry) in entries {
                    let entry_path = join(path, name);
                    let key_at = entry.key.as_ref().or(entry.origin.location());
                    let bad_key = match key {
                        Key::Dns1035 => names::check_dns1035(name)
                            .err()
                            .map(|why| (why, names::DNS1035_HELP)),
                        Key::Flag => names::check_flag(name)
                            .err()
                            .map(|why| (why, names::FLAG_HELP)),
                        Key::EnvVar => names::check_env_var(name)
                            .err()
                            .map(|why| (why, names::ENV_VAR_HELP)),
                        Key::Label => names::check_label_key(name)
                            .err()
                            .map(|why| (why, names::LABEL_KEY_HELP)),
                        Key::PortName => names::check_port_name(name)
                            .err()
                            .map(|why| (why, names::PORT_NAME_HELP)),
                        Key::Header => names::check_header(name)
                            .err()
                            .map(|why| (why, names::HEADER_HELP)),
                    };
                    if let Some((why, help)) = bad_key {
                        problems.push(
                            Problem::new(format!(
                                "`{entry_path}`: \"{name}\" is not a valid name: {why}"
                            ))
                            .at(key_at)
                            .label("invalid name")
                            .help(help),
                        );
                    }
                    check(entry, value, &entry_path, problems);
                }
            }
        },
    }
}

fn check_table(node: &Node, fields: &'static [Field], path: &str, problems: &mut Vec<Problem>) {
    let Some(entries) = node.as_table() else {
        return;
    };
    for (name, entry) in entries {
        let entry_path = join(path, name);
        match fields.iter().find(|field| field.name == name) {
            Some(field) => check(entry, field.ty, &entry_path, problems),
            None if project_file_allows(&entry_path) => {
                let allowed: Vec<&str> = fields.iter().map(|field| field.name).collect();
                problems.push(
                    Problem::new(format!(
                        "`{entry_path}` can only be set in {}, not in an override file",
                        crate::project::PROJECT_FILE
                    ))
                    .at(entry.key.as_ref().or(entry.origin.location()))
                    .label("not in an override file")
                    .help(format!(
                        "move it to {}; here you can set: {}",
                        crate::project::PROJECT_FILE,
                        allowed.join(", ")
                    )),
                );
            }
            None => {
                let place = if path.is_empty() {
                    "at the top level".to_owned()
                } else {
                    format!("in `{path}`")
                };
                let mut problem = Problem::new(format!("unknown key `{name}` {place}"))
                    .at(entry.key.as_ref().or(entry.origin.location()));
                problem = match did_you_mean(name, fields.iter().map(|field| field.name)) {
                    Some(near) => problem.label(format!("did you mean `{near}`?")),
                    None => problem.label("unknown key"),
                };
                let allowed: Vec<&str> = fields.iter().map(|field| field.name).collect();
                problems.push(problem.help(format!("allowed keys here: {}", allowed.join(", "))));
            }
        }
    }
    for field in fields.iter().filter(|field| field.required) {
        if !entries.contains_key(field.name) {
            let place = if path.is_empty() {
                "the file".to_owned()
            } else {
                format!("`{path}`")
            };
            problems.push(
                Problem::new(format!(
                    "{place} is missing the required key `{}`",
                    field.name
                ))
                .at(node.key.as_ref().or(node.origin.location()))
                .label(format!("needs `{}`", field.name))
                .help(required_help(path, field)),
            );
        }
    }
}

/// How to add a missing required key: `add name = "<name>" under [project] (the project's name)`.
fn required_help(path: &str, field: &Field) -> String {
    let placeholder = |ty: &Ty| match ty {
        Ty::Name => "\"<name>\"",
        Ty::String => "\"...\"",
        _ => "...",
    };
    if let Ty::Table(fields) = field.ty {
        let keys: Vec<String> = fields
            .iter()
            .filter(|inner| inner.required)
            .map(|inner| format!("{} = {}", inner.name, placeholder(inner.ty)))
            .collect();
        let table = join(path, field.name);
        return if keys.is_empty() {
            format!("add [{table}]")
        } else {
            format!("add [{table}] with {}", keys.join(", "))
        };
    }
    let description = field.description();
    let doc = description.trim_end_matches('.');
    let mut chars = doc.chars();
    let doc: String = chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default();
    let under = if path.is_empty() {
        "at the top of the file".to_owned()
    } else {
        format!("under [{path}]")
    };
    format!(
        "add {} = {} {under} ({doc})",
        field.name,
        placeholder(field.ty)
    )
}

/// What to write instead of a value of the wrong type: without its quotes when it is a
/// quoted number or boolean, otherwise an example of the expected type.
fn mismatch_help(node: &Node, ty: &Ty, path: &str) -> String {
    let key = last_key(path);
    // An array item (`command[0]`) is written without a key.
    let assign = |value: &str| {
        if key.ends_with(']') {
            value.to_owned()
        } else {
            format!("{key} = {value}")
        }
    };
    let text = node.as_str();
    let quoted = match ty {
        Ty::Integer { .. } | Ty::Port => text.filter(|text| text.parse::<i64>().is_ok()),
        Ty::Bool => text.filter(|text| *text == "true" || *text == "false"),
        _ => None,
    };
    if let Some(text) = quoted {
        return format!("remove the quotes: {}", assign(text));
    }
    match ty {
        Ty::String => format!("put the value in double quotes: {}", assign("\"...\"")),
        Ty::Bool => format!(
            "write {} or {}, without quotes",
            assign("true"),
            assign("false")
        ),
        Ty::Integer { min, max } => {
            format!("write a whole number from {min} to {max}, without quotes")
        }
        Ty::Port => "write a whole number from 1 to 65535, without quotes".to_owned(),
        Ty::Memory => {
            let number = node.as_integer().unwrap_or(128);
            format!(
                "write a string with a unit: {} (Ki, Mi, Gi, Ti; or k, M, G, T)",
                assign(&format!("\"{number}Mi\""))
            )
        }
        Ty::Cpu => format!(
            "write cores as a number or millicores as a string: {} or {}",
            assign("0.5"),
            assign("\"500m\"")
        ),
        Ty::Duration => format!(
            "write a string with a unit: {} (ms, s, m or h)",
            assign("\"5s\"")
        ),
        Ty::Choice(choices) => format!("use one of {}", quoted_list(choices)),
        Ty::Name => format!("write the name in double quotes: {}", assign("\"name\"")),
        Ty::Scalar => "write a string, a number, or true or false".to_owned(),
        Ty::Command => format!(
            "write the program and its arguments as a list: {}",
            assign("[\"bin/server\", \"--flag\"]")
        ),
        Ty::EtcdAddress => format!(
            "write the address in double quotes: {}",
            assign("\"etcd://etcd:2379\"")
        ),
        Ty::PortName => format!("write the name in double quotes: {}", assign("\"grpc\"")),
        Ty::StringOrTable { table, .. } => {
            let keys: Vec<&str> = table.iter().map(|field| field.name).collect();
            format!(
                "write a string, or a table with any of {}: {}",
                keys.join(", "),
                assign("\"...\"")
            )
        }
        Ty::List(_) => match text {
            Some(text) => format!(
                "write a list, even of one: {}",
                assign(&format!("[\"{text}\"]"))
            ),
            None => format!("write a list: {}", assign("[...]")),
        },
        Ty::Table(fields) if std::ptr::eq(*fields, SECRET) => format!(
            "a secret is a reference, never the value itself: {} or {}",
            assign("{ env = \"VARIABLE\" }"),
            assign("{ file = \"path/to/secret\" }")
        ),
        Ty::Table(fields) => {
            let keys: Vec<&str> = fields.iter().map(|field| field.name).collect();
            format!("write a table: [{path}] with any of {}", keys.join(", "))
        }
        Ty::Map { .. } => format!("write a table: [{path}] with one entry per name"),
    }
}

/// The key a value is written under in its table: `replicas` for `services.web.replicas`.
fn last_key(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Whether a dotted path names a key of `tier.toml`. A key unknown where it is checked but
/// known there was written in an override file, and belongs in `tier.toml`.
fn project_file_allows(path: &str) -> bool {
    let root = Ty::Table(PROJECT_FILE);
    let mut ty = &root;
    for key in path.split('.') {
        ty = match ty {
            Ty::Table(fields) => match fields.iter().find(|field| field.name == key) {
                Some(field) => field.ty,
                None => return false,
            },
            Ty::StringOrTable { table, .. } => match table.iter().find(|field| field.name == key) {
                Some(field) => field.ty,
                None => return false,
            },
            Ty::Map { value, .. } => value,
            _ => return false,
        };
    }
    true
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn quoted_list(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices
        .iter()
        .map(|choice| format!("\"{choice}\""))
        .collect();
    quoted.join(", ")
}

/// The closest candidate to a misspelt word, if one is close enough to be meant.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// The JSON Schema (draft 2020-12) of `tier.toml` or of an override file.
pub fn json_schema(fields: &'static [Field], title: &str, description: &str) -> serde_json::Value {
    let mut schema = table_schema(fields);
    if let Some(object) = schema.as_object_mut() {
        let mut head = serde_json::Map::new();
        head.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        head.insert("title".into(), json!(title));
        head.insert("description".into(), json!(description));
        head.extend(std::mem::take(object));
        *object = head;
    }
    schema
}

fn table_schema(fields: &'static [Field]) -> serde_json::Value {
    let properties: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|field| {
            let mut schema = type_schema(field.ty);
            if let Some(object) = schema.as_object_mut() {
                object.insert("description".into(), json!(field.description()));
                if let Some(default) = field.default.and_then(FieldDefault::to_json) {
                    object.insert("default".into(), default);
                }
            }
            (field.name.to_owned(), schema)
        })
        .collect();
    let required: Vec<&str> = fields
        .iter()
        .filter(|field| field.required)
        .map(|field| field.name)
        .collect();
    let mut schema = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty()
        && let Some(object) = schema.as_object_mut()
    {
        object.insert("required".into(), json!(required));
    }
    schema
}

fn type_schema(ty: &Ty) -> serde_json::Value {
    match ty {
        Ty::String => json!({ "type": "string" }),
        Ty::Bool => json!({ "type": "boolean" }),
        Ty::Integer { min, max } => json!({ "type": "integer", "minimum": min, "maximum": max }),
        Ty::Port => json!({ "type": "integer", "minimum": 1, "maximum": 65535 }),
        Ty::Memory => json!({ "type": "string", "pattern": crate::quantity::MEMORY_PATTERN }),
        Ty::Cpu => json!({ "anyOf": [
            { "type": "string", "pattern": crate::quantity::CPU_PATTERN },
            { "type": "number", "exclusiveMinimum": 0 }
        ] }),
        Ty::Duration => json!({ "type": "string", "pattern": crate::quantity::DURATION_PATTERN }),
        Ty::Choice(choices) => json!({ "type": "string", "enum": choices }),
        Ty::Name => json!({ "type": "string", "pattern": names::DNS1035_PATTERN, "maxLength": 63 }),
        Ty::Scalar => json!({ "type": ["string", "number", "boolean"] }),
        Ty::Command => json!({ "type": "array", "items": { "type": "string" }, "minItems": 1 }),
        Ty::EtcdAddress => json!({ "type": "string", "pattern": ETCD_ADDRESS_PATTERN }),
        Ty::PortName => json!({ "type": "string", "pattern": names::PORT_NAME_PATTERN }),
        Ty::StringOrTable { string, table } => {
            json!({ "anyOf": [type_schema(string), table_schema(table)] })
        }
        Ty::List(item) => json!({ "type": "array", "items": type_schema(item) }),
        Ty::Table(fields) => table_schema(fields),
        Ty::Map { key, value } => json!({
            "type": "object",
            "propertyNames": { "pattern": match key {
                Key::Dns1035 => names::DNS1035_PATTERN,
                Key::Flag => names::FLAG_PATTERN,
                Key::EnvVar => names::ENV_VAR_PATTERN,
                Key::Label => names::LABEL_KEY_PATTERN,
                Key::PortName => names::PORT_NAME_PATTERN,
                Key::Header => names::HEADER_PATTERN,
            } },
            "additionalProperties": type_schema(value),
        }),
    }
}
