//! {{name}}: a Switchyard agent adapter (world `agent-adapter` of `switchyard:plugin@0.1.0`).
//!
//! The host calls `run_turn` once per turn of a session. The adapter streams its
//! progress as turn events (`text-delta` pieces, then `message-complete`) and returns
//! the whole reply. Between pieces it polls `aborted()` and stops early, returning
//! what it has so far with stop reason `aborted`.
//!
//! This one replies with `prefix` (from the session's adapter config, else the
//! plugin's config, else "You said: ") followed by the user's input, word by word.
//! Start here: replace `compose_reply` with a call to your model (over wasi:http:
//! list its host in plugin.toml's `permissions.allowed_hosts` and declare its API
//! key under `[secrets]`, read with `config::secret`).

use serde_json::{Map, Value};

use exports::switchyard::plugin::agent_api::{Guest, PluginInfo};
use switchyard::plugin::agent_types::{StopReason, TurnRequest, TurnResult};
use switchyard::plugin::config;
use switchyard::plugin::turn_events::{self, TurnEvent};

wit_bindgen::generate!({
    world: "agent-adapter",
    path: "wit",
});

const NAME: &str = "{{name}}";
const SUMMARY: &str = "{{summary}}";
/// Used when neither the session's config nor the plugin's config set `prefix`.
const DEFAULT_PREFIX: &str = "You said: ";

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

    /// No: the host queues steering text as a follow-up message instead.
    fn supports_steering() -> bool {
        false
    }

    fn run_turn(request: TurnRequest) -> Result<TurnResult, String> {
        let session_config = parse_object("request config", &request.config)?;
        let prefix = setting_str(&session_config, "prefix", DEFAULT_PREFIX)?;
        let reply = compose_reply(&prefix, &request);

        let mut text = String::with_capacity(reply.len());
        for piece in pieces(&reply) {
            if turn_events::aborted() {
                return Ok(TurnResult {
                    text,
                    stop_reason: StopReason::Aborted,
                });
            }
            turn_events::emit(&TurnEvent::TextDelta(piece.to_string()));
            text.push_str(piece);
        }
        turn_events::emit(&TurnEvent::MessageComplete(text.clone()));
        Ok(TurnResult {
            text,
            stop_reason: StopReason::Complete,
        })
    }
}

/// The whole reply to this turn.
fn compose_reply(prefix: &str, request: &TurnRequest) -> String {
    format!("{prefix}{}", request.input)
}

/// `text` cut after each run of whitespace that follows a word, so every piece is a
/// word with its trailing whitespace and the pieces concatenate back to `text`.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let word = rest.len() - rest.trim_start().len();
        let word_end = rest[word..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |n| word + n);
        let end = rest[word_end..]
            .find(|c: char| !c.is_whitespace())
            .map_or(rest.len(), |n| word_end + n);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
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
        Some(value) if !value.is_null() => (value.clone(), "the session's config"),
        _ => match config::get(key) {
            Some(text) => (
                serde_json::from_str(&text)
                    .map_err(|e| format!("config `{key}` is not valid JSON ({e}): {text}"))?,
                "the plugin's config",
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

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_concatenate_back() {
        let got: Vec<&str> = pieces("You said:  hi there ").collect();
        assert_eq!(got, ["You ", "said:  ", "hi ", "there "]);
        for text in ["", "  ", " lead", "a\tb\nc"] {
            assert_eq!(pieces(text).collect::<String>(), text);
        }
    }
}
