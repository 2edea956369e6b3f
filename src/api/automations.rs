//! `/v1/automations`: the `on:` blocks of the recipes in force, their firings, firing
//! by hand, pause and resume; `POST /v1/hooks/{path}` starts the recipe listening there.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ApiError, AppState};
use crate::automations::{AutomationError, AutomationView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/automations", get(list))
        .route("/automations/{id}/firings", get(firings))
        .route("/automations/{id}/run", post(fire))
        .route("/automations/{id}/pause", post(pause))
        .route("/automations/{id}/resume", post(resume))
        .route("/hooks/{*path}", post(hook))
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

async fn list(State(state): State<AppState>) -> Result<Json<Vec<AutomationView>>, ApiError> {
    Ok(Json(state.automations.list().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FiringsQuery {
    limit: Option<usize>,
}

async fn firings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<FiringsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 10_000);
    let firings = state.automations.firings(Some(&id), limit).await?;
    Ok(Json(json!({ "firings": firings })))
}

async fn fire(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let firing = state.automations.fire_now(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!(firing))))
}

async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = state.automations.set_paused(&id, true).await?;
    Ok(Json(json!({ "id": id, "paused": true })))
}

async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = state.automations.set_paused(&id, false).await?;
    Ok(Json(json!({ "id": id, "paused": false })))
}

/// The request body (a JSON object; empty for none) is the run's inputs; an
/// `X-Correlation-Id` header becomes the run's correlation id.
async fn hook(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        Json(
            json!({ "run_id": run.id, "status": run.status, "correlation_id": run.correlation_id }),
        ),
    ))
}
