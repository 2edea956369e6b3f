//! Graceful shutdown under load: a real server gets SIGTERM while clients send messages
//! to sessions and publish events. It drains every stage in order and exits 0 with no
//! task left behind (its last line on stdout says so); after a restart, every request
//! that got a 2xx is found, and every accepted message is answered: turns in flight
//! finished before the exit, and queued messages resume.

mod util;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::{Server, SseStream};

const SESSIONS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_every_stage_and_loses_nothing() {
    let server = Server::start(&["echo-agent"]).await;
    for s in 0..SESSIONS {
        // A little delay per word keeps turns in flight when the signal lands.
        let (status, body) = server
            .post(
                "/v1/sessions",
                &json!({ "key": format!("g{s}"), "config": { "delay_ms": 2 } }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let load = util::Load::start(&server.url, "g", SESSIONS, 8);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopping = Instant::now();
    let (exit, printed, server) = server.terminate_and_restart().await;
    let took = stopping.elapsed();
    assert!(exit.success(), "exit status {exit:?}");
    assert_eq!(
        printed.last().map(String::as_str),
        Some("switchyard stopped: every stage drained"),
        "stdout after the first line: {printed:?}"
    );
    let acked = load.finish().await;
    assert!(
        acked.messages.len() > 50,
        "too little load to show anything: {}",
        acked.messages.len()
    );

    // Every session drains after the restart.
    let start = Instant::now();
    for s in 0..SESSIONS {
        loop {
            let (_, snap) = server.get(&format!("/v1/sessions/g{s}")).await;
            if snap["queue_depth"] == 0 && snap["processing"] == false {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "g{s} never drained: {snap}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Every acknowledged message is in its session, answered: a graceful stop lets the
    // turns in flight finish, so none is interrupted.
    let mut found = HashSet::new();
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for s in 0..SESSIONS {
        let (_, h) = server
            .get(&format!("/v1/sessions/g{s}/history?limit=10000"))
            .await;
        let messages = h["messages"].as_array().unwrap();
        for (i, m) in messages.iter().enumerate() {
            if m["role"] != "user" {
                continue;
            }
            let status = m["status"].as_str().unwrap().to_owned();
            if status == "done" {
                assert_eq!(messages[i + 1]["role"], "assistant");
                assert_eq!(messages[i + 1]["text"], m["text"]);
            }
            *statuses.entry(status).or_default() += 1;
            found.insert(m["id"].as_str().unwrap().to_owned());
        }
    }
    let missing: Vec<_> = acked
        .messages
        .keys()
        .filter(|id| !found.contains(*id))
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert_eq!(
        statuses.keys().collect::<Vec<_>>(),
        ["done"],
        "{statuses:?}"
    );

    // Every published event is in the log.
    let mut log = SseStream::connect(&format!("{}/v1/events?after=0", server.url), None).await;
    let mut seen = HashMap::new();
    while let Some(msg) = log.next(Duration::from_millis(1000)).await {
        let e: Value = serde_json::from_str(&msg.data).unwrap();
        seen.insert(
            e["seq"].as_u64().unwrap(),
            e["id"].as_str().unwrap().to_owned(),
        );
    }
    for (seq, id) in &acked.events {
        assert_eq!(seen.get(seq), Some(id), "published event {seq} lost");
    }
    eprintln!(
        "graceful shutdown: stopped in {took:?}; {} messages and {} events acknowledged, all found after the restart ({statuses:?})",
        acked.messages.len(),
        acked.events.len(),
    );
}
