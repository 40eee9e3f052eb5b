//! The lock of a kubernetes environment: a `coordination.k8s.io/v1` Lease
//! `tier.<env>.lock` in its namespace, as Kubernetes' own leader election uses one.
//!
//! `holderIdentity` is `user@host`; the annotation `tier.dev/holder` keeps the whole holder
//! (pid, command, since) in the state file's format. The holder renews `renewTime` every third
//! of `leaseDurationSeconds` from a task of its own; a lease not renewed within its duration
//! has expired (its holder was killed, or lost the network) and the next apply takes it over.
//! Every change is a create or a replace at the resourceVersion read, so two machines that
//! race for one lease cannot both win. A holder that finds the lease no longer its own (broken
//! by `tier unlock`, or taken over after it stalled) stops writing: each record write checks
//! the lease first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};
use tier_state::{HeldLock, Holder, LockHolder, NewRevision, Outcome, Revision, StateError, codec};

use crate::cluster::FIELD_MANAGER;
use crate::records::ClusterRecords;
use crate::render::MANAGED_BY_LABEL;

const HOLDER_ANNOTATION: &str = "tier.dev/holder";
/// Races lost to another writer before giving up (each loss is a fresh read).
const ATTEMPTS: usize = 5;

/// The Lease of one environment.
pub(crate) struct Leases {
    api: Api<Lease>,
    name: String,
    namespace: String,
    place: String,
    duration: Duration,
}

/// A lease as read: who holds it, since when it was renewed, at which resourceVersion.
struct Read {
    lease: Lease,
    holder: Option<Holder>,
    renewed_ms: Option<u64>,
}

impl Leases {
    pub(crate) fn new(records: &ClusterRecords) -> Leases {
        Leases {
            api: Api::namespaced(records.cluster.client().clone(), &records.namespace),
            name: format!("tier.{}.lock", records.env),
            namespace: records.namespace.clone(),
            place: format!(
                "lease {}/tier.{}.lock on {}",
                records.namespace,
                records.env,
                records.server()
            ),
            duration: records.lease,
        }
    }

    fn failed(&self, action: &str, error: impl std::fmt::Display) -> StateError {
        StateError::Remote {
            place: self.place.clone(),
            message: format!("cannot {action}: {error}"),
        }
    }

    async fn read(&self) -> Result<Option<Read>, StateError> {
        let found = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|error| self.failed("read the lock", error))?;
        Ok(found.map(|lease| {
            let holder = lease
                .metadata
                .annotations
                .as_ref()
                .and_then(|annotations| annotations.get(HOLDER_ANNOTATION))
                .and_then(|text| codec::decode_holder(text).ok())
                .filter(|_| {
                    lease
                        .spec
                        .as_ref()
                        .and_then(|spec| spec.holder_identity.as_deref())
                        .is_some_and(|identity| !identity.is_empty())
                });
            let renewed_ms = lease
                .spec
                .as_ref()
                .and_then(|spec| spec.renew_time.as_ref())
                .and_then(|time| u64::try_from(time.0.as_millisecond()).ok());
            Read {
                lease,
                holder,
                renewed_ms,
            }
        }))
    }

    fn alive(&self, read: &Read, now: u64) -> bool {
        let duration = read
            .lease
            .spec
            .as_ref()
            .and_then(|spec| spec.lease_duration_seconds)
            .and_then(|seconds| u64::try_from(seconds).ok())
            .map_or(self.duration, Duration::from_secs);
        read.renewed_ms.is_some_and(|renewed| {
            now < renewed.saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
        })
    }

    pub(crate) async fn holder(&self, now: u64) -> Result<Option<LockHolder>, StateError> {
        let Some(read) = self.read().await? else {
            return Ok(None);
        };
        let alive = self.alive(&read, now);
        Ok(read.holder.map(|holder| LockHolder {
            holder,
            alive,
            breakable_when_alive: true,
        }))
    }

    /// The lease held by `holder`, renewed `now`, at `version` (none: a new lease).
    fn lease(&self, holder: &Holder, now: u64, version: Option<String>, acquired: u64) -> Lease {
        let time = |ms: u64| {
            MicroTime(
                Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX))
                    .unwrap_or(Timestamp::UNIX_EPOCH),
            )
        };
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY_LABEL.to_owned(),
                    "tier".to_owned(),
                )])),
                annotations: Some(BTreeMap::from([(
                    HOLDER_ANNOTATION.to_owned(),
                    codec::encode_holder(holder),
                )])),
                resource_version: version,
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.place()),
                lease_duration_seconds: Some(
                    i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX),
                ),
                acquire_time: Some(time(acquired)),
                renew_time: Some(time(now)),
                ..LeaseSpec::default()
            }),
        }
    }

    /// Takes the lease for `holder`: creates it, or takes over one that nobody holds or that
    /// expired; `Locked` names a live holder.
    async fn acquire(&self, holder: &Holder, now: u64) -> Result<String, StateError> {
        for _ in 0..ATTEMPTS {
            let written = match self.read().await? {
                None => {
                    let lease = self.lease(holder, now, None, now);
                    self.api.create(&params(), &lease).await
                }
                Some(read) => {
                    if let Some(current) = &read.holder
                        && self.alive(&read, now)
                    {
                        return Err(StateError::Locked {
                            holder: current.clone(),
                            alive: true,
                        });
                    }
                    let version = read.lease.metadata.resource_version.clone();
                    let lease = self.lease(holder, now, version, now);
                    self.api.replace(&self.name, &params(), &lease).await
                }
            };
            match written {
                Ok(lease) => return Ok(lease.metadata.resource_version.unwrap_or_default()),
                // Another writer won this round: read again.
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(error) => return Err(self.failed("take the lock", error)),
            }
        }
        Err(self.failed("take the lock", "other writers kept changing it"))
    }

    /// Renews the lease if it is still `holder`'s; `Err` says it is lost (and to whom).
    async fn renew(&self, holder: &Holder, now: u64) -> Result<(), StateError> {
        for _ in 0..ATTEMPTS {
            let read = self.read().await?;
            let current = read.as_ref().and_then(|read| read.holder.clone());
            let Some(read) = read.filter(|_| current.as_ref() == Some(holder)) else {
                return Err(StateError::LockLost {
                    place: self.place.clone(),
                    holder: current,
                });
            };
            let acquired = read
                .lease
                .spec
                .as_ref()
                .and_then(|spec| spec.acquire_time.as_ref())
                .and_then(|time| u64::try_from(time.0.as_millisecond()).ok())
                .unwrap_or(now);
            let version = read.lease.metadata.resource_version.clone();
            let lease = self.lease(holder, now, version, acquired);
            match self.api.replace(&self.name, &params(), &lease).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(error) => return Err(self.failed("renew the lock", error)),
            }
        }
        Err(self.failed("renew the lock", "other writers kept changing it"))
    }

    /// Deletes the lease if it is `holder`'s (or whoever's, with `None`), at the version read.
    async fn delete(&self, holder: Option<&Holder>) -> Result<Option<Holder>, StateError> {
        let Some(read) = self.read().await? else {
            return match holder {
                Some(_) => Err(StateError::LockLost {
                    place: self.place.clone(),
                    holder: None,
                }),
                None => Ok(None),
            };
        };
        if let Some(holder) = holder
            && read.holder.as_ref() != Some(holder)
        {
            return Err(StateError::LockLost {
                place: self.place.clone(),
                holder: read.holder,
            });
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: read.lease.metadata.resource_version.clone(),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(&self.name, &params).await {
            Ok(_) => Ok(read.holder),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(read.holder),
            Err(error) => Err(self.failed("release the lock", error)),
        }
    }

    pub(crate) async fn break_lock(&self) -> Result<Option<Holder>, StateError> {
        self.delete(None).await
    }
}

fn params() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    }
}

/// A held Lease, renewed in the background until it is released or dropped.
pub(crate) struct ClusterLock<'a> {
    records: &'a ClusterRecords,
    leases: Arc<Leases>,
    holder: Holder,
    /// Set by the renewer when the lease turned out to be someone else's.
    lost: Arc<Mutex<Option<StateError>>>,
    renewer: Option<tokio::task::JoinHandle<()>>,
    held: bool,
}

impl<'a> ClusterLock<'a> {
    /// Takes the lease, starts renewing it, and brings the index up to date with the
    /// revisions before anything is written under it.
    pub(crate) fn take(records: &'a ClusterRecords, holder: Holder) -> Result<Self, StateError> {
        let leases = Arc::new(records.leases());
        records.block_on(async {
            records.ensure_namespace().await?;
            leases.acquire(&holder, tier_state::system_clock()).await
        })?;
        let lost = Arc::new(Mutex::new(None));
        let renewer = records.handle().spawn(renew_until_lost(
            leases.clone(),
            holder.clone(),
            lost.clone(),
        ));
        let lock = ClusterLock {
            records,
            leases,
            holder,
            lost,
            renewer: Some(renewer),
            held: true,
        };
        records.block_on(records.repair_index())?;
        Ok(lock)
    }

    /// Fails with `LockLost` unless the lease is still this lock's: checked before each write.
    async fn ensure_held(&self) -> Result<(), StateError> {
        if let Some(lost) = self
            .lost
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        {
            return Err(lost);
        }
        self.leases
            .renew(&self.holder, tier_state::system_clock())
            .await
    }

    fn stop_renewing(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
    }
}

/// Renews every third of the lease's duration; stops when the lease is no longer ours.
async fn renew_until_lost(
    leases: Arc<Leases>,
    holder: Holder,
    lost: Arc<Mutex<Option<StateError>>>,
) {
    let every = (leases.duration / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        match leases.renew(&holder, tier_state::system_clock()).await {
            Ok(()) => {}
            Err(error @ StateError::LockLost { .. }) => {
                *lost.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(error);
                return;
            }
            // A request that failed (the server restarting): try again at the next tick; the
            // lease expires if it never comes back.
            Err(_) => {}
        }
    }
}

impl HeldLock for ClusterLock<'_> {
    fn holder(&self) -> &Holder {
        &self.holder
    }

    fn begin(&self, revision: NewRevision<'_>) -> Result<u64, StateError> {
        self.records.block_on(async {
            self.ensure_held().await?;
            self.records
                .begin(revision, tier_state::system_clock())
                .await
        })
    }

    fn finish(&self, number: u64, outcome: Outcome) -> Result<(), StateError> {
        self.records.block_on(async {
            self.ensure_held().await?;
            self.records
                .finish(number, outcome, tier_state::system_clock())
                .await
        })
    }

    fn import(&self, revisions: &[Revision]) -> Result<(), StateError> {
        self.records.block_on(async {
            self.ensure_held().await?;
            self.records.import(revisions).await
        })
    }

    fn release(mut self: Box<Self>) -> Result<(), StateError> {
        self.stop_renewing();
        self.held = false;
        self.records
            .block_on(self.leases.delete(Some(&self.holder)))
            .map(drop)
    }
}

impl Drop for ClusterLock<'_> {
    fn drop(&mut self) {
        self.stop_renewing();
        if self.held {
            // Best-effort, as a state file's lock: a lease left behind expires.
            let _ = self
                .records
                .block_on(self.leases.delete(Some(&self.holder)));
        }
    }
}
