//! `/v1/queues`: enqueue, claim (long-poll), extend, ack, nack, cancel, list, and the
//! dead-letter list. Durations are text such as `30s`, `5m`, `250ms`.

use super::extract::{Body, Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::duration;
use super::{ApiError, AppState};
use crate::queues::{Claim, NewItem, QueueError};
use crate::store::{ItemStatus, QueueItem};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(summaries))
        .routes(routes!(enqueue, list))
        .routes(routes!(show))
        .routes(routes!(claim))
        .routes(routes!(extend))
        .routes(routes!(ack))
        .routes(routes!(nack))
        .routes(routes!(cancel))
        .routes(routes!(dead))
        .routes(routes!(retry_dead))
        .routes(routes!(drop_dead))
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        let message = e.to_string();
        match e {
            QueueError::NotFound { .. } => ApiError::not_found(message),
            QueueError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            QueueError::Invalid { field, .. } => ApiError::bad_request(message).with_field(field),
            QueueError::Store(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store", message)
            }
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EnqueueRequest {
    payload: Value,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    delay: Option<String>,
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    max_attempts: Option<u32>,
}

impl EnqueueRequest {
    pub(super) fn into_new(self) -> Result<NewItem, ApiError> {
        Ok(NewItem {
            payload: self.payload,
            priority: self.priority,
            idempotency_key: self.idempotency_key,
            delay: duration("delay", self.delay.as_deref())?.unwrap_or_default(),
            ttl: duration("ttl", self.ttl.as_deref())?,
            max_attempts: self.max_attempts,
        })
    }
}

/// 201 with the new item, or 200 with the first item of this idempotency key.
#[utoipa::path(
    post,
    path = "/queues/{queue}/items",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    request_body = EnqueueRequest,
    responses((status = 201, description = "Enqueued", body = Item), (status = 200, description = "The first item with this idempotency key", body = Item)),
    security(("token" = ["queues:write"]))
)]
async fn enqueue(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    Body(req): Body<EnqueueRequest>,
) -> Result<(StatusCode, Json<Item>), ApiError> {
    let (item, created) = state.queues.enqueue(&queue, req.into_new()?).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(item.into())))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only items with this status (`pending`, `claimed`, `running`, `succeeded`,
    /// `failed`, `timed_out`, `canceled`, `dead`).
    status: Option<String>,
    /// The `next` of the previous page.
    before: Option<String>,
    /// Items per page, 1-1000 (default 50).
    limit: Option<usize>,
}

/// A page of the dead-letter list: its status is given, so none is taken.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeadQuery {
    /// The `next` of the previous page.
    before: Option<String>,
    /// Items per page, 1-1000 (default 50).
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/queues/{queue}/items",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name"), ListQuery),
    responses((status = 200, description = "A page of items, newest first", body = ItemPage)),
    security(("token" = ["queues:read"]))
)]
async fn list(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ItemPage>, ApiError> {
    page(&state, &queue, q.status, q.before, q.limit).await
}

/// Items, newest first.
#[derive(Serialize, utoipa::ToSchema)]
struct ItemPage {
    items: Vec<Item>,
    /// Pass as `before` for the next page; null on the last.
    next: Option<String>,
}

async fn page(
    state: &AppState,
    queue: &str,
    status: Option<String>,
    before: Option<String>,
    limit: Option<usize>,
) -> Result<Json<ItemPage>, ApiError> {
    let limit = limit.unwrap_or(50).clamp(1, 1000);
    let items: Vec<Item> = state
        .queues
        .list(queue, status, before, limit)
        .await?
        .into_iter()
        .map(Item::from)
        .collect();
    let next = super::next_cursor(&items, limit, |i| &i.id);
    Ok(Json(ItemPage { items, next }))
}

#[utoipa::path(
    get,
    path = "/queues/{queue}/dead",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name"), DeadQuery),
    responses((status = 200, description = "Dead items, newest first", body = ItemPage)),
    security(("token" = ["queues:read"]))
)]
async fn dead(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    Query(q): Query<DeadQuery>,
) -> Result<Json<ItemPage>, ApiError> {
    page(&state, &queue, Some("dead".into()), q.before, q.limit).await
}

#[utoipa::path(
    get,
    path = "/queues/{queue}/items/{id}",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name"), ("id" = String, Path, description = "Item id")),
    responses((status = 200, description = "The item", body = Item)),
    security(("token" = ["queues:read"]))
)]
async fn show(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> Result<Json<Item>, ApiError> {
    Ok(Json(state.queues.get(&queue, &id).await?.into()))
}

#[utoipa::path(
    get,
    path = "/queues",
    tag = "queues",
    responses((status = 200, description = "Every queue with its counts by status", body = QueueList)),
    security(("token" = ["queues:read"]))
)]
async fn summaries(State(state): State<AppState>) -> Result<Json<QueueList>, ApiError> {
    let queues = state
        .queues
        .summaries()
        .await?
        .into_iter()
        .map(|(name, counts)| QueueSummary { name, counts })
        .collect();
    Ok(Json(QueueList { queues }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct QueueList {
    queues: Vec<QueueSummary>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct QueueSummary {
    name: String,
    /// Items by status; a status with none is absent.
    counts: BTreeMap<crate::store::ItemStatus, u64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ClaimRequest {
    worker: String,
    #[serde(default)]
    lease: Option<String>,
    /// Long-poll: wait this long for an item when none is ready.
    #[serde(default)]
    wait: Option<String>,
    #[serde(default = "one")]
    max: usize,
}

fn one() -> usize {
    1
}

/// `{"items": [...]}`, each with its `lease_token`; empty when nothing came in `wait`.
#[utoipa::path(
    post,
    path = "/queues/{queue}/claim",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name")),
    request_body = ClaimRequest,
    responses((status = 200, description = "Claimed items with their lease tokens (none if nothing came in time)", body = Claimed)),
    security(("token" = ["queues:work"]))
)]
async fn claim(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    Body(req): Body<ClaimRequest>,
) -> Result<Json<Claimed>, ApiError> {
    Ok(Json(claim_items(&state, &queue, req).await?))
}

/// Claim as `req` asks; shutdown ends a long poll with nothing claimed.
pub(super) async fn claim_items(
    state: &AppState,
    queue: &str,
    req: ClaimRequest,
) -> Result<Claimed, ApiError> {
    let claim = Claim {
        worker: req.worker,
        lease: duration("lease", req.lease.as_deref())?,
        wait: duration("wait", req.wait.as_deref())?.unwrap_or_default(),
        max: req.max,
    };
    let items = tokio::select! {
        items = state.queues.claim(queue, claim) => items?,
        () = state.shutdown.cancelled() => Vec::new(),
    };
    Ok(Claimed {
        items: items.into_iter().map(Item::from).collect(),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Claimed {
    items: Vec<Item>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LeaseRequest {
    lease_token: String,
    #[serde(default)]
    lease: Option<String>,
}

#[utoipa::path(
    post,
    path = "/queues/{queue}/items/{id}/extend",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name"), ("id" = String, Path, description = "Item id")),
    request_body = LeaseRequest,
    responses((status = 200, description = "The item with its new lease", body = Item)),
    security(("token" = ["queues:work"]))
)]
async fn extend(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
    Body(req): Body<LeaseRequest>,
) -> Result<Json<Item>, ApiError> {
    Ok(Json(extend_lease(&state, &queue, &id, req).await?))
}

pub(super) async fn extend_lease(
    state: &AppState,
    queue: &str,
    id: &str,
    req: LeaseRequest,
) -> Result<Item, ApiError> {
    let lease = duration("lease", req.lease.as_deref())?;
    Ok(state
        .queues
        .extend(queue, id, &req.lease_token, lease)
        .await?
        .into())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AckRequest {
    lease_token: String,
    #[serde(default)]
    result: Value,
}

#[utoipa::path(
    post,
    path = "/queues/{queue}/items/{id}/ack",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name"), ("id" = String, Path, description = "Item id")),
    request_body = AckRequest,
    responses((status = 200, description = "Succeeded", body = Item)),
    security(("token" = ["queues:work"]))
)]
async fn ack(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
    Body(req): Body<AckRequest>,
) -> Result<Json<Item>, ApiError> {
    Ok(Json(ack_item(&state, &queue, &id, req).await?))
}

pub(super) async fn ack_item(
    state: &AppState,
    queue: &str,
    id: &str,
    req: AckRequest,
) -> Result<Item, ApiError> {
    Ok(state
        .queues
        .ack(queue, id, &req.lease_token, req.result)
        .await?
        .into())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NackRequest {
    lease_token: String,
    reason: String,
    /// `false`: straight to the dead-letter list.
    #[serde(default = "yes")]
    retry: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(
    post,
    path = "/queues/{queue}/items/{id}/nack",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name"), ("id" = String, Path, description = "Item id")),
    request_body = NackRequest,
    responses((status = 200, description = "Failed (to retry) or dead", body = Item)),
    security(("token" = ["queues:work"]))
)]
async fn nack(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
    Body(req): Body<NackRequest>,
) -> Result<Json<Item>, ApiError> {
    Ok(Json(nack_item(&state, &queue, &id, req).await?))
}

pub(super) async fn nack_item(
    state: &AppState,
    queue: &str,
    id: &str,
    req: NackRequest,
) -> Result<Item, ApiError> {
    Ok(state
        .queues
        .nack(queue, id, &req.lease_token, req.reason, req.retry)
        .await?
        .into())
}

#[utoipa::path(
    post,
    path = "/queues/{queue}/items/{id}/cancel",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name"), ("id" = String, Path, description = "Item id")),
    responses((status = 200, description = "Canceled", body = Item)),
    security(("token" = ["queues:write"]))
)]
async fn cancel(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> Result<Json<Item>, ApiError> {
    Ok(Json(state.queues.cancel(&queue, &id).await?.into()))
}

#[utoipa::path(
    post,
    path = "/queues/{queue}/dead/{id}/retry",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name"), ("id" = String, Path, description = "Item id")),
    responses((status = 200, description = "Pending again", body = Item)),
    security(("token" = ["queues:write"]))
)]
async fn retry_dead(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> Result<Json<Item>, ApiError> {
    Ok(Json(state.queues.retry_dead(&queue, &id).await?.into()))
}

#[utoipa::path(
    delete,
    path = "/queues/{queue}/dead/{id}",
    tag = "queues",
    params(("queue" = String, Path, description = "Queue name"), ("id" = String, Path, description = "Item id")),
    responses((status = 204, description = "Dropped")),
    security(("token" = ["queues:write"]))
)]
async fn drop_dead(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.queues.drop_dead(&queue, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A queue item as the API shows it (and the worker socket replies with it).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Item {
    pub(super) id: String,
    queue: String,
    payload: Value,
    /// Higher first.
    priority: i64,
    idempotency_key: Option<String>,
    status: ItemStatus,
    /// Claims so far.
    attempts: u32,
    max_attempts: u32,
    /// Not claimed before (delay, backoff).
    available_at: String,
    /// Dead if not done by then (TTL).
    expires_at: Option<String>,
    /// Proves the claim to `extend`, `ack` and `nack`: in the answers to the worker
    /// while it holds the lease, never in a listing.
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_token: Option<String>,
    lease_expires_at: Option<String>,
    worker: Option<String>,
    result: Option<Value>,
    error: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<QueueItem> for Item {
    fn from(i: QueueItem) -> Self {
        Self {
            id: i.id,
            queue: i.queue,
            payload: i.payload,
            priority: i.priority,
            idempotency_key: i.idempotency_key,
            status: i.status,
            attempts: i.attempts,
            max_attempts: i.max_attempts,
            available_at: i.available_at,
            expires_at: i.expires_at,
            lease_token: i.lease_token,
            lease_expires_at: i.lease_expires_at,
            worker: i.worker,
            result: i.result,
            error: i.error,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}
