//! Recipe runs through a real server: steps in their own sessions on the real
//! echo-agent, parallel where the DAG allows, `if`, `verify`, retries, timeouts, cancel,
//! and a run that survives its server being killed in the middle.

mod util;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::{Server, replace_file};

async fn start(server: &Server, name: &str, inputs: Value) -> String {
    let (status, run) = server
        .post(
            &format!("/v1/recipes/{name}/runs"),
            &json!({ "inputs": inputs }),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    run["id"].as_str().unwrap().to_owned()
}

/// Poll the run until it has ended; returns it.
async fn ended(server: &Server, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let (_, run) = server.get(&format!("/v1/runs/{id}")).await;
        if run["status"] != "running" {
            return run;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "run {id} did not end: {run}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The run's events from the log, up to and including its end.
async fn run_events(server: &Server, id: &str) -> Vec<Value> {
    let url = format!("{}/v1/events?topic=run.{id}.>&after=0", server.url);
    let mut stream = util::SseStream::connect(&url, None).await;
    let mut out = Vec::new();
    while let Some(msg) = stream.next(Duration::from_secs(5)).await {
        let event: Value = serde_json::from_str(&msg.data).unwrap();
        let topic = event["topic"].as_str().unwrap().to_owned();
        out.push(event);
        if ["succeeded", "failed", "canceled"]
            .iter()
            .any(|end| topic == format!("run.{id}.{end}"))
        {
            break;
        }
    }
    out
}

fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {run}"))
}

fn time(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap()
}

const PIPE: &str = r#"
name: pipe
inputs:
  topic: { type: string, required: true }
  deep: { type: boolean, default: false }
steps:
  - id: research
    agent: { plugin: echo-agent, config: { delay_ms: 60 } }
    role: "You research {{ inputs.topic }}."
    prompt: "one two three four five six {{ inputs.topic }}"
  - id: angle
    agent: { plugin: echo-agent, config: { delay_ms: 60, prefix: "B:" } }
    prompt: "one two three four five six {{ inputs.topic }}"
  - id: deep
    agent: echo-agent
    if: inputs.deep == true
    prompt: "deep dive"
  - id: combine
    agent: echo-agent
    needs: [research, angle, deep]
    prompt: "combined [{{ steps.research.output }}] [{{ steps.angle.output }}] [{{ steps.deep.output }}]"
    verify: { contains: "combined" }
outputs:
  summary: "{{ steps.combine.output }}"
"#;

#[tokio::test]
async fn a_recipe_runs_its_dag_in_sessions_and_announces_every_transition() {
    let server = Server::start(&["echo-agent"]).await;
    server.install_recipe("pipe", PIPE).await;
    let (status, run) = server
        .post(
            "/v1/recipes/pipe/runs",
            &json!({ "inputs": { "topic": "cats" }, "correlation_id": "ticket-42" }),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_owned();
    let run = ended(&server, &id).await;

    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["outputs"]["summary"],
        "combined [one two three four five six cats] [B:one two three four five six cats] []"
    );
    assert_eq!(step(&run, "deep")["status"], "skipped");
    // Independent steps ran side by side.
    let (r, a) = (step(&run, "research"), step(&run, "angle"));
    assert!(time(&r["started_at"]) < time(&a["finished_at"]), "{run}");
    assert!(time(&a["started_at"]) < time(&r["finished_at"]), "{run}");
    // The dependent step began after both.
    assert!(time(&step(&run, "combine")["started_at"]) >= time(&r["finished_at"]));

    // Each step had a session of its own, with the role as its system text.
    let key = r["session"].as_str().unwrap();
    let (_, session) = server.get(&format!("/v1/sessions/{key}")).await;
    assert_eq!(session["system"], "You research cats.");
    assert_eq!(session["adapter"], "echo-agent");

    // Every transition is on the bus, with the run's correlation id.
    let events = run_events(&server, &id).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"switchyard.run.started"), "{types:?}");
    assert_eq!(types.last(), Some(&"switchyard.run.succeeded"), "{types:?}");
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "switchyard.run.step.succeeded")
            .count(),
        3
    );
    assert!(types.contains(&"switchyard.run.step.skipped"));
    assert!(
        events.iter().all(|e| e["correlation_id"] == "ticket-42"),
        "{events:?}"
    );

    // Listed, newest first, filterable.
    let (_, list) = server.get("/v1/runs?recipe=pipe&status=succeeded").await;
    assert_eq!(list["runs"][0]["id"], id.as_str());
}

#[tokio::test]
async fn failed_verify_is_retried_with_backoff_then_fails_the_run() {
    let server = Server::start(&["echo-agent"]).await;
    server
        .install_recipe(
            "strict",
            r#"
name: strict
steps:
  - id: answer
    agent: echo-agent
    prompt: "maybe"
    verify: { matches: "^(yes|no)$" }
    retries: { max: 2, backoff: 200ms }
  - id: after
    agent: echo-agent
    needs: [answer]
    prompt: "never"
"#,
        )
        .await;
    let id = start(&server, "strict", json!({})).await;
    let run = ended(&server, &id).await;
    assert_eq!(run["status"], "failed");
    let answer = step(&run, "answer");
    assert_eq!(answer["status"], "failed");
    assert_eq!(answer["attempt"], 3, "{run}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("does not match `^(yes|no)$`"),
        "{run}"
    );
    assert_eq!(step(&run, "after")["status"], "canceled");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("step `answer` failed")
    );
    // Two waits: 200 ms, then 400 ms.
    let took = time(&answer["finished_at"]) - time(&answer["started_at"]);
    assert!(took >= chrono::Duration::milliseconds(600), "{took}");

    let waits: Vec<u64> = run_events(&server, &id)
        .await
        .iter()
        .filter(|e| e["type"] == "switchyard.run.step.retrying")
        .map(|e| e["data"]["retry_in_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(waits, [200, 400]);
}

#[tokio::test]
async fn bad_inputs_timeouts_and_cancel() {
    let server = Server::start(&["echo-agent"]).await;
    server
        .install_recipe(
            "slow",
            r#"
name: slow
inputs:
  words: { type: number, default: 40 }
steps:
  - id: crawl
    agent: { plugin: echo-agent, config: { delay_ms: 100 } }
    prompt: "a b c d e f g h i j k l m n o p q r s t u v w x y z {{ inputs.words }}"
    timeout: 1s
  - id: later
    agent: echo-agent
    needs: [crawl]
    prompt: "later"
"#,
        )
        .await;

    // Inputs are checked by name and type, every problem at once.
    let (status, body) = server
        .post(
            "/v1/recipes/slow/runs",
            &json!({ "inputs": { "words": "many", "wrds": 3 } }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "inputs.words");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("must be a number"), "{message}");
    assert!(message.contains("did you mean `words`?"), "{message}");
    // Inputs sent as a form are refused, not taken for a run with none.
    let r = util::http()
        .post(format!("{}/v1/recipes/slow/runs", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("inputs=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let (status, body) = server.post("/v1/recipes/slw/runs", &json!({})).await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `slow`?")
    );

    // A step past its timeout is aborted and fails.
    let id = start(&server, "slow", json!({})).await;
    let run = ended(&server, &id).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(step(&run, "crawl")["error"], "timed out after 1s");

    // Cancel: the step in flight is aborted, the rest is canceled.
    server
        .install_recipe(
            "slow",
            &std::fs::read_to_string(server.recipes_dir().join("slow.yaml"))
                .unwrap()
                .replace("timeout: 1s", "timeout: 1m"),
        )
        .await;
    let id = start(&server, "slow", json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, run) = server
        .post(&format!("/v1/runs/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "canceled", "{run}");
    assert_eq!(step(&run, "crawl")["status"], "canceled");
    assert_eq!(step(&run, "later")["status"], "canceled");
    let key = step(&run, "crawl")["session"].as_str().unwrap().to_owned();
    let (_, history) = server.get(&format!("/v1/sessions/{key}/history")).await;
    assert_eq!(history["messages"][0]["status"], "aborted", "{history}");
    // Canceling again is a conflict, not a second cancel.
    let (status, _) = server
        .post(&format!("/v1/runs/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_run_goes_on_after_its_server_is_killed_mid_step() {
    let server = Server::start(&["echo-agent"]).await;
    let yaml = r#"
name: long
steps:
  - id: first
    agent: { plugin: echo-agent, config: { delay_ms: 150 } }
    prompt: "a b c d e f g h i j k l m n o p q r s t"
    retries: { max: 1, backoff: 100ms }
  - id: second
    agent: echo-agent
    needs: [first]
    prompt: "after {{ steps.first.output }}"
"#;
    server.install_recipe("long", yaml).await;
    let id = start(&server, "long", json!({})).await;
    // Wait until the first step's turn is under way, then kill the server.
    let start_wait = Instant::now();
    loop {
        let (_, run) = server.get(&format!("/v1/runs/{id}")).await;
        if step(&run, "first")["status"] == "running" {
            break;
        }
        assert!(start_wait.elapsed() < Duration::from_secs(10), "{run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    // The file changes while the server is down: the run keeps the version it began with.
    replace_file(
        &server.recipes_dir().join("long.yaml"),
        yaml.replace("after {{", "CHANGED {{").as_bytes(),
    );
    let server = server.kill_and_restart().await;

    let run = ended(&server, &id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let first = step(&run, "first");
    assert_eq!(
        first["attempt"], 2,
        "the interrupted attempt is retried: {run}"
    );
    assert!(
        step(&run, "second")["output"]
            .as_str()
            .unwrap()
            .starts_with("after a b c"),
        "{run}"
    );
    let events = run_events(&server, &id).await;
    let retry = events
        .iter()
        .find(|e| e["type"] == "switchyard.run.step.retrying")
        .expect("a retry after the crash");
    assert!(
        retry["data"]["error"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{retry}"
    );
    assert!(events.iter().any(|e| e["type"] == "switchyard.run.resumed"));
}

#[tokio::test]
async fn the_cli_runs_recipes_and_lists_automations() {
    let server = Server::start(&["echo-agent"]).await;
    server.install_recipe("pipe", PIPE).await;
    server
        .install_recipe(
            "nightly",
            "name: nightly\nsteps:\n  - id: a\n    agent: echo-agent\n    prompt: hi\non:\n  schedule:\n    - cron: \"0 3 * * 1-5\"\n      timezone: America/New_York\n",
        )
        .await;

    let out = server.cli(&["recipe", "run", "pipe", "-i", "topic=owls", "--follow"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("✓ combine: succeeded"), "{stderr}");
    assert!(stderr.contains("- deep: skipped"), "{stderr}");
    assert!(
        stdout.contains("output summary:\n  combined [one two three four five six owls]"),
        "{stdout}"
    );

    // A failing run exits 1 and says why.
    let out = server.cli(&["recipe", "run", "pipe", "-i", "tpic=owls", "--follow"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `topic`?"));

    let out = server.cli(&["run", "list", "--recipe", "pipe"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("succeeded"));

    server.wait_automation("nightly:schedule").await;
    let out = server.cli(&["automation", "list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("nightly:schedule"), "{stdout}");
    assert!(
        stdout.contains("0 3 * * 1-5 (America/New_York)"),
        "{stdout}"
    );
    let out = server.cli(&["automation", "pause", "nightly"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "nightly:schedule: paused"
    );
}
