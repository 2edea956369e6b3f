//! Crash test: a real server is killed with SIGKILL while clients send messages to
//! sessions and publish events; after a restart, every request that got a 2xx is found:
//! each accepted message processed or marked interrupted, with its events, and each
//! published event in the log.

mod util;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use util::Server;

const SESSIONS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_request_survives_sigkill() {
    let server = Server::start(&["echo-agent"]).await;
    util::create_load_sessions(&server, "c", SESSIONS).await;
    let load = util::Load::start(&server.url, "c", SESSIONS, 8);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let server = server.kill_and_restart().await;
    let acked = load.finish().await;
    assert!(
        acked.messages.len() > 50,
        "too little load to show anything: {}",
        acked.messages.len()
    );

    // Every session drains after the restart.
    util::wait_sessions_idle(&server, "c", SESSIONS).await;

    // Every acknowledged message is in its session: done (with a reply) or interrupted.
    let (found, statuses) = util::user_messages(&server, "c", SESSIONS).await;
    let missing: Vec<_> = acked
        .messages
        .keys()
        .filter(|id| !found.contains(*id))
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert_eq!(
        statuses
            .keys()
            .filter(|k| *k != "done" && *k != "interrupted")
            .count(),
        0,
        "{statuses:?}"
    );

    // The log holds every published event and a message.queued event for every
    // accepted message, and a final event for each turn.
    let mut seen_events = HashMap::new();
    let mut queued = HashSet::new();
    let mut ended = HashSet::new();
    for e in util::log_events(&server).await {
        seen_events.insert(
            e["seq"].as_u64().unwrap(),
            e["id"].as_str().unwrap().to_owned(),
        );
        let message_id = e["data"]["message_id"].as_str().map(str::to_owned);
        match e["type"].as_str().unwrap() {
            "switchyard.session.message.queued" => {
                queued.insert(message_id.unwrap());
            }
            "switchyard.session.turn.finished" | "switchyard.session.turn.interrupted" => {
                ended.insert(message_id.unwrap());
            }
            _ => {}
        }
    }
    for (seq, id) in &acked.events {
        assert_eq!(seen_events.get(seq), Some(id), "published event {seq} lost");
    }
    for id in acked.messages.keys() {
        assert!(queued.contains(id), "no message.queued event for {id}");
        assert!(
            ended.contains(id),
            "no turn.finished/interrupted event for {id}"
        );
    }
    eprintln!(
        "crash test: {} messages and {} events acknowledged before SIGKILL; all found after restart ({:?})",
        acked.messages.len(),
        acked.events.len(),
        statuses
    );
}
