//! The server process: health and readiness probes, and graceful shutdown on SIGTERM
//! that lets a plugin call in flight finish.

mod util;

use std::time::{Duration, Instant};

use serde_json::json;
use util::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_graceful_shutdown_finish_calls_in_flight() {
    let server = Server::start(&["echo-agent"]).await;
    assert_eq!(
        server.get("/healthz").await,
        (200, json!({ "status": "ok" }))
    );
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(ready["status"], "ready");
    let (status, body) = server.get("/v1/plugins/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");

    // A slow turn: 6 words, 150 ms apart (~750 ms).
    let url = format!("{}/v1/plugins/echo-agent/call", server.url);
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let r = util::http()
            .post(url)
            .json(&json!({
                "export": "run-turn",
                "input": { "session": "s", "input": "one two three four five six", "config": { "delay_ms": 150 } }
            }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        (status, body, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let exit = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    let (status, body, elapsed) = slow.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["text"], "one two three four five six");
    assert!(elapsed >= Duration::from_millis(700), "{elapsed:?}");
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_event_streams_do_not_block_shutdown() {
    let server = Server::start(&["echo-agent"]).await;
    server.post("/v1/sessions", &json!({ "key": "s" })).await;
    let mut bus = util::SseStream::connect(&format!("{}/v1/events", server.url), None).await;
    let mut session =
        util::SseStream::connect(&format!("{}/v1/sessions/s/events", server.url), None).await;
    assert!(
        session.next(Duration::from_secs(5)).await.is_some(),
        "snapshot"
    );
    let started = Instant::now();
    let exit = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    // Both streams end (the client would resume from its last id).
    assert!(bus.next(Duration::from_secs(5)).await.is_none());
    assert!(session.next(Duration::from_secs(5)).await.is_none());
}
