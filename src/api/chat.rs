//! `POST /v1/sessions/{key}/chat`: a session turn as the Vercel AI SDK's UI message
//! stream (protocol v1), so a `useChat` front end talks to a Switchyard session directly.
//!
//! Request: the SDK's body (`{id, messages: [UIMessage], trigger, messageId}`); the last
//! user message's text parts are the new input (the session keeps its own history, so
//! earlier messages are not replayed). The session is created with the default adapter
//! if it does not exist. Response: SSE `data:` lines, one JSON chunk each, header
//! `x-vercel-ai-ui-message-stream: v1`, ending with `data: [DONE]`. Chunks carry only
//! the fields the SDK's chunk schemas define.

use std::convert::Infallible;

use super::extract::{Body, Path};
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::bus::{Subscription, TopicPattern};
use crate::sessions::{Offered, SessionError};
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
    parts: Vec<Value>,
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
        .filter(|p| p["type"] == "text")
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    if text.is_empty() {
        return Err(
            ApiError::bad_request("the last user message has no text part").with_field("messages"),
        );
    }

    let (subscription, message) = match start_turn(&state, &key, text).await? {
        Ok(started) => started,
        // Deleted under a key remembered here, which is now forgotten: the key names
        // a new session, or is free to create one.
        Err(text) => start_turn(&state, &key, text)
            .await?
            .map_err(|_| ApiError::from(SessionError::NotFound(key.clone())))?,
    };

    let stream = chunks(subscription, message.id);
    let mut response = super::sse(&state, stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "x-vercel-ai-ui-message-stream",
        HeaderValue::from_static("v1"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    Ok(response)
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

/// Where a turn's stream is: which text/reasoning block is open.
struct Translation {
    subscription: Subscription,
    message_id: String,
    reply_id: String,
    started: bool,
    open_text: Option<String>,
    open_reasoning: Option<String>,
    blocks: u32,
    done: bool,
}

impl Translation {
    fn next_block(&mut self, kind: &str) -> String {
        self.blocks += 1;
        format!("{kind}-{}", self.blocks)
    }

    fn close_blocks(&mut self, out: &mut Vec<Value>) {
        if let Some(id) = self.open_text.take() {
            out.push(json!({ "type": "text-end", "id": id }));
        }
        if let Some(id) = self.open_reasoning.take() {
            out.push(json!({ "type": "reasoning-end", "id": id }));
        }
    }

    /// The UI chunks for one session event of this turn.
    fn translate(&mut self, event_type: &str, data: &Value) -> Vec<Value> {
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(json!({ "type": "start", "messageId": self.reply_id }));
        }
        match event_type.trim_start_matches("switchyard.session.") {
            "turn.text_delta" => {
                if self.open_reasoning.is_some() {
                    let id = self.open_reasoning.take();
                    out.push(json!({ "type": "reasoning-end", "id": id }));
                }
                let id = match &self.open_text {
                    Some(id) => id.clone(),
                    None => {
                        let id = self.next_block("text");
                        out.push(json!({ "type": "text-start", "id": id }));
                        self.open_text = Some(id.clone());
                        id
                    }
                };
                out.push(json!({ "type": "text-delta", "id": id, "delta": data["text"] }));
            }
            "turn.reasoning_delta" => {
                if self.open_text.is_some() {
                    let id = self.open_text.take();
                    out.push(json!({ "type": "text-end", "id": id }));
                }
                let id = match &self.open_reasoning {
                    Some(id) => id.clone(),
                    None => {
                        let id = self.next_block("reasoning");
                        out.push(json!({ "type": "reasoning-start", "id": id }));
                        self.open_reasoning = Some(id.clone());
                        id
                    }
                };
                out.push(json!({ "type": "reasoning-delta", "id": id, "delta": data["text"] }));
            }
            "turn.tool_start" => {
                self.close_blocks(&mut out);
                out.push(json!({ "type": "tool-input-start", "toolCallId": data["id"], "toolName": data["name"] }));
                out.push(json!({
                    "type": "tool-input-available",
                    "toolCallId": data["id"],
                    "toolName": data["name"],
                    "input": data["input"],
                }));
            }
            "turn.tool_end" => {
                self.close_blocks(&mut out);
                if data["is_error"] == true {
                    let text = match &data["output"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    out.push(json!({ "type": "tool-output-error", "toolCallId": data["id"], "errorText": text }));
                } else {
                    out.push(json!({ "type": "tool-output-available", "toolCallId": data["id"], "output": data["output"] }));
                }
            }
            "turn.finished" => {
                self.close_blocks(&mut out);
                self.done = true;
                let finish_reason = match (data["status"].as_str(), data["stop_reason"].as_str()) {
                    (Some("done"), Some("max-tokens")) => "length",
                    (Some("done"), _) => "stop",
                    (Some("aborted"), _) => {
                        out.push(json!({ "type": "abort", "reason": "the turn was aborted" }));
                        "other"
                    }
                    _ => {
                        let text = data["error"].as_str().unwrap_or("the turn failed");
                        out.push(json!({ "type": "error", "errorText": text }));
                        "error"
                    }
                };
                out.push(json!({ "type": "finish", "finishReason": finish_reason }));
            }
            "turn.interrupted" => {
                self.close_blocks(&mut out);
                self.done = true;
                out.push(json!({ "type": "error", "errorText": "the turn was interrupted by a restart" }));
                out.push(json!({ "type": "finish", "finishReason": "interrupted" }));
            }
            // turn.started, turn.message_complete, turn.error (streamed as text
            // already or reported at finish), message.queued: nothing to show.
            _ => {}
        }
        out
    }
}

/// The SSE stream of one turn's UI chunks, then `[DONE]`.
fn chunks(
    subscription: Subscription,
    message_id: String,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let state = Translation {
        subscription,
        message_id,
        reply_id: ulid::Ulid::new().to_string(),
        started: false,
        open_text: None,
        open_reasoning: None,
        blocks: 0,
        done: false,
    };
    let pending: std::collections::VecDeque<SseEvent> = Default::default();
    futures::stream::unfold(
        (Some(state), pending),
        |(mut state, mut pending)| async move {
            loop {
                if let Some(event) = pending.pop_front() {
                    return Some((Ok(event), (state, pending)));
                }
                let t = state.as_mut()?;
                if t.done {
                    state = None;
                    pending.push_back(SseEvent::default().data("[DONE]"));
                    continue;
                }
                let event = match t.subscription.next().await {
                    Ok(e) => e,
                    Err(e) => {
                        pending.push_back(SseEvent::default().data(
                            json!({ "type": "error", "errorText": e.to_string() }).to_string(),
                        ));
                        pending.push_back(SseEvent::default().data("[DONE]"));
                        state = None;
                        continue;
                    }
                };
                let data = event.data.value();
                if data["message_id"].as_str() != Some(t.message_id.as_str()) {
                    continue;
                }
                for chunk in t.translate(&event.event_type, &data) {
                    pending.push_back(SseEvent::default().data(chunk.to_string()));
                }
            }
        },
    )
}
