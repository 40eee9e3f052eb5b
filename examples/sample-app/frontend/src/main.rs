//! The sample app's frontend. `GET /` asks the backend (found by name through `$BACKEND_URL`)
//! for its text and renders `Hello from <b>{text}</b>!`; when the backend cannot be reached it
//! says so with a 502 page. `GET /healthz` answers `ok`.
//!
//! With the feature flag `show-replica` on (`tier flag on dev show-replica`), the page also
//! names the backend replica that answered. The flag is read from the environment's runtime
//! config store through `tier-client`, whose cache a watch keeps current: no restart, no
//! request per page.
//!
//! It listens on `$PORT` on 127.0.0.1 (the local runtime's proxy is on the same machine), or on
//! every interface in a Kubernetes pod, where kubelet's probes and the Service reach the pod's
//! own address: see [`sample_app::listen`].

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

/// The flag that adds the answering backend replica to the page.
const SHOW_REPLICA: &str = "show-replica";

struct App {
    backend_url: String,
    client: HttpClient,
    /// The environment's flags; `None` when no store was handed to this process.
    flags: Option<tier_client::Flags>,
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
    let (listener, address) = sample_app::listen().await?;
    let replica = std::env::var("TIER_REPLICA").unwrap_or_default();
    eprintln!("sample-frontend replica {replica} listening on {address}, backend at {backend_url}");
    let app = Arc::new(App {
        backend_url,
        client: Client::builder(TokioExecutor::new()).build_http(),
        flags: flags().await,
    });
    let router = Router::new()
        .route("/", get(root))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(sample_app::shutdown())
        .await
        .map_err(|error| error.to_string())
}

/// The flag cache, when the environment has a store; flags are off without one.
async fn flags() -> Option<tier_client::Flags> {
    let client = match tier_client::Client::from_env() {
        Ok(client) => client,
        Err(why) => {
            eprintln!("sample-frontend: no runtime config store ({why}); flags are off");
            return None;
        }
    };
    match client.flags().await {
        Ok(flags) => Some(flags),
        Err(why) => {
            eprintln!("sample-frontend: cannot read flags ({why}); flags are off");
            None
        }
    }
}

async fn root(State(app): State<Arc<App>>) -> (StatusCode, Html<String>) {
    match backend_answer(&app).await {
        Ok(answer) => {
            let mut page = format!("Hello from <b>{}</b>!", escape(&answer.text));
            if app
                .flags
                .as_ref()
                .is_some_and(|flags| flags.is_enabled(SHOW_REPLICA))
            {
                page.push_str(&format!(
                    "<p>Served by <code>{}</code>.</p>",
                    escape(&answer.replica)
                ));
            }
            (StatusCode::OK, Html(page))
        }
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

/// What the backend said, and which of its replicas said it.
struct Answer {
    text: String,
    replica: String,
}

async fn backend_answer(app: &App) -> Result<Answer, String> {
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
    let text = json
        .get("text")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "its answer has no text".to_owned())?;
    let replica = json
        .get("replica")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("an unnamed replica")
        .to_owned();
    Ok(Answer { text, replica })
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

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_html() {
        assert_eq!(super::escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }
}
