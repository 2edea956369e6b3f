//! `/v1/sessions`: create, list, inspect and delete sessions; queue messages; abort,
//! steer and reset turns; read history; follow a session's events as SSE.

use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{FutureExt, Stream};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::parse_json;
use super::{ApiError, AppState};
use crate::sessions::{NewSession, SessionError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sessions", post(create).get(list))
        .route("/sessions/{key}", get(show).delete(delete))
        .route("/sessions/{key}/messages", post(enqueue))
        .route("/sessions/{key}/abort", post(abort))
        .route("/sessions/{key}/steer", post(steer))
        .route("/sessions/{key}/reset", post(reset))
        .route("/sessions/{key}/history", get(history))
        .route("/sessions/{key}/events", get(events))
        .route("/sessions/{key}/chat", post(super::chat::chat))
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        let message = e.to_string();
        match e {
            SessionError::NotFound(_) => ApiError::not_found(message),
            SessionError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, "exists", message).with_field("key")
            }
            SessionError::QueueFull { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", message)
            }
            SessionError::Invalid { field, .. } => ApiError::bad_request(message).with_field(field),
            SessionError::Store(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store", message)
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    adapter: Option<String>,
    #[serde(default)]
    config: Option<Value>,
    /// System text put before the conversation of every turn.
    #[serde(default)]
    system: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    body: Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: CreateRequest = parse_json(body.0)?;
    let record = state
        .sessions
        .create(NewSession {
            key: req.key,
            adapter: req.adapter,
            config: req.config,
            system: req.system,
        })
        .await?;
    let snapshot = state.sessions.snapshot(&record.key).await?;
    Ok((StatusCode::CREATED, Json(json!(snapshot))))
}

#[derive(Deserialize)]
struct ListQuery {
    /// Return sessions whose key sorts after this one (the previous page's `next`).
    after: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let sessions = state.sessions.list(q.after, limit).await?;
    let next = (sessions.len() == limit)
        .then(|| sessions.last().map(|s| s.key.clone()))
        .flatten();
    Ok(Json(json!({ "sessions": sessions, "next": next })))
}

async fn show(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(state.sessions.snapshot(&key).await?)))
}

async fn delete(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.sessions.delete(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextRequest {
    text: String,
}

async fn enqueue(
    State(state): State<AppState>,
    Path(key): Path<String>,
    body: Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: TextRequest = parse_json(body.0)?;
    let (message, position) = state.sessions.enqueue(&key, req.text).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": message.id, "position": position, "status": message.status })),
    ))
}

async fn abort(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let aborted = state.sessions.abort(&key).await?;
    Ok(Json(json!({ "aborted": aborted })))
}

async fn steer(
    State(state): State<AppState>,
    Path(key): Path<String>,
    body: Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let req: TextRequest = parse_json(body.0)?;
    let (outcome, message) = state.sessions.steer(&key, req.text).await?;
    Ok(Json(
        json!({ "outcome": outcome, "message_id": message.map(|m| m.id) }),
    ))
}

async fn reset(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let dropped = state.sessions.reset(&key).await?;
    Ok(Json(json!({ "dropped_messages": dropped })))
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

async fn history(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    Ok(Json(
        json!({ "messages": state.sessions.history(&key, limit).await? }),
    ))
}

/// SSE: a `snapshot` message first, then the session's events (resumable by
/// `Last-Event-ID`, which also skips the snapshot's place in the sequence).
async fn events(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let id = state.sessions.id_of(&key).await?;
    let snapshot = async { Ok(json!(state.sessions.snapshot(&key).await?)) }.boxed();
    super::snapshot_then_events(&state, &format!("session.{id}.>"), &headers, snapshot).await
}
