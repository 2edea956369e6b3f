//! The HTTP API (axum): `/healthz`, `/readyz` and everything under `/v1`, JSON in and
//! out, errors in one shape: `{"error": {"code", "message", "field"?}}`.

mod auth;
mod automations;
mod chat;
mod error;
mod events;
mod extract;
mod health;
pub mod openapi;
mod plugins;
mod publish_socket;
mod queue_socket;
mod queues;
mod recipes;
mod runs;
mod sessions;
mod tokens;

pub use error::ApiError;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use utoipa_axum::router::OpenApiRouter;

use crate::bus::Bus;
use crate::plugins::PluginHost;
use crate::sessions::Sessions;
use crate::store::Store;

/// What every handler can reach, behind one `Arc`: axum clones the state for every
/// request, and a clone is then one count instead of a dozen (and a path).
#[derive(Clone)]
pub struct AppState(Arc<App>);

impl AppState {
    pub fn new(app: App) -> Self {
        Self(Arc::new(app))
    }
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

/// The parts of the runtime the API serves.
pub struct App {
    pub plugins: Arc<PluginHost>,
    pub store: Store,
    pub bus: Bus,
    pub sessions: Sessions,
    pub recipes: Arc<crate::recipes::RecipeRegistry>,
    pub runs: crate::runs::Runs,
    pub automations: crate::automations::Automations,
    pub queues: crate::queues::Queues,
    pub tokens: crate::auth::Tokens,
    /// The Prometheus recorder's handle (`None` if another recorder was installed).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Set once the initial plugin scan finished.
    pub ready: Arc<AtomicBool>,
    pub plugins_dir: std::path::PathBuf,
    /// Cancelled when shutdown begins: long-lived responses (SSE) end then, so that
    /// graceful shutdown does not wait on them forever.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// An SSE stream silent this long sends a comment line, so that proxies do not close
/// it during a long wait.
pub const SSE_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// Serve `stream` as Server-Sent Events: with keep-alive comments, and ending when the
/// server shuts down (the client resumes from its last event id). (The chat stream
/// writes its own frames: see `chat::ui_stream`.)
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
    axum::response::sse::Sse::new(stream.take_until(shutdown))
        .keep_alive(axum::response::sse::KeepAlive::new().interval(SSE_KEEP_ALIVE))
}

/// Every route, each with its OpenAPI operation.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(health::routes()).nest(
        "/v1",
        plugins::routes()
            .merge(events::routes())
            .merge(publish_socket::routes())
            .merge(sessions::routes())
            .merge(recipes::routes())
            .merge(runs::routes())
            .merge(automations::routes())
            .merge(queues::routes())
            .merge(queue_socket::routes())
            .merge(tokens::routes())
            .routes(utoipa_axum::routes!(openapi_json)),
    )
}

/// The OpenAPI document of the whole API, as served at `/v1/openapi.json`.
pub fn openapi() -> serde_json::Value {
    openapi::finish(routes().into_openapi())
}

/// The served OpenAPI document, serialized once.
#[derive(Clone)]
struct OpenApiJson(bytes::Bytes);

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = serde_json::Value)),
    security(("token" = []))
)]
async fn openapi_json(
    axum::Extension(doc): axum::Extension<OpenApiJson>,
) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc.0,
    )
}

pub fn router(state: AppState) -> Router {
    let (router, doc) = routes().split_for_parts();
    let doc = openapi::finish(doc);
    let guard = auth::Guard {
        tokens: state.tokens.clone(),
        routes: Arc::new(openapi::RouteScopes::from_doc(&doc)),
    };
    let doc = OpenApiJson(serde_json::to_vec(&doc).unwrap_or_default().into());
    router
        .route_layer(axum::middleware::from_fn_with_state(guard, auth::authorize))
        // Outside the auth check, so refused requests are timed too.
        .route_layer(axum::middleware::from_fn(observe))
        .layer(axum::Extension(doc))
        // A 503 from /readyz while starting is expected; errors that matter are logged
        // where they happen, with their cause.
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .with_state(state)
}

/// The cursor of the page after `page` (a full page of `limit`): the last item's
/// `cursor`; `None` when the page came short, so there is no more.
fn next_cursor<T>(page: &[T], limit: usize, cursor: impl Fn(&T) -> &str) -> Option<String> {
    (page.len() == limit)
        .then(|| page.last().map(|last| cursor(last).to_owned()))
        .flatten()
}

/// The route template axum matched (`/v1/queues/{queue}/claim`); empty if none.
fn matched_route(req: &axum::extract::Request) -> String {
    req.extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default()
}

/// Time each request, labelled by its route template (bounded, unlike the path).
async fn observe(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = matched_route(&req);
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    metrics::histogram!(
        "switchyard_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => response.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// The client's resume point: `Last-Event-ID` (what a reconnecting EventSource sends),
/// else `fallback` (e.g. `?after=`).
pub fn resume_cursor(
    headers: &axum::http::HeaderMap,
    fallback: Option<u64>,
) -> Result<Option<u64>, ApiError> {
    match headers.get("last-event-id") {
        None => Ok(fallback),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request("Last-Event-ID must be an event seq (a non-negative integer)")
                    .with_field("Last-Event-ID")
            }),
    }
}

/// SSE of one thing's events: a `snapshot` message first, then the events on topics
/// matching `pattern`, resumable by `Last-Event-ID` (which also skips the snapshot's
/// place). The snapshot is taken after subscribing, so nothing between the two is lost.
pub async fn snapshot_then_events(
    state: &AppState,
    pattern: &str,
    headers: &axum::http::HeaderMap,
    snapshot: futures::future::BoxFuture<'_, Result<serde_json::Value, ApiError>>,
) -> Result<
    axum::response::sse::Sse<
        impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>
        + use<>,
    >,
    ApiError,
> {
    use futures::StreamExt;
    let cursor = resume_cursor(headers, None)?;
    let pattern = crate::bus::TopicPattern::parse(pattern)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let subscription = state.bus.subscribe_from(pattern, cursor);
    let first = axum::response::sse::Event::default()
        .event("snapshot")
        .data(serde_json::to_string(&snapshot.await?).unwrap_or_default());
    let head = futures::stream::once(async move { Ok(first) });
    Ok(sse(state, head.chain(events_stream(subscription, true))))
}

/// A subscription as SSE messages: `id:` the seq, `data:` the event as JSON, and
/// `event:` the event's type when `typed` (otherwise unnamed, for `onmessage`). If the
/// store fails, a last `error` message says why; the client resumes from its last id.
pub fn events_stream(
    subscription: crate::bus::Subscription,
    typed: bool,
) -> impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>> {
    use axum::response::sse::Event as SseEvent;
    futures::stream::unfold(Some(subscription), move |sub| async move {
        let mut sub = sub?;
        match sub.next().await {
            Ok(event) => {
                let mut sse = SseEvent::default().id(event.seq.to_string());
                if typed {
                    sse = sse.event(event.event_type.clone());
                }
                let sse = sse.data(serde_json::to_string(&*event).unwrap_or_default());
                Some((Ok(sse), Some(sub)))
            }
            Err(e) => Some((
                Ok(SseEvent::default().event("error").data(e.to_string())),
                None,
            )),
        }
    })
}
