//! `/v1/leases`: grant, keep alive and revoke. Keys written with a lease disappear when it
//! expires or is revoked.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Api;
use super::error::ApiError;
use super::kv::path_of;
use super::request::{Caller, JsonBody};
use crate::backend::{Backend, MAX_LEASE_TTL};
use crate::types::{Lease, LeaseId};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantBody {
    /// Seconds.
    ttl: Value,
}

/// `POST /v1/leases` with `{"ttl": seconds}` → 201 `{"id", "ttl"}`
pub(crate) async fn grant<B: Backend>(
    caller: Caller,
    State(api): State<Arc<Api<B>>>,
    body: Result<JsonBody<GrantBody>, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let JsonBody(body) = body?;
    let ttl = body
        .ttl
        .as_u64()
        .filter(|ttl| (1..=MAX_LEASE_TTL.as_secs()).contains(ttl))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_ttl",
                format!(
                    "ttl must be a whole number of seconds from 1 to {}",
                    MAX_LEASE_TTL.as_secs()
                ),
            )
        })?;
    let lease = api.store.grant(Duration::from_secs(ttl)).await?;
    Ok((StatusCode::CREATED, lease_json(lease)).into_response())
}

/// `POST /v1/leases/<id>/keepalive`
pub(crate) async fn keep_alive<B: Backend>(
    caller: Caller,
    State(api): State<Arc<Api<B>>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let id = lease_id(&path_of(id)?)?;
    let lease = api.store.keep_alive(id).await?;
    Ok(lease_json(lease).into_response())
}

/// `DELETE /v1/leases/<id>`
pub(crate) async fn revoke<B: Backend>(
    caller: Caller,
    State(api): State<Arc<Api<B>>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let id = lease_id(&path_of(id)?)?;
    api.store.revoke(id).await?;
    Ok(Json(json!({ "id": id.0 })).into_response())
}

fn lease_id(text: &str) -> Result<LeaseId, ApiError> {
    text.parse().map(LeaseId).map_err(|_| {
        ApiError::bad_request(
            "bad_lease",
            format!("{text:?} is not a lease id (a number from POST /v1/leases)"),
        )
    })
}

fn lease_json(lease: Lease) -> Json<Value> {
    Json(json!({ "id": lease.id.0, "ttl": lease.ttl.as_secs() }))
}
