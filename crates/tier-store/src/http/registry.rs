//! Service discovery: each ready replica's address under `_tier/services/<service>/<replica>`,
//! bound to a lease its registrar keeps alive, so a replica whose agent dies disappears when
//! the lease runs out.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::ApiError;
use super::kv::{path_of, query_of};
use super::request::{self, Caller};
use super::watch::wait_for_change;
use super::{Api, SERVICES_PREFIX, index_header};
use crate::backend::Backend;
use crate::error::StoreError;
use crate::types::{LeaseId, Revision, Selector};

/// One live replica of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub replica: String,
    /// `host:port`.
    pub address: String,
}

/// Registers and deregisters replicas in a store; what the agent calls.
#[derive(Clone, Debug)]
pub struct Registry<B> {
    store: Arc<B>,
}

impl<B: Backend> Registry<B> {
    pub fn new(store: Arc<B>) -> Registry<B> {
        Registry { store }
    }

    /// Publishes `replica` of `service` at `address` until `lease` ends or
    /// [`Registry::deregister`]; returns the key it wrote. Registering again replaces the
    /// address and the lease.
    pub async fn register(
        &self,
        service: &str,
        replica: &str,
        address: &str,
        lease: LeaseId,
    ) -> Result<String, StoreError> {
        let key = key(service, replica)?;
        let endpoint = Endpoint {
            replica: replica.to_owned(),
            address: address.to_owned(),
        };
        let value = serde_json::to_vec(&endpoint)
            .map_err(|error| StoreError::Task(format!("encoding an endpoint: {error}")))?;
        self.store.put(&key, value, Some(lease)).await?;
        Ok(key)
    }

    /// Withdraws a replica; `false` when it was not registered.
    pub async fn deregister(&self, service: &str, replica: &str) -> Result<bool, StoreError> {
        Ok(self.store.delete(&key(service, replica)?).await?.is_some())
    }

    /// The live endpoints of `service`, in replica order, and the revision they were read at.
    pub async fn endpoints(&self, service: &str) -> Result<(Revision, Vec<Endpoint>), StoreError> {
        if !valid_name(service) {
            return Err(StoreError::InvalidKey(NAME_RULE));
        }
        let range = self.store.range(&prefix(service)).await?;
        let endpoints = range
            .kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect();
        Ok((range.revision, endpoints))
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ServiceQuery {
    index: Option<String>,
    wait: Option<String>,
}

/// `GET /v1/services/<name>[?index=N&wait=30s]`
pub(crate) async fn get<B: Backend>(
    _caller: Caller,
    State(api): State<Arc<Api<B>>>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<ServiceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let name = path_of(name)?;
    let name = check_name("service", &name)?;
    let query = query_of(query)?;
    if let Some(index) = &query.index {
        let index = request::revision("index", index)?;
        let wait = request::wait(query.wait.as_deref())?;
        wait_for_change(&api, Selector::Prefix(prefix(name)), false, index, wait).await?;
    }
    let (revision, endpoints) = Registry::new(api.store.clone()).endpoints(name).await?;
    let body = json!({ "service": name, "revision": revision.0, "endpoints": endpoints });
    Ok((index_header(revision), Json(body)).into_response())
}

/// The event a service watch sends: every endpoint after a change.
pub(crate) fn snapshot_json(
    service: &str,
    entries: &BTreeMap<String, Vec<u8>>,
    revision: Revision,
) -> (&'static str, Value) {
    let endpoints: Vec<Endpoint> = entries
        .values()
        .filter_map(|value| serde_json::from_slice(value).ok())
        .collect();
    (
        "endpoints",
        json!({ "service": service, "revision": revision.0, "endpoints": endpoints }),
    )
}

pub(crate) fn prefix(service: &str) -> String {
    format!("{SERVICES_PREFIX}{service}/")
}

pub(crate) fn check_name<'a>(what: &str, name: &'a str) -> Result<&'a str, ApiError> {
    if valid_name(name) {
        Ok(name)
    } else {
        Err(ApiError::bad_request(
            "invalid_name",
            format!("{what} {name:?}: {NAME_RULE}"),
        ))
    }
}

const NAME_RULE: &str = "a service or replica name is 1 to 253 letters, digits, '.', '_' and '-'";

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

fn key(service: &str, replica: &str) -> Result<String, StoreError> {
    if valid_name(service) && valid_name(replica) {
        Ok(format!("{}{replica}", prefix(service)))
    } else {
        Err(StoreError::InvalidKey(NAME_RULE))
    }
}
