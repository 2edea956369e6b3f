//! `/v1/automations`: the `on:` blocks of the recipes in force, their firings, firing
//! by hand, pause and resume; `POST /v1/hooks/{path}` starts the recipe listening there.

use super::extract::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ApiError, AppState};
use crate::automations::{AutomationError, AutomationView};
use crate::store::{FiringDecision, FiringRecord, RunStatus};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(firings))
        .routes(routes!(fire))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(hook))
}

impl From<AutomationError> for ApiError {
    fn from(e: AutomationError) -> Self {
        match e {
            AutomationError::Run(r) => r.into(),
            AutomationError::NotFound(..) => ApiError::not_found(e.to_string()),
            AutomationError::Store(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string())
            }
        }
    }
}

#[utoipa::path(
    get,
    path = "/automations",
    tag = "automations",
    responses((status = 200, description = "Automations with their next firings", body = Vec<Automation>)),
    security(("token" = ["automations:read"]))
)]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<Automation>>, ApiError> {
    let listed = state.automations.list().await?;
    Ok(Json(listed.into_iter().map(Automation::from).collect()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FiringsQuery {
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/automations/{id}/firings",
    tag = "automations",
    params(("id" = String, Path, description = "Automation id"), FiringsQuery),
    responses((status = 200, description = "Firings, newest first", body = Firings)),
    security(("token" = ["automations:read"]))
)]
async fn firings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<FiringsQuery>,
) -> Result<Json<Firings>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 10_000);
    let firings = state.automations.firings(Some(&id), limit).await?;
    Ok(Json(Firings {
        firings: firings.into_iter().map(Firing::from).collect(),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Firings {
    firings: Vec<Firing>,
}

#[utoipa::path(
    post,
    path = "/automations/{id}/run",
    tag = "automations",
    params(("id" = String, Path, description = "Automation id")),
    responses((status = 202, description = "The firing", body = Firing)),
    security(("token" = ["automations:write"]))
)]
async fn fire(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Firing>), ApiError> {
    let firing = state.automations.fire_now(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(firing.into())))
}

#[utoipa::path(
    post,
    path = "/automations/{id}/pause",
    tag = "automations",
    params(("id" = String, Path, description = "Automation id")),
    responses((status = 200, description = "Paused", body = Paused)),
    security(("token" = ["automations:write"]))
)]
async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Paused>, ApiError> {
    let id = state.automations.set_paused(&id, true).await?;
    Ok(Json(Paused { id, paused: true }))
}

/// An automation's pause state after the change.
#[derive(Serialize, utoipa::ToSchema)]
struct Paused {
    id: String,
    paused: bool,
}

#[utoipa::path(
    post,
    path = "/automations/{id}/resume",
    tag = "automations",
    params(("id" = String, Path, description = "Automation id")),
    responses((status = 200, description = "Resumed", body = Paused)),
    security(("token" = ["automations:write"]))
)]
async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Paused>, ApiError> {
    let id = state.automations.set_paused(&id, false).await?;
    Ok(Json(Paused { id, paused: false }))
}

/// The request body (a JSON object; empty for none) is the run's inputs; an
/// `X-Correlation-Id` header becomes the run's correlation id.
#[utoipa::path(
    post,
    path = "/hooks/{*path}",
    tag = "automations",
    params(("path" = String, Path, description = "The webhook path a recipe listens on")),
    request_body(content = Option<Object>, description = "The run's inputs by name (a JSON object; no body for none)"),
    responses((status = 202, description = "The run it started", body = HookRun)),
    security(("token" = ["hooks:write"]))
)]
async fn hook(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<HookRun>), ApiError> {
    let inputs: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(ApiError::bad_request(
                    "the body must be a JSON object (the run's inputs)",
                ));
            }
            Err(e) => return Err(ApiError::bad_request(format!("the body is not JSON: {e}"))),
        }
    };
    let correlation = headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let run = state
        .automations
        .webhook(&path, inputs, correlation)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(HookRun {
            run_id: run.id,
            status: run.status,
            correlation_id: run.correlation_id,
        }),
    ))
}

/// The run a webhook started.
#[derive(Serialize, utoipa::ToSchema)]
struct HookRun {
    run_id: String,
    status: crate::store::RunStatus,
    correlation_id: String,
}

/// One firing of an automation, as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
struct Firing {
    automation: String,
    /// What fires at most once: a scheduled time, an event id, a request id.
    slot: String,
    scheduled_at: Option<String>,
    fired_at: String,
    decision: FiringDecision,
    run_id: Option<String>,
    detail: Option<String>,
    /// The run's status now.
    run_status: Option<RunStatus>,
}

impl From<FiringRecord> for Firing {
    fn from(f: FiringRecord) -> Self {
        Self {
            automation: f.automation,
            slot: f.slot,
            scheduled_at: f.scheduled_at,
            fired_at: f.fired_at,
            decision: f.decision,
            run_id: f.run_id,
            detail: f.detail,
            run_status: f.run_status,
        }
    }
}

/// An automation as the API lists it.
#[derive(Serialize, utoipa::ToSchema)]
struct Automation {
    id: String,
    recipe: String,
    /// `schedule`, `event` or `webhook`.
    kind: &'static str,
    /// The cron expression and zone, the topic pattern, or the webhook path.
    detail: Value,
    paused: bool,
    /// The next firings (schedules).
    next: Vec<String>,
    /// Runs it started that are still going.
    running: Vec<String>,
    last_firing: Option<Firing>,
}

impl From<AutomationView> for Automation {
    fn from(a: AutomationView) -> Self {
        Self {
            id: a.id,
            recipe: a.recipe,
            kind: a.kind,
            detail: a.detail,
            paused: a.paused,
            next: a.next,
            running: a.running,
            last_firing: a.last_firing.map(Firing::from),
        }
    }
}
