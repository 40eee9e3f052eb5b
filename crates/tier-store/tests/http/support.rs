//! A real server on 127.0.0.1:0 over a real redb file, and a small HTTP and SSE client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tier_store::http::{self, ApiConfig, FlagDefault, Tokens};
use tier_store::{Backend, EmbeddedConfig, EmbeddedStore, Revision};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that should happen promptly.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn ok<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("unexpected error: {error}"),
    }
}

pub fn some<T>(option: Option<T>) -> T {
    match option {
        Some(value) => value,
        None => panic!("unexpected None"),
    }
}

pub struct Server {
    pub url: String,
    pub store: Arc<EmbeddedStore>,
    pub read_write: String,
    pub read_only: String,
    /// The read-write token of another environment, prod.
    pub prod: String,
    pub client: reqwest::Client,
    tokens: Tokens,
    shutdown: CancellationToken,
    serving: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _directory: tempfile::TempDir,
}

/// The flags every test server declares.
pub fn declared_flags() -> BTreeMap<String, FlagDefault> {
    let flag = |value: Value, description: &str| FlagDefault {
        value,
        description: Some(description.to_owned()),
    };
    BTreeMap::from([
        (
            "new-checkout".to_owned(),
            flag(json!(false), "the new checkout page"),
        ),
        ("dark-mode".to_owned(), flag(json!(true), "dark theme")),
        (
            "banner-color".to_owned(),
            flag(json!("blue"), "banner colour"),
        ),
    ])
}

impl Server {
    pub async fn start() -> Server {
        let directory = ok(tempfile::tempdir());
        let config = EmbeddedConfig {
            history: None,
            ..EmbeddedConfig::default()
        };
        let store = ok(EmbeddedStore::open(&directory.path().join("store.redb"), config).await);
        let tokens = ok(Tokens::load_or_create(
            &directory.path().join("dev-tokens.json"),
            "dev",
        ));
        let prod = ok(Tokens::load_or_create(
            &directory.path().join("prod-tokens.json"),
            "prod",
        ));
        let listener = ok(TcpListener::bind("127.0.0.1:0").await);
        let address = ok(listener.local_addr());
        let shutdown = CancellationToken::new();
        let store = Arc::new(store);
        let config = ApiConfig {
            flags: declared_flags(),
            shutdown: shutdown.clone(),
            ..ApiConfig::default()
        };
        let serving = tokio::spawn(http::serve(listener, store.clone(), tokens.clone(), config));
        Server {
            url: format!("http://{address}"),
            store,
            read_write: tokens.read_write().expose().to_owned(),
            read_only: tokens.read_only().expose().to_owned(),
            prod: prod.read_write().expose().to_owned(),
            client: reqwest::Client::new(),
            tokens,
            shutdown,
            serving: Some(serving),
            _directory: directory,
        }
    }

    /// A second API server over the same store and tokens (as two `tier store serve` in front
    /// of one etcd): its URL. It stops with this one.
    pub async fn another_api(&self) -> String {
        let listener = ok(TcpListener::bind("127.0.0.1:0").await);
        let address = ok(listener.local_addr());
        let config = ApiConfig {
            flags: declared_flags(),
            shutdown: self.shutdown.clone(),
            ..ApiConfig::default()
        };
        tokio::spawn(http::serve(
            listener,
            self.store.clone(),
            self.tokens.clone(),
            config,
        ));
        format!("http://{address}")
    }

    /// Stops the server and waits until it has returned.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(serving) = self.serving.take() {
            let finished = tokio::time::timeout(PATIENCE, serving).await;
            assert!(
                matches!(finished, Ok(Ok(Ok(())))),
                "the server did not stop cleanly"
            );
        }
    }

    /// Sends a request with `token` (none when `None`) and returns the status, the
    /// `X-Tier-Index` header and the JSON body (`null` when there is none).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = ok(request.send().await);
        let status = response.status();
        let index = response
            .headers()
            .get("x-tier-index")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        let bytes = ok(response.bytes().await);
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(body) => body,
                Err(_) => panic!(
                    "{status}: the body is not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                ),
            }
        };
        Reply {
            status,
            index,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Some(&self.read_write), None)
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(
            Method::PUT,
            path,
            Some(&self.read_write),
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(
            Method::POST,
            path,
            Some(&self.read_write),
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, Some(&self.read_write), None)
            .await
    }

    /// The store's current revision.
    pub async fn revision(&self) -> Revision {
        ok(self.store.revisions().await).0
    }

    /// Opens `GET path` as an event stream with the read-write token.
    pub async fn events(&self, path: &str, last_event_id: Option<&str>) -> Events {
        let mut request = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.read_write);
        if let Some(last) = last_event_id {
            request = request.header("last-event-id", last);
        }
        let response = ok(request.send().await);
        assert_eq!(response.status(), StatusCode::OK, "opening {path}");
        Events {
            response,
            buffer: String::new(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub index: Option<u64>,
    pub body: Value,
}

impl Reply {
    /// Asserts the status and returns the body.
    pub fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        self.body
    }

    /// Asserts an error reply: the status, the JSON error body and its code.
    pub fn expect_error(self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["error"], code, "body: {}", self.body);
        assert!(self.body["message"].as_str().is_some_and(|m| !m.is_empty()));
        self.body
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// The next event, waiting at most `PATIENCE`; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<SseEvent> {
        match tokio::time::timeout(PATIENCE, self.read_event()).await {
            Ok(event) => event,
            Err(_) => panic!("no event within {PATIENCE:?}"),
        }
    }

    async fn read_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".into(),
                    id: None,
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event.event = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("id:") {
                        event.id = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                event.data = ok(serde_json::from_str(&data));
                return Some(event);
            }
            let chunk = ok(self.response.chunk().await)?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// Polls `check` until it returns `Some`, for at most `PATIENCE`.
pub async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {PATIENCE:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
