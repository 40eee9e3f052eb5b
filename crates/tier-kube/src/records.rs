//! A kubernetes environment's records in its own namespace, so every machine that reaches the
//! cluster sees one history and one lock (as Helm keeps its releases in the cluster):
//!
//! - one Secret per revision, `tier.<env>.v<N>` (type `tier.dev/revision`), its record as
//!   gzipped JSON in the same format as a state file's (`tier_state::codec`), labelled with
//!   the environment, the number and the outcome so `kubectl get secrets -l` answers too;
//! - an index ConfigMap, `tier.<env>.index`: the format, the last number, the deployed one and
//!   the serial, so a plan reads two objects instead of every revision;
//! - the lock, a `coordination.k8s.io/v1` Lease `tier.<env>.lock` (`lease.rs`).
//!
//! Every write is one object created (`POST`, refused when the name is taken) or replaced with
//! the resourceVersion it was read at (refused when someone wrote in between), so a revision is
//! either whole or absent. The index is written after the revision, so a writer killed in
//! between leaves it behind its revisions; the next lock holder recomputes it from them
//! (`tier_state::Summary`) before it writes, and readers never see a deployed pointer to a
//! revision that does not exist.
//!
//! None of these objects carries the three labels tier prunes by, so an apply never deletes
//! its own records.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use tier_model::Environment;
use tier_state::{
    HeldLock, Holder, LockHolder, NewRevision, Outcome, Records, Revision, Snapshot, StateError,
    Summary, codec,
};

use crate::cluster::{Cluster, ClusterError, FIELD_MANAGER};
use crate::lease::{ClusterLock, Leases};
use crate::render::MANAGED_BY_LABEL;

/// The index's layout; a newer one is refused rather than misread.
const FORMAT: u64 = 1;
/// The label naming the environment a record belongs to.
pub const RECORDS_LABEL: &str = "tier.dev/records";
const REVISION_LABEL: &str = "tier.dev/revision";
const OUTCOME_LABEL: &str = "tier.dev/outcome";
const REVISION_TYPE: &str = "tier.dev/revision";
const REVISION_KEY: &str = "revision";
/// The API server refuses an object over 1 MiB; a record is refused before that.
const MAX_RECORD: usize = 1024 * 1024 - 16 * 1024;

/// The records of one kubernetes environment, in its namespace.
pub struct ClusterRecords {
    runtime: tokio::runtime::Runtime,
    pub(crate) cluster: Cluster,
    pub(crate) namespace: String,
    pub(crate) env: String,
    pub(crate) lease: Duration,
}

/// The index as read, with the resourceVersion to replace it at.
#[derive(Clone, Debug, Default)]
pub(crate) struct Index {
    pub(crate) summary: Summary,
    pub(crate) version: Option<String>,
}

impl ClusterRecords {
    /// Connects to the environment's cluster (the context guard, then `GET /version`), on a
    /// runtime of its own that also renews a held lock in the background. `lease` is how long
    /// a lock outlives its last renewal (renewed every third of it).
    pub fn connect(
        environment: &Environment,
        lease: Duration,
    ) -> Result<ClusterRecords, ClusterError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tier-lease")
            .enable_all()
            .build()
            .map_err(|error| ClusterError::Unreachable {
                server: String::new(),
                context: String::new(),
                kubeconfig: crate::cluster::kubeconfig_place(),
                reason: format!("cannot start a runtime: {error}"),
            })?;
        let cluster = runtime.block_on(Cluster::connect(environment))?;
        Ok(ClusterRecords {
            runtime,
            cluster,
            namespace: crate::namespace_of(environment),
            env: environment.name.to_string(),
            lease: lease.max(Duration::from_secs(1)),
        })
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        self.cluster.server()
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }

    pub(crate) fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.handle().clone()
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.cluster.client().clone(), &self.namespace)
    }

    fn config_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.cluster.client().clone(), &self.namespace)
    }

    pub(crate) fn leases(&self) -> Leases {
        Leases::new(self)
    }

    fn revision_name(&self, number: u64) -> String {
        format!("tier.{}.v{number}", self.env)
    }

    fn index_name(&self) -> String {
        format!("tier.{}.index", self.env)
    }

    /// A failed request as a state error that names the namespace and the server.
    pub(crate) fn failed(&self, action: &str, error: impl std::fmt::Display) -> StateError {
        StateError::Remote {
            place: self.place(),
            message: format!("cannot {action}: {error}"),
        }
    }

    pub(crate) async fn read_index(&self) -> Result<Index, StateError> {
        let found = self
            .config_maps()
            .get_opt(&self.index_name())
            .await
            .map_err(|error| self.failed("read the index", error))?;
        let Some(map) = found else {
            return Ok(Index::default());
        };
        let data = map.data.unwrap_or_default();
        let number = |key: &str| -> Result<Option<u64>, StateError> {
            match data.get(key) {
                None => Ok(None),
                Some(text) => text.parse().map(Some).map_err(|_| StateError::Corrupt {
                    path: self.index_name().into(),
                    detail: format!("`{key}` is {text:?}, not a number"),
                }),
            }
        };
        let format = number("format")?.unwrap_or(FORMAT);
        if format != FORMAT {
            return Err(StateError::UnsupportedFormat {
                path: format!("{}/{}", self.namespace, self.index_name()).into(),
                found: format,
                supported: FORMAT,
            });
        }
        Ok(Index {
            summary: Summary {
                last: number("last")?.unwrap_or(0),
                deployed: number("deployed")?,
                serial: number("serial")?.unwrap_or(0),
            },
            version: map.metadata.resource_version,
        })
    }

    /// Writes the index, created or replaced at the version it was read at.
    pub(crate) async fn write_index(
        &self,
        index: &Index,
        summary: Summary,
    ) -> Result<(), StateError> {
        let mut data = BTreeMap::from([
            ("format".to_owned(), FORMAT.to_string()),
            ("last".to_owned(), summary.last.to_string()),
            ("serial".to_owned(), summary.serial.to_string()),
        ]);
        if let Some(deployed) = summary.deployed {
            data.insert("deployed".to_owned(), deployed.to_string());
        }
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.index_name()),
                namespace: Some(self.namespace.clone()),
                labels: Some(self.labels()),
                resource_version: index.version.clone(),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..ConfigMap::default()
        };
        let params = post_params();
        let written = match index.version {
            None => self.config_maps().create(&params, &map).await.map(drop),
            Some(_) => self
                .config_maps()
                .replace(&self.index_name(), &params, &map)
                .await
                .map(drop),
        };
        written.map_err(|error| self.failed("write the index", error))
    }

    /// Recomputes the index from the revisions when it fell behind them (a writer killed
    /// between writing a revision and the index).
    pub(crate) async fn repair_index(&self) -> Result<(), StateError> {
        let index = self.read_index().await?;
        let revisions = self.read_history().await?;
        let summary = Summary::of(&revisions);
        if summary != index.summary {
            self.write_index(&index, summary).await?;
        }
        Ok(())
    }

    async fn read_revision(
        &self,
        number: u64,
    ) -> Result<Option<(Revision, Option<String>)>, StateError> {
        let found = self
            .secrets()
            .get_opt(&self.revision_name(number))
            .await
            .map_err(|error| self.failed(&format!("read revision {number}"), error))?;
        match found {
            None => Ok(None),
            Some(secret) => {
                let version = secret.metadata.resource_version.clone();
                Ok(Some((self.decode(&secret)?, version)))
            }
        }
    }

    pub(crate) async fn read_history(&self) -> Result<Vec<Revision>, StateError> {
        let listed = self
            .secrets()
            .list(&ListParams::default().labels(&format!("{RECORDS_LABEL}={}", self.env)))
            .await
            .map_err(|error| self.failed("list the revisions", error))?;
        let mut revisions = listed
            .items
            .iter()
            .filter(|secret| secret.type_.as_deref() == Some(REVISION_TYPE))
            .map(|secret| self.decode(secret))
            .collect::<Result<Vec<_>, _>>()?;
        revisions.sort_by_key(|revision| revision.number);
        Ok(revisions)
    }

    fn decode(&self, secret: &Secret) -> Result<Revision, StateError> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let corrupt = |detail: String| StateError::Corrupt {
            path: format!("{}/{name} on {}", self.namespace, self.server()).into(),
            detail,
        };
        let bytes = secret
            .data
            .as_ref()
            .and_then(|data| data.get(REVISION_KEY))
            .ok_or_else(|| corrupt(format!("it has no `{REVISION_KEY}`")))?;
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(bytes.0.as_slice())
            .take(64 * 1024 * 1024)
            .read_to_end(&mut json)
            .map_err(|error| corrupt(format!("not gzip: {error}")))?;
        codec::decode_revision(&json).map_err(corrupt)
    }

    /// The Secret that holds `revision`, at `version` when it replaces one.
    fn encode(&self, revision: &Revision, version: Option<String>) -> Result<Secret, StateError> {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(&codec::encode_revision(revision))
            .map_err(|error| self.failed("compress a revision", error))?;
        let bytes = gzip
            .finish()
            .map_err(|error| self.failed("compress a revision", error))?;
        if bytes.len() > MAX_RECORD {
            return Err(self.failed(
                &format!("record revision {}", revision.number),
                format!(
                    "its record is {} KiB compressed, over the API server's 1 MiB per object",
                    bytes.len() / 1024
                ),
            ));
        }
        let mut labels = self.labels();
        labels.insert(REVISION_LABEL.to_owned(), revision.number.to_string());
        labels.insert(OUTCOME_LABEL.to_owned(), outcome_label(&revision.outcome));
        Ok(Secret {
            metadata: ObjectMeta {
                name: Some(self.revision_name(revision.number)),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                resource_version: version,
                ..ObjectMeta::default()
            },
            type_: Some(REVISION_TYPE.to_owned()),
            data: Some(BTreeMap::from([(
                REVISION_KEY.to_owned(),
                ByteString(bytes),
            )])),
            ..Secret::default()
        })
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY_LABEL.to_owned(), "tier".to_owned()),
            (RECORDS_LABEL.to_owned(), self.env.clone()),
        ])
    }

    /// Creates the namespace when it does not exist yet: the records go in before the first
    /// apply's objects do. (The apply's Namespace, with its labels, is applied over it.)
    pub(crate) async fn ensure_namespace(&self) -> Result<(), StateError> {
        let namespaces: Api<Namespace> = Api::all(self.cluster.client().clone());
        let found = namespaces
            .get_opt(&self.namespace)
            .await
            .map_err(|error| self.failed("read the namespace", error))?;
        if found.is_some() {
            return Ok(());
        }
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY_LABEL.to_owned(),
                    "tier".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match namespaces.create(&post_params(), &namespace).await {
            Ok(_) => Ok(()),
            // Created by someone else meanwhile.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(error) => Err(self.failed("create the namespace", error)),
        }
    }

    /// Records revision `number + 1` as in progress; the caller holds the lease.
    pub(crate) async fn begin(&self, new: NewRevision<'_>, now: u64) -> Result<u64, StateError> {
        let index = self.read_index().await?;
        let number = index.summary.last.saturating_add(1);
        let revision = Revision {
            number,
            spec: new.spec.clone(),
            artifacts: new.artifacts.clone(),
            who: new.who.to_owned(),
            started_unix_ms: now,
            finished_unix_ms: None,
            origin: new.origin.clone(),
            outcome: Outcome::InProgress,
            bom: new.bom.clone(),
        };
        let secret = self.encode(&revision, None)?;
        self.secrets()
            .create(&post_params(), &secret)
            .await
            .map_err(|error| self.failed(&format!("record revision {number}"), error))?;
        let summary = Summary {
            last: number,
            serial: index.summary.serial.saturating_add(1),
            ..index.summary
        };
        self.write_index(&index, summary).await?;
        Ok(number)
    }

    /// Ends revision `number`; the caller holds the lease.
    pub(crate) async fn finish(
        &self,
        number: u64,
        outcome: Outcome,
        now: u64,
    ) -> Result<(), StateError> {
        if outcome == Outcome::InProgress {
            return Err(StateError::NotAFinish { number });
        }
        let index = self.read_index().await?;
        let Some((mut revision, version)) = self.read_revision(number).await? else {
            return Err(StateError::NoSuchRevision { number });
        };
        if revision.is_finished() {
            return Err(StateError::AlreadyFinished {
                number,
                outcome: revision.outcome,
            });
        }
        let succeeded = outcome == Outcome::Succeeded;
        if let Some(deployed) = index
            .summary
            .deployed
            .filter(|deployed| succeeded && *deployed > number)
        {
            return Err(StateError::Superseded { number, deployed });
        }
        revision.outcome = outcome;
        revision.finished_unix_ms = Some(now);
        let secret = self.encode(&revision, version)?;
        self.secrets()
            .replace(&self.revision_name(number), &post_params(), &secret)
            .await
            .map_err(|error| self.failed(&format!("finish revision {number}"), error))?;
        let summary = Summary {
            deployed: if succeeded {
                Some(number)
            } else {
                index.summary.deployed
            },
            serial: index.summary.serial.saturating_add(1),
            ..index.summary
        };
        self.write_index(&index, summary).await
    }

    /// Writes revisions from a state file into records that hold none.
    pub(crate) async fn import(&self, revisions: &[Revision]) -> Result<(), StateError> {
        let index = self.read_index().await?;
        if index.summary.last > 0 || !self.read_history().await?.is_empty() {
            return Err(self.failed(
                "move the revisions into the cluster",
                "it holds revisions already",
            ));
        }
        for revision in revisions {
            let secret = self.encode(revision, None)?;
            self.secrets()
                .create(&post_params(), &secret)
                .await
                .map_err(|error| {
                    self.failed(&format!("record revision {}", revision.number), error)
                })?;
        }
        self.write_index(&index, Summary::of(revisions)).await
    }
}

impl Records for ClusterRecords {
    fn place(&self) -> String {
        format!("namespace {} on {}", self.namespace, self.server())
    }

    fn now_unix_ms(&self) -> u64 {
        tier_state::system_clock()
    }

    fn snapshot(&self) -> Result<Snapshot, StateError> {
        self.block_on(async {
            let index = self.read_index().await?;
            let deployed = match index.summary.deployed {
                None => None,
                Some(number) => match self.read_revision(number).await? {
                    Some((revision, _)) => Some(revision),
                    None => {
                        return Err(StateError::Corrupt {
                            path: format!("{}/{}", self.namespace, self.index_name()).into(),
                            detail: format!("the deployed revision {number} is missing"),
                        });
                    }
                },
            };
            Ok(Snapshot {
                serial: index.summary.serial,
                deployed,
            })
        })
    }

    fn history(&self) -> Result<Vec<Revision>, StateError> {
        self.block_on(self.read_history())
    }

    fn revision(&self, number: u64) -> Result<Option<Revision>, StateError> {
        self.block_on(self.read_revision(number))
            .map(|found| found.map(|(revision, _)| revision))
    }

    fn lock_holder(&self) -> Result<Option<LockHolder>, StateError> {
        self.block_on(self.leases().holder(self.now_unix_ms()))
    }

    fn take_lock(&self, holder: Holder) -> Result<Box<dyn HeldLock + '_>, StateError> {
        Ok(Box::new(ClusterLock::take(self, holder)?))
    }

    fn break_lock(&self) -> Result<Option<Holder>, StateError> {
        self.block_on(self.leases().break_lock())
    }
}

fn post_params() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    }
}

/// The outcome as a label value.
fn outcome_label(outcome: &Outcome) -> String {
    match outcome {
        Outcome::InProgress => "in_progress",
        Outcome::Succeeded => "succeeded",
        Outcome::Failed { .. } => "failed",
        Outcome::RolledBack { .. } => "rolled_back",
    }
    .to_owned()
}
