//! Feature flags: defaults declared in the project (`[flags.<name>]`, passed in by the agent)
//! and run-time overrides stored under `_tier/flags/<name>`. An override wins over the
//! default until it is deleted.
//!
//! A flag's value is `true`/`false`, a percentage rollout `{"percent": 0..=100}`, or another
//! scalar (a string or number) for the service to interpret. A rollout is on for a caller key
//! (a user id, say) when `tier_client::rollout_bucket` of the flag and key is below the
//! percentage. The evaluation is `tier_client`'s, the one definition every service and the
//! CLI use too, so they agree on who is in, and raising the percentage only adds keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tier_client::{flag_enabled, rollout_percent};

use super::audit::{self, Change};
use super::error::ApiError;
use super::kv::{path_of, query_of};
use super::request::{self, Caller, JsonBody};
use super::watch::wait_for_change;
use super::{Api, FLAGS_PREFIX, decode_value, index_header};
use crate::backend::Backend;
use crate::types::{Revision, Selector};

/// A declared flag: its value unless overridden, and what it guards.
#[derive(Clone, Debug, PartialEq)]
pub struct FlagDefault {
    pub value: Value,
    pub description: Option<String>,
}

impl FlagDefault {
    /// Declared flags as `tier store serve --flags` takes them: a JSON object of flag name to
    /// `{"default": …, "description": …}`.
    pub fn parse_map(text: &str) -> Result<BTreeMap<String, FlagDefault>, String> {
        #[derive(Deserialize)]
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
                let flag = FlagDefault {
                    value: flag.default,
                    description: flag.description,
                };
                (name, flag)
            })
            .collect())
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FlagQuery {
    key: Option<String>,
    index: Option<String>,
    wait: Option<String>,
    history: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlagBody {
    value: Value,
}

/// `GET /v1/flags[?index=N&wait=30s]`: every declared flag with its effective value.
pub(crate) async fn list<B: Backend>(
    _caller: Caller,
    State(api): State<Arc<Api<B>>>,
    query: Result<Query<FlagQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = query_of(query)?;
    if let Some(index) = &query.index {
        let index = request::revision("index", index)?;
        let wait = request::wait(query.wait.as_deref())?;
        let flags = Selector::Prefix(FLAGS_PREFIX.to_owned());
        wait_for_change(&api, flags, false, index, wait).await?;
    }
    let range = api.store.range(FLAGS_PREFIX).await?;
    let entries = range.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    let (_, body) = snapshot_json(&api, &entries, range.revision);
    Ok((index_header(range.revision), Json(body)).into_response())
}

/// `GET /v1/flags/<name>[?key=K | ?history]`
pub(crate) async fn get<B: Backend>(
    _caller: Caller,
    State(api): State<Arc<Api<B>>>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<FlagQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let name = path_of(name)?;
    let query = query_of(query)?;
    let default = declared(&api, &name)?;
    let key = format!("{FLAGS_PREFIX}{name}");
    if query.history.is_some() {
        let records = audit::history(&api, &key).await?;
        let (revision, _) = api.store.revisions().await?;
        let body = json!({ "name": name, "revision": revision.0, "history": records });
        return Ok((index_header(revision), Json(body)).into_response());
    }
    if let Some(index) = &query.index {
        let index = request::revision("index", index)?;
        let wait = request::wait(query.wait.as_deref())?;
        wait_for_change(&api, Selector::Key(key.clone()), false, index, wait).await?;
    }
    let (before, _) = api.store.revisions().await?;
    let stored = api.store.get(&key).await?;
    let index = stored.as_ref().map_or(before, |kv| kv.mod_revision);
    let overridden = stored.map(|kv| decode_value(&kv.value));
    let mut body = flag_json(&name, default, overridden, query.key.as_deref());
    if let Value::Object(object) = &mut body {
        object.insert("name".into(), Value::from(name));
        object.insert("revision".into(), Value::from(index.0));
    }
    Ok((index_header(index), Json(body)).into_response())
}

/// `PUT /v1/flags/<name>` with `{"value": true | false | {"percent": 25} | <scalar>}`
pub(crate) async fn put<B: Backend>(
    caller: Caller,
    State(api): State<Arc<Api<B>>>,
    name: Result<Path<String>, PathRejection>,
    body: Result<JsonBody<FlagBody>, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let JsonBody(body) = body?;
    let name = path_of(name)?;
    declared(&api, &name)?;
    let valid = match &body.value {
        Value::Bool(_) | Value::String(_) | Value::Number(_) => true,
        Value::Object(_) => rollout_percent(&body.value).is_some(),
        Value::Null | Value::Array(_) => false,
    };
    if !valid {
        return Err(ApiError::bad_request(
            "invalid_flag_value",
            "a flag's value is true, false, {\"percent\": 0 to 100}, a string or a number",
        ));
    }
    let value = serde_json::to_vec(&body.value).map_err(|error| ApiError::internal(&error))?;
    let key = format!("{FLAGS_PREFIX}{name}");
    let change = Change::Put { value, lease: None };
    let revision = audit::change(&api, &caller, &key, change, None).await?;
    Ok((
        index_header(revision),
        Json(json!({ "name": name, "revision": revision.0 })),
    )
        .into_response())
}

/// `DELETE /v1/flags/<name>`: drops the override, so the default applies again. Dropping an
/// override that does not exist changes nothing and succeeds (`"revision": null`).
pub(crate) async fn delete<B: Backend>(
    caller: Caller,
    State(api): State<Arc<Api<B>>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let name = path_of(name)?;
    declared(&api, &name)?;
    let key = format!("{FLAGS_PREFIX}{name}");
    let revision = match audit::change(&api, &caller, &key, Change::Delete, None).await {
        Ok(revision) => Some(revision.0),
        Err(error) if error.code == "key_not_found" => None,
        Err(error) => return Err(error),
    };
    Ok(Json(json!({ "name": name, "revision": revision })).into_response())
}

/// Every declared flag, from the overrides in `entries` (keys under `_tier/flags/`).
pub(crate) fn snapshot_json<B>(
    api: &Api<B>,
    entries: &BTreeMap<String, Vec<u8>>,
    revision: Revision,
) -> (&'static str, Value) {
    let flags: Map<String, Value> = api
        .flags
        .iter()
        .map(|(name, default)| {
            let overridden = entries
                .get(&format!("{FLAGS_PREFIX}{name}"))
                .map(|value| decode_value(value));
            (name.clone(), flag_json(name, default, overridden, None))
        })
        .collect();
    ("flags", json!({ "revision": revision.0, "flags": flags }))
}

fn flag_json(
    name: &str,
    default: &FlagDefault,
    overridden: Option<Value>,
    key: Option<&str>,
) -> Value {
    let is_overridden = overridden.is_some();
    let value = overridden.unwrap_or_else(|| default.value.clone());
    json!({
        "value": value,
        "enabled": flag_enabled(name, &value, key),
        "default": default.value,
        "overridden": is_overridden,
        "description": default.description,
    })
}

fn declared<'a, B>(api: &'a Api<B>, name: &str) -> Result<&'a FlagDefault, ApiError> {
    if let Some(default) = api.flags.get(name) {
        return Ok(default);
    }
    let mut error = ApiError::not_found(
        "flag_not_found",
        format!("no flag {name:?} is declared for this environment"),
    );
    let closest = api
        .flags
        .keys()
        .map(|known| (strsim::levenshtein(name, known), known))
        .min();
    if let Some((distance, known)) = closest
        && distance <= (name.len() / 3).max(2)
    {
        error.message = format!("{}; did you mean {known:?}?", error.message);
        error = error.with("did_you_mean", known.as_str());
    }
    Err(error)
}
