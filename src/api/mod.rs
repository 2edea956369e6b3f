//! The HTTP API (axum): `/healthz`, `/readyz` and everything under `/v1`, JSON in and
//! out, errors in one shape: `{"error": {"code", "message", "field"?}}`.

mod chat;
mod error;
mod events;
mod health;
mod plugins;
mod sessions;

pub use error::ApiError;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::bus::Bus;
use crate::plugins::PluginHost;
use crate::sessions::Sessions;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub plugins: Arc<PluginHost>,
    pub store: Store,
    pub bus: Bus,
    pub sessions: Sessions,
    /// Set once the initial plugin scan finished.
    pub ready: Arc<AtomicBool>,
    pub plugins_dir: std::path::PathBuf,
    /// Cancelled when shutdown begins: long-lived responses (SSE) end then, so that
    /// graceful shutdown does not wait on them forever.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// Serve `stream` as Server-Sent Events: with keep-alive comments, and ending when the
/// server shuts down (the client resumes from its last event id).
pub fn sse<S>(
    state: &AppState,
    stream: S,
) -> axum::response::sse::Sse<
    impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>> + use<S>,
>
where
    S: futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>
        + Send
        + 'static,
{
    use futures::StreamExt;
    let shutdown = state.shutdown.clone().cancelled_owned();
    axum::response::sse::Sse::new(stream.take_until(shutdown)).keep_alive(
        axum::response::sse::KeepAlive::new().interval(std::time::Duration::from_secs(15)),
    )
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .nest(
            "/v1",
            plugins::routes()
                .merge(events::routes())
                .merge(sessions::routes()),
        )
        // A 503 from /readyz while starting is expected; errors that matter are logged
        // where they happen, with their cause.
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .with_state(state)
}
