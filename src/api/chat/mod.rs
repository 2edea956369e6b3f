//! `POST /v1/sessions/{key}/chat`: a session turn as the Vercel AI SDK's UI message
//! stream (protocol v1), so a `useChat` front end talks to a Switchyard session directly.
//!
//! Request: the SDK's body (`{id, messages: [UIMessage], trigger, messageId}`); the last
//! user message's text parts are the new input (the session keeps its own history, so
//! earlier messages are not replayed). The session is created with the default adapter
//! if it does not exist. Response: SSE `data:` lines, one JSON chunk each, header
//! `x-vercel-ai-ui-message-stream: v1`, ending with `data: [DONE]`. Chunks carry only
//! the fields the SDK's chunk schemas define.

mod ui_stream;

use std::borrow::Cow;

use axum::extract::State;
use axum::http::{HeaderName, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;

use super::extract::{Body, Path};
use super::{ApiError, AppState};
use crate::bus::{Subscription, TopicPattern};
use crate::sessions::{Offered, SessionError, lenient_text};
use crate::store::MessageRecord;

/// The parts of the SDK's request body Switchyard uses; the SDK (and apps) add more.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct ChatRequest {
    messages: Vec<UiMessage>,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct UiMessage {
    role: String,
    #[serde(default)]
    parts: Vec<UiPart>,
}

/// A message part: its type and text, if it has them. The SDK sends every earlier
/// message of the chat with each turn, tool calls and all; the rest of each part is
/// skipped, never built into a JSON value.
#[derive(Deserialize, utoipa::ToSchema)]
struct UiPart {
    #[serde(rename = "type", default, deserialize_with = "owned_text")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "owned_text")]
    text: Option<String>,
}

fn owned_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(lenient_text(d)?.map(Cow::into_owned))
}

#[utoipa::path(
    post,
    path = "/sessions/{key}/chat",
    tag = "sessions",
    params(("key" = String, Path, description = "Session key")),
    request_body = ChatRequest,
    responses((status = 200, description = "The reply as an AI SDK UI message stream", content_type = "text/event-stream", body = String)),
    security(("token" = ["sessions:write"]))
)]
pub async fn chat(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Body(request): Body<ChatRequest>,
) -> Result<Response, ApiError> {
    let text = user_text(&request)?;
    let (subscription, message) = match start_turn(&state, &key, text).await? {
        Ok(started) => started,
        // Deleted under a key remembered here, which is now forgotten: the key names
        // a new session, or is free to create one.
        Err(text) => start_turn(&state, &key, text)
            .await?
            .map_err(|_| ApiError::from(SessionError::NotFound(key.clone())))?,
    };

    let shutdown = state.shutdown.clone().cancelled_owned();
    let frames =
        ui_stream::frames(subscription, message.id, super::SSE_KEEP_ALIVE).take_until(shutdown);
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache"),
        (
            HeaderName::from_static("x-vercel-ai-ui-message-stream"),
            "v1",
        ),
        (HeaderName::from_static("x-accel-buffering"), "no"),
    ];
    Ok((headers, axum::body::Body::from_stream(frames)).into_response())
}

/// The new input: the text parts of the last user message, one per line.
fn user_text(request: &ChatRequest) -> Result<String, ApiError> {
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .ok_or_else(|| {
            ApiError::bad_request("`messages` has no user message").with_field("messages")
        })?;
    let text: String = last_user
        .parts
        .iter()
        .filter(|p| p.kind.as_deref() == Some("text"))
        .filter_map(|p| p.text.as_deref())
        .collect::<Vec<_>>()
        .join("\n");
    if text.is_empty() {
        return Err(
            ApiError::bad_request("the last user message has no text part").with_field("messages"),
        );
    }
    Ok(text)
}

/// Queue `text` on the session `key`, created if need be, and follow its events; the
/// text back if that session turned out deleted.
async fn start_turn(
    state: &AppState,
    key: &str,
    text: String,
) -> Result<Result<(Subscription, MessageRecord), String>, SessionError> {
    let session = state.sessions.get_or_create(key).await?;
    let pattern = TopicPattern::parse(&format!("session.{}.>", session.id))
        .expect("a session id makes a valid topic");
    // Subscribe before queueing, so the turn's first event cannot be missed.
    let subscription = state.bus.subscribe_from(pattern, None);
    Ok(match state.sessions.enqueue_on(session, text).await? {
        Offered::Queued(message, _) => Ok((subscription, message)),
        Offered::Gone(text) => Err(text),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// The SDK sends every earlier message with each turn; only the last user
    /// message's text parts are read, whatever the other parts hold.
    #[test]
    fn a_request_reads_the_last_user_messages_text_parts() {
        let body = json!({ "id": "c1", "trigger": "submit-message", "messages": [
            { "id": "u1", "role": "user", "parts": [{ "type": "text", "text": "first" }] },
            { "id": "a1", "role": "assistant", "parts": [
                { "type": "step-start" },
                { "type": "tool-ls", "toolCallId": "t1", "state": "output-available",
                  "input": { "dir": "/" }, "output": [1, { "x": null }] },
                { "type": "text", "text": "ok", "state": "done" },
            ] },
            { "id": "u2", "role": "user", "parts": [
                { "type": "file", "mediaType": "text/plain", "url": "data:," },
                { "type": "text", "text": "second" },
                { "text": 3 },
                { "type": "text", "text": "third" },
            ] },
        ] });
        let request: super::ChatRequest =
            crate::api::error::parse_json_text("the body", None, body.to_string().as_bytes())
                .unwrap();
        assert_eq!(super::user_text(&request).unwrap(), "second\nthird");
    }
}
