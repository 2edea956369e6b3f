//! Runs: `POST /v1/recipes/{name}/runs` starts one; `/v1/runs` lists, shows, follows
//! and cancels them.

use std::convert::Infallible;

use super::extract::{Body, Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use futures::{FutureExt, Stream};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::parse_json;
use super::{ApiError, AppState};
use crate::runs::{RunError, RunView, Trigger};
use crate::store::{RunFilter, RunRecord, RunStatus};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(cancel))
        .routes(routes!(events))
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        let message = e.to_string();
        match e {
            RunError::NotFound(_) => ApiError::not_found(message),
            RunError::Inputs(problems) => {
                ApiError::bad_request(message).with_field(problems[0].field.clone())
            }
            RunError::Ended { .. } => ApiError::new(StatusCode::CONFLICT, "ended", message),
            RunError::SlotTaken { .. } => ApiError::new(StatusCode::CONFLICT, "fired", message),
            RunError::Store(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store", message),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    #[serde(default)]
    inputs: Map<String, Value>,
    /// Ties the run's events to the caller's own work; the run's id otherwise.
    #[serde(default)]
    correlation_id: Option<String>,
}

/// The recipe in force named `name`, or a 404 naming the nearest one.
pub fn recipe(
    state: &AppState,
    name: &str,
) -> Result<std::sync::Arc<crate::recipes::Recipe>, ApiError> {
    state.recipes.get(name).ok_or_else(|| {
        let names: Vec<String> = state
            .recipes
            .recipes()
            .iter()
            .map(|r| r.name.clone())
            .collect();
        let hint = crate::recipes::check::nearest(name, names.iter().map(String::as_str))
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        ApiError::not_found(format!("no recipe named `{name}`{hint}"))
    })
}

#[utoipa::path(
    post,
    path = "/recipes/{name}/runs",
    tag = "runs",
    params(("name" = String, Path, description = "Recipe name")),
    request_body(content = Option<StartRequest>, description = "Inputs and a correlation id; no body for none"),
    responses((status = 201, description = "The run, started", body = RunView)),
    security(("token" = ["runs:write"]))
)]
async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Option<Body>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    let req: StartRequest = parse_json(body.map_or_else(|| json!({}), |b| b.0))?;
    let recipe = recipe(&state, &name)?;
    let trigger = Trigger {
        correlation_id: req.correlation_id,
        ..Trigger::manual()
    };
    let view = state.runs.start(recipe, req.inputs, trigger).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    recipe: Option<String>,
    status: Option<String>,
    /// The previous page's `next`.
    before: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/runs",
    tag = "runs",
    params(ListQuery),
    responses((status = 200, description = "A page of runs, newest first", body = RunPage)),
    security(("token" = ["runs:read"]))
)]
async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<RunPage>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let runs = state
        .runs
        .list(RunFilter {
            recipe: q.recipe,
            status: q
                .status
                .as_deref()
                .map(str::parse::<RunStatus>)
                .transpose()
                .map_err(|e| ApiError::bad_request(e.to_string()).with_field("status"))?,
            before: q.before,
            limit,
        })
        .await?;
    let next = super::next_cursor(&runs, limit, |r| &r.id);
    Ok(Json(RunPage { runs, next }))
}

/// Runs, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct RunPage {
    runs: Vec<RunRecord>,
    /// Pass as `before` for the next page; null on the last.
    next: Option<String>,
}

#[utoipa::path(
    get,
    path = "/runs/{id}",
    tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run with its steps", body = RunView)),
    security(("token" = ["runs:read"]))
)]
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    Ok(Json(state.runs.get(&id).await?))
}

#[utoipa::path(
    post,
    path = "/runs/{id}/cancel",
    tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run, canceled", body = RunView)),
    security(("token" = ["runs:write"]))
)]
async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    Ok(Json(state.runs.cancel(&id).await?))
}

/// SSE: a `snapshot` message (the run and its steps), then the run's events.
#[utoipa::path(
    get,
    path = "/runs/{id}/events",
    tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "A snapshot, then the run's events", content_type = "text/event-stream", body = String)),
    security(("token" = ["runs:read"]))
)]
async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // An unknown run fails the snapshot: a 404 before any event is sent.
    let snapshot = async { Ok(json!(state.runs.get(&id).await?)) }.boxed();
    super::snapshot_then_events(&state, &format!("run.{id}.>"), &headers, snapshot).await
}
