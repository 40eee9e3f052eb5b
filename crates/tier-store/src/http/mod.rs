//! The store's HTTP/JSON API, served per environment, for services (through `tier-client`),
//! the CLI and `curl`. `docs/api.md` describes every path; this is the Rust side.
//!
//! # What the agent calls
//!
//! ```text
//! let tokens = Tokens::load_or_create(&env_dir.join("tokens.json"), "dev")?;    // 0600 file
//! let store = Arc::new(EmbeddedStore::open(&env_dir.join("store.redb"), config).await?);
//! let config = ApiConfig { flags, shutdown: shutdown.clone(), ..ApiConfig::default() };
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! // replicas get TIER_AGENT_URL=http://<listener address> and TIER_TOKEN=tokens.read_only()
//! tokio::spawn(http::serve(listener, store.clone(), tokens, config));          // until shutdown
//!
//! let registry = Registry::new(store.clone());
//! let lease = store.grant(Duration::from_secs(10)).await?;                      // keep it alive
//! registry.register("backend", "1", "127.0.0.1:41234", lease.id).await?;       // when ready
//! registry.deregister("backend", "1").await?;                                   // when stopped
//! ```
//!
//! `flags` is the environment's resolved `[flags.<name>]`: a map from name to
//! [`FlagDefault`]. The CLI reads the same tokens with [`Tokens::load`] and reaches the API
//! through `tier_client`, serving a stopped environment's store file with [`serve`] itself. [`flag_enabled`] and [`rollout_bucket`] are `tier_client`'s,
//! the one definition of how a flag evaluates, which the server and every client share.
//!
//! # Layout in the store
//!
//! User keys are any key outside `_tier/`. Under it: `_tier/audit/<key>\0<...>` (one record
//! per change made through the API, written in one transaction with its change), `_tier/flags/<name>` (run-time flag overrides)
//! and `_tier/services/<service>/<replica>` (lease-bound endpoints). `/v1/kv` refuses keys
//! under `_tier/` and leaves them out of listings and watches.

mod audit;
mod error;
mod flags;
mod kv;
mod leases;
mod registry;
mod request;
mod tokens;
mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode};
use axum::routing::{delete, get, post};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use flags::FlagDefault;
pub use registry::{Endpoint, Registry};
/// How a flag evaluates, from `tier_client` (the one definition clients use too).
pub use tier_client::{flag_enabled, rollout_bucket};
pub use tokens::{Token, TokenError, TokenKind, Tokens};

use crate::backend::Backend;
use crate::types::{KeyValue, Revision};
use error::ApiError;

/// Keys under this prefix belong to tier itself.
pub(crate) const RESERVED_PREFIX: &str = "_tier/";
pub(crate) const AUDIT_PREFIX: &str = "_tier/audit/";
pub(crate) const FLAGS_PREFIX: &str = "_tier/flags/";
pub(crate) const SERVICES_PREFIX: &str = "_tier/services/";

/// The response header with the revision to pass back as `index` in a long-poll.
pub(crate) const INDEX_HEADER: &str = "x-tier-index";

/// How the API behaves beyond its store and tokens.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// The environment's declared flags: name → default value and description.
    pub flags: BTreeMap<String, FlagDefault>,
    /// Cancelled to stop: watches and long-polls end, and [`serve`] returns once every
    /// connection has closed.
    pub shutdown: CancellationToken,
    /// Read only to stamp audit records.
    pub wall_clock: fn() -> SystemTime,
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            flags: BTreeMap::new(),
            shutdown: CancellationToken::new(),
            wall_clock: SystemTime::now,
        }
    }
}

/// The API over `store` for the environment `tokens` belong to, with every path under `/v1`.
pub fn router<B: Backend>(store: Arc<B>, tokens: Tokens, config: ApiConfig) -> Router {
    let api = Arc::new(Api {
        store,
        tokens,
        flags: config.flags,
        shutdown: config.shutdown,
        wall_clock: config.wall_clock,
        key_locks: (0..KEY_LOCKS)
            .map(|_| tokio::sync::Mutex::new(()))
            .collect(),
    });
    Router::new()
        .route("/v1/kv", get(kv::list::<B>))
        .route(
            "/v1/kv/{*key}",
            get(kv::get::<B>)
                .put(kv::put::<B>)
                .delete(kv::delete::<B>)
                .post(kv::rollback::<B>),
        )
        .route("/v1/watch", get(watch::watch::<B>))
        .route("/v1/leases", post(leases::grant::<B>))
        .route("/v1/leases/{id}", delete(leases::revoke::<B>))
        .route("/v1/leases/{id}/keepalive", post(leases::keep_alive::<B>))
        .route("/v1/flags", get(flags::list::<B>))
        .route(
            "/v1/flags/{name}",
            get(flags::get::<B>)
                .put(flags::put::<B>)
                .delete(flags::delete::<B>),
        )
        .route("/v1/services/{name}", get(registry::get::<B>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(request::MAX_BODY_BYTES))
        .with_state(api)
}

/// Serves [`router`] on `listener` until `config.shutdown` is cancelled, then lets open
/// requests finish (watches and long-polls end at once) and returns.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    store: Arc<B>,
    tokens: Tokens,
    config: ApiConfig,
) -> std::io::Result<()> {
    let shutdown = config.shutdown.clone();
    axum::serve(listener, router(store, tokens, config))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// What every handler shares.
pub(crate) struct Api<B> {
    pub(crate) store: Arc<B>,
    pub(crate) tokens: Tokens,
    pub(crate) flags: BTreeMap<String, FlagDefault>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) wall_clock: fn() -> SystemTime,
    /// Changes to one key through this server wait for each other (a key hashes to one of
    /// these), so they do not race each other's transactions; changes to other keys go on and
    /// share the store's commits. Races with other writers are settled by the transaction's
    /// comparison.
    pub(crate) key_locks: Box<[tokio::sync::Mutex<()>]>,
}

/// How many locks the keys of one server are spread over.
const KEY_LOCKS: usize = 256;

impl<B> Api<B> {
    /// The lock that changes to `key` through this server take in turn.
    pub(crate) fn key_lock(&self, key: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        let index = usize::try_from(hash % KEY_LOCKS as u64).unwrap_or(0);
        &self.key_locks[index]
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "no_such_path",
        "no such path; see docs/api.md for the API's paths",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not take that method; see docs/api.md",
    )
}

/// A stored value as JSON: the document it holds, or a string when it is not JSON (a value
/// written by another tool straight into etcd).
pub(crate) fn decode_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// A key as the API shows it.
pub(crate) fn kv_json(kv: &KeyValue) -> Value {
    serde_json::json!({
        "key": kv.key,
        "value": decode_value(&kv.value),
        "create_revision": kv.create_revision.0,
        "mod_revision": kv.mod_revision.0,
        "version": kv.version,
        "lease": kv.lease.map(|lease| lease.0),
    })
}

pub(crate) fn index_header(revision: Revision) -> [(&'static str, HeaderValue); 1] {
    [(INDEX_HEADER, HeaderValue::from(revision.0))]
}
