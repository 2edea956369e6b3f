//! Recipes hot-reloaded from a real directory watched by a real server: a valid edit
//! swaps the recipe in, a broken edit keeps the last good version (with the problem at
//! file:line:col in the API and on the bus), a fix clears it, a delete unloads it.

mod util;

use std::time::{Duration, Instant};

use serde_json::Value;
use util::{Server, SseStream, replace_file};

fn recipe(description: &str) -> String {
    format!(
        "name: review\ndescription: {description}\ninputs:\n  diff: {{ type: string, default: none }}\nsteps:\n  - id: look\n    agent: echo-agent\n    prompt: \"{{{{ inputs.diff }}}}\"\non:\n  schedule:\n    - cron: \"0 9 * * mon\"\n      timezone: Europe/Paris\n"
    )
}

/// Poll `GET /v1/recipes/review` until `done` holds; returns it.
async fn wait_for(server: &Server, what: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = server.get("/v1/recipes/review").await;
        if done(status, &body) {
            return body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: last answer {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn edits_swap_in_broken_edits_keep_the_last_good_version() {
    let server = Server::start(&["echo-agent"]).await;
    let file = server.recipes_dir().join("review.yaml");
    let mut events =
        SseStream::connect(&format!("{}/v1/events?topic=recipe.>", server.url), None).await;

    replace_file(&file, recipe("first").as_bytes());
    let r = wait_for(&server, "load", |s, b| {
        s == 200 && b["description"] == "first"
    })
    .await;
    assert_eq!(r["status"], "ready");
    assert_eq!(r["steps"][0]["agent"], "echo-agent");
    let next = r["automations"]["schedule"][0]["next"][0].as_str().unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(next).unwrap();
    assert_eq!(
        chrono::Datelike::weekday(&next.with_timezone(&chrono_tz::Europe::Paris)),
        chrono::Weekday::Mon
    );

    // A typo on line 7: the first version stays in force, the problem is shown.
    replace_file(
        &file,
        recipe("second")
            .replace("    prompt:", "    promt:")
            .as_bytes(),
    );
    let r = wait_for(&server, "problem", |_, b| {
        b["problems"].as_array().is_some_and(|p| !p.is_empty())
    })
    .await;
    assert_eq!(r["status"], "ready");
    assert_eq!(r["description"], "first", "the last good version stays");
    let p = &r["problems"][0];
    assert_eq!(
        (p["line"].as_u64(), p["column"].as_u64()),
        (Some(8), Some(5)),
        "{p}"
    );
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `promt`"),
        "{p}"
    );
    assert_eq!(p["help"], "did you mean `prompt`?");
    assert!(p["file"].as_str().unwrap().ends_with("review.yaml"));

    // The CLI shows it too.
    let out = server.cli(&["recipe", "list"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("review") && stdout.contains("ready"),
        "{stdout}"
    );
    assert!(
        stderr.contains("review.yaml:8:5: unknown field `promt`"),
        "{stderr}"
    );

    // Fixed: the new version is in force, the problem gone.
    replace_file(&file, recipe("third").as_bytes());
    let r = wait_for(&server, "fix", |_, b| b["description"] == "third").await;
    assert_eq!(r["problems"], serde_json::json!([]));

    std::fs::remove_file(&file).unwrap();
    wait_for(&server, "unload", |s, _| s == 404).await;

    let mut seen = Vec::new();
    while let Some(m) = events.next(Duration::from_secs(5)).await {
        let e: Value = serde_json::from_str(&m.data).unwrap();
        seen.push(e["topic"].as_str().unwrap().to_owned());
        if e["topic"] == "recipe.review.load_failed" {
            assert!(
                e["data"]["problems"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("promt")
            );
            assert_eq!(e["data"]["previous_version_in_force"], true);
        }
        if seen.last().is_some_and(|t| t == "recipe.review.unloaded") {
            break;
        }
    }
    assert_eq!(
        seen,
        ["loaded", "load_failed", "reloaded", "unloaded"].map(|w| format!("recipe.review.{w}")),
    );
}

#[tokio::test]
async fn a_file_that_never_loaded_is_listed_as_failed() {
    let server = Server::start(&["echo-agent"]).await;
    let file = server.recipes_dir().join("broken.yaml");
    replace_file(
        &file,
        b"name: broken\nsteps:\n  - id: a\n    agent: no-such-agent\n    prompt: hi\n",
    );
    let start = Instant::now();
    let list = loop {
        let (_, list) = server.get("/v1/recipes").await;
        if list.as_array().is_some_and(|l| !l.is_empty()) {
            break list;
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(list[0]["status"], "failed");
    assert_eq!(list[0]["name"], "broken");
    let p = &list[0]["problems"][0];
    assert_eq!(
        (p["line"].as_u64(), p["column"].as_u64()),
        (Some(4), Some(12)),
        "{p}"
    );
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .contains("no plugin named `no-such-agent`")
    );
}
