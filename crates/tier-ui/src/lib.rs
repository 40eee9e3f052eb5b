//! `tier ui`: a web dashboard of a project's environments × services, served by the tier
//! binary with every asset embedded (nothing is fetched from the network).
//!
//! A collector thread reads the [`Matrix`] once a second (`matrix.rs`) and publishes it; the
//! server (`routes.rs`) renders pages from the latest one (`page.rs`) and sends each change of
//! a cell or a column header to the pages that follow `/api/events` (server-sent events), so
//! a replica that dies turns its cell red within about a second without any page polling.
//! Reading needs nothing; a change (a rollback, a flag) needs the per-launch token that
//! `tier ui` prints in its URL, and a protected environment's name typed in.

mod detail;
pub mod matrix;
pub mod page;
mod routes;
mod updates;
pub mod views;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use matrix::{Cell, Column, Health, Matrix};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// How often the collector reads the matrix again.
pub const REFRESH: Duration = Duration::from_secs(1);

/// What every request handler shares.
pub(crate) struct Shared {
    pub root: PathBuf,
    /// Where it listens; requests for another host are refused.
    pub address: std::net::SocketAddr,
    pub token: String,
    pub matrix: watch::Receiver<Arc<Matrix>>,
    /// Changes as the JSON that `/api/events` sends.
    pub updates: broadcast::Sender<Arc<str>>,
    /// Ends the event streams too, so a stop does not wait for open pages.
    pub shutdown: CancellationToken,
    /// The matrix page and `/api/matrix` of the latest matrix.
    pub page: routes::Rendered,
    pub json: routes::Rendered,
}

/// A random token that a change must carry (`?token=` in the printed URL, then the
/// `X-Tier-Token` header): 128 bits as hex.
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0_u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| std::io::Error::other(error.to_string()))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Serves the dashboard of the project at `root` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    workspace: tier_deploy::Workspace,
    token: String,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let root = workspace.root().to_owned();
    let mut collector = matrix::Collector::new(workspace);
    let (collector, matrix) = tokio::task::spawn_blocking(move || {
        let matrix = collector.collect();
        (collector, matrix)
    })
    .await
    .map_err(std::io::Error::other)?;
    let (publish, latest) = watch::channel(Arc::new(matrix));
    let (updates, _) = broadcast::channel(64);
    updates::spawn(collector, publish, updates.clone(), shutdown.clone());
    let shared = Arc::new(Shared {
        address: listener.local_addr()?,
        root,
        token,
        matrix: latest,
        updates,
        shutdown: shutdown.clone(),
        page: routes::Rendered::default(),
        json: routes::Rendered::default(),
    });
    axum::serve(listener, routes::router(shared))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
