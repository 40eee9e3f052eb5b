//! What every handler takes from a request: the caller (from its token), a JSON body within
//! the size limit, a checked key, revisions and wait times.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::tokens::{Denied, TokenKind};
use super::{Api, RESERVED_PREFIX};
use crate::backend::Backend;
use crate::types::Revision;

/// The largest request body (a value and its envelope).
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The longest key, in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 1024;
/// The longest `X-Tier-Actor`.
const MAX_ACTOR_BYTES: usize = 128;
/// How long a long-poll waits when `wait` is not given, and the most it may ask for.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const MAX_WAIT: Duration = Duration::from_secs(600);

/// Who is calling: what their token allows and who they say they are.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) kind: TokenKind,
    pub(crate) actor: Option<String>,
}

impl Caller {
    pub(crate) fn require_write(&self) -> Result<(), ApiError> {
        match self.kind {
            TokenKind::ReadWrite => Ok(()),
            TokenKind::ReadOnly => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "read_only_token",
                "this token may only read; writes need the environment's read-write token",
            )),
        }
    }
}

impl<B: Backend> FromRequestParts<Arc<Api<B>>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api<B>>) -> Result<Self, ApiError> {
        let unauthenticated = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!(
                    "send `Authorization: Bearer <token>` with a token of environment {}",
                    api.tokens.environment()
                ),
            )
        };
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(unauthenticated)?;
        let kind = api
            .tokens
            .authorize(presented)
            .map_err(|denied| match denied {
                Denied::Unauthenticated => unauthenticated(),
                Denied::OtherEnvironment(other) => ApiError::new(
                    StatusCode::FORBIDDEN,
                    "wrong_environment",
                    format!(
                        "this is environment {}'s store; the token belongs to environment {other}",
                        api.tokens.environment()
                    ),
                ),
            })?;
        let actor = match parts.headers.get("x-tier-actor") {
            None => None,
            Some(value) => {
                let actor = value.to_str().ok().filter(|actor| {
                    !actor.is_empty()
                        && actor.len() <= MAX_ACTOR_BYTES
                        && !actor.chars().any(char::is_control)
                });
                Some(actor.map(str::to_owned).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_actor",
                        format!("X-Tier-Actor must be 1 to {MAX_ACTOR_BYTES} printable bytes"),
                    )
                })?)
            }
        };
        Ok(Caller { kind, actor })
    }
}

/// A JSON body of at most `MAX_BODY_BYTES`, with errors in the API's form.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
                    )
                    .with("limit", MAX_BODY_BYTES)
                } else {
                    ApiError::bad_request("bad_body", rejection.body_text())
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|error| {
                ApiError::bad_request("malformed_json", format!("the body is not valid: {error}"))
            })
    }
}

/// Checks a key given to `/v1/kv`: not empty, not too long, no control characters and not
/// under the reserved prefix.
pub(crate) fn user_key(key: &str) -> Result<&str, ApiError> {
    check_key_shape(key)?;
    if key.starts_with(RESERVED_PREFIX) {
        return Err(reserved(key));
    }
    Ok(key)
}

/// Checks a prefix given to `/v1/kv` or `/v1/watch`; the empty prefix is every user key.
pub(crate) fn user_prefix(prefix: &str) -> Result<&str, ApiError> {
    if !prefix.is_empty() {
        check_key_shape(prefix)?;
    }
    if prefix.starts_with(RESERVED_PREFIX) {
        return Err(reserved(prefix));
    }
    Ok(prefix)
}

fn check_key_shape(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_key",
            "the key is empty; use /v1/kv?prefix= to list keys",
        ));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ApiError::bad_request(
            "key_too_long",
            format!(
                "the key is {} bytes long; the limit is {MAX_KEY_BYTES}",
                key.len()
            ),
        )
        .with("limit", MAX_KEY_BYTES));
    }
    if key.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_key",
            "the key has a control character",
        ));
    }
    Ok(())
}

fn reserved(key: &str) -> ApiError {
    ApiError::bad_request(
        "reserved_key",
        format!(
            "{key:?} is under {RESERVED_PREFIX}, which tier keeps for audit records, flags and \
             services; use /v1/flags and /v1/services for those"
        ),
    )
}

/// Parses a revision given as a query parameter or header.
pub(crate) fn revision(name: &str, text: &str) -> Result<Revision, ApiError> {
    text.trim().parse::<u64>().map(Revision).map_err(|_| {
        ApiError::bad_request(
            "bad_revision",
            format!("{name} must be a revision number (0 or more), not {text:?}"),
        )
    })
}

/// Parses a long-poll wait such as `30s`, `5m`, `500ms` or `10` (seconds), at most ten
/// minutes; the default is five.
pub(crate) fn wait(text: Option<&str>) -> Result<Duration, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_WAIT);
    };
    let text = text.trim();
    let bad = || {
        ApiError::bad_request(
            "bad_wait",
            format!("wait must look like 30s, 5m or 500ms (at most 10m), not {text:?}"),
        )
    };
    let (number, unit_millis) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1000)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60_000)
    } else {
        (text, 1000)
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let wait = Duration::from_millis(number.checked_mul(unit_millis).ok_or_else(bad)?);
    if wait > MAX_WAIT {
        return Err(bad());
    }
    Ok(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits() {
        assert_eq!(wait(Some("30s")).ok(), Some(Duration::from_secs(30)));
        assert_eq!(wait(Some("2m")).ok(), Some(Duration::from_secs(120)));
        assert_eq!(wait(Some("250ms")).ok(), Some(Duration::from_millis(250)));
        assert_eq!(wait(Some("7")).ok(), Some(Duration::from_secs(7)));
        assert_eq!(wait(None).ok(), Some(DEFAULT_WAIT));
        assert!(wait(Some("11m")).is_err());
        assert!(wait(Some("soon")).is_err());
        assert!(wait(Some("99999999999999999999m")).is_err());
    }

    #[test]
    fn keys() {
        assert!(user_key("app/a").is_ok());
        assert!(user_key("").is_err());
        assert!(user_key("_tier/audit/x").is_err());
        assert!(user_key("a\u{0}b").is_err());
        assert!(user_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(user_prefix("").is_ok());
        assert!(user_prefix("_tier/").is_err());
        assert!(user_prefix("_ti").is_ok());
    }
}
