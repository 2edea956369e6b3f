//! `switchyard bus publish|tail`.

use std::io::Write;

use anyhow::Context;
use serde_json::{Value, json};

use super::client::{Client, ServerArgs, encode};
use super::sse::{Resumable, interrupted};

#[derive(clap::Subcommand)]
pub enum BusCommand {
    /// Publish an event on the bus; prints its seq.
    Publish {
        /// Dot-separated topic, e.g. `orders.eu.created` (no wildcards).
        topic: String,
        /// The event type, e.g. `com.example.order.created`.
        #[arg(long = "type")]
        event_type: String,
        /// JSON data: inline, @FILE, or - for stdin (null when absent).
        #[arg(long)]
        data: Option<String>,
        /// What the event is about (e.g. a session key or an order id).
        #[arg(long)]
        subject: Option<String>,
        /// Who publishes it (default: `api`).
        #[arg(long)]
        source: Option<String>,
        #[arg(long)]
        correlation_id: Option<String>,
        /// Print the server's answer (seq, id, time) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Follow the bus: print matching events as they are published, until Ctrl-C.
    ///
    /// One line per event: `SEQ TIME TOPIC TYPE DATA`, or the whole event as one JSON
    /// line with --json. A dropped connection is resumed from the last event seen
    /// (logged on stderr), so nothing is missed or repeated.
    Tail {
        /// Topic pattern: `*` matches one token, `>` the rest (default: everything).
        #[arg(default_value = ">")]
        pattern: String,
        /// Replay from the log: start after this seq (0 = from the beginning).
        /// Without it, only events published from now on.
        #[arg(long)]
        after: Option<u64>,
        /// Print each event as one line of JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(cmd: BusCommand) -> anyhow::Result<()> {
    match cmd {
        BusCommand::Publish {
            topic,
            event_type,
            data,
            subject,
            source,
            correlation_id,
            json,
            server,
        } => {
            let mut body = json!({ "topic": topic, "type": event_type });
            if let Some(data) = data {
                body["data"] = read_json(&data)?;
            }
            for (name, value) in [
                ("subject", subject),
                ("source", source),
                ("correlation_id", correlation_id),
            ] {
                if let Some(v) = value {
                    body[name] = json!(v);
                }
            }
            let answer = Client::new(&server).post("/v1/events", &body).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                println!("{}", answer["seq"]);
            }
            Ok(())
        }
        BusCommand::Tail {
            pattern,
            after,
            json,
            server,
        } => {
            let client = Client::new(&server);
            let mut path = format!("/v1/events?topic={}", encode(&pattern));
            if let Some(after) = after {
                // Used for the first connection; reconnects send Last-Event-ID, which
                // the server prefers.
                path.push_str(&format!("&after={after}"));
            }
            let mut interrupt = interrupted();
            let mut events = Resumable::connect(&client, path, "bus tail").await?;
            loop {
                tokio::select! {
                    Ok(()) = &mut interrupt => {
                        let _ = std::io::stdout().flush();
                        std::process::exit(130);
                    }
                    msg = events.next() => {
                        let msg = msg?;
                        let line = match serde_json::from_str::<Value>(&msg.data) {
                            Ok(event) if json => event.to_string(),
                            Ok(event) => format_line(&event),
                            Err(_) => msg.data,
                        };
                        let mut out = std::io::stdout().lock();
                        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                            // The reader went away (e.g. `| head`): stop quietly.
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}

/// `SEQ TIME TOPIC TYPE DATA` with the data as compact JSON.
fn format_line(event: &Value) -> String {
    let field = |name: &str| match &event[name] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    format!(
        "{} {} {} {} {}",
        field("seq"),
        field("time"),
        field("topic"),
        field("type"),
        event["data"]
    )
}

/// `{...}` inline, `@file`, or `-` for stdin.
fn read_json(arg: &str) -> anyhow::Result<Value> {
    let text = match arg {
        "-" => std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?,
        a if a.starts_with('@') => {
            std::fs::read_to_string(&a[1..]).with_context(|| format!("cannot read {}", &a[1..]))?
        }
        a => a.to_owned(),
    };
    serde_json::from_str(&text).context("--data is not valid JSON")
}
