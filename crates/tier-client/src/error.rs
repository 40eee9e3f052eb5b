//! Why a call to the store failed, read from the API's error bodies (`docs/api.md`).

use reqwest::StatusCode;
use serde::Deserialize;

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

/// The response when it succeeded, or its error body as `ClientError::Api`.
pub(crate) async fn check(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
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
