//! How `session send --follow` shows a turn: its events as they arrive (text streamed,
//! reasoning and tool calls dimmed on a terminal, or the raw events with `--json`),
//! and when the turn is over.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use serde_json::Value;

use super::table::one_line;

/// Prints one turn's events as they arrive and decides when it is over.
pub(super) struct TurnPrinter<W: Write = std::io::Stdout> {
    out: W,
    pub(super) message_id: String,
    json: bool,
    /// Decorate (dim reasoning and tool lines) only when stdout is a terminal.
    tty: bool,
    pub(super) started: bool,
    /// Reply text printed so far (deltas or a complete message).
    printed_text: bool,
    /// The cursor is at the start of a line.
    at_line_start: bool,
    in_reasoning: bool,
    tools: HashMap<String, String>,
}

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

impl TurnPrinter {
    pub(super) fn new(message_id: String, json: bool) -> Self {
        let tty = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        TurnPrinter::with_output(std::io::stdout(), message_id, json, tty)
    }
}

impl<W: Write> TurnPrinter<W> {
    fn with_output(out: W, message_id: String, json: bool, tty: bool) -> Self {
        Self {
            out,
            message_id,
            json,
            tty,
            started: false,
            printed_text: false,
            at_line_start: true,
            in_reasoning: false,
            tools: HashMap::new(),
        }
    }

    /// Handle one bus event of the session; `Some(result)` when the command is done.
    pub(super) fn handle(&mut self, sse_type: &str, event: &Value) -> Option<anyhow::Result<()>> {
        let kind = event["type"]
            .as_str()
            .unwrap_or(sse_type)
            .strip_prefix("switchyard.session.")
            .unwrap_or("")
            .to_owned();
        let data = &event["data"];
        match kind.as_str() {
            // Events of the whole session that end our wait.
            "reset" | "deleted" => {
                self.end_line();
                if self.json {
                    self.print(&format!("{event}\n"));
                }
                let what = if kind == "reset" { "reset" } else { "deleted" };
                return Some(Err(anyhow::anyhow!(
                    "the session was {what} before the turn of message {} finished",
                    self.message_id
                )));
            }
            _ if data["message_id"].as_str() != Some(self.message_id.as_str()) => return None,
            _ => {}
        }
        if self.json {
            self.print(&format!("{event}\n"));
        }
        match kind.as_str() {
            "turn.started" => self.started = true,
            "turn.text_delta" if !self.json => {
                self.leave_reasoning();
                self.print(data["text"].as_str().unwrap_or(""));
                self.printed_text = true;
            }
            "turn.reasoning_delta" if !self.json => {
                if !self.in_reasoning {
                    self.start_line();
                    self.in_reasoning = true;
                }
                let text = data["text"].as_str().unwrap_or("");
                if self.tty {
                    self.print(&format!("{DIM}{text}{RESET}"));
                } else {
                    self.print(text);
                }
            }
            "turn.tool_start" if !self.json => {
                let name = data["name"].as_str().unwrap_or("?").to_owned();
                if let Some(id) = data["id"].as_str() {
                    self.tools.insert(id.to_owned(), name.clone());
                }
                self.line(&format!(
                    "[tool {name}] {}",
                    one_line(&compact(&data["input"]), 200)
                ));
            }
            "turn.tool_end" if !self.json => {
                let name = data["id"]
                    .as_str()
                    .and_then(|id| self.tools.get(id))
                    .cloned()
                    .unwrap_or_else(|| "?".into());
                let outcome = if data["is_error"] == true {
                    "error"
                } else {
                    "done"
                };
                self.line(&format!(
                    "[tool {name} {outcome}] {}",
                    one_line(&compact(&data["output"]), 200)
                ));
            }
            // Adapters that do not stream deltas still get their reply shown.
            "turn.message_complete" if !self.json && !self.printed_text => {
                self.leave_reasoning();
                self.print(data["text"].as_str().unwrap_or(""));
                self.printed_text = true;
            }
            "turn.error" if !self.json => {
                self.end_line();
                eprintln!(
                    "adapter error: {}",
                    data["message"].as_str().unwrap_or("(no message)")
                );
            }
            "turn.finished" => {
                if !self.json && !self.printed_text {
                    self.leave_reasoning();
                    if let Some(text) = data["text"].as_str() {
                        self.print(text);
                    }
                }
                self.end_line();
                let status = data["status"].as_str().unwrap_or("unknown");
                let error = data["error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Some(match status {
                    "done" => Ok(()),
                    "failed" => Err(anyhow::anyhow!("the turn failed{error}")),
                    "aborted" => Err(anyhow::anyhow!("the turn was aborted{error}")),
                    other => Err(anyhow::anyhow!("the turn ended as {other}{error}")),
                });
            }
            "turn.interrupted" => {
                self.end_line();
                let reason = data["reason"]
                    .as_str()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                return Some(Err(anyhow::anyhow!(
                    "the turn was interrupted (the server restarted){reason}"
                )));
            }
            _ => {}
        }
        None
    }

    fn print(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
        self.at_line_start = text.ends_with('\n') || text.ends_with(&format!("\n{RESET}"));
    }

    /// Print `text` on a line of its own.
    fn line(&mut self, text: &str) {
        self.leave_reasoning();
        self.start_line();
        if self.tty {
            self.print(&format!("{DIM}{text}{RESET}\n"));
        } else {
            self.print(&format!("{text}\n"));
        }
    }

    fn leave_reasoning(&mut self) {
        if self.in_reasoning {
            self.in_reasoning = false;
            self.start_line();
        }
    }

    fn start_line(&mut self) {
        if !self.at_line_start {
            self.print("\n");
        }
    }

    /// Finish a partly printed line (before exiting or writing to stderr).
    pub(super) fn end_line(&mut self) {
        self.in_reasoning = false;
        self.start_line();
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(
        tty: bool,
        json: bool,
        events: &[(&str, Value)],
    ) -> (String, Option<anyhow::Result<()>>) {
        let mut printer = TurnPrinter::with_output(Vec::new(), "m1".into(), json, tty);
        let mut outcome = None;
        for (kind, data) in events {
            let event = json!({ "type": format!("switchyard.session.{kind}"), "data": data });
            if let Some(done) = printer.handle("", &event) {
                outcome = Some(done);
                break;
            }
        }
        (String::from_utf8(printer.out).unwrap(), outcome)
    }

    fn turn() -> Vec<(&'static str, Value)> {
        vec![
            ("turn.started", json!({ "message_id": "m1" })),
            (
                "turn.text_delta",
                json!({ "message_id": "other", "text": "NOT MINE" }),
            ),
            (
                "turn.reasoning_delta",
                json!({ "message_id": "m1", "text": "let me think" }),
            ),
            (
                "turn.text_delta",
                json!({ "message_id": "m1", "text": "Looking " }),
            ),
            (
                "turn.tool_start",
                json!({ "message_id": "m1", "id": "t1", "name": "grep", "input": { "q": "x" } }),
            ),
            (
                "turn.tool_end",
                json!({ "message_id": "m1", "id": "t1", "output": "3 hits\nmore", "is_error": false }),
            ),
            (
                "turn.text_delta",
                json!({ "message_id": "m1", "text": "found it." }),
            ),
            (
                "turn.message_complete",
                json!({ "message_id": "m1", "text": "Looking found it." }),
            ),
            (
                "turn.finished",
                json!({ "message_id": "m1", "status": "done", "text": "Looking found it." }),
            ),
        ]
    }

    #[test]
    fn a_turn_prints_plain_when_not_a_terminal() {
        let (out, outcome) = run(false, false, &turn());
        assert_eq!(
            out,
            "let me think\nLooking \n[tool grep] {\"q\":\"x\"}\n[tool grep done] 3 hits more\nfound it.\n"
        );
        assert!(outcome.unwrap().is_ok());
    }

    #[test]
    fn reasoning_and_tools_are_dimmed_on_a_terminal() {
        let (out, _) = run(true, false, &turn());
        assert!(
            out.starts_with(&format!(
                "{DIM}let me think{RESET}\nLooking \n{DIM}[tool grep]"
            )),
            "{out:?}"
        );
        assert!(out.ends_with("found it.\n"), "{out:?}");
    }

    #[test]
    fn json_prints_only_this_messages_events() {
        let (out, outcome) = run(false, true, &turn());
        assert_eq!(out.lines().count(), 8, "{out}");
        assert!(!out.contains("NOT MINE"));
        assert!(outcome.unwrap().is_ok());
    }

    #[test]
    fn failures_and_replies_without_deltas() {
        let (out, outcome) = run(
            false,
            false,
            &[
                (
                    "turn.text_delta",
                    json!({ "message_id": "m1", "text": "half" }),
                ),
                (
                    "turn.finished",
                    json!({ "message_id": "m1", "status": "aborted", "text": "half" }),
                ),
            ],
        );
        assert_eq!(out, "half\n");
        assert_eq!(
            outcome.unwrap().unwrap_err().to_string(),
            "the turn was aborted"
        );
        let (out, outcome) = run(
            false,
            false,
            &[(
                "turn.finished",
                json!({ "message_id": "m1", "status": "failed", "error": "boom" }),
            )],
        );
        assert_eq!(out, "");
        assert_eq!(
            outcome.unwrap().unwrap_err().to_string(),
            "the turn failed: boom"
        );
        let (out, outcome) = run(
            false,
            false,
            &[(
                "turn.finished",
                json!({ "message_id": "m1", "status": "done", "text": "whole reply" }),
            )],
        );
        assert_eq!(out, "whole reply\n");
        assert!(outcome.unwrap().is_ok());
        let (_, outcome) = run(false, false, &[("reset", json!({ "dropped_messages": 1 }))]);
        assert!(
            outcome
                .unwrap()
                .unwrap_err()
                .to_string()
                .contains("was reset")
        );
        let (_, outcome) = run(
            false,
            false,
            &[("turn.interrupted", json!({ "message_id": "m1" }))],
        );
        assert!(
            outcome
                .unwrap()
                .unwrap_err()
                .to_string()
                .contains("interrupted")
        );
    }
}
