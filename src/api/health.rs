//! Liveness and readiness probes.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

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
    responses((status = 200, description = "The process is up", body = Health)),
    security(())
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// `ok`.
    status: &'static str,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Readiness {
    /// `ready` or `starting`.
    status: &'static str,
    /// The initial plugin scan is done.
    plugins_loaded: bool,
    /// The database answers.
    database: bool,
}

/// Ready for work: the database answers and the initial plugin scan is done.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses((status = 200, description = "Ready for work", body = Readiness), (status = 503, description = "Still starting", body = Readiness)),
    security(("token" = ["metrics:read"]))
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
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
        Json(Readiness {
            status: if ready { "ready" } else { "starting" },
            plugins_loaded,
            database,
        }),
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
    record_levels(&state).await;
    let text = crate::metrics::render(handle);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response()
}

/// The levels the database and the parts already know, read at scrape time instead of
/// kept in step by hand.
async fn record_levels(state: &AppState) {
    metrics::gauge!("switchyard_sessions_active").set(state.sessions.in_memory().await as f64);
    if let Ok(counts) = state.store.message_counts().await {
        metrics::gauge!("switchyard_session_messages", "status" => "queued")
            .set(counts.queued as f64);
        metrics::gauge!("switchyard_session_messages", "status" => "processing")
            .set(counts.processing as f64);
    }
    if let Ok(queues) = state.queues.summaries().await {
        for (queue, counts) in queues {
            // Every status, so one that emptied reads 0 rather than its last count.
            for status in crate::store::ItemStatus::ALL {
                let n = counts.get(status).copied().unwrap_or(0);
                metrics::gauge!("switchyard_queue_items", "queue" => queue.clone(), "status" => status.as_str())
                    .set(n as f64);
            }
        }
    }
    let (writes, commits) = state.store.commit_stats();
    metrics::counter!("switchyard_store_writes_total").absolute(writes);
    metrics::counter!("switchyard_store_commits_total").absolute(commits);
}
