//! Recipes benchmark (a bench binary: `cargo bench --bench recipes`).
//!
//! - reload: a recipe file replaced the way editors save (write a sibling, rename it
//!   over) in a real server's watched `recipes/` directory, timed from the rename to the
//!   `recipe.<name>.reloaded` event on an SSE subscription, i.e. until the new version
//!   is in force. Includes the watcher's debounce (100 ms), shown as the floor.
//! - check: parse and check a shipped recipe in-process (what a reload costs beyond
//!   the debounce).
//!
//! Prints Markdown.

use std::time::{Duration, Instant};

use futures::StreamExt;

mod common;
use common::{percentile, repo, start_switchyard};

const SAVES: usize = 40;
const DEBOUNCE_MS: u64 = 100;

fn main() {
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

async fn run() {
    println!("## Recipes (`cargo bench --bench recipes`)\n");
    check();
    reload().await;
}

fn check() {
    let path = repo().join("recipes/code-review.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut times = Vec::new();
    for _ in 0..2_000 {
        let start = Instant::now();
        let recipe = switchyard::recipes::check(&path, &text, None).unwrap();
        times.push(start.elapsed());
        std::hint::black_box(recipe);
    }
    times.sort();
    println!(
        "check `recipes/code-review.yaml` in-process: median {:.1} µs, p99 {:.1} µs (2,000 runs)\n",
        micros(percentile(&times, 0.5)),
        micros(percentile(&times, 0.99))
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn reload() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("recipes")).unwrap();
    let (_server, url) = start_switchyard(dir.path()).await;
    let response = common::http(256)
        .get(format!("{url}/v1/events?topic=recipe.bench.>"))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    // The next event's topic.
    let mut next_topic = async || -> String {
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let message: String = buffer.drain(..end + 2).collect();
                if let Some(data) = message.lines().find_map(|l| l.strip_prefix("data: ")) {
                    let event: serde_json::Value = serde_json::from_str(data).unwrap();
                    return event["topic"].as_str().unwrap().to_owned();
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .unwrap();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    let file = dir.path().join("recipes/bench.yaml");
    let mut times = Vec::new();
    for i in 0..=SAVES {
        let text = std::fs::read_to_string(repo().join("recipes/code-review.yaml"))
            .unwrap()
            .replace("name: code-review", "name: bench")
            .replace("openai-agent", "echo-agent")
            .replace("description: ", &format!("description: v{i} "));
        let tmp = file.with_extension("yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        let start = Instant::now();
        std::fs::rename(&tmp, &file).unwrap();
        let topic = next_topic().await;
        let elapsed = start.elapsed();
        let expected = if i == 0 {
            "recipe.bench.loaded"
        } else {
            "recipe.bench.reloaded"
        };
        assert_eq!(topic, expected);
        if i > 0 {
            times.push(elapsed);
        }
        // Let the watcher settle between saves, as between a person's saves.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "Reload of a changed recipe file, save (rename) → new version in force ({SAVES} saves):\n"
    );
    println!("| measurement | p50 | p99 | max |");
    println!("|---|---|---|---|");
    println!(
        "| watcher debounce (the floor) | {DEBOUNCE_MS} ms | {DEBOUNCE_MS} ms | {DEBOUNCE_MS} ms |"
    );
    println!(
        "| **save → active** | {:.1} ms | {:.1} ms | {:.1} ms |",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times[times.len() - 1])
    );
    println!("\nTarget ≤ 250 ms including the debounce.");
}
