//! Queues benchmark (a bench binary: `cargo bench --bench queues`): enqueue + claim +
//! ack cycles per second with 1, 8 and 64 concurrent workers, each cycle durable.
//!
//! - Switchyard: a real server over HTTP on loopback; each worker enqueues an item,
//!   claims one (with a 30 s lease) and acks it. Every step is committed before it is
//!   answered, twice: `[store] durability = "normal"` (SQLite WAL `synchronous=NORMAL`:
//!   in the log, safe from a process crash) and `"full"` (`synchronous=FULL`: synced to
//!   disk, one sync per group commit).
//! - Redis (Debian `redis-server`, same machine), the list + lease pattern: LPUSH;
//!   claim = one script doing LMOVE pending → processing and ZADD of the lease
//!   deadline; ack = one script doing LREM and ZREM. With the append-only file, twice:
//!   `appendfsync everysec` (like Switchyard's durability: every write is in the file
//!   before the next event loop, so a process crash loses nothing) and `appendfsync
//!   always` (an fsync per write batch).
//!
//! Prints Markdown. Needs `redis-server` on PATH (apt-get install redis-server).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{Proc, free_port, start_switchyard};

const WORKERS: [usize; 3] = [1, 8, 64];
const MEASURE: Duration = Duration::from_secs(5);

fn main() {
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

async fn run() {
    println!("## Queues (`cargo bench --bench queues`)\n");
    // Plain arguments narrow the run: `normal`/`full` (with its Redis twin), worker
    // counts, and `switchyard` to skip Redis (for comparing two builds).
    let args = common::plain_args();
    let counts: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let workers: Vec<usize> = WORKERS
        .into_iter()
        .filter(|w| counts.is_empty() || counts.contains(w))
        .collect();
    let with_redis = !args.iter().any(|a| a == "switchyard");
    let narrowed = args.iter().any(|a| a == "normal" || a == "full");
    println!(
        "| durability | workers | Switchyard HTTP | Switchyard socket | Redis | ratio HTTP | ratio socket |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (durability, fsync) in [("normal", "everysec"), ("full", "always")] {
        if narrowed && !args.iter().any(|a| a == durability) {
            continue;
        }
        let (http, socket) = switchyard(durability, &workers).await;
        let redis = match with_redis {
            true => redis(fsync, &workers).await,
            false => vec![f64::NAN; workers.len()],
        };
        let label = format!("{durability} / AOF {fsync}");
        for (i, w) in workers.iter().enumerate() {
            let (http, socket, redis) = (http[i], socket[i], redis[i]);
            println!(
                "| {label} | {w} | {http:.0} | {socket:.0} | {redis:.0} | {:.2}× | {:.2}× |",
                http / redis,
                socket / redis
            );
        }
    }
    println!();
}

/// Cycles per second of a Switchyard server with `durability`, at each worker count:
/// over HTTP requests, then over the queue's worker socket.
async fn switchyard(durability: &str, workers: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("recipes")).unwrap();
    std::fs::write(
        dir.path().join("switchyard.toml"),
        format!("[store]\ndurability = \"{durability}\"\n"),
    )
    .unwrap();
    let (_server, url) = start_switchyard(dir.path()).await;
    let (mut http, mut socket) = (Vec::new(), Vec::new());
    for &w in workers {
        http.push(measure(w, switchyard_cycle(url.clone())).await);
        socket.push(measure(w, socket_cycle(url.clone(), w)).await);
    }
    (http, socket)
}

/// Cycles per second of Redis with `appendfsync fsync`, at each worker count.
async fn redis(fsync: &str, workers: &[usize]) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let (_proc, client) = start_redis(dir.path(), fsync).await;
    let mut figures = Vec::new();
    for &w in workers {
        figures.push(measure(w, redis_cycle(client.clone())).await);
    }
    figures
}

async fn measure<F, Fut>(workers: usize, cycle: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (cycle, counting, stop, done) =
            (cycle.clone(), counting.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                cycle(w).await;
                if counting.load(Ordering::Relaxed) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(MEASURE).await;
    let n = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / elapsed.as_secs_f64()
}

fn switchyard_cycle(
    url: String,
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Clone {
    let http = common::http(256);
    move |w| {
        let (http, url) = (http.clone(), url.clone());
        Box::pin(async move {
            let post = |path: String, body: Value| {
                let http = http.clone();
                let url = url.clone();
                async move {
                    let r = http
                        .post(format!("{url}{path}"))
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success(), "{path}: {}", r.status());
                    r.json::<Value>().await.unwrap()
                }
            };
            post(
                "/v1/queues/bench/items".into(),
                json!({ "payload": { "worker": w } }),
            )
            .await;
            let claimed = post(
                "/v1/queues/bench/claim".into(),
                json!({ "worker": format!("w{w}"), "lease": "30s", "wait": "1s" }),
            )
            .await;
            let item = &claimed["items"][0];
            let id = item["id"].as_str().expect("an item to claim");
            post(
                format!("/v1/queues/bench/items/{id}/ack"),
                json!({ "lease_token": item["lease_token"], "result": { "ok": true } }),
            )
            .await;
        })
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The same cycle on `/v1/queues/bench/socket`: each worker on a socket of its own,
/// opened by its first cycle.
fn socket_cycle(
    url: String,
    workers: usize,
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Clone {
    let sockets: Arc<Vec<tokio::sync::Mutex<Option<Socket>>>> =
        Arc::new((0..workers).map(|_| Default::default()).collect());
    move |w| {
        let (sockets, url) = (sockets.clone(), url.clone());
        Box::pin(async move {
            use futures::{SinkExt, StreamExt};
            use tokio_tungstenite::tungstenite::Message;
            let mut slot = sockets[w].lock().await;
            if slot.is_none() {
                *slot = Some(common::websocket(&url, "/v1/queues/bench/socket").await);
            }
            let ws = slot.as_mut().unwrap();
            let mut call = async |command: Value| {
                ws.send(Message::text(command.to_string())).await.unwrap();
                loop {
                    match ws.next().await.unwrap().unwrap() {
                        Message::Text(text) => {
                            let reply: Value = serde_json::from_str(&text).unwrap();
                            assert!(reply.get("error").is_none(), "{command}: {reply}");
                            return reply;
                        }
                        Message::Ping(_) | Message::Pong(_) => continue,
                        other => panic!("{command}: {other:?}"),
                    }
                }
            };
            call(json!({ "op": "push", "payload": { "worker": w } })).await;
            let claimed = call(
                json!({ "op": "claim", "worker": format!("w{w}"), "lease": "30s", "wait": "1s" }),
            )
            .await;
            let item = &claimed["items"][0];
            let id = item["id"].as_str().expect("an item to claim");
            call(json!({ "op": "ack", "id": id, "lease_token": item["lease_token"], "result": { "ok": true } }))
                .await;
        })
    }
}

const CLAIM: &str = "local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
if v then redis.call('ZADD', KEYS[3], ARGV[1], v) end
return v";
const ACK: &str = "redis.call('LREM', KEYS[1], 1, ARGV[1])
return redis.call('ZREM', KEYS[2], ARGV[1])";

fn redis_cycle(
    client: redis::Client,
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Clone {
    let claim = redis::Script::new(CLAIM);
    let ack = redis::Script::new(ACK);
    move |w| {
        let (client, claim, ack) = (client.clone(), claim.clone(), ack.clone());
        Box::pin(async move {
            let mut con = connection(&client, w).await;
            let item = format!(
                "{{\"id\":\"{}\",\"payload\":{{\"worker\":{w}}}}}",
                ulid::Ulid::new()
            );
            let _: () = redis::cmd("LPUSH")
                .arg("q:pending")
                .arg(&item)
                .query_async(&mut con)
                .await
                .unwrap();
            let deadline = (chrono::Utc::now() + chrono::Duration::seconds(30)).timestamp_millis();
            let got: Option<String> = claim
                .key("q:pending")
                .key("q:processing")
                .key("q:leases")
                .arg(deadline)
                .invoke_async(&mut con)
                .await
                .unwrap();
            let got = got.expect("an item to claim");
            let _: i64 = ack
                .key("q:processing")
                .key("q:leases")
                .arg(&got)
                .invoke_async(&mut con)
                .await
                .unwrap();
        })
    }
}

/// One connection per worker, opened once.
async fn connection(client: &redis::Client, worker: usize) -> redis::aio::MultiplexedConnection {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CONNECTIONS: std::sync::LazyLock<
        Mutex<HashMap<(String, usize), redis::aio::MultiplexedConnection>>,
    > = std::sync::LazyLock::new(Default::default);
    let key = (client.get_connection_info().addr().to_string(), worker);
    if let Some(c) = CONNECTIONS.lock().unwrap().get(&key) {
        return c.clone();
    }
    let c = client.get_multiplexed_async_connection().await.unwrap();
    CONNECTIONS.lock().unwrap().insert(key, c.clone());
    c
}

async fn start_redis(dir: &std::path::Path, fsync: &str) -> (Proc, redis::Client) {
    let port = free_port();
    let child = Proc::spawn(
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", fsync])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null()),
    )
    .expect("redis-server on PATH (apt-get install redis-server)");
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let start = Instant::now();
    loop {
        if let Ok(mut c) = client.get_multiplexed_async_connection().await
            && redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok()
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, client)
}
