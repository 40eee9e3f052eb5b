//! Why a call to the store failed, read from the API's error bodies (`docs/api.md`): one
//! reading for an answer's status and body and for the `error` event that ends a watch.

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
    /// The store began to answer but the answer did not arrive whole.
    #[error("the config store's answer broke off: {0}")]
    BrokenOff(#[source] reqwest::Error),
    /// The store answered with an error (`docs/api.md` lists the codes).
    #[error("the config store refused ({status}, {code}): {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// For an unknown flag, the declared one with the closest name.
        did_you_mean: Option<String>,
    },
    #[error("unexpected answer from the config store: {0}")]
    Decode(String),
    /// A watch asked for, or fell behind, history the store no longer keeps; read the keys
    /// again and watch anew. `message` is the store's own account.
    #[error("the watch fell behind compacted history (the oldest kept revision is {compacted})")]
    Compacted { compacted: u64, message: String },
}

/// An error as the API writes it, in an answer's body or an `error` event's data.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    compacted_revision: Option<u64>,
    #[serde(default)]
    did_you_mean: Option<String>,
}

impl ErrorBody {
    fn into_error(self, status: u16) -> ClientError {
        let message = self
            .message
            .filter(|message| !message.is_empty())
            .unwrap_or_else(|| answered(status));
        if self.error == "compacted" {
            return ClientError::Compacted {
                compacted: self.compacted_revision.unwrap_or(0),
                message,
            };
        }
        ClientError::Api {
            status,
            code: self.error,
            message,
            did_you_mean: self.did_you_mean,
        }
    }
}

fn answered(status: u16) -> String {
    format!("the store answered {status}")
}

/// The response when it succeeded, or its error body as a `ClientError`.
pub(crate) async fn check(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body: Option<ErrorBody> = response.json().await.ok();
    Err(match body {
        Some(body) => body.into_error(status.as_u16()),
        None if status == StatusCode::GONE => ClientError::Compacted {
            compacted: 0,
            message: answered(status.as_u16()),
        },
        None => ClientError::Api {
            status: status.as_u16(),
            code: "unknown".to_owned(),
            message: answered(status.as_u16()),
            did_you_mean: None,
        },
    })
}

/// The error event a server sends before ending a watch it cannot continue.
pub(crate) fn stream_error(data: &str) -> ClientError {
    match serde_json::from_str::<ErrorBody>(data) {
        Ok(body) => body.into_error(StatusCode::OK.as_u16()),
        Err(error) => ClientError::Decode(error.to_string()),
    }
}
