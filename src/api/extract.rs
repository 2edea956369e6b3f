//! Extractors for request bodies, queries and paths whose rejections answer in the
//! API's one error shape (axum's own answer in plain text).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON request body read straight into `T`, naming the field that is wrong (see
/// `parse_json_text`).
pub struct Body<T = serde_json::Value>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(rejected(
                "body",
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expected request with `Content-Type: application/json`".into(),
            ));
        }
        read(req, state).await.map(Body)
    }
}

/// An optional body: none without a content type; with one, it must be JSON.
impl<S: Send + Sync, T: DeserializeOwned> axum::extract::OptionalFromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        if !req.headers().contains_key(axum::http::header::CONTENT_TYPE) {
            return Ok(None);
        }
        <Self as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

async fn read<S: Send + Sync, T: DeserializeOwned>(req: Request, state: &S) -> Result<T, ApiError> {
    let bytes = axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| rejected("body", e.status(), e.body_text()))?;
    super::error::parse_json_text("the body", Some("body"), &bytes)
}

/// `application/json`, or a type with the `+json` suffix, parameters aside.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

/// Query parameters.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(e) => Err(rejected("query", e.status(), e.body_text())),
        }
    }
}

/// Path parameters.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(e) => Err(rejected("path", e.status(), e.body_text())),
        }
    }
}

/// A WebSocket handshake.
pub struct Upgrade(pub axum::extract::ws::WebSocketUpgrade);

/// Bytes a socket reads at a time. The library's default, 128 KiB, is zero-filled
/// before every read, including the reads that find nothing: 7% of the runtime's CPU
/// under a busy worker socket, for commands of a few hundred bytes. A longer
/// message still arrives whole (the buffer grows to fit it).
const READ_BUFFER: usize = 8 * 1024;

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::ws::WebSocketUpgrade::from_request_parts(parts, state).await {
            Ok(upgrade) => Ok(Upgrade(upgrade.read_buffer_size(READ_BUFFER))),
            Err(e) => Err(ApiError::new(
                e.status(),
                "websocket_required",
                format!("this route is a WebSocket: {}", e.body_text()),
            )),
        }
    }
}

fn rejected(part: &'static str, status: axum::http::StatusCode, text: String) -> ApiError {
    let code = if status == axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE {
        "unsupported_media_type"
    } else {
        "bad_request"
    };
    ApiError::new(status, code, text).with_field(part)
}
