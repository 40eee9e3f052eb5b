//! Drift as seen over time: one record per drifted field, object or replica with when it was
//! first and last seen and, once it is gone, when it was seen gone. `tier drift --history`
//! answers "since when" from these. [`merge`] is the one rule both backends keep them by; a
//! local environment keeps them in its state database, a kubernetes one in its cluster.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::StateError;
use crate::state::{Failure, State, open_for_reading};

/// How many records are kept: the newest, by last seen.
pub const KEPT: usize = 500;

/// One row, `records`, with the JSON list of [`DriftRecord`]s.
const DRIFT: TableDefinition<&str, &[u8]> = TableDefinition::new("drift");
const RECORDS_KEY: &str = "records";

/// One drifted field, object or replica over time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftRecord {
    /// What drifted, stable across checks: `Deployment shop/api: spec.replicas`.
    pub key: String,
    /// The newest description, in words.
    pub description: String,
    pub first_seen_unix_ms: u64,
    pub last_seen_unix_ms: u64,
    /// When a check found it gone; `None` while it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_unix_ms: Option<u64>,
}

/// The records after a check at `now` found `current` (key and description of each drift):
/// a lasting drift keeps its first-seen time, a new one starts a record, one no longer found
/// is marked gone. Newest first, at most [`KEPT`].
pub fn merge(
    mut records: Vec<DriftRecord>,
    current: &[(String, String)],
    now: u64,
) -> Vec<DriftRecord> {
    for record in &mut records {
        if record.gone_unix_ms.is_some() {
            continue;
        }
        match current.iter().find(|(key, _)| *key == record.key) {
            Some((_, description)) => {
                record.last_seen_unix_ms = now;
                record.description.clone_from(description);
            }
            None => record.gone_unix_ms = Some(now),
        }
    }
    for (key, description) in current {
        let lasting = records
            .iter()
            .any(|record| record.key == *key && record.gone_unix_ms.is_none());
        if !lasting {
            records.push(DriftRecord {
                key: key.clone(),
                description: description.clone(),
                first_seen_unix_ms: now,
                last_seen_unix_ms: now,
                gone_unix_ms: None,
            });
        }
    }
    records.sort_by(|a, b| {
        b.last_seen_unix_ms
            .cmp(&a.last_seen_unix_ms)
            .then_with(|| a.key.cmp(&b.key))
    });
    records.truncate(KEPT);
    records
}

impl State {
    /// Records what a check found at `now` (see [`merge`]) in one transaction, and returns
    /// every record, newest first.
    pub fn record_drift(
        &self,
        current: &[(String, String)],
        now: u64,
    ) -> Result<Vec<DriftRecord>, StateError> {
        self.write(|transaction| {
            let mut table = transaction.open_table(DRIFT)?;
            let records = match table.get(RECORDS_KEY)? {
                Some(bytes) => decode(bytes.value())?,
                None => Vec::new(),
            };
            let records = merge(records, current, now);
            let bytes = self.encode(&records)?;
            table.insert(RECORDS_KEY, bytes.as_slice())?;
            Ok(records)
        })
    }

    /// Every drift record, newest first.
    pub fn drift_history(&self) -> Result<Vec<DriftRecord>, StateError> {
        self.read(|transaction| {
            let Some(table) = open_for_reading(transaction, DRIFT)? else {
                return Ok(Vec::new());
            };
            match table.get(RECORDS_KEY)? {
                Some(bytes) => decode(bytes.value()),
                None => Ok(Vec::new()),
            }
        })
    }
}

fn decode(bytes: &[u8]) -> Result<Vec<DriftRecord>, Failure> {
    serde_json::from_slice(bytes)
        .map_err(|error| Failure::Corrupt(format!("the drift records do not decode: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(keys: &[&str]) -> Vec<(String, String)> {
        keys.iter()
            .map(|key| ((*key).to_owned(), format!("{key} differs")))
            .collect()
    }

    #[test]
    fn a_lasting_drift_keeps_its_first_seen_time_and_a_vanished_one_is_marked_gone() {
        let records = merge(Vec::new(), &found(&["a", "b"]), 1_000);
        let records = merge(records, &found(&["a"]), 2_000);
        let a = records.iter().find(|record| record.key == "a").expect("a");
        assert_eq!((a.first_seen_unix_ms, a.last_seen_unix_ms), (1_000, 2_000));
        assert_eq!(a.gone_unix_ms, None);
        let b = records.iter().find(|record| record.key == "b").expect("b");
        assert_eq!(b.gone_unix_ms, Some(2_000));
        assert_eq!(records[0].key, "a", "newest first");
    }

    #[test]
    fn a_drift_that_comes_back_starts_a_new_record() {
        let records = merge(Vec::new(), &found(&["a"]), 1_000);
        let records = merge(records, &[], 2_000);
        let records = merge(records, &found(&["a"]), 3_000);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].first_seen_unix_ms, 3_000);
        assert_eq!(records[1].gone_unix_ms, Some(2_000));
    }

    #[test]
    fn records_survive_reopening_the_state() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let state = State::open(dir.path()).expect("a state");
        assert!(state.drift_history().expect("history").is_empty());
        state.record_drift(&found(&["a"]), 1_000).expect("recorded");
        let again = State::open(dir.path()).expect("reopened");
        let history = again.drift_history().expect("history");
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].description, "a differs");
    }

    #[test]
    fn at_most_the_newest_records_are_kept() {
        let mut records = Vec::new();
        for round in 0..(KEPT as u64 + 20) {
            records = merge(records, &[(format!("k{round}"), String::new())], round);
        }
        assert_eq!(records.len(), KEPT);
        assert_eq!(records[0].key, format!("k{}", KEPT + 19));
    }
}
