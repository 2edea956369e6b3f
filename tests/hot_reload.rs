//! Hot reload against a real server process and real files: a plugin replaced on disk
//! while calls run (zero failed calls, the new version answers afterwards), a broken
//! replacement that keeps the old version, and a deleted plugin that unloads.

mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use util::{Server, replace_file};

async fn echo(server: &Server, text: &str) -> (u16, serde_json::Value) {
    server
        .call(
            "echo-agent",
            "run-turn",
            json!({ "session": "s", "input": text }),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_while_calls_run_then_break_then_delete() {
    let server = Arc::new(Server::start(&["echo-agent"]).await);
    let dir = server.plugins_dir.join("echo-agent");
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    assert_eq!(echo(&server, "hi").await.1["result"]["text"], "hi");

    // Callers hammer the plugin during the swap.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, saw_new) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (server, stop, ok, failed, saw_new) = (
            server.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            saw_new.clone(),
        );
        callers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = echo(&server, "hello").await;
                if status != 200 {
                    eprintln!("failed call: {status} {body}");
                    failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                ok.fetch_add(1, Ordering::Relaxed);
                let text = body["result"]["text"].as_str().unwrap();
                match text {
                    "hello" => {}
                    "v2: hello" => {
                        saw_new.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("unexpected answer {other:?}"),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The new version: same component rewritten in place, a manifest whose default
    // prefix changed. Both land by rename, as editors and build tools write them.
    let wasm = std::fs::read(dir.join("echo-agent.wasm")).unwrap();
    replace_file(&dir.join("echo-agent.wasm"), &wasm);
    let v2 = manifest.replace("default = \"\"", "default = \"v2: \"");
    assert_ne!(
        v2, manifest,
        "the echo-agent manifest declares config.prefix with default \"\""
    );
    replace_file(&dir.join("plugin.toml"), v2.as_bytes());
    let start = std::time::Instant::now();
    while saw_new.load(Ordering::Relaxed) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the new version never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("hot reload under load: {ok} calls succeeded, {failed} failed");
    assert_eq!(failed, 0);
    assert!(ok > 20, "too few calls to show anything: {ok}");
    assert_eq!(
        echo(&server, "hello").await.1["result"]["text"],
        "v2: hello"
    );

    // A broken component: refused, the last good version keeps answering, the error
    // is visible.
    replace_file(
        &dir.join("echo-agent.wasm"),
        b"\0asm this is not a component",
    );
    let p = server
        .wait_plugin("echo-agent", Duration::from_secs(10), |p| {
            p["last_error"].is_string()
        })
        .await;
    assert_eq!(p["status"], "ready");
    let err = p["last_error"].as_str().unwrap();
    assert!(
        err.contains("echo-agent.wasm") && err.contains("not a valid WebAssembly component"),
        "{err}"
    );
    assert_eq!(
        echo(&server, "still").await.1["result"]["text"],
        "v2: still"
    );

    // A broken manifest: same story, with line and column.
    replace_file(&dir.join("echo-agent.wasm"), &wasm);
    replace_file(
        &dir.join("plugin.toml"),
        v2.replace("kind =", "kind = = ").as_bytes(),
    );
    let p = server
        .wait_plugin("echo-agent", Duration::from_secs(10), |p| {
            p["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("plugin.toml:"))
        })
        .await;
    assert_eq!(p["status"], "ready");
    assert_eq!(
        echo(&server, "again").await.1["result"]["text"],
        "v2: again"
    );

    // Fixed: the error clears.
    replace_file(&dir.join("plugin.toml"), manifest.as_bytes());
    server
        .wait_plugin("echo-agent", Duration::from_secs(10), |p| {
            p["last_error"].is_null()
        })
        .await;
    assert_eq!(echo(&server, "back").await.1["result"]["text"], "back");

    // Deleted: unloaded.
    std::fs::remove_dir_all(&dir).unwrap();
    let start = std::time::Instant::now();
    loop {
        let (status, _) = server.get("/v1/plugins/echo-agent").await;
        if status == 404 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never unloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(echo(&server, "gone").await.0, 404);
}
