//! Bus and sessions benchmark (a bench binary: `cargo bench --bench bus_sessions`).
//!
//! Each figure is measured next to its baseline in the same run, on the same machine:
//! - durable publish throughput: Switchyard `POST /v1/events` and its publishing
//!   WebSocket (each event acknowledged after its group commit) vs NATS JetStream (file
//!   storage, publish acknowledged by the server), same payload, same number of
//!   concurrent publishers;
//! - publish → subscriber latency at a paced 10,000 events/s: Switchyard SSE vs a
//!   JetStream push consumer;
//! - session turns per second over HTTP (`POST /v1/sessions/{key}/chat` through the
//!   echo-agent component, the whole turn streamed back) vs requests per second of an
//!   axum hello-world, same client and concurrency;
//! - heap held by an idle session whose worker is still in memory, and after it left.
//!
//! Needs `nats-server` on PATH (Debian package `nats-server`) and the plugins built
//! (`plugins/build-all.sh`). Prints Markdown. Arguments select sections: `publish`,
//! `latency`, `turns`, `memory` (default: all), e.g.
//! `cargo bench --bench bus_sessions -- turns`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

mod common;
use common::{
    Proc, cpu_time, free_port, percentile, repo, selected, start_switchyard, thread_cpu_time,
};

/// Counts live heap bytes, for the per-session memory figure.
struct CountingAlloc;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const PUBLISHERS: usize = 32;
const PUBLISH_TOTAL: usize = 40_000;
/// Rounds of the durable publish comparison.
const ROUNDS: usize = 5;
const PAYLOAD: usize = 256;
/// Events in flight per publisher in the pipelined comparison.
const BATCH: usize = 100;
const RATE: u64 = 10_000;
const LATENCY_SECONDS: u64 = 5;
/// Turns per run; `BENCH_TURNS` sets more (a profile needs a longer run).
fn turn_count() -> usize {
    env_count("BENCH_TURNS", 4_000)
}

/// Concurrent clients of the turns comparison (each with its own session);
/// `BENCH_TURN_CLIENTS` sets another count, to see how turns scale with them.
fn turn_clients() -> usize {
    env_count("BENCH_TURN_CLIENTS", 16)
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Start nats-server with JetStream file storage in `dir`.
async fn start_nats(dir: &std::path::Path) -> (Proc, String) {
    let port = free_port();
    let child = Proc::spawn(
        Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("nats-server on PATH (apt-get install nats-server)");
    let url = format!("nats://127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nats-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (child, url)
}

fn payload(i: usize) -> serde_json::Value {
    json!({ "i": i, "pad": "x".repeat(PAYLOAD) })
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Run `total` jobs over `workers` concurrent tasks; returns jobs per second.
async fn throughput<F, Fut>(workers: usize, total: usize, job: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (job, next) = (job.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                job(i).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let (sy, sy_url) = start_switchyard(dir.path()).await;
    let (_nats, nats_url) = start_nats(&dir.path().join("nats")).await;
    let nats = async_nats::connect(&nats_url).await.unwrap();
    let js = async_nats::jetstream::new(nats.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "BENCH".into(),
        subjects: vec!["bench.>".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap();
    let http = common::http(4096);

    if selected("publish") {
        publish(&js, &http, &sy_url).await;
    }
    if std::env::args().any(|a| a == "socket") {
        socket_only(&sy_url).await;
    }
    if selected("latency") {
        latency(&nats, &js, &http, &sy_url).await;
    }
    if selected("turns") {
        turns(&http, &sy_url, sy.0.id()).await;
    }
    if selected("memory") {
        idle_session_memory().await;
    }
}

async fn publish(js: &async_nats::jetstream::Context, http: &reqwest::Client, sy_url: &str) {
    println!(
        "### Durable publish ({PUBLISHERS} concurrent publishers, {PUBLISH_TOTAL} events of ~{PAYLOAD} B, each acknowledged; {ROUNDS} rounds)\n"
    );
    // The three run in turn, ROUNDS times, and each round's ratios are taken within the
    // round: a run lasts about a second, and this machine's speed drifts more than
    // that between minutes.
    let socket = SocketPublisher::connect(sy_url).await;
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let nats = {
            let js = js.clone();
            throughput(PUBLISHERS, PUBLISH_TOTAL, move |i| {
                let js = js.clone();
                async move {
                    let body = serde_json::to_vec(&payload(i)).unwrap();
                    js.publish("bench.publish", body.into())
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                }
            })
            .await
        };
        let posted = {
            let (http, url) = (http.clone(), sy_url.to_owned());
            throughput(PUBLISHERS, PUBLISH_TOTAL, move |i| {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let r = http
                        .post(format!("{url}/v1/events"))
                        .json(&json!({ "topic": "bench.publish", "type": "bench", "data": payload(i) }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
            })
            .await
        };
        let socketed = {
            let socket = socket.clone();
            throughput(PUBLISHERS, PUBLISH_TOTAL, move |i| {
                let socket = socket.clone();
                async move {
                    let event =
                        json!({ "topic": "bench.publish", "type": "bench", "data": payload(i) });
                    let receipt = socket.publish(event.to_string()).await;
                    assert!(receipt["seq"].is_u64(), "{receipt}");
                }
            })
            .await
        };
        rounds.push([nats, posted, socketed]);
    }
    let column = |k: usize| {
        rounds
            .iter()
            .map(|r| format!("{:.0}", r[k]))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let ratios = |k: usize| {
        let mut r: Vec<f64> = rounds.iter().map(|r| r[k] / r[0]).collect();
        let each = r
            .iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        r.sort_by(f64::total_cmp);
        (r[r.len() / 2], each)
    };
    println!("| system | events/s, each round |");
    println!("|---|---|");
    println!(
        "| NATS JetStream 2.9 (file storage), async-nats | {} |",
        column(0)
    );
    println!(
        "| **Switchyard** `POST /v1/events` (HTTP/1.1, SQLite WAL, group commit) | {} |",
        column(1)
    );
    println!(
        "| **Switchyard** WebSocket `/v1/events/publish`, one connection shared (like the NATS client's) | {} |",
        column(2)
    );
    let ((posted, posted_each), (socketed, socketed_each)) = (ratios(1), ratios(2));
    println!(
        "\nratio Switchyard / JetStream, median of the rounds: **{posted:.2}** (a request per event; rounds {posted_each}), **{socketed:.2}** (the socket; rounds {socketed_each})\n"
    );

    println!(
        "### Pipelined durable publish ({PUBLISHERS} publishers, {PUBLISH_TOTAL} events, {BATCH} in flight per publisher)\n"
    );
    println!("| system | events/s |");
    println!("|---|---|");
    let batches = PUBLISH_TOTAL / BATCH;
    let nats_pipelined = {
        let js = js.clone();
        throughput(PUBLISHERS, batches, move |b| {
            let js = js.clone();
            async move {
                // Send BATCH publishes, then wait for their BATCH acks.
                let mut acks = Vec::with_capacity(BATCH);
                for i in 0..BATCH {
                    let body = serde_json::to_vec(&payload(b * BATCH + i)).unwrap();
                    acks.push(js.publish("bench.publish", body.into()).await.unwrap());
                }
                for ack in acks {
                    ack.await.unwrap();
                }
            }
        })
        .await
            * BATCH as f64
    };
    println!("| NATS JetStream, {BATCH} publishes then their acks | {nats_pipelined:.0} |");
    let sy_batched = {
        let (http, url) = (http.clone(), sy_url.to_owned());
        throughput(PUBLISHERS, batches, move |b| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let events: Vec<_> = (0..BATCH)
                    .map(|i| json!({ "topic": "bench.publish", "type": "bench", "data": payload(b * BATCH + i) }))
                    .collect();
                let r = http.post(format!("{url}/v1/events")).json(&events).send().await.unwrap();
                assert_eq!(r.status(), 201);
            }
        })
        .await
            * BATCH as f64
    };
    println!(
        "| **Switchyard** `POST /v1/events` with a batch of {BATCH} (one transaction) | {sy_batched:.0} |"
    );
    println!(
        "\nratio Switchyard / JetStream: **{:.2}**\n",
        sy_batched / nats_pipelined
    );
}

/// Only Switchyard's publishing socket, `BENCH_EVENTS` events (default 400,000): a run
/// long enough to profile the server; named on the command line, never by default.
async fn socket_only(sy_url: &str) {
    let total = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400_000);
    let socket = SocketPublisher::connect(sy_url).await;
    let rate = throughput(PUBLISHERS, total, move |i| {
        let socket = socket.clone();
        async move {
            let event = json!({ "topic": "bench.publish", "type": "bench", "data": payload(i) });
            let receipt = socket.publish(event.to_string()).await;
            assert!(receipt["seq"].is_u64(), "{receipt}");
        }
    })
    .await;
    println!("socket publish: {rate:.0} events/s");
}

/// One WebSocket on `/v1/events/publish` shared by every publisher, as the NATS
/// client shares its connection: each publisher sends its event and awaits its
/// receipt. Receipts come in the order events were sent; one task writes (a flush per
/// burst) and one reads.
struct SocketPublisher {
    /// Messages to send, and the receipts' waiters in the same order.
    send: std::sync::Mutex<(
        tokio::sync::mpsc::UnboundedSender<String>,
        std::collections::VecDeque<tokio::sync::oneshot::Sender<serde_json::Value>>,
    )>,
}

impl SocketPublisher {
    async fn connect(sy_url: &str) -> Arc<Self> {
        use futures::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        let ws = common::websocket(sy_url, "/v1/events/publish").await;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                sink.feed(Message::text(first)).await.unwrap();
                while let Ok(next) = rx.try_recv() {
                    sink.feed(Message::text(next)).await.unwrap();
                }
                sink.flush().await.unwrap();
            }
        });
        let publisher = Arc::new(Self {
            send: std::sync::Mutex::new((tx, Default::default())),
        });
        let weak = Arc::downgrade(&publisher);
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(reply))) = stream.next().await {
                let Some(publisher) = weak.upgrade() else {
                    return;
                };
                let waiter = publisher.send.lock().unwrap().1.pop_front().unwrap();
                let _ = waiter.send(serde_json::from_str(&reply).unwrap());
            }
        });
        publisher
    }

    async fn publish(&self, event: String) -> serde_json::Value {
        let (done, receipt) = tokio::sync::oneshot::channel();
        {
            let mut send = self.send.lock().unwrap();
            send.1.push_back(done);
            send.0.send(event).unwrap();
        }
        receipt.await.unwrap()
    }
}

async fn latency(
    nats: &async_nats::Client,
    js: &async_nats::jetstream::Context,
    http: &reqwest::Client,
    sy_url: &str,
) {
    println!(
        "### Publish → subscriber latency at {RATE} events/s ({LATENCY_SECONDS} s, first second discarded)\n"
    );
    println!("| system | p50 | p99 | max | received |");
    println!("|---|---|---|---|---|");
    let base = Instant::now();
    let nats_lat = {
        let consumer = js
            .get_stream("BENCH")
            .await
            .unwrap()
            .create_consumer(async_nats::jetstream::consumer::push::OrderedConfig {
                deliver_subject: nats.new_inbox(),
                filter_subject: "bench.latency".into(),
                deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let receiver = tokio::spawn(async move {
            let mut lat = Vec::new();
            while let Ok(Some(Ok(m))) =
                tokio::time::timeout(Duration::from_secs(2), messages.next()).await
            {
                let sent: u64 = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
                lat.push(base.elapsed().saturating_sub(Duration::from_nanos(sent)));
            }
            lat
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        paced(RATE, LATENCY_SECONDS, |_| {
            let js = js.clone();
            async move {
                let sent = base.elapsed().as_nanos() as u64;
                js.publish("bench.latency", sent.to_string().into())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        })
        .await;
        receiver.await.unwrap()
    };
    report("NATS JetStream push consumer", nats_lat);
    let posted = sse_latency(http, sy_url, base, |sent| {
        let (http, url) = (http.clone(), sy_url.to_owned());
        async move {
            let event =
                json!({ "topic": "bench.latency", "type": "bench", "data": { "sent": sent } });
            let r = http
                .post(format!("{url}/v1/events"))
                .json(&event)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    })
    .await;
    report(
        "**Switchyard** SSE `GET /v1/events`, published by `POST /v1/events`",
        posted,
    );
    let socket = SocketPublisher::connect(sy_url).await;
    let socketed = sse_latency(http, sy_url, base, |sent| {
        let socket = socket.clone();
        async move {
            let event =
                json!({ "topic": "bench.latency", "type": "bench", "data": { "sent": sent } });
            let receipt = socket.publish(event.to_string()).await;
            assert!(receipt["seq"].is_u64(), "{receipt}");
        }
    })
    .await;
    report(
        "**Switchyard** SSE `GET /v1/events`, published on the socket (one connection, like NATS)",
        socketed,
    );
}

/// Publish→subscriber latencies of Switchyard: a SSE subscriber on `bench.latency`
/// while `publish(sent)` is paced at RATE, `sent` being nanoseconds since `base`.
async fn sse_latency<F, Fut>(
    http: &reqwest::Client,
    sy_url: &str,
    base: Instant,
    publish: F,
) -> Vec<Duration>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let resp = http
        .get(format!("{sy_url}/v1/events?topic=bench.latency"))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let receiver = tokio::spawn(async move {
        let mut lat = Vec::new();
        let mut buf = String::new();
        while let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_secs(2), body.next()).await
        {
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                    let e: serde_json::Value = serde_json::from_str(data).unwrap();
                    let sent = e["data"]["sent"].as_u64().unwrap();
                    lat.push(base.elapsed().saturating_sub(Duration::from_nanos(sent)));
                }
            }
        }
        lat
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    paced(RATE, LATENCY_SECONDS, |_| {
        publish(base.elapsed().as_nanos() as u64)
    })
    .await;
    receiver.await.unwrap()
}

/// Turns per second next to hello-world requests per second, with the CPU each takes
/// (the server's and the bench client's apart), to show where a turn's budget goes.
/// The server's is its whole process's while the turns run (`BENCH_SWITCHYARD` must
/// name the binary itself, not a script that starts it); the client's includes this
/// bench's allocation counting (one atomic add per allocation and free).
async fn turns(http: &reqwest::Client, sy_url: &str, server_pid: u32) {
    let clients = turn_clients();
    println!(
        "\n### Session turns over HTTP vs an axum hello-world ({} concurrent clients)\n",
        clients
    );
    println!("| measurement | per second |");
    println!("|---|---|");
    let hello_port = free_port();
    let hello = tokio::spawn(async move {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "Hello, World!" }));
        let l = tokio::net::TcpListener::bind(("127.0.0.1", hello_port))
            .await
            .unwrap();
        axum::serve(l, app).await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let me = std::process::id();
    let hello_cpu = cpu_time(me);
    let hello_requests = turn_count() * 4;
    let hello_rate = {
        let http = http.clone();
        throughput(clients, hello_requests, move |_| {
            let http = http.clone();
            async move {
                let r = http
                    .get(format!("http://127.0.0.1:{hello_port}/"))
                    .send()
                    .await
                    .unwrap();
                r.bytes().await.unwrap();
            }
        })
        .await
    };
    hello.abort();
    let hello_cpu = per_job(cpu_time(me) - hello_cpu, hello_requests);
    println!("| axum hello-world requests | {hello_rate:.0} |");
    let (server_cpu, client_cpu) = (cpu_time(server_pid), cpu_time(me));
    let writer_cpu = thread_cpu_time(server_pid, WRITER_THREAD);
    let turns = Arc::new(AtomicU64::new(0));
    let turn_rate = {
        let (http, url, turns) = (http.clone(), sy_url.to_owned(), turns.clone());
        throughput(clients, turn_count(), move |i| {
            let (http, url, turns) = (http.clone(), url.clone(), turns.clone());
            async move {
                let key = format!("bench-{}", i % clients);
                let body = json!({ "messages": [{ "id": "m", "role": "user", "parts": [{ "type": "text", "text": "hello world" }] }] });
                let r = http.post(format!("{url}/v1/sessions/{key}/chat")).json(&body).send().await.unwrap();
                let text = r.text().await.unwrap();
                assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
                turns.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await
    };
    let server_cpu = per_job(cpu_time(server_pid) - server_cpu, turn_count());
    let client_cpu = per_job(cpu_time(me) - client_cpu, turn_count());
    let writer_cpu = per_job(
        thread_cpu_time(server_pid, WRITER_THREAD) - writer_cpu,
        turn_count(),
    );
    println!("| **Switchyard session turns** (`/chat`, echo-agent, streamed) | {turn_rate:.0} |");
    println!(
        "\nratio turns / hello-world requests: **{:.2}**\n",
        turn_rate / hello_rate
    );
    // The cores' time at 0.3x hello-world, per turn, for the server and the client
    // together (both run on this machine).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let budget = cores as f64 * 1e6 / (0.3 * hello_rate);
    println!(
        "CPU per hello-world request (client and server, one process): {hello_cpu:.1} µs; \
         per turn: server {server_cpu:.1} µs, bench client {client_cpu:.1} µs; \
         {cores} cores at 0.3x hello-world allow {budget:.1} µs per turn for both\n"
    );
    // The store's writer thread apart from the rest of the server: what a turn would
    // cost if its writes cost nothing.
    println!(
        "of the server's: store writer thread {writer_cpu:.1} µs, every other thread {:.1} µs; \
         without the writer's, server and client would spend {:.1} µs per turn\n",
        server_cpu - writer_cpu,
        server_cpu - writer_cpu + client_cpu
    );
}

/// The name of the store's writer thread in the server (`store/sqlite/writer.rs`).
const WRITER_THREAD: &str = "store-writer";

/// Microseconds of `cpu` per one of `jobs`.
fn per_job(cpu: Duration, jobs: usize) -> f64 {
    cpu.as_secs_f64() * 1e6 / jobs as f64
}

/// Fire `job` at `rate` per second for `seconds`, each on its own task.
async fn paced<F, Fut>(rate: u64, seconds: u64, job: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..rate * seconds {
        tokio::time::sleep_until(start + interval * i as u32).await;
        tasks.push(tokio::spawn(job(i)));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn report(name: &str, mut lat: Vec<Duration>) {
    let skip = (RATE as usize).min(lat.len());
    let mut lat = lat.split_off(skip);
    lat.sort();
    if lat.is_empty() {
        println!("| {name} | - | - | - | 0 |");
        return;
    }
    println!(
        "| {name} | {} | {} | {} | {} |",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap()),
        lat.len() + skip
    );
}

/// Heap held per idle session: in memory (worker waiting) and after it left memory.
async fn idle_session_memory() {
    use switchyard::bus::Bus;
    use switchyard::plugins::{EngineOptions, HostServices, PluginHost};
    use switchyard::sessions::{NewSession, Sessions, SessionsConfig};
    use switchyard::store::Store;

    const N: usize = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins/echo-agent");
    std::fs::create_dir_all(&plugins).unwrap();
    for f in ["plugin.toml", "echo-agent.wasm"] {
        std::fs::copy(repo().join("plugins/echo-agent").join(f), plugins.join(f)).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let bus = Bus::new(store.clone());
    let host = Arc::new(
        PluginHost::new(
            EngineOptions {
                concurrent_instances: 16,
            },
            dir.path().join("cache"),
            HostServices {
                store: Some(store.clone()),
                bus: Some(bus.clone()),
                plugin_config: Default::default(),
            },
        )
        .unwrap(),
    );
    host.scan(&dir.path().join("plugins")).await;
    let idle = Duration::from_secs(3);
    let sessions = Sessions::new(
        store,
        bus,
        host,
        SessionsConfig {
            idle_timeout: idle,
            ..Default::default()
        },
    );
    // Warm up everything that is allocated once (connections, caches, the plugin).
    sessions
        .create(NewSession {
            key: Some("warm".into()),
            ..NewSession::default()
        })
        .await
        .unwrap();
    sessions.enqueue("warm", "hi".into()).await.unwrap();
    tokio::time::sleep(idle + Duration::from_secs(1)).await;

    let before = LIVE_BYTES.load(Ordering::Relaxed);
    for i in 0..N {
        let key = format!("idle-{i}");
        sessions
            .create(NewSession {
                key: Some(key.clone()),
                ..NewSession::default()
            })
            .await
            .unwrap();
        sessions.enqueue(&key, "hello".into()).await.unwrap();
    }
    while sessions
        .snapshot(&format!("idle-{}", N - 1))
        .await
        .unwrap()
        .queue_depth
        > 0
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resident = sessions.in_memory().await;
    let with_workers = LIVE_BYTES.load(Ordering::Relaxed);
    tokio::time::sleep(idle + Duration::from_secs(2)).await;
    let evicted = LIVE_BYTES.load(Ordering::Relaxed);
    println!("### Memory of an idle session ({N} sessions, one turn each, live heap bytes)\n");
    println!("| state | bytes per session |");
    println!("|---|---|");
    // Per resident worker: what leaving memory freed, over the workers that left, plus
    // what every session keeps. (Dividing by N undercounted whenever some workers had
    // already left: the faster the turns, the more were still resident.)
    let kept = evicted.saturating_sub(before) / N;
    println!(
        "| idle, worker still in memory ({resident} resident) | {} |",
        with_workers.saturating_sub(evicted) / resident.max(1) + kept
    );
    println!(
        "| **idle, left memory** ({} resident) | {} |",
        sessions.in_memory().await,
        kept
    );
}
