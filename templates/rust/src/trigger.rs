//! {{name}}: a Switchyard trigger (world `trigger` of `switchyard:plugin@0.1.0`).
//!
//! For every bus event an automation listens to, the host calls `evaluate` with the
//! event and the automation's params (the JSON object of the recipe's `on:` block).
//! This trigger fires when the event's topic starts with `topic_prefix`, taken from
//! the params, else from the plugin's config (plugin.toml), else "demo.". When it
//! fires, the recipe run gets `{topic, event_id, subject, data}` as its inputs.
//!
//! Start here: change `decide` to look at `event.data` too.

use serde_json::{Map, Value, json};

use exports::switchyard::plugin::trigger_api::{Decision, Event, Guest, PluginInfo};
use switchyard::plugin::config;
use switchyard::plugin::log::{self, Level};

wit_bindgen::generate!({
    world: "trigger",
    path: "wit",
});

const NAME: &str = "{{name}}";
const SUMMARY: &str = "{{summary}}";
/// Used when neither the params nor the plugin's config set `topic_prefix`.
const DEFAULT_TOPIC_PREFIX: &str = "demo.";

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

    fn evaluate(event: Event, params: String) -> Result<Decision, String> {
        let params = parse_object("params", &params)?;
        let prefix = setting_str(&params, "topic_prefix", DEFAULT_TOPIC_PREFIX)?;
        let decision = decide(&event, &prefix)?;
        log::write(
            Level::Debug,
            &format!(
                "{} {}: {} ({})",
                event.topic,
                event.id,
                if decision.fire { "fire" } else { "no fire" },
                decision.reason
            ),
        );
        Ok(decision)
    }
}

/// Fire when the topic starts with `prefix`; hand the event to the recipe.
fn decide(event: &Event, prefix: &str) -> Result<Decision, String> {
    if !event.topic.starts_with(prefix) {
        return Ok(Decision {
            fire: false,
            inputs: "{}".to_string(),
            reason: format!("topic `{}` does not start with `{prefix}`", event.topic),
        });
    }
    let data: Value =
        serde_json::from_str(&event.data).map_err(|e| format!("event data is not JSON: {e}"))?;
    let inputs = json!({
        "topic": event.topic,
        "event_id": event.id,
        "subject": event.subject,
        "data": data,
    });
    Ok(Decision {
        fire: true,
        inputs: inputs.to_string(),
        reason: format!("topic `{}` starts with `{prefix}`", event.topic),
    })
}

/// `text` as a JSON object; blank text or `null` count as `{}`.
fn parse_object(what: &str, text: &str) -> Result<Map<String, Value>, String> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(format!("{what} must be a JSON object, got {other}")),
        Err(e) => Err(format!("{what} is not valid JSON: {e}")),
    }
}

/// String setting `key`: from `overrides` if set there (and not null), else from the
/// plugin's config, else `default`.
fn setting_str(overrides: &Map<String, Value>, key: &str, default: &str) -> Result<String, String> {
    let (value, from) = match overrides.get(key) {
        Some(value) if !value.is_null() => (value.clone(), "params"),
        _ => match config::get(key) {
            Some(text) => (
                serde_json::from_str(&text)
                    .map_err(|e| format!("config `{key}` is not valid JSON ({e}): {text}"))?,
                "config",
            ),
            None => return Ok(default.to_string()),
        },
    };
    match value {
        Value::String(s) => Ok(s),
        Value::Null => Ok(default.to_string()),
        other => Err(format!(
            "`{key}` (from {from}) must be a string, got {other}"
        )),
    }
}

export!(Plugin);
