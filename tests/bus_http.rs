//! The bus over HTTP: publish with POST, follow with SSE; ordering under concurrent
//! publishers, and resume with `Last-Event-ID` losing and repeating nothing.

mod util;

use std::time::Duration;

use serde_json::{Value, json};
use util::{Server, SseStream};

async fn publish(server: &Server, topic: &str, n: u64) -> u64 {
    let (status, body) = server
        .post(
            "/v1/events",
            &json!({ "topic": topic, "type": "test.item", "data": { "n": n } }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["seq"].as_u64().unwrap()
}

fn parse(msg: &util::SseMessage) -> Value {
    serde_json::from_str(&msg.data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_rejects_bad_input_naming_the_field() {
    let server = Server::start(&[]).await;
    let (status, body) = server
        .post("/v1/events", &json!({ "topic": "a.*", "type": "t" }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "topic");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wildcard"),
        "{body}"
    );
    let (status, body) = server
        .post("/v1/events", &json!({ "topic": "a.b", "type": 5 }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "type", "{body}");
    let (status, body) = server
        .post(
            "/v1/events",
            &json!({ "topic": "a.b", "type": "t", "colour": 1 }),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{body}"
    );
    let r = util::http()
        .get(format!("{}/v1/events?topic=a.>.b", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_subscriber_sees_every_event_in_order_under_concurrent_publishers() {
    let server = std::sync::Arc::new(Server::start(&[]).await);
    let mut sse = SseStream::connect(&format!("{}/v1/events?topic=load.>", server.url), None).await;
    let mut publishers = Vec::new();
    for p in 0..4u64 {
        let server = server.clone();
        publishers.push(tokio::spawn(async move {
            for i in 0..100 {
                publish(&server, &format!("load.p{p}"), i).await;
                if i % 10 == 0 {
                    publish(&server, "other.noise", i).await;
                }
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    let mut last = 0;
    for _ in 0..400 {
        let msg = sse.next(Duration::from_secs(10)).await.expect("400 events");
        let seq: u64 = msg.id.as_deref().unwrap().parse().unwrap();
        assert!(seq > last, "out of order: {seq} after {last}");
        last = seq;
        assert!(parse(&msg)["topic"].as_str().unwrap().starts_with("load."));
    }
    assert!(
        sse.next(Duration::from_millis(300)).await.is_none(),
        "no extra events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_last_event_id_loses_and_repeats_nothing() {
    let server = Server::start(&[]).await;
    let url = format!("{}/v1/events?topic=orders.*", server.url);
    let mut sse = SseStream::connect(&url, None).await;
    publish(&server, "orders.created", 1).await;
    publish(&server, "invoices.created", 2).await; // not matching
    publish(&server, "orders.paid", 3).await;
    let first = sse.next(Duration::from_secs(5)).await.unwrap();
    let second = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(parse(&first)["data"]["n"], 1);
    assert_eq!(parse(&second)["data"]["n"], 3);
    let last_id = second.id.clone().unwrap();
    drop(sse); // the client goes away...

    // ...while events keep coming.
    let mut missed = Vec::new();
    for n in 10..20 {
        publish(
            &server,
            if n % 2 == 0 {
                "orders.created"
            } else {
                "orders.x.deep"
            },
            n,
        )
        .await;
        if n % 2 == 0 {
            missed.push(n);
        }
    }
    // Reconnect with the last id seen: replay, then live, in one stream.
    let mut sse = SseStream::connect(&url, Some(&last_id)).await;
    let writer = {
        let url = server.url.clone();
        tokio::spawn(async move {
            let client = util::http();
            for n in 100..105 {
                client
                    .post(format!("{url}/v1/events"))
                    .json(&json!({ "topic": "orders.shipped", "type": "t", "data": { "n": n } }))
                    .send()
                    .await
                    .unwrap();
            }
        })
    };
    let mut got = Vec::new();
    let mut seqs = Vec::new();
    while got.len() < missed.len() + 5 {
        let msg = sse
            .next(Duration::from_secs(10))
            .await
            .expect("replayed and live events");
        seqs.push(msg.id.clone().unwrap().parse::<u64>().unwrap());
        got.push(parse(&msg)["data"]["n"].as_u64().unwrap());
    }
    writer.await.unwrap();
    let mut expected: Vec<u64> = missed;
    expected.extend(100..105);
    assert_eq!(got, expected, "replay then live, nothing lost or repeated");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert!(sse.next(Duration::from_millis(300)).await.is_none());

    // `?after=` does the same for clients that cannot set headers.
    let mut sse = SseStream::connect(&format!("{url}&after={last_id}"), None).await;
    assert_eq!(
        parse(&sse.next(Duration::from_secs(5)).await.unwrap())["data"]["n"],
        10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_publish_is_atomic_with_consecutive_seqs() {
    let server = Server::start(&[]).await;
    let event =
        |topic: &str, n: u64| json!({ "topic": topic, "type": "test.item", "data": { "n": n } });
    let (status, body) = server
        .post(
            "/v1/events",
            &json!([event("b.x", 1), event("b.y", 2), event("b.x", 3)]),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let seqs: Vec<u64> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 3);
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive: {seqs:?}"
    );

    // One bad event refuses the whole batch, naming where it is.
    let (status, body) = server
        .post(
            "/v1/events",
            &json!([event("b.x", 4), event("b.y", 5), event("b.*", 6)]),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "[2].topic");
    let (status, body) = server
        .post("/v1/events", &json!([event("b.x", 7), { "topic": "b.x" }]))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "[1]", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field `type`"),
        "{body}"
    );
    let too_many: Vec<Value> = (0..1001).map(|n| event("b.x", n)).collect();
    assert_eq!(server.post("/v1/events", &json!(too_many)).await.0, 400);

    // Nothing of the refused batches reached the log.
    let mut sse =
        SseStream::connect(&format!("{}/v1/events?topic=b.>&after=0", server.url), None).await;
    let mut got = Vec::new();
    while let Some(msg) = sse.next(Duration::from_millis(500)).await {
        got.push(parse(&msg)["data"]["n"].as_u64().unwrap());
    }
    assert_eq!(got, [1, 2, 3]);
}

/// The publishing socket: events in flight without waiting, one reply each in the
/// order sent (a receipt, or an error naming the field that leaves the socket open),
/// stored in that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_publishes_many_in_flight_with_a_reply_each_in_order() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let server = Server::start(&[]).await;
    let mut ws = util::websocket(&server, "/v1/events/publish", util::ADMIN_TOKEN)
        .await
        .unwrap();
    const N: u64 = 2000;
    for n in 0..N {
        let message = match n {
            700 => json!({ "topic": "w.*", "type": "t" }).to_string(),
            701 => json!({ "topic": "w.x", "type": "t", "colour": 1 }).to_string(),
            702 => "not json".to_owned(),
            703 => json!([{ "topic": "w.x", "type": "t" }]).to_string(),
            _ => json!({ "topic": "w.x", "type": "t", "data": { "n": n } }).to_string(),
        };
        ws.feed(Message::text(message)).await.unwrap();
    }
    ws.flush().await.unwrap();

    let mut last_seq = 0;
    for n in 0..N {
        let reply = util::next_json(&mut ws).await;
        let error = &reply["error"];
        match n {
            700 => assert_eq!(error["field"], "topic", "{reply}"),
            701 => assert!(
                error["message"]
                    .as_str()
                    .unwrap()
                    .contains("unknown field `colour`"),
                "{reply}"
            ),
            702 => assert!(
                error["message"].as_str().unwrap().contains("not JSON"),
                "{reply}"
            ),
            703 => assert!(
                error["message"]
                    .as_str()
                    .unwrap()
                    .contains("one event per message"),
                "{reply}"
            ),
            _ => {
                let seq = reply["seq"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{n}: {reply}"));
                assert!(seq > last_seq, "receipts come in the order sent");
                last_seq = seq;
            }
        }
    }
    ws.close(None).await.unwrap();

    let mut sse =
        SseStream::connect(&format!("{}/v1/events?topic=w.>&after=0", server.url), None).await;
    let mut got = Vec::new();
    while let Some(msg) = sse.next(Duration::from_millis(500)).await {
        got.push(parse(&msg)["data"]["n"].as_u64().unwrap());
    }
    let sent: Vec<u64> = (0..N).filter(|n| !(700..=703).contains(n)).collect();
    assert_eq!(got, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publishing_socket_needs_bus_write_and_a_websocket_and_a_live_token() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let server = Server::start(&[]).await;
    let (reader, _) = server.token(&["bus:read"], None).await;
    let (status, body) = util::websocket(&server, "/v1/events/publish", &reader)
        .await
        .expect_err("refused");
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")));

    // A token revoked while its socket is open: the next event is refused, and the
    // socket closes.
    let (writer, id) = server.token(&["bus:write"], None).await;
    let mut ws = util::websocket(&server, "/v1/events/publish", &writer)
        .await
        .unwrap();
    let event = json!({ "topic": "w.x", "type": "t" }).to_string();
    ws.send(Message::text(event.clone())).await.unwrap();
    assert!(util::next_json(&mut ws).await["seq"].is_u64());
    server.revoke(&id).await;
    ws.send(Message::text(event)).await.unwrap();
    let reply = util::next_json(&mut ws).await;
    assert_eq!(reply["error"]["code"], "token_revoked", "{reply}");
    util::assert_closes(&mut ws).await;

    // A plain request gets the API's error shape, not axum's plain text.
    let (status, body) = server.get("/v1/events/publish").await;
    assert!(status == 400 || status == 426, "{status} {body}");
    assert_eq!(body["error"]["code"], "websocket_required", "{body}");
}
