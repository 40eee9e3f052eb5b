//! Changes made through the API, each followed by its audit record: who (token kind and
//! actor), when, the key, its old and new value and the change's revision, stored under
//! `_tier/audit/<key>\0<revision, 20 digits>` so one key's records list in revision order.
//!
//! The `Backend` has no multi-key transaction, so the record is written right after the
//! change, while the API's write lock is held; a crash between the two loses that one record,
//! never the change. Keys deleted by a lease's expiry have no record.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ApiError;
use super::request::Caller;
use super::{AUDIT_PREFIX, Api, decode_value, kv_json};
use crate::backend::Backend;
use crate::types::{CasOutcome, KeyValue, LeaseId, Revision};

/// One change to make.
pub(crate) enum Change {
    Put {
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    /// A put only if the key's mod revision is `expected` (`0`: only if it does not exist).
    /// The key keeps its lease.
    PutIf {
        value: Vec<u8>,
        expected: Revision,
    },
    Delete,
}

/// A stored audit record; also the history's wire form.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) revision: u64,
    pub(crate) key: String,
    /// `put`, `delete` or `rollback`.
    pub(crate) action: String,
    /// The token's kind: `read-write`.
    pub(crate) token: String,
    /// `X-Tier-Actor`, when the caller sent one.
    pub(crate) actor: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub(crate) at_unix_ms: u64,
    /// The key before the change; `null` when it did not exist.
    pub(crate) old: Option<State>,
    /// The key after the change; `null` when it was deleted.
    pub(crate) new: Option<State>,
    /// For a rollback, the revision whose value was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rolled_back_to: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) value: Value,
    pub(crate) mod_revision: u64,
}

/// Makes `change` to `key` and records it; returns the change's revision.
pub(crate) async fn change<B: Backend>(
    api: &Api<B>,
    caller: &Caller,
    key: &str,
    change: Change,
    rolled_back_to: Option<Revision>,
) -> Result<Revision, ApiError> {
    let _one_at_a_time = api.writes.lock().await;
    let old = api.store.get(key).await?;
    let (revision, new_value) = match change {
        Change::Put { value, lease } => {
            let new_value = decode_value(&value);
            (api.store.put(key, value, lease).await?, Some(new_value))
        }
        Change::PutIf { value, expected } => {
            let new_value = decode_value(&value);
            match api
                .store
                .txn_put_if_mod_revision(key, expected, value)
                .await?
            {
                CasOutcome::Written(revision) => (revision, Some(new_value)),
                CasOutcome::Conflict { current } => {
                    return Err(conflict(key, expected, current.as_ref()));
                }
            }
        }
        Change::Delete => match api.store.delete(key).await? {
            Some(revision) => (revision, None),
            None => return Err(key_not_found(key)),
        },
    };
    let action = match (&rolled_back_to, &new_value) {
        (Some(_), _) => "rollback",
        (None, Some(_)) => "put",
        (None, None) => "delete",
    };
    let record = Record {
        revision: revision.0,
        key: key.to_owned(),
        action: action.to_owned(),
        token: caller.kind.as_str().to_owned(),
        actor: caller.actor.clone(),
        at_unix_ms: unix_millis((api.wall_clock)()),
        old: old.map(|kv| State {
            value: decode_value(&kv.value),
            mod_revision: kv.mod_revision.0,
        }),
        new: new_value.map(|value| State {
            value,
            mod_revision: revision.0,
        }),
        rolled_back_to: rolled_back_to.map(|revision| revision.0),
    };
    let encoded = serde_json::to_vec(&record).map_err(|error| ApiError::internal(&error))?;
    api.store
        .put(&record_key(key, revision), encoded, None)
        .await
        .map_err(|error| {
            ApiError::internal(&format!(
                "the change to {key:?} was written at revision {revision} but its audit \
                 record was not: {error}"
            ))
        })?;
    Ok(revision)
}

/// Every recorded change of `key`, oldest first.
pub(crate) async fn history<B: Backend>(api: &Api<B>, key: &str) -> Result<Vec<Record>, ApiError> {
    let range = api.store.range(&record_prefix(key)).await?;
    let mut records = Vec::with_capacity(range.kvs.len());
    for kv in range.kvs {
        match serde_json::from_slice::<Record>(&kv.value) {
            Ok(record) => records.push(record),
            // A record damaged by hand is skipped rather than hiding the whole history.
            Err(error) => eprintln!(
                "tier-store http: skipping audit record {:?}: {error}",
                kv.key
            ),
        }
    }
    Ok(records)
}

/// What the records say `key` held at `revision`: `Some(None)` for "did not exist", `None`
/// when they do not tell.
pub(crate) fn value_at(records: &[Record], revision: Revision) -> Option<Option<Value>> {
    if let Some(record) = records
        .iter()
        .rev()
        .find(|record| record.revision <= revision.0)
    {
        return Some(record.new.as_ref().map(|state| state.value.clone()));
    }
    // Before the first recorded change: its old value, if that was already in place.
    let first = records.first()?;
    match &first.old {
        None => Some(None),
        Some(old) if old.mod_revision <= revision.0 => Some(Some(old.value.clone())),
        Some(_) => None,
    }
}

pub(crate) fn key_not_found(key: &str) -> ApiError {
    ApiError::not_found("key_not_found", format!("no key {key:?}")).with("key", key)
}

fn conflict(key: &str, expected: Revision, current: Option<&KeyValue>) -> ApiError {
    let actual = current.map_or(0, |kv| kv.mod_revision.0);
    ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        format!(
            "{key:?} has mod revision {actual}, not {expected}; nothing was written (read it \
             again and retry with if_mod_revision {actual})"
        ),
    )
    .with("current", current.map_or(Value::Null, kv_json))
}

fn record_prefix(key: &str) -> String {
    format!("{AUDIT_PREFIX}{key}\u{0}")
}

fn record_key(key: &str, revision: Revision) -> String {
    format!("{}{:020}", record_prefix(key), revision.0)
}

fn unix_millis(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(revision: u64, old: Option<(i64, u64)>, new: Option<i64>) -> Record {
        Record {
            revision,
            key: "k".into(),
            action: "put".into(),
            token: "read-write".into(),
            actor: None,
            at_unix_ms: 0,
            old: old.map(|(value, mod_revision)| State {
                value: value.into(),
                mod_revision,
            }),
            new: new.map(|value| State {
                value: value.into(),
                mod_revision: revision,
            }),
            rolled_back_to: None,
        }
    }

    #[test]
    fn value_at_reads_the_records() {
        // Written unaudited at 2 (value 1), then 5 → 10, deleted at 8, 12 → 30.
        let records = [
            record(5, Some((1, 2)), Some(10)),
            record(8, Some((10, 5)), None),
            record(12, None, Some(30)),
        ];
        assert_eq!(value_at(&records, Revision(1)), None);
        assert_eq!(value_at(&records, Revision(3)), Some(Some(1.into())));
        assert_eq!(value_at(&records, Revision(5)), Some(Some(10.into())));
        assert_eq!(value_at(&records, Revision(9)), Some(None));
        assert_eq!(value_at(&records, Revision(40)), Some(Some(30.into())));
        assert_eq!(value_at(&[], Revision(4)), None);
    }
}
