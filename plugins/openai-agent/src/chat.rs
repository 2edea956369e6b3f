//! The chat-completions wire format: the request body, and the reply assembled from
//! the stream's `chat.completion.chunk` objects. No I/O here, so it is unit-tested on
//! the build machine.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// One message of the conversation, in the API's terms (`role` is `system`, `user` or
/// `assistant`).
pub struct ChatMessage {
    pub role: &'static str,
    pub content: String,
}

/// What the request asks for besides the messages.
pub struct Options<'a> {
    pub model: &'a str,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u64>,
    pub tools: Option<&'a Value>,
}

/// The JSON body of a streamed `POST /chat/completions`.
pub fn request_body(options: &Options, messages: &[ChatMessage]) -> Value {
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| json!({ "role": m.role, "content": m.content }))
        .collect();
    let mut body = json!({
        "model": options.model,
        "messages": messages,
        "stream": true,
    });
    if let Some(t) = options.temperature {
        body["temperature"] = json!(t);
    }
    // `max_tokens`, not the newer `max_completion_tokens`: every OpenAI-compatible
    // server understands it (OpenAI still accepts it for chat models).
    if let Some(n) = options.max_tokens {
        body["max_tokens"] = json!(n);
    }
    if let Some(tools) = options.tools {
        body["tools"] = tools.clone();
    }
    body
}

/// Something the reply did that the adapter streams to the host.
#[derive(Debug, PartialEq)]
pub enum Step {
    Text(String),
    Reasoning(String),
    /// A tool call whose arguments are complete; `input` is JSON text.
    Tool {
        id: String,
        name: String,
        input: String,
    },
}

/// How the server said the reply ended (`finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// `stop`, `tool_calls`, `function_call` or a reason this adapter does not know.
    Complete,
    /// `length`: the reply hit `max_tokens` (or the model's context).
    Length,
    /// `content_filter`: the server withheld the rest of the reply.
    ContentFilter,
}

/// A tool call being assembled from `delta.tool_calls[i]` fragments.
#[derive(Default)]
struct PendingCall {
    id: String,
    name: String,
    arguments: String,
}

/// The reply so far, built from the stream's chunks.
///
/// Tool calls: OpenAI streams each call as fragments keyed by `index` (the first
/// carries `id` and `function.name`, the rest pieces of `function.arguments`). A call
/// is surfaced as one `tool-start` once its arguments are complete, which the
/// protocol only guarantees at the end of the choice: when `finish_reason` arrives (or,
/// for a server that sends none, at `[DONE]`). Emitting at the first fragment would
/// mean a `tool-start` without input; emitting when the next index begins would rely
/// on calls being streamed one after another, which the format does not promise. A
/// stream cut before that point never surfaces its half-received calls.
#[derive(Default)]
pub struct Reply {
    /// Text of the assistant message (`delta.content`, and `delta.refusal`).
    pub text: String,
    /// Characters in `text` (for error messages).
    pub chars: usize,
    pub finish: Option<Finish>,
    calls: BTreeMap<u64, PendingCall>,
}

impl Reply {
    /// Apply one `chat.completion.chunk` (the JSON of one `data:` event). Only choice
    /// 0 is read (the adapter never asks for `n` > 1); chunks without it (a trailing
    /// usage chunk) add nothing.
    pub fn apply(&mut self, chunk: &Value) -> Result<Vec<Step>, String> {
        if let Some(error) = chunk.get("error") {
            return Err(format!(
                "the server reported an error mid-response: {}",
                error_message(error).unwrap_or_else(|| error.to_string())
            ));
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return Ok(Vec::new());
        };
        let Some(choice) = choices
            .iter()
            .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        else {
            return Ok(Vec::new());
        };
        let mut steps = Vec::new();
        if let Some(delta) = choice.get("delta").and_then(Value::as_object) {
            self.apply_delta(delta, &mut steps);
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(match reason {
                "length" => Finish::Length,
                "content_filter" => Finish::ContentFilter,
                _ => Finish::Complete,
            });
            steps.extend(self.complete_calls());
        }
        Ok(steps)
    }

    fn apply_delta(&mut self, delta: &Map<String, Value>, steps: &mut Vec<Step>) {
        // DeepSeek and vLLM say `reasoning_content`, OpenRouter and Ollama `reasoning`;
        // a proxy that sends both sends the same text twice.
        let reasoning = ["reasoning_content", "reasoning"]
            .iter()
            .filter_map(|key| delta.get(*key).and_then(Value::as_str))
            .find(|text| !text.is_empty());
        if let Some(text) = reasoning {
            steps.push(Step::Reasoning(text.to_owned()));
        }
        for key in ["content", "refusal"] {
            if let Some(text) = delta.get(key).and_then(Value::as_str)
                && !text.is_empty()
            {
                self.text.push_str(text);
                self.chars += text.chars().count();
                steps.push(Step::Text(text.to_owned()));
            }
        }
        let fragments = delta.get("tool_calls").and_then(Value::as_array);
        for (position, fragment) in fragments.into_iter().flatten().enumerate() {
            // A server that leaves out `index` sends each call whole, in order.
            let index = fragment
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(position as u64);
            let call = self.calls.entry(index).or_default();
            if let Some(id) = fragment.get("id").and_then(Value::as_str)
                && call.id.is_empty()
            {
                call.id = id.to_owned();
            }
            let function = fragment.get("function");
            let piece = |key: &str| function.and_then(|f| f.get(key)).and_then(Value::as_str);
            // Name and arguments accumulate, as in OpenAI's own SDKs.
            if let Some(name) = piece("name") {
                call.name.push_str(name);
            }
            if let Some(arguments) = piece("arguments") {
                call.arguments.push_str(arguments);
            }
        }
    }

    /// The stream ended with `[DONE]`: complete whatever calls are still pending.
    pub fn done(&mut self) -> Vec<Step> {
        self.complete_calls()
    }

    /// Every pending call as a `Step::Tool`, in index order. The input is the
    /// arguments when they are JSON, `{}` when there are none, and otherwise the raw
    /// text as a JSON string (the host takes tool input as JSON).
    fn complete_calls(&mut self) -> Vec<Step> {
        std::mem::take(&mut self.calls)
            .into_iter()
            .map(|(index, call)| {
                let arguments = call.arguments.trim();
                let input = if arguments.is_empty() {
                    "{}".to_owned()
                } else if serde_json::from_str::<Value>(arguments).is_ok() {
                    arguments.to_owned()
                } else {
                    Value::String(call.arguments).to_string()
                };
                Step::Tool {
                    id: if call.id.is_empty() {
                        format!("call_{index}")
                    } else {
                        call.id
                    },
                    name: call.name,
                    input,
                }
            })
            .collect()
    }
}

/// The message of an OpenAI-style error object (`{"message": ...}`) or error text.
pub fn error_message(error: &Value) -> Option<String> {
    match error {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "m", "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }]
        })
    }

    #[test]
    fn body_has_the_options_that_are_set() {
        let messages = [ChatMessage {
            role: "user",
            content: "hi".into(),
        }];
        let tools = json!([{ "type": "function", "function": { "name": "f" } }]);
        let body = request_body(
            &Options {
                model: "m",
                temperature: Some(0.5),
                max_tokens: Some(7),
                tools: Some(&tools),
            },
            &messages,
        );
        assert_eq!(
            body,
            json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }],
                    "stream": true, "temperature": 0.5, "max_tokens": 7, "tools": tools })
        );
        let plain = request_body(
            &Options {
                model: "m",
                temperature: None,
                max_tokens: None,
                tools: None,
            },
            &messages,
        );
        assert!(plain.get("temperature").is_none() && plain.get("tools").is_none());
    }

    #[test]
    fn text_reasoning_and_finish() {
        let mut reply = Reply::default();
        let role = chunk(json!({ "role": "assistant", "content": "" }), None);
        assert!(reply.apply(&role).unwrap().is_empty());
        let steps = reply
            .apply(&chunk(json!({ "reasoning_content": "hmm" }), None))
            .unwrap();
        assert_eq!(steps, [Step::Reasoning("hmm".into())]);
        let both = json!({ "reasoning_content": "so", "reasoning": "so" });
        let steps = reply.apply(&chunk(both, None)).unwrap();
        assert_eq!(steps, [Step::Reasoning("so".into())]);
        let steps = reply
            .apply(&chunk(json!({ "reasoning": "then" }), None))
            .unwrap();
        assert_eq!(steps, [Step::Reasoning("then".into())]);
        let steps = reply
            .apply(&chunk(json!({ "content": "héllo" }), Some("length")))
            .unwrap();
        assert_eq!(steps, [Step::Text("héllo".into())]);
        assert_eq!((reply.text.as_str(), reply.chars), ("héllo", 5));
        assert_eq!(reply.finish, Some(Finish::Length));
        let usage = json!({ "choices": [], "usage": { "total_tokens": 3 } });
        assert!(reply.apply(&usage).unwrap().is_empty());
        let err = reply
            .apply(&json!({ "error": { "message": "overloaded" } }))
            .unwrap_err();
        assert!(err.contains("overloaded"), "{err}");
    }

    #[test]
    fn tool_calls_complete_at_finish_reason() {
        let mut reply = Reply::default();
        let start = |i: u64, id: &str, name: &str| {
            json!({ "tool_calls": [{ "index": i, "id": id, "type": "function",
                                     "function": { "name": name, "arguments": "" } }] })
        };
        let args = |i: u64, a: &str| json!({ "tool_calls": [{ "index": i, "function": { "arguments": a } }] });
        for delta in [
            start(0, "call_a", "get_weather"),
            args(0, "{\"city\":"),
            start(1, "call_b", "noop"),
            args(0, "\"Paris\"}"),
            args(1, "not json"),
        ] {
            assert!(reply.apply(&chunk(delta, None)).unwrap().is_empty());
        }
        let steps = reply.apply(&chunk(json!({}), Some("tool_calls"))).unwrap();
        assert_eq!(
            steps,
            [
                Step::Tool {
                    id: "call_a".into(),
                    name: "get_weather".into(),
                    input: "{\"city\":\"Paris\"}".into()
                },
                Step::Tool {
                    id: "call_b".into(),
                    name: "noop".into(),
                    input: "\"not json\"".into()
                },
            ]
        );
        assert_eq!(reply.finish, Some(Finish::Complete));
        assert!(reply.done().is_empty(), "each call is surfaced once");
    }

    #[test]
    fn calls_without_index_id_or_finish_reason() {
        let mut reply = Reply::default();
        let delta = json!({ "tool_calls": [
            { "function": { "name": "a", "arguments": "" } },
            { "function": { "name": "b", "arguments": "{\"x\":1}" } },
        ] });
        reply.apply(&chunk(delta, None)).unwrap();
        let steps = reply.done();
        assert_eq!(
            steps,
            [
                Step::Tool {
                    id: "call_0".into(),
                    name: "a".into(),
                    input: "{}".into()
                },
                Step::Tool {
                    id: "call_1".into(),
                    name: "b".into(),
                    input: "{\"x\":1}".into()
                },
            ]
        );
    }
}
