//! Liveness and readiness probes.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up and serving HTTP.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready for work: the database answers and the initial plugin scan is done.
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
