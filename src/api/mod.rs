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
