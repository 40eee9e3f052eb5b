//! The handlers of the detail pages (`views.rs` draws them): a service in an environment and
//! its live output, the diff of two environments, an environment's graph, and a library's
//! versions across the environments. Each resolves what it shows when asked, on a thread of
//! its own; nothing here changes anything.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use tier_deploy::Workspace;
use tier_state::paths::EnvDir;

use crate::Shared;
use crate::routes::{blocking, refusal};
use crate::views::{self, Deployment, Value};

/// How many of a service's latest output lines its page shows before the live tail.
const RECENT_LINES: usize = 200;

pub(crate) async fn service_page(
    State(shared): State<Arc<Shared>>,
    Path((env, service)): Path<(String, String)>,
) -> Response {
    let matrix = shared.matrix.borrow().clone();
    let Some(column) = matrix.environments.iter().find(|column| column.name == env) else {
        return refusal(StatusCode::NOT_FOUND, format!("no environment `{env}`"));
    };
    if !matrix.services.contains(&service) {
        return refusal(StatusCode::NOT_FOUND, format!("no service `{service}`"));
    }
    let root = shared.root.clone();
    let (name, wanted) = (env.clone(), service.clone());
    let read = blocking(move || {
        let status = tier_deploy::local::status(&root, &name)
            .ok()
            .and_then(|status| {
                status
                    .services
                    .into_iter()
                    .find(|found| found.name == wanted)
            });
        let resolved = Workspace::load(&root).ok().and_then(|mut workspace| {
            let resolved = workspace.resolve(&name, &[]).ok()?;
            Some((workspace, resolved))
        });
        let on_kubernetes = resolved.as_ref().is_some_and(|(_, resolved)| {
            resolved.environment.runtime == tier_model::environment::Runtime::Kubernetes
        });
        let mut logs = match &resolved {
            Some((_, resolved)) if on_kubernetes => pod_lines(&resolved.environment, &wanted),
            _ => tier_local::logs::read_all(&EnvDir::new(&root, &name).logs(), Some(&wanted)),
        };
        let keep = logs.len().saturating_sub(RECENT_LINES);
        logs.drain(..keep);
        let values = resolved
            .map(|(workspace, resolved)| resolved_values(&workspace, &resolved, &wanted))
            .unwrap_or_default();
        (status, logs, values)
    })
    .await;
    let Ok((status, logs, values)) = read else {
        return refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not read the service".to_owned(),
        );
    };
    Html(views::service_page(
        &matrix,
        column,
        &service,
        status.as_ref(),
        &logs,
        &values,
    ))
    .into_response()
}

/// Every resolved value of one service, with where it came from (`tier explain` of each).
fn resolved_values(
    workspace: &Workspace,
    resolved: &tier_model::Resolved,
    service: &str,
) -> Vec<Value> {
    let prefix = format!("services.{service}.");
    resolved
        .explain_under(&prefix)
        .into_iter()
        .map(|explanation| Value {
            path: explanation.path[prefix.len()..].to_owned(),
            value: serde_json::to_string(&explanation.value).unwrap_or_default(),
            origin: explanation.origin.describe(&workspace.project().sources),
        })
        .collect()
}

/// A kubernetes service's recent output, from its pods through the API server; a cluster out
/// of reach gives one line that says so.
fn pod_lines(environment: &tier_model::Environment, service: &str) -> Vec<tier_local::logs::Line> {
    let line = |source: String, text: String| tier_local::logs::Line {
        millis: 0,
        source,
        text,
    };
    match tier_deploy::kube::KubeLogs::open(environment, Some(service)).and_then(|logs| {
        logs.lines()
            .map_err(|message| tier_deploy::DeployError::Refused {
                message,
                hint: None,
            })
    }) {
        Ok(lines) => lines
            .into_iter()
            .map(|pod| line(pod.pod, pod.text))
            .collect(),
        Err(error) => vec![line("tier".to_owned(), error.to_string())],
    }
}

/// A service's output as it is written, one event per line, for as long as the page follows.
pub(crate) async fn service_logs(
    State(shared): State<Arc<Shared>>,
    Path((env, service)): Path<(String, String)>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (send, receive) = tokio::sync::mpsc::channel::<String>(256);
    let dir = EnvDir::new(&shared.root, &env).logs();
    // The follower stops once the page is gone: nothing receives what it sends.
    let _ = std::thread::Builder::new()
        .name("tier-ui-logs".to_owned())
        .spawn(move || {
            let closed = send.clone();
            tier_local::logs::follow(
                &dir,
                Some(&service),
                |line| {
                    let _ = send.blocking_send(format!("{} | {}", line.source, line.text));
                },
                || !closed.is_closed(),
            );
        });
    let lines = stream::unfold(receive, |mut receive| async move {
        let line = receive.recv().await?;
        Some((Ok(Event::default().data(line)), receive))
    });
    let until_stop = shared.shutdown.clone().cancelled_owned();
    Sse::new(lines.take_until(until_stop)).keep_alive(KeepAlive::default())
}

pub(crate) async fn graph_page(
    State(shared): State<Arc<Shared>>,
    Path(env): Path<String>,
) -> Response {
    let matrix = shared.matrix.borrow().clone();
    let Some(column) = matrix.environments.iter().find(|column| column.name == env) else {
        return refusal(StatusCode::NOT_FOUND, format!("no environment `{env}`"));
    };
    let root = shared.root.clone();
    let name = env.clone();
    let svg = blocking(move || {
        let mut workspace = Workspace::load(&root).map_err(|error| error.to_string())?;
        let resolved = workspace
            .resolve(&name, &[])
            .map_err(|error| error.to_string())?;
        Ok::<_, String>(tier_model::Graph::of(&resolved.environment).to_svg())
    })
    .await
    .and_then(|svg| svg);
    Html(views::graph_page(
        &matrix,
        column,
        svg.as_deref().map_err(String::as_str),
    ))
    .into_response()
}

pub(crate) async fn diff_page(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let matrix = shared.matrix.borrow().clone();
    let pick = |key: &str, at: usize| {
        query
            .get(key)
            .cloned()
            .or_else(|| {
                matrix
                    .environments
                    .get(at)
                    .map(|column| column.name.clone())
            })
            .unwrap_or_default()
    };
    let (left, right) = (pick("left", 0), pick("right", 1));
    let root = shared.root.clone();
    let (l, r) = (left.clone(), right.clone());
    let differences = blocking(move || {
        let mut workspace = Workspace::load(&root).map_err(|error| error.to_string())?;
        let left = workspace
            .resolve(&l, &[])
            .map_err(|error| error.to_string())?;
        let right = workspace
            .resolve(&r, &[])
            .map_err(|error| error.to_string())?;
        Ok::<_, String>(tier_model::diff::diff(
            &left,
            &right,
            &workspace.project().sources,
        ))
    })
    .await
    .and_then(|differences| differences);
    let shown = differences.as_deref().map_err(String::as_str);
    Html(views::diff_page(&matrix, &left, &right, shown)).into_response()
}

pub(crate) async fn libraries_page(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let matrix = shared.matrix.borrow().clone();
    let library = query.get("library").cloned().unwrap_or_default();
    let affected = query.get("affected").cloned().unwrap_or_default();
    let root = shared.root.clone();
    let (wanted, range) = (library.clone(), affected.clone());
    let found = blocking(move || {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let range = match range.trim() {
            "" => None,
            text => Some(tier_deps::AffectedRange::parse(text).map_err(|error| error.to_string())?),
        };
        let mut workspace = Workspace::load(&root).map_err(|error| error.to_string())?;
        let sources = tier_deploy::deps::Sources::of(workspace.project(), &root);
        let package = sources.package_of(&wanted);
        let (deployed, _) =
            tier_deploy::deps::deployed_versions(&mut workspace, &package, range.as_ref(), None)
                .map_err(|error| error.to_string())?;
        let rows = deployed
            .into_iter()
            .flat_map(|environment| {
                let (name, revision) = (environment.environment, environment.revision);
                environment
                    .services
                    .into_iter()
                    .flat_map(move |(service, versions)| {
                        let name = name.clone();
                        versions.into_iter().map(move |used| Deployment {
                            environment: name.clone(),
                            revision,
                            service: service.clone(),
                            version: used.version,
                            affected: used.affected,
                        })
                    })
            })
            .collect::<Vec<_>>();
        Ok::<_, String>(rows)
    })
    .await
    .and_then(|rows| rows);
    let shown = found.as_deref().map_err(String::as_str);
    Html(views::libraries_page(&matrix, &library, &affected, shown)).into_response()
}

/// One config key of an environment's store: every change with who made it and when, and a
/// rollback to each earlier value.
pub(crate) async fn config_page(
    State(shared): State<Arc<Shared>>,
    Path(env): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let matrix = shared.matrix.borrow().clone();
    let Some(column) = matrix.environments.iter().find(|column| column.name == env) else {
        return refusal(StatusCode::NOT_FOUND, format!("no environment `{env}`"));
    };
    let Some(key) = query.get("key").filter(|key| !key.is_empty()).cloned() else {
        return refusal(StatusCode::BAD_REQUEST, "name a key: ?key=".to_owned());
    };
    let history = match crate::routes::store_environment(&shared, &env).await {
        Ok(environment) => {
            let wanted = key.clone();
            crate::routes::with_store(&shared, &environment, |store| async move {
                store
                    .client
                    .history(&wanted)
                    .await
                    .map_err(|error| error.to_string())
            })
            .await
            .and_then(|history| history)
        }
        Err(why) => Err(why),
    };
    let shown = history.as_ref().map_err(String::as_str);
    Html(views::config_page(&matrix, column, &key, shown)).into_response()
}
