//! Graceful shutdown under load: a real server gets SIGTERM while clients send messages
//! to sessions and publish events. It drains every stage in order and exits 0 with no
//! task left behind (its last line on stdout says so); after a restart, every request
//! that got a 2xx is found, and every accepted message is answered: turns in flight
//! finished before the exit, and queued messages resume.

mod util;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use util::Server;

const SESSIONS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_every_stage_and_loses_nothing() {
    let server = Server::start(&["echo-agent"]).await;
    util::create_load_sessions(&server, "g", SESSIONS).await;
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
    util::wait_sessions_idle(&server, "g", SESSIONS).await;

    // Every acknowledged message is in its session, answered: a graceful stop lets the
    // turns in flight finish, so none is interrupted.
    let (found, statuses) = util::user_messages(&server, "g", SESSIONS).await;
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
    let seen: HashMap<u64, String> = util::log_events(&server)
        .await
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (seq, id) in &acked.events {
        assert_eq!(seen.get(seq), Some(id), "published event {seq} lost");
    }
    eprintln!(
        "graceful shutdown: stopped in {took:?}; {} messages and {} events acknowledged, all found after the restart ({statuses:?})",
        acked.messages.len(),
        acked.events.len(),
    );
}
