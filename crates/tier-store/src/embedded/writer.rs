//! One queued write applied to the tables of the open write transaction.

use std::time::{Duration, SystemTime};

use redb::{ReadableTable, WriteTransaction};

use super::failure::Failure;
use super::queue::{Effect, Outcome, WriteOp};
use super::{
    COMPACTED, Inner, KV, LEASE_KEYS, LEASES, LOG, META, NEXT_LEASE, REVISION, lock, meta_value,
    unix_millis,
};
use crate::codec::{self, StoredKey, StoredLease};
use crate::error::StoreError;
use crate::types::{CasOutcome, Event, Lease, LeaseId, Op, Revision, TxnOutcome};

/// The tables of one write transaction and the events it produced.
pub(super) struct Writer<'t> {
    meta: redb::Table<'t, &'static str, u64>,
    kv: redb::Table<'t, &'static str, &'static [u8]>,
    log: redb::Table<'t, u64, &'static [u8]>,
    pub(super) leases: redb::Table<'t, i64, &'static [u8]>,
    lease_keys: redb::Table<'t, (i64, &'static str), ()>,
    revision: Revision,
    compacted: Revision,
    /// The revision a transaction's operations all take while it is being applied.
    open_txn: Option<Revision>,
    pub(super) events: Vec<Event>,
}

impl<'t> Writer<'t> {
    pub(super) fn open(transaction: &'t WriteTransaction) -> Result<Writer<'t>, Failure> {
        let meta = transaction.open_table(META)?;
        let revision = Revision(meta_value(&meta, REVISION)?);
        let compacted = Revision(meta_value(&meta, COMPACTED)?);
        Ok(Writer {
            meta,
            kv: transaction.open_table(KV)?,
            log: transaction.open_table(LOG)?,
            leases: transaction.open_table(LEASES)?,
            lease_keys: transaction.open_table(LEASE_KEYS)?,
            revision,
            compacted,
            open_txn: None,
            events: Vec::new(),
        })
    }

    /// Applies one queued write. A refusal (`Failure::Store`) is returned before anything
    /// changed, so the rest of the batch can go on.
    pub(super) fn apply(
        &mut self,
        op: &WriteOp,
        inner: &Inner,
    ) -> Result<(Outcome, Effect), Failure> {
        match op {
            WriteOp::Put {
                key,
                value,
                lease,
                at,
            } => {
                if let Some(id) = *lease
                    && inner.lease_expired(id, *at)
                {
                    return Err(StoreError::LeaseNotFound(id).into());
                }
                let revision = self.put_key(key, value.clone(), *lease)?;
                Ok((Outcome::Written(revision), Effect::None))
            }
            WriteOp::Delete { key } => Ok((Outcome::Deleted(self.delete_key(key)?), Effect::None)),
            WriteOp::PutIfModRevision {
                key,
                expected,
                value,
            } => {
                let current = self.stored(key)?;
                let current_revision = current
                    .as_ref()
                    .map_or(Revision(0), |record| record.mod_revision);
                if current_revision != *expected {
                    let current = current.map(|record| record.into_key_value(key.clone()));
                    return Ok((
                        Outcome::Swap(CasOutcome::Conflict { current }),
                        Effect::None,
                    ));
                }
                let lease = current.and_then(|record| record.lease);
                let revision = self.put_key(key, value.clone(), lease)?;
                Ok((Outcome::Swap(CasOutcome::Written(revision)), Effect::None))
            }
            WriteOp::Txn { compare, then, at } => {
                let mut current = Vec::with_capacity(compare.len());
                let mut holds = true;
                for condition in compare {
                    let stored = self.stored(&condition.key)?;
                    let mod_revision = stored
                        .as_ref()
                        .map_or(Revision(0), |record| record.mod_revision);
                    holds &= mod_revision == condition.mod_revision;
                    current.push(stored.map(|record| record.into_key_value(condition.key.clone())));
                }
                if !holds {
                    let outcome = TxnOutcome::Failed { current };
                    return Ok((Outcome::Txn(outcome), Effect::None));
                }
                // Every refusal before the first change, so a refused transaction writes
                // nothing and the rest of the batch goes on.
                for op in then {
                    if let Op::Put {
                        lease: Some(id), ..
                    } = op
                        && (inner.lease_expired(*id, *at) || self.lease(*id)?.is_none())
                    {
                        return Err(StoreError::LeaseNotFound(*id).into());
                    }
                }
                let revision = self.revision.next();
                self.open_txn = Some(revision);
                let applied = self.apply_ops(then);
                self.open_txn = None;
                let changed = applied?;
                let revision = if changed { revision } else { self.revision };
                Ok((
                    Outcome::Txn(TxnOutcome::Committed { revision }),
                    Effect::None,
                ))
            }
            WriteOp::Grant { ttl, at } => {
                let ttl_millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let id =
                    LeaseId(i64::try_from(self.take_lease_id()?).map_err(|_| {
                        Failure::Corrupt("the lease id counter overflowed".to_owned())
                    })?);
                self.store_lease(id, ttl_millis, (inner.config.wall_clock)())?;
                let lease = Lease { id, ttl: *ttl };
                Ok((Outcome::Lease(lease), Effect::Deadline(id, *at + *ttl)))
            }
            WriteOp::KeepAlive { id, at } => {
                let live = !inner.lease_expired(*id, *at);
                let Some(stored) = self.lease(*id)?.filter(|_| live) else {
                    return Err(StoreError::LeaseNotFound(*id).into());
                };
                self.store_lease(*id, stored.ttl_millis, (inner.config.wall_clock)())?;
                let ttl = Duration::from_millis(stored.ttl_millis);
                let lease = Lease { id: *id, ttl };
                Ok((Outcome::Lease(lease), Effect::Deadline(*id, *at + ttl)))
            }
            WriteOp::Revoke { id } => {
                if !self.revoke_lease(*id)? {
                    return Err(StoreError::LeaseNotFound(*id).into());
                }
                Ok((Outcome::Done, Effect::Forget(vec![*id])))
            }
            WriteOp::RevokeExpired { at } => {
                let expired: Vec<LeaseId> = lock(&inner.deadlines)
                    .iter()
                    .filter(|(_, deadline)| **deadline <= *at)
                    .map(|(id, _)| *id)
                    .collect();
                for id in &expired {
                    self.revoke_lease(*id)?;
                }
                Ok((Outcome::Done, Effect::Forget(expired)))
            }
            WriteOp::Compact { revision } => {
                if *revision > self.revision {
                    return Err(StoreError::FutureRevision {
                        requested: *revision,
                        current: self.revision,
                    }
                    .into());
                }
                if *revision <= self.compacted {
                    return Err(StoreError::Compacted {
                        requested: *revision,
                        compacted: self.compacted,
                    }
                    .into());
                }
                self.compact_to(*revision)?;
                Ok((Outcome::Done, Effect::None))
            }
        }
    }

    /// Applies a transaction's operations at the open revision; `true` if one changed a key.
    fn apply_ops(&mut self, then: &[Op]) -> Result<bool, Failure> {
        let mut changed = false;
        for op in then {
            match op {
                Op::Put { key, value, lease } => {
                    self.put_key(key, value.clone(), *lease)?;
                    changed = true;
                }
                Op::Delete { key } => changed |= self.delete_key(key)?.is_some(),
            }
        }
        Ok(changed)
    }

    /// The revision the next change takes: the open transaction's, or the next one.
    fn next_revision(&self) -> Revision {
        self.open_txn.unwrap_or_else(|| self.revision.next())
    }

    fn stored(&self, key: &str) -> Result<Option<StoredKey>, Failure> {
        match self.kv.get(key)? {
            Some(record) => Ok(Some(
                codec::decode_key(record.value()).map_err(Failure::Corrupt)?,
            )),
            None => Ok(None),
        }
    }

    fn lease(&self, id: LeaseId) -> Result<Option<StoredLease>, Failure> {
        match self.leases.get(id.0)? {
            Some(record) => Ok(Some(
                codec::decode_lease(record.value()).map_err(Failure::Corrupt)?,
            )),
            None => Ok(None),
        }
    }

    fn put_key(
        &mut self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, Failure> {
        if let Some(id) = lease
            && self.lease(id)?.is_none()
        {
            return Err(StoreError::LeaseNotFound(id).into());
        }
        let previous = self.stored(key)?;
        let revision = self.next_revision();
        let (create_revision, version) = match &previous {
            Some(record) => (record.create_revision, record.version.saturating_add(1)),
            None => (revision, 1),
        };
        let previous_lease = previous.and_then(|record| record.lease);
        if previous_lease != lease {
            if let Some(LeaseId(old)) = previous_lease {
                self.lease_keys.remove((old, key))?;
            }
            if let Some(LeaseId(new)) = lease {
                self.lease_keys.insert((new, key), ())?;
            }
        }
        let record = StoredKey {
            value,
            create_revision,
            mod_revision: revision,
            version,
            lease,
        };
        self.kv.insert(key, codec::encode_key(&record).as_slice())?;
        self.append(Event::Put(record.into_key_value(key.to_owned())))?;
        Ok(revision)
    }

    fn delete_key(&mut self, key: &str) -> Result<Option<Revision>, Failure> {
        let Some(previous) = self.stored(key)? else {
            return Ok(None);
        };
        self.kv.remove(key)?;
        if let Some(LeaseId(id)) = previous.lease {
            self.lease_keys.remove((id, key))?;
        }
        let revision = self.next_revision();
        self.append(Event::Delete {
            key: key.to_owned(),
            revision,
        })?;
        Ok(Some(revision))
    }

    /// Records an event in the log under its revision, together with the earlier events of
    /// the same revision (a transaction's).
    fn append(&mut self, event: Event) -> Result<(), Failure> {
        let revision = event.revision();
        self.revision = revision;
        self.events.push(event);
        let first = self
            .events
            .iter()
            .rposition(|event| event.revision() != revision)
            .map_or(0, |index| index + 1);
        self.log.insert(
            revision.0,
            codec::encode_events(&self.events[first..]).as_slice(),
        )?;
        Ok(())
    }

    /// Deletes the lease and its keys; `false` when there is no such lease.
    pub(super) fn revoke_lease(&mut self, id: LeaseId) -> Result<bool, Failure> {
        if self.leases.remove(id.0)?.is_none() {
            return Ok(false);
        }
        let mut keys = Vec::new();
        for entry in self.lease_keys.range((id.0, "")..)? {
            let (lease_and_key, _) = entry?;
            let (lease, key) = lease_and_key.value();
            if lease != id.0 {
                break;
            }
            keys.push(key.to_owned());
        }
        for key in keys {
            self.delete_key(&key)?;
        }
        Ok(true)
    }

    fn take_lease_id(&mut self) -> Result<u64, Failure> {
        let id = meta_value(&self.meta, NEXT_LEASE)?.max(1);
        self.meta.insert(NEXT_LEASE, id.saturating_add(1))?;
        Ok(id)
    }

    fn store_lease(
        &mut self,
        id: LeaseId,
        ttl_millis: u64,
        wall_now: SystemTime,
    ) -> Result<(), Failure> {
        let record = StoredLease {
            ttl_millis,
            expires_unix_millis: unix_millis(wall_now).saturating_add(ttl_millis),
        };
        self.leases
            .insert(id.0, codec::encode_lease(&record).as_slice())?;
        Ok(())
    }

    fn compact_to(&mut self, revision: Revision) -> Result<(), Failure> {
        self.log.retain_in(..revision.0, |_, _| false)?;
        self.compacted = revision;
        Ok(())
    }

    /// Records the revisions and trims history beyond `history` revisions.
    pub(super) fn finish(&mut self, history: Option<u64>) -> Result<(), Failure> {
        if let Some(history) = history {
            let keep_from = Revision(
                self.revision
                    .0
                    .saturating_sub(history.max(1))
                    .saturating_add(1),
            );
            if keep_from.0.saturating_sub(self.compacted.0) >= history.max(1) {
                self.compact_to(keep_from)?;
            }
        }
        self.meta.insert(REVISION, self.revision.0)?;
        self.meta.insert(COMPACTED, self.compacted.0)?;
        Ok(())
    }
}
