//! Liveness and readiness probes.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process is up", body = Value)),
    security(())
)]
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready for work: the database answers and the initial plugin scan is done.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses((status = 200, description = "Ready for work", body = Value), (status = 503, description = "Still starting", body = Value)),
    security(("token" = ["metrics:read"]))
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let plugins_loaded = state.ready.load(Ordering::Acquire);
    let database = state.bus.events_after(u64::MAX, 1).await.is_ok();
    let ready = plugins_loaded && database;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "starting" },
            "plugins_loaded": plugins_loaded,
            "database": database,
        })),
    )
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain; version=0.0.4", body = String)),
    security(("token" = ["metrics:read"]))
)]
async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(handle) = &state.metrics else {
        return super::ApiError::not_found("metrics are off in this process").into_response();
    };
    let text = crate::metrics::render(handle, &state).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response()
}
