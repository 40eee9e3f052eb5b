//! The [`Backend`] operations on etcd's KV, Watch and Lease APIs.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use etcd_client::{
    CompactionOptions, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
};

use super::client::{EtcdStore, header_revision, prefix_end, to_etcd};
use super::requests::{Rejection, etcd_error, rejection, within_raw};
use super::watch::Watcher;
use crate::backend::{Backend, WatchStream, check_key, check_ttl};
use crate::error::StoreError;
use crate::types::{
    self, CasOutcome, KeyValue, Lease, LeaseId, Op, Range, Revision, Selector, TxnOutcome,
    check_txn,
};
use crate::watch_feed::watch_stream;

/// How many keys one range request asks for; a prefix with more is read in pages, all at
/// the first page's revision.
const PAGE: i64 = 500;

/// The largest response accepted (etcd's default request limit is 1.5 MiB per value).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

impl Backend for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        check_key(key)?;
        let response = self
            .unary(self.client.kv_client().get(self.full_key(key), None))
            .await?;
        response
            .kvs()
            .first()
            .map(|kv| self.key_value(kv))
            .transpose()
    }

    async fn range(&self, prefix: &str) -> Result<Range, StoreError> {
        let start = self.full_key(prefix);
        let end = prefix_end(&start);
        let mut revision = None;
        let mut kvs = Vec::new();
        let mut from = start;
        loop {
            let mut options = GetOptions::new().with_limit(PAGE);
            options = match &end {
                Some(end) => options.with_range(end.clone()),
                None => options.with_from_key(),
            };
            if let Some(revision) = revision {
                options = options.with_revision(to_etcd(revision)?);
            }
            let mut kv_client = self
                .client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES);
            let response = self
                .unary(kv_client.get(from.clone(), Some(options)))
                .await?;
            let read_at = match revision {
                Some(revision) => revision,
                None => header_revision(response.header())?,
            };
            revision = Some(read_at);
            for kv in response.kvs() {
                kvs.push(self.key_value(kv)?);
            }
            match response.kvs().last() {
                Some(last) if response.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => {
                    return Ok(Range {
                        revision: read_at,
                        kvs,
                    });
                }
            }
        }
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, StoreError> {
        check_key(key)?;
        let options = lease.map(|LeaseId(id)| PutOptions::new().with_lease(id));
        let mut kv = self.client.kv_client();
        let response = kv.put(self.full_key(key), value, options);
        match within_raw(self.config.request_timeout, response).await? {
            Ok(response) => header_revision(response.header()),
            Err(error) => Err(match (rejection(&error), lease) {
                (Rejection::LeaseNotFound, Some(id)) => StoreError::LeaseNotFound(id),
                _ => etcd_error(&error),
            }),
        }
    }

    async fn delete(&self, key: &str) -> Result<Option<Revision>, StoreError> {
        check_key(key)?;
        let response = self
            .unary(self.client.kv_client().delete(self.full_key(key), None))
            .await?;
        if response.deleted() > 0 {
            Ok(Some(header_revision(response.header())?))
        } else {
            Ok(None)
        }
    }

    async fn txn_put_if_mod_revision(
        &self,
        key: &str,
        expected: Revision,
        value: Vec<u8>,
    ) -> Result<CasOutcome, StoreError> {
        check_key(key)?;
        let full = self.full_key(key);
        // A swap keeps the key's lease, as the embedded store does; a key that must not
        // exist yet has none to keep (and etcd refuses `ignore_lease` for a missing key).
        let options = (expected != Revision(0)).then(|| PutOptions::new().with_ignore_lease());
        let txn = Txn::new()
            .when([Compare::mod_revision(
                full.clone(),
                CompareOp::Equal,
                to_etcd(expected)?,
            )])
            .and_then([TxnOp::put(full.clone(), value, options)]);
        let response = self.unary(self.client.kv_client().txn(txn)).await?;
        let revision = header_revision(response.header())?;
        if response.succeeded() {
            return Ok(CasOutcome::Written(revision));
        }
        // A failed transaction writes nothing, so the key as the comparison saw it is the
        // key at the response's revision.
        let options = GetOptions::new().with_revision(to_etcd(revision)?);
        let mut kv = self.client.kv_client();
        let at = kv.get(full.clone(), Some(options));
        let response = match within_raw(self.config.request_timeout, at).await? {
            Ok(response) => response,
            Err(error) if rejection(&error) == Rejection::Compacted => {
                self.unary(self.client.kv_client().get(full, None)).await?
            }
            Err(error) => return Err(etcd_error(&error)),
        };
        let current = response
            .kvs()
            .first()
            .map(|kv| self.key_value(kv))
            .transpose()?;
        Ok(CasOutcome::Conflict { current })
    }

    async fn txn(
        &self,
        compare: Vec<types::Compare>,
        then: Vec<Op>,
    ) -> Result<TxnOutcome, StoreError> {
        check_txn(&compare, &then)?;
        let mut conditions = Vec::with_capacity(compare.len());
        let mut reads = Vec::with_capacity(compare.len());
        for condition in &compare {
            let key = self.full_key(&condition.key);
            let expected = to_etcd(condition.mod_revision)?;
            conditions.push(Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                expected,
            ));
            // On failure etcd runs the else branch in the same transaction, so the keys
            // read are the keys the comparisons saw.
            reads.push(TxnOp::get(key, None));
        }
        let mut lease_of_first_put = None;
        let operations: Vec<TxnOp> = then
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value, lease } => {
                    lease_of_first_put = lease_of_first_put.or(lease);
                    let options = lease.map(|LeaseId(id)| PutOptions::new().with_lease(id));
                    TxnOp::put(self.full_key(&key), value, options)
                }
                Op::Delete { key } => TxnOp::delete(self.full_key(&key), None),
            })
            .collect();
        let txn = Txn::new()
            .when(conditions)
            .and_then(operations)
            .or_else(reads);
        let mut kv = self.client.kv_client();
        let response = match within_raw(self.config.request_timeout, kv.txn(txn)).await? {
            Ok(response) => response,
            Err(error) => {
                return Err(match (rejection(&error), lease_of_first_put) {
                    (Rejection::LeaseNotFound, Some(id)) => StoreError::LeaseNotFound(id),
                    _ => etcd_error(&error),
                });
            }
        };
        let revision = header_revision(response.header())?;
        if response.succeeded() {
            return Ok(TxnOutcome::Committed { revision });
        }
        let mut current = Vec::with_capacity(compare.len());
        for answer in response.op_responses() {
            let TxnOpResponse::Get(read) = answer else {
                return Err(StoreError::Etcd(
                    "a failed transaction answered something other than its reads".into(),
                ));
            };
            current.push(
                read.kvs()
                    .first()
                    .map(|kv| self.key_value(kv))
                    .transpose()?,
            );
        }
        if current.len() != compare.len() {
            return Err(StoreError::Etcd(
                "a failed transaction answered too few reads".into(),
            ));
        }
        Ok(TxnOutcome::Failed { current })
    }

    async fn watch(&self, selector: Selector, from: Revision) -> Result<WatchStream, StoreError> {
        let from = if from == Revision(0) {
            self.current_revision().await?.next()
        } else {
            from
        };
        if !self.retained(from).await? {
            return Err(StoreError::Compacted {
                requested: from,
                compacted: self.compacted_revision().await?,
            });
        }
        let stream = self.open_watch(&selector, from).await?;
        let watcher = Watcher {
            store: self.clone(),
            selector,
            next: from,
            stream: Some(stream),
        };
        Ok(watch_stream(VecDeque::new(), watcher))
    }

    async fn grant(&self, ttl: Duration) -> Result<Lease, StoreError> {
        check_ttl(ttl)?;
        let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let seconds = i64::try_from(seconds).map_err(|_| StoreError::InvalidTtl)?;
        let response = self
            .unary(self.client.lease_client().grant(seconds, None))
            .await?;
        if !response.error().is_empty() {
            return Err(StoreError::Etcd(response.error().to_owned()));
        }
        Ok(Lease {
            id: LeaseId(response.id()),
            ttl: Duration::from_secs(u64::try_from(response.ttl()).unwrap_or(0)),
        })
    }

    async fn keep_alive(&self, id: LeaseId) -> Result<Lease, StoreError> {
        let mut leases = self.client.lease_client();
        match within_raw(self.config.request_timeout, leases.keep_alive(id.0)).await? {
            Ok(_) => {}
            Err(error) if rejection(&error) == Rejection::LeaseNotFound => {
                return Err(StoreError::LeaseNotFound(id));
            }
            Err(error) => return Err(etcd_error(&error)),
        }
        let response = self.unary(leases.time_to_live(id.0, None)).await?;
        if response.ttl() < 0 {
            return Err(StoreError::LeaseNotFound(id));
        }
        Ok(Lease {
            id,
            ttl: Duration::from_secs(u64::try_from(response.granted_ttl()).unwrap_or(0)),
        })
    }

    async fn revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        let mut leases = self.client.lease_client();
        match within_raw(self.config.request_timeout, leases.revoke(id.0)).await? {
            Ok(_) => Ok(()),
            Err(error) if rejection(&error) == Rejection::LeaseNotFound => {
                Err(StoreError::LeaseNotFound(id))
            }
            Err(error) => Err(etcd_error(&error)),
        }
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let options = CompactionOptions::new().with_physical();
        let mut kv = self.client.kv_client();
        let compacting = kv.compact(to_etcd(revision)?, Some(options));
        match within_raw(self.config.request_timeout, compacting).await? {
            Ok(_) => {
                self.compacted.fetch_max(revision.0, Ordering::SeqCst);
                Ok(())
            }
            Err(error) => match rejection(&error) {
                Rejection::Compacted => Err(StoreError::Compacted {
                    requested: revision,
                    compacted: self.compacted_revision().await?,
                }),
                Rejection::FutureRevision => Err(StoreError::FutureRevision {
                    requested: revision,
                    current: self.current_revision().await?,
                }),
                _ => Err(etcd_error(&error)),
            },
        }
    }

    async fn revisions(&self) -> Result<(Revision, Revision), StoreError> {
        let current = self.current_revision().await?;
        Ok((current, self.compacted_revision().await?))
    }
}
