//! The sample app's frontend. `GET /` asks the backend (found by name through `$BACKEND_URL`)
//! for its text and renders `Hello from <b>{text}</b>!`; when the backend cannot be reached it
//! says so with a 502 page. `GET /healthz` answers `ok`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<HttpConnector, Empty<axum::body::Bytes>>;

struct App {
    backend_url: String,
    client: HttpClient,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(message) = run().await {
        eprintln!("sample-frontend: {message}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let backend_url =
        std::env::var("BACKEND_URL").map_err(|_| "BACKEND_URL is not set".to_owned())?;
    let port = std::env::var("PORT").map_err(|_| "PORT is not set".to_owned())?;
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .map_err(|error| format!("cannot listen on 127.0.0.1:{port}: {error}"))?;
    let replica = std::env::var("TIER_REPLICA").unwrap_or_default();
    eprintln!(
        "sample-frontend replica {replica} listening on 127.0.0.1:{port}, backend at {backend_url}"
    );
    let app = Arc::new(App {
        backend_url,
        client: Client::builder(TokioExecutor::new()).build_http(),
    });
    let router = Router::new()
        .route("/", get(root))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|error| error.to_string())
}

async fn root(State(app): State<Arc<App>>) -> (StatusCode, Html<String>) {
    match backend_text(&app).await {
        Ok(text) => (
            StatusCode::OK,
            Html(format!("Hello from <b>{}</b>!", escape(&text))),
        ),
        Err(reason) => (
            StatusCode::BAD_GATEWAY,
            Html(format!(
                "<h1>502 Bad Gateway</h1><p>The backend at {} could not be reached: {}</p>",
                escape(&app.backend_url),
                escape(&reason)
            )),
        ),
    }
}

async fn backend_text(app: &App) -> Result<String, String> {
    let uri: axum::http::Uri = app
        .backend_url
        .parse()
        .map_err(|_| "BACKEND_URL is not a URL".to_owned())?;
    let response = tokio::time::timeout(Duration::from_secs(5), app.client.get(uri))
        .await
        .map_err(|_| "no answer within 5s".to_owned())?
        .map_err(|error| error.to_string())?;
    if !response.status().is_success() {
        return Err(format!("it answered {}", response.status()));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .to_bytes();
    let json: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| "it did not answer JSON".to_owned())?;
    json.get("text")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "its answer has no text".to_owned())
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
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

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_html() {
        assert_eq!(super::escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }
}
