//! The sample app's backend. `GET /` answers `{"text": ..., "replica": "backend-N"}`: the
//! `text` of the merged JSON config that tier hands it in `$TIER_CONFIG`, and which replica
//! answered. `GET /healthz` answers `ok`.
//!
//! It listens on `$PORT` on 127.0.0.1 (the local runtime's proxy is on the same machine), or on
//! every interface in a Kubernetes pod, where kubelet's probes and the Service reach the pod's
//! own address: see [`sample_app::listen`].

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
    let (listener, address) = sample_app::listen().await?;
    let replica = std::env::var("TIER_REPLICA").unwrap_or_default();
    eprintln!("sample-backend replica {replica} listening on {address}");
    let app = Router::new()
        .route("/", get(root))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(Answer {
            text,
            replica: format!("backend-{replica}"),
        }));
    axum::serve(listener, app)
        .with_graceful_shutdown(sample_app::shutdown())
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
