//! Containment: a deliberately hostile component (tests/fixtures/hostile) tries an
//! infinite loop, a memory bomb, deep recursion, a 100 MB output, outbound HTTP to a
//! host not on its allow-list, reading a file and an environment variable. Each is a
//! typed error (or a refused capability) for that call; the host keeps serving.

mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard::bus::{Bus, TopicPattern};
use switchyard::event::Event;
use switchyard::plugins::types::TurnRequest;
use switchyard::plugins::{CallError, EngineOptions, HostServices, PluginHost, TurnControl};
use switchyard::store::Store;

struct Fixture {
    host: Arc<PluginHost>,
    bus: Bus,
    plugins: tempfile::TempDir,
    _data: tempfile::TempDir,
}

async fn fixture(edit_hostile_manifest: impl Fn(String) -> String) -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let plugins = tempfile::tempdir().unwrap();
    let hostile = util::install_plugin(plugins.path(), "hostile");
    let manifest = std::fs::read_to_string(hostile.join("plugin.toml")).unwrap();
    std::fs::write(hostile.join("plugin.toml"), edit_hostile_manifest(manifest)).unwrap();
    util::install_plugin(plugins.path(), "echo-agent");
    let store = Store::open(data.path()).unwrap();
    let bus = Bus::new(store.clone());
    let host = PluginHost::new(
        EngineOptions {
            concurrent_instances: 32,
        },
        util::shared_cache(),
        HostServices {
            store: Some(store),
            bus: Some(bus.clone()),
            plugin_config: Default::default(),
        },
    )
    .unwrap();
    let loaded = host.scan(plugins.path()).await;
    for (name, outcome) in &loaded {
        assert!(
            !matches!(outcome, switchyard::plugins::ReloadOutcome::Failed(_)),
            "{name}: {outcome:?}"
        );
    }
    Fixture {
        host: Arc::new(host),
        bus,
        plugins,
        _data: data,
    }
}

fn event() -> Event {
    Event {
        seq: 0,
        id: "01TEST".into(),
        topic: "test.hostile".into(),
        event_type: "test".into(),
        source: "test".into(),
        subject: None,
        time: "2026-11-21T09:00:00Z".into(),
        correlation_id: None,
        data: json!({ "n": 1 }).into(),
    }
}

async fn hostile(
    f: &Fixture,
    params: Value,
) -> Result<switchyard::plugins::types::Decision, CallError> {
    f.host.evaluate("hostile", &event(), &params).await
}

/// The host still serves: the hostile plugin's benign mode and another plugin answer.
async fn assert_still_serving(f: &Fixture) {
    let ok = hostile(f, json!({ "mode": "ok" }))
        .await
        .expect("ok mode after a failure");
    assert!(ok.fire);
    assert_eq!(ok.inputs, json!({ "echo": { "n": 1 } }));
    let (tx, _rx) = tokio::sync::mpsc::channel(64);
    let turn = f
        .host
        .run_turn(
            "echo-agent",
            TurnRequest {
                session: "s".into(),
                history: vec![],
                input: "still here".into(),
                config: json!({}),
            },
            tx,
            TurnControl::default(),
        )
        .await
        .expect("echo-agent answers");
    assert_eq!(turn.text, "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_times_out_within_deadline_and_others_keep_running() {
    let f = fixture(|m| m).await;
    // While the loop spins, other calls complete: the epoch callback yields.
    let host = f.host.clone();
    let spinning = tokio::spawn(async move {
        let start = Instant::now();
        let r = host
            .evaluate("hostile", &event(), &json!({ "mode": "loop" }))
            .await;
        (r, start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let during = Instant::now();
    assert_still_serving(&f).await;
    assert!(
        during.elapsed() < Duration::from_millis(900),
        "calls during the loop were blocked"
    );

    let (result, elapsed) = spinning.await.unwrap();
    match result {
        Err(CallError::Timeout { timeout_ms, .. }) => assert_eq!(timeout_ms, 1000),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // Deadline 1000 ms; the epoch tick is 5 ms. Allow scheduling slack on a busy machine.
    assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(1500),
        "stopped late: {elapsed:?}"
    );
    assert_still_serving(&f).await;
}

#[tokio::test]
async fn memory_bomb_is_out_of_memory() {
    let f = fixture(|m| m).await;
    match hostile(&f, json!({ "mode": "oom" })).await {
        Err(CallError::OutOfMemory { limit_mb, .. }) => assert_eq!(limit_mb, 32),
        other => panic!("expected out of memory, got {other:?}"),
    }
    assert_still_serving(&f).await;
}

#[tokio::test]
async fn deep_recursion_traps() {
    let f = fixture(|m| m).await;
    // Rust keeps its stack in linear memory, so the overflow shows as an out-of-bounds
    // access (or as a wasm stack overflow for frames that live on the wasm stack).
    match hostile(&f, json!({ "mode": "recurse" })).await {
        Err(CallError::StackOverflow { .. }) => {}
        Err(CallError::Trap { message, .. }) => {
            assert!(
                message.contains("out of bounds") || message.contains("stack"),
                "{message}"
            )
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_still_serving(&f).await;
}

#[tokio::test]
async fn panic_is_a_trap() {
    let f = fixture(|m| m).await;
    assert!(matches!(
        hostile(&f, json!({ "mode": "panic" })).await,
        Err(CallError::Trap { .. })
    ));
    assert_still_serving(&f).await;
}

#[tokio::test]
async fn hundred_megabyte_output_is_refused() {
    // Under its 32 MiB cap the plugin cannot even build the output.
    let f = fixture(|m| m).await;
    let r = hostile(
        &f,
        json!({ "mode": "big-output", "bytes": 100 * 1024 * 1024 }),
    )
    .await;
    assert!(matches!(r, Err(CallError::OutOfMemory { .. })), "{r:?}");
    assert_still_serving(&f).await;

    // With room to build it, the host refuses to take it. And with time: writing
    // 100 MB takes the guest most of its usual second on a busy machine, and this
    // test is about the size, not the deadline.
    let f = fixture(|m| {
        m.replace("memory_mb = 32", "memory_mb = 512")
            .replace("timeout_ms = 1000", "timeout_ms = 30000")
    })
    .await;
    let r = hostile(
        &f,
        json!({ "mode": "big-output", "bytes": 100 * 1024 * 1024 }),
    )
    .await;
    match r {
        Err(CallError::OutputTooLarge { bytes, limit, .. }) => {
            assert!(bytes >= 100 * 1024 * 1024);
            assert_eq!(limit, 16 * 1024 * 1024);
        }
        other => panic!("expected output too large, got {other:?}"),
    }
    assert_still_serving(&f).await;
}

#[tokio::test]
async fn outbound_http_only_to_allowed_hosts() {
    let f = fixture(|m| m).await;
    let mut denials = f
        .bus
        .subscribe_from(TopicPattern::parse("plugin.hostile.denied").unwrap(), None);
    // 127.0.0.1 is allowed: a real server on loopback answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let app = axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
        axum::serve(listener, app).await.unwrap();
    });
    let allowed = hostile(
        &f,
        json!({ "mode": "http", "url": format!("http://127.0.0.1:{port}/ping") }),
    )
    .await
    .unwrap();
    assert_eq!(allowed.reason, "status 200");

    // localhost resolves to the same machine, but it is not on the list.
    let denied = hostile(
        &f,
        json!({ "mode": "http", "url": format!("http://localhost:{port}/ping") }),
    )
    .await
    .unwrap();
    assert!(
        denied.reason.contains("HttpRequestDenied"),
        "{}",
        denied.reason
    );
    let notice = tokio::time::timeout(Duration::from_secs(5), denials.next())
        .await
        .expect("a denial event on the bus")
        .unwrap();
    let data = notice.data.value();
    assert!(
        data["denied"][0].as_str().unwrap().contains("localhost"),
        "{data}"
    );
    assert_still_serving(&f).await;
}

#[tokio::test]
async fn no_files_no_environment_no_undeclared_capabilities() {
    let f = fixture(|m| m).await;
    let read = hostile(&f, json!({ "mode": "read-file", "path": "/etc/passwd" }))
        .await
        .unwrap();
    assert!(read.reason.starts_with("error:"), "{}", read.reason);
    let cargo = hostile(
        &f,
        json!({ "mode": "read-file", "path": env!("CARGO_MANIFEST_DIR") }),
    )
    .await
    .unwrap();
    assert!(cargo.reason.starts_with("error:"), "{}", cargo.reason);

    let env = hostile(&f, json!({ "mode": "env", "name": "PATH" }))
        .await
        .unwrap();
    assert!(env.reason.starts_with("error:"), "{}", env.reason);
    assert!(env.reason.contains("0 vars"), "{}", env.reason);

    let publish = hostile(&f, json!({ "mode": "publish" })).await.unwrap();
    assert!(publish.reason.contains("denied"), "{}", publish.reason);
    let kv = hostile(&f, json!({ "mode": "kv" })).await.unwrap();
    assert!(kv.reason.contains("Denied"), "{}", kv.reason);
    assert_still_serving(&f).await;
}

#[tokio::test]
async fn repeated_faults_mark_the_plugin_unhealthy_until_it_recovers() {
    let f = fixture(|m| m).await;
    for _ in 0..5 {
        assert!(hostile(&f, json!({ "mode": "panic" })).await.is_err());
    }
    let summary = f.host.get("hostile").unwrap();
    assert_eq!(summary.status, "unhealthy");
    assert_eq!(summary.faults, 5);
    // Still callable (never silently dropped), and a success makes it healthy again.
    hostile(&f, json!({ "mode": "ok" })).await.unwrap();
    assert_eq!(f.host.get("hostile").unwrap().status, "ready");
    drop(f.plugins);
}
