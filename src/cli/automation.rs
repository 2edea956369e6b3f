//! `switchyard automation list|run|pause|resume|firings`.

use serde_json::json;

use super::client::{Client, ServerArgs, encode};
use super::table::cell;

#[derive(clap::Subcommand)]
pub enum AutomationCommand {
    /// List every automation with its next firing times and its last firing.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        json: bool,
    },
    /// Fire an automation now (through its overlap policy). NAME is an automation id
    /// (`recipe:schedule`) or a recipe name (its first automation).
    Run {
        #[command(flatten)]
        server: ServerArgs,
        name: String,
    },
    /// Stop an automation from firing (kept across restarts; no catch-up on resume).
    Pause {
        #[command(flatten)]
        server: ServerArgs,
        name: String,
    },
    /// Let a paused automation fire again, from its next slot.
    Resume {
        #[command(flatten)]
        server: ServerArgs,
        name: String,
    },
    /// The latest firings of an automation: slot, when it fired, decision, run.
    Firings {
        #[command(flatten)]
        server: ServerArgs,
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: AutomationCommand) -> anyhow::Result<()> {
    match cmd {
        AutomationCommand::List { server, json } => {
            let list = Client::new(&server).get("/v1/automations").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    let detail = &a["detail"];
                    let what = match a["kind"].as_str() {
                        Some("schedule") => {
                            format!("{} ({})", cell(&detail["cron"]), cell(&detail["timezone"]))
                        }
                        Some("event") => cell(&detail["topic"]),
                        _ => cell(&detail["path"]),
                    };
                    let last = &a["last_firing"];
                    vec![
                        cell(&a["id"]),
                        what,
                        if a["paused"] == true {
                            "paused".into()
                        } else {
                            "active".into()
                        },
                        a["next"]
                            .as_array()
                            .map(|n| n.iter().map(cell).collect::<Vec<_>>().join(", "))
                            .unwrap_or_default(),
                        if last.is_null() {
                            "-".into()
                        } else {
                            format!("{} {}", cell(&last["fired_at"]), cell(&last["decision"]))
                        },
                    ]
                })
                .collect();
            super::table::print(&["ID", "ON", "STATE", "NEXT", "LAST FIRING"], &rows);
            Ok(())
        }
        AutomationCommand::Run { server, name } => {
            let firing = Client::new(&server)
                .post(
                    &format!("/v1/automations/{}/run", encode(&name)),
                    &json!({}),
                )
                .await?;
            match firing["run_id"].as_str() {
                Some(run) => println!(
                    "{}: {} run {run}",
                    cell(&firing["automation"]),
                    cell(&firing["decision"])
                ),
                None => println!(
                    "{}: {} ({})",
                    cell(&firing["automation"]),
                    cell(&firing["decision"]),
                    cell(&firing["detail"])
                ),
            }
            Ok(())
        }
        AutomationCommand::Pause { server, name } => toggle(&server, &name, "pause").await,
        AutomationCommand::Resume { server, name } => toggle(&server, &name, "resume").await,
        AutomationCommand::Firings {
            server,
            name,
            limit,
            json,
        } => {
            let page = Client::new(&server)
                .get(&format!(
                    "/v1/automations/{}/firings?limit={limit}",
                    encode(&name)
                ))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page["firings"])?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = page["firings"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    vec![
                        cell(&f["slot"]),
                        cell(&f["fired_at"]),
                        cell(&f["decision"]),
                        cell(&f["run_id"]),
                        cell(&f["run_status"]),
                        cell(&f["detail"]),
                    ]
                })
                .collect();
            super::table::print(
                &[
                    "SLOT",
                    "FIRED AT",
                    "DECISION",
                    "RUN",
                    "RUN STATUS",
                    "DETAIL",
                ],
                &rows,
            );
            Ok(())
        }
    }
}

async fn toggle(server: &ServerArgs, name: &str, verb: &str) -> anyhow::Result<()> {
    let answer = Client::new(server)
        .post(
            &format!("/v1/automations/{}/{verb}", encode(name)),
            &json!({}),
        )
        .await?;
    let state = if answer["paused"] == true {
        "paused"
    } else {
        "active"
    };
    println!("{}: {state}", cell(&answer["id"]));
    Ok(())
}
