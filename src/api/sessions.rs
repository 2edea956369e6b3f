//! `/v1/sessions`: create, list, inspect and delete sessions; queue messages; abort,
//! steer and reset turns; read history; follow a session's events as SSE.

use std::convert::Infallible;

use super::extract::{Body, Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use futures::{FutureExt, Stream};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::sessions::{NewSession, SessionError, SessionSnapshot, SteerOutcome};
use crate::store::{MessageRecord, MessageStatus};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, delete))
        .routes(routes!(enqueue))
        .routes(routes!(abort))
        .routes(routes!(steer))
        .routes(routes!(reset))
        .routes(routes!(history))
        .routes(routes!(events))
        .routes(routes!(super::chat::chat))
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

#[derive(Deserialize, utoipa::ToSchema)]
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

#[utoipa::path(
    post,
    path = "/sessions",
    tag = "sessions",
    request_body = CreateRequest,
    responses((status = 201, description = "The new session", body = SessionSnapshot)),
    security(("token" = ["sessions:write"]))
)]
async fn create(
    State(state): State<AppState>,
    Body(req): Body<CreateRequest>,
) -> Result<(StatusCode, Json<SessionSnapshot>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(snapshot)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Return sessions whose key sorts after this one (the previous page's `next`).
    after: Option<String>,
    limit: Option<usize>,
}

/// A page of sessions in key order.
#[derive(Serialize, utoipa::ToSchema)]
struct SessionPage {
    sessions: Vec<SessionSnapshot>,
    /// Pass as `after` for the next page; null on the last.
    next: Option<String>,
}

#[utoipa::path(
    get,
    path = "/sessions",
    tag = "sessions",
    params(ListQuery),
    responses((status = 200, description = "A page of sessions", body = SessionPage)),
    security(("token" = ["sessions:read"]))
)]
async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<SessionPage>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let sessions = state.sessions.list(q.after, limit).await?;
    let next = super::next_cursor(&sessions, limit, |s| &s.key);
    Ok(Json(SessionPage { sessions, next }))
}

#[utoipa::path(
    get,
    path = "/sessions/{key}",
    tag = "sessions",
    params(("key" = String, Path, description = "Session key")),
    responses((status = 200, description = "The session with its queue", body = SessionSnapshot)),
    security(("token" = ["sessions:read"]))
)]
async fn show(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<SessionSnapshot>, ApiError> {
    Ok(Json(state.sessions.snapshot(&key).await?))
}

#[utoipa::path(
    delete,
    path = "/sessions/{key}",
    tag = "sessions",
    params(("key" = String, Path, description = "Session key")),
    responses((status = 204, description = "Deleted")),
    security(("token" = ["sessions:write"]))
)]
async fn delete(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.sessions.delete(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TextRequest {
    text: String,
}

/// A message's place in its session's queue.
#[derive(Serialize, utoipa::ToSchema)]
struct Queued {
    id: String,
    /// 1 = next to be processed.
    position: u64,
    status: crate::store::MessageStatus,
}

#[utoipa::path(
    post,
    path = "/sessions/{key}/messages",
    tag = "sessions",
    params(("key" = String, Path, description = "Session key")),
    request_body = TextRequest,
    responses((status = 202, description = "Queued", body = Queued)),
    security(("token" = ["sessions:write"]))
)]
async fn enqueue(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Body(req): Body<TextRequest>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let (message, position) = state.sessions.enqueue(&key, req.text).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            id: message.id,
            position,
            status: message.status,
        }),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Aborted {
    /// False when no turn was running.
    aborted: bool,
}

#[utoipa::path(
    post,
    path = "/sessions/{key}/abort",
    tag = "sessions",
    params(("key" = String, Path, description = "Session key")),
    responses((status = 200, description = "Whether a turn was aborted", body = Aborted)),
    security(("token" = ["sessions:write"]))
)]
async fn abort(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Aborted>, ApiError> {
    let aborted = state.sessions.abort(&key).await?;
    Ok(Json(Aborted { aborted }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Steered {
    outcome: SteerOutcome,
    /// The follow-up message, when the text was queued.
    message_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/sessions/{key}/steer",
    tag = "sessions",
    params(("key" = String, Path, description = "Session key")),
    request_body = TextRequest,
    responses((status = 200, description = "How the text was taken", body = Steered)),
    security(("token" = ["sessions:write"]))
)]
async fn steer(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Body(req): Body<TextRequest>,
) -> Result<Json<Steered>, ApiError> {
    let (outcome, message) = state.sessions.steer(&key, req.text).await?;
    Ok(Json(Steered {
        outcome,
        message_id: message.map(|m| m.id),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Emptied {
    /// Queued messages dropped.
    dropped_messages: u64,
}

#[utoipa::path(
    post,
    path = "/sessions/{key}/reset",
    tag = "sessions",
    params(("key" = String, Path, description = "Session key")),
    responses((status = 200, description = "The session, emptied", body = Emptied)),
    security(("token" = ["sessions:write"]))
)]
async fn reset(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Emptied>, ApiError> {
    let dropped_messages = state.sessions.reset(&key).await?;
    Ok(Json(Emptied { dropped_messages }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct History {
    messages: Vec<Message>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/sessions/{key}/history",
    tag = "sessions",
    params(("key" = String, Path, description = "Session key"), HistoryQuery),
    responses((status = 200, description = "Messages, oldest first", body = History)),
    security(("token" = ["sessions:read"]))
)]
async fn history(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<History>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let messages = state.sessions.history(&key, limit).await?;
    Ok(Json(History {
        messages: messages.into_iter().map(Message::from).collect(),
    }))
}

/// SSE: a `snapshot` message first, then the session's events (resumable by
/// `Last-Event-ID`, which also skips the snapshot's place in the sequence).
#[utoipa::path(
    get,
    path = "/sessions/{key}/events",
    tag = "sessions",
    params(("key" = String, Path, description = "Session key")),
    responses((status = 200, description = "A snapshot, then the session's events", content_type = "text/event-stream", body = String)),
    security(("token" = ["sessions:read"]))
)]
async fn events(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let id = state.sessions.id_of(&key).await?;
    let snapshot = async { Ok(json!(state.sessions.snapshot(&key).await?)) }.boxed();
    super::snapshot_then_events(&state, &format!("session.{id}.>"), &headers, snapshot).await
}

/// One message of a session's history, as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
struct Message {
    id: String,
    /// Conversation order.
    seq: u64,
    /// `user` or `assistant`.
    role: String,
    text: String,
    status: MessageStatus,
    created_at: String,
    finished_at: Option<String>,
    error: Option<String>,
}

impl From<MessageRecord> for Message {
    fn from(m: MessageRecord) -> Self {
        Self {
            id: m.id,
            seq: m.seq,
            role: m.role,
            text: m.text,
            status: m.status,
            created_at: m.created_at,
            finished_at: m.finished_at,
            error: m.error,
        }
    }
}
