//! The one error shape of the API.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::plugins::CallError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

/// The body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    #[schema(inline)]
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ErrorDetail {
    /// Stable, for programs: `not_found`, `bad_request`, `unauthorized`, `forbidden`, …
    code: &'static str,
    /// For people: what is wrong and how to fix it.
    message: String,
    /// The request field at fault, when one is (`inputs.depth`, `scopes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl ApiError {
    /// The error as the API answers it (an HTTP response's body, a socket's reply).
    pub fn into_body(self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.into_body())).into_response()
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        let status = match &e {
            CallError::NotLoaded(_) => StatusCode::NOT_FOUND,
            CallError::WrongKind { .. } => StatusCode::BAD_REQUEST,
            CallError::Plugin { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            CallError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        Self::new(status, e.code(), e.to_string())
    }
}

/// Parse a JSON request body into `T`, naming the field that is wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let message = e.inner().to_string();
        let err = ApiError::bad_request(if field == "." {
            message
        } else {
            format!("`{field}`: {message}")
        });
        if field == "." {
            err
        } else {
            err.with_field(field)
        }
    })
}

/// A duration field (`"30s"`, `"12h"`), naming the field when it does not read.
pub fn duration(
    field: &'static str,
    text: Option<&str>,
) -> Result<Option<std::time::Duration>, ApiError> {
    text.map(|t| {
        humantime::parse_duration(t).map_err(|e| {
            ApiError::bad_request(format!(
                "`{field}`: `{t}` is not a duration ({e}); write e.g. `30s`, `5m`, `12h`"
            ))
            .with_field(field)
        })
    })
    .transpose()
}
