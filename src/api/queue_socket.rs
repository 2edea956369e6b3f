//! `GET /v1/queues/{queue}/socket`: a queue's worker on one WebSocket. Each message
//! is one command, the body of its HTTP route plus `op` (and `id` for an item):
//!
//! - `{"op": "push", "payload": …}` → `{"item": {…}, "created": true}` (`false`: the
//!   first item of this idempotency key);
//! - `{"op": "claim", "worker": "w1", "lease": "30s", "wait": "5s"}` → `{"items": […]}`;
//! - `{"op": "extend" | "ack" | "nack", "id": "…", "lease_token": "…", …}` →
//!   `{"item": {…}}`;
//!
//! or `{"error": {"code", "message", "field"?}}`, after which the socket stays open.
//! Commands run one at a time in the order sent, so a claim sent after a push can
//! take that item, and a long-polling claim holds the commands behind it.
//!
//! Why a socket beside the routes: a worker's cycle is three requests, and an HTTP
//! exchange (parsing, routing, authentication, a response) costs more than the queue
//! operation. On the socket the token is checked when it opens and looked up again
//! before each command, so a revoked or expired token stops it at once (the socket is
//! then closed). `push` needs `queues:write` besides the route's `queues:work`.

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value};

use super::error::{parse_json, parse_json_text};
use super::extract::{Path, Upgrade};
use super::publish_socket::json;
use super::queues::{EnqueueRequest, Item, ack_item, claim_items, extend_lease, nack_item};
use super::{ApiError, AppState};
use crate::auth::Principal;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest command: an item's payload and result are bounded like an HTTP body.
const MAX_MESSAGE: usize = 2 * 1024 * 1024;

/// The socket's route (mounted beside its HTTP family by `api::routes`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(queue_socket))
}

#[utoipa::path(
    get,
    path = "/queues/{queue}/socket",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    responses((status = 101, description = "A WebSocket: send one command per message (`op`: push, claim, extend, ack, nack, with the body of its route); each gets its reply or error, in order")),
    security(("token" = ["queues:work"]))
)]
pub(super) async fn queue_socket(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    Extension(principal): Extension<Principal>,
    Upgrade(ws): Upgrade,
) -> Response {
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(state, queue, principal, socket))
}

async fn serve(state: AppState, queue: String, principal: Principal, mut socket: WebSocket) {
    let close = loop {
        let message = tokio::select! {
            message = socket.recv() => message,
            () = state.shutdown.cancelled() => break close_code::AWAY,
        };
        let command = match message {
            Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
            Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return,
        };
        if let Err(e) = state.tokens.recheck(&principal) {
            let _ = socket.send(reply(Err(super::auth::refusal(e)))).await;
            break close_code::POLICY;
        }
        let outcome = run(&state, &queue, &principal, &command).await;
        if socket.send(reply(outcome)).await.is_err() {
            return; // the client is gone
        }
    };
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close,
            reason: "".into(),
        })))
        .await;
}

/// Run one command; its reply.
async fn run(
    state: &AppState,
    queue: &str,
    principal: &Principal,
    command: &[u8],
) -> Result<Message, ApiError> {
    let value: Value = parse_json_text("the message", None, command)?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::bad_request(
            "a command is a JSON object with an `op`",
        ));
    };
    let op = take_text(&mut fields, "op")?;
    Ok(match op.as_str() {
        "push" => {
            super::auth::require(principal, &["queues:write".into()])
                .map_err(|e| super::auth::refusal(e).with_field("op"))?;
            let new = rest::<EnqueueRequest>(fields)?.into_new()?;
            let (item, created) = state.queues.enqueue(queue, new).await?;
            json(&Pushed {
                item: &item.into(),
                created,
            })
        }
        "claim" => json(&claim_items(state, queue, rest(fields)?).await?),
        "extend" | "ack" | "nack" => {
            let id = take_text(&mut fields, "id")?;
            let item = match op.as_str() {
                "extend" => extend_lease(state, queue, &id, rest(fields)?).await?,
                "ack" => ack_item(state, queue, &id, rest(fields)?).await?,
                _ => nack_item(state, queue, &id, rest(fields)?).await?,
            };
            json(&Changed { item: &item })
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "`op`: unknown command `{other}`; one of push, claim, extend, ack, nack"
            ))
            .with_field("op"));
        }
    })
}

/// The rest of a command (without `op` and `id`): the body of its route.
fn rest<T: serde::de::DeserializeOwned>(fields: Map<String, Value>) -> Result<T, ApiError> {
    parse_json(Value::Object(fields))
}

/// Remove the text field `name` from a command.
fn take_text(fields: &mut Map<String, Value>, name: &str) -> Result<String, ApiError> {
    match fields.remove(name) {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(ApiError::bad_request(format!("`{name}` must be text")).with_field(name)),
        None => Err(ApiError::bad_request(format!("missing field `{name}`")).with_field(name)),
    }
}

// Replies are written straight from their types: an item built into a JSON value first
// cost a map entry per field (the replies were 4% of the server's CPU under 64 busy
// workers).

/// The reply to `push`.
#[derive(Serialize)]
struct Pushed<'a> {
    item: &'a Item,
    created: bool,
}

/// The reply to `extend`, `ack` and `nack`.
#[derive(Serialize)]
struct Changed<'a> {
    item: &'a Item,
}

fn reply(outcome: Result<Message, ApiError>) -> Message {
    outcome.unwrap_or_else(|e| json(&e.into_body()))
}
