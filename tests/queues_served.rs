//! Queues served by plugins inside the runtime (`[queues.NAME]` in switchyard.toml):
//! an agent adapter answers each item with a turn; a connector delivers it, and its
//! failures go through the same retries and dead letters as a remote worker's.

mod util;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::Server;

async fn start(config: &str, plugins: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, config).unwrap();
    let server = Server::start_with_env(
        plugins,
        &[("SWITCHYARD_CONFIG", Some(path.to_str().unwrap()))],
    )
    .await;
    (server, dir)
}

async fn enqueue(server: &Server, queue: &str, body: Value) -> String {
    let (status, item) = server
        .post(&format!("/v1/queues/{queue}/items"), &body)
        .await;
    assert_eq!(status, 201, "{item}");
    item["id"].as_str().unwrap().to_owned()
}

/// Poll item `id` until its status is `status`.
async fn wait_status(server: &Server, queue: &str, id: &str, status: &str) -> Value {
    let start = Instant::now();
    loop {
        let (_, item) = server.get(&format!("/v1/queues/{queue}/items/{id}")).await;
        if item["status"] == status {
            return item;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "item never {status}: {item}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_agent_adapter_serves_a_queue_with_turns() {
    let (server, _config) = start(
        "[queues.summaries]\nplugin = \"echo-agent\"\nconcurrency = 2\n",
        &["echo-agent"],
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = enqueue(
            &server,
            "summaries",
            json!({ "payload": { "text": format!("hello number {n}") } }),
        )
        .await;
        ids.push(id);
    }
    let named = enqueue(
        &server,
        "summaries",
        json!({ "payload": { "text": "in a named session", "session": "kept" } }),
    )
    .await;
    let bad = enqueue(
        &server,
        "summaries",
        json!({ "payload": { "txt": "typo" } }),
    )
    .await;

    for (n, id) in ids.iter().enumerate() {
        let item = wait_status(&server, "summaries", id, "succeeded").await;
        assert!(
            item["worker"]
                .as_str()
                .unwrap()
                .starts_with("plugin:echo-agent#"),
            "{item}"
        );
        assert_eq!(item["attempts"], 1);
        let reply = item["result"]["reply"].as_str().unwrap();
        assert!(reply.contains(&format!("hello number {n}")), "{item}");
        // The turn is an ordinary session, with its history.
        let session = item["result"]["session"].as_str().unwrap();
        let (status, history) = server.get(&format!("/v1/sessions/{session}/history")).await;
        assert_eq!(status, 200, "{history}");
    }
    let item = wait_status(&server, "summaries", &named, "succeeded").await;
    assert_eq!(item["result"]["session"], "kept");

    // A payload of the wrong shape is not retried.
    let item = wait_status(&server, "summaries", &bad, "dead").await;
    assert_eq!(item["attempts"], 1);
    assert!(
        item["error"]
            .as_str()
            .unwrap()
            .contains("missing field `text`"),
        "{item}"
    );
}

#[tokio::test]
async fn a_connector_that_cannot_deliver_retries_then_dead_letters() {
    let (server, _config) = start(
        "[queues.outbox]\nplugin = \"webhook-json\"\nlease_secs = 10\n",
        &["webhook-json"],
    )
    .await;
    let id = enqueue(
        &server,
        "outbox",
        json!({ "payload": { "text": "ship it", "target": { "channel": "x" } }, "max_attempts": 2 }),
    )
    .await;
    let item = wait_status(&server, "outbox", &id, "dead").await;
    assert_eq!(item["attempts"], 2, "{item}");
    assert!(
        item["error"]
            .as_str()
            .unwrap()
            .contains("no outbound channel"),
        "{item}"
    );
    let (_, dead) = server.get("/v1/queues/outbox/dead").await;
    assert_eq!(dead["items"][0]["id"], id.as_str());
}
