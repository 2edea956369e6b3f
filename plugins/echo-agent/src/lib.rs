//! echo-agent: Switchyard's embedded default agent adapter (world `agent-adapter`).
//!
//! It needs no LLM and no network: each turn replies with the configured `prefix`
//! followed by the user's input, streamed word by word as `text-delta` events so
//! that tests and newcomers see a real streaming turn. With `delay_ms` > 0 it
//! pauses between words, which makes abort and steering easy to demonstrate:
//! between words it stops when the turn is aborted, and weaves any steering text
//! into the reply as `\n[steered: <text>]\n`.
//!
//! Configuration (`delay_ms`: integer >= 0, `prefix`: string) comes from the
//! plugin's config, overridden per session by the request's `config` object.

use std::time::Duration;

use serde_json::Value;

use exports::switchyard::plugin::agent_api::{Guest, PluginInfo};
use switchyard::plugin::agent_types::{StopReason, TurnRequest, TurnResult};
use switchyard::plugin::config;
use switchyard::plugin::turn_events::{self, TurnEvent};

wit_bindgen::generate!({
    world: "agent-adapter",
    path: "../../wit",
});

struct EchoAgent;

impl Guest for EchoAgent {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "echo-agent".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            summary: "Echoes the input back word by word (the default adapter, no LLM needed)."
                .to_string(),
        }
    }

    fn supports_steering() -> bool {
        true
    }

    fn run_turn(request: TurnRequest) -> Result<TurnResult, String> {
        let settings = Settings::load(&request.config)?;
        let reply = format!("{}{}", settings.prefix, request.input);

        let mut text = String::with_capacity(reply.len());
        for (i, word) in split_words(&reply).enumerate() {
            if i > 0 && !settings.delay.is_zero() {
                std::thread::sleep(settings.delay);
            }
            if turn_events::aborted() {
                return Ok(TurnResult {
                    text,
                    stop_reason: StopReason::Aborted,
                });
            }
            if let Some(steering) = turn_events::take_steering() {
                emit_text(&mut text, &format!("\n[steered: {steering}]\n"));
            }
            emit_text(&mut text, word);
        }

        turn_events::emit(&TurnEvent::MessageComplete(text.clone()));
        Ok(TurnResult {
            text,
            stop_reason: StopReason::Complete,
        })
    }
}

/// Stream `delta` as a `text-delta` event and append it to the reply so far.
fn emit_text(text: &mut String, delta: &str) {
    turn_events::emit(&TurnEvent::TextDelta(delta.to_string()));
    text.push_str(delta);
}

/// Split `text` into words, each carrying the whitespace that follows it (the
/// first also carries any leading whitespace), so the pieces concatenate back to
/// exactly `text`. An empty text gives no pieces.
fn split_words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let word_start = rest.len() - rest.trim_start().len();
        let word_end = rest[word_start..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |n| word_start + n);
        let piece_end = rest[word_end..]
            .find(|c: char| !c.is_whitespace())
            .map_or(rest.len(), |n| word_end + n);
        let (piece, tail) = rest.split_at(piece_end);
        rest = tail;
        Some(piece)
    })
}

/// The adapter's settings for one turn.
struct Settings {
    delay: Duration,
    prefix: String,
}

impl Settings {
    /// Read each key from the request's config object if it is set there (and not
    /// null), else from the plugin's config; fall back to the manifest defaults.
    fn load(request_config: &str) -> Result<Self, String> {
        let overrides = parse_request_config(request_config)?;
        let lookup = |key: &str| -> Result<Option<Value>, String> {
            match overrides.get(key) {
                Some(value) if !value.is_null() => Ok(Some(value.clone())),
                _ => plugin_config(key),
            }
        };

        let delay_ms = match lookup("delay_ms")? {
            None => 0,
            Some(value) => value.as_u64().ok_or_else(|| {
                bad_value("delay_ms", "a non-negative integer (milliseconds)", &value)
            })?,
        };
        let prefix = match lookup("prefix")? {
            None => String::new(),
            Some(Value::String(prefix)) => prefix,
            Some(value) => return Err(bad_value("prefix", "a string", &value)),
        };
        Ok(Settings {
            delay: Duration::from_millis(delay_ms),
            prefix,
        })
    }
}

/// The request's `config` as a JSON object; empty text or `null` mean no overrides.
fn parse_request_config(text: &str) -> Result<serde_json::Map<String, Value>, String> {
    if text.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(serde_json::Map::new()),
        Ok(_) => Err("request config must be a JSON object".to_string()),
        Err(e) => Err(format!("request config is not valid JSON: {e}")),
    }
}

/// A value from the plugin's config (`config.get`), parsed; `None` when unset.
fn plugin_config(key: &str) -> Result<Option<Value>, String> {
    match config::get(key) {
        None => Ok(None),
        Some(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Null) => Ok(None),
            Ok(value) => Ok(Some(value)),
            Err(e) => Err(format!(
                "config key `{key}` is not valid JSON ({e}): {text}"
            )),
        },
    }
}

fn bad_value(key: &str, expected: &str, got: &Value) -> String {
    format!("config key `{key}` must be {expected}, got {got}")
}

export!(EchoAgent);

#[cfg(test)]
mod tests {
    use super::split_words;

    fn pieces(text: &str) -> Vec<&str> {
        split_words(text).collect()
    }

    #[test]
    fn words_keep_their_whitespace() {
        assert_eq!(pieces("hello  big\nworld "), ["hello  ", "big\n", "world "]);
        assert_eq!(pieces("  lead"), ["  lead"]);
        assert_eq!(pieces("   "), ["   "]);
        assert!(pieces("").is_empty());
        for text in ["a b c", " x\t y\n\nz ", "één twee", "  "] {
            assert_eq!(pieces(text).concat(), text);
        }
    }
}
