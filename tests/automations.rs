//! Automations on a real server and a real clock: a seconds-field schedule firing real
//! runs, overlap policies against real slow runs, catch-up after a real stop, pause and
//! resume, bus events through a real trigger plugin, and webhooks.

mod util;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::Server;

async fn firings(server: &Server, id: &str) -> Vec<Value> {
    let (status, page) = server
        .get(&format!("/v1/automations/{id}/firings?limit=1000"))
        .await;
    // The scheduler takes a recipe up just after the registry has it.
    if status == 404 {
        return Vec::new();
    }
    assert_eq!(status, 200, "{page}");
    let mut list = page["firings"].as_array().unwrap().clone();
    list.reverse(); // oldest first
    list
}

/// Poll the firings of `id` until `done` holds; returns them (oldest first).
async fn wait_firings(
    server: &Server,
    id: &str,
    limit: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let list = firings(server, id).await;
        if done(&list) {
            return list;
        }
        assert!(
            start.elapsed() < limit,
            "{id}: firings never reached the expected state: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The runs, once each has ended, oldest first.
async fn ended_runs(server: &Server, ids: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for id in ids {
        let start = Instant::now();
        loop {
            let (_, run) = server.get(&format!("/v1/runs/{id}")).await;
            if run["status"] != "running" {
                out.push(run);
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{run}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    out.sort_by_key(|r| time(&r["created_at"]));
    out
}

fn assert_no_overlap(runs: &[Value]) {
    for pair in runs.windows(2) {
        assert!(
            time(&pair[1]["created_at"]) >= time(&pair[0]["finished_at"]),
            "runs overlap: {pair:#?}"
        );
    }
}

async fn runs_of(server: &Server, ids: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for id in ids {
        out.push(server.get(&format!("/v1/runs/{id}")).await.1);
    }
    out
}

fn time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

fn scheduled(name: &str, cron: &str, extra: &str, delay_ms: u64) -> String {
    format!(
        r#"
name: {name}
steps:
  - id: work
    agent: {{ plugin: echo-agent, config: {{ delay_ms: {delay_ms} }} }}
    prompt: "a b c d e f g h i j"
on:
  schedule:
    - cron: "{cron}"
{extra}"#
    )
}

/// Anyone with `events:write` may publish on `run.<id>.…`: an end published there
/// while the run is still going is not taken for its end, so `overlap: skip` still
/// sees the run and no second one starts beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_end_published_by_a_client_does_not_fool_the_overlap_policy() {
    let server = Server::start(&["echo-agent"]).await;
    // Each run takes ~2.7 s (10 words, 300 ms apart); a slot every second.
    server
        .install_recipe(
            "faked",
            &scheduled("faked", "* * * * * *", "      overlap: skip\n", 300),
        )
        .await;
    let first = wait_firings(&server, "faked:schedule", Duration::from_secs(10), |f| {
        f.iter().any(|f| f["run_id"].is_string())
    })
    .await;
    let run_id = first
        .iter()
        .find_map(|f| f["run_id"].as_str())
        .unwrap()
        .to_owned();
    let (status, body) = server
        .post(
            "/v1/events",
            &json!({ "topic": format!("run.{run_id}.canceled"), "type": "switchyard.run.canceled",
                     "source": "switchyard", "data": {} }),
        )
        .await;
    assert!(status < 300, "{body}");
    // Two more slots while the first run still goes.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    server.post("/v1/automations/faked/pause", &json!({})).await;
    let list = firings(&server, "faked:schedule").await;
    let (_, run) = server.get(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["status"], "running", "the first run still goes: {run}");
    assert!(
        list.iter().any(|f| f["decision"] == "skipped"),
        "a slot while the run went is skipped: {list:#?}"
    );
    let ids: Vec<String> = list
        .iter()
        .filter_map(|f| f["run_id"].as_str().map(str::to_owned))
        .collect();
    assert_no_overlap(&ended_runs(&server, &ids).await);
}

#[tokio::test]
async fn a_seconds_schedule_fires_real_runs_once_per_slot() {
    let server = Server::start(&["echo-agent"]).await;
    server
        .install_recipe("tick", &scheduled("tick", "*/2 * * * * *", "", 0))
        .await;

    let list = wait_firings(&server, "tick:schedule", Duration::from_secs(15), |f| {
        f.iter().filter(|f| f["run_status"] == "succeeded").count() >= 3
    })
    .await;
    let mut slots = HashSet::new();
    for f in &list {
        assert!(
            slots.insert(f["slot"].as_str().unwrap().to_owned()),
            "slot twice: {list:#?}"
        );
        assert_eq!(f["decision"], "started", "{f}");
        let at = time(&f["scheduled_at"]);
        assert_eq!(chrono::Timelike::second(&at) % 2, 0, "{f}");
        assert_eq!(chrono::Timelike::nanosecond(&at), 0, "{f}");
        let late = time(&f["fired_at"]) - at;
        assert!(
            late >= chrono::Duration::zero() && late < chrono::Duration::seconds(1),
            "fired {late} after its slot: {f}"
        );
    }

    // Listed with its next firings, two seconds apart.
    let (_, all) = server.get("/v1/automations").await;
    let tick = all
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "tick:schedule")
        .unwrap();
    let next: Vec<_> = tick["next"].as_array().unwrap().iter().map(time).collect();
    assert_eq!(next.len(), 3);
    assert_eq!((next[1] - next[0]).num_seconds(), 2);

    // Paused: nothing fires; resumed: it fires again.
    let (status, _) = server.post("/v1/automations/tick/pause", &json!({})).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = firings(&server, "tick:schedule").await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(firings(&server, "tick:schedule").await.len(), before);
    server
        .post("/v1/automations/tick:schedule/resume", &json!({}))
        .await;
    wait_firings(&server, "tick:schedule", Duration::from_secs(5), |f| {
        f.len() > before
    })
    .await;

    // Fired by hand, now.
    let (status, firing) = server.post("/v1/automations/tick/run", &json!({})).await;
    assert_eq!(status, 202, "{firing}");
    assert!(
        firing["slot"].as_str().unwrap().starts_with("manual-"),
        "{firing}"
    );
}

#[tokio::test]
async fn overlap_policies_against_slow_runs() {
    let server = Server::start(&["echo-agent"]).await;
    // Each run takes ~2.7 s (10 words, 300 ms apart); a slot every second.
    for (name, policy) in [
        ("skipper", "skip"),
        ("queuer", "queue"),
        ("allower", "allow"),
        ("canceler", "cancel_previous"),
    ] {
        let extra = format!("      overlap: {policy}\n");
        server
            .install_recipe(name, &scheduled(name, "* * * * * *", &extra, 300))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(4500)).await;
    // The queuer goes on until its waiting firing has started (below).
    for name in ["skipper", "allower", "canceler"] {
        server
            .post(&format!("/v1/automations/{name}/pause"), &json!({}))
            .await;
    }
    let runs = |list: &[Value]| -> Vec<String> {
        list.iter()
            .filter_map(|f| f["run_id"].as_str().map(str::to_owned))
            .collect()
    };

    // skip: one run at a time; the slots in between are recorded as skipped.
    let skip = firings(&server, "skipper:schedule").await;
    assert!(
        skip.iter().any(|f| f["decision"] == "skipped"
            && f["detail"].as_str().unwrap().contains("still running")),
        "{skip:#?}"
    );
    assert_no_overlap(&ended_runs(&server, &runs(&skip)).await);

    // allow: runs side by side, one per slot.
    let allow = firings(&server, "allower:schedule").await;
    assert!(
        allow.iter().all(|f| f["decision"] == "started"),
        "{allow:#?}"
    );
    assert!(runs(&allow).len() >= 4, "{allow:#?}");

    // cancel_previous: each new slot cancels the run before it.
    let cancel = firings(&server, "canceler:schedule").await;
    let cancel_runs = runs_of(&server, &runs(&cancel)).await;
    assert!(cancel_runs.len() >= 4, "{cancel:#?}");
    for run in &cancel_runs[..cancel_runs.len() - 1] {
        assert_eq!(run["status"], "canceled", "{run}");
    }

    // queue: one waits while one runs, the rest are skipped; the waiting one starts
    // when the running one ends, so runs never overlap.
    let queue = wait_firings(&server, "queuer:schedule", Duration::from_secs(30), |f| {
        f.iter().filter(|f| f["run_id"].is_string()).count() >= 2
    })
    .await;
    server
        .post("/v1/automations/queuer/pause", &json!({}))
        .await;
    assert!(
        queue.iter().any(|f| f["decision"] == "skipped"
            && f["detail"].as_str().unwrap().contains("already waits")),
        "{queue:#?}"
    );
    assert_no_overlap(&ended_runs(&server, &runs(&queue)).await);
}

#[tokio::test]
async fn slots_missed_while_down_are_caught_up_once() {
    let server = Server::start(&["echo-agent"]).await;
    for (name, catch_up) in [("all", "all"), ("latest", "latest"), ("none", "none")] {
        let extra = format!(
            "      overlap: allow\n      catch_up: {catch_up}\n      catch_up_window: 1h\n"
        );
        server
            .install_recipe(name, &scheduled(name, "* * * * * *", &extra, 0))
            .await;
    }
    for name in ["all", "latest", "none"] {
        wait_firings(
            &server,
            &format!("{name}:schedule"),
            Duration::from_secs(10),
            |f| !f.is_empty(),
        )
        .await;
    }
    // Down for ~4 s.
    let stopped = chrono::Utc::now();
    let down = Duration::from_secs(4);
    let server = {
        let pid = server.pid();
        std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .unwrap();
        // A stopped process fires nothing; kill it there, as a crash would.
        let s = server;
        tokio::time::sleep(down).await;
        s.kill_and_restart().await
    };
    let back = chrono::Utc::now();

    let caught = |list: &[Value]| -> Vec<Value> {
        list.iter()
            .filter(|f| {
                f["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("caught up"))
            })
            .cloned()
            .collect()
    };
    let all = wait_firings(&server, "all:schedule", Duration::from_secs(20), |f| {
        caught(f).len() >= 3
    })
    .await;
    let mut slots = HashSet::new();
    for f in &all {
        assert!(
            slots.insert(f["slot"].as_str().unwrap().to_owned()),
            "slot fired twice: {all:#?}"
        );
    }
    for f in caught(&all) {
        let at = time(&f["scheduled_at"]);
        assert!(
            at > stopped - chrono::Duration::seconds(1) && at < back,
            "{f}"
        );
    }
    let latest = wait_firings(&server, "latest:schedule", Duration::from_secs(20), |f| {
        !caught(f).is_empty()
    })
    .await;
    assert_eq!(caught(&latest).len(), 1, "{latest:#?}");
    let none = wait_firings(&server, "none:schedule", Duration::from_secs(20), |f| {
        f.iter().any(|f| f["decision"] == "missed")
    })
    .await;
    assert!(caught(&none).is_empty(), "{none:#?}");
    let missed = none.iter().find(|f| f["decision"] == "missed").unwrap();
    assert!(
        missed["detail"]
            .as_str()
            .unwrap()
            .contains("missed while switchyard was down"),
        "{missed}"
    );
}

#[tokio::test]
async fn bus_events_through_a_trigger_plugin_and_webhooks_start_runs() {
    let server = Server::start(&["echo-agent", "keyword-trigger"]).await;
    server
        .install_recipe(
            "oncall",
            r#"
name: oncall
inputs:
  text: { type: string, default: "" }
  service: { type: string, default: unknown }
steps:
  - id: triage
    agent: echo-agent
    prompt: "triage {{ inputs.service }}: {{ inputs.text }}"
outputs:
  triage: "{{ steps.triage.output }}"
on:
  event:
    - topic: alerts.>
      trigger: { plugin: keyword-trigger, params: { keywords: [panic] } }
      inputs: { service: "{{ event.data.service }}" }
  webhook:
    - path: ops/page
"#,
        )
        .await;

    server.wait_automation("oncall:event").await;
    server.wait_automation("oncall:webhook").await;

    // An event the trigger turns down starts nothing; one it accepts starts a run with
    // inputs from the template and from the trigger.
    for (service, message) in [("db", "all good"), ("api", "kernel panic on node 3")] {
        let (status, _) = server
            .post(
                "/v1/events",
                &json!({ "topic": format!("alerts.{service}"), "type": "alert", "correlation_id": "inc-7",
                         "data": { "service": service, "message": message } }),
            )
            .await;
        assert_eq!(status, 201);
    }
    let fired = wait_firings(&server, "oncall:event", Duration::from_secs(15), |f| {
        f.first().is_some_and(|f| f["run_status"] == "succeeded")
    })
    .await;
    assert_eq!(fired.len(), 1, "{fired:#?}");
    let run_id = fired[0]["run_id"].as_str().unwrap();
    let (_, run) = server.get(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["correlation_id"], "inc-7");
    assert_eq!(run["inputs"]["service"], "api");
    assert_eq!(run["trigger"]["kind"], "event");
    assert!(
        run["outputs"]["triage"]
            .as_str()
            .unwrap()
            .starts_with("triage api: "),
        "{run}"
    );

    // A webhook: the body is the inputs.
    let response = util::http()
        .post(format!("{}/v1/hooks/ops/page", server.url))
        .header("x-correlation-id", "page-1")
        .json(&json!({ "service": "queue", "text": "backlog" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["correlation_id"], "page-1");
    let (status, bad) = server
        .post("/v1/hooks/ops/page", &json!({ "servce": "x" }))
        .await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["field"], "inputs.servce");
    let (status, _) = server.post("/v1/hooks/ops/nowhere", &json!({})).await;
    assert_eq!(status, 404);
}

/// Events acknowledged just before a crash still fire their automation after the
/// restart, each exactly once: the automations read on in the log from where they had
/// got to, and an event read twice finds its slot taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_acknowledged_before_a_crash_fire_once_after_it() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let server = Server::start(&["echo-agent", "keyword-trigger"]).await;
    server
        .install_recipe(
            "relay",
            r#"
name: relay
inputs:
  n: { type: string, default: "" }
steps:
  - id: echo
    agent: echo-agent
    prompt: "relay {{ inputs.n }}"
on:
  event:
    - topic: burst.*
      trigger: { plugin: keyword-trigger, params: { keywords: [relay] } }
      inputs: { n: "{{ event.data.n }}" }
"#,
        )
        .await;
    server.wait_automation("relay:event").await;

    // A burst on the publishing socket; the process is killed as soon as the last
    // receipt is in, while firings are still to come (each asks the trigger plugin).
    const N: usize = 800;
    let mut ws = util::websocket(&server, "/v1/events/publish", util::ADMIN_TOKEN)
        .await
        .unwrap();
    for n in 0..N {
        let event = json!({ "topic": "burst.x", "type": "t",
                             "data": { "n": n.to_string(), "message": "relay this" } });
        ws.feed(Message::text(event.to_string())).await.unwrap();
    }
    ws.flush().await.unwrap();
    let mut acknowledged = HashSet::new();
    for _ in 0..N {
        let receipt = util::next_json(&mut ws).await;
        acknowledged.insert(receipt["id"].as_str().expect("an id").to_owned());
    }
    let before = firings(&server, "relay:event").await.len();
    // A recipe on the same topic, new at the restart: the events read again are older
    // than it, so it fires for none of them.
    let late = std::fs::read_to_string(server.recipes_dir().join("relay.yaml"))
        .unwrap()
        .replace("name: relay", "name: late");
    util::replace_file(&server.recipes_dir().join("late.yaml"), late.as_bytes());
    let server = server.kill_and_restart().await;

    let fired = wait_firings(&server, "relay:event", Duration::from_secs(60), |f| {
        f.len() >= N
    })
    .await;
    let slots: HashSet<String> = fired
        .iter()
        .map(|f| f["slot"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(slots.len(), fired.len(), "an event fired twice");
    assert_eq!(slots, acknowledged, "{before} had fired before the kill");
    // Nothing more comes: every one of them is handled once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(firings(&server, "relay:event").await.len(), N);
    server.wait_automation("late:event").await;
    assert!(firings(&server, "late:event").await.is_empty());
    eprintln!("{before} of {N} events had fired before the kill");
}

/// The automations read only the topics their patterns can match, and follow recipe
/// changes: an event automation added beside another, on other topics, fires for the
/// events published once it is in force, and the first one keeps firing.
#[tokio::test]
async fn event_automations_added_later_on_other_topics_fire() {
    let server = Server::start(&["echo-agent"]).await;
    let recipe = |name: &str, topic: &str| {
        format!(
            "name: {name}\ninputs:\n  n: {{ type: string, default: \"\" }}\nsteps:\n  - id: echo\n    agent: echo-agent\n    prompt: \"{name} {{{{ inputs.n }}}}\"\non:\n  event:\n    - topic: {topic}\n      inputs: {{ n: \"{{{{ event.data.n }}}}\" }}\n"
        )
    };
    // Published before any event automation exists: it fires nothing.
    publish(&server, "alerts.db", "0").await;
    server
        .install_recipe("alerts", &recipe("alerts", "alerts.>"))
        .await;
    server.wait_automation("alerts:event").await;
    publish(&server, "alerts.db", "1").await;
    wait_firings(&server, "alerts:event", Duration::from_secs(15), |f| {
        f.len() == 1
    })
    .await;

    server
        .install_recipe("deploys", &recipe("deploys", "deploys.*"))
        .await;
    server.wait_automation("deploys:event").await;
    publish(&server, "deploys.api", "2").await;
    publish(&server, "alerts.api", "3").await;
    publish(&server, "other.api", "4").await;
    let deploys = wait_firings(&server, "deploys:event", Duration::from_secs(15), |f| {
        f.len() == 1
    })
    .await;
    let alerts = wait_firings(&server, "alerts:event", Duration::from_secs(15), |f| {
        f.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(firings(&server, "alerts:event").await.len(), 2);
    assert_eq!(firings(&server, "deploys:event").await.len(), 1);
    for (firing, n) in [(&deploys[0], "2"), (&alerts[0], "1"), (&alerts[1], "3")] {
        let (_, run) = server
            .get(&format!("/v1/runs/{}", firing["run_id"].as_str().unwrap()))
            .await;
        assert_eq!(run["inputs"]["n"], n, "{run}");
    }
}

/// An automation whose pattern is edited fires for the events published after the
/// edit, not for the earlier ones on its new topic: the automations read past the
/// events no pattern of theirs matched, and the new pattern starts from there.
#[tokio::test]
async fn an_edited_pattern_fires_for_later_events_only() {
    let server = Server::start(&["echo-agent"]).await;
    let recipe = |topic: &str| {
        format!(
            "name: watch\ninputs:\n  n: {{ type: string, default: \"\" }}\nsteps:\n  - id: echo\n    agent: echo-agent\n    prompt: \"{{{{ inputs.n }}}}\"\non:\n  event:\n    - topic: {topic}\n      inputs: {{ n: \"{{{{ event.data.n }}}}\" }}\n"
        )
    };
    server.install_recipe("watch", &recipe("alerts.*")).await;
    server.wait_automation("watch:event").await;
    publish(&server, "alerts.db", "1").await;
    wait_firings(&server, "watch:event", Duration::from_secs(15), |f| {
        f.len() == 1
    })
    .await;
    // Before the edit, on the topic it will watch: never fired for.
    publish(&server, "deploys.api", "early").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.install_recipe("watch", &recipe("deploys.*")).await;
    wait_until_detail(&server, "deploys.*").await;
    publish(&server, "deploys.api", "late").await;
    let fired = wait_firings(&server, "watch:event", Duration::from_secs(15), |f| {
        f.len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fired_now = firings(&server, "watch:event").await;
    assert_eq!(fired_now.len(), 2, "{fired_now:#?}");
    let (_, run) = server
        .get(&format!(
            "/v1/runs/{}",
            fired[1]["run_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(run["inputs"]["n"], "late", "{run}");
}

/// Wait until the automation `watch:event` watches `topic`.
async fn wait_until_detail(server: &Server, topic: &str) {
    let start = Instant::now();
    loop {
        let (_, list) = server.get("/v1/automations").await;
        let watch = list
            .as_array()
            .and_then(|l| l.iter().find(|a| a["id"] == "watch:event"));
        if watch.is_some_and(|a| a["detail"].to_string().contains(topic)) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publish an event on `topic` whose data is `{"n": n}`.
async fn publish(server: &Server, topic: &str, n: &str) {
    let (status, body) = server
        .post(
            "/v1/events",
            &json!({ "topic": topic, "type": "t", "data": { "n": n } }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}
