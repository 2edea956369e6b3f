//! The openai-agent adapter in a real server, against a fake OpenAI-compatible server
//! on loopback that speaks the real wire format: `POST /v1/chat/completions` answered
//! with `text/event-stream`, chunked, one `data: {chat.completion.chunk}` per delta,
//! then `data: [DONE]` — or an OpenAI-style error, or a connection cut mid-stream.

mod util;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::Notify;
use util::{Server, SseStream};

const KEY: &str = "sk-test-0123456789";
const PLUGIN: &str = "openai-agent";

/// One piece of a scripted SSE answer.
enum Frame {
    /// `data: <chunk>\n\n`, a whole event in one write.
    Data(Value),
    /// Bytes written as they are (comments, events split across writes).
    Raw(Vec<u8>),
    /// `data: [DONE]\n\n`.
    Done,
    /// Wait until the test opens the gate.
    Gate(Arc<Notify>),
    /// Drop the connection: no terminating chunk, no `[DONE]`.
    Cut,
}

/// The fake's answer to one request.
enum Reply {
    Sse(Vec<Frame>),
    Error {
        status: u16,
        headers: Vec<(&'static str, &'static str)>,
        body: String,
    },
}

/// A request the fake received.
#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    accept: Option<String>,
    content_type: Option<String>,
    body: Value,
}

#[derive(Clone, Default)]
struct Fake {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A fake OpenAI on 127.0.0.1; answers requests with the queued replies, in order.
struct FakeOpenAi {
    /// The base URL, `http://127.0.0.1:PORT/v1`.
    base_url: String,
    /// `127.0.0.1:PORT`.
    authority: String,
    state: Fake,
}

impl FakeOpenAi {
    async fn start(replies: Vec<Reply>) -> FakeOpenAi {
        let state = Fake::default();
        state.replies.lock().unwrap().extend(replies);
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(completions))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeOpenAi {
            base_url: format!("http://{authority}/v1"),
            authority,
            state,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The `messages` of each request, in order.
    fn sent_messages(&self) -> Vec<Value> {
        self.seen()
            .iter()
            .map(|s| s.body["messages"].clone())
            .collect()
    }
}

async fn completions(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    fake.seen.lock().unwrap().push(Seen {
        authorization: header("authorization"),
        accept: header("accept"),
        content_type: header("content-type"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let reply = fake.replies.lock().unwrap().pop_front();
    match reply {
        None => Response::builder()
            .status(500)
            .body(Body::from("the fake has no reply queued"))
            .unwrap(),
        Some(Reply::Error {
            status,
            headers,
            body,
        }) => {
            let mut response = Response::builder()
                .status(StatusCode::from_u16(status).unwrap())
                .header("content-type", "application/json");
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(Body::from(body)).unwrap()
        }
        Some(Reply::Sse(frames)) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
            tokio::spawn(async move {
                for frame in frames {
                    let bytes = match frame {
                        Frame::Data(chunk) => format!("data: {chunk}\n\n").into_bytes(),
                        Frame::Raw(bytes) => bytes,
                        Frame::Done => b"data: [DONE]\n\n".to_vec(),
                        Frame::Gate(gate) => {
                            gate.notified().await;
                            continue;
                        }
                        Frame::Cut => {
                            // An error from the body stream makes hyper drop the
                            // connection without the terminating chunk.
                            let _ = tx.send(Err(std::io::Error::other("cut"))).await;
                            return;
                        }
                    };
                    if tx.send(Ok(Bytes::from(bytes))).await.is_err() {
                        return;
                    }
                    // Each frame its own write on the wire.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            Response::builder()
                .header("content-type", "text/event-stream; charset=utf-8")
                .header("cache-control", "no-cache")
                .body(Body::from_stream(stream))
                .unwrap()
        }
    }
}

/// A `chat.completion.chunk` as OpenAI streams it, with `delta` for choice 0.
fn chunk(delta: Value, finish_reason: Option<&str>) -> Frame {
    Frame::Data(json!({
        "id": "chatcmpl-AbC123xyz",
        "object": "chat.completion.chunk",
        "created": 1_732_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [{
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
    }))
}

/// The first chunk of every OpenAI stream.
fn role() -> Frame {
    chunk(
        json!({ "role": "assistant", "content": "", "refusal": null }),
        None,
    )
}

fn text(t: &str) -> Frame {
    chunk(json!({ "content": t }), None)
}

fn finish(reason: &str) -> Frame {
    chunk(json!({}), Some(reason))
}

/// A streamed reply of `pieces`, finished normally.
fn reply_of(pieces: &[&str]) -> Reply {
    let mut frames = vec![role()];
    frames.extend(pieces.iter().map(|p| text(p)));
    frames.extend([finish("stop"), Frame::Done]);
    Reply::Sse(frames)
}

/// A server with a copy of openai-agent and `OPENAI_API_KEY` = `key` (or unset). With
/// `loopback`, the copy's `permissions.allowed_hosts` also lists 127.0.0.1 (the
/// shipped manifest allows only api.openai.com).
async fn start(key: Option<&str>, loopback: bool) -> Server {
    let server = Server::start_with_env(&[PLUGIN], &[("OPENAI_API_KEY", key)]).await;
    if loopback {
        let path = server.plugins_dir.join(PLUGIN).join("plugin.toml");
        let shipped = std::fs::read_to_string(&path).unwrap();
        let edited = shipped.replace(
            r#"allowed_hosts = ["api.openai.com"]"#,
            r#"allowed_hosts = ["api.openai.com", "127.0.0.1"]"#,
        );
        assert_ne!(
            edited, shipped,
            "the shipped manifest's allowed_hosts changed"
        );
        util::replace_file(&path, edited.as_bytes());
        // Reload now rather than wait for the watcher (which may get there first:
        // then this reload finds the new manifest already active).
        let (status, body) = server
            .post(&format!("/v1/plugins/{PLUGIN}/reload"), &json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body["outcome"] == "replaced" || body["outcome"] == "unchanged",
            "{body}"
        );
    }
    server
}

/// `run-turn` through `POST /v1/plugins/openai-agent/call`.
async fn run_turn(server: &Server, turn: Value) -> (u16, Value) {
    server.call(PLUGIN, "run-turn", turn).await
}

/// The message of an API error answer, after asserting it is the plugin's own error.
fn plugin_error(status: u16, body: &Value) -> String {
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "plugin_error", "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

fn events_of<'a>(out: &'a Value, kind: &str) -> Vec<&'a Value> {
    out["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_text_deltas_in_order_and_sends_the_conversation() {
    let fake = FakeOpenAi::start(vec![Reply::Sse(vec![
        Frame::Raw(b": OPENROUTER PROCESSING\n\n".to_vec()),
        role(),
        chunk(json!({ "reasoning_content": "They greet me." }), None),
        text("Hello"),
        text(", "),
        // One event split across two writes, in the middle of its JSON and of a
        // two-byte character.
        Frame::Raw(
            b"data: {\"id\":\"chatcmpl-AbC123xyz\",\"object\":\"chat.completion.chunk\",\
             \"created\":1732000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":\
             [{\"index\":0,\"delta\":{\"content\":\"w\xC3"
                .to_vec(),
        ),
        Frame::Raw(b"\xA9rld\"},\"logprobs\":null,\"finish_reason\":null}]}\r\n\r\n".to_vec()),
        text("!"),
        finish("stop"),
        // A usage chunk (no choices), as with stream_options.include_usage.
        Frame::Data(json!({
            "id": "chatcmpl-AbC123xyz", "object": "chat.completion.chunk",
            "created": 1_732_000_000, "model": "gpt-4o-mini-2024-07-18", "choices": [],
            "usage": { "prompt_tokens": 21, "completion_tokens": 5, "total_tokens": 26 },
        })),
        Frame::Done,
    ])])
    .await;
    let server = start(Some(KEY), true).await;

    let started = Instant::now();
    let (status, out) = run_turn(
        &server,
        json!({
            "session": "s1",
            "history": [
                { "role": "user", "content": "Who are you?" },
                { "role": "assistant", "content": "An assistant." },
            ],
            "input": "Say hello.",
            "config": {
                "base_url": fake.base_url,
                "model": "gpt-test-mini",
                "system_prompt": "Be brief.",
                "temperature": 0.2,
                "max_tokens": 50,
            },
        }),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    eprintln!("streamed turn took {:?}", started.elapsed());

    let deltas: Vec<&str> = events_of(&out, "text-delta")
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["Hello", ", ", "wérld", "!"]);
    let kinds: Vec<&str> = out["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "reasoning-delta",
            "text-delta",
            "text-delta",
            "text-delta",
            "text-delta",
            "message-complete"
        ]
    );
    assert_eq!(out["events"][0]["text"], "They greet me.");
    assert_eq!(out["events"][5]["text"], "Hello, wérld!");
    assert_eq!(
        out["result"],
        json!({ "text": "Hello, wérld!", "stop_reason": "complete" })
    );

    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some("Bearer sk-test-0123456789")
    );
    assert_eq!(seen[0].accept.as_deref(), Some("text/event-stream"));
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        seen[0].body,
        json!({
            "model": "gpt-test-mini",
            "messages": [
                { "role": "system", "content": "Be brief." },
                { "role": "user", "content": "Who are you?" },
                { "role": "assistant", "content": "An assistant." },
                { "role": "user", "content": "Say hello." },
            ],
            "stream": true,
            "temperature": 0.2,
            "max_tokens": 50,
        })
    );

    // Steering cannot reach a request in flight: the host queues it instead.
    let (status, steering) = server.call(PLUGIN, "supports-steering", json!({})).await;
    assert_eq!((status, steering), (200, json!(false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_deltas_become_tool_start_events() {
    let fragment = |index: u64, id: Option<&str>, name: Option<&str>, arguments: &str| {
        let mut call = json!({ "index": index, "function": { "arguments": arguments } });
        if let Some(id) = id {
            call["id"] = json!(id);
            call["type"] = json!("function");
        }
        if let Some(name) = name {
            call["function"]["name"] = json!(name);
        }
        chunk(json!({ "tool_calls": [call] }), None)
    };
    let fake = FakeOpenAi::start(vec![Reply::Sse(vec![
        chunk(
            json!({ "role": "assistant", "content": null, "tool_calls": [{
                "index": 0, "id": "call_W7xq", "type": "function",
                "function": { "name": "get_weather", "arguments": "" },
            }], "refusal": null }),
            None,
        ),
        fragment(0, None, None, "{\"ci"),
        fragment(0, None, None, "ty\": \"Par"),
        fragment(0, None, None, "is\", \"unit\": \"c\"}"),
        fragment(1, Some("call_Z9k2"), Some("get_time"), ""),
        fragment(1, None, None, "{\"tz\":\"Europe/Paris\"}"),
        finish("tool_calls"),
        Frame::Done,
    ])])
    .await;
    let server = start(Some(KEY), true).await;
    let tools = json!([
        { "type": "function", "function": { "name": "get_weather",
          "parameters": { "type": "object", "properties": { "city": { "type": "string" } } } } },
        { "type": "function", "function": { "name": "get_time",
          "parameters": { "type": "object", "properties": { "tz": { "type": "string" } } } } },
    ]);
    let (status, out) = run_turn(
        &server,
        json!({
            "session": "tools",
            "input": "Weather and time in Paris?",
            "config": { "base_url": fake.base_url, "tools": tools },
        }),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        out["events"],
        json!([
            { "type": "tool-start", "id": "call_W7xq", "name": "get_weather",
              "input": { "city": "Paris", "unit": "c" } },
            { "type": "tool-start", "id": "call_Z9k2", "name": "get_time",
              "input": { "tz": "Europe/Paris" } },
            { "type": "message-complete", "text": "" },
        ])
    );
    assert_eq!(
        out["result"],
        json!({ "text": "", "stop_reason": "complete" })
    );
    let body = &fake.seen()[0].body;
    assert_eq!(body["model"], "gpt-4o-mini", "the manifest's default model");
    assert_eq!(body["tools"], tools);
    assert_eq!(
        body["messages"],
        json!([{ "role": "user", "content": "Weather and time in Paris?" }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_name_the_status_and_the_server_message() {
    let fake = FakeOpenAi::start(vec![
        Reply::Error {
            status: 401,
            headers: vec![],
            body: json!({ "error": {
                "message": "Incorrect API key provided: sk-test-***6789. You can find your API key at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key",
            } })
            .to_string(),
        },
        Reply::Error {
            status: 429,
            headers: vec![
                ("retry-after", "20"),
                ("x-ratelimit-limit-requests", "3"),
                ("x-ratelimit-remaining-requests", "0"),
            ],
            body: json!({ "error": {
                "message": "Rate limit reached for gpt-4o-mini in organization org-test on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.",
                "type": "requests", "param": null, "code": "rate_limit_exceeded",
            } })
            .to_string(),
        },
        Reply::Error {
            status: 503,
            headers: vec![],
            body: "upstream connect error or disconnect/reset before headers".to_owned(),
        },
        Reply::Sse(vec![role(), text("ok"), Frame::Raw(b"data: {\"choices\": [\n\n".to_vec())]),
        // A server that ignores `stream: true`.
        Reply::Error {
            status: 200,
            headers: vec![],
            body: json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1_732_000_000,
                "model": "gpt-4o-mini", "choices": [{ "index": 0, "finish_reason": "stop",
                "message": { "role": "assistant", "content": "whole" } }],
            })
            .to_string(),
        },
        // A finish reason then a close without `[DONE]` is a whole reply.
        Reply::Sse(vec![role(), text("fine"), finish("length")]),
    ])
    .await;
    let server = start(Some(KEY), true).await;
    let turn = json!({ "session": "e", "input": "hi", "config": { "base_url": fake.base_url } });

    let (status, body) = run_turn(&server, turn.clone()).await;
    let message = plugin_error(status, &body);
    assert!(
        message.contains("HTTP 401") && message.contains("Incorrect API key provided"),
        "{message}"
    );

    let (status, body) = run_turn(&server, turn.clone()).await;
    let message = plugin_error(status, &body);
    assert!(
        message.contains("rate limited")
            && message.contains("HTTP 429")
            && message.contains("retry after 20 s")
            && message.contains("Rate limit reached for gpt-4o-mini"),
        "{message}"
    );

    let (status, body) = run_turn(&server, turn.clone()).await;
    let message = plugin_error(status, &body);
    assert!(
        message.contains("HTTP 503") && message.contains("upstream connect error"),
        "{message}"
    );

    let (status, body) = run_turn(&server, turn.clone()).await;
    let message = plugin_error(status, &body);
    assert!(
        message.contains("malformed JSON") && message.contains("{\"choices\": ["),
        "{message}"
    );

    let (status, body) = run_turn(&server, turn.clone()).await;
    let message = plugin_error(status, &body);
    assert!(
        message.contains("HTTP 200 with application/json instead of an event stream")
            && message.contains("chat.completion"),
        "{message}"
    );

    let (status, out) = run_turn(&server, turn).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        out["result"],
        json!({ "text": "fine", "stop_reason": "max-tokens" })
    );

    // Error answers are the plugin's answers, not faults.
    let summary = server.plugin(PLUGIN).await;
    assert_eq!(
        (summary["status"].as_str(), summary["faults"].as_u64()),
        (Some("ready"), Some(0)),
        "{summary}"
    );
    assert_eq!(fake.seen().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_an_error_with_the_partial_length() {
    let cut_reply = || Reply::Sse(vec![role(), text("Hello"), text(", wor"), Frame::Cut]);
    let fake = FakeOpenAi::start(vec![cut_reply(), cut_reply()]).await;
    let server = start(Some(KEY), true).await;
    let expected = format!(
        "the connection to {} was cut mid-response after 10 characters",
        fake.authority
    );

    // Through the call API: the turn's error.
    let (status, body) = run_turn(
        &server,
        json!({ "session": "c", "input": "hi", "config": { "base_url": fake.base_url } }),
    )
    .await;
    let message = plugin_error(status, &body);
    assert!(message.contains(&expected), "{message}");

    // Through a session: the deltas before the cut, an error event, a failed turn.
    let (status, body) = server
        .post(
            "/v1/sessions",
            &json!({ "key": "cut", "adapter": PLUGIN, "config": { "base_url": fake.base_url } }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut sse = SseStream::connect(&format!("{}/v1/sessions/cut/events", server.url), None).await;
    send(&server, "cut", "hi").await;
    let mut deltas = Vec::new();
    let mut error_event = None;
    let finished = loop {
        let msg = sse
            .next(Duration::from_secs(30))
            .await
            .expect("the turn finishes");
        let event: Value = serde_json::from_str(&msg.data).unwrap();
        match msg.event.as_deref() {
            Some("switchyard.session.turn.text_delta") => {
                deltas.push(event["data"]["text"].clone())
            }
            Some("switchyard.session.turn.error") => error_event = Some(event["data"].clone()),
            Some("switchyard.session.turn.finished") => break event["data"].clone(),
            _ => {}
        }
    };
    assert_eq!(deltas, [json!("Hello"), json!(", wor")]);
    let error_event = error_event.expect("an error event");
    assert!(
        error_event["message"].as_str().unwrap().contains(&expected),
        "{error_event}"
    );
    assert_eq!(finished["status"], "failed", "{finished}");
    assert!(
        finished["error"].as_str().unwrap().contains(&expected),
        "{finished}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_plugin_loads_without_a_key_and_says_how_to_set_it() {
    let server = start(None, false).await;
    let summary = server.plugin(PLUGIN).await;
    assert_eq!(summary["status"], "ready", "{summary}");
    assert_eq!(summary["kind"], "agent-adapter", "{summary}");

    let (status, body) = run_turn(&server, json!({ "session": "k", "input": "hi" })).await;
    assert_eq!(
        plugin_error(status, &body),
        "plugin `openai-agent`: openai-agent needs an API key: set the OPENAI_API_KEY \
         environment variable (secret `api_key`)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_off_the_allow_list_is_refused() {
    let fake = FakeOpenAi::start(vec![reply_of(&["never sent"])]).await;
    // The shipped manifest: only api.openai.com.
    let server = start(Some(KEY), false).await;
    let (status, body) = run_turn(
        &server,
        json!({ "session": "d", "input": "hi", "config": { "base_url": fake.base_url } }),
    )
    .await;
    let message = plugin_error(status, &body);
    assert!(
        message.contains(&format!("outbound HTTP to {} was denied", fake.authority))
            && message.contains("add \"127.0.0.1\" to permissions.allowed_hosts"),
        "{message}"
    );
    assert!(fake.seen().is_empty(), "nothing reached the server");
}

/// The session's history (oldest first) as `(role, text)`.
async fn history(server: &Server, key: &str) -> Vec<(String, String)> {
    let (status, h) = server.get(&format!("/v1/sessions/{key}/history")).await;
    assert_eq!(status, 200, "{h}");
    h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Create session `key` on the adapter, talking to `fake`.
async fn create_session(server: &Server, fake: &FakeOpenAi, key: &str) {
    let config = json!({ "base_url": fake.base_url, "model": "gpt-session" });
    let (status, body) = server
        .post(
            "/v1/sessions",
            &json!({ "key": key, "adapter": PLUGIN, "config": config }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Queue `text` on session `key`.
async fn send(server: &Server, key: &str, text: &str) {
    let (status, body) = server
        .post(
            &format!("/v1/sessions/{key}/messages"),
            &json!({ "text": text }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

/// Poll the history until it has `n` messages.
async fn wait_history(server: &Server, key: &str, n: usize) -> Vec<(String, String)> {
    let start = Instant::now();
    loop {
        let h = history(server, key).await;
        if h.len() >= n {
            return h;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "history never reached {n} messages: {h:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_streams_each_delta_as_it_arrives_and_sends_its_history() {
    // The first reply stops after "Hi" until the test has seen that delta: a plugin
    // that buffered the whole body would never show it.
    let gate = Arc::new(Notify::new());
    let fake = FakeOpenAi::start(vec![
        Reply::Sse(vec![
            role(),
            text("Hi"),
            Frame::Gate(gate.clone()),
            text(" there"),
            finish("stop"),
            Frame::Done,
        ]),
        reply_of(&["Second", " answer."]),
    ])
    .await;
    let server = start(Some(KEY), true).await;
    create_session(&server, &fake, "chat").await;
    let mut sse =
        SseStream::connect(&format!("{}/v1/sessions/chat/events", server.url), None).await;

    send(&server, "chat", "Hello?").await;
    let first = loop {
        let msg = sse
            .next(Duration::from_secs(30))
            .await
            .expect("the first delta streams before the reply is over");
        if msg.event.as_deref() == Some("switchyard.session.turn.text_delta") {
            break serde_json::from_str::<Value>(&msg.data).unwrap();
        }
        assert_ne!(
            msg.event.as_deref(),
            Some("switchyard.session.turn.finished"),
            "{}",
            msg.data
        );
    };
    assert_eq!(first["data"]["text"], "Hi");
    let (_, snapshot) = server.get("/v1/sessions/chat").await;
    assert_eq!(snapshot["processing"], true, "{snapshot}");
    gate.notify_one();

    let h = wait_history(&server, "chat", 2).await;
    assert_eq!(
        h,
        [
            ("user".to_owned(), "Hello?".to_owned()),
            ("assistant".to_owned(), "Hi there".to_owned()),
        ]
    );

    send(&server, "chat", "And again?").await;
    let h = wait_history(&server, "chat", 4).await;
    assert_eq!(h[3], ("assistant".to_owned(), "Second answer.".to_owned()));

    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        assert_eq!(request.body["model"], "gpt-session");
        assert_eq!(request.body["stream"], true);
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer sk-test-0123456789")
        );
    }
    assert_eq!(
        seen[0].body["messages"],
        json!([{ "role": "user", "content": "Hello?" }])
    );
    assert_eq!(
        seen[1].body["messages"],
        json!([
            { "role": "user", "content": "Hello?" },
            { "role": "assistant", "content": "Hi there" },
            { "role": "user", "content": "And again?" },
        ])
    );
}

/// The worker keeps the session's history between turns (it does not read it from the
/// store for each one); a reset must still empty what the next turn is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reset_the_next_turns_send_only_what_followed_it() {
    let fake = FakeOpenAi::start(vec![reply_of(&["A"]), reply_of(&["B"]), reply_of(&["C"])]).await;
    let server = start(Some(KEY), true).await;
    create_session(&server, &fake, "r").await;
    let send = |text| send(&server, "r", text);
    send("One").await;
    wait_history(&server, "r", 2).await;
    let (status, body) = server.post("/v1/sessions/r/reset", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(history(&server, "r").await, []);

    send("Two").await;
    wait_history(&server, "r", 2).await;
    send("Three").await;
    wait_history(&server, "r", 4).await;

    assert_eq!(
        fake.sent_messages(),
        [
            json!([{ "role": "user", "content": "One" }]),
            json!([{ "role": "user", "content": "Two" }]),
            json!([
                { "role": "user", "content": "Two" },
                { "role": "assistant", "content": "B" },
                { "role": "user", "content": "Three" },
            ]),
        ]
    );
}

/// `[adapter] history` in the manifest caps the history a turn sends, and a reload of
/// the manifest changes it for the next turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_caps_the_history_a_turn_takes() {
    let fake = FakeOpenAi::start(["A", "B", "C", "D"].map(|t| reply_of(&[t])).into()).await;
    let server = start(Some(KEY), true).await;
    let take_history = |n: usize| {
        let server = &server;
        async move {
            let path = server.plugins_dir.join(PLUGIN).join("plugin.toml");
            let shipped = std::fs::read_to_string(&path).unwrap();
            let without = shipped
                .split("[adapter]")
                .next()
                .unwrap()
                .trim_end()
                .to_owned();
            util::replace_file(
                &path,
                format!("{without}\n\n[adapter]\nhistory = {n}\n").as_bytes(),
            );
            let (status, body) = server
                .post(&format!("/v1/plugins/{PLUGIN}/reload"), &json!({}))
                .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    take_history(2).await;
    create_session(&server, &fake, "h").await;
    let send = |text, n| {
        let server = &server;
        async move {
            send(server, "h", text).await;
            wait_history(server, "h", n).await;
        }
    };
    send("One", 2).await;
    send("Two", 4).await;
    send("Three", 6).await;
    take_history(0).await;
    send("Four", 8).await;

    let user = |text: &str| json!({ "role": "user", "content": text });
    let assistant = |text: &str| json!({ "role": "assistant", "content": text });
    assert_eq!(
        fake.sent_messages(),
        [
            json!([user("One")]),
            json!([user("One"), assistant("A"), user("Two")]),
            json!([user("Two"), assistant("B"), user("Three")]),
            json!([user("Four")]),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_stops_the_turn_while_the_server_is_silent() {
    // The server sends "Partial" and then nothing (the gate never opens).
    let gate = Arc::new(Notify::new());
    let fake = FakeOpenAi::start(vec![Reply::Sse(vec![
        role(),
        text("Partial"),
        Frame::Gate(gate.clone()),
        text(" never"),
        finish("stop"),
        Frame::Done,
    ])])
    .await;
    let server = start(Some(KEY), true).await;
    let (status, body) = server
        .post(
            "/v1/sessions",
            &json!({ "key": "stop", "adapter": PLUGIN, "config": { "base_url": fake.base_url } }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut sse =
        SseStream::connect(&format!("{}/v1/sessions/stop/events", server.url), None).await;
    send(&server, "stop", "Go on.").await;
    loop {
        let msg = sse.next(Duration::from_secs(30)).await.expect("a delta");
        if msg.event.as_deref() == Some("switchyard.session.turn.text_delta") {
            break;
        }
    }

    let asked = Instant::now();
    let (status, body) = server.post("/v1/sessions/stop/abort", &json!({})).await;
    assert_eq!((status, &body["aborted"]), (200, &json!(true)), "{body}");
    let finished = loop {
        let msg = sse
            .next(Duration::from_secs(30))
            .await
            .expect("the turn ends");
        if msg.event.as_deref() == Some("switchyard.session.turn.finished") {
            break serde_json::from_str::<Value>(&msg.data).unwrap()["data"].clone();
        }
    };
    // The adapter noticed by itself (it checks every 100 ms while waiting), well
    // before the host's grace period would have cut it off.
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(
        (
            &finished["status"],
            &finished["stop_reason"],
            &finished["text"]
        ),
        (&json!("aborted"), &json!("aborted"), &json!("Partial")),
        "{finished}"
    );
    assert!(finished["error"].is_null(), "{finished}");
}
