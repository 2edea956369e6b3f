//! Graceful shutdown under load: a real server gets SIGTERM while clients send messages
//! to sessions and publish events. It drains every stage in order and exits 0 with no
//! task left behind (its last line on stdout says so); after a restart, every request
//! that got a 2xx is found, and every accepted message is answered: turns in flight
//! finished before the exit, and queued messages resume.

mod util;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::{Server, SseStream};

const SESSIONS: usize = 8;

#[derive(Default)]
struct Acknowledged {
    /// message id → session key
    messages: HashMap<String, String>,
    /// event seq → event id
    events: HashMap<u64, String>,
}

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
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let mut clients = Vec::new();
    for c in 0..8usize {
        let (url, acked) = (server.url.clone(), acked.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .default_headers(util::bearer(util::ADMIN_TOKEN))
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            for i in 0.. {
                let key = format!("g{}", (c + i) % SESSIONS);
                let sent = if i % 3 == 0 {
                    http.post(format!("{url}/v1/events"))
                        .json(&json!({ "topic": format!("drain.c{c}"), "type": "test", "data": { "i": i } }))
                        .send()
                        .await
                } else {
                    http.post(format!("{url}/v1/sessions/{key}/messages"))
                        .json(&json!({ "text": format!("client {c} message {i} with a few words") }))
                        .send()
                        .await
                };
                let Ok(r) = sent else { return }; // the server stopped accepting
                let status = r.status();
                let Ok(body) = r.json::<Value>().await else { return };
                if status.is_success() {
                    let mut a = acked.lock().unwrap();
                    if let Some(seq) = body["seq"].as_u64() {
                        a.events.insert(seq, body["id"].as_str().unwrap().to_owned());
                    } else {
                        a.messages.insert(body["id"].as_str().unwrap().to_owned(), key);
                    }
                } else {
                    assert_eq!(status, 429, "only a full queue may refuse: {body}");
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopping = Instant::now();
    let (exit, printed, server) = server.terminate_and_restart().await;
    let took = stopping.elapsed();
    for c in clients {
        c.await.unwrap();
    }
    assert!(exit.success(), "exit status {exit:?}");
    assert_eq!(
        printed.last().map(String::as_str),
        Some("switchyard stopped: every stage drained"),
        "stdout after the first line: {printed:?}"
    );
    let acked = std::mem::take(&mut *acked.lock().unwrap());
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
