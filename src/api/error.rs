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

/// Read a JSON value into `T`, naming the field that is wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| wrong_field(e.path(), e.inner()))
}

/// Read JSON text (`what`: "the body", "the message") straight into `T`, with no JSON
/// value built in between: it says so when the text is not JSON (naming `whole` as the
/// field, if given), else it names the field that is wrong, like [`parse_json`].
pub fn parse_json_text<T: serde::de::DeserializeOwned>(
    what: &str,
    whole: Option<&str>,
    text: &[u8],
) -> Result<T, ApiError> {
    // Text that reads is read once, plainly: tracking the path copies every key (a
    // tenth of the publishing socket's CPU). Only text that fails is read again, to
    // name where it fails; the same text fails the same way.
    match serde_json::from_slice(text) {
        Ok(parsed) => Ok(parsed),
        Err(_) => Err(explain_json_text::<T>(what, whole, text)),
    }
}

/// Why `text` does not read as `T`, naming the field when it is JSON.
fn explain_json_text<T: serde::de::DeserializeOwned>(
    what: &str,
    whole: Option<&str>,
    text: &[u8],
) -> ApiError {
    let not_json = |e: &serde_json::Error| {
        let error = ApiError::bad_request(format!("{what} is not JSON: {e}"));
        match whole {
            Some(field) => error.with_field(field),
            None => error,
        }
    };
    let mut de = serde_json::Deserializer::from_slice(text);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(e) if e.inner().is_syntax() || e.inner().is_eof() => not_json(e.inner()),
        Err(e) => wrong_field(e.path(), e.inner()),
        Ok(_) => match de.end() {
            Err(e) => not_json(&e),
            // Unreachable: serde_json read it whole a moment ago.
            Ok(()) => ApiError::bad_request(format!("{what} could not be read")),
        },
    }
}

fn wrong_field(path: &serde_path_to_error::Path, error: &serde_json::Error) -> ApiError {
    let field = path.to_string();
    if field == "." {
        ApiError::bad_request(error.to_string())
    } else {
        ApiError::bad_request(format!("`{field}`: {error}")).with_field(field)
    }
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

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::event::EventData;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Request {
        name: String,
        #[serde(default)]
        data: EventData,
    }

    #[test]
    fn text_is_read_straight_into_its_type() {
        let r: Request = parse_json_text(
            "the body",
            Some("body"),
            br#"{"name":"a","data":{"k":[1, 2]}}"#,
        )
        .unwrap();
        assert_eq!(r.name, "a");
        assert_eq!(r.data.text(), "{\"k\":[1, 2]}", "data kept as it came");
    }

    #[test]
    fn a_wrong_field_is_named_and_text_that_is_not_json_is_said_so() {
        let e =
            parse_json_text::<Request>("the body", Some("body"), br#"{"name": 1}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"), "{}", e.message);
        let e = parse_json_text::<Request>("the body", Some("body"), br#"{"name":"a","nmae":"b"}"#)
            .unwrap_err();
        assert!(e.message.contains("unknown field `nmae`"), "{}", e.message);
        assert_eq!(e.field.as_deref(), Some("nmae"));
        let e = parse_json_text::<Request>("the body", Some("body"), b"{}").unwrap_err();
        assert!(e.message.contains("missing field `name`"), "{}", e.message);
        assert_eq!(e.field, None, "the whole is at fault, as from a JSON value");
        for text in [&b"{\"name\":"[..], b"{name}", b"{\"name\":\"a\"} x", b""] {
            let e = parse_json_text::<Request>("the body", Some("body"), text).unwrap_err();
            assert!(
                e.message.starts_with("the body is not JSON"),
                "{}",
                e.message
            );
        }
    }
}
