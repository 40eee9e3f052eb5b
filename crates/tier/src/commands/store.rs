//! `tier config`, `tier flag` and `tier store serve`: the runtime config store from the
//! command line. Every command speaks the store's HTTP API (docs/api.md): to the running
//! agent of a local environment, to a server given with `--store` (a kubernetes
//! environment's `tier store serve`), or, when a local environment is not running, to the
//! environment's own store file served for the length of the command.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tier_local::paths::EnvDir;
use tier_model::Environment;
use tier_model::environment::Runtime;
use tier_store::http::{ApiConfig, FlagDefault, Tokens};
use tier_store::{EmbeddedConfig, EmbeddedStore};
use tokio_util::sync::CancellationToken;

use super::inspect::resolve_one;
use super::{CommandResult, Exit, Threads, stop_on_signal};
use crate::args::{ConfigCommand, FlagCommand, Global, Output, StoreCommand, StoreTarget};
use crate::output;

/// How long one request may take, long-polls and watches aside.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn config(global: &Global, command: &ConfigCommand) -> CommandResult {
    let (env, target) = match command {
        ConfigCommand::Get { env, target, .. }
        | ConfigCommand::Set { env, target, .. }
        | ConfigCommand::Rm { env, target, .. }
        | ConfigCommand::Ls { env, target, .. }
        | ConfigCommand::Watch { env, target, .. }
        | ConfigCommand::History { env, target, .. }
        | ConfigCommand::Rollback { env, target, .. } => (env, target),
    };
    with_store(global, env, target, |store, environment| async move {
        match command {
            ConfigCommand::Get { key, .. } => get(global, &store, key).await,
            ConfigCommand::Set {
                key,
                value,
                confirm,
                ..
            } => {
                if !super::deploy::confirmed(&environment, confirm.as_deref(), "change config in") {
                    return Err(Exit::Failure);
                }
                set(global, &store, key, value).await
            }
            ConfigCommand::Rm { key, confirm, .. } => {
                if !super::deploy::confirmed(&environment, confirm.as_deref(), "change config in") {
                    return Err(Exit::Failure);
                }
                remove(global, &store, key).await
            }
            ConfigCommand::Ls { prefix, .. } => list(global, &store, prefix.as_deref()).await,
            ConfigCommand::Watch {
                key, prefix, from, ..
            } => watch(global, &store, key, *prefix, *from).await,
            ConfigCommand::History { key, .. } => history(global, &store, key).await,
            ConfigCommand::Rollback {
                key, to, confirm, ..
            } => {
                if !super::deploy::confirmed(
                    &environment,
                    confirm.as_deref(),
                    "roll back config in",
                ) {
                    return Err(Exit::Failure);
                }
                rollback(global, &store, key, *to).await
            }
        }
    })
}

pub fn flag(global: &Global, command: &FlagCommand) -> CommandResult {
    let (env, target) = match command {
        FlagCommand::On { env, target, .. }
        | FlagCommand::Off { env, target, .. }
        | FlagCommand::Reset { env, target, .. }
        | FlagCommand::Ls { env, target } => (env, target),
    };
    with_store(global, env, target, |store, environment| async move {
        let (name, value, confirm) = match command {
            FlagCommand::Ls { .. } => return list_flags(global, &store).await,
            FlagCommand::On {
                name,
                percent: Some(percent),
                confirm,
                ..
            } => (name, Some(json!({ "percent": percent })), confirm),
            FlagCommand::On { name, confirm, .. } => (name, Some(json!(true)), confirm),
            FlagCommand::Off { name, confirm, .. } => (name, Some(json!(false)), confirm),
            FlagCommand::Reset { name, confirm, .. } => (name, None, confirm),
        };
        if !super::deploy::confirmed(&environment, confirm.as_deref(), "change flags in") {
            return Err(Exit::Failure);
        }
        set_flag(global, &store, name, value).await
    })
}

pub fn store(global: &Global, command: &StoreCommand) -> CommandResult {
    match command {
        StoreCommand::Serve {
            backend,
            env,
            listen,
            tokens,
            flags,
        } => serve(
            global,
            backend,
            env,
            listen,
            tokens.as_deref(),
            flags.as_deref(),
        ),
    }
}

/// Where requests go, and with which token.
struct Store {
    url: String,
    token: String,
    env: String,
    client: reqwest::Client,
}

impl Store {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("x-tier-actor", actor())
    }

    /// Sends a request and reads its JSON answer; an error answer becomes the API's message.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
        let response = request
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|error| {
                format!(
                    "{}: cannot reach the store at {}: {error}",
                    self.env, self.url
                )
            })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|error| format!("{}: the store's answer broke off: {error}", self.env))?;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok((status, value))
    }
}

/// The user and host a change is recorded under.
fn actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_default();
    let actor: String = format!("{user}@{host}")
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(128)
        .collect();
    if actor.is_empty() {
        "tier".to_owned()
    } else {
        actor
    }
}

/// Finds the environment's store and runs `work` against it in a runtime of its own.
fn with_store<'a, F, Fut>(
    global: &'a Global,
    env: &'a str,
    target: &StoreTarget,
    work: F,
) -> CommandResult
where
    F: FnOnce(Arc<Store>, Environment) -> Fut,
    Fut: std::future::Future<Output = CommandResult> + 'a,
{
    let (_, resolved) = resolve_one(global, env, &[])?;
    if resolved.is_abstract {
        output::error(&format!(
            "environment `{env}` is abstract: it is only a parent and has no store"
        ));
        return Err(Exit::Failure);
    }
    let environment = resolved.environment;
    let runtime = super::runtime(Threads::One)?;
    let client = match reqwest::Client::builder().build() {
        Ok(client) => client,
        Err(error) => {
            output::error(&format!("cannot make an HTTP client: {error}"));
            return Err(Exit::Failure);
        }
    };
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let store = match locate(global, &environment, target, client, &shutdown).await {
            Ok(store) => Arc::new(store),
            Err((message, hint)) => {
                output::error(&message);
                if let Some(hint) = hint {
                    output::hint(&hint);
                }
                return Err(Exit::Failure);
            }
        };
        let code = work(store, environment).await;
        shutdown.cancel();
        code
    })
}

type Located = Result<Store, (String, Option<String>)>;

async fn locate(
    global: &Global,
    environment: &Environment,
    target: &StoreTarget,
    client: reqwest::Client,
    shutdown: &CancellationToken,
) -> Located {
    let env = environment.name.to_string();
    if let Some(url) = &target.store {
        let Some(token) = target.token.clone() else {
            return Err((
                format!("{env}: --store needs a token"),
                Some("set TIER_TOKEN to the environment's read-write token".to_owned()),
            ));
        };
        return Ok(Store {
            url: url.trim_end_matches('/').to_owned(),
            token,
            env,
            client,
        });
    }
    if environment.runtime != Runtime::Local {
        return Err((
            format!(
                "{env} runs on {}: its store is the one `tier store serve` runs beside it",
                environment.runtime.as_str()
            ),
            Some("pass --store URL and set TIER_TOKEN to its read-write token".to_owned()),
        ));
    }
    let root = std::fs::canonicalize(&global.project).unwrap_or_else(|_| global.project.clone());
    let dir = EnvDir::new(&root, &env);
    let running = tier_local::is_running(&dir);
    if running && let Some(port) = dir.store_port() {
        let tokens =
            Tokens::load(&dir.tokens(), &env).map_err(|error| (format!("{env}: {error}"), None))?;
        return Ok(Store {
            url: format!("http://127.0.0.1:{port}"),
            token: tokens.read_write().expose().to_owned(),
            env,
            client,
        });
    }
    // Not running: serve the environment's own store file for the length of this command.
    std::fs::create_dir_all(dir.root()).map_err(|error| {
        (
            format!("{env}: cannot create {}: {error}", dir.root().display()),
            None,
        )
    })?;
    let tokens = Tokens::load_or_create(&dir.tokens(), &env)
        .map_err(|error| (format!("{env}: {error}"), None))?;
    let token = tokens.read_write().expose().to_owned();
    let store = EmbeddedStore::open(&dir.store(), EmbeddedConfig::default())
        .await
        .map_err(|error| {
            (
                format!("{env}: cannot open the runtime config store: {error}"),
                Some(format!(
                    "if `tier up {env}` was just starting, run the command again"
                )),
            )
        })?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|error| (format!("{env}: cannot open a local port: {error}"), None))?;
    let port = listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| (format!("{env}: {error}"), None))?;
    let config = ApiConfig {
        flags: tier_local::store::flag_defaults(environment),
        shutdown: shutdown.clone(),
        ..ApiConfig::default()
    };
    tokio::spawn(tier_store::http::serve(
        listener,
        Arc::new(store),
        tokens,
        config,
    ));
    Ok(Store {
        url: format!("http://127.0.0.1:{port}"),
        token,
        env,
        client,
    })
}

/// A key as it goes into a path: each segment percent-encoded, `/` kept.
fn key_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char);
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn query_value(text: &str) -> String {
    key_path(text).replace('/', "%2F")
}

/// Prints what the API said went wrong; always the failure exit code.
fn refused(store: &Store, status: u16, body: &Value) -> CommandResult {
    let message = body["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("the store answered {status}"));
    output::error(&format!("{}: {message}", store.env));
    if let Some(suggestion) = body["did_you_mean"].as_str() {
        output::hint(&format!("did you mean `{suggestion}`?"));
    }
    Err(Exit::Failure)
}

fn show_value(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

async fn get(global: &Global, store: &Store, key: &str) -> CommandResult {
    let path = format!("/v1/kv/{}", key_path(key));
    match store.call(store.request(reqwest::Method::GET, &path)).await {
        Ok((200, body)) => {
            match global.output {
                Output::Json => output::json(&body),
                Output::Text => output::stdout_line(&show_value(&body["value"])),
            }
            Ok(())
        }
        Ok((status, body)) => refused(store, status, &body),
        Err(message) => failed(&message),
    }
}

/// A value from the command line: JSON when it parses as JSON, else the text itself.
fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

async fn set(global: &Global, store: &Store, key: &str, value: &str) -> CommandResult {
    let path = format!("/v1/kv/{}", key_path(key));
    let request = store
        .request(reqwest::Method::PUT, &path)
        .json(&json!({ "value": parse_value(value) }));
    changed(global, store, request, &format!("set {key}")).await
}

async fn remove(global: &Global, store: &Store, key: &str) -> CommandResult {
    let path = format!("/v1/kv/{}", key_path(key));
    let request = store.request(reqwest::Method::DELETE, &path);
    changed(global, store, request, &format!("removed {key}")).await
}

async fn rollback(global: &Global, store: &Store, key: &str, to: u64) -> CommandResult {
    let path = format!("/v1/kv/{}/rollback", key_path(key));
    let request = store
        .request(reqwest::Method::POST, &path)
        .json(&json!({ "to": to }));
    changed(
        global,
        store,
        request,
        &format!("{key} restored to its value at revision {to}"),
    )
    .await
}

/// Sends a change and reports the revision it got.
async fn changed(
    global: &Global,
    store: &Store,
    request: reqwest::RequestBuilder,
    what: &str,
) -> CommandResult {
    match store.call(request).await {
        Ok((200, body)) => {
            match global.output {
                Output::Json => output::json(&body),
                Output::Text => match body["revision"].as_u64() {
                    Some(revision) => {
                        output::stdout_line(&format!(
                            "{}: {what} (revision {revision})",
                            store.env
                        ));
                    }
                    None => output::stdout_line(&format!("{}: nothing to change", store.env)),
                },
            }
            Ok(())
        }
        Ok((status, body)) => refused(store, status, &body),
        Err(message) => failed(&message),
    }
}

async fn list(global: &Global, store: &Store, prefix: Option<&str>) -> CommandResult {
    let path = format!("/v1/kv?prefix={}", query_value(prefix.unwrap_or("")));
    match store.call(store.request(reqwest::Method::GET, &path)).await {
        Ok((200, body)) => {
            match global.output {
                Output::Json => output::json(&body),
                Output::Text => {
                    let kvs = body["kvs"].as_array().cloned().unwrap_or_default();
                    if kvs.is_empty() {
                        output::stdout_line(&format!("{}: no keys", store.env));
                    } else {
                        let mut rows = vec![vec![
                            "KEY".to_owned(),
                            "VALUE".to_owned(),
                            "REVISION".to_owned(),
                        ]];
                        for kv in kvs {
                            rows.push(vec![
                                show_value(&kv["key"]),
                                shorten(&show_value(&kv["value"]), 60),
                                kv["mod_revision"].to_string(),
                            ]);
                        }
                        output::stdout(&super::inspect::columns(&rows));
                    }
                }
            }
            Ok(())
        }
        Ok((status, body)) => refused(store, status, &body),
        Err(message) => failed(&message),
    }
}

fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let kept: String = text.chars().take(limit - 1).collect();
    format!("{kept}…")
}

async fn history(global: &Global, store: &Store, key: &str) -> CommandResult {
    let path = format!("/v1/kv/{}?history", key_path(key));
    match store.call(store.request(reqwest::Method::GET, &path)).await {
        Ok((200, body)) => {
            match global.output {
                Output::Json => output::json(&body),
                Output::Text => {
                    let records = body["history"].as_array().cloned().unwrap_or_default();
                    if records.is_empty() {
                        output::stdout_line(&format!(
                            "{}: no recorded changes to {key}",
                            store.env
                        ));
                        return Ok(());
                    }
                    let mut rows = vec![vec![
                        "REVISION".to_owned(),
                        "WHEN".to_owned(),
                        "WHO".to_owned(),
                        "ACTION".to_owned(),
                        "OLD".to_owned(),
                        "NEW".to_owned(),
                    ]];
                    for record in records {
                        let side = |side: &Value| {
                            if side.is_null() {
                                "-".to_owned()
                            } else {
                                shorten(&show_value(&side["value"]), 30)
                            }
                        };
                        let mut action = show_value(&record["action"]);
                        if let Some(to) = record["rolled_back_to"].as_u64() {
                            action = format!("{action} to {to}");
                        }
                        rows.push(vec![
                            record["revision"].to_string(),
                            record["at_unix_ms"]
                                .as_u64()
                                .map(super::deploy::format_time)
                                .unwrap_or_default(),
                            record["actor"]
                                .as_str()
                                .unwrap_or_else(|| record["token"].as_str().unwrap_or(""))
                                .to_owned(),
                            action,
                            side(&record["old"]),
                            side(&record["new"]),
                        ]);
                    }
                    output::stdout(&super::inspect::columns(&rows));
                }
            }
            Ok(())
        }
        Ok((status, body)) => refused(store, status, &body),
        Err(message) => failed(&message),
    }
}

/// Prints each change as it happens until Ctrl-C: `REVISION put KEY = VALUE` or
/// `REVISION delete KEY`; with `--output json`, one JSON object per line.
async fn watch(
    global: &Global,
    store: &Store,
    key: &str,
    prefix: bool,
    from: Option<u64>,
) -> CommandResult {
    let mut path = format!(
        "/v1/watch?{}={}",
        if prefix { "prefix" } else { "key" },
        query_value(key)
    );
    if let Some(from) = from {
        path.push_str(&format!("&from={from}"));
    }
    let response = match store.request(reqwest::Method::GET, &path).send().await {
        Ok(response) => response,
        Err(error) => {
            return failed(&format!(
                "{}: cannot reach the store at {}: {error}",
                store.env, store.url
            ));
        }
    };
    let status = response.status().as_u16();
    if status != 200 {
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        return refused(store, status, &body);
    }
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut event = String::new();
    loop {
        let chunk = tokio::select! {
            chunk = body.next() => chunk,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(Ok(chunk)) = chunk else {
            output::error(&format!("{}: the store closed the watch", store.env));
            return Err(Exit::Failure);
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_owned();
            } else if let Some(data) = line.strip_prefix("data:") {
                let data: Value = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
                print_event(global, &event, &data);
                if event == "error" {
                    return Err(Exit::Failure);
                }
            } else if line.is_empty() {
                event.clear();
            }
        }
    }
}

fn print_event(global: &Global, event: &str, data: &Value) {
    match global.output {
        Output::Json => output::json(&json!({ "event": event, "data": data })),
        Output::Text => {
            let line = match event {
                "put" => format!(
                    "{} put {} = {}",
                    data["mod_revision"],
                    show_value(&data["key"]),
                    show_value(&data["value"])
                ),
                "delete" => format!("{} delete {}", data["revision"], show_value(&data["key"])),
                other => format!("{other} {data}"),
            };
            output::stdout_line(&line);
        }
    }
}

async fn list_flags(global: &Global, store: &Store) -> CommandResult {
    match store
        .call(store.request(reqwest::Method::GET, "/v1/flags"))
        .await
    {
        Ok((200, body)) => {
            match global.output {
                Output::Json => output::json(&body),
                Output::Text => {
                    let flags = body["flags"].as_object().cloned().unwrap_or_default();
                    if flags.is_empty() {
                        output::stdout_line(&format!(
                            "{}: no flags; declare them under [flags.<name>] in tier.toml",
                            store.env
                        ));
                        return Ok(());
                    }
                    let mut rows = vec![vec![
                        "FLAG".to_owned(),
                        "VALUE".to_owned(),
                        "DEFAULT".to_owned(),
                        "SET AT RUN TIME".to_owned(),
                        "DESCRIPTION".to_owned(),
                    ]];
                    for (name, flag) in flags {
                        rows.push(vec![
                            name,
                            describe_flag(&flag["value"]),
                            describe_flag(&flag["default"]),
                            if flag["overridden"].as_bool() == Some(true) {
                                "yes".to_owned()
                            } else {
                                "no".to_owned()
                            },
                            flag["description"].as_str().unwrap_or("").to_owned(),
                        ]);
                    }
                    output::stdout(&super::inspect::columns(&rows));
                }
            }
            Ok(())
        }
        Ok((status, body)) => refused(store, status, &body),
        Err(message) => failed(&message),
    }
}

fn describe_flag(value: &Value) -> String {
    match value {
        Value::Bool(true) => "on".to_owned(),
        Value::Bool(false) => "off".to_owned(),
        Value::Object(fields) if fields.contains_key("percent") => {
            format!("on for {}%", fields["percent"])
        }
        other => show_value(other),
    }
}

async fn set_flag(
    global: &Global,
    store: &Store,
    name: &str,
    value: Option<Value>,
) -> CommandResult {
    let path = format!("/v1/flags/{}", query_value(name));
    let (request, what) = match &value {
        Some(value) => (
            store
                .request(reqwest::Method::PUT, &path)
                .json(&json!({ "value": value })),
            format!("{name} is {}", describe_flag(value)),
        ),
        None => (
            store.request(reqwest::Method::DELETE, &path),
            format!("{name} is back to its default"),
        ),
    };
    changed(global, store, request, &what).await
}

fn failed(message: &str) -> CommandResult {
    output::error(message);
    Err(Exit::Failure)
}

/// Serves the store's API in front of a backend until Ctrl-C or SIGTERM.
fn serve(
    global: &Global,
    backend: &str,
    env: &str,
    listen: &str,
    tokens: Option<&std::path::Path>,
    declared: Option<&str>,
) -> CommandResult {
    if tier_model::EnvName::new(env).is_err() {
        output::error(&format!("`{env}` is not an environment name"));
        return Err(Exit::Usage);
    }
    let flags = match declared {
        Some(text) => match parse_flags(text) {
            Ok(flags) => flags,
            Err(why) => {
                output::error(&format!("--flags: {why}"));
                output::hint(r#"--flags '{"new-ui": {"default": false, "description": "..."}}'"#);
                return Err(Exit::Usage);
            }
        },
        None => match super::load(global) {
            Ok(mut project) if project.environment(env).is_some() => project
                .resolve(env, &[])
                .map(|resolved| tier_local::store::flag_defaults(&resolved.environment))
                .unwrap_or_default(),
            _ => BTreeMap::new(),
        },
    };
    let tokens_path = tokens.map_or_else(
        || EnvDir::new(&global.project, env).tokens(),
        std::path::Path::to_path_buf,
    );
    if let Some(parent) = tokens_path.parent()
        && let Err(error) = std::fs::create_dir_all(parent)
    {
        return failed(&format!("cannot create {}: {error}", parent.display()));
    }
    let tokens = match Tokens::load_or_create(&tokens_path, env) {
        Ok(tokens) => tokens,
        Err(error) => return failed(&format!("{env}: {error}")),
    };
    let runtime = super::runtime(Threads::AllCores)?;
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(error) => return failed(&format!("cannot listen on {listen}: {error}")),
        };
        let address = listener
            .local_addr()
            .map(|address| address.to_string())
            .unwrap_or_else(|_| listen.to_owned());
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let config = ApiConfig {
            flags,
            shutdown: shutdown.clone(),
            ..ApiConfig::default()
        };
        let served = if let Some(path) = backend.strip_prefix("file:") {
            let store =
                match EmbeddedStore::open(std::path::Path::new(path), EmbeddedConfig::default())
                    .await
                {
                    Ok(store) => store,
                    Err(error) => return failed(&format!("{env}: cannot open {path}: {error}")),
                };
            eprintln!("{env}: serving the store in {path} on http://{address}");
            tier_store::http::serve(listener, Arc::new(store), tokens, config).await
        } else if backend.starts_with("etcd://") {
            match serve_etcd(backend, listener, tokens, config, env, &address).await {
                Ok(result) => result,
                Err(code) => return Err(code),
            }
        } else {
            output::error(&format!("`{backend}` is not a store backend"));
            output::hint(
                "use --backend etcd://HOST:PORT[,HOST:PORT][/PREFIX] or --backend file:PATH",
            );
            return Err(Exit::Usage);
        };
        match served {
            Ok(()) => Ok(()),
            Err(error) => failed(&format!("{env}: the store's API stopped: {error}")),
        }
    })
}

/// `--flags`: a JSON object of flag name to `{"default": …, "description": …}`.
fn parse_flags(text: &str) -> Result<BTreeMap<String, FlagDefault>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Declared {
        default: Value,
        #[serde(default)]
        description: Option<String>,
    }
    let declared: BTreeMap<String, Declared> =
        serde_json::from_str(text).map_err(|error| format!("not a map of flags: {error}"))?;
    Ok(declared
        .into_iter()
        .map(|(name, flag)| {
            (
                name,
                FlagDefault {
                    value: flag.default,
                    description: flag.description,
                },
            )
        })
        .collect())
}

#[cfg(feature = "etcd")]
async fn serve_etcd(
    backend: &str,
    listener: tokio::net::TcpListener,
    tokens: Tokens,
    config: ApiConfig,
    env: &str,
    address: &str,
) -> Result<std::io::Result<()>, Exit> {
    let etcd_config = match tier_store::EtcdConfig::from_address(backend) {
        Ok(config) => config,
        Err(error) => {
            output::error(&format!("{backend}: {error}"));
            return Err(Exit::Usage);
        }
    };
    let store = match tier_store::EtcdStore::connect(etcd_config).await {
        Ok(store) => store,
        Err(error) => {
            output::error(&format!("{env}: cannot reach etcd at {backend}: {error}"));
            return Err(Exit::Failure);
        }
    };
    eprintln!("{env}: serving the store in {backend} on http://{address}");
    Ok(tier_store::http::serve(listener, Arc::new(store), tokens, config).await)
}

#[cfg(not(feature = "etcd"))]
async fn serve_etcd(
    _backend: &str,
    _listener: tokio::net::TcpListener,
    _tokens: Tokens,
    _config: ApiConfig,
    _env: &str,
    _address: &str,
) -> Result<std::io::Result<()>, Exit> {
    output::error("this tier was built without the etcd backend");
    output::hint("build it with `cargo build --release --features etcd` (needs protoc)");
    Err(Exit::Failure)
}
