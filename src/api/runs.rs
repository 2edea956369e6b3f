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
use crate::store::{RunFilter, RunRecord, RunStatus, StepRecord, StepStatus};
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
    responses((status = 201, description = "The run, started", body = RunDetail)),
    security(("token" = ["runs:write"]))
)]
async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Option<Body>,
) -> Result<(StatusCode, Json<RunDetail>), ApiError> {
    let req: StartRequest = parse_json(body.map_or_else(|| json!({}), |b| b.0))?;
    let recipe = recipe(&state, &name)?;
    let trigger = Trigger {
        correlation_id: req.correlation_id,
        ..Trigger::manual()
    };
    let view = state.runs.start(recipe, req.inputs, trigger).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
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
    let runs: Vec<Run> = runs.into_iter().map(Run::from).collect();
    let next = super::next_cursor(&runs, limit, |r| &r.id);
    Ok(Json(RunPage { runs, next }))
}

/// Runs, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct RunPage {
    runs: Vec<Run>,
    /// Pass as `before` for the next page; null on the last.
    next: Option<String>,
}

#[utoipa::path(
    get,
    path = "/runs/{id}",
    tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run with its steps", body = RunDetail)),
    security(("token" = ["runs:read"]))
)]
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    Ok(Json(state.runs.get(&id).await?.into()))
}

#[utoipa::path(
    post,
    path = "/runs/{id}/cancel",
    tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run, canceled", body = RunDetail)),
    security(("token" = ["runs:write"]))
)]
async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    Ok(Json(state.runs.cancel(&id).await?.into()))
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
    let snapshot = async { Ok(json!(RunDetail::from(state.runs.get(&id).await?))) }.boxed();
    super::snapshot_then_events(&state, &format!("run.{id}.>"), &headers, snapshot).await
}

/// A run as the API shows it.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Run {
    id: String,
    recipe: String,
    /// The first 12 hex digits of the SHA-256 of the recipe text the run started with.
    version: String,
    file: String,
    inputs: Value,
    status: RunStatus,
    /// What started it: `{"kind": "manual" | "schedule" | "event" | "webhook", …}`.
    trigger: Value,
    correlation_id: String,
    outputs: Option<Value>,
    error: Option<String>,
    created_at: String,
    finished_at: Option<String>,
}

impl From<RunRecord> for Run {
    fn from(r: RunRecord) -> Self {
        Self {
            id: r.id,
            recipe: r.recipe,
            version: r.version,
            file: r.file,
            inputs: r.inputs,
            status: r.status,
            trigger: r.trigger,
            correlation_id: r.correlation_id,
            outputs: r.outputs,
            error: r.error,
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

/// One step of a run as the API shows it.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Step {
    step_id: String,
    status: StepStatus,
    /// 1-based attempt number; 0 before the first.
    attempt: u32,
    /// The key of the step's session.
    session: Option<String>,
    /// The message of the attempt in flight (or the last one).
    message_id: Option<String>,
    output: Option<String>,
    error: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    /// When a `retrying` step tries again.
    retry_at: Option<String>,
}

impl From<StepRecord> for Step {
    fn from(s: StepRecord) -> Self {
        Self {
            step_id: s.step_id,
            status: s.status,
            attempt: s.attempt,
            session: s.session,
            message_id: s.message_id,
            output: s.output,
            error: s.error,
            started_at: s.started_at,
            finished_at: s.finished_at,
            retry_at: s.retry_at,
        }
    }
}

/// A run with its steps (in file order).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct RunDetail {
    #[serde(flatten)]
    run: Run,
    steps: Vec<Step>,
}

impl From<RunView> for RunDetail {
    fn from(view: RunView) -> Self {
        Self {
            run: view.run.into(),
            steps: view.steps.into_iter().map(Step::from).collect(),
        }
    }
}
