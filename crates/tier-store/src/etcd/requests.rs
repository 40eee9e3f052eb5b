//! Requests to etcd bounded in time, and what etcd's errors mean for the caller.

use std::future::Future;
use std::time::Duration;

use crate::error::StoreError;

/// What an etcd error means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rejection {
    LeaseNotFound,
    Compacted,
    FutureRevision,
    Other,
}

pub(super) fn rejection(error: &etcd_client::Error) -> Rejection {
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

pub(super) fn etcd_error(error: &etcd_client::Error) -> StoreError {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            StoreError::Etcd(format!("{} ({:?})", status.message(), status.code()))
        }
        other => StoreError::Etcd(other.to_string()),
    }
}

pub(super) async fn within<T>(
    limit: Duration,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, StoreError> {
    within_raw(limit, request)
        .await?
        .map_err(|error| etcd_error(&error))
}

/// Bounds a request in time, leaving its own error to the caller.
pub(super) async fn within_raw<T>(
    limit: Duration,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<Result<T, etcd_client::Error>, StoreError> {
    tokio::time::timeout(limit, request)
        .await
        .map_err(|_| StoreError::Etcd(format!("no answer from etcd within {limit:?}")))
}
