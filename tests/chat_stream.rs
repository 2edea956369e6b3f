//! The chat endpoint read by the real Vercel AI SDK (`ai` from npm, tests/js): the
//! stream parses with the SDK's own transport and chunk schemas and assembles into the
//! assistant message.

mod util;

use std::process::Command;

use serde_json::{Value, json};
use util::Server;

fn read_with_sdk(url: &str, text: &str) -> Value {
    let js = util::repo().join("tests/js");
    assert!(
        js.join("node_modules/ai").exists(),
        "tests/js/node_modules is missing: run `npm ci --prefix tests/js` (scripts/test.sh does)"
    );
    let out = Command::new("node")
        .env("SWITCHYARD_TOKEN", util::ADMIN_TOKEN)
        .arg(js.join("read-chat-stream.mjs"))
        .args([url, text])
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "the AI SDK could not read the stream: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ai_sdk_reads_a_turn_as_a_ui_message() {
    let server = Server::start(&["echo-agent"]).await;
    let url = format!("{}/v1/sessions/web-1/chat", server.url);
    let url2 = url.clone();
    let read = tokio::task::spawn_blocking(move || read_with_sdk(&url2, "hello from the browser"))
        .await
        .unwrap();
    let types: Vec<&str> = read["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"start"));
    assert_eq!(types[1], "text-start");
    assert_eq!(&types[types.len() - 2..], ["text-end", "finish"]);
    assert_eq!(
        types.iter().filter(|t| **t == "text-delta").count(),
        4,
        "{types:?}"
    );
    let message = &read["message"];
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["parts"][0]["type"], "text");
    assert_eq!(message["parts"][0]["text"], "hello from the browser");
    assert_eq!(message["parts"][0]["state"], "done");

    // The session was created with the default adapter and keeps the exchange.
    let (status, s) = server.get("/v1/sessions/web-1").await;
    assert_eq!(status, 200);
    assert_eq!(s["adapter"], "echo-agent");
    let (_, h) = server.get("/v1/sessions/web-1/history").await;
    assert_eq!(h["messages"].as_array().unwrap().len(), 2);

    // A second turn on the same session.
    let read = tokio::task::spawn_blocking(move || read_with_sdk(&url, "again"))
        .await
        .unwrap();
    assert_eq!(read["message"]["parts"][0]["text"], "again");

    // Bad requests are plain JSON errors, before any stream starts.
    let (status, body) = server
        .post(
            "/v1/sessions/web-1/chat",
            &json!({ "messages": [{ "role": "assistant", "parts": [] }] }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "messages");
    let (status, body) = server
        .post("/v1/sessions/web-1/chat", &json!({ "messages": "hi" }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "messages", "{body}");
}
