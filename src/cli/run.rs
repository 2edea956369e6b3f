//! `switchyard run list|show|cancel|follow`, and the follower behind
//! `switchyard recipe run NAME --follow`.

use std::collections::HashSet;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::client::{Client, ServerArgs, encode};
use super::sse::{Resumable, interrupted};
use super::table::cell;

#[derive(clap::Subcommand)]
pub enum RunCommand {
    /// List runs, newest first.
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Only runs of this recipe.
        #[arg(long)]
        recipe: Option<String>,
        /// Only runs with this status (running, succeeded, failed, canceled).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show a run and its steps.
    Show {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a running run.
    Cancel {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
    },
    /// Follow a run's steps until it ends; exits 1 if it fails or is canceled.
    Follow {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: RunCommand) -> anyhow::Result<()> {
    match cmd {
        RunCommand::List {
            server,
            recipe,
            status,
            limit,
            json,
        } => {
            let mut path = format!("/v1/runs?limit={limit}");
            if let Some(r) = recipe {
                path.push_str(&format!("&recipe={}", encode(&r)));
            }
            if let Some(s) = status {
                path.push_str(&format!("&status={}", encode(&s)));
            }
            let page = Client::new(&server).get(&path).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page["runs"])?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = page["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    vec![
                        cell(&r["id"]),
                        cell(&r["recipe"]),
                        cell(&r["status"]),
                        cell(&r["trigger"]["kind"]),
                        cell(&r["created_at"]),
                        r["error"].as_str().unwrap_or("").to_owned(),
                    ]
                })
                .collect();
            super::table::print(
                &["ID", "RECIPE", "STATUS", "TRIGGER", "CREATED", "ERROR"],
                &rows,
            );
            Ok(())
        }
        RunCommand::Show { server, id, json } => {
            let view = Client::new(&server)
                .get(&format!("/v1/runs/{}", encode(&id)))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_run(&view);
            }
            Ok(())
        }
        RunCommand::Cancel { server, id } => {
            let view = Client::new(&server)
                .post(&format!("/v1/runs/{}/cancel", encode(&id)), &json!({}))
                .await?;
            println!("run {id}: {}", cell(&view["status"]));
            Ok(())
        }
        RunCommand::Follow { server, id, json } => follow(&Client::new(&server), &id, json).await,
    }
}

/// The run and its steps, for a terminal.
fn print_run(view: &Value) {
    println!(
        "run {}  recipe {} ({})  {}",
        cell(&view["id"]),
        cell(&view["recipe"]),
        cell(&view["version"]),
        cell(&view["status"])
    );
    if let Some(e) = view["error"].as_str() {
        println!("  error: {e}");
    }
    let rows: Vec<Vec<String>> = view["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                cell(&s["step_id"]),
                cell(&s["status"]),
                cell(&s["attempt"]),
                cell(&s["session"]),
                s["error"].as_str().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    super::table::print(&["STEP", "STATUS", "ATTEMPT", "SESSION", "ERROR"], &rows);
    print_outputs(view);
}

fn print_outputs(view: &Value) {
    if let Some(outputs) = view["outputs"].as_object() {
        for (name, value) in outputs {
            println!("output {name}:\n{}", indent(&cell(value)));
        }
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_final(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "canceled")
}

/// Print a run's step transitions as they happen, then its outputs; an error if the
/// run did not succeed.
pub async fn follow(client: &Client, id: &str, json: bool) -> anyhow::Result<()> {
    let mut interrupt = interrupted();
    let path = format!("/v1/runs/{}/events", encode(id));
    let mut events = Resumable::connect(client, path, "run").await?;
    let first = events.next().await?;
    if first.event.as_deref() != Some("snapshot") {
        bail!("the run's event stream did not start with a snapshot");
    }
    let snapshot: Value = serde_json::from_str(&first.data).context("a bad snapshot")?;
    // What the snapshot already shows is printed from it; an event repeating it is not.
    let mut shown: HashSet<(String, String, u64)> = HashSet::new();
    for step in snapshot["steps"].as_array().into_iter().flatten() {
        // The snapshot's `running` is the event's `started`.
        let status = match cell(&step["status"]).as_str() {
            "running" => "started".to_owned(),
            other => other.to_owned(),
        };
        if status != "pending" {
            let key = (
                cell(&step["step_id"]),
                status.clone(),
                step["attempt"].as_u64().unwrap_or(0),
            );
            if shown.insert(key) && !json {
                print_step(&cell(&step["step_id"]), &status, step);
            }
        }
    }
    if is_final(&cell(&snapshot["status"])) {
        return finish(&snapshot, json);
    }
    loop {
        tokio::select! {
            Ok(()) = &mut interrupt => {
                eprintln!("interrupted: the run goes on; `switchyard run cancel {id}` stops it");
                std::process::exit(130);
            }
            msg = events.next() => {
                let msg = msg?;
                let Ok(event) = serde_json::from_str::<Value>(&msg.data) else { continue };
                if msg.event.as_deref() == Some("snapshot") {
                    if is_final(&cell(&event["status"])) {
                        return finish(&event, json);
                    }
                    continue;
                }
                if json {
                    println!("{}", serde_json::to_string(&event)?);
                }
                let topic = cell(&event["topic"]);
                let tokens: Vec<&str> = topic.split('.').collect();
                match tokens.as_slice() {
                    ["run", _, "step", step, what] => {
                        let key = (step.to_string(), what.to_string(), event["data"]["attempt"].as_u64().unwrap_or(0));
                        if shown.insert(key) && !json {
                            print_step(step, what, &event["data"]);
                        }
                    }
                    ["run", _, what] if is_final(what) => {
                        let view = client.get(&format!("/v1/runs/{}", encode(id))).await?;
                        return finish(&view, json);
                    }
                    _ => {}
                }
            }
        }
    }
}

fn print_step(step: &str, what: &str, data: &Value) {
    let attempt = data["attempt"].as_u64().unwrap_or(0);
    match what {
        "started" => eprintln!("▸ {step}: started (attempt {attempt})"),
        "succeeded" => {
            eprintln!("✓ {step}: succeeded");
            if let Some(output) = data["output"].as_str() {
                println!("{}", indent(output));
            }
        }
        "retrying" => eprintln!(
            "↻ {step}: attempt {attempt} failed ({}); retrying",
            cell(&data["error"])
        ),
        "failed" => eprintln!("✗ {step}: failed: {}", cell(&data["error"])),
        "skipped" => eprintln!("- {step}: skipped"),
        "canceled" => eprintln!("✗ {step}: canceled"),
        _ => {}
    }
}

fn finish(view: &Value, json: bool) -> anyhow::Result<()> {
    let status = cell(&view["status"]);
    if json {
        println!("{}", serde_json::to_string(view)?);
    } else {
        print_outputs(view);
        eprintln!("run {}: {status}", cell(&view["id"]));
    }
    match status.as_str() {
        "succeeded" => Ok(()),
        _ => bail!(
            "run {} {status}: {}",
            cell(&view["id"]),
            view["error"].as_str().unwrap_or("no reason given")
        ),
    }
}
