//! What a service links to talk to its environment's runtime config store (the API in
//! `docs/api.md`, served by the environment's agent).
//!
//! ```no_run
//! # async fn example() -> Result<(), tier_client::ClientError> {
//! let client = tier_client::Client::from_env()?; // TIER_AGENT_URL, TIER_TOKEN, ENV_NAME
//! let limit: Option<u32> = client.get("backend/rate-limit").await?;
//! let flags = client.flags().await?; // kept current in the background
//! if flags.is_enabled_for("new-checkout", "user-42") { /* ... */ }
//! let mut changes = client.watch("backend/").await?;
//! while let Some(change) = changes.next().await {
//!     let change = change?; // resumes by itself after a disconnect
//!     println!("{} is now {:?} (revision {})", change.key, change.value, change.revision);
//! }
//! let backends = client.discover("backend").await?;
//! # Ok(()) }
//! ```

mod flags;
mod sse;
mod watch;

use std::fmt;
use std::sync::Arc;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use flags::{Flags, flag_enabled, rollout_bucket};
pub use watch::{Change, Watch};

/// A connection to one environment's store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: Url,
    token: Secret,
    environment: String,
    http: reqwest::Client,
}

/// A bearer token; never shown by `Debug`.
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("<redacted>")
    }
}

/// One live replica of a service.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Endpoint {
    pub replica: String,
    /// `host:port`.
    pub address: String,
}

/// Why a call failed. No variant carries the token.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0} is not set; tier sets it for every replica it starts")]
    MissingVariable(&'static str),
    #[error("invalid agent URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("the token is for environment {token}, but this is environment {environment}")]
    WrongEnvironment { token: String, environment: String },
    #[error("cannot reach the config store: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// The store answered with an error (`docs/api.md` lists the codes).
    #[error("the config store refused ({status}, {code}): {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from the config store: {0}")]
    Decode(String),
    /// A watch fell behind the history the store keeps; read the keys again and watch anew.
    #[error("the watch fell behind compacted history (the oldest kept revision is {compacted})")]
    Compacted { compacted: u64 },
}

#[derive(Deserialize)]
struct KeyValueBody {
    value: Value,
}

#[derive(Deserialize)]
struct Written {
    revision: u64,
}

#[derive(Deserialize)]
struct ServiceBody {
    endpoints: Vec<Endpoint>,
}

impl Client {
    /// The client for the environment tier started this process in: `TIER_AGENT_URL`,
    /// `TIER_TOKEN` and `ENV_NAME`.
    pub fn from_env() -> Result<Client, ClientError> {
        let read = |name: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.is_empty())
                .ok_or(ClientError::MissingVariable(name))
        };
        Client::new(
            &read("TIER_AGENT_URL")?,
            &read("TIER_TOKEN")?,
            &read("ENV_NAME")?,
        )
    }

    /// The client for the store at `agent_url` (`http://127.0.0.1:PORT`), with a token of
    /// `environment`.
    pub fn new(agent_url: &str, token: &str, environment: &str) -> Result<Client, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: agent_url.to_owned(),
            reason: reason.to_owned(),
        };
        let base = Url::parse(agent_url).map_err(|error| invalid(&error.to_string()))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("it must be an http:// URL"));
        }
        // Tokens read `tier_<environment>_<kind>_<secret>`.
        let token_environment = token
            .strip_prefix("tier_")
            .and_then(|rest| rest.split_once('_'))
            .map(|(environment, _)| environment);
        if let Some(token_environment) = token_environment
            && token_environment != environment
        {
            return Err(ClientError::WrongEnvironment {
                token: token_environment.to_owned(),
                environment: environment.to_owned(),
            });
        }
        let http = reqwest::Client::builder()
            .build()
            .map_err(ClientError::Unreachable)?;
        Ok(Client {
            inner: Arc::new(Inner {
                base,
                token: Secret(token.to_owned()),
                environment: environment.to_owned(),
                http,
            }),
        })
    }

    /// The environment this client talks to.
    pub fn environment(&self) -> &str {
        &self.inner.environment
    }

    /// The value under `key`, decoded as `T`; `None` when the key does not exist.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ClientError> {
        let url = self.url(&["v1", "kv"], key, &[]);
        match self.call::<KeyValueBody>(Method::GET, url, None).await {
            Ok(body) => serde_json::from_value(body.value)
                .map(Some)
                .map_err(|error| ClientError::Decode(format!("{key}: {error}"))),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Writes `value` under `key` (needs a read-write token); returns the write's revision.
    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<u64, ClientError> {
        let value =
            serde_json::to_value(value).map_err(|error| ClientError::Decode(error.to_string()))?;
        let url = self.url(&["v1", "kv"], key, &[]);
        let body = serde_json::json!({ "value": value });
        Ok(self
            .call::<Written>(Method::PUT, url, Some(body))
            .await?
            .revision)
    }

    /// Every change to keys under `prefix` from now on. After a disconnect (an agent restart,
    /// say) the watch reconnects with a bounded backoff and continues after the last change
    /// it delivered, so none is missed or repeated.
    pub async fn watch(&self, prefix: &str) -> Result<Watch, ClientError> {
        let url = self.url(&["v1", "kv"], "", &[("prefix", prefix)]);
        #[derive(Deserialize)]
        struct Listed {
            revision: u64,
        }
        let start = self.call::<Listed>(Method::GET, url, None).await?.revision;
        Ok(watch::start(self.clone(), prefix.to_owned(), start))
    }

    /// The environment's feature flags, kept current by a background watch for as long as a
    /// clone of the returned value lives; its questions are answered without a request.
    pub async fn flags(&self) -> Result<Flags, ClientError> {
        flags::start(self.clone()).await
    }

    /// The live endpoints of `service`, in replica order.
    pub async fn discover(&self, service: &str) -> Result<Vec<Endpoint>, ClientError> {
        let url = self.url(&["v1", "services", service], "", &[]);
        Ok(self
            .call::<ServiceBody>(Method::GET, url, None)
            .await?
            .endpoints)
    }

    /// `base/segments.../key-segments...?query`, each part percent-encoded.
    fn url(&self, segments: &[&str], key: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
            if !key.is_empty() {
                path.extend(key.split('/'));
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.inner
            .http
            .request(method, url)
            .bearer_auth(&self.inner.token.0)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<Value>,
    ) -> Result<T, ClientError> {
        let mut request = self.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(ClientError::Unreachable)?;
        let response = check(response).await?;
        response
            .json()
            .await
            .map_err(|error| ClientError::Decode(error.to_string()))
    }
}

/// The response when it succeeded, or its error body as `ClientError::Api`.
async fn check(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        compacted_revision: Option<u64>,
    }
    let body: Option<ErrorBody> = response.json().await.ok();
    Err(match body {
        Some(body) if status == StatusCode::GONE => ClientError::Compacted {
            compacted: body.compacted_revision.unwrap_or(0),
        },
        Some(body) => ClientError::Api {
            status: status.as_u16(),
            code: body.error,
            message: body.message,
        },
        None => ClientError::Api {
            status: status.as_u16(),
            code: "unknown".to_owned(),
            message: status.to_string(),
        },
    })
}
