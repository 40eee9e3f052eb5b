//! The sample app's frontend. `GET /` asks the backend (found by name through `$BACKEND_URL`)
//! for its text and renders `Hello from <b>{text}</b>!`; when the backend cannot be reached it
//! says so with a 502 page. `GET /healthz` answers `ok`.
//!
//! With the feature flag `show-replica` on (`tier flag on dev show-replica`), the page also
//! names the backend replica that answered. The flag is read from the environment's runtime
//! config store through `tier-client`, whose cache a watch keeps current: no restart, no
//! request per page. A flag on for a percentage (`--percent 50`) is decided per visitor: the
//! page's key is the `visitor` cookie, which the first answer sets to a random id, so one
//! browser keeps its answer and about half of new visitors (each `curl` without the cookie)
//! see the replica.
//!
//! It listens on `$PORT` on 127.0.0.1 (the local runtime's proxy is on the same machine), or on
//! every interface in a Kubernetes pod, where kubelet's probes and the Service reach the pod's
//! own address: see [`sample_app::listen`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
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

async fn root(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let (visitor, new_visitor) = match visitor_of(&headers) {
        Some(visitor) => (visitor, false),
        None => (new_visitor_id(), true),
    };
    let mut response = match backend_answer(&app).await {
        Ok(answer) => {
            let mut page = format!("Hello from <b>{}</b>!", escape(&answer.text));
            if app
                .flags
                .as_ref()
                .is_some_and(|flags| flags.is_enabled_for(SHOW_REPLICA, &visitor))
            {
                page.push_str(&format!(
                    "<p>Served by <code>{}</code>.</p>",
                    escape(&answer.replica)
                ));
            }
            (StatusCode::OK, Html(page)).into_response()
        }
        Err(reason) => (
            StatusCode::BAD_GATEWAY,
            Html(format!(
                "<h1>502 Bad Gateway</h1><p>The backend at {} could not be reached: {}</p>",
                escape(&app.backend_url),
                escape(&reason)
            )),
        )
            .into_response(),
    };
    if new_visitor
        && let Ok(cookie) = HeaderValue::from_str(&format!(
            "visitor={visitor}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly"
        ))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The `visitor` cookie of a request: the key flags on for a percentage are decided by.
fn visitor_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().strip_prefix("visitor="))
        .find(|id| {
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .map(str::to_owned)
}

/// A random visitor id: 64 bits from the standard library's per-process random hash keys,
/// mixed with a counter so two ids of one process differ.
fn new_visitor_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    format!("{:016x}", hasher.finish())
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
