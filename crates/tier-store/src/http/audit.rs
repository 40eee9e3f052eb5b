//! Changes made through the API, each with its audit record: who (token kind and actor), when,
//! the key, its old and new value and the change's revision, stored under
//! `_tier/audit/<key>\0<...>`.
//!
//! A change and its record are one [`Backend::txn`], guarded by a comparison on the key's mod
//! revision as read just before: both are written at one revision or neither is. The record's
//! own mod revision is therefore the change's revision; it is not known before the commit, so
//! the stored record leaves `revision` (and the new state's `mod_revision`) out and they are
//! read back from the record's mod revision. The record's key ends in the old mod revision
//! and a random suffix, which keeps a key's records in revision order in most listings and
//! unique in all; history sorts them by revision. Records written by earlier versions, which
//! name their revision in key and body, read the same. When another write to the key wins
//! the race between the read and the transaction (another server on the same etcd, a
//! registry write), the change reads again and retries, a bounded number of times. Within one
//! server, changes to one key take turns (`Api::key_lock`); changes to different keys run
//! concurrently and share the store's commits. Keys deleted by a lease's expiry have no
//! record.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ApiError;
use super::request::Caller;
use super::{AUDIT_PREFIX, Api, decode_value, kv_json};
use crate::backend::Backend;
use crate::error::StoreError;
use crate::types::{Compare, KeyValue, LeaseId, Op, Revision, TxnOutcome};

/// How many times a change reads the key again after another write won the race to it.
const ATTEMPTS: usize = 16;

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
    /// The change's revision. Stored as 0 (left out) and read back from the record's own mod
    /// revision, which is the change's, since both are written in one transaction.
    #[serde(default)]
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
    /// For `new`, stored as 0 (left out) and read back like the record's revision.
    #[serde(default)]
    pub(crate) mod_revision: u64,
}

/// Makes `change` to `key` and records it in one transaction; returns the change's revision.
pub(crate) async fn change<B: Backend>(
    api: &Api<B>,
    caller: &Caller,
    key: &str,
    change: Change,
    rolled_back_to: Option<Revision>,
) -> Result<Revision, ApiError> {
    let _this_key = api.key_lock(key).lock().await;
    for _ in 0..ATTEMPTS {
        let old = api.store.get(key).await?;
        let seen = old.as_ref().map_or(Revision(0), |kv| kv.mod_revision);
        let (op, new_value) = match &change {
            Change::Put { value, lease } => (
                Op::Put {
                    key: key.to_owned(),
                    value: value.clone(),
                    lease: *lease,
                },
                Some(decode_value(value)),
            ),
            Change::PutIf { value, expected } => {
                if seen != *expected {
                    return Err(conflict(key, *expected, old.as_ref()));
                }
                // The comparison makes sure the key still has the lease read here.
                let lease = old.as_ref().and_then(|kv| kv.lease);
                let op = Op::Put {
                    key: key.to_owned(),
                    value: value.clone(),
                    lease,
                };
                (op, Some(decode_value(value)))
            }
            Change::Delete => {
                if old.is_none() {
                    return Err(key_not_found(key));
                }
                (
                    Op::Delete {
                        key: key.to_owned(),
                    },
                    None,
                )
            }
        };
        let action = match (&rolled_back_to, &new_value) {
            (Some(_), _) => "rollback",
            (None, Some(_)) => "put",
            (None, None) => "delete",
        };
        let record = Record {
            revision: 0,
            key: key.to_owned(),
            action: action.to_owned(),
            token: caller.kind.as_str().to_owned(),
            actor: caller.actor.clone(),
            at_unix_ms: unix_millis((api.wall_clock)()),
            old: old.as_ref().map(|kv| State {
                value: decode_value(&kv.value),
                mod_revision: kv.mod_revision.0,
            }),
            new: new_value.map(|value| State {
                value,
                mod_revision: 0,
            }),
            rolled_back_to: rolled_back_to.map(|revision| revision.0),
        };
        let encoded = serde_json::to_vec(&record).map_err(|error| ApiError::internal(&error))?;
        let then = vec![
            op,
            Op::Put {
                key: record_key(key, seen)?,
                value: encoded,
                lease: None,
            },
        ];
        let compare = vec![Compare::mod_revision(key, seen)];
        match api.store.txn(compare, then).await {
            Ok(TxnOutcome::Committed { revision }) => return Ok(revision),
            // Another write to the key came between the read and the transaction: read again.
            Ok(TxnOutcome::Failed { .. }) => {}
            // The key's own lease ended in between (a conditional put keeps it): read again.
            Err(StoreError::LeaseNotFound(_)) if matches!(change, Change::PutIf { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "contention",
        format!(
            "{key:?} changed {ATTEMPTS} times while this change was being written; nothing was \
             written (try again)"
        ),
    )
    .with("key", key))
}

/// Every recorded change of `key`, oldest first.
pub(crate) async fn history<B: Backend>(api: &Api<B>, key: &str) -> Result<Vec<Record>, ApiError> {
    let range = api.store.range(&record_prefix(key)).await?;
    let mut records = Vec::with_capacity(range.kvs.len());
    for kv in range.kvs {
        match serde_json::from_slice::<Record>(&kv.value) {
            Ok(mut record) => {
                // Written in one transaction with its change, so its revision is the change's.
                if record.revision == 0 {
                    record.revision = kv.mod_revision.0;
                }
                if let Some(new) = &mut record.new
                    && new.mod_revision == 0
                {
                    new.mod_revision = record.revision;
                }
                records.push(record);
            }
            // A record damaged by hand is skipped rather than hiding the whole history.
            Err(error) => eprintln!(
                "tier-store http: skipping audit record {:?}: {error}",
                kv.key
            ),
        }
    }
    records.sort_by_key(|record| record.revision);
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

/// A new record's key: the key's mod revision before the change (so one key's records mostly
/// list in order), and 8 random bytes, since a key created twice has seen 0 both times.
fn record_key(key: &str, seen: Revision) -> Result<String, ApiError> {
    let mut random = [0_u8; 8];
    getrandom::fill(&mut random).map_err(|error| ApiError::internal(&error))?;
    let random = u64::from_le_bytes(random);
    Ok(format!(
        "{}{:020}-{random:016x}",
        record_prefix(key),
        seen.0
    ))
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
