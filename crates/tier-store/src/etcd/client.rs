//! The connection to an etcd cluster and what every operation shares: keys in the namespace,
//! etcd's revisions, the compacted revision, events, and opening a watch.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, WatchOptions};
use tokio::time::Instant;

use super::EtcdConfig;
use super::requests::{Rejection, etcd_error, rejection, within, within_raw};
use crate::error::StoreError;
use crate::types::{Event, KeyValue, LeaseId, Revision, Selector};

/// The store on an etcd cluster. Cheap to clone; clones share one gRPC connection.
#[derive(Clone)]
pub struct EtcdStore {
    pub(super) client: Client,
    pub(super) config: Arc<EtcdConfig>,
    /// The highest compaction revision seen (by `compact` or a refused read), so that
    /// learning the current one usually takes one request.
    pub(super) compacted: Arc<AtomicU64>,
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

    pub(super) fn full_key(&self, key: &str) -> Vec<u8> {
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

    pub(super) async fn unary<T>(
        &self,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        within(self.config.request_timeout, request).await
    }

    pub(super) async fn current_revision(&self) -> Result<Revision, StoreError> {
        let options = GetOptions::new().with_count_only();
        let response = self
            .unary(self.client.kv_client().get(self.probe_key(), Some(options)))
            .await?;
        header_revision(response.header())
    }

    /// Whether history at `revision` is still readable: `Ok(false)` when it was compacted.
    pub(super) async fn retained(&self, revision: Revision) -> Result<bool, StoreError> {
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
    pub(super) async fn compacted_revision(&self) -> Result<Revision, StoreError> {
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

    pub(super) fn key_value(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
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

    pub(super) fn event(&self, event: &etcd_client::Event) -> Result<Event, StoreError> {
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
    pub(super) async fn open_watch(
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

pub(super) fn header_revision(
    header: Option<&etcd_client::ResponseHeader>,
) -> Result<Revision, StoreError> {
    header
        .map(|header| from_etcd(header.revision()))
        .ok_or_else(|| StoreError::Etcd("a response without a header".into()))
}

pub(super) fn from_etcd(revision: i64) -> Revision {
    Revision(u64::try_from(revision).unwrap_or(0))
}

pub(super) fn to_etcd(revision: Revision) -> Result<i64, StoreError> {
    i64::try_from(revision.0).map_err(|_| StoreError::FutureRevision {
        requested: revision,
        current: Revision(i64::MAX.unsigned_abs()),
    })
}

/// The end of the key range that holds every key starting with `prefix` (etcd's
/// `range_end`), or `None` when that range runs to the end of the keyspace.
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
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
