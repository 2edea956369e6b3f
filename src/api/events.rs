//! `/v1/events`: publish onto the bus (one event or an atomic batch), and follow it as
//! Server-Sent Events.
//!
//! `GET /v1/events?topic=PATTERN` streams every matching event after the client's
//! cursor — `Last-Event-ID` (what a reconnecting EventSource sends) or `?after=SEQ` —
//! replayed from the log first, then live. Each SSE message has `id: <seq>` and the
//! event as JSON in `data:`. Without a cursor the stream starts now.

use std::convert::Infallible;

use super::extract::{Body, Query};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::parse_json;
use super::{ApiError, AppState};
use crate::bus::{BusError, TopicPattern};
use crate::event::{EventData, NewEvent};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(publish, follow))
}

/// `POST /v1/events` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PublishRequest {
    topic: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default = "api_source")]
    source: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    /// Any JSON value (default `null`).
    #[serde(default)]
    #[schema(value_type = Value)]
    data: EventData,
}

fn api_source() -> String {
    "api".into()
}

/// Most events in one batch publish.
const MAX_BATCH: usize = 1000;

/// One event (`{...}` → `{"seq", "id", "time"}`) or a batch (`[{...}, ...]` →
/// `{"events": [...]}`), stored atomically with consecutive seqs.
#[utoipa::path(
    post,
    path = "/events",
    tag = "bus",
    request_body = PublishRequest,
    responses((status = 201, description = "The stored event, or events", body = Published)),
    security(("token" = ["bus:write"]))
)]
async fn publish(
    State(state): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    if let Value::Array(items) = body.0 {
        if items.len() > MAX_BATCH {
            return Err(ApiError::bad_request(format!(
                "a batch holds at most {MAX_BATCH} events; this one has {}",
                items.len()
            )));
        }
        let mut events = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let req: PublishRequest = parse_json(item).map_err(|mut e| {
                e.field = Some(format!(
                    "[{i}]{}",
                    e.field.map(|f| format!(".{f}")).unwrap_or_default()
                ));
                e.message = format!("event [{i}]: {}", e.message);
                e
            })?;
            events.push(req.into_event());
        }
        let stored = state
            .bus
            .publish_batch(events)
            .await
            .map_err(|(i, e)| refused(e, Some(i)))?;
        let events = stored.iter().map(|e| Receipt::of(e)).collect();
        return Ok((StatusCode::CREATED, Json(Published::Batch { events })));
    }
    let req: PublishRequest = parse_json(body.0)?;
    let event = state
        .bus
        .publish(req.into_event())
        .await
        .map_err(|e| refused(e, None))?;
    Ok((
        StatusCode::CREATED,
        Json(Published::One(Receipt::of(&event))),
    ))
}

/// Where a published event was stored.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Receipt {
    seq: u64,
    id: String,
    time: String,
}

impl Receipt {
    pub(super) fn of(e: &crate::event::Event) -> Self {
        Self {
            seq: e.seq,
            id: e.id.clone(),
            time: e.time.clone(),
        }
    }
}

/// One receipt for one event; `{"events": [...]}` for a batch.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
enum Published {
    One(Receipt),
    Batch { events: Vec<Receipt> },
}

impl PublishRequest {
    pub(super) fn into_event(self) -> NewEvent {
        NewEvent {
            topic: self.topic,
            event_type: self.event_type,
            source: self.source,
            subject: self.subject,
            correlation_id: self.correlation_id,
            data: self.data,
        }
    }
}

/// Why the bus refused an event, naming the field (and its place in a batch).
pub(super) fn refused(e: BusError, index: Option<usize>) -> ApiError {
    let at = |field: &str| match index {
        Some(i) => format!("[{i}].{field}"),
        None => field.to_owned(),
    };
    match e {
        BusError::Topic(t) => ApiError::bad_request(t.to_string()).with_field(at("topic")),
        BusError::EmptyType => ApiError::bad_request("`type` is empty").with_field(at("type")),
        BusError::TooLarge(_) => ApiError::bad_request(e.to_string()).with_field(at("data")),
        BusError::Store(s) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store", s.to_string())
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FollowQuery {
    /// Topic pattern; `>` (everything) when absent.
    topic: Option<String>,
    /// Start after this seq (ignored when `Last-Event-ID` is sent).
    after: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/events",
    tag = "bus",
    params(FollowQuery),
    responses((status = 200, description = "Events as they commit (resumable with Last-Event-ID)", content_type = "text/event-stream", body = String)),
    security(("token" = ["bus:read"]))
)]
async fn follow(
    State(state): State<AppState>,
    Query(q): Query<FollowQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let pattern = TopicPattern::parse(q.topic.as_deref().unwrap_or(">"))
        .map_err(|e| ApiError::bad_request(e.to_string()).with_field("topic"))?;
    let cursor = super::resume_cursor(&headers, q.after)?;
    let subscription = state.bus.subscribe_from(pattern, cursor);
    let stream = super::events_stream(subscription, false);
    Ok(super::sse(&state, stream))
}
