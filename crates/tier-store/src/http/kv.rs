//! `/v1/kv`: read, list, write, delete, history and rollback of user keys.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::audit::{self, Change};
use super::error::ApiError;
use super::request::{self, Caller, JsonBody};
use super::watch::wait_for_change;
use super::{Api, RESERVED_PREFIX, index_header, kv_json};
use crate::backend::Backend;
use crate::types::{LeaseId, Revision, Selector};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct KvQuery {
    prefix: Option<String>,
    index: Option<String>,
    wait: Option<String>,
    history: Option<String>,
}

/// `PUT /v1/kv/<key>`. `lease` and `if_mod_revision` are checked by hand so that a wrong type
/// gets a precise error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutBody {
    value: Value,
    #[serde(default)]
    lease: Option<Value>,
    #[serde(default)]
    if_mod_revision: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollbackBody {
    to: Value,
}

/// `GET /v1/kv?prefix=P[&index=N&wait=30s]`
pub(crate) async fn list<B: Backend>(
    _caller: Caller,
    State(api): State<Arc<Api<B>>>,
    query: Result<Query<KvQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = query_of(query)?;
    let prefix = request::user_prefix(query.prefix.as_deref().unwrap_or(""))?;
    if let Some(index) = &query.index {
        let index = request::revision("index", index)?;
        let wait = request::wait(query.wait.as_deref())?;
        wait_for_change(&api, Selector::Prefix(prefix.to_owned()), true, index, wait).await?;
    }
    let range = api.store.range(prefix).await?;
    let kvs: Vec<Value> = range
        .kvs
        .iter()
        .filter(|kv| !kv.key.starts_with(RESERVED_PREFIX))
        .map(kv_json)
        .collect();
    let body = json!({ "revision": range.revision.0, "kvs": kvs });
    Ok((index_header(range.revision), Json(body)).into_response())
}

/// `GET /v1/kv/<key>[?index=N&wait=30s | ?history]`
pub(crate) async fn get<B: Backend>(
    _caller: Caller,
    State(api): State<Arc<Api<B>>>,
    key: Result<Path<String>, PathRejection>,
    query: Result<Query<KvQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let key = path_of(key)?;
    let key = request::user_key(&key)?;
    let query = query_of(query)?;
    if query.history.is_some() {
        let records = audit::history(&api, key).await?;
        let (revision, _) = api.store.revisions().await?;
        let body = json!({ "key": key, "revision": revision.0, "history": records });
        return Ok((index_header(revision), Json(body)).into_response());
    }
    if let Some(index) = &query.index {
        let index = request::revision("index", index)?;
        let wait = request::wait(query.wait.as_deref())?;
        wait_for_change(&api, Selector::Key(key.to_owned()), false, index, wait).await?;
    }
    // Read the revision first: a change in between makes the next long-poll return early
    // rather than miss it.
    let (before, _) = api.store.revisions().await?;
    match api.store.get(key).await? {
        Some(kv) => Ok((index_header(kv.mod_revision), Json(kv_json(&kv))).into_response()),
        None => Ok((
            index_header(before),
            audit::key_not_found(key).with("revision", before.0),
        )
            .into_response()),
    }
}

/// `PUT /v1/kv/<key>` with `{"value": <json>, "lease": id?, "if_mod_revision": rev?}`
pub(crate) async fn put<B: Backend>(
    caller: Caller,
    State(api): State<Arc<Api<B>>>,
    key: Result<Path<String>, PathRejection>,
    body: Result<JsonBody<PutBody>, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let JsonBody(body) = body?;
    let key = path_of(key)?;
    let key = request::user_key(&key)?;
    let lease = match body.lease {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => Some(LeaseId(number.as_i64().ok_or_else(bad_lease)?)),
        Some(_) => return Err(bad_lease()),
    };
    let expected = match body.if_mod_revision {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => {
            Some(Revision(number.as_u64().ok_or_else(bad_if_mod_revision)?))
        }
        Some(_) => return Err(bad_if_mod_revision()),
    };
    let value = serde_json::to_vec(&body.value).map_err(|error| ApiError::internal(&error))?;
    let change = match (expected, lease) {
        (None, lease) => Change::Put { value, lease },
        (Some(expected), None) => Change::PutIf { value, expected },
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "unsupported",
                "a conditional put keeps the key's lease; send lease and if_mod_revision in \
                 separate requests",
            ));
        }
    };
    let revision = audit::change(&api, &caller, key, change, None).await?;
    Ok(written(key, Some(revision)))
}

/// `DELETE /v1/kv/<key>`
pub(crate) async fn delete<B: Backend>(
    caller: Caller,
    State(api): State<Arc<Api<B>>>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let key = path_of(key)?;
    let key = request::user_key(&key)?;
    let revision = audit::change(&api, &caller, key, Change::Delete, None).await?;
    Ok(written(key, Some(revision)))
}

/// `POST /v1/kv/<key>/rollback` with `{"to": REV}`: writes the value the key had at `REV`
/// (or deletes it, if it did not exist then), as a new, audited change.
pub(crate) async fn rollback<B: Backend>(
    caller: Caller,
    State(api): State<Arc<Api<B>>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<JsonBody<RollbackBody>, ApiError>,
) -> Result<Response, ApiError> {
    let path = path_of(path)?;
    let Some(key) = path.strip_suffix("/rollback") else {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "POST on a key is only /v1/kv/<key>/rollback",
        ));
    };
    caller.require_write()?;
    let JsonBody(body) = body?;
    let key = request::user_key(key)?;
    let to = match &body.to {
        Value::Number(number) => number.as_u64().filter(|to| *to > 0).map(Revision),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::bad_request("bad_revision", "to must be a revision number (1 or more)")
    })?;
    let (current, _) = api.store.revisions().await?;
    if to > current {
        return Err(ApiError::bad_request(
            "future_revision",
            format!("revision {to} is in the future; the current revision is {current}"),
        )
        .with("revision", current.0));
    }
    let records = audit::history(&api, key).await?;
    let Some(target) = audit::value_at(&records, to) else {
        return Err(ApiError::not_found(
            "no_history",
            format!("no recorded change of {key:?} tells what it held at revision {to}"),
        ));
    };
    let change = match target {
        Some(value) => Change::Put {
            value: serde_json::to_vec(&value).map_err(|error| ApiError::internal(&error))?,
            lease: None,
        },
        None if api.store.get(key).await?.is_some() => Change::Delete,
        // It did not exist then and does not now: nothing to do.
        None => return Ok(written(key, None)),
    };
    let revision = audit::change(&api, &caller, key, change, Some(to)).await?;
    Ok(written(key, Some(revision)))
}

fn written(key: &str, revision: Option<Revision>) -> Response {
    let body = json!({ "key": key, "revision": revision.map(|revision| revision.0) });
    match revision {
        Some(revision) => (index_header(revision), Json(body)).into_response(),
        None => Json(body).into_response(),
    }
}

fn bad_lease() -> ApiError {
    ApiError::bad_request("bad_lease", "lease must be a lease id from POST /v1/leases")
}

fn bad_if_mod_revision() -> ApiError {
    ApiError::bad_request(
        "bad_revision",
        "if_mod_revision must be a revision number (0: only if the key does not exist)",
    )
}

pub(crate) fn path_of(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(path)| path)
        .map_err(|rejection| ApiError::bad_request("bad_path", rejection.body_text()))
}

pub(crate) fn query_of<T: Default>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(query)| query)
        .map_err(|rejection| ApiError::bad_request("bad_query", rejection.body_text()))
}
