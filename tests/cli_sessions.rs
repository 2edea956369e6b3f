//! The `session` and `bus` verbs of the CLI, run as the real binary against a real
//! server (with the echo-agent component), the way a user types them.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::Server;

/// Run `switchyard ARGS --server URL` to completion.
fn cli(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .env("SWITCHYARD_TOKEN", util::ADMIN_TOKEN)
        .args(args)
        .args(["--server", url])
        .env_remove("SWITCHYARD_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run switchyard")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run and expect success; returns stdout.
fn ok(url: &str, args: &[&str]) -> String {
    let o = cli(url, args);
    assert!(
        o.status.success(),
        "{args:?} failed: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Run and expect failure; returns stderr.
fn fails(url: &str, args: &[&str]) -> String {
    let o = cli(url, args);
    assert!(
        !o.status.success(),
        "{args:?} should fail; stdout: {}",
        stdout(&o)
    );
    stderr(&o)
}

/// A long-running CLI process whose stdout is read line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(url: &str, args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .env("SWITCHYARD_TOKEN", util::ADMIN_TOKEN)
            .args(args)
            .args(["--server", url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run switchyard");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// Lines until one satisfies `check` (panics after 10 s).
    fn until(&self, check: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = check(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("the expected line never came; got {seen:?}"),
            }
        }
    }

    /// Kill it; returns what it wrote on stderr.
    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn create(server: &Server, key: &str, config: Value) {
    let (status, body) = server
        .post("/v1/sessions", &json!({ "key": key, "config": config }))
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Wait until nothing is queued or processing.
async fn idle(server: &Server, key: &str) {
    let start = Instant::now();
    loop {
        let (_, s) = server.get(&format!("/v1/sessions/{key}")).await;
        if s["queue_depth"] == 0 && s["processing"] == false {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never idle: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_follow_then_list_show_history_and_manage() {
    let server = Server::start(&["echo-agent"]).await;
    let url = server.url.as_str();

    // A new session is created on the way, and the reply streams to stdout — only it.
    let o = cli(
        url,
        &["session", "send", "k", "hello brave world", "--follow"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello brave world\n");
    assert!(stderr(&o).contains("created session k"), "{}", stderr(&o));

    // Without --follow: the message id and its place in the queue.
    let out = ok(url, &["session", "send", "k", "second"]);
    assert!(
        out.starts_with("queued ") && out.trim_end().ends_with("at position 1"),
        "{out}"
    );
    idle(&server, "k").await;

    let list: Value = serde_json::from_str(&ok(url, &["session", "list", "--json"])).unwrap();
    let k = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "k")
        .expect("k is listed");
    assert_eq!(k["adapter"], "echo-agent");
    let table = ok(url, &["session", "list"]);
    let mut rows = table.lines();
    let header = rows.next().unwrap();
    for column in [
        "KEY",
        "ADAPTER",
        "QUEUED",
        "PROCESSING",
        "UPDATED",
        "LAST MESSAGE",
    ] {
        assert!(header.contains(column), "{table}");
    }
    let row = rows.next().unwrap();
    assert!(
        row.starts_with("k ") && row.contains("echo-agent") && row.ends_with("second"),
        "{table}"
    );

    let show = ok(url, &["session", "show", "k"]);
    assert!(show.contains("adapter:      echo-agent"), "{show}");
    let show: Value = serde_json::from_str(&ok(url, &["session", "show", "k", "--json"])).unwrap();
    assert_eq!(show["key"], "k");

    let history: Value =
        serde_json::from_str(&ok(url, &["session", "history", "k", "--json"])).unwrap();
    let texts: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        texts,
        [
            ("user", "hello brave world"),
            ("assistant", "hello brave world"),
            ("user", "second"),
            ("assistant", "second"),
        ]
    );
    let history: Value = serde_json::from_str(&ok(
        url,
        &["session", "history", "k", "--limit", "2", "--json"],
    ))
    .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2, "the last two");
    let plain = ok(url, &["session", "history", "k"]);
    assert_eq!(plain.lines().count(), 4, "{plain}");
    assert!(
        plain
            .lines()
            .next()
            .unwrap()
            .ends_with("user: hello brave world")
    );

    // Unknown sessions: the server's message, non-zero.
    assert!(fails(url, &["session", "show", "nope"]).contains("no session with key `nope`"));
    assert!(fails(url, &["session", "send", "nope", "hi", "--no-create"]).contains("no session"));
    assert!(fails(url, &["session", "history", "nope"]).contains("no session"));

    // Keys that need escaping in a URL.
    let o = cli(url, &["session", "send", "a/b?c#d", "odd key", "--follow"]);
    assert_eq!(stdout(&o), "odd key\n", "{}", stderr(&o));

    // Abort, reset, delete.
    assert_eq!(
        ok(url, &["session", "abort", "k"]).trim(),
        "session k has no running turn"
    );
    assert!(ok(url, &["session", "reset", "k"]).contains("0 queued message(s) dropped"));
    let history: Value =
        serde_json::from_str(&ok(url, &["session", "history", "k", "--json"])).unwrap();
    assert_eq!(history, json!([]));
    assert_eq!(
        ok(url, &["session", "delete", "k"]).trim(),
        "deleted session k"
    );
    assert!(fails(url, &["session", "delete", "k"]).contains("no session"));

    // Unreachable server: the helpful message.
    let err = fails("http://127.0.0.1:9", &["session", "list"]);
    assert!(err.contains("is `switchyard serve` running?"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_past_the_servers_page_size() {
    let server = Server::start(&["echo-agent"]).await;
    let url = server.url.as_str();
    // The CLI asks for pages of at most 500 sessions: 503 need two.
    let keys: Vec<String> = (0..503).map(|i| format!("s{i:03}")).collect();
    let creates = keys.chunks(50).map(|chunk| {
        let server = &server;
        async move {
            for key in chunk {
                let (status, body) = server.post("/v1/sessions", &json!({ "key": key })).await;
                assert_eq!(status, 201, "{body}");
            }
        }
    });
    futures::future::join_all(creates).await;

    let all: Value =
        serde_json::from_str(&ok(url, &["session", "list", "--limit", "1000", "--json"])).unwrap();
    let listed: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(listed, keys, "every session once, in key order");
    let some: Value =
        serde_json::from_str(&ok(url, &["session", "list", "--limit", "501", "--json"])).unwrap();
    assert_eq!(some.as_array().unwrap().len(), 501);
    let o = cli(url, &["session", "list", "--limit", "3"]);
    assert_eq!(stdout(&o).lines().count(), 4, "header and three rows");
    assert!(stderr(&o).contains("more sessions"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_reports_failed_turns_full_queues_and_ctrl_c() {
    let server = Server::start(&["echo-agent"]).await;
    let url = server.url.as_str();

    // A turn that fails (the adapter refuses its config): non-zero, the reason on stderr.
    create(&server, "bad", json!({ "delay_ms": "soon" })).await;
    let o = cli(url, &["session", "send", "bad", "hi", "--follow"]);
    assert!(!o.status.success());
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("the turn failed") && stderr(&o).contains("delay_ms"),
        "{}",
        stderr(&o)
    );

    // Ctrl-C while following aborts the running turn and exits 130.
    create(&server, "slow", json!({ "delay_ms": 100 })).await;
    let long: String = (0..40).map(|i| format!("w{i} ")).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .env("SWITCHYARD_TOKEN", util::ADMIN_TOKEN)
        .args([
            "session", "send", "slow", &long, "--follow", "--server", url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first words arrive without a newline: read raw bytes, not lines.
    let mut out = child.stdout.take().unwrap();
    let (tx, first) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        if let Ok(n) = out.read(&mut buf) {
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let _ = std::io::copy(&mut out, &mut std::io::sink());
    });
    let first = first
        .recv_timeout(Duration::from_secs(10))
        .expect("the turn started streaming");
    assert!(first.starts_with("w0 "), "{first:?}");
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("aborted the turn"), "{err}");
    idle(&server, "slow").await;
    let (_, h) = server.get("/v1/sessions/slow/history").await;
    assert_eq!(h["messages"][0]["status"], "aborted", "{h}");

    // A full queue: the server's 429 message, non-zero.
    create(&server, "full", json!({ "delay_ms": 1000 })).await;
    let mut accepted = 0;
    loop {
        let (status, body) = server
            .post("/v1/sessions/full/messages", &json!({ "text": "a b c d" }))
            .await;
        if status == 429 {
            break;
        }
        assert_eq!(status, 202, "{body}");
        accepted += 1;
        assert!(accepted <= 65, "the queue never filled");
    }
    let err = fails(url, &["session", "send", "full", "one more"]);
    assert!(
        err.contains("429") && err.contains("already has 64 queued messages"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_publish_and_tail() {
    let server = Server::start(&[]).await;
    let url = server.url.as_str();

    let seq: u64 = ok(
        url,
        &[
            "bus",
            "publish",
            "orders.eu.created",
            "--type",
            "test.order",
            "--data",
            r#"{"n": 1}"#,
            "--subject",
            "o1",
        ],
    )
    .trim()
    .parse()
    .expect("publish prints the seq");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.json");
    std::fs::write(&file, r#"{"n": 2}"#).unwrap();
    let at_file = format!("@{}", file.display());
    let seq2: u64 = ok(
        url,
        &[
            "bus",
            "publish",
            "orders.us.created",
            "--type",
            "test.order",
            "--data",
            &at_file,
        ],
    )
    .trim()
    .parse()
    .unwrap();
    assert!(seq2 > seq);
    ok(
        url,
        &["bus", "publish", "other.topic", "--type", "test.other"],
    );
    let err = fails(url, &["bus", "publish", "orders.*", "--type", "t"]);
    assert!(err.contains("400") && err.contains("wildcard"), "{err}");
    let err = fails(
        url,
        &["bus", "publish", "a.b", "--type", "t", "--data", "{nope"],
    );
    assert!(err.contains("--data is not valid JSON"), "{err}");

    // Replay from the log, then live: JSON lines.
    let tail = Running::start(url, &["bus", "tail", "orders.>", "--after", "0", "--json"]);
    let lines = tail.until(|l| l.contains("orders.us.created"));
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{lines:?}");
    assert_eq!(events[0]["seq"], seq);
    assert_eq!(events[0]["type"], "test.order");
    assert_eq!(events[0]["subject"], "o1");
    assert_eq!(events[0]["data"], json!({ "n": 1 }));
    let live: u64 = ok(
        url,
        &["bus", "publish", "orders.eu.paid", "--type", "test.paid"],
    )
    .trim()
    .parse()
    .unwrap();
    let lines = tail.until(|l| l.contains("orders.eu.paid"));
    let event: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(event["seq"], live);
    tail.kill();

    // The plain format: SEQ TIME TOPIC TYPE DATA.
    let after = (seq - 1).to_string();
    let tail = Running::start(url, &["bus", "tail", "orders.eu.*", "--after", &after]);
    let lines = tail.until(|l| l.contains("orders.eu.paid"));
    assert_eq!(lines.len(), 2, "{lines:?}");
    let fields: Vec<&str> = lines[0].splitn(5, ' ').collect();
    assert_eq!(fields[0], seq.to_string());
    assert!(fields[1].ends_with('Z'), "a timestamp: {}", fields[1]);
    assert_eq!(
        &fields[2..],
        ["orders.eu.created", "test.order", r#"{"n":1}"#]
    );
    assert!(
        lines[1].ends_with("orders.eu.paid test.paid null"),
        "{lines:?}"
    );
    tail.kill();

    let err = fails(url, &["bus", "tail", "orders..x"]);
    assert!(err.contains("400"), "{err}");
}

/// A stand-in server that ends the stream after one event, then checks that the
/// reconnect resumes with `Last-Event-ID`.
#[test]
fn bus_tail_reconnects_from_the_last_event() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let event = |seq: u64| {
        json!({ "seq": seq, "id": "x", "topic": "t.a", "type": "test", "source": "api",
                "subject": null, "time": "2026-01-01T00:00:00.000Z",
                "correlation_id": null, "data": { "n": seq } })
    };
    let (requests, received) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let mut conn = conn.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            requests
                .send(String::from_utf8_lossy(&request).to_lowercase())
                .unwrap();
            let seq = 5 + i as u64;
            let body = format!("id: {seq}\ndata: {}\n\n", event(seq));
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
            conn.write_all(head.as_bytes()).unwrap();
            conn.write_all(body.as_bytes()).unwrap();
            if i == 0 {
                continue; // closes: the client must come back
            }
            std::thread::sleep(Duration::from_secs(30));
        }
    });
    let tail = Running::start(&url, &["bus", "tail", "t.>", "--after", "4"]);
    let lines = tail.until(|l| l.starts_with("6 "));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("5 2026-01-01T00:00:00.000Z t.a test"),
        "{lines:?}"
    );
    let first = received.recv().unwrap();
    assert!(
        first.contains("after=4") && first.contains("topic=t.%3e"),
        "{first}"
    );
    assert!(!first.contains("last-event-id"), "{first}");
    let second = received.recv().unwrap();
    assert!(second.contains("last-event-id: 5"), "{second}");
    let err = tail.kill();
    assert!(err.contains("reconnect"), "{err}");
}
