//! Automations benchmark (a bench binary: `cargo bench --bench automations`): 100,000
//! scheduled automations, one recipe file each.
//!
//! - in-process: check the 100,000 recipe texts, then compute every automation's next
//!   slot (`Timetable::replace`, what the scheduler does at start and on every recipe
//!   change), and the resident memory the recipes and the timetable take.
//! - a real server with the 100,000 files in its `recipes/`: time until ready, resident
//!   memory next to the same server with no recipes, then firing lateness (fired_at −
//!   scheduled_at, read from the database) over a window in which every second ~167
//!   automations fire at once, each starting a real run (one echo-agent step).
//!
//! Prints Markdown. `AUTOMATIONS=N` changes the count.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{percentile, start_switchyard};
use switchyard::automations::timetable::Timetable;

const WINDOW: Duration = Duration::from_secs(30);

fn main() {
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

fn count() -> usize {
    std::env::var("AUTOMATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// Recipe `i`: fires once every 10 minutes, at one of 600 (minute, second) slots, so
/// that every second about count/600 automations fire together.
fn recipe(i: usize) -> String {
    let (second, minute) = (i % 60, (i / 60) % 10);
    format!(
        "name: a{i:06}\nsteps:\n  - id: s\n    agent: echo-agent\n    prompt: hi\non:\n  schedule:\n    - cron: \"{second} {minute}-59/10 * * * *\"\n      overlap: allow\n"
    )
}

fn rss_bytes(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn run() {
    let n = count();
    println!("## Automations (`cargo bench --bench automations`), {n} scheduled\n");
    in_process(n);
    server(n).await;
}

fn in_process(n: usize) {
    let before = rss_bytes("self");
    let start = Instant::now();
    let recipes: Vec<Arc<switchyard::recipes::Recipe>> = (0..n)
        .map(|i| {
            let path = std::path::PathBuf::from(format!("a{i:06}.yaml"));
            Arc::new(switchyard::recipes::check(&path, &recipe(i), None).unwrap())
        })
        .collect();
    let checked = start.elapsed();
    let schedules: Vec<_> = recipes
        .iter()
        .map(|r| (format!("{}:schedule", r.name), r.clone(), 0))
        .collect();
    let mut table = Timetable::default();
    let now = chrono::Utc::now();
    let start = Instant::now();
    table.replace(schedules.clone(), now);
    let computed = start.elapsed();
    // A reload with nothing changed keeps every slot: the common case of an edit.
    let start = Instant::now();
    table.replace(schedules, now);
    let recomputed = start.elapsed();
    let after = rss_bytes("self");
    println!("| in-process | figure |\n|---|---|");
    println!(
        "| check {n} recipe texts | {:.2} s ({:.1} µs each) |",
        checked.as_secs_f64(),
        checked.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "| compute every next firing (`Timetable::replace`) | {:.0} ms ({:.2} µs each) |",
        computed.as_secs_f64() * 1e3,
        computed.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "| recompute after a reload, nothing changed | {:.0} ms |",
        recomputed.as_secs_f64() * 1e3
    );
    println!(
        "| resident memory: recipes + timetable | {:.1} MiB ({:.2} KiB each) |\n",
        mib(after.saturating_sub(before)),
        after.saturating_sub(before) as f64 / 1024.0 / n as f64
    );
    std::hint::black_box(table);
}

async fn server(n: usize) {
    // The same server with no recipes, for the memory baseline.
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("recipes")).unwrap();
    let (baseline, _) = start_switchyard(empty.path()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline_rss = rss_bytes(&baseline.0.id().to_string());
    drop(baseline);

    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("recipes");
    std::fs::create_dir_all(&recipes).unwrap();
    for i in 0..n {
        std::fs::write(recipes.join(format!("a{i:06}.yaml")), recipe(i)).unwrap();
    }
    let start = Instant::now();
    let (server, url) = start_switchyard(dir.path()).await;
    let ready = start.elapsed();
    let pid = server.0.id().to_string();
    let loaded_rss = rss_bytes(&pid);
    let (_, list) = get(&format!("{url}/v1/recipes/a000001")).await;
    assert_eq!(list["status"], "ready", "{list}");

    let from = chrono::Utc::now();
    tokio::time::sleep(WINDOW).await;
    let to = chrono::Utc::now();
    let end_rss = rss_bytes(&pid);
    drop(server);

    let db = rusqlite::Connection::open(dir.path().join("data/switchyard.db")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT scheduled_at, fired_at, decision FROM automation_firings
             WHERE scheduled_at >= ?1 AND scheduled_at < ?2",
        )
        .unwrap();
    let rows: Vec<(String, String, String)> = stmt
        .query_map(
            [
                from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                to.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap();
    let mut late: Vec<Duration> = rows
        .iter()
        .map(|(s, f, _)| (parse(f) - parse(s)).to_std().unwrap_or_default())
        .collect();
    late.sort();
    let started = rows.iter().filter(|r| r.2 == "started").count();
    let expected = (to - from).num_seconds() as f64 * n as f64 / 600.0;

    println!("| server, {n} recipe files | figure |\n|---|---|");
    println!(
        "| start → ready (all recipes checked and loaded) | {:.1} s |",
        ready.as_secs_f64()
    );
    println!(
        "| resident memory | {:.0} MiB loaded ({:.0} MiB with no recipes: +{:.2} KiB per automation); {:.0} MiB after the firing window |",
        mib(loaded_rss),
        mib(baseline_rss),
        loaded_rss.saturating_sub(baseline_rss) as f64 / 1024.0 / n as f64,
        mib(end_rss)
    );
    println!(
        "| firings in the {} s window | {} recorded of ~{expected:.0} due, {started} started a run |",
        WINDOW.as_secs(),
        rows.len()
    );
    if !late.is_empty() {
        println!(
            "| firing lateness (fired − scheduled) | p50 {} ms, p99 {} ms, max {} ms |",
            percentile(&late, 0.5).as_millis(),
            percentile(&late, 0.99).as_millis(),
            late.last().unwrap().as_millis()
        );
    }
    println!();
}

async fn get(url: &str) -> (u16, serde_json::Value) {
    let r = common::http(8).get(url).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}
