//! `tier store serve`: the store's HTTP API in front of an etcd cluster or a store file, for
//! a kubernetes environment (it runs beside the services) or by hand.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tier_local::paths::EnvDir;
use tier_store::http::{ApiConfig, FlagDefault, Tokens};
use tier_store::{EmbeddedConfig, EmbeddedStore};
use tokio_util::sync::CancellationToken;

use super::failed;
use crate::args::Global;
use crate::commands::{CommandResult, Exit, Threads, stop_on_signal};
use crate::output;

/// Serves the store's API in front of a backend until Ctrl-C or SIGTERM.
pub(super) fn serve(
    global: &Global,
    backend: &str,
    env: &str,
    listen: &str,
    tokens: Option<&std::path::Path>,
    declared: Option<&str>,
) -> CommandResult {
    if tier_model::EnvName::new(env).is_err() {
        output::error(&format!("`{env}` is not an environment name"));
        return Err(Exit::Usage);
    }
    let flags = match declared {
        Some(text) => match parse_flags(text) {
            Ok(flags) => flags,
            Err(why) => {
                output::error(&format!("--flags: {why}"));
                output::hint(r#"--flags '{"new-ui": {"default": false, "description": "..."}}'"#);
                return Err(Exit::Usage);
            }
        },
        None => match crate::commands::load(global) {
            Ok(mut project) if project.environment(env).is_some() => project
                .resolve(env, &[])
                .map(|resolved| tier_local::store::flag_defaults(&resolved.environment))
                .unwrap_or_default(),
            _ => BTreeMap::new(),
        },
    };
    let tokens_path = tokens.map_or_else(
        || EnvDir::new(&global.project, env).tokens(),
        std::path::Path::to_path_buf,
    );
    if let Some(parent) = tokens_path.parent()
        && let Err(error) = std::fs::create_dir_all(parent)
    {
        return failed(&format!("cannot create {}: {error}", parent.display()));
    }
    let tokens = match Tokens::load_or_create(&tokens_path, env) {
        Ok(tokens) => tokens,
        Err(error) => return failed(&format!("{env}: {error}")),
    };
    let runtime = crate::commands::runtime(Threads::AllCores)?;
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(error) => return failed(&format!("cannot listen on {listen}: {error}")),
        };
        let address = listener
            .local_addr()
            .map(|address| address.to_string())
            .unwrap_or_else(|_| listen.to_owned());
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let config = ApiConfig {
            flags,
            shutdown: shutdown.clone(),
            ..ApiConfig::default()
        };
        let served = if let Some(path) = backend.strip_prefix("file:") {
            let store =
                match EmbeddedStore::open(std::path::Path::new(path), EmbeddedConfig::default())
                    .await
                {
                    Ok(store) => store,
                    Err(error) => return failed(&format!("{env}: cannot open {path}: {error}")),
                };
            eprintln!("{env}: serving the store in {path} on http://{address}");
            tier_store::http::serve(listener, Arc::new(store), tokens, config).await
        } else if backend.starts_with("etcd://") {
            match serve_etcd(backend, listener, tokens, config, env, &address).await {
                Ok(result) => result,
                Err(code) => return Err(code),
            }
        } else {
            output::error(&format!("`{backend}` is not a store backend"));
            output::hint(
                "use --backend etcd://HOST:PORT[,HOST:PORT][/PREFIX] or --backend file:PATH",
            );
            return Err(Exit::Usage);
        };
        match served {
            Ok(()) => Ok(()),
            Err(error) => failed(&format!("{env}: the store's API stopped: {error}")),
        }
    })
}

/// `--flags`: a JSON object of flag name to `{"default": …, "description": …}`.
fn parse_flags(text: &str) -> Result<BTreeMap<String, FlagDefault>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Declared {
        default: Value,
        #[serde(default)]
        description: Option<String>,
    }
    let declared: BTreeMap<String, Declared> =
        serde_json::from_str(text).map_err(|error| format!("not a map of flags: {error}"))?;
    Ok(declared
        .into_iter()
        .map(|(name, flag)| {
            (
                name,
                FlagDefault {
                    value: flag.default,
                    description: flag.description,
                },
            )
        })
        .collect())
}

#[cfg(feature = "etcd")]
async fn serve_etcd(
    backend: &str,
    listener: tokio::net::TcpListener,
    tokens: Tokens,
    config: ApiConfig,
    env: &str,
    address: &str,
) -> Result<std::io::Result<()>, Exit> {
    let etcd_config = match tier_store::EtcdConfig::from_address(backend) {
        Ok(config) => config,
        Err(error) => {
            output::error(&format!("{backend}: {error}"));
            return Err(Exit::Usage);
        }
    };
    let store = match tier_store::EtcdStore::connect(etcd_config).await {
        Ok(store) => store,
        Err(error) => {
            output::error(&format!("{env}: cannot reach etcd at {backend}: {error}"));
            return Err(Exit::Failure);
        }
    };
    eprintln!("{env}: serving the store in {backend} on http://{address}");
    Ok(tier_store::http::serve(listener, Arc::new(store), tokens, config).await)
}

#[cfg(not(feature = "etcd"))]
async fn serve_etcd(
    _backend: &str,
    _listener: tokio::net::TcpListener,
    _tokens: Tokens,
    _config: ApiConfig,
    _env: &str,
    _address: &str,
) -> Result<std::io::Result<()>, Exit> {
    output::error("this tier was built without the etcd backend");
    output::hint("build it with `cargo build --release --features etcd` (needs protoc)");
    Err(Exit::Failure)
}
