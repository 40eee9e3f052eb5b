//! Drift as seen over time, kept beside the environment's revisions: the ConfigMap
//! `tier.<env>.drift`, one record per drifted field or object with when it was first and last
//! seen and, once it is gone, when it was seen gone. `tier drift --history` answers "since
//! when" from it. Written at the resourceVersion read; a lost race reads again.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use tier_model::Environment;
use tier_state::StateError;
use tier_state::drift::{DriftRecord, merge};

use crate::cluster::{ClusterError, FIELD_MANAGER};
use crate::drift::{Drift, drift};
use crate::object::Object;
use crate::records::{ClusterRecords, RECORDS_LABEL};
use crate::render::MANAGED_BY_LABEL;

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

    /// Records what a check found at `now` (the key and description of each drift; see
    /// [`merge`]), and returns every record, newest first.
    pub fn record_drift(
        &self,
        current: &[(String, String)],
        now: u64,
    ) -> Result<Vec<DriftRecord>, StateError> {
        self.block_on(async {
            for _ in 0..5 {
                let (records, version) = self.read_drift().await?;
                let records = merge(records, current, now);
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
