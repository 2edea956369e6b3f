//! `/v1/events`: publish onto the bus, and follow it as Server-Sent Events.
//!
//! `GET /v1/events?topic=PATTERN` streams every matching event after the client's
//! cursor — `Last-Event-ID` (what a reconnecting EventSource sends) or `?after=SEQ` —
//! replayed from the log first, then live. Each SSE message has `id: <seq>` and the
//! event as JSON in `data:`. Without a cursor the stream starts now.

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::parse_json;
use super::{ApiError, AppState};
use crate::bus::{BusError, NewEvent, TopicPattern};

pub fn routes() -> Router<AppState> {
    Router::new().route("/events", get(follow).post(publish))
}

/// `POST /v1/events` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    topic: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default = "api_source")]
    source: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    data: Value,
}

fn api_source() -> String {
    "api".into()
}

async fn publish(
    State(state): State<AppState>,
    body: Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: PublishRequest = parse_json(body.0)?;
    let event = state
        .bus
        .publish(NewEvent {
            topic: req.topic,
            event_type: req.event_type,
            source: req.source,
            subject: req.subject,
            correlation_id: req.correlation_id,
            data: req.data,
        })
        .await
        .map_err(|e| match e {
            BusError::Topic(t) => ApiError::bad_request(t.to_string()).with_field("topic"),
            BusError::EmptyType => ApiError::bad_request("`type` is empty").with_field("type"),
            BusError::TooLarge(_) => ApiError::bad_request(e.to_string()).with_field("data"),
            BusError::Store(s) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store", s.to_string())
            }
        })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "seq": event.seq, "id": event.id, "time": event.time })),
    ))
}

#[derive(Deserialize)]
struct FollowQuery {
    /// Topic pattern; `>` (everything) when absent.
    topic: Option<String>,
    /// Start after this seq (ignored when `Last-Event-ID` is sent).
    after: Option<u64>,
}

async fn follow(
    State(state): State<AppState>,
    Query(q): Query<FollowQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let pattern = TopicPattern::parse(q.topic.as_deref().unwrap_or(">"))
        .map_err(|e| ApiError::bad_request(e.to_string()).with_field("topic"))?;
    let cursor = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "Last-Event-ID must be an event seq (a non-negative integer)",
                    )
                    .with_field("Last-Event-ID")
                })?,
        ),
        None => q.after,
    };
    let subscription = state
        .bus
        .subscribe_from(pattern, cursor)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string()))?;
    let stream = futures::stream::unfold(Some(subscription), |sub| async move {
        let mut sub = sub?;
        match sub.next().await {
            Ok(event) => {
                let sse = SseEvent::default()
                    .id(event.seq.to_string())
                    .data(serde_json::to_string(&event).unwrap_or_default());
                Some((Ok(sse), Some(sub)))
            }
            Err(e) => {
                // Tell the client why the stream ends; it resumes from its last id.
                let sse = SseEvent::default().event("error").data(e.to_string());
                Some((Ok(sse), None))
            }
        }
    });
    Ok(super::sse(&state, stream))
}
