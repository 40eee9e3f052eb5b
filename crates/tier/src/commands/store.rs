//! `tier config`, `tier flag` and `tier store serve`: the runtime config store from the
//! command line. `tier config` and `tier flag` reach the store's HTTP API (docs/api.md)
//! through `tier_client` with the environment's read-write token: the running agent of a
//! local environment, a server given with `--store` (a kubernetes environment's `tier store
//! serve`), or, when a local environment is not running, the environment's own store file
//! served for the length of the command. `show.rs` turns the answers into text;
//! `serve.rs` is `tier store serve`.

mod serve;
mod show;

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use tier_client::{AuditRecord, ClientError, WatchStart, WatchTarget};
use tier_deploy::store::{Named, StoreAccess as Store, locate};
use tier_model::{Environment, Purpose};
use tokio_util::sync::CancellationToken;

use super::inspect::resolve_one;
use super::{CommandResult, Exit, Threads, fail, fail_hinted, usage_with};
use crate::args::{ConfigCommand, FlagCommand, Global, Output, StoreCommand, StoreTarget};
use crate::output;

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
                super::deploy::confirmed(&environment, confirm.as_deref(), "change config in")?;
                set(global, &store, key, value).await
            }
            ConfigCommand::Rm { key, confirm, .. } => {
                super::deploy::confirmed(&environment, confirm.as_deref(), "change config in")?;
                remove(global, &store, key).await
            }
            ConfigCommand::Ls { prefix, .. } => list(global, &store, prefix.as_deref()).await,
            ConfigCommand::Watch {
                key, prefix, from, ..
            } => watch(global, &store, key, *prefix, *from).await,
            ConfigCommand::History { key, .. } => history(global, &store, key).await,
            ConfigCommand::Rollback {
                key,
                to,
                confirm,
                yes,
                ..
            } => {
                super::deploy::confirmed(&environment, confirm.as_deref(), "roll back config in")?;
                rollback(global, &store, key, *to, *yes).await
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
        super::deploy::confirmed(&environment, confirm.as_deref(), "change flags in")?;
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
        } => serve::serve(
            global,
            backend,
            env,
            listen,
            tokens.as_deref(),
            flags.as_deref(),
        ),
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
    resolved.deployable(Purpose::Store).map_err(fail)?;
    let environment = resolved.environment;
    let named = Named {
        url: target.store.clone(),
        token: target.token.clone(),
    };
    let root = super::local::project_root(global);
    let runtime = super::runtime(Threads::One)?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let store = match locate(&root, &environment, &named, &shutdown).await {
            Ok(store) => Arc::new(store),
            Err(error) => return Err(fail_hinted(&error)),
        };
        let code = work(store, environment).await;
        shutdown.cancel();
        code
    })
}

/// Prints what went wrong, in the API's words where it answered; always the failure exit
/// code.
fn refused(store: &Store, error: ClientError) -> CommandResult {
    let env = &store.env;
    match error {
        ClientError::Unreachable(cause) => {
            output::error(&format!(
                "{env}: cannot reach the store at {}: {cause}",
                store.url
            ));
        }
        ClientError::BrokenOff(cause) => {
            output::error(&format!("{env}: the store's answer broke off: {cause}"));
        }
        ClientError::Api {
            message,
            did_you_mean,
            ..
        } => {
            output::error(&format!("{env}: {message}"));
            if let Some(suggestion) = did_you_mean {
                output::hint(&format!("did you mean `{suggestion}`?"));
            }
        }
        ClientError::Compacted { message, .. } => output::error(&format!("{env}: {message}")),
        other => output::error(&format!("{env}: {other}")),
    }
    Err(Exit::Failure)
}

/// Prints an answer as JSON, as the API gave it.
fn print_json(answer: &impl Serialize) {
    output::json(&serde_json::to_value(answer).unwrap_or(Value::Null));
}

async fn get(global: &Global, store: &Store, key: &str) -> CommandResult {
    match store.client.entry(key).await {
        Ok(Some(kv)) => {
            match global.output {
                Output::Json => print_json(&kv),
                Output::Text => output::stdout_line(&show::show_value(&kv.value)),
            }
            Ok(())
        }
        Ok(None) => {
            output::error(&format!("{}: no key {key:?}", store.env));
            Err(Exit::Failure)
        }
        Err(error) => refused(store, error),
    }
}

/// A value from the command line: JSON when it parses as JSON, else the text itself.
fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

async fn set(global: &Global, store: &Store, key: &str, value: &str) -> CommandResult {
    let written = store.client.put(key, &parse_value(value)).await.map(Some);
    changed(
        global,
        store,
        Subject::Key(key),
        written,
        &format!("set {key}"),
    )
}

async fn remove(global: &Global, store: &Store, key: &str) -> CommandResult {
    let written = store.client.delete(key).await.map(Some);
    changed(
        global,
        store,
        Subject::Key(key),
        written,
        &format!("removed {key}"),
    )
}

async fn rollback(global: &Global, store: &Store, key: &str, to: u64, yes: bool) -> CommandResult {
    let history = match store.client.history(key).await {
        Ok(history) => history.history,
        Err(error) => return refused(store, error),
    };
    // A rollback to before the key was set deletes it, which `--to` alone does not say.
    let deletes = existed_at(&history, u64::MAX) && !existed_at(&history, to);
    if deletes && !yes {
        return Err(usage_with(
            format!("{key} did not exist at revision {to}: rolling back deletes it"),
            format!("add --yes to delete {key}"),
        ));
    }
    let written = store.client.rollback(key, to).await;
    let what = if deletes {
        format!("{key} deleted, as it was at revision {to}")
    } else {
        format!("{key} restored to its value at revision {to}")
    };
    changed(global, store, Subject::Key(key), written, &what)
}

/// Whether a key had a value at `revision`, by its audited changes: the last change up to that
/// revision left one.
fn existed_at(history: &[AuditRecord], revision: u64) -> bool {
    history
        .iter()
        .filter(|change| change.revision <= revision)
        .max_by_key(|change| change.revision)
        .is_some_and(|change| change.new.is_some())
}

/// What a change was made to, as its answer names it.
enum Subject<'a> {
    Key(&'a str),
    Flag(&'a str),
}

/// Reports the revision a change got (`None`: there was nothing to change).
fn changed(
    global: &Global,
    store: &Store,
    subject: Subject<'_>,
    written: Result<Option<u64>, ClientError>,
    what: &str,
) -> CommandResult {
    let revision = match written {
        Ok(revision) => revision,
        Err(error) => return refused(store, error),
    };
    match global.output {
        Output::Json => output::json(&match subject {
            Subject::Key(key) => json!({ "key": key, "revision": revision }),
            Subject::Flag(name) => json!({ "name": name, "revision": revision }),
        }),
        Output::Text => match revision {
            Some(revision) => {
                output::stdout_line(&format!("{}: {what} (revision {revision})", store.env));
            }
            None => output::stdout_line(&format!("{}: nothing to change", store.env)),
        },
    }
    Ok(())
}

async fn list(global: &Global, store: &Store, prefix: Option<&str>) -> CommandResult {
    let listing = store.client.list(prefix.unwrap_or("")).await;
    print_read(global, store, listing, show::listing_rows, "no keys")
}

async fn history(global: &Global, store: &Store, key: &str) -> CommandResult {
    let history = store.client.history(key).await;
    let empty = format!("no recorded changes to {key}");
    print_read(global, store, history, show::history_rows, &empty)
}

/// Prints a read's answer: as the API's JSON, or as a table (its first row the header), or
/// `empty` when the table has no other row.
fn print_read<T: Serialize>(
    global: &Global,
    store: &Store,
    answer: Result<T, ClientError>,
    rows: impl FnOnce(&T) -> Vec<Vec<String>>,
    empty: &str,
) -> CommandResult {
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => return refused(store, error),
    };
    match global.output {
        Output::Json => print_json(&answer),
        Output::Text => {
            let rows = rows(&answer);
            if rows.len() <= 1 {
                output::stdout_line(&format!("{}: {empty}", store.env));
            } else {
                output::stdout(&super::inspect::columns(&rows));
            }
        }
    }
    Ok(())
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
    let target = if prefix {
        WatchTarget::Prefix(key.to_owned())
    } else {
        WatchTarget::Key(key.to_owned())
    };
    let start = from.map_or(WatchStart::Next, WatchStart::From);
    let mut events = match store.client.events(&target, start).await {
        Ok(events) => events,
        Err(error) => return refused(store, error),
    };
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match event {
            Ok(Some(event)) => match global.output {
                Output::Json => output::json(&show::event_json(&event)),
                Output::Text => output::stdout_line(&show::event_line(&event)),
            },
            Ok(None) => {
                output::error(&format!("{}: the store closed the watch", store.env));
                return Err(Exit::Failure);
            }
            Err(error) => return refused(store, error),
        }
    }
}

async fn list_flags(global: &Global, store: &Store) -> CommandResult {
    let snapshot = store.client.list_flags().await;
    let empty = "no flags; declare them under [flags.<name>] in tier.toml";
    print_read(global, store, snapshot, show::flag_rows, empty)
}

/// Overrides flag `name` with `value`, or drops its override (`None`).
async fn set_flag(
    global: &Global,
    store: &Store,
    name: &str,
    value: Option<Value>,
) -> CommandResult {
    let (written, what) = match &value {
        Some(value) => (
            store.client.set_flag(name, value).await.map(Some),
            format!("{name} is {}", show::describe_flag(value)),
        ),
        None => (
            store.client.clear_flag(name).await,
            format!("{name} is back to its default"),
        ),
    };
    changed(global, store, Subject::Flag(name), written, &what)
}
