//! {{name}}: a Switchyard connector (world `connector` of `switchyard:plugin@0.1.0`).
//!
//! Inbound: the host hands every webhook sent to the connector's route to
//! `handle_webhook`. This one turns a JSON body into one bus event on the topic set
//! by `topic` in the plugin's config (plugin.toml), with `{path, body}` as its data.
//! A GET (a health check or verification ping) is answered with 200 and no items;
//! a body that is not JSON is refused (the host answers 400 with the error text).
//!
//! Outbound: `deliver` is where replies leave Switchyard. This one only writes them
//! to the host's log; to send them somewhere, make an HTTP request (wasi:http) and
//! list the host in plugin.toml's `permissions.allowed_hosts`.

use serde_json::{Value, json};

use exports::switchyard::plugin::connector_api::{
    BusEvent, Guest, InboundItem, OutboundMessage, PluginInfo, WebhookOutcome, WebhookRequest,
};
use switchyard::plugin::config;
use switchyard::plugin::log::{self, Level};

wit_bindgen::generate!({
    world: "connector",
    path: "wit",
});

const NAME: &str = "{{name}}";
const SUMMARY: &str = "{{summary}}";
/// Used when the plugin's config does not set `topic`.
const DEFAULT_TOPIC: &str = "webhook.{{name}}";
const EVENT_TYPE: &str = "webhook.received";
/// The host refuses event data nested deeper than 128 levels; real webhooks nest far less.
const MAX_DEPTH: usize = 64;

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.to_string(),
            // Cargo.toml's version; build.sh checks that it equals plugin.toml's.
            version: env!("CARGO_PKG_VERSION").to_string(),
            summary: SUMMARY.to_string(),
        }
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, String> {
        if request.method.eq_ignore_ascii_case("GET") {
            return Ok(WebhookOutcome {
                status: 200,
                body: "ok".to_string(),
                items: Vec::new(),
            });
        }
        let body: Value =
            serde_json::from_slice(&request.body).map_err(|e| format!("body is not JSON: {e}"))?;
        if depth(&body) > MAX_DEPTH {
            return Err(format!("body is nested deeper than {MAX_DEPTH} levels"));
        }
        let topic = config_str("topic", DEFAULT_TOPIC)?;
        let data = json!({ "path": request.path, "body": body });
        log::write(Level::Info, &format!("webhook {} -> {topic}", request.path));
        Ok(WebhookOutcome {
            status: 202,
            body: json!({ "accepted": 1, "topic": topic }).to_string(),
            items: vec![InboundItem::Event(BusEvent {
                topic,
                event_type: EVENT_TYPE.to_string(),
                subject: None,
                data: data.to_string(),
            })],
        })
    }

    fn deliver(message: OutboundMessage) -> Result<String, String> {
        // Replace this with a real delivery (an HTTP request to a chat or issue API).
        log::write(
            Level::Info,
            &format!(
                "reply for session {} (target {}): {}",
                message.session, message.target, message.text
            ),
        );
        Ok(json!({ "delivered_to": "log", "session": message.session }).to_string())
    }
}

/// How deeply arrays and objects nest in `value` (a scalar is 0).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(members) => 1 + members.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// String setting `key` from the plugin's config, else `default`.
fn config_str(key: &str, default: &str) -> Result<String, String> {
    let Some(text) = config::get(key) else {
        return Ok(default.to_string());
    };
    match serde_json::from_str(&text) {
        Ok(Value::String(s)) => Ok(s),
        Ok(Value::Null) => Ok(default.to_string()),
        Ok(other) => Err(format!("config `{key}` must be a string, got {other}")),
        Err(e) => Err(format!("config `{key}` is not valid JSON ({e}): {text}")),
    }
}

export!(Plugin);
