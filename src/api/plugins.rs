//! `/v1/plugins`: list, inspect, reload and call plugins (calls are for debugging an
//! export with JSON input; the runtime's own parts call plugins in-process).

use super::extract::{Body, Path};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::parse_json;
use super::{ApiError, AppState};
use crate::event::Event;
use crate::plugins::types::{OutboundMessage, TurnRequest, WebhookRequest};
use crate::plugins::{PluginKind, PluginSummary, ReloadOutcome, TurnControl};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(reload))
        .routes(routes!(call))
}

#[utoipa::path(
    get,
    path = "/plugins",
    tag = "plugins",
    responses((status = 200, description = "Every plugin, loaded or failed", body = Vec<PluginSummary>)),
    security(("token" = ["plugins:read"]))
)]
async fn list(State(state): State<AppState>) -> Json<Vec<PluginSummary>> {
    Json(state.plugins.list())
}

#[utoipa::path(
    get,
    path = "/plugins/{name}",
    tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "The plugin", body = PluginSummary)),
    security(("token" = ["plugins:read"]))
)]
async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PluginSummary>, ApiError> {
    state
        .plugins
        .get(&name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no plugin named `{name}`")))
}

#[utoipa::path(
    post,
    path = "/plugins/{name}/reload",
    tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses((status = 200, description = "What the reload did", body = Reloaded)),
    security(("token" = ["plugins:write"]))
)]
async fn reload(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Reloaded>, ApiError> {
    // The name becomes a path under the plugins directory: never `..` or `a/b`.
    if !crate::plugins::manifest::is_plugin_name(&name) {
        return Err(ApiError::not_found(format!("no plugin named `{name}`")).with_field("name"));
    }
    let (_, outcome) = state.plugins.reload(&state.plugins_dir.join(&name)).await;
    let (status, error) = match outcome {
        ReloadOutcome::Loaded => ("loaded", None),
        ReloadOutcome::Replaced => ("replaced", None),
        ReloadOutcome::Unchanged => ("unchanged", None),
        ReloadOutcome::Unloaded => ("unloaded", None),
        ReloadOutcome::Failed(e) => ("failed", Some(e)),
    };
    Ok(Json(Reloaded {
        outcome: status,
        error,
        plugin: state.plugins.get(&name),
    }))
}

/// What a reload did, and the plugin as it is now (none once unloaded).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Reloaded {
    /// `loaded`, `replaced`, `unchanged`, `unloaded` or `failed` (the previous version,
    /// if any, still serves).
    outcome: &'static str,
    error: Option<String>,
    plugin: Option<PluginSummary>,
}

/// `{"export": "...", "input": {...}}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CallRequest {
    export: String,
    #[serde(default)]
    input: Value,
}

/// A test event for `evaluate`: only `topic` is required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventInput {
    topic: String,
    #[serde(rename = "type", default = "test_type")]
    event_type: String,
    #[serde(default = "cli_source")]
    source: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    data: Value,
}

fn test_type() -> String {
    "switchyard.test".into()
}
fn cli_source() -> String {
    "cli".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluateInput {
    event: EventInput,
    #[serde(default = "empty_object")]
    params: Value,
}

fn empty_object() -> Value {
    json!({})
}

#[utoipa::path(
    post,
    path = "/plugins/{name}/call",
    tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    request_body = CallRequest,
    responses((status = 200, description = "The export's output", body = Value)),
    security(("token" = ["plugins:write"]))
)]
async fn call(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Body(request): Body<CallRequest>,
) -> Result<Json<Value>, ApiError> {
    let summary = state
        .plugins
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no plugin named `{name}`")))?;
    let kind = summary.kind.ok_or_else(|| {
        ApiError::not_found(format!(
            "plugin `{name}` is not loaded: {}",
            summary.last_error.unwrap_or_default()
        ))
    })?;
    let host = &state.plugins;
    let output = match (kind, request.export.as_str()) {
        (_, "describe") => {
            let plugin = host.active(&name, kind)?;
            json!(host.describe(&plugin).await?)
        }
        (PluginKind::AgentAdapter, "supports-steering") => {
            json!(host.supports_steering(&name).await?)
        }
        (PluginKind::AgentAdapter, "run-turn") => {
            let turn: TurnRequest = nested(request.input)?;
            let (tx, mut rx) = tokio::sync::mpsc::channel(256);
            let collect = tokio::spawn(async move {
                let mut events = Vec::new();
                while let Some(e) = rx.recv().await {
                    events.push(e);
                }
                events
            });
            let result = host.run_turn(&name, turn, tx, TurnControl::default()).await;
            let events = collect.await.unwrap_or_default();
            json!({ "events": events, "result": result? })
        }
        (PluginKind::Connector, "handle-webhook") => {
            let req: WebhookRequest = nested(request.input)?;
            json!(host.handle_webhook(&name, &req).await?)
        }
        (PluginKind::Connector, "deliver") => {
            let msg: OutboundMessage = nested(request.input)?;
            host.deliver(&name, &msg).await?
        }
        (PluginKind::Trigger, "evaluate") => {
            let input: EvaluateInput = nested(request.input)?;
            let e = input.event;
            crate::bus::topic::validate_topic(&e.topic).map_err(|err| {
                ApiError::bad_request(err.to_string()).with_field("input.event.topic")
            })?;
            let event = Event {
                seq: 0,
                id: ulid::Ulid::new().to_string(),
                topic: e.topic,
                event_type: e.event_type,
                source: e.source,
                subject: e.subject,
                time: e.time.unwrap_or_else(crate::time::now_rfc3339),
                correlation_id: e.correlation_id,
                data: e.data.into(),
            };
            json!(host.evaluate(&name, &event, &input.params).await?)
        }
        (kind, export) => {
            let exports = match kind {
                PluginKind::AgentAdapter => "describe, supports-steering, run-turn",
                PluginKind::Connector => "describe, handle-webhook, deliver",
                PluginKind::Trigger => "describe, evaluate",
            };
            return Err(ApiError::bad_request(format!(
                "a {kind} has no export `{export}`; it has: {exports}"
            ))
            .with_field("export"));
        }
    };
    Ok(Json(output))
}

/// Parse `input`, reporting field paths under `input.`.
fn nested<T: serde::de::DeserializeOwned>(input: Value) -> Result<T, ApiError> {
    parse_json(input).map_err(|mut e| {
        e.field = Some(match e.field.take() {
            Some(f) => format!("input.{f}"),
            None => "input".into(),
        });
        e
    })
}
