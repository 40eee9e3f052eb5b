//! The dashboard's HTTP surface. Pages and reads are open to anyone who can reach the
//! address (127.0.0.1 by default); a change needs the launch token in `X-Tier-Token` and, for
//! a protected environment, the environment's name typed in (`confirm`). A refused change
//! changes nothing and answers a JSON `{"error": ...}`.
//!
//! - `GET /`: the matrix; `GET /env/<env>`: one environment (services, history, flags);
//!   `/env/<env>/service/<service>`, `/env/<env>/graph`, `/diff?left=&right=`,
//!   `/libraries?library=&affected=`: the detail pages (`detail.rs`), and
//!   `/api/env/<env>/service/<service>/logs`, a service's output as it comes (SSE).
//! - `GET /api/matrix`: the matrix as JSON; `GET /api/events`: its changes as server-sent
//!   events.
//! - `POST /api/env/<env>/rollback` `{"to": N, "confirm": "<env>"}`.
//! - `POST /api/env/<env>/flags/<name>` `{"value": true|false|{"percent": N}|null,
//!   "confirm": "<env>"}` (`null` drops the override).
//! - `GET /assets/ui.css`, `/assets/ui.js`: embedded in the binary.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tier_deploy::{Confirm, DeployError, Session, Workspace};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::matrix::Matrix;
use crate::page;
use crate::{Shared, detail};

const CSS: &str = include_str!("../assets/ui.css");
const JS: &str = include_str!("../assets/ui.js");

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(matrix_page))
        .route("/env/{env}", get(environment_page))
        .route("/env/{env}/graph", get(detail::graph_page))
        .route("/env/{env}/service/{service}", get(detail::service_page))
        .route(
            "/api/env/{env}/service/{service}/logs",
            get(detail::service_logs),
        )
        .route("/diff", get(detail::diff_page))
        .route("/libraries", get(detail::libraries_page))
        .route("/api/matrix", get(matrix_json))
        .route("/api/events", get(events))
        .route("/api/env/{env}/rollback", post(rollback))
        .route("/api/env/{env}/flags/{name}", post(set_flag))
        .route("/api/env/{env}/config/rollback", post(config_rollback))
        .route("/env/{env}/config", get(detail::config_page))
        .route("/assets/ui.css", get(|| async { asset("text/css", CSS) }))
        .route(
            "/assets/ui.js",
            get(|| async { asset("text/javascript", JS) }),
        )
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            known_host,
        ))
        .with_state(shared)
}

/// Answers only requests addressed to the dashboard by its own address (or `localhost`), so
/// a web page elsewhere cannot read it through a DNS name it points at 127.0.0.1.
async fn known_host(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or_default();
    // The port may be left out (some clients do); the name may not be another.
    let port = format!(":{}", shared.address.port());
    let name = host.strip_suffix(&port).unwrap_or(host);
    let ip = shared.address.ip().to_string();
    let known = name == ip
        || name == format!("[{ip}]")
        || (shared.address.ip().is_loopback() && matches!(name, "localhost" | "127.0.0.1"))
        || (!shared.address.ip().is_loopback() && host.ends_with(&port));
    if known {
        next.run(request).await
    } else {
        refusal(
            StatusCode::FORBIDDEN,
            format!("this dashboard answers at {} only", shared.address),
        )
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn matrix_page(State(shared): State<Arc<Shared>>) -> Html<Bytes> {
    let matrix = shared.matrix.borrow().clone();
    Html(
        shared
            .page
            .get(&matrix, |matrix| Bytes::from(page::matrix_page(matrix))),
    )
}

async fn matrix_json(State(shared): State<Arc<Shared>>) -> Response {
    let matrix = shared.matrix.borrow().clone();
    let body = shared.json.get(&matrix, |matrix| {
        // Sized like the page: a cell takes about 100 bytes.
        let cells = matrix.services.len() * matrix.environments.len();
        let mut json = Vec::with_capacity(4096 + cells * 128);
        // A matrix has string keys only, so this does not fail.
        match serde_json::to_writer(&mut json, matrix) {
            Ok(()) => Bytes::from(json),
            Err(error) => Bytes::from(json!({ "error": error.to_string() }).to_string()),
        }
    });
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A body rendered from the latest matrix, kept until the matrix changes. The matrix page of a
/// thousand services is megabytes: rendered once per change rather than once per request, it
/// costs no time to serve again, and the allocator does not keep a page's worth of memory per
/// request it served.
#[derive(Default)]
pub(crate) struct Rendered {
    last: Mutex<Option<(Arc<Matrix>, Bytes)>>,
}

impl Rendered {
    /// The body of `matrix`, rendered by `render` unless it was already. Requests that arrive
    /// together wait for one rendering.
    fn get(&self, matrix: &Arc<Matrix>, render: impl FnOnce(&Matrix) -> Bytes) -> Bytes {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, body)) = last.as_ref()
            && Arc::ptr_eq(seen, matrix)
        {
            return body.clone();
        }
        let body = render(matrix);
        *last = Some((Arc::clone(matrix), body.clone()));
        body
    }
}

async fn environment_page(State(shared): State<Arc<Shared>>, Path(env): Path<String>) -> Response {
    let matrix = shared.matrix.borrow().clone();
    let Some(column) = matrix.environments.iter().find(|column| column.name == env) else {
        return refusal(StatusCode::NOT_FOUND, format!("no environment `{env}`"));
    };
    let root = shared.root.clone();
    let name = env.clone();
    let history = blocking(move || {
        let mut workspace = Workspace::load(&root).map_err(|error| error.to_string())?;
        tier_deploy::history(&mut workspace, &name).map_err(|error| error.to_string())
    })
    .await
    .and_then(|history| history)
    .unwrap_or_default();
    let store = match store_environment(&shared, &env).await {
        Ok(environment) => with_store(&shared, &environment, |store| async move {
            let flags = store.client.list_flags().await;
            let keys = store.client.list("").await;
            (flags, keys)
        })
        .await
        .map_err(|why| (why.clone(), why)),
        Err(why) => Err((why.clone(), why)),
    };
    let (flags, keys) = match store {
        Ok((flags, keys)) => (
            flags.map_err(|error| error.to_string()),
            keys.map_err(|error| error.to_string()),
        ),
        Err((flags, keys)) => (Err(flags), Err(keys)),
    };
    Html(page::environment_page(
        &matrix,
        column,
        &history,
        flags.as_ref().map_err(String::as_str),
        keys.as_ref().map_err(String::as_str),
    ))
    .into_response()
}

/// Each change of the matrix as an event, from the moment the page connects.
async fn events(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = shared.updates.subscribe();
    let hello = stream::once(async { Ok(Event::default().event("hello").data("{}")) });
    let changes = stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(change) => Event::default().data(&*change),
            // A page that fell behind reloads rather than miss a change.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                Event::default().data(json!({ "reload": true }).to_string())
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    });
    let until_stop = shared.shutdown.clone().cancelled_owned();
    Sse::new(hello.chain(changes).take_until(until_stop)).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    to: u64,
    #[serde(default)]
    confirm: Option<String>,
}

async fn rollback(
    State(shared): State<Arc<Shared>>,
    Path(env): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refused) = authorised(&shared, &headers) {
        return *refused;
    }
    let request: RollbackRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, format!("not a rollback: {error}")),
    };
    let root = shared.root.clone();
    let done = blocking(move || {
        let mut workspace = Workspace::load(&root).map_err(|error| (500, error.to_string()))?;
        let mut session = Session::new(&tier_deploy::ignore_events);
        session.confirm = Confirm::named(request.confirm.as_deref());
        tier_deploy::rollback(&mut workspace, &env, request.to, &session)
            .map_err(|error| (status_of(&error), described(&error)))
    })
    .await
    .unwrap_or_else(|why| Err((500, why)));
    match done {
        Ok(applied) => {
            Json(json!({ "ok": true, "result": format!("{applied:?}") })).into_response()
        }
        Err((status, message)) => refusal(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message,
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagRequest {
    value: Value,
    #[serde(default)]
    confirm: Option<String>,
}

async fn set_flag(
    State(shared): State<Arc<Shared>>,
    Path((env, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let change = |request: FlagRequest| (request.confirm.clone(), request);
    store_change(
        &shared,
        &env,
        &headers,
        &body,
        "change flags in",
        change,
        |store, request| async move {
            match &request.value {
                Value::Null => store.client.clear_flag(&name).await,
                value => store.client.set_flag(&name, value).await.map(Some),
            }
            .map_err(|error| format!("{}: {error}", store.env))
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigRollback {
    key: String,
    to: u64,
    #[serde(default)]
    confirm: Option<String>,
}

/// Puts a config key back to its value at an earlier revision of the store.
async fn config_rollback(
    State(shared): State<Arc<Shared>>,
    Path(env): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let change = |request: ConfigRollback| (request.confirm.clone(), request);
    store_change(
        &shared,
        &env,
        &headers,
        &body,
        "roll back config in",
        change,
        |store, request| async move {
            store
                .client
                .rollback(&request.key, request.to)
                .await
                .map_err(|error| format!("{}: {error}", store.env))
        },
    )
    .await
}

/// A change to an environment's runtime config store from a page: refused without the
/// token, for a body that is not a `R`, and for a protected environment whose name the
/// request does not carry; otherwise `work` runs against the store and the answer is the
/// revision it wrote.
async fn store_change<R, F, Fut>(
    shared: &Shared,
    env: &str,
    headers: &HeaderMap,
    body: &[u8],
    action: &str,
    confirm_of: impl FnOnce(R) -> (Option<String>, R),
    work: F,
) -> Response
where
    R: serde::de::DeserializeOwned,
    F: FnOnce(tier_deploy::store::StoreAccess, R) -> Fut,
    Fut: std::future::Future<Output = Result<Option<u64>, String>>,
{
    if let Err(refused) = authorised(shared, headers) {
        return *refused;
    }
    let request: R = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                format!("cannot {action} {env}: {error}"),
            );
        }
    };
    let (confirm, request) = confirm_of(request);
    let environment = match store_environment(shared, env).await {
        Ok(environment) => environment,
        Err(why) => return refusal(StatusCode::BAD_REQUEST, why),
    };
    if let Err(error) = Confirm::named(confirm.as_deref()).check(&environment, action) {
        return refusal(StatusCode::FORBIDDEN, described(&error));
    }
    let written = with_store(shared, &environment, |store| work(store, request)).await;
    match written {
        Ok(Ok(revision)) => Json(json!({ "ok": true, "revision": revision })).into_response(),
        Ok(Err(why)) | Err(why) => refusal(StatusCode::BAD_GATEWAY, why),
    }
}

/// The environment resolved, for its store: refused when it is abstract.
pub(crate) async fn store_environment(
    shared: &Shared,
    env: &str,
) -> Result<tier_model::Environment, String> {
    let root = shared.root.clone();
    let name = env.to_owned();
    blocking(move || {
        let mut workspace = Workspace::load(&root).map_err(|error| error.to_string())?;
        let resolved = workspace
            .resolve(&name, &[])
            .map_err(|error| error.to_string())?;
        resolved
            .deployable(tier_model::Purpose::Store)
            .map_err(|error| error.to_string())?;
        Ok(resolved.environment)
    })
    .await?
}

/// Runs `work` against the environment's runtime config store (its agent's, or its store file
/// served for the length of the call).
pub(crate) async fn with_store<F, Fut, T>(
    shared: &Shared,
    environment: &tier_model::Environment,
    work: F,
) -> Result<T, String>
where
    F: FnOnce(tier_deploy::store::StoreAccess) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let shutdown = CancellationToken::new();
    let named = tier_deploy::store::Named::default();
    let store = tier_deploy::store::locate(&shared.root, environment, &named, &shutdown)
        .await
        .map_err(|error| error.to_string())?;
    let answer = work(store).await;
    shutdown.cancel();
    Ok(answer)
}

/// A change without the launch token is refused.
fn authorised(shared: &Shared, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let given = headers
        .get("x-tier-token")
        .and_then(|value| value.to_str().ok());
    if given.is_some_and(|given| same(given.as_bytes(), shared.token.as_bytes())) {
        Ok(())
    } else {
        Err(Box::new(refusal(
            StatusCode::FORBIDDEN,
            "a change needs the token `tier ui` printed: open the URL it printed".to_owned(),
        )))
    }
}

/// Compares in time that does not depend on where the two differ.
fn same(given: &[u8], token: &[u8]) -> bool {
    given.len() == token.len()
        && given
            .iter()
            .zip(token)
            .fold(0_u8, |differs, (a, b)| differs | (a ^ b))
            == 0
}

pub(crate) fn refusal(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn status_of(error: &DeployError) -> u16 {
    match error {
        DeployError::Protected { .. } => 403,
        DeployError::Locked { .. } => 409,
        error if error.is_usage() => 400,
        _ => 500,
    }
}

/// An engine error as the page shows it: the next step in the page's words.
fn described(error: &DeployError) -> String {
    if let DeployError::Protected { env, .. } = error {
        return format!("{env} is protected; nothing was changed: type its name to confirm");
    }
    match error.hint() {
        Some(hint) => format!("{error} ({hint})"),
        None => error.to_string(),
    }
}

/// Runs blocking engine work on a thread of its own: the engine makes its own runtimes, which
/// cannot start inside this one.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (send, receive) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("tier-ui-work".to_owned())
        .spawn(move || {
            let _ = send.send(work());
        })
        .map_err(|error| format!("cannot start a thread: {error}"))?;
    receive
        .await
        .map_err(|_| "the work stopped before it answered".to_owned())
}
