//! `switchyard session send|list|show|history|abort|reset|delete`.

use std::io::Write;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::client::{Client, ServerArgs, encode, status_of};
use super::sse::{Resumable, interrupted};
use super::table::{cell, one_line};
use super::turn_printer::TurnPrinter;

#[derive(clap::Subcommand)]
pub enum SessionCommand {
    /// Queue a message for a session; with --follow, stream the turn that answers it.
    ///
    /// A session that does not exist is created first (with --adapter, or the server's
    /// default adapter); --no-create refuses instead. Without --follow it prints the
    /// message id and its place in the queue. With --follow it prints the reply as it
    /// streams and exits when the turn ends: 0 when it is done, 1 when it failed, was
    /// aborted or interrupted, 130 on Ctrl-C (which aborts the turn once it runs).
    Send {
        /// Session key.
        key: String,
        /// The message; `-` reads it from stdin.
        text: String,
        /// Stream the turn to the terminal and wait for it to finish.
        #[arg(long, short)]
        follow: bool,
        /// Create the session when it does not exist (the default).
        #[arg(long, overrides_with = "no_create")]
        create: bool,
        /// Fail when the session does not exist instead of creating it.
        #[arg(long, overrides_with = "create")]
        no_create: bool,
        /// Adapter for a session created here (ignored, with a warning, when the
        /// session exists with another adapter).
        #[arg(long)]
        adapter: Option<String>,
        /// Print the server's answer as JSON; with --follow, each event of the turn as
        /// one JSON line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List sessions, in key order.
    List {
        /// At most this many sessions (pages through the server's list as needed).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print the sessions as a JSON array.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one session: adapter, queue, the message being processed.
    Show {
        /// Session key.
        key: String,
        /// Print the session as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print a session's messages and replies, oldest first.
    History {
        /// Session key.
        key: String,
        /// The last N messages.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print the messages as a JSON array.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Abort the running turn (queued messages stay queued).
    Abort {
        /// Session key.
        key: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stop the running turn and drop the queue and the history.
    Reset {
        /// Session key.
        key: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete a session and everything it holds.
    Delete {
        /// Session key.
        key: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(cmd: SessionCommand) -> anyhow::Result<()> {
    match cmd {
        SessionCommand::Send {
            key,
            text,
            follow,
            create: _,
            no_create,
            adapter,
            json,
            server,
        } => {
            let client = Client::new(&server);
            let text = if text == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
            } else {
                text
            };
            let send = Sender {
                client: &client,
                key: &key,
                create: !no_create,
                adapter: adapter.as_deref(),
            };
            if follow {
                return send.follow(text, json).await;
            }
            let queued = send.enqueue(&text).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&queued)?);
            } else {
                println!(
                    "queued {} at position {}",
                    queued["id"].as_str().unwrap_or("?"),
                    queued["position"]
                );
            }
            Ok(())
        }
        SessionCommand::List {
            limit,
            json,
            server,
        } => {
            let client = Client::new(&server);
            let (sessions, more) = list(&client, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&sessions)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = sessions
                .iter()
                .map(|s| {
                    vec![
                        cell(&s["key"]),
                        cell(&s["adapter"]),
                        cell(&s["queue_depth"]),
                        yes_no(&s["processing"]).into(),
                        cell(&s["updated_at"]),
                        one_line(s["last_message_preview"].as_str().unwrap_or(""), 60),
                    ]
                })
                .collect();
            super::table::print(
                &[
                    "KEY",
                    "ADAPTER",
                    "QUEUED",
                    "PROCESSING",
                    "UPDATED",
                    "LAST MESSAGE",
                ],
                &rows,
            );
            if more {
                eprintln!("(more sessions than --limit {limit})");
            }
            Ok(())
        }
        SessionCommand::Show { key, json, server } => {
            let s = Client::new(&server)
                .get(&format!("/v1/sessions/{}", encode(&key)))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(());
            }
            let processing = match s["current_message"].as_str() {
                Some(id) => format!("yes (message {id})"),
                None => yes_no(&s["processing"]).into(),
            };
            let fields = [
                ("key", cell(&s["key"])),
                ("id", cell(&s["id"])),
                ("adapter", cell(&s["adapter"])),
                ("config", s["config"].to_string()),
                ("queued", cell(&s["queue_depth"])),
                ("processing", processing),
                ("in memory", yes_no(&s["in_memory"]).into()),
                ("created", cell(&s["created_at"])),
                ("updated", cell(&s["updated_at"])),
                (
                    "last message",
                    one_line(s["last_message_preview"].as_str().unwrap_or("-"), 200),
                ),
            ];
            for (name, value) in fields {
                println!("{:<13} {value}", format!("{name}:"));
            }
            Ok(())
        }
        SessionCommand::History {
            key,
            limit,
            json,
            server,
        } => {
            let body = Client::new(&server)
                .get(&format!(
                    "/v1/sessions/{}/history?limit={limit}",
                    encode(&key)
                ))
                .await?;
            let messages = body["messages"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&messages)?);
                return Ok(());
            }
            for m in &messages {
                let mut head = format!("{}  {}", cell(&m["created_at"]), cell(&m["role"]));
                match m["status"].as_str() {
                    Some("done") | None => {}
                    Some(status) => head.push_str(&format!(" ({status})")),
                }
                let body = m["text"].as_str().unwrap_or("");
                let mut lines = body.lines();
                println!("{head}: {}", lines.next().unwrap_or(""));
                for line in lines {
                    println!("    {line}");
                }
                if let Some(error) = m["error"].as_str() {
                    println!("    error: {error}");
                }
            }
            Ok(())
        }
        SessionCommand::Abort { key, server } => {
            let body = Client::new(&server)
                .post(&format!("/v1/sessions/{}/abort", encode(&key)), &json!({}))
                .await?;
            if body["aborted"] == true {
                println!("aborted the running turn of session {key}");
            } else {
                println!("session {key} has no running turn");
            }
            Ok(())
        }
        SessionCommand::Reset { key, server } => {
            let body = Client::new(&server)
                .post(&format!("/v1/sessions/{}/reset", encode(&key)), &json!({}))
                .await?;
            println!(
                "reset session {key}: history cleared, {} queued message(s) dropped",
                body["dropped_messages"]
            );
            Ok(())
        }
        SessionCommand::Delete { key, server } => {
            Client::new(&server)
                .delete(&format!("/v1/sessions/{}", encode(&key)))
                .await?;
            println!("deleted session {key}");
            Ok(())
        }
    }
}

/// Up to `limit` sessions, following the server's `next` cursor; and whether more
/// exist.
async fn list(client: &Client, limit: usize) -> anyhow::Result<(Vec<Value>, bool)> {
    const PAGE: usize = 500;
    let mut sessions: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    while sessions.len() < limit {
        let page = (limit - sessions.len()).min(PAGE);
        let mut path = format!("/v1/sessions?limit={page}");
        if let Some(a) = &after {
            path.push_str(&format!("&after={}", encode(a)));
        }
        let body = client.get(&path).await?;
        sessions.extend(body["sessions"].as_array().cloned().unwrap_or_default());
        match body["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok((sessions, false)),
        }
    }
    // A full last page: ask whether anything follows, so the table can say so.
    let more = match &after {
        Some(a) => {
            let body = client
                .get(&format!("/v1/sessions?limit=1&after={}", encode(a)))
                .await?;
            body["sessions"].as_array().is_some_and(|s| !s.is_empty())
        }
        None => false,
    };
    Ok((sessions, more))
}

/// `session send`: what it needs to find or create the session.
struct Sender<'a> {
    client: &'a Client,
    key: &'a str,
    create: bool,
    adapter: Option<&'a str>,
}

impl Sender<'_> {
    fn messages_path(&self) -> String {
        format!("/v1/sessions/{}/messages", encode(self.key))
    }

    /// POST the message, creating the session first when it is missing.
    async fn enqueue(&self, text: &str) -> anyhow::Result<Value> {
        let body = json!({ "text": text });
        if self.adapter.is_some() {
            // Say so when the session exists with another adapter.
            match self
                .client
                .get(&format!("/v1/sessions/{}", encode(self.key)))
                .await
            {
                Ok(snapshot) => self.check_adapter(&snapshot),
                Err(e) if self.create && status_of(&e) == Some(404) => {
                    self.create_session().await?;
                }
                Err(e) => return Err(e),
            }
        }
        match self.client.post(&self.messages_path(), &body).await {
            Err(e) if self.create && status_of(&e) == Some(404) => {
                self.create_session().await?;
                self.client.post(&self.messages_path(), &body).await
            }
            other => other,
        }
    }

    /// Create the session (a concurrent creator winning the race is fine).
    async fn create_session(&self) -> anyhow::Result<()> {
        let mut body = json!({ "key": self.key });
        if let Some(a) = self.adapter {
            body["adapter"] = json!(a);
        }
        match self.client.post("/v1/sessions", &body).await {
            Ok(s) => {
                eprintln!(
                    "created session {} (adapter {})",
                    self.key,
                    cell(&s["adapter"])
                );
                Ok(())
            }
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn check_adapter(&self, snapshot: &Value) {
        if let Some(wanted) = self.adapter
            && let Some(actual) = snapshot["adapter"].as_str()
            && actual != wanted
        {
            eprintln!(
                "warning: session {} exists with adapter {actual}; --adapter {wanted} only applies when creating one",
                self.key
            );
        }
    }

    /// Open the session's event stream, send the message, print its turn.
    async fn follow(&self, text: String, json: bool) -> anyhow::Result<()> {
        let mut interrupt = interrupted();
        let path = format!("/v1/sessions/{}/events", encode(self.key));
        let mut events = match Resumable::connect(self.client, path.clone(), "session").await {
            Err(e) if self.create && status_of(&e) == Some(404) => {
                self.create_session().await?;
                Resumable::connect(self.client, path, "session").await?
            }
            other => other?,
        };
        // The stream opens with a snapshot: from here on, nothing of the session is missed.
        let first = events.next().await?;
        if first.event.as_deref() != Some("snapshot") {
            bail!(
                "the session's event stream did not start with a snapshot (got {:?})",
                first.event
            );
        }
        if let Ok(snapshot) = serde_json::from_str::<Value>(&first.data) {
            self.check_adapter(&snapshot);
        }
        let queued = self
            .client
            .post(&self.messages_path(), &json!({ "text": text }))
            .await?;
        let message_id = queued["id"]
            .as_str()
            .context("the server's answer has no message id")?
            .to_owned();
        if let Some(position) = queued["position"].as_u64()
            && position > 1
        {
            eprintln!(
                "message {message_id} is number {position} in the queue; waiting for its turn"
            );
        }
        let mut turn = TurnPrinter::new(message_id, json);
        loop {
            tokio::select! {
                Ok(()) = &mut interrupt => {
                    turn.end_line();
                    if turn.started {
                        let aborted = self
                            .client
                            .post(&format!("/v1/sessions/{}/abort", encode(self.key)), &json!({}))
                            .await;
                        match aborted {
                            Ok(_) => eprintln!("interrupted: aborted the turn"),
                            Err(e) => eprintln!("interrupted: could not abort the turn: {e:#}"),
                        }
                    } else {
                        eprintln!(
                            "interrupted: message {} is still queued and will run; `switchyard session abort {}` stops it once it starts",
                            turn.message_id, self.key
                        );
                    }
                    let _ = std::io::stdout().flush();
                    std::process::exit(130);
                }
                msg = events.next() => {
                    let msg = msg?;
                    if msg.event.as_deref() == Some("snapshot") {
                        continue; // a reconnect's fresh snapshot
                    }
                    let event: Value = match serde_json::from_str(&msg.data) {
                        Ok(v) => v,
                        Err(_) => continue,
                    };
                    if let Some(result) = turn.handle(msg.event.as_deref().unwrap_or(""), &event) {
                        return result;
                    }
                }
            }
        }
    }
}

fn yes_no(v: &Value) -> &'static str {
    if v == &Value::Bool(true) { "yes" } else { "no" }
}
