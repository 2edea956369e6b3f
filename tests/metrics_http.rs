//! `/metrics` on a live server: after real traffic (HTTP requests, a session turn on
//! a plugin, a plugin that traps, a lease that runs out, bus events and a subscriber)
//! every family the issue names is exposed, with the right labels and counts.

mod util;

use std::time::{Duration, Instant};

use serde_json::json;
use util::{Server, SseStream};

/// The value of the sample `name{labels}` (labels as exposed, sorted by the exporter).
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn scrape(server: &Server) -> String {
    let r = util::http()
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        r.headers()
    );
    r.text().await.unwrap()
}

#[tokio::test]
async fn metrics_cover_http_sessions_queues_bus_and_plugins() {
    let server = Server::start(&["echo-agent", "hostile"]).await;
    let mut events =
        SseStream::connect(&format!("{}/v1/events?topic=queue.>", server.url), None).await;

    // A session turn through the echo agent.
    let (status, _) = server
        .post(
            "/v1/sessions",
            &json!({ "key": "m1", "adapter": "echo-agent" }),
        )
        .await;
    assert_eq!(status, 201);
    let (status, queued) = server
        .post(
            "/v1/sessions/m1/messages",
            &json!({ "text": "hello metrics" }),
        )
        .await;
    assert_eq!(status, 202, "{queued}");

    // A plugin call that traps.
    let (status, _) = server
        .post(
            "/v1/plugins/hostile/call",
            &json!({ "export": "evaluate", "input": {
                "event": { "topic": "t.x", "type": "t", "source": "test", "data": {} },
                "params": { "mode": "panic" } } }),
        )
        .await;
    assert_eq!(status, 502);

    // A lease that runs out, and a second item left pending.
    for n in 0..2 {
        let (status, _) = server
            .post("/v1/queues/jobs/items", &json!({ "payload": { "n": n } }))
            .await;
        assert_eq!(status, 201);
    }
    let (status, _) = server
        .post(
            "/v1/queues/jobs/claim",
            &json!({ "worker": "w", "lease": "200ms" }),
        )
        .await;
    assert_eq!(status, 200);
    assert!(events.next(Duration::from_secs(5)).await.is_some());

    let start = Instant::now();
    let text = loop {
        let text = scrape(&server).await;
        let expired = sample(
            &text,
            "switchyard_queue_lease_expiries_total{queue=\"jobs\"}",
        );
        let turns = sample(
            &text,
            "switchyard_plugin_call_duration_seconds_count{plugin=\"echo-agent\",export=\"run-turn\"}",
        );
        // The counter moves inside the reaper's write, the item's status with its
        // commit: wait for both.
        let timed_out = sample(
            &text,
            "switchyard_queue_items{queue=\"jobs\",status=\"timed_out\"}",
        );
        if expired == Some(1.0) && timed_out == Some(1.0) && turns.is_some_and(|n| n >= 1.0) {
            break text;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert!(
        sample(
            &text,
            "switchyard_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/queues/{queue}/items\",status=\"201\"}"
        ) == Some(2.0),
        "{text}"
    );
    assert!(text.contains("switchyard_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/queues/{queue}/claim\",status=\"200\",le=\"0.005\"}"));
    assert_eq!(
        sample(
            &text,
            "switchyard_plugin_call_failures_total{plugin=\"hostile\",export=\"evaluate\",code=\"trap\"}"
        ),
        Some(1.0),
        "{text}"
    );
    // The expired item is retryable again (timed_out) and the other still pending.
    assert_eq!(
        sample(
            &text,
            "switchyard_queue_items{queue=\"jobs\",status=\"timed_out\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "switchyard_queue_items{queue=\"jobs\",status=\"pending\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "switchyard_queue_items{queue=\"jobs\",status=\"dead\"}"
        ),
        Some(0.0)
    );
    assert!(
        sample(&text, "switchyard_bus_events_total").is_some_and(|n| n >= 5.0),
        "{text}"
    );
    assert!(
        sample(&text, "switchyard_bus_subscribers").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(&text, "switchyard_bus_subscriber_lag_events_count").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(sample(&text, "switchyard_sessions_active").is_some());
    assert!(sample(&text, "switchyard_session_messages{status=\"queued\"}").is_some());
    assert!(text.contains("# TYPE switchyard_http_request_duration_seconds histogram"));
}
