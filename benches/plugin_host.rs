//! Plugin host benchmark (a bench binary; run with `cargo bench --bench plugin_host`).
//!
//! In one run, on the same machine and the same components:
//! - raw wasmtime: a typed call on an already-instantiated component (the floor);
//! - instantiate: a fresh store + `InstancePre::instantiate_async` (pooling allocator);
//! - Switchyard's call path: `PluginHost::describe`/`evaluate`/`run_turn` — fresh
//!   sandboxed store, instantiate, call, classify, health bookkeeping (`run_turn` as a
//!   session turn makes it, with and without 200 messages of history);
//! - loading the Python component from the on-disk cache vs compiling it.
//!
//! Builds the components it needs first if they are missing (`plugins/build-all.sh`).
//! Prints a Markdown table.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard::event::Event;
use switchyard::plugins::bindings::{agent::AgentAdapterPre, trigger::TriggerPre};
use switchyard::plugins::host::{
    BusCap, CallLimits, ConfigCap, HttpPolicy, KvCap, LogCap, PluginState, TurnCap, linker,
};
use switchyard::plugins::types::{Message, Role, TurnRequest};
use switchyard::plugins::{
    ComponentCache, EngineOptions, HostServices, PluginHost, PluginKind, TurnControl, cache,
};
use wasmtime::Store;
use wasmtime::component::Component;

mod common;
use common::{percentile, repo};

fn component_path(dir: &str, name: &str) -> PathBuf {
    let p = repo().join(dir).join(name).join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} missing: run plugins/build-all.sh",
        p.display()
    );
    p
}

/// A store for the raw-wasmtime rows: same engine and state type, no deadline.
fn bare_store(engine: &wasmtime::Engine) -> Store<PluginState> {
    let mut store = Store::new(engine, bare_state());
    store.set_epoch_deadline(1 << 40);
    store
}

fn bare_state() -> PluginState {
    let name: std::sync::Arc<str> = "bench".into();
    PluginState::new(
        HttpPolicy::new(name.clone(), Vec::new().into()),
        CallLimits::new(64 << 20),
        LogCap::new(name.clone()),
        BusCap::new(name.clone(), false, None),
        KvCap::new(name, false, None, 0),
        ConfigCap::new(Default::default(), Default::default()),
        TurnCap::default(),
    )
}

/// A turn of the session turns bench (`bus_sessions turns`): "hello world" after
/// `history_len` messages of the same, the request and replies alternating.
fn turn_request(history_len: usize) -> TurnRequest {
    let history = (0..history_len)
        .map(|i| Message {
            role: if i % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            },
            content: "hello world".into(),
        })
        .collect();
    TurnRequest {
        session: "bench-0".into(),
        history,
        input: "hello world".into(),
        config: json!({}),
    }
}

/// Median and p99 of `samples`.
struct Stats {
    median: Duration,
    p99: Duration,
    n: usize,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    Stats {
        median: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
        n: samples.len(),
    }
}

fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

const WARMUP: usize = 200;
const ITERS: usize = 5000;

async fn measure<F: AsyncFnMut()>(mut f: F) -> Stats {
    for _ in 0..WARMUP {
        f().await;
    }
    let mut samples = Vec::with_capacity(ITERS);
    for _ in 0..ITERS {
        let t = Instant::now();
        f().await;
        samples.push(t.elapsed());
    }
    stats(samples)
}

fn row(what: &str, component: &str, s: &Stats, fmt: fn(Duration) -> String) {
    println!(
        "| {what} | {component} | {} | {} | {} |",
        fmt(s.median),
        fmt(s.p99),
        s.n
    );
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
    common::ensure_built(&[
        "plugins/throttle-trigger/throttle-trigger.wasm",
        "plugins/echo-agent/echo-agent.wasm",
        "plugins/webhook-json/webhook-json.wasm",
        "tests/fixtures/hostile/hostile.wasm",
    ]);
    let cache_dir = tempfile::tempdir().unwrap();
    let plugins_dir = tempfile::tempdir().unwrap();
    for (dir, name) in [
        ("plugins", "throttle-trigger"),
        ("plugins", "echo-agent"),
        ("tests/fixtures", "hostile"),
    ] {
        let src = repo().join(dir).join(name);
        let dst = plugins_dir.path().join(name);
        std::fs::create_dir_all(&dst).unwrap();
        for f in ["plugin.toml".to_owned(), format!("{name}.wasm")] {
            std::fs::copy(src.join(&f), dst.join(&f)).unwrap();
        }
    }
    let host = PluginHost::new(
        EngineOptions::default(),
        cache_dir.path(),
        HostServices::default(),
    )
    .unwrap();
    host.scan(plugins_dir.path()).await;
    let engine = host.engine().clone();
    let linker = linker(&engine).unwrap();

    println!("| measurement | component | median | p99 | samples |");
    println!("|---|---|---|---|---|");

    // --- C trigger: throttle-trigger, export describe ---
    let c_component =
        Component::from_file(&engine, component_path("plugins", "throttle-trigger")).unwrap();
    let c_pre = TriggerPre::new(linker.instantiate_pre(&c_component).unwrap()).unwrap();
    {
        let mut store = bare_store(&engine);
        let bindings = c_pre.instantiate_async(&mut store).await.unwrap();
        let s = measure(async || {
            bindings
                .switchyard_plugin_trigger_api()
                .call_describe(&mut store)
                .await
                .unwrap();
        })
        .await;
        row(
            "raw wasmtime typed call (pre-instantiated)",
            "C throttle-trigger `describe`",
            &s,
            us,
        );
    }
    let s = measure(async || {
        let mut store = bare_store(&engine);
        c_pre.instantiate_async(&mut store).await.unwrap();
    })
    .await;
    row(
        "instantiate (fresh store + InstancePre)",
        "C throttle-trigger",
        &s,
        us,
    );
    let c_plugin = host
        .active("throttle-trigger", PluginKind::Trigger)
        .unwrap();
    let s = measure(async || {
        host.describe(&c_plugin).await.unwrap();
    })
    .await;
    row(
        "**Switchyard call path**",
        "C throttle-trigger `describe`",
        &s,
        us,
    );

    // --- Rust adapter: echo-agent, export describe ---
    let r_component =
        Component::from_file(&engine, component_path("plugins", "echo-agent")).unwrap();
    let r_pre = AgentAdapterPre::new(linker.instantiate_pre(&r_component).unwrap()).unwrap();
    {
        let mut store = bare_store(&engine);
        let bindings = r_pre.instantiate_async(&mut store).await.unwrap();
        let s = measure(async || {
            bindings
                .switchyard_plugin_agent_api()
                .call_describe(&mut store)
                .await
                .unwrap();
        })
        .await;
        row(
            "raw wasmtime typed call (pre-instantiated)",
            "Rust echo-agent `describe`",
            &s,
            us,
        );
    }
    let s = measure(async || {
        let mut store = bare_store(&engine);
        r_pre.instantiate_async(&mut store).await.unwrap();
    })
    .await;
    row(
        "instantiate (fresh store + InstancePre)",
        "Rust echo-agent",
        &s,
        us,
    );
    let r_plugin = host.active("echo-agent", PluginKind::AgentAdapter).unwrap();
    let s = measure(async || {
        host.describe(&r_plugin).await.unwrap();
    })
    .await;
    row(
        "**Switchyard call path**",
        "Rust echo-agent `describe`",
        &s,
        us,
    );

    // --- A session turn's plugin call: echo-agent `run-turn`, as a turn makes it ---
    for history_len in [0, 200] {
        let s = measure(async || {
            let (events, mut stream) = tokio::sync::mpsc::channel(256);
            host.run_turn(
                "echo-agent",
                turn_request(history_len),
                events,
                TurnControl::default(),
            )
            .await
            .unwrap();
            while stream.try_recv().is_ok() {}
        })
        .await;
        row(
            "**Switchyard call path**",
            &format!("Rust echo-agent `run-turn`, {history_len} messages of history"),
            &s,
            us,
        );
    }

    // --- Rust trigger with JSON in and out: hostile fixture, mode ok ---
    let event = Event {
        seq: 1,
        id: "01BENCH".into(),
        topic: "bench.event".into(),
        event_type: "bench".into(),
        source: "bench".into(),
        subject: None,
        time: "2026-11-21T09:00:00Z".into(),
        correlation_id: None,
        data: json!({ "text": "hello", "n": 1 }).into(),
    };
    let params = json!({ "mode": "ok" });
    let s = measure(async || {
        host.evaluate("hostile", &event, &params).await.unwrap();
    })
    .await;
    row(
        "**Switchyard call path**",
        "Rust trigger `evaluate` (JSON in/out)",
        &s,
        us,
    );

    // --- Python component: compile vs load from the cache ---
    let py = component_path("plugins", "webhook-json");
    let bytes = std::fs::read(&py).unwrap();
    let hash = cache::content_hash(&bytes);
    let py_cache = ComponentCache::new(cache_dir.path().join("py"));
    let mut compiles = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        Component::new(&engine, &bytes).unwrap();
        compiles.push(t.elapsed());
    }
    py_cache.load(&engine, &bytes, &hash).unwrap(); // fill the cache
    let mut loads = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let (_, outcome) = py_cache.load(&engine, &bytes, &hash).unwrap();
        assert_eq!(outcome, switchyard::plugins::CacheOutcome::Hit);
        loads.push(t.elapsed());
    }
    let (compile, load) = (stats(compiles), stats(loads));
    row(
        &format!("compile ({} MB component)", bytes.len() / 1_000_000),
        "Python webhook-json",
        &compile,
        ms,
    );
    row("**load from cache**", "Python webhook-json", &load, ms);
    println!(
        "\ncache speed-up for the Python component: {:.0}x (median compile / median cached load)",
        compile.median.as_secs_f64() / load.median.as_secs_f64()
    );
}
