//! Sessions through real HTTP on loopback, driving the real echo-agent component.

mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::{Server, SseStream};

async fn create(server: &Server, key: &str, config: Value) -> Value {
    let (status, body) = server
        .post("/v1/sessions", &json!({ "key": key, "config": config }))
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn send(server: &Server, key: &str, text: &str) -> (u16, Value) {
    server
        .post(
            &format!("/v1/sessions/{key}/messages"),
            &json!({ "text": text }),
        )
        .await
}

/// Wait until nothing is queued or processing.
async fn idle(server: &Server, key: &str) -> Value {
    let start = Instant::now();
    loop {
        let (_, s) = server.get(&format!("/v1/sessions/{key}")).await;
        if s["queue_depth"] == 0 && s["processing"] == false {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "session never went idle: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn history(server: &Server, key: &str) -> Vec<Value> {
    let (status, h) = server
        .get(&format!("/v1/sessions/{key}/history?limit=1000"))
        .await;
    assert_eq!(status, 200, "{h}");
    h["messages"].as_array().unwrap().clone()
}

/// Read SSE messages until one of type `event_type` arrives.
async fn until(sse: &mut SseStream, event_type: &str) -> Value {
    loop {
        let msg = sse
            .next(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no {event_type}"));
        if msg.event.as_deref() == Some(event_type) {
            return serde_json::from_str(&msg.data).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_errors_and_fifo_order_under_concurrent_senders() {
    let server = Arc::new(Server::start(&["echo-agent"]).await);
    let s = create(&server, "fifo", json!({})).await;
    assert_eq!(s["adapter"], "echo-agent", "the default adapter");
    assert_eq!(s["queue_depth"], 0);

    // Errors: duplicate, unknown session, bad JSON naming the field, unknown adapter.
    let (status, body) = server.post("/v1/sessions", &json!({ "key": "fifo" })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("exists"))
    );
    let (status, body) = send(&server, "nope", "hi").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server
        .post("/v1/sessions/fifo/messages", &json!({ "text": 42 }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "text", "{body}");
    let (status, body) = server
        .post("/v1/sessions/fifo/messages", &json!({ "txt": "x" }))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = server
        .post("/v1/sessions", &json!({ "adapter": "nope" }))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("adapter")),
        "{body}"
    );

    // Four senders, ten messages each, at once.
    let mut senders = Vec::new();
    for s in 0..4 {
        let server = server.clone();
        senders.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..10 {
                let (status, body) = send(&server, "fifo", &format!("sender{s} message{i}")).await;
                assert_eq!(status, 202, "{body}");
                ids.push(body["id"].as_str().unwrap().to_owned());
            }
            ids
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    idle(&server, "fifo").await;
    let h = history(&server, "fifo").await;
    assert_eq!(h.len(), 80, "40 messages and 40 replies");
    // Turns ran one at a time, in queue order: each reply right after its message.
    for pair in h.chunks(2) {
        assert_eq!(pair[0]["role"], "user");
        assert_eq!(pair[1]["role"], "assistant");
        assert_eq!(pair[0]["text"], pair[1]["text"], "{pair:?}");
        assert_eq!(pair[0]["status"], "done");
    }
    // Each sender's messages were answered in the order it sent them.
    for s in 0..4 {
        let mine: Vec<&str> = h
            .iter()
            .filter(|m| m["role"] == "user")
            .filter_map(|m| m["text"].as_str())
            .filter(|t| t.starts_with(&format!("sender{s} ")))
            .collect();
        let expected: Vec<String> = (0..10).map(|i| format!("sender{s} message{i}")).collect();
        assert_eq!(mine, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_steer_both_ways_and_queue_full() {
    let server = Server::start(&["echo-agent"]).await;
    // 100 ms between words: a 30-word message takes ~3 s.
    let s = create(&server, "slow", json!({ "delay_ms": 100 })).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let long: String = (0..30).map(|i| format!("w{i} ")).collect();
    let mut sse =
        SseStream::connect(&format!("{}/v1/sessions/slow/events", server.url), None).await;
    let snapshot = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(snapshot.event.as_deref(), Some("snapshot"));

    // Steering while idle has no turn to go to: it is queued as a follow-up.
    // (Sent first, so the queue is: the follow-up, then the long message.)
    let (status, body) = server
        .post("/v1/sessions/slow/steer", &json!({ "text": "hello" }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "queued");
    let finished = until(&mut sse, "switchyard.session.turn.finished").await;
    assert_eq!(finished["data"]["text"], "hello");

    // Steering a running turn that takes it.
    send(&server, "slow", &long).await;
    until(&mut sse, "switchyard.session.turn.started").await;
    until(&mut sse, "switchyard.session.turn.text_delta").await;
    let (_, body) = server
        .post("/v1/sessions/slow/steer", &json!({ "text": "go left" }))
        .await;
    assert_eq!(body["outcome"], "steered", "{body}");
    let finished = until(&mut sse, "switchyard.session.turn.finished").await;
    assert_eq!(finished["data"]["status"], "done");
    assert!(
        finished["data"]["text"]
            .as_str()
            .unwrap()
            .contains("[steered: go left]"),
        "{finished}"
    );

    // Abort: the adapter sees it between words and stops.
    send(&server, "slow", &long).await;
    until(&mut sse, "switchyard.session.turn.text_delta").await;
    let asked = Instant::now();
    let (_, body) = server.post("/v1/sessions/slow/abort", &json!({})).await;
    assert_eq!(body["aborted"], true);
    let finished = until(&mut sse, "switchyard.session.turn.finished").await;
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "abort took {:?}",
        asked.elapsed()
    );
    assert_eq!(finished["data"]["status"], "aborted");
    assert_eq!(finished["data"]["stop_reason"], "aborted");
    assert!(finished["data"]["text"].as_str().unwrap().len() < long.len());
    assert_eq!(finished["topic"], format!("session.{id}.turn.finished"));
    let (_, body) = server.post("/v1/sessions/slow/abort", &json!({})).await;
    assert_eq!(body["aborted"], false, "nothing running now");

    // Queue full: one turn running, then 64 queued, then 429.
    send(&server, "slow", &long).await;
    until(&mut sse, "switchyard.session.turn.started").await;
    for i in 0..64 {
        let (status, body) = send(&server, "slow", &format!("q{i}")).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["position"], i + 1);
    }
    let (status, body) = send(&server, "slow", "one too many").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "queue_full");
    let (_, snap) = server.get("/v1/sessions/slow").await;
    assert_eq!(snap["queue_depth"], 64);
    assert_eq!(snap["processing"], true);

    // Reset drops the queue and the history.
    let (_, body) = server.post("/v1/sessions/slow/reset", &json!({})).await;
    assert_eq!(body["dropped_messages"], 64);
    let s = idle(&server, "slow").await;
    assert_eq!(s["queue_depth"], 0);
    assert!(history(&server, "slow").await.is_empty());

    // Delete.
    let r = util::http()
        .delete(format!("{}/v1/sessions/slow", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(server.get("/v1/sessions/slow").await.0, 404);

    // The deleted session's worker may still be in memory; its key is forgotten
    // anyway: a message to it is refused, and a new session of that key is a new one.
    assert_eq!(send(&server, "slow", "anyone?").await.0, 404);
    let again = create(&server, "slow", json!({ "prefix": "new: " })).await;
    assert_ne!(again["id"].as_str(), Some(id.as_str()));
    assert_eq!(send(&server, "slow", "fresh start").await.0, 202);
    let s = idle(&server, "slow").await;
    assert_eq!(s["id"], again["id"]);
    let texts: Vec<Value> = history(&server, "slow")
        .await
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, [json!("fresh start"), json!("new: fresh start")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_events_resume_with_last_event_id() {
    let server = Server::start(&["echo-agent"]).await;
    create(&server, "ev", json!({})).await;
    let url = format!("{}/v1/sessions/ev/events", server.url);
    let mut sse = SseStream::connect(&url, None).await;
    assert_eq!(
        sse.next(Duration::from_secs(5))
            .await
            .unwrap()
            .event
            .as_deref(),
        Some("snapshot")
    );
    send(&server, "ev", "one two").await;
    let finished = until(&mut sse, "switchyard.session.turn.finished").await;
    let last_id = finished["seq"].to_string();
    drop(sse);
    send(&server, "ev", "three four").await;
    idle(&server, "ev").await;
    // Reconnect: snapshot, then exactly the events of the second message.
    let mut sse = SseStream::connect(&url, Some(&last_id)).await;
    assert_eq!(
        sse.next(Duration::from_secs(5))
            .await
            .unwrap()
            .event
            .as_deref(),
        Some("snapshot")
    );
    let mut kinds = Vec::new();
    let mut text = String::new();
    while let Some(msg) = sse.next(Duration::from_millis(500)).await {
        let e: Value = serde_json::from_str(&msg.data).unwrap();
        if msg.event.as_deref() == Some("switchyard.session.turn.text_delta") {
            text.push_str(e["data"]["text"].as_str().unwrap());
        }
        kinds.push(msg.event.unwrap());
    }
    assert_eq!(text, "three four");
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("switchyard.session.message.queued")
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("switchyard.session.turn.finished")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_survive_a_kill_and_the_cut_turn_is_interrupted() {
    let server = Server::start(&["echo-agent"]).await;
    create(&server, "crash", json!({ "delay_ms": 100 })).await;
    let long: String = (0..50).map(|i| format!("w{i} ")).collect();
    send(&server, "crash", &long).await;
    for i in 0..3 {
        assert_eq!(send(&server, "crash", &format!("after{i}")).await.0, 202);
    }
    // Wait for the long turn to be running, then kill -9.
    let start = Instant::now();
    loop {
        let (_, s) = server.get("/v1/sessions/crash").await;
        if s["processing"] == true {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = server.kill_and_restart().await;
    idle(&server, "crash").await;
    let h = history(&server, "crash").await;
    let summary: Vec<(String, String, String)> = h
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["status"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().chars().take(6).collect(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        summary,
        vec![
            s("user", "interrupted", "w0 w1 "),
            s("user", "done", "after0"),
            s("assistant", "done", "after0"),
            s("user", "done", "after1"),
            s("assistant", "done", "after1"),
            s("user", "done", "after2"),
            s("assistant", "done", "after2"),
        ]
    );
    // The interruption is on the bus.
    let mut sse = SseStream::connect(
        &format!(
            "{}/v1/events?topic=session.*.turn.interrupted&after=0",
            server.url
        ),
        None,
    )
    .await;
    let msg = sse
        .next(Duration::from_secs(5))
        .await
        .expect("an interrupted event");
    let e: Value = serde_json::from_str(&msg.data).unwrap();
    assert_eq!(e["data"]["message_id"], h[0]["id"]);
}
