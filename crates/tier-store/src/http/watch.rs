//! `GET /v1/watch` as server-sent events, and the wait behind every long-poll.
//!
//! Key and prefix watches send one event per change (`put` or `delete`) with the change's
//! revision as the SSE id, so a client that reconnects with `Last-Event-ID` continues after
//! the last event it saw, none missed or repeated. Service and flag watches send a snapshot
//! (the whole endpoint list, the whole flag map) first and again after every change.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt, stream};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::kv::query_of;
use super::request::{self, Caller};
use super::{Api, FLAGS_PREFIX, RESERVED_PREFIX, flags, kv_json, registry};
use crate::backend::{Backend, WatchStream};
use crate::error::StoreError;
use crate::types::{Event, Revision, Selector};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct WatchQuery {
    key: Option<String>,
    prefix: Option<String>,
    service: Option<String>,
    flags: Option<String>,
    from: Option<String>,
}

/// What a watch follows.
enum Target {
    Keys(Selector),
    Service(String),
    Flags,
}

/// `GET /v1/watch?key=K|prefix=P|service=S|flags [&from=REV]`, `Last-Event-ID: REV`
pub(crate) async fn watch<B: Backend>(
    _caller: Caller,
    State(api): State<Arc<Api<B>>>,
    headers: HeaderMap,
    query: Result<Query<WatchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = query_of(query)?;
    let target = match (&query.key, &query.prefix, &query.service, &query.flags) {
        (Some(key), None, None, None) => {
            Target::Keys(Selector::Key(request::user_key(key)?.to_owned()))
        }
        (None, Some(prefix), None, None) => {
            Target::Keys(Selector::Prefix(request::user_prefix(prefix)?.to_owned()))
        }
        (None, None, Some(service), None) => {
            Target::Service(registry::check_name("service", service)?.to_owned())
        }
        (None, None, None, Some(_)) => Target::Flags,
        _ => {
            return Err(ApiError::bad_request(
                "bad_watch",
                "give exactly one of key=, prefix=, service= or flags",
            ));
        }
    };
    let from = match headers.get("last-event-id") {
        Some(last) => {
            let last = last.to_str().unwrap_or("");
            request::revision("Last-Event-ID", last)?.next()
        }
        None => match &query.from {
            Some(from) => request::revision("from", from)?,
            None => Revision(0),
        },
    };
    let shutdown = api.shutdown.clone();
    let events = match target {
        Target::Keys(selector) => {
            let skip_reserved = matches!(selector, Selector::Prefix(_));
            let changes = api.store.watch(selector, from).await?;
            key_events(changes, skip_reserved).boxed()
        }
        Target::Service(service) => {
            let prefix = registry::prefix(&service);
            snapshots(api.clone(), prefix, move |_, entries, revision| {
                registry::snapshot_json(&service, entries, revision)
            })
            .await?
            .boxed()
        }
        Target::Flags => snapshots(
            api.clone(),
            FLAGS_PREFIX.to_owned(),
            |api, entries, revision| flags::snapshot_json(api, entries, revision),
        )
        .await?
        .boxed(),
    };
    let events = events.take_until(shutdown.cancelled_owned());
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Returns when something `selector` covers changes after `index`, the wait is over, or the
/// server stops. Changes to reserved keys count only when `include_reserved` says so.
pub(crate) async fn wait_for_change<B: Backend>(
    api: &Api<B>,
    selector: Selector,
    skip_reserved: bool,
    index: Revision,
    wait: Duration,
) -> Result<(), ApiError> {
    let mut changes = match api.store.watch(selector.clone(), index.next()).await {
        Ok(changes) => changes,
        // Everything retained is newer than `index`: any of it is a change.
        Err(StoreError::Compacted { compacted, .. }) => {
            api.store.watch(selector, compacted).await?
        }
        Err(error) => return Err(error.into()),
    };
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => return Ok(()),
            () = api.shutdown.cancelled() => return Ok(()),
            change = changes.next() => match change {
                Some(Ok(event)) if skip_reserved && event.key().starts_with(RESERVED_PREFIX) => {}
                // A change, the end of the watch, or history compacted under it: the caller
                // answers with what is there now.
                _ => return Ok(()),
            },
        }
    }
}

fn key_events(
    changes: WatchStream,
    skip_reserved: bool,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send {
    stream::unfold(Some(changes), move |changes| async move {
        let mut changes = changes?;
        loop {
            match changes.next().await? {
                Ok(event) if skip_reserved && event.key().starts_with(RESERVED_PREFIX) => {}
                Ok(Event::Put(kv)) => {
                    let event = sse("put", kv.mod_revision, &kv_json(&kv));
                    return Some((Ok(event), Some(changes)));
                }
                Ok(Event::Delete { key, revision }) => {
                    let body = json!({ "key": key, "revision": revision.0 });
                    return Some((Ok(sse("delete", revision, &body)), Some(changes)));
                }
                Err(error) => return Some((Ok(error_event(error)), None)),
            }
        }
    })
}

/// A snapshot of the keys under `prefix` now, then one after each change, each rendered by
/// `render` from the keys' values.
async fn snapshots<B: Backend>(
    api: Arc<Api<B>>,
    prefix: String,
    render: impl Fn(&Api<B>, &BTreeMap<String, Vec<u8>>, Revision) -> (&'static str, Value)
    + Send
    + 'static,
) -> Result<impl Stream<Item = Result<SseEvent, Infallible>> + Send, ApiError> {
    let range = api.store.range(&prefix).await?;
    let entries: BTreeMap<String, Vec<u8>> =
        range.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    let changes = api
        .store
        .watch(Selector::Prefix(prefix), range.revision.next())
        .await?;
    let (name, first) = render(&api, &entries, range.revision);
    let first = sse(name, range.revision, &first);
    let state = Some((changes, entries, api, render));
    let rest = stream::unfold(state, |state| async move {
        let (mut changes, mut entries, api, render) = state?;
        let revision = match changes.next().await? {
            Ok(Event::Put(kv)) => {
                let revision = kv.mod_revision;
                entries.insert(kv.key, kv.value);
                revision
            }
            Ok(Event::Delete { key, revision }) => {
                entries.remove(&key);
                revision
            }
            Err(error) => return Some((Ok(error_event(error)), None)),
        };
        let (name, body) = render(&api, &entries, revision);
        let event = sse(name, revision, &body);
        Some((Ok(event), Some((changes, entries, api, render))))
    });
    Ok(stream::once(async move { Ok(first) }).chain(rest))
}

fn sse(name: &'static str, revision: Revision, body: &Value) -> SseEvent {
    // Serialised JSON has no raw newlines, which SSE data lines must not contain.
    SseEvent::default()
        .event(name)
        .id(revision.0.to_string())
        .data(body.to_string())
}

/// The last event of a watch that cannot go on (its history was compacted); the client
/// starts again from a fresh read.
fn error_event(error: StoreError) -> SseEvent {
    let error = ApiError::from(error);
    let mut body = error.details;
    body.insert("error".into(), Value::from(error.code));
    body.insert("message".into(), Value::from(error.message));
    SseEvent::default()
        .event("error")
        .data(Value::Object(body).to_string())
}
