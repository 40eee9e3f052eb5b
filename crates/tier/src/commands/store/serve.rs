//! `tier store serve`: the store's HTTP API in front of an etcd cluster or a store file, for
//! a kubernetes environment (it runs beside the services) or by hand.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tier_state::paths::EnvDir;
use tier_store::http::{ApiConfig, FlagDefault, Tokens};
use tier_store::{EmbeddedConfig, EmbeddedStore};
use tokio_util::sync::CancellationToken;

use crate::args::Global;
use crate::commands::{CommandResult, Exit, Threads, fail, stop_on_signal, usage, usage_with};

/// Serves the store's API in front of a backend until Ctrl-C or SIGTERM.
pub(super) fn serve(
    global: &Global,
    backend: &str,
    env: &str,
    listen: &str,
    tokens: Option<&Path>,
    declared: Option<&str>,
) -> CommandResult {
    if tier_model::EnvName::new(env).is_err() {
        return Err(usage(format!("`{env}` is not an environment name")));
    }
    let flags = match declared {
        Some(text) => FlagDefault::parse_map(text).map_err(|why| {
            usage_with(
                format!("--flags: {why}"),
                r#"--flags '{"new-ui": {"default": false, "description": "..."}}'"#,
            )
        })?,
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
        Path::to_path_buf,
    );
    if let Some(parent) = tokens_path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| fail(format!("cannot create {}: {error}", parent.display())))?;
    }
    let tokens = Tokens::load_or_create(&tokens_path, env)
        .map_err(|error| fail(format!("{env}: {error}")))?;
    let runtime = crate::commands::runtime(Threads::AllCores)?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|error| fail(format!("cannot listen on {listen}: {error}")))?;
        let address = listener
            .local_addr()
            .map_or_else(|_| listen.to_owned(), |address| address.to_string());
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let config = ApiConfig {
            flags,
            shutdown: shutdown.clone(),
            ..ApiConfig::default()
        };
        let served = if let Some(path) = backend.strip_prefix("file:") {
            let store = EmbeddedStore::open(Path::new(path), EmbeddedConfig::default())
                .await
                .map_err(|error| fail(format!("{env}: cannot open {path}: {error}")))?;
            eprintln!("{env}: serving the store in {path} on http://{address}");
            tier_store::http::serve(listener, Arc::new(store), tokens, config).await
        } else if backend.starts_with("etcd://") {
            serve_etcd(backend, listener, tokens, config, env, &address).await?
        } else {
            return Err(usage_with(
                format!("`{backend}` is not a store backend"),
                "use --backend etcd://HOST:PORT[,HOST:PORT][/PREFIX] or --backend file:PATH",
            ));
        };
        served.map_err(|error| fail(format!("{env}: the store's API stopped: {error}")))
    })
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
    let etcd_config = tier_store::EtcdConfig::from_address(backend)
        .map_err(|error| usage(format!("{backend}: {error}")))?;
    let store = tier_store::EtcdStore::connect(etcd_config)
        .await
        .map_err(|error| fail(format!("{env}: cannot reach etcd at {backend}: {error}")))?;
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
    Err(crate::commands::fail_with(
        "this tier was built without the etcd backend",
        "build it with `cargo build --release --features etcd` (needs protoc)",
    ))
}
