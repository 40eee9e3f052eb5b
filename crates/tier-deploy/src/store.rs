//! Where an environment's runtime config store is, for `tier config` and `tier flag`: a
//! server named by the user (a kubernetes environment's `tier store serve`), a running local
//! agent's, or, when a local environment is not running, its own store file served on a
//! free port of 127.0.0.1 until the caller cancels.

use std::sync::Arc;
use std::time::Duration;

use tier_client::{Client, ClientConfig};
use tier_model::Environment;
use tier_model::environment::Runtime;
use tier_state::paths::EnvDir;
use tier_store::http::{ApiConfig, Tokens};
use tier_store::{EmbeddedConfig, EmbeddedStore};
use tokio_util::sync::CancellationToken;

use crate::DeployError;

/// How long one request may take, watches aside.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A store the user named, with its token (`--store URL`, `TIER_TOKEN`).
#[derive(Clone, Debug, Default)]
pub struct Named {
    pub url: Option<String>,
    pub token: Option<String>,
}

/// A client of an environment's store with its read-write token, and where it points (for
/// messages).
pub struct StoreAccess {
    pub client: Client,
    pub url: String,
    pub env: String,
}

/// Finds the store of `environment` and connects to it. A store file served here stops when
/// `shutdown` is cancelled; call this inside a tokio runtime.
pub async fn locate(
    root: &std::path::Path,
    environment: &Environment,
    named: &Named,
    shutdown: &CancellationToken,
) -> Result<StoreAccess, DeployError> {
    let env = environment.name.to_string();
    let refused = |message: String| DeployError::Refused {
        message,
        hint: None,
    };
    if let Some(url) = &named.url {
        let Some(token) = named.token.as_deref() else {
            return Err(DeployError::Refused {
                message: format!("{env}: --store needs a token"),
                hint: Some("set TIER_TOKEN to the environment's read-write token".to_owned()),
            });
        };
        return connect(url.trim_end_matches('/'), token, env);
    }
    if environment.runtime != Runtime::Local {
        return Err(DeployError::Refused {
            message: format!(
                "{env} runs on {}: its store is the one `tier store serve` runs beside it",
                environment.runtime.as_str()
            ),
            hint: Some("pass --store URL and set TIER_TOKEN to its read-write token".to_owned()),
        });
    }
    let dir = EnvDir::new(root, &env);
    if tier_local::is_running(&dir)
        && let Some(port) = dir.store_port()
    {
        let tokens =
            Tokens::load(&dir.tokens(), &env).map_err(|e| refused(format!("{env}: {e}")))?;
        let url = format!("http://127.0.0.1:{port}");
        return connect(&url, tokens.read_write().expose(), env);
    }
    // Not running: serve the environment's own store file for as long as the caller needs it.
    std::fs::create_dir_all(dir.root()).map_err(|error| {
        refused(format!(
            "{env}: cannot create {}: {error}",
            dir.root().display()
        ))
    })?;
    let tokens =
        Tokens::load_or_create(&dir.tokens(), &env).map_err(|e| refused(format!("{env}: {e}")))?;
    let token = tokens.read_write().expose().to_owned();
    let store = EmbeddedStore::open(&dir.store(), EmbeddedConfig::default())
        .await
        .map_err(|error| DeployError::Refused {
            message: format!("{env}: cannot open the runtime config store: {error}"),
            hint: Some(format!(
                "if `tier up {env}` was just starting, run the command again"
            )),
        })?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|error| refused(format!("{env}: cannot open a local port: {error}")))?;
    let port = listener
        .local_addr()
        .map_err(|error| refused(format!("{env}: {error}")))?
        .port();
    let config = ApiConfig {
        flags: tier_local::store::flag_defaults(environment),
        shutdown: shutdown.clone(),
        ..ApiConfig::default()
    };
    tokio::spawn(tier_store::http::serve(
        listener,
        Arc::new(store),
        tokens,
        config,
    ));
    connect(&format!("http://127.0.0.1:{port}"), &token, env)
}

/// The client for the store at `url`, sending who changes things and bounding each request.
fn connect(url: &str, token: &str, env: String) -> Result<StoreAccess, DeployError> {
    let config = ClientConfig {
        actor: Some(tier_state::who()),
        request_timeout: Some(REQUEST_TIMEOUT),
    };
    match Client::with_config(url, token, &env, config) {
        Ok(client) => Ok(StoreAccess {
            client,
            url: url.to_owned(),
            env,
        }),
        Err(error) => Err(DeployError::Refused {
            message: format!("{env}: {error}"),
            hint: None,
        }),
    }
}
