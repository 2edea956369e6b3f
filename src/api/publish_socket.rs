//! `GET /v1/events/publish`: publishing over a WebSocket, for producers that publish
//! a lot. Each message is one event (the body of `POST /v1/events`) and gets one
//! reply, in the order sent: its receipt `{"seq", "id", "time"}` once the event is
//! committed, or `{"error": {"code", "message", "field"?}}`. A refused event is
//! refused alone; the socket stays open.
//!
//! Why a socket beside `POST /v1/events`: a request per event costs a whole HTTP
//! exchange per event, and its client waits a round trip before it can send the next.
//! On a socket a producer keeps many events in flight, like a NATS client publishing
//! to JetStream, and the writer commits them in groups. A client closes after its
//! last reply: WebSocket allows no reply after the client's close.

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use axum::response::Response;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{FuturesOrdered, SplitSink};
use futures::{SinkExt, StreamExt};

use super::error::parse_json_text;
use super::events::{PublishRequest, Receipt, refused};
use super::extract::Upgrade;
use super::{ApiError, AppState};
use crate::auth::Principal;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Events of one socket awaiting their commit; past this the socket is not read
/// until replies go out, so a fast producer is held back by TCP, not by memory.
const IN_FLIGHT: usize = 1024;

/// Largest message: an event's data may be 1 MiB, plus its attributes.
const MAX_MESSAGE: usize = crate::bus::MAX_EVENT_DATA_BYTES + 64 * 1024;

/// The socket's route (mounted beside its HTTP family by `api::routes`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(publish_socket))
}

#[utoipa::path(
    get,
    path = "/events/publish",
    tag = "bus",
    responses((status = 101, description = "A WebSocket: send one event per message (the body of `POST /v1/events`); each gets its receipt or error, in order")),
    security(("token" = ["bus:write"]))
)]
pub(super) async fn publish_socket(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Upgrade(ws): Upgrade,
) -> Response {
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(state, principal, socket))
}

async fn serve(state: AppState, principal: Principal, socket: WebSocket) {
    let (mut out, mut incoming) = socket.split();
    let mut replies = FuturesOrdered::new();
    let mut reading = true;
    loop {
        tokio::select! {
            Some(reply) = replies.next(), if !replies.is_empty() => {
                if send_ready(&mut out, reply, &mut replies).await.is_err() {
                    return; // the client is gone
                }
            }
            message = incoming.next(), if reading && replies.len() < IN_FLIGHT => match message {
                // The token is looked up again for each event: revoked or expired, it
                // stops the socket at once.
                Some(Ok(Message::Text(_) | Message::Binary(_)))
                    if let Err(e) = state.tokens.recheck(&principal) =>
                {
                    replies.push_back(futures::future::ready(error(super::auth::refusal(e))).boxed());
                    reading = false;
                }
                Some(Ok(Message::Text(text))) => replies.push_back(publish(&state, text.as_bytes())),
                Some(Ok(Message::Binary(bytes))) => replies.push_back(publish(&state, &bytes)),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => reading = false,
            },
            () = state.shutdown.cancelled(), if reading => reading = false,
        }
        if !reading && replies.is_empty() {
            break;
        }
    }
    let _ = out
        .send(Message::Close(Some(CloseFrame {
            code: close_code::AWAY,
            reason: "".into(),
        })))
        .await;
}

/// Send `reply` and every later one already done, then flush once: one write for
/// all the receipts of a group commit.
async fn send_ready(
    out: &mut SplitSink<WebSocket, Message>,
    reply: Message,
    replies: &mut FuturesOrdered<BoxFuture<'static, Message>>,
) -> Result<(), axum::Error> {
    out.feed(reply).await?;
    while let Some(Some(next)) = replies.next().now_or_never() {
        out.feed(next).await?;
    }
    out.flush().await
}

/// Queue one event now, so that events are stored in the order they came; the
/// future is its reply.
fn publish(state: &AppState, message: &[u8]) -> BoxFuture<'static, Message> {
    let submitted = parse(message).and_then(|req| {
        state
            .bus
            .submit(req.into_event())
            .map_err(|e| refused(e, None))
    });
    match submitted {
        Err(e) => futures::future::ready(error(e)).boxed(),
        Ok(stored) => async move {
            match stored.await {
                Ok(event) => json(&Receipt::of(&event)),
                Err(e) => error(refused(e, None)),
            }
        }
        .boxed(),
    }
}

/// Read the event straight from the message: its `data` is kept as the text it came
/// in, never built into a JSON value.
fn parse(message: &[u8]) -> Result<PublishRequest, ApiError> {
    if message.trim_ascii_start().starts_with(b"[") {
        return Err(ApiError::bad_request(
            "one event per message; a batch goes to POST /v1/events",
        ));
    }
    parse_json_text("the message", None, message)
}

fn error(e: ApiError) -> Message {
    json(&e.into_body())
}

/// A reply as a text message, written straight from its type (see `queue_socket`).
pub(super) fn json(value: &impl serde::Serialize) -> Message {
    Message::Text(
        serde_json::to_string(value)
            .expect("replies serialize")
            .into(),
    )
}
