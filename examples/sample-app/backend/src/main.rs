//! The sample app's backend. `GET /` answers `{"text": ..., "replica": "backend-N"}`: the
//! `text` of the merged JSON config that tier hands it in `$TIER_CONFIG`, and which replica
//! answered. `GET /healthz` answers `ok`.
//!
//! It listens on `$PORT` on 127.0.0.1 (the local runtime's proxy is on the same machine), or on
//! every interface in a Kubernetes pod, where kubelet's probes and the Service reach the pod's
//! own address: see [`listen_host`].

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(message) = run().await {
        eprintln!("sample-backend: {message}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let config_path =
        std::env::var("TIER_CONFIG").map_err(|_| "TIER_CONFIG is not set".to_owned())?;
    let config_text = std::fs::read_to_string(&config_path)
        .map_err(|error| format!("cannot read {config_path}: {error}"))?;
    let config: serde_json::Value = serde_json::from_str(&config_text)
        .map_err(|error| format!("{config_path} is not JSON: {error}"))?;
    let text = config
        .get("text")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("{config_path} has no string `text`"))?
        .to_owned();
    let port = std::env::var("PORT").map_err(|_| "PORT is not set".to_owned())?;
    let host = listen_host(std::env::var_os("KUBERNETES_SERVICE_HOST").is_some());
    let listener = tokio::net::TcpListener::bind(format!("{host}:{port}"))
        .await
        .map_err(|error| format!("cannot listen on {host}:{port}: {error}"))?;
    let replica = std::env::var("TIER_REPLICA").unwrap_or_default();
    eprintln!("sample-backend replica {replica} listening on {host}:{port}");
    let app = Router::new()
        .route("/", get(root))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(Answer {
            text,
            replica: format!("backend-{replica}"),
        }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|error| error.to_string())
}

/// What `GET /` answers: the configured text and which replica said it.
struct Answer {
    text: String,
    replica: String,
}

async fn root(State(answer): State<Arc<Answer>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "text": answer.text, "replica": answer.replica }))
}

/// Ends on SIGTERM or Ctrl-C, so the supervisor's stop is a clean exit.
async fn shutdown() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::future::pending().await,
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The interface to listen on: every one in a Kubernetes pod (`KUBERNETES_SERVICE_HOST` is
/// set in every pod), only the loopback interface otherwise.
fn listen_host(in_kubernetes_pod: bool) -> &'static str {
    if in_kubernetes_pod {
        "0.0.0.0"
    } else {
        "127.0.0.1"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listens_on_every_interface_only_in_a_kubernetes_pod() {
        assert_eq!(listen_host(true), "0.0.0.0");
        assert_eq!(listen_host(false), "127.0.0.1");
    }
}
