//! `switchyard queue push|claim|ack|nack|list|dead`.

use anyhow::Context;
use serde_json::{Value, json};

use super::client::{Client, ServerArgs, encode};
use super::table::cell;

#[derive(clap::Subcommand)]
pub enum QueueCommand {
    /// Add an item; prints its id (the first item's, for a repeated --key).
    Push {
        #[command(flatten)]
        server: ServerArgs,
        queue: String,
        /// The payload: JSON (text that is not JSON is sent as a string).
        payload: String,
        #[arg(long, default_value_t = 0)]
        priority: i64,
        /// Idempotency key: a repeat returns the first item.
        #[arg(long)]
        key: Option<String>,
        /// Not claimed before this long, e.g. 30s.
        #[arg(long)]
        delay: Option<String>,
        /// Dead if not done within this long.
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long)]
        max_attempts: Option<u32>,
    },
    /// Claim items with a lease; prints them as JSON lines (with their lease tokens).
    Claim {
        #[command(flatten)]
        server: ServerArgs,
        queue: String,
        #[arg(long, default_value = "cli")]
        worker: String,
        #[arg(long)]
        lease: Option<String>,
        /// Wait this long for an item when none is ready.
        #[arg(long, default_value = "0s")]
        wait: String,
        #[arg(long, default_value_t = 1)]
        max: usize,
    },
    /// Mark a claimed item done.
    Ack {
        #[command(flatten)]
        server: ServerArgs,
        queue: String,
        id: String,
        /// The lease token the claim returned.
        #[arg(long)]
        lease_token: String,
        /// The result, as JSON.
        #[arg(long)]
        result: Option<String>,
    },
    /// Fail a claimed item's attempt (retried after a backoff; dead after the last).
    Nack {
        #[command(flatten)]
        server: ServerArgs,
        queue: String,
        id: String,
        /// The lease token the claim returned.
        #[arg(long)]
        lease_token: String,
        #[arg(long)]
        reason: String,
        /// Send it to the dead-letter list now.
        #[arg(long)]
        no_retry: bool,
    },
    /// List queues (no QUEUE) or a queue's items, newest first.
    List {
        #[command(flatten)]
        server: ServerArgs,
        queue: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// The dead-letter list; --retry ID or --drop ID acts on one item.
    Dead {
        #[command(flatten)]
        server: ServerArgs,
        queue: String,
        #[arg(long, conflicts_with = "drop")]
        retry: Option<String>,
        #[arg(long)]
        drop: Option<String>,
    },
}

/// JSON if it reads as JSON, else the text as a JSON string.
fn json_or_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

pub async fn run(cmd: QueueCommand) -> anyhow::Result<()> {
    match cmd {
        QueueCommand::Push {
            server,
            queue,
            payload,
            priority,
            key,
            delay,
            ttl,
            max_attempts,
        } => {
            let item = Client::new(&server)
                .post(
                    &format!("/v1/queues/{}/items", encode(&queue)),
                    &json!({ "payload": json_or_text(&payload), "priority": priority,
                             "idempotency_key": key, "delay": delay, "ttl": ttl,
                             "max_attempts": max_attempts }),
                )
                .await?;
            println!(
                "{}",
                item["id"]
                    .as_str()
                    .context("the server's answer has no id")?
            );
            Ok(())
        }
        QueueCommand::Claim {
            server,
            queue,
            worker,
            lease,
            wait,
            max,
        } => {
            let page = Client::new(&server)
                .post(
                    &format!("/v1/queues/{}/claim", encode(&queue)),
                    &json!({ "worker": worker, "lease": lease, "wait": wait, "max": max }),
                )
                .await?;
            for item in page["items"].as_array().into_iter().flatten() {
                println!("{}", serde_json::to_string(item)?);
            }
            Ok(())
        }
        QueueCommand::Ack {
            server,
            queue,
            id,
            lease_token,
            result,
        } => {
            let item = Client::new(&server)
                .post(
                    &format!("/v1/queues/{}/items/{}/ack", encode(&queue), encode(&id)),
                    &json!({ "lease_token": lease_token, "result": result.as_deref().map(json_or_text) }),
                )
                .await?;
            println!("{id}: {}", cell(&item["status"]));
            Ok(())
        }
        QueueCommand::Nack {
            server,
            queue,
            id,
            lease_token,
            reason,
            no_retry,
        } => {
            let item = Client::new(&server)
                .post(
                    &format!("/v1/queues/{}/items/{}/nack", encode(&queue), encode(&id)),
                    &json!({ "lease_token": lease_token, "reason": reason, "retry": !no_retry }),
                )
                .await?;
            println!(
                "{id}: {} (next attempt at {})",
                cell(&item["status"]),
                cell(&item["available_at"])
            );
            Ok(())
        }
        QueueCommand::List {
            server,
            queue: None,
            ..
        } => {
            let all = Client::new(&server).get("/v1/queues").await?;
            let rows: Vec<Vec<String>> = all["queues"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|q| {
                    let counts = q["counts"].as_object().map(|c| {
                        c.iter()
                            .map(|(s, n)| format!("{s} {n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    });
                    vec![cell(&q["name"]), counts.unwrap_or_default()]
                })
                .collect();
            super::table::print(&["QUEUE", "ITEMS"], &rows);
            Ok(())
        }
        QueueCommand::List {
            server,
            queue: Some(queue),
            status,
            limit,
        } => {
            let mut path = format!("/v1/queues/{}/items?limit={limit}", encode(&queue));
            if let Some(s) = status {
                path.push_str(&format!("&status={}", encode(&s)));
            }
            print_items(&Client::new(&server).get(&path).await?);
            Ok(())
        }
        QueueCommand::Dead {
            server,
            queue,
            retry,
            drop,
        } => {
            let client = Client::new(&server);
            let base = format!("/v1/queues/{}/dead", encode(&queue));
            if let Some(id) = retry {
                let item = client
                    .post(&format!("{base}/{}/retry", encode(&id)), &json!({}))
                    .await?;
                println!("{id}: {}", cell(&item["status"]));
            } else if let Some(id) = drop {
                client.delete(&format!("{base}/{}", encode(&id))).await?;
                println!("{id}: dropped");
            } else {
                print_items(&client.get(&base).await?);
            }
            Ok(())
        }
    }
}

fn print_items(page: &Value) {
    let rows: Vec<Vec<String>> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            vec![
                cell(&i["id"]),
                cell(&i["status"]),
                cell(&i["priority"]),
                format!("{}/{}", cell(&i["attempts"]), cell(&i["max_attempts"])),
                cell(&i["updated_at"]),
                i["error"].as_str().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    super::table::print(
        &["ID", "STATUS", "PRIORITY", "ATTEMPTS", "UPDATED", "ERROR"],
        &rows,
    );
}
