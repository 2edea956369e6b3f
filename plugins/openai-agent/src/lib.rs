//! openai-agent: a Switchyard agent adapter (world `agent-adapter`) for any server
//! that speaks OpenAI's `POST /v1/chat/completions` with `stream: true` — OpenAI
//! itself, or a compatible server (llama.cpp, vLLM, Ollama, a proxy...).
//!
//! A turn sends `[system_prompt?] + history + input` and reads the Server-Sent Events
//! reply incrementally, chunk by chunk as it arrives over `wasi:http`:
//! `delta.content` becomes `text-delta` events, `delta.reasoning_content` /
//! `delta.reasoning` become `reasoning-delta`, and tool calls are assembled from their
//! fragments and surfaced as `tool-start` events once complete (see [`chat::Reply`];
//! the adapter does not run tools). `[DONE]` ends the reply; `message-complete` then
//! carries the whole text. `finish_reason: "length"` ends the turn with stop reason
//! `max-tokens`.
//!
//! Settings (`base_url`, `model`, `system_prompt`, `temperature`, `max_tokens`,
//! `tools`) come from the plugin's config, each overridable per session by the
//! request's `config` object. The API key is the secret `api_key` (environment
//! variable `OPENAI_API_KEY`); without it the plugin still loads, and a turn answers
//! with an error saying how to set it.
//!
//! Steering: an HTTP request cannot take new input once sent, so
//! `supports-steering` is false and the host queues steering as a follow-up message.
//! Abort: checked between chunks and every 100 ms while the server is silent; an
//! aborted turn returns the text received so far with stop reason `aborted`.
//!
//! Every failure is an `Err` answer, never a trap: a missing key, a denied host, a
//! refused connection, a non-2xx status (401/403 with the server's message, 429 with
//! `Retry-After`), malformed JSON in the stream, or a connection cut mid-response
//! (which also emits an `error` event).

mod chat;
mod http;
mod sse;

use serde_json::{Map, Value};

use chat::{ChatMessage, Finish, Options, Reply, Step};
use exports::switchyard::plugin::agent_api::{Guest, PluginInfo};
use http::{Endpoint, Failure, Read};
use switchyard::plugin::agent_types::{Message, Role, StopReason, TurnRequest, TurnResult};
use switchyard::plugin::config;
use switchyard::plugin::turn_events::{self, ToolCall, TurnEvent};

wit_bindgen::generate!({
    world: "agent-adapter",
    path: "../../wit",
});

const MISSING_KEY: &str = "openai-agent needs an API key: set the OPENAI_API_KEY environment \
                           variable (secret `api_key`)";
/// Most bytes of an error answer read (and of its excerpt quoted).
const ERROR_BODY_BYTES: usize = 64 * 1024;
const ERROR_EXCERPT_CHARS: usize = 300;

struct OpenAiAgent;

impl Guest for OpenAiAgent {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "openai-agent".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            summary: "OpenAI-compatible chat completions, streamed (SSE).".to_string(),
        }
    }

    /// A request in flight cannot take more input: steering becomes a follow-up.
    fn supports_steering() -> bool {
        false
    }

    fn run_turn(request: TurnRequest) -> Result<TurnResult, String> {
        let settings = Settings::load(&request.config)?;
        let key = config::secret("api_key")
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .ok_or(MISSING_KEY)?;
        let endpoint = Endpoint::parse(&settings.base_url, "/chat/completions")?;
        let messages = conversation(&settings.system_prompt, &request.history, request.input);
        let body = chat::request_body(
            &Options {
                model: &settings.model,
                temperature: settings.temperature,
                max_tokens: settings.max_tokens,
                tools: settings.tools.as_ref(),
            },
            &messages,
        )
        .to_string();
        let authorization = format!("Bearer {key}");
        let headers = [
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
            ("authorization", authorization.as_str()),
        ];

        let aborted = || turn_events::aborted();
        let mut response = match http::post(&endpoint, &headers, body.as_bytes(), &aborted) {
            Ok(response) => response,
            Err(Failure::Aborted) => return Ok(aborted_turn(String::new())),
            Err(Failure::Failed(message)) => return Err(message),
        };
        if !(200..300).contains(&response.status) {
            let body = response.read_to_limit(ERROR_BODY_BYTES, &aborted);
            return Err(status_error(
                &endpoint,
                response.status,
                response.retry_after.as_deref(),
                &body,
            ));
        }
        // A server that ignored `stream: true` (or a proxy's error page) answers with
        // one JSON document instead of an event stream.
        if let Some(kind) = response.content_type.clone()
            && kind.to_ascii_lowercase().starts_with("application/json")
        {
            let body = response.read_to_limit(ERROR_BODY_BYTES, &aborted);
            return Err(format!(
                "{} answered HTTP {} with {kind} instead of an event stream: {}",
                endpoint.authority,
                response.status,
                excerpt(String::from_utf8_lossy(&body).trim())
            ));
        }
        stream_reply(&endpoint, &mut response, &aborted)
    }
}

/// Read the SSE reply as it arrives, streaming its steps as turn events.
fn stream_reply(
    endpoint: &Endpoint,
    response: &mut http::Response,
    aborted: &dyn Fn() -> bool,
) -> Result<TurnResult, String> {
    let mut decoder = sse::Decoder::new();
    let mut reply = Reply::default();
    loop {
        if aborted() {
            return Ok(aborted_turn(reply.text));
        }
        let (events, ended) = match response.next(aborted) {
            Read::Data(bytes) => (decoder.push(&bytes)?, false),
            Read::Aborted => return Ok(aborted_turn(reply.text)),
            Read::End => (decoder.finish().into_iter().collect(), true),
            // After a finish reason the reply is whole: only `[DONE]` was lost.
            Read::Failed(_) if reply.finish.is_some() => break,
            Read::Failed(detail) => return Err(cut(endpoint, &reply, Some(&detail))),
        };
        let mut done = false;
        for data in events {
            if data.trim() == "[DONE]" {
                done = true;
                break;
            }
            let chunk: Value = serde_json::from_str(&data).map_err(|e| {
                format!(
                    "{} sent malformed JSON in a stream event ({e}): {}",
                    endpoint.authority,
                    excerpt(&data)
                )
            })?;
            emit_steps(reply.apply(&chunk)?);
        }
        if done {
            break;
        }
        if ended {
            if reply.finish.is_none() {
                return Err(cut(endpoint, &reply, None));
            }
            // Some servers close the stream after the last chunk without `[DONE]`.
            break;
        }
    }
    // Calls still pending: a server that sent no finish reason before `[DONE]`.
    emit_steps(reply.done());
    let stop_reason = match reply.finish {
        Some(Finish::Length) => StopReason::MaxTokens,
        Some(Finish::ContentFilter) => {
            turn_events::emit(&TurnEvent::Error(
                "the server's content filter withheld the rest of the reply".to_string(),
            ));
            StopReason::Error
        }
        Some(Finish::Complete) | None => StopReason::Complete,
    };
    turn_events::emit(&TurnEvent::MessageComplete(reply.text.clone()));
    Ok(TurnResult {
        text: reply.text,
        stop_reason,
    })
}

/// The connection ended before the reply did: say so as an event and as the error.
fn cut(endpoint: &Endpoint, reply: &Reply, detail: Option<&str>) -> String {
    let mut message = format!(
        "the connection to {} was cut mid-response after {} characters",
        endpoint.authority, reply.chars
    );
    if let Some(detail) = detail {
        message.push_str(&format!(" ({detail})"));
    }
    turn_events::emit(&TurnEvent::Error(message.clone()));
    message
}

fn emit_steps(steps: Vec<Step>) {
    for step in steps {
        turn_events::emit(&match step {
            Step::Text(text) => TurnEvent::TextDelta(text),
            Step::Reasoning(text) => TurnEvent::ReasoningDelta(text),
            Step::Tool { id, name, input } => TurnEvent::ToolStart(ToolCall { id, name, input }),
        });
    }
}

fn aborted_turn(text: String) -> TurnResult {
    TurnResult {
        text,
        stop_reason: StopReason::Aborted,
    }
}

/// `[system?] + history + input` as chat messages. The API's `tool` role needs a
/// `tool_call_id` this history does not have, so a tool message is passed as a user
/// message that says what it is.
fn conversation(system_prompt: &str, history: &[Message], input: String) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(history.len() + 2);
    if !system_prompt.is_empty() {
        messages.push(ChatMessage {
            role: "system",
            content: system_prompt.to_owned(),
        });
    }
    messages.extend(history.iter().map(|m| match m.role {
        Role::System => ChatMessage {
            role: "system",
            content: m.content.clone(),
        },
        Role::User => ChatMessage {
            role: "user",
            content: m.content.clone(),
        },
        Role::Assistant => ChatMessage {
            role: "assistant",
            content: m.content.clone(),
        },
        Role::Tool => ChatMessage {
            role: "user",
            content: format!("[tool result]\n{}", m.content),
        },
    }));
    messages.push(ChatMessage {
        role: "user",
        content: input,
    });
    messages
}

/// The error for a non-2xx answer, with the server's own message when it has one.
fn status_error(
    endpoint: &Endpoint,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> String {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("error")
                .and_then(chat::error_message)
                .or_else(|| v.get("message").and_then(Value::as_str).map(str::to_owned))
        })
        .unwrap_or_else(|| excerpt(text.trim()));
    let server = &endpoint.authority;
    match status {
        401 | 403 => format!(
            "{server} refused the request with HTTP {status}: {message} (check the API key in \
             OPENAI_API_KEY, secret `api_key`)"
        ),
        429 => {
            let retry = retry_after.map_or(String::new(), |r| format!("; retry after {r} s"));
            format!("rate limited by {server} (HTTP 429){retry}: {message}")
        }
        _ => format!("{server} answered HTTP {status}: {message}"),
    }
}

/// The first characters of `text`, marked when cut.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(ERROR_EXCERPT_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None if text.is_empty() => "(empty body)".to_owned(),
        None => text.to_owned(),
    }
}

/// The adapter's settings for one turn.
struct Settings {
    base_url: String,
    model: String,
    system_prompt: String,
    temperature: Option<f64>,
    max_tokens: Option<u64>,
    tools: Option<Value>,
}

impl Settings {
    /// Each key from the request's config object if set there (and not null), else
    /// from the plugin's config (manifest default or `switchyard.toml`).
    fn load(request_config: &str) -> Result<Self, String> {
        let overrides = parse_request_config(request_config)?;
        let lookup = |key: &str| -> Result<Option<Value>, String> {
            match overrides.get(key) {
                Some(value) if !value.is_null() => Ok(Some(value.clone())),
                _ => plugin_config(key),
            }
        };
        let string = |key: &str, default: &str| -> Result<String, String> {
            match lookup(key)? {
                None => Ok(default.to_owned()),
                Some(Value::String(s)) => Ok(s),
                Some(v) => Err(bad_value(key, "a string", &v)),
            }
        };
        let base_url = string("base_url", "https://api.openai.com/v1")?;
        let model = string("model", "gpt-4o-mini")?;
        if model.trim().is_empty() {
            return Err("config key `model` is empty: name the model to use".to_owned());
        }
        let system_prompt = string("system_prompt", "")?;
        let temperature = match lookup("temperature")? {
            None => None,
            Some(v) => Some(
                v.as_f64()
                    .ok_or_else(|| bad_value("temperature", "a number", &v))?,
            ),
        };
        let max_tokens = match lookup("max_tokens")? {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad_value("max_tokens", "a positive integer", &v))?,
            ),
        };
        let tools = match lookup("tools")? {
            None => None,
            Some(v @ Value::Array(_)) => Some(v),
            Some(v) => return Err(bad_value("tools", "an array of tool definitions", &v)),
        };
        Ok(Settings {
            base_url,
            model,
            system_prompt,
            temperature,
            max_tokens,
            tools,
        })
    }
}

/// The request's `config` as a JSON object; empty text or `null` mean no overrides.
fn parse_request_config(text: &str) -> Result<Map<String, Value>, String> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
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

export!(OpenAiAgent);

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint::parse("http://127.0.0.1:9/v1", "/chat/completions").unwrap()
    }

    #[test]
    fn status_errors_quote_the_server() {
        let body = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let e = status_error(&endpoint(), 401, None, body);
        assert!(
            e.contains("HTTP 401") && e.contains("Incorrect API key provided"),
            "{e}"
        );
        let e = status_error(
            &endpoint(),
            429,
            Some("20"),
            br#"{"error":{"message":"slow down"}}"#,
        );
        assert!(
            e.starts_with("rate limited")
                && e.contains("retry after 20 s")
                && e.contains("slow down"),
            "{e}"
        );
        let e = status_error(&endpoint(), 502, None, b"<html>bad gateway</html>");
        assert!(
            e.contains("HTTP 502") && e.contains("<html>bad gateway</html>"),
            "{e}"
        );
        let e = status_error(&endpoint(), 500, None, b"");
        assert!(e.contains("(empty body)"), "{e}");
        let long = "x".repeat(1000);
        assert_eq!(excerpt(&long).chars().count(), ERROR_EXCERPT_CHARS + 1);
    }

    #[test]
    fn conversation_order_and_roles() {
        let history = [
            Message {
                role: Role::User,
                content: "a".into(),
            },
            Message {
                role: Role::Assistant,
                content: "b".into(),
            },
            Message {
                role: Role::Tool,
                content: "c".into(),
            },
        ];
        let roles: Vec<(&str, String)> = conversation("sys", &history, "d".into())
            .into_iter()
            .map(|m| (m.role, m.content))
            .collect();
        assert_eq!(
            roles,
            [
                ("system", "sys".to_owned()),
                ("user", "a".to_owned()),
                ("assistant", "b".to_owned()),
                ("user", "[tool result]\nc".to_owned()),
                ("user", "d".to_owned()),
            ]
        );
        assert_eq!(conversation("", &[], "x".into()).len(), 1);
    }
}
