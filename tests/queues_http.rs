//! Durable queues over real HTTP: a worker process that dies mid-lease, idempotent
//! enqueue, priorities and delays, long-poll claims, the backoff, the dead-letter list,
//! TTLs, a bus event for every transition, and the worker socket.

mod util;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::{Server, SseStream};

async fn enqueue(server: &Server, queue: &str, body: Value) -> Value {
    let (status, item) = server
        .post(&format!("/v1/queues/{queue}/items"), &body)
        .await;
    assert_eq!(status, 201, "{item}");
    item
}

async fn claim(server: &Server, queue: &str, body: Value) -> Vec<Value> {
    let (status, page) = server
        .post(&format!("/v1/queues/{queue}/claim"), &body)
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn time(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_worker_that_dies_mid_lease_gets_its_item_delivered_again() {
    let server = Server::start(&[]).await;
    let mut events = SseStream::connect(
        &format!("{}/v1/events?topic=queue.jobs.>", server.url),
        None,
    )
    .await;
    let item = enqueue(&server, "jobs", json!({ "payload": { "n": 1 } })).await;
    let id = item["id"].as_str().unwrap().to_owned();

    // A real worker process claims with a 1 s lease and dies without acking.
    let worker = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, urllib.request\n\
             req = urllib.request.Request(sys.argv[1], data=json.dumps({'worker': 'doomed', 'lease': '1s'}).encode(), headers={'content-type': 'application/json', 'authorization': 'Bearer ' + sys.argv[2]})\n\
             items = json.load(urllib.request.urlopen(req))['items']\n\
             print(items[0]['lease_token'])\n\
             sys.exit(9)",
            &format!("{}/v1/queues/jobs/claim", server.url),
            util::ADMIN_TOKEN,
        ])
        .output()
        .unwrap();
    assert_eq!(worker.status.code(), Some(9), "{worker:?}");
    let stale_token = String::from_utf8(worker.stdout).unwrap().trim().to_owned();

    // Another worker long-polls and gets it once the lease has run out.
    let start = Instant::now();
    let items = claim(
        &server,
        "jobs",
        json!({ "worker": "steady", "wait": "10s" }),
    )
    .await;
    let waited = start.elapsed();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["attempts"], 2);
    assert!(
        waited >= Duration::from_millis(500),
        "came back too soon: {waited:?}"
    );
    let (_, shown) = server.get(&format!("/v1/queues/jobs/items/{id}")).await;
    assert!(
        shown["lease_token"].is_null(),
        "a listing never shows the token"
    );

    // The dead worker's token is refused; the live one acks.
    let (status, refused) = server
        .post(
            &format!("/v1/queues/jobs/items/{id}/ack"),
            &json!({ "lease_token": stale_token }),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    let token = items[0]["lease_token"].as_str().unwrap();
    let (status, done) = server
        .post(
            &format!("/v1/queues/jobs/items/{id}/ack"),
            &json!({ "lease_token": token, "result": { "ok": true } }),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["result"], json!({ "ok": true }));

    // Every transition was on the bus, in order.
    let mut seen = Vec::new();
    while let Some(msg) = events.next(Duration::from_secs(2)).await {
        let e: Value = serde_json::from_str(&msg.data).unwrap();
        seen.push(
            e["type"]
                .as_str()
                .unwrap()
                .trim_start_matches("switchyard.queue.")
                .to_owned(),
        );
        if seen.last().map(String::as_str) == Some("succeeded") {
            break;
        }
    }
    assert_eq!(
        seen,
        ["pending", "claimed", "timed_out", "claimed", "succeeded"]
    );
}

#[tokio::test]
async fn enqueue_is_idempotent_and_claims_follow_priority_and_delay() {
    let server = Server::start(&[]).await;
    let first = enqueue(
        &server,
        "mail",
        json!({ "payload": "a", "idempotency_key": "k1" }),
    )
    .await;
    let (status, again) = server
        .post(
            "/v1/queues/mail/items",
            &json!({ "payload": "changed", "idempotency_key": "k1" }),
        )
        .await;
    assert_eq!(status, 200, "a repeat answers with the first item");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["payload"], "a");

    enqueue(
        &server,
        "mail",
        json!({ "payload": "urgent", "priority": 10 }),
    )
    .await;
    enqueue(
        &server,
        "mail",
        json!({ "payload": "later", "priority": 99, "delay": "1500ms" }),
    )
    .await;
    let items = claim(&server, "mail", json!({ "worker": "w", "max": 10 })).await;
    let payloads: Vec<&str> = items
        .iter()
        .map(|i| i["payload"].as_str().unwrap())
        .collect();
    assert_eq!(
        payloads,
        ["urgent", "a"],
        "the delayed one is not ready yet"
    );
    let start = Instant::now();
    let items = claim(&server, "mail", json!({ "worker": "w", "wait": "5s" })).await;
    assert_eq!(items[0]["payload"], "later");
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );

    // A long poll on an empty queue wakes as soon as an item comes.
    let url = server.url.clone();
    let poll = tokio::spawn(async move {
        let start = Instant::now();
        let r: Value = util::http()
            .post(format!("{url}/v1/queues/idle/claim"))
            .json(&json!({ "worker": "w", "wait": "10s" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (r, start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    enqueue(&server, "idle", json!({ "payload": "wake" })).await;
    let (page, took) = poll.await.unwrap();
    assert_eq!(page["items"][0]["payload"], "wake");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // Bad input names its field.
    let (status, bad) = server
        .post(
            "/v1/queues/mail/items",
            &json!({ "payload": 1, "delay": "soon" }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"]["field"], "delay");
    let (status, bad) = server
        .post("/v1/queues/mail/claim", &json!({ "wrker": "w" }))
        .await;
    assert_eq!(status, 400);
    assert!(
        bad["error"]["message"].as_str().unwrap().contains("wrker"),
        "{bad}"
    );
    let (status, _) = server
        .post("/v1/queues/bad.name/items", &json!({ "payload": 1 }))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn nacks_back_off_then_dead_letter_retry_and_ttl() {
    let server = Server::start(&[]).await;
    let item = enqueue(
        &server,
        "build",
        json!({ "payload": "x", "max_attempts": 2 }),
    )
    .await;
    let id = item["id"].as_str().unwrap().to_owned();

    // First failure: retried after ~1 s (±20 %).
    let claimed = claim(&server, "build", json!({ "worker": "w" })).await;
    let token = claimed[0]["lease_token"].as_str().unwrap();
    let (_, failed) = server
        .post(
            &format!("/v1/queues/build/items/{id}/nack"),
            &json!({ "lease_token": token, "reason": "compiler crashed" }),
        )
        .await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"], "compiler crashed");
    let wait = time(&failed["available_at"]) - time(&failed["updated_at"]);
    assert!(
        wait >= chrono::Duration::milliseconds(790) && wait <= chrono::Duration::milliseconds(1210),
        "{wait}"
    );
    assert!(
        claim(&server, "build", json!({ "worker": "w" }))
            .await
            .is_empty(),
        "not before its backoff"
    );

    // Second (last) failure: dead.
    let claimed = claim(&server, "build", json!({ "worker": "w", "wait": "5s" })).await;
    let token = claimed[0]["lease_token"].as_str().unwrap();
    let (_, dead) = server
        .post(
            &format!("/v1/queues/build/items/{id}/nack"),
            &json!({ "lease_token": token, "reason": "again" }),
        )
        .await;
    assert_eq!(dead["status"], "dead");
    let (_, list) = server.get("/v1/queues/build/dead").await;
    assert_eq!(list["items"][0]["id"], id.as_str());
    let (_, list) = server.get("/v1/queues/build/items?status=dead").await;
    assert_eq!(list["items"][0]["id"], id.as_str());
    // The dead-letter list takes no status; an unknown status is named, not empty.
    let (status, refused) = server.get("/v1/queues/build/dead?status=pending").await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("status"),
        "{refused}"
    );
    let (status, refused) = server.get("/v1/queues/build/items?status=deceased").await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["field"], "status", "{refused}");

    // Retried from the dead-letter list, it runs again from its first attempt.
    let (status, back) = server
        .post(&format!("/v1/queues/build/dead/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["status"], "pending");
    let claimed = claim(&server, "build", json!({ "worker": "w" })).await;
    assert_eq!(claimed[0]["attempts"], 1);
    let token = claimed[0]["lease_token"].as_str().unwrap();
    let (_, dead) = server
        .post(
            &format!("/v1/queues/build/items/{id}/nack"),
            &json!({ "lease_token": token, "reason": "hopeless", "retry": false }),
        )
        .await;
    assert_eq!(dead["status"], "dead", "retry: false goes straight to dead");
    let response = util::http()
        .delete(format!("{}/v1/queues/build/dead/{id}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, _) = server.get(&format!("/v1/queues/build/items/{id}")).await;
    assert_eq!(status, 404);

    // A TTL that runs out: dead, with the reason.
    let item = enqueue(&server, "build", json!({ "payload": "y", "ttl": "300ms" })).await;
    let id = item["id"].as_str().unwrap();
    let start = Instant::now();
    loop {
        let (_, now) = server.get(&format!("/v1/queues/build/items/{id}")).await;
        if now["status"] == "dead" {
            assert!(now["error"].as_str().unwrap().contains("ttl"), "{now}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Cancel; a second cancel is a conflict. Counts by status per queue.
    let item = enqueue(&server, "build", json!({ "payload": "z" })).await;
    let id = item["id"].as_str().unwrap();
    let (_, canceled) = server
        .post(&format!("/v1/queues/build/items/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(canceled["status"], "canceled");
    let (status, _) = server
        .post(&format!("/v1/queues/build/items/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 409);
    let (_, all) = server.get("/v1/queues").await;
    let build = all["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "build")
        .unwrap();
    assert_eq!(build["counts"], json!({ "canceled": 1, "dead": 1 }));
}

#[tokio::test]
async fn the_cli_pushes_claims_and_acks() {
    let server = Server::start(&[]).await;
    let cli = |args: &[&str]| {
        let out = server.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let id = cli(&[
        "queue",
        "push",
        "cli",
        r#"{"task": "resize"}"#,
        "--key",
        "r1",
    ]);
    assert_eq!(
        cli(&["queue", "push", "cli", "other", "--key", "r1"]),
        id,
        "idempotent"
    );
    let claimed: Value =
        serde_json::from_str(cli(&["queue", "claim", "cli", "--wait", "2s"]).trim()).unwrap();
    assert_eq!(claimed["payload"], json!({ "task": "resize" }));
    let token = claimed["lease_token"].as_str().unwrap();
    let done = cli(&[
        "queue",
        "ack",
        "cli",
        id.trim(),
        "--lease-token",
        token,
        "--result",
        "42",
    ]);
    assert_eq!(done.trim(), format!("{}: succeeded", id.trim()));
    assert!(cli(&["queue", "list"]).contains("succeeded 1"));
    assert!(cli(&["queue", "list", "cli"]).contains("succeeded"));
}

/// Send one command on a queue socket; its reply.
async fn command(ws: &mut util::WebSocket, command: Value) -> Value {
    use futures::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        command.to_string(),
    ))
    .await
    .unwrap();
    util::next_json(ws).await
}

/// The worker socket: commands in order, each with its reply; a bad command is refused
/// alone, naming its field; `push` needs `queues:write`; a revoked token stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_socket_pushes_claims_acks_and_nacks_in_order() {
    let server = Server::start(&[]).await;
    let mut ws = util::websocket(&server, "/v1/queues/jobs/socket", util::ADMIN_TOKEN)
        .await
        .unwrap();

    let pushed = command(
        &mut ws,
        json!({ "op": "push", "payload": { "n": 1 }, "idempotency_key": "k" }),
    )
    .await;
    assert_eq!(
        (pushed["created"].as_bool(), &pushed["item"]["status"]),
        (Some(true), &json!("pending")),
        "{pushed}"
    );
    let again = command(
        &mut ws,
        json!({ "op": "push", "payload": { "n": 2 }, "idempotency_key": "k" }),
    )
    .await;
    assert_eq!(again["created"], false);
    assert_eq!(again["item"]["id"], pushed["item"]["id"]);
    command(&mut ws, json!({ "op": "push", "payload": { "n": 3 } })).await;

    let claimed = command(
        &mut ws,
        json!({ "op": "claim", "worker": "w", "max": 2, "lease": "30s" }),
    )
    .await;
    let items = claimed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{claimed}");
    assert_eq!(items[0]["payload"]["n"], 1, "oldest first");
    let (first, second) = (&items[0], &items[1]);

    let extended = command(&mut ws, json!({ "op": "extend", "id": first["id"], "lease_token": first["lease_token"], "lease": "1h" })).await;
    assert!(
        time(&extended["item"]["lease_expires_at"]) > time(&first["lease_expires_at"]),
        "{extended}"
    );
    let acked = command(&mut ws, json!({ "op": "ack", "id": first["id"], "lease_token": first["lease_token"], "result": { "ok": 1 } })).await;
    assert_eq!(acked["item"]["status"], "succeeded", "{acked}");
    let nacked = command(&mut ws, json!({ "op": "nack", "id": second["id"], "lease_token": second["lease_token"], "reason": "no", "retry": false })).await;
    assert_eq!(nacked["item"]["status"], "dead", "{nacked}");
    // The HTTP routes see what the socket did.
    let (status, item) = server
        .get(&format!(
            "/v1/queues/jobs/items/{}",
            first["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!((status, &item["result"]), (200, &json!({ "ok": 1 })));

    // Refused alone, naming the field; the socket stays open.
    for (bad, field) in [
        (json!({ "payload": {} }), "op"),
        (json!({ "op": "pop" }), "op"),
        (json!({ "op": "ack", "lease_token": "t" }), "id"),
        (
            json!({ "op": "claim", "worker": "w", "lease": "soon" }),
            "lease",
        ),
        (json!({ "op": "push", "payload": {}, "colour": 1 }), "."),
    ] {
        let reply = command(&mut ws, bad.clone()).await;
        let error = &reply["error"];
        assert_eq!(error["code"], "bad_request", "{bad}: {reply}");
        if field != "." {
            assert_eq!(error["field"], field, "{bad}: {reply}");
        } else {
            assert!(
                error["message"].as_str().unwrap().contains("colour"),
                "{reply}"
            );
        }
    }
    let reply = command(
        &mut ws,
        json!({ "op": "ack", "id": "nope", "lease_token": "t" }),
    )
    .await;
    assert_eq!(reply["error"]["code"], "not_found", "{reply}");
    // A long poll that nothing answers comes back empty.
    let reply = command(
        &mut ws,
        json!({ "op": "claim", "worker": "w", "wait": "100ms" }),
    )
    .await;
    assert_eq!(reply["items"], json!([]));

    // A worker token may claim, not push; once revoked, its next command is refused and
    // the socket closes.
    let (token, id) = server.token(&["queues:work"], None).await;
    let mut worker = util::websocket(&server, "/v1/queues/jobs/socket", &token)
        .await
        .unwrap();
    let reply = command(&mut worker, json!({ "op": "push", "payload": {} })).await;
    assert_eq!(
        (&reply["error"]["code"], &reply["error"]["field"]),
        (&json!("forbidden"), &json!("op")),
        "{reply}"
    );
    let reply = command(&mut worker, json!({ "op": "claim", "worker": "w" })).await;
    assert_eq!(reply["items"], json!([]), "{reply}");
    server.revoke(&id).await;
    let reply = command(&mut worker, json!({ "op": "claim", "worker": "w" })).await;
    assert_eq!(reply["error"]["code"], "token_revoked", "{reply}");
    util::assert_closes(&mut worker).await;
}
