//! The etcd backend: the same [`Backend`](crate::Backend) over a real etcd cluster (v3 API,
//! gRPC), behind the cargo feature `etcd`.
//!
//! Addresses have the form `etcd://HOST:PORT[,HOST:PORT...][/NAMESPACE]`, for example
//! `etcd://10.0.0.5:2379,10.0.0.6:2379/tier/prod`. The namespace is a key prefix: every key
//! the store reads or writes is `NAMESPACE/` followed by the key, and keys come back without
//! it, so several environments can share one etcd cluster without seeing each other's keys.
//! A namespace that does not end in `/` gets one, so `tier/prod` never overlaps
//! `tier/prod-ie`. No namespace uses the whole keyspace.
//!
//! What differs from the embedded store, all of it etcd's own behaviour:
//! - Revisions are the cluster's. A fresh etcd is at revision 1, so its first write is
//!   revision 2, and writes in other namespaces advance the revision too: revisions grow and
//!   are never reused, but a namespace's own writes may have gaps between them.
//! - One revision may hold several events: a lease that expires or is revoked deletes all its
//!   keys in one revision. A watcher resuming after revision R asks for R + 1 once it has every
//!   event of R.
//! - Lease times to live are whole seconds (rounded up), and etcd raises very short ones to its
//!   minimum (about two seconds with default settings).
//!
//! The parsing of addresses is always compiled, so a binary built without the feature can
//! still say what it was asked for.

use std::time::Duration;

use crate::error::StoreError;

#[cfg(feature = "etcd")]
pub use client::EtcdStore;

/// Where the etcd cluster is and which part of its keyspace this store owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdConfig {
    /// gRPC endpoints, each `http://HOST:PORT`.
    pub endpoints: Vec<String>,
    /// The key prefix, empty or ending in `/`.
    pub namespace: String,
    /// How long connecting and each unary request may take.
    pub request_timeout: Duration,
    /// How long a watch keeps trying to reconnect after its stream broke before it fails.
    pub watch_reconnect: Duration,
}

impl EtcdConfig {
    /// A store over `endpoints` (`HOST:PORT` each) in `namespace`.
    pub fn new(endpoints: Vec<String>, namespace: &str) -> EtcdConfig {
        EtcdConfig {
            endpoints: endpoints
                .into_iter()
                .map(|endpoint| format!("http://{endpoint}"))
                .collect(),
            namespace: normalise_namespace(namespace),
            request_timeout: Duration::from_secs(10),
            watch_reconnect: Duration::from_secs(30),
        }
    }

    /// Parses `etcd://HOST:PORT[,HOST:PORT...][/NAMESPACE]`.
    pub fn from_address(address: &str) -> Result<EtcdConfig, StoreError> {
        let invalid = |reason| StoreError::InvalidAddress {
            address: address.to_owned(),
            reason,
        };
        let rest = address
            .strip_prefix("etcd://")
            .ok_or_else(|| invalid("it must start with etcd://"))?;
        if rest.contains(['?', '#', '@']) || rest.chars().any(char::is_whitespace) {
            return Err(invalid(
                "it takes no user, query, fragment or spaces: etcd://HOST:PORT[,HOST:PORT][/NAMESPACE]",
            ));
        }
        let (hosts, namespace) = rest.split_once('/').unwrap_or((rest, ""));
        let mut endpoints = Vec::new();
        for endpoint in hosts.split(',') {
            let (host, port) = endpoint
                .rsplit_once(':')
                .ok_or_else(|| invalid("every endpoint needs a port: HOST:PORT"))?;
            let bracketed = host.starts_with('[') && host.ends_with(']');
            if host.is_empty() || (host.contains(':') && !bracketed) {
                return Err(invalid(
                    "an endpoint's host is empty or an IPv6 address without brackets",
                ));
            }
            match port.parse::<u16>() {
                Ok(port) if port > 0 => endpoints.push(format!("{host}:{port}")),
                _ => return Err(invalid("a port must be a number from 1 to 65535")),
            }
        }
        Ok(EtcdConfig::new(endpoints, namespace))
    }
}

fn normalise_namespace(namespace: &str) -> String {
    let namespace = namespace.trim_start_matches('/');
    if namespace.is_empty() || namespace.ends_with('/') {
        namespace.to_owned()
    } else {
        format!("{namespace}/")
    }
}

#[cfg(feature = "etcd")]
mod client {
    use std::collections::VecDeque;
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use etcd_client::{
        Client, CompactionOptions, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn,
        TxnOp, TxnOpResponse, WatchOptions,
    };
    use tokio::time::Instant;

    use super::EtcdConfig;
    use crate::backend::{Backend, WatchStream, check_key, check_ttl};
    use crate::error::StoreError;
    use crate::types::{
        self, CasOutcome, Event, KeyValue, Lease, LeaseId, Op, Range, Revision, Selector,
        TxnOutcome, check_txn,
    };
    use crate::watch_feed::{Fetched, WatchSource, watch_stream};

    /// How many keys one range request asks for; a prefix with more is read in pages, all at
    /// the first page's revision.
    const PAGE: i64 = 500;

    /// The largest response accepted (etcd's default request limit is 1.5 MiB per value).
    const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

    /// The store on an etcd cluster. Cheap to clone; clones share one gRPC connection.
    #[derive(Clone)]
    pub struct EtcdStore {
        client: Client,
        config: Arc<EtcdConfig>,
        /// The highest compaction revision seen (by `compact` or a refused read), so that
        /// learning the current one usually takes one request.
        compacted: Arc<AtomicU64>,
    }

    impl EtcdStore {
        /// Connects to the cluster and checks that it answers within the request timeout.
        pub async fn connect(config: EtcdConfig) -> Result<EtcdStore, StoreError> {
            let options = ConnectOptions::new()
                .with_connect_timeout(config.request_timeout)
                .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10));
            let connecting = Client::connect(config.endpoints.clone(), Some(options));
            let client = within(config.request_timeout, connecting).await?;
            let store = EtcdStore {
                client,
                config: Arc::new(config),
                compacted: Arc::new(AtomicU64::new(0)),
            };
            store.current_revision().await?;
            Ok(store)
        }

        /// Parses an `etcd://` address (see the module documentation) and connects.
        pub async fn connect_to(address: &str) -> Result<EtcdStore, StoreError> {
            EtcdStore::connect(EtcdConfig::from_address(address)?).await
        }

        /// The key prefix this store owns.
        pub fn namespace(&self) -> &str {
            &self.config.namespace
        }

        fn full_key(&self, key: &str) -> Vec<u8> {
            let mut full = Vec::with_capacity(self.config.namespace.len() + key.len());
            full.extend_from_slice(self.config.namespace.as_bytes());
            full.extend_from_slice(key.as_bytes());
            full
        }

        /// A key in the namespace that no store key can be (keys are UTF-8 without NUL in
        /// practice; etcd refuses an empty key), for requests that only want a header.
        fn probe_key(&self) -> Vec<u8> {
            let mut key = self.full_key("");
            key.push(0);
            key
        }

        async fn unary<T>(
            &self,
            request: impl Future<Output = Result<T, etcd_client::Error>>,
        ) -> Result<T, StoreError> {
            within(self.config.request_timeout, request).await
        }

        async fn current_revision(&self) -> Result<Revision, StoreError> {
            let options = GetOptions::new().with_count_only();
            let response = self
                .unary(self.client.kv_client().get(self.probe_key(), Some(options)))
                .await?;
            header_revision(response.header())
        }

        /// Whether history at `revision` is still readable: `Ok(false)` when it was compacted.
        async fn retained(&self, revision: Revision) -> Result<bool, StoreError> {
            let options = GetOptions::new()
                .with_count_only()
                .with_revision(to_etcd(revision)?);
            let mut kv = self.client.kv_client();
            let response = kv.get(self.probe_key(), Some(options));
            match within_raw(self.config.request_timeout, response).await {
                Ok(Ok(_)) => Ok(true),
                Ok(Err(error)) if rejection(&error) == Rejection::Compacted => Ok(false),
                Ok(Err(error)) if rejection(&error) == Rejection::FutureRevision => Ok(true),
                Ok(Err(error)) => Err(etcd_error(&error)),
                Err(elapsed) => Err(elapsed),
            }
        }

        /// The revision etcd last compacted to (`Revision(0)` if it never did). Usually one
        /// request confirms the last one seen; when another client compacted further, a watch
        /// from the old revision makes etcd say how far.
        async fn compacted_revision(&self) -> Result<Revision, StoreError> {
            let known = Revision(self.compacted.load(Ordering::SeqCst));
            if self.retained(Revision(known.0.max(1))).await? {
                return Ok(known);
            }
            let options = WatchOptions::new()
                .with_start_revision(to_etcd(Revision(known.0.max(1)))?)
                .with_prefix();
            let mut watch = self
                .unary(
                    self.client
                        .watch_client()
                        .watch(self.full_key(""), Some(options)),
                )
                .await?;
            let deadline = Instant::now() + self.config.request_timeout;
            loop {
                let message = tokio::time::timeout_at(deadline, watch.message()).await;
                let response = match message {
                    Ok(Ok(Some(response))) => response,
                    Ok(Ok(None)) => {
                        return Err(StoreError::Etcd(
                            "the watch ended before etcd named its compacted revision".into(),
                        ));
                    }
                    Ok(Err(error)) => return Err(etcd_error(&error)),
                    Err(_) => {
                        return Err(StoreError::Etcd(format!(
                            "etcd did not name its compacted revision within {:?}",
                            self.config.request_timeout
                        )));
                    }
                };
                if response.compact_revision() > 0 {
                    let compacted = from_etcd(response.compact_revision());
                    self.compacted.fetch_max(compacted.0, Ordering::SeqCst);
                    return Ok(compacted);
                }
            }
        }

        fn key_value(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
            Ok(KeyValue {
                key: self.strip(kv.key())?,
                value: kv.value().to_vec(),
                create_revision: from_etcd(kv.create_revision()),
                mod_revision: from_etcd(kv.mod_revision()),
                version: u64::try_from(kv.version()).unwrap_or(0),
                lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
            })
        }

        fn strip(&self, key: &[u8]) -> Result<String, StoreError> {
            let own = key
                .strip_prefix(self.config.namespace.as_bytes())
                .ok_or_else(|| {
                    StoreError::Etcd(format!(
                        "etcd returned a key outside the namespace {:?}",
                        self.config.namespace
                    ))
                })?;
            String::from_utf8(own.to_vec()).map_err(|_| {
                StoreError::Etcd(format!(
                    "a key in the namespace {:?} is not UTF-8: {}",
                    self.config.namespace,
                    String::from_utf8_lossy(own)
                ))
            })
        }

        fn event(&self, event: &etcd_client::Event) -> Result<Event, StoreError> {
            let Some(kv) = event.kv() else {
                return Err(StoreError::Etcd("a watch event without a key".into()));
            };
            // etcd marks a deletion by a zero create revision (mvcc's watchable store does
            // exactly this when it builds events); reading the type field instead could panic
            // on a value this client does not know.
            if kv.create_revision() == 0 {
                Ok(Event::Delete {
                    key: self.strip(kv.key())?,
                    revision: from_etcd(kv.mod_revision()),
                })
            } else {
                Ok(Event::Put(self.key_value(kv)?))
            }
        }

        /// Opens an etcd watch for `selector` from `from` and waits until etcd confirms it.
        async fn open_watch(
            &self,
            selector: &Selector,
            from: Revision,
        ) -> Result<etcd_client::WatchStream, StoreError> {
            let mut options = WatchOptions::new().with_start_revision(to_etcd(from)?);
            let key = match selector {
                Selector::Key(key) => self.full_key(key),
                Selector::Prefix(prefix) => {
                    let key = self.full_key(prefix);
                    options = match prefix_end(&key) {
                        Some(end) => options.with_range(end),
                        None => options.with_from_key(),
                    };
                    key
                }
            };
            let mut watch = self
                .unary(self.client.watch_client().watch(key, Some(options)))
                .await?;
            match self.unary(watch.message()).await? {
                Some(response) if response.created() && !response.canceled() => Ok(watch),
                Some(response) => Err(StoreError::Etcd(format!(
                    "etcd refused the watch: {}",
                    response.cancel_reason()
                ))),
                None => Err(StoreError::Etcd("etcd closed the watch at once".into())),
            }
        }
    }

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

        async fn watch(
            &self,
            selector: Selector,
            from: Revision,
        ) -> Result<WatchStream, StoreError> {
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

    /// One watch's position: every event before `next` has been fetched.
    struct Watcher {
        store: EtcdStore,
        selector: Selector,
        next: Revision,
        /// `None` after the stream broke, until it is opened again from `next`.
        stream: Option<etcd_client::WatchStream>,
    }

    impl WatchSource for Watcher {
        async fn fetch(&mut self, events: &mut VecDeque<Event>) -> Result<Fetched, StoreError> {
            let Some(stream) = self.stream.as_mut() else {
                self.stream = Some(self.reconnect().await?);
                return Ok(Fetched::Open);
            };
            let response = match stream.message().await {
                Ok(Some(response)) => response,
                // The connection broke or etcd restarted: resume from `next`.
                Ok(None) | Err(_) => {
                    self.stream = None;
                    return Ok(Fetched::Open);
                }
            };
            if response.compact_revision() > 0 {
                let compacted = from_etcd(response.compact_revision());
                self.store
                    .compacted
                    .fetch_max(compacted.0, Ordering::SeqCst);
                return Err(StoreError::Compacted {
                    requested: self.next,
                    compacted,
                });
            }
            if response.canceled() {
                return Err(StoreError::Etcd(format!(
                    "etcd cancelled the watch: {}",
                    response.cancel_reason()
                )));
            }
            for event in response.events() {
                let event = self.store.event(event)?;
                self.next = self.next.max(event.revision().next());
                events.push_back(event);
            }
            Ok(Fetched::Open)
        }
    }

    impl Watcher {
        /// Opens the watch again from `next`, retrying with backoff for `watch_reconnect`.
        async fn reconnect(&self) -> Result<etcd_client::WatchStream, StoreError> {
            let deadline = Instant::now() + self.store.config.watch_reconnect;
            let mut pause = Duration::from_millis(50);
            loop {
                let error = match self.store.retained(self.next).await {
                    Ok(false) => {
                        return Err(StoreError::Compacted {
                            requested: self.next,
                            compacted: self.store.compacted_revision().await?,
                        });
                    }
                    Ok(true) => match self.store.open_watch(&self.selector, self.next).await {
                        Ok(stream) => return Ok(stream),
                        Err(error) => error,
                    },
                    Err(error) => error,
                };
                if Instant::now() + pause > deadline {
                    return Err(error);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }

    /// What an etcd error means for the caller.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Rejection {
        LeaseNotFound,
        Compacted,
        FutureRevision,
        Other,
    }

    fn rejection(error: &etcd_client::Error) -> Rejection {
        let message = match error {
            etcd_client::Error::GRpcStatus(status) => status.message(),
            etcd_client::Error::LeaseKeepAliveError(message) => message.as_str(),
            _ => return Rejection::Other,
        };
        if message.contains("lease not found") {
            Rejection::LeaseNotFound
        } else if message.contains("required revision has been compacted") {
            Rejection::Compacted
        } else if message.contains("required revision is a future revision") {
            Rejection::FutureRevision
        } else {
            Rejection::Other
        }
    }

    fn etcd_error(error: &etcd_client::Error) -> StoreError {
        match error {
            etcd_client::Error::GRpcStatus(status) => {
                StoreError::Etcd(format!("{} ({:?})", status.message(), status.code()))
            }
            other => StoreError::Etcd(other.to_string()),
        }
    }

    async fn within<T>(
        limit: Duration,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        within_raw(limit, request)
            .await?
            .map_err(|error| etcd_error(&error))
    }

    /// Bounds a request in time, leaving its own error to the caller.
    async fn within_raw<T>(
        limit: Duration,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<Result<T, etcd_client::Error>, StoreError> {
        tokio::time::timeout(limit, request)
            .await
            .map_err(|_| StoreError::Etcd(format!("no answer from etcd within {limit:?}")))
    }

    fn header_revision(
        header: Option<&etcd_client::ResponseHeader>,
    ) -> Result<Revision, StoreError> {
        header
            .map(|header| from_etcd(header.revision()))
            .ok_or_else(|| StoreError::Etcd("a response without a header".into()))
    }

    fn from_etcd(revision: i64) -> Revision {
        Revision(u64::try_from(revision).unwrap_or(0))
    }

    fn to_etcd(revision: Revision) -> Result<i64, StoreError> {
        i64::try_from(revision.0).map_err(|_| StoreError::FutureRevision {
            requested: revision,
            current: Revision(i64::MAX.unsigned_abs()),
        })
    }

    /// The end of the key range that holds every key starting with `prefix` (etcd's
    /// `range_end`), or `None` when that range runs to the end of the keyspace.
    fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
        let last = prefix.iter().rposition(|byte| *byte < 0xff)?;
        let mut end = prefix[..=last].to_vec();
        end[last] += 1;
        Some(end)
    }

    #[cfg(test)]
    mod tests {
        use super::prefix_end;

        #[test]
        fn prefix_ends_are_etcds() {
            assert_eq!(prefix_end(b"app/"), Some(b"app0".to_vec()));
            assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
            assert_eq!(prefix_end(b"\xff\xff"), None);
            assert_eq!(prefix_end(b""), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_into_endpoints_and_a_namespace() {
        let config = EtcdConfig::from_address("etcd://127.0.0.1:2379");
        assert!(
            config
                .as_ref()
                .is_ok_and(|config| config.endpoints == ["http://127.0.0.1:2379"]
                    && config.namespace.is_empty())
        );
        let config = EtcdConfig::from_address("etcd://a:1,[::1]:2/tier/prod");
        assert!(config.as_ref().is_ok_and(|config| config.endpoints
            == ["http://a:1", "http://[::1]:2"]
            && config.namespace == "tier/prod/"));
        let config = EtcdConfig::from_address("etcd://a:1/tier/dev/");
        assert!(config.is_ok_and(|config| config.namespace == "tier/dev/"));
    }

    #[test]
    fn bad_addresses_are_errors_that_say_why() {
        for bad in [
            "http://a:1",
            "etcd://",
            "etcd://a",
            "etcd://a:0",
            "etcd://a:99999",
            "etcd://:1",
            "etcd://a:1,",
            "etcd://::1:2",
            "etcd://user@a:1",
            "etcd://a:1?x=y",
            "etcd://a :1",
        ] {
            let error = EtcdConfig::from_address(bad).err();
            assert!(
                matches!(&error, Some(StoreError::InvalidAddress { address, .. }) if address == bad),
                "{bad}: {error:?}"
            );
        }
    }
}
