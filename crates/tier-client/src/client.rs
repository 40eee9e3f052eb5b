//! The connection to one environment's store and the calls every service makes: typed get
//! and put, watches, the flag cache and discovery. The calls the CLI adds (listing, history,
//! rollback, flag overrides, watches from a revision) are in `keys.rs`, `flags.rs` and
//! `events.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ClientError, check};
use crate::flags::{self, Flags};
use crate::watch::{self, Watch};

/// A connection to one environment's store. Cheap to clone.
///
/// Reads need the environment's read-only or read-write token; writes (put, delete,
/// rollback, flag overrides) need the read-write one, which the CLI and operators hold.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

/// How a client talks to the store beyond its address and token.
#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    /// Sent as `X-Tier-Actor` (1 to 128 printable bytes): whom the audit records of changes
    /// made through this client name.
    pub actor: Option<String>,
    /// How long one request and its answer may take. Watches and the flag cache's stream
    /// are not bounded by it: they are meant to stay open.
    pub request_timeout: Option<Duration>,
}

#[derive(Debug)]
struct Inner {
    base: Url,
    token: Secret,
    environment: String,
    config: ClientConfig,
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

/// The answer to a change: its revision, `null` when there was nothing to change.
#[derive(Deserialize)]
pub(crate) struct Written {
    pub(crate) revision: Option<u64>,
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
        Client::with_config(agent_url, token, environment, ClientConfig::default())
    }

    /// [`Client::new`] with an actor and a request timeout.
    pub fn with_config(
        agent_url: &str,
        token: &str,
        environment: &str,
        config: ClientConfig,
    ) -> Result<Client, ClientError> {
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
                config,
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
        match self.entry(key).await? {
            Some(kv) => serde_json::from_value(kv.value)
                .map(Some)
                .map_err(|error| ClientError::Decode(format!("{key}: {error}"))),
            None => Ok(None),
        }
    }

    /// Writes `value` under `key` (needs a read-write token); returns the write's revision.
    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<u64, ClientError> {
        let value =
            serde_json::to_value(value).map_err(|error| ClientError::Decode(error.to_string()))?;
        let url = self.url(&["v1", "kv"], key, &[]);
        let body = serde_json::json!({ "value": value });
        let written: Written = self.call(Method::PUT, url, Some(body)).await?;
        written
            .revision
            .ok_or_else(|| ClientError::Decode(format!("{key}: a write without a revision")))
    }

    /// Every change to keys under `prefix` from now on. After a disconnect (an agent restart,
    /// say) the watch reconnects with a bounded backoff and continues after the last change
    /// it delivered, so none is missed or repeated.
    pub async fn watch(&self, prefix: &str) -> Result<Watch, ClientError> {
        let start = self.list(prefix).await?.revision;
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
    pub(crate) fn url(&self, segments: &[&str], key: &str, query: &[(&str, &str)]) -> Url {
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

    /// A request with the token and the actor; no timeout, so streams may use it.
    pub(crate) fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self
            .inner
            .http
            .request(method, url)
            .bearer_auth(&self.inner.token.0);
        match &self.inner.config.actor {
            Some(actor) => request.header("x-tier-actor", actor),
            None => request,
        }
    }

    /// Sends one request within the configured timeout and decodes its JSON answer.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<Value>,
    ) -> Result<T, ClientError> {
        let mut request = self.request(method, url);
        if let Some(timeout) = self.inner.config.request_timeout {
            request = request.timeout(timeout);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(ClientError::Unreachable)?;
        let response = check(response).await?;
        let body = response.bytes().await.map_err(ClientError::BrokenOff)?;
        serde_json::from_slice(&body).map_err(|error| ClientError::Decode(error.to_string()))
    }
}
