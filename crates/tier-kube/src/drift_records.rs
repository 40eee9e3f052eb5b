//! Drift as seen over time, kept beside the environment's revisions: the ConfigMap
//! `tier.<env>.drift`, one record per drifted field or object with when it was first and last
//! seen and, once it is gone, when it was seen gone. `tier drift --history` answers "since
//! when" from it. Written at the resourceVersion read; a lost race reads again.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use serde::{Deserialize, Serialize};
use tier_model::Environment;
use tier_state::StateError;

use crate::cluster::{ClusterError, FIELD_MANAGER};
use crate::drift::{Drift, drift};
use crate::object::Object;
use crate::records::{ClusterRecords, RECORDS_LABEL};
use crate::render::MANAGED_BY_LABEL;

/// How long drift history is kept: the newest records, by last seen.
const KEPT: usize = 500;

/// One drifted field or object over time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftRecord {
    pub key: String,
    pub description: String,
    pub first_seen_unix_ms: u64,
    pub last_seen_unix_ms: u64,
    /// When a check found it gone; `None` while it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_unix_ms: Option<u64>,
}

impl ClusterRecords {
    /// The differences between `applied` (the deployed revision's objects) and the live
    /// objects.
    pub fn drift(
        &self,
        environment: &Environment,
        applied: &[Object],
    ) -> Result<Vec<Drift>, ClusterError> {
        let (live, hpas) =
            self.block_on(self.cluster.live(environment, applied, &self.namespace))?;
        Ok(drift(applied, &live, &hpas))
    }

    /// Records what a check found (entries that are drift, not `expected` ones) at `now`, and
    /// returns every record, newest first.
    pub fn record_drift(&self, found: &[Drift], now: u64) -> Result<Vec<DriftRecord>, StateError> {
        self.block_on(async {
            for _ in 0..5 {
                let (mut records, version) = self.read_drift().await?;
                let current: BTreeMap<String, &Drift> = found
                    .iter()
                    .filter(|drift| drift.expected.is_none())
                    .map(|drift| (drift.key(), drift))
                    .collect();
                for record in &mut records {
                    match current.get(&record.key) {
                        Some(drift) if record.gone_unix_ms.is_none() => {
                            record.last_seen_unix_ms = now;
                            record.description = drift.describe();
                        }
                        None if record.gone_unix_ms.is_none() => record.gone_unix_ms = Some(now),
                        _ => {}
                    }
                }
                for (key, drift) in &current {
                    if !records
                        .iter()
                        .any(|record| record.key == *key && record.gone_unix_ms.is_none())
                    {
                        records.push(DriftRecord {
                            key: key.clone(),
                            description: drift.describe(),
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
                match self.write_drift(&records, version).await {
                    Ok(()) => return Ok(records),
                    Err(kube::Error::Api(status)) if status.code == 409 => continue,
                    Err(error) => return Err(self.failed("record the drift", error)),
                }
            }
            Err(self.failed("record the drift", "other writers kept changing it"))
        })
    }

    /// Every drift record, newest first.
    pub fn drift_history(&self) -> Result<Vec<DriftRecord>, StateError> {
        self.block_on(async { Ok(self.read_drift().await?.0) })
    }

    fn drift_name(&self) -> String {
        format!("tier.{}.drift", self.env)
    }

    fn drift_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.cluster.client().clone(), &self.namespace)
    }

    async fn read_drift(&self) -> Result<(Vec<DriftRecord>, Option<String>), StateError> {
        let found = self
            .drift_maps()
            .get_opt(&self.drift_name())
            .await
            .map_err(|error| self.failed("read the drift records", error))?;
        let Some(map) = found else {
            return Ok((Vec::new(), None));
        };
        let records = map
            .data
            .as_ref()
            .and_then(|data| data.get("records"))
            .map(|text| serde_json::from_str(text))
            .transpose()
            .map_err(|error| StateError::Corrupt {
                path: format!("{}/{}", self.namespace, self.drift_name()).into(),
                detail: error.to_string(),
            })?
            .unwrap_or_default();
        Ok((records, map.metadata.resource_version))
    }

    async fn write_drift(
        &self,
        records: &[DriftRecord],
        version: Option<String>,
    ) -> Result<(), kube::Error> {
        let text = serde_json::to_string(records).unwrap_or_default();
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.drift_name()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY_LABEL.to_owned(), "tier".to_owned()),
                    (RECORDS_LABEL.to_owned(), self.env.clone()),
                ])),
                resource_version: version.clone(),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("records".to_owned(), text)])),
            ..ConfigMap::default()
        };
        let params = PostParams {
            dry_run: false,
            field_manager: Some(FIELD_MANAGER.to_owned()),
        };
        match version {
            None => self.drift_maps().create(&params, &map).await.map(drop),
            Some(_) => self
                .drift_maps()
                .replace(&self.drift_name(), &params, &map)
                .await
                .map(drop),
        }
    }
}
