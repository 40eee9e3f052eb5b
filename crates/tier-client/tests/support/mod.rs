//! The store a client test talks to: an `EmbeddedStore` and its router on 127.0.0.1, stopped
//! and started again on the same port and store file where a test needs it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tier_client::Client;
use tier_store::http::{self, ApiConfig, FlagDefault, Tokens};
use tier_store::{EmbeddedConfig, EmbeddedStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn ok<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("unexpected error: {error}"),
    }
}

/// A running API over the store file at `path`.
pub struct Agent {
    pub address: SocketAddr,
    pub store: Arc<EmbeddedStore>,
    pub tokens: Tokens,
    pub shutdown: CancellationToken,
    pub serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Agent {
    pub async fn start(directory: &Path, address: SocketAddr) -> Agent {
        let config = EmbeddedConfig {
            history: None,
            ..EmbeddedConfig::default()
        };
        let store = Arc::new(ok(EmbeddedStore::open(&store_path(directory), config).await));
        let tokens = ok(Tokens::load_or_create(
            &directory.join("tokens.json"),
            "dev",
        ));
        let listener = ok(TcpListener::bind(address).await);
        let address = ok(listener.local_addr());
        let shutdown = CancellationToken::new();
        let flags = BTreeMap::from([
            (
                "dark-mode".to_owned(),
                FlagDefault {
                    value: json!(true),
                    description: None,
                },
            ),
            (
                "new-checkout".to_owned(),
                FlagDefault {
                    value: json!({"percent": 40}),
                    description: None,
                },
            ),
        ]);
        let config = ApiConfig {
            flags,
            shutdown: shutdown.clone(),
            ..ApiConfig::default()
        };
        let serving = tokio::spawn(http::serve(listener, store.clone(), tokens.clone(), config));
        Agent {
            address,
            store,
            tokens,
            shutdown,
            serving,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn client(&self) -> Client {
        ok(Client::new(
            &self.url(),
            self.tokens.read_write().expose(),
            "dev",
        ))
    }

    /// Stops serving and closes the store file.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let stopped = tokio::time::timeout(PATIENCE, self.serving).await;
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "the server did not stop");
    }
}

pub fn store_path(directory: &Path) -> PathBuf {
    directory.join("store.redb")
}

/// Polls until `check` holds, for at most `PATIENCE`.
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {PATIENCE:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
