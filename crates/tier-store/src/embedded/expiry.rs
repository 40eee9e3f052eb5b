//! Lease expiry: on open, the leases that expired while the store was closed; while it is
//! open, each lease as its deadline passes.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use redb::{Database, Durability, ReadableTable};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::failure::Failure;
use super::queue::Writes;
use super::writer::Writer;
use super::{EmbeddedStore, Inner, lock, unix_millis};
use crate::codec;
use crate::types::LeaseId;

/// Creates the tables of a new file and revokes the leases that expired while the store was
/// closed; returns the other leases with their remaining time.
pub(super) fn recover(
    database: &Database,
    wall_now: SystemTime,
) -> Result<Vec<(LeaseId, Duration)>, Failure> {
    let mut transaction = database.begin_write()?;
    transaction.set_durability(Durability::Immediate)?;
    let outcome = {
        let mut writer = Writer::open(&transaction)?;
        let now = unix_millis(wall_now);
        let mut live = Vec::new();
        let mut expired = Vec::new();
        for entry in writer.leases.iter()? {
            let (id, record) = entry?;
            let record = codec::decode_lease(record.value()).map_err(Failure::Corrupt)?;
            match record.expires_unix_millis.checked_sub(now) {
                Some(remaining) if remaining > 0 => {
                    live.push((LeaseId(id.value()), Duration::from_millis(remaining)));
                }
                _ => expired.push(LeaseId(id.value())),
            }
        }
        for id in &expired {
            writer.revoke_lease(*id)?;
        }
        writer.finish(None)?;
        live
    };
    transaction.commit()?;
    Ok(outcome)
}

/// Revokes leases as their deadlines pass, until the store is dropped.
pub(super) async fn expire_leases(
    store: Weak<Inner>,
    writes: Weak<Writes>,
    changed: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let next = match store.upgrade() {
            Some(inner) => lock(&inner.deadlines).values().min().copied(),
            None => return,
        };
        let wait = async {
            match next {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = changed.notified() => {}
            () = wait => {
                let (Some(inner), Some(writes)) = (store.upgrade(), writes.upgrade()) else {
                    return;
                };
                let store = EmbeddedStore { inner, writes };
                if store.revoke_expired(Instant::now()).await.is_err() {
                    // The file is failing; try again later rather than spinning.
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
}
