//! Every shipped plugin loads in a real server and does its job, called over HTTP the
//! way `switchyard plugin call` does; the CLI lists and checks them.

mod util;

use std::process::Command;

use serde_json::{Value, json};
use util::Server;

const SHIPPED: &[&str] = &[
    "echo-agent",
    "webhook-json",
    "keyword-trigger",
    "throttle-trigger",
];

fn event(topic: &str, time: &str, data: Value) -> Value {
    json!({ "topic": topic, "time": time, "data": data })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_plugins_load_and_work() {
    let server = Server::start(SHIPPED).await;

    // All four load, in four languages.
    let (status, list) = server.get("/v1/plugins").await;
    assert_eq!(status, 200);
    let mut langs: Vec<(&str, &str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["language"].as_str().unwrap_or("?"),
                p["status"].as_str().unwrap(),
            )
        })
        .collect();
    langs.sort();
    assert_eq!(
        langs,
        [
            ("echo-agent", "rust", "ready"),
            ("keyword-trigger", "javascript", "ready"),
            ("throttle-trigger", "c", "ready"),
            ("webhook-json", "python", "ready"),
        ]
    );

    // echo-agent streams the input back word by word.
    let (status, out) = server
        .call(
            "echo-agent",
            "run-turn",
            json!({ "session": "s1", "input": "hello  brave world" }),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let deltas: String = out["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "text-delta")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "hello  brave world");
    assert_eq!(
        out["events"].as_array().unwrap().len(),
        4,
        "3 words + message-complete: {out}"
    );
    assert_eq!(
        out["result"],
        json!({ "text": "hello  brave world", "stop_reason": "complete" })
    );

    // webhook-json turns a GitHub webhook into a bus event and a session message.
    let body = json!({
        "action": "created",
        "issue": { "number": 7, "title": "Crash on start" },
        "comment": { "body": "@switchyard please triage this" },
        "repository": { "full_name": "octo-org/hello-world" }
    });
    let (status, out) = server
        .call(
            "webhook-json",
            "handle-webhook",
            json!({
                "headers": [["X-GitHub-Event", "issue_comment"], ["content-type", "application/json"]],
                "body": body.to_string(),
            }),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["status"], 202);
    let item = &out["items"][0];
    assert_eq!(item["type"], "event");
    assert_eq!(item["topic"], "webhook.issue_comment.created");
    assert_eq!(item["subject"], "octo-org/hello-world");
    assert_eq!(item["data"]["body"]["issue"]["number"], 7);
    assert_eq!(item["data"]["headers"]["x-github-event"], "issue_comment");
    let (status, out) = server
        .call(
            "webhook-json",
            "handle-webhook",
            json!({ "body": "not json" }),
        )
        .await;
    assert_eq!(status, 422, "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("body is not JSON"),
        "{out}"
    );
    let (status, out) = server
        .call(
            "webhook-json",
            "deliver",
            json!({ "session": "s", "text": "hi" }),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no outbound channel"),
        "{out}"
    );

    // keyword-trigger fires on a whole word, case-insensitively, and names what it matched.
    let params = json!({ "keywords": ["panic", "stack trace"] });
    let (status, d) = server
        .call(
            "keyword-trigger",
            "evaluate",
            json!({ "event": event("chat.message", "2026-11-21T09:00:00Z", json!({ "text": "Panic! in prod" })), "params": params }),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["fire"], true);
    assert_eq!(d["inputs"]["matched"], json!(["panic"]));
    let (_, d) = server
        .call(
            "keyword-trigger",
            "evaluate",
            json!({ "event": event("chat.message", "2026-11-21T09:00:00Z", json!({ "text": "feeling panicky" })), "params": params }),
        )
        .await;
    assert_eq!(d["fire"], false, "{d}");
    let (status, d) = server
        .call(
            "keyword-trigger",
            "evaluate",
            json!({ "event": event("chat.message", "2026-11-21T09:00:00Z", json!({})), "params": { "keywords": "panic" } }),
        )
        .await;
    assert_eq!(status, 422, "{d}");
    assert!(
        d["error"]["message"].as_str().unwrap().contains("keywords"),
        "{d}"
    );

    // throttle-trigger counts in kv (SQLite): 2 per hour per repository.
    let throttle = |repo: &str, time: &str| {
        json!({
            "event": event("github.push", time, json!({ "repository": { "full_name": repo } })),
            "params": { "limit": 2, "window_seconds": 3600, "key": "/repository/full_name" },
        })
    };
    let mut fired = Vec::new();
    for (repo, time) in [
        ("acme/api", "2026-11-21T09:00:00Z"),
        ("acme/api", "2026-11-21T09:10:00+00:00"),
        ("acme/api", "2026-11-21T09:59:59.900Z"),
        ("acme/web", "2026-11-21T09:30:00Z"),
    ] {
        let (status, d) = server
            .call("throttle-trigger", "evaluate", throttle(repo, time))
            .await;
        assert_eq!(status, 200, "{d}");
        fired.push(d["fire"].as_bool().unwrap());
    }
    assert_eq!(fired, [true, true, false, true]);

    // The counter is durable: after a restart, the window is still full.
    let server = server.restart().await;
    let (_, d) = server
        .call(
            "throttle-trigger",
            "evaluate",
            throttle("acme/api", "2026-11-21T09:45:00Z"),
        )
        .await;
    assert_eq!(d["fire"], false, "{d}");
    assert_eq!(d["inputs"]["count"], 4, "{d}");
    // A new window starts afresh.
    let (_, d) = server
        .call(
            "throttle-trigger",
            "evaluate",
            throttle("acme/api", "2026-11-21T10:00:00Z"),
        )
        .await;
    assert_eq!(d["fire"], true, "{d}");

    // The CLI lists the running server's plugins.
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .env("SWITCHYARD_TOKEN", util::ADMIN_TOKEN)
        .args(["plugin", "list", "--json", "--server", &server.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 4);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"] == "ready" && p["from_cache"] == true)
    );
}

fn switchyard(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .env("SWITCHYARD_TOKEN", util::ADMIN_TOKEN)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plugin_list_offline_and_plugin_check() {
    let plugins = tempfile::tempdir().unwrap();
    for name in ["echo-agent", "throttle-trigger"] {
        util::install_plugin(plugins.path(), name);
    }
    let cache = util::shared_cache();
    let data = cache.parent().unwrap().join("test-offline-data");
    let data = data.to_str().unwrap();
    std::fs::create_dir_all(data).unwrap();
    // A symlinked cache keeps the offline check from recompiling.
    let _ = std::fs::create_dir_all(format!("{data}/cache"));
    let _ = std::os::unix::fs::symlink(&cache, format!("{data}/cache/components"));

    let (ok, stdout, stderr) = switchyard(&[
        "plugin",
        "list",
        "--plugins",
        plugins.path().to_str().unwrap(),
        "--data-dir",
        data,
    ]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{stdout}");
    assert!(
        lines[1].starts_with("echo-agent")
            && lines[1].contains("agent-adapter")
            && lines[1].contains("ready"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("throttle-trigger") && lines[2].contains(" c "),
        "{stdout}"
    );

    let echo = plugins.path().join("echo-agent");
    let check = || {
        switchyard(&[
            "plugin",
            "check",
            echo.to_str().unwrap(),
            "--data-dir",
            data,
        ])
    };
    let (ok, stdout, stderr) = check();
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("ok: echo-agent 0.1.0 (agent-adapter, rust)"),
        "{stdout}"
    );

    // Each broken manifest is refused with a message saying what is wrong.
    let manifest = std::fs::read_to_string(echo.join("plugin.toml")).unwrap();
    let refused_from = |manifest: &str, from: &str, to: &str, expected: &str| {
        std::fs::write(echo.join("plugin.toml"), manifest.replace(from, to)).unwrap();
        let (ok, _, stderr) = check();
        assert!(!ok, "{from} -> {to} was accepted");
        assert!(stderr.contains(expected), "{stderr}");
    };
    let refused =
        |from: &str, to: &str, expected: &str| refused_from(&manifest, from, to, expected);
    // The wrong kind: say what the component is. (An adapter's own table is refused
    // first: it names the kind it belongs to.)
    refused(
        "kind = \"agent-adapter\"",
        "kind = \"trigger\"",
        "`adapter` is set for a trigger: `[adapter]` is only for kind agent-adapter",
    );
    let without_adapter = manifest.replace("[adapter]\nhistory = 0\n", "");
    assert_ne!(without_adapter, manifest);
    refused_from(
        &without_adapter,
        "kind = \"agent-adapter\"",
        "kind = \"trigger\"",
        "the component implements world `agent-adapter`, but plugin.toml says kind = \"trigger\"",
    );
    refused(
        "world = \"0.1.0\"",
        "world = \"0.9.0\"",
        "`world` is `0.9.0`: this switchyard serves switchyard:plugin versions 0.1.0",
    );
    refused(
        "version = \"0.1.0\"",
        "version = \"0.2.0\"",
        "describe() says version `0.1.0`, the manifest says `0.2.0`",
    );

    // No component yet: say how to build it.
    std::fs::write(echo.join("plugin.toml"), &manifest).unwrap();
    std::fs::remove_file(echo.join("echo-agent.wasm")).unwrap();
    let (ok, _, stderr) = check();
    assert!(!ok);
    assert!(
        stderr.contains("echo-agent.wasm: component not found; build it with"),
        "{stderr}"
    );
}
