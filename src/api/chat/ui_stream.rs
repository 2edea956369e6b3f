//! The UI message stream of one turn: the session's events translated into the SDK's
//! chunks, then `[DONE]`.

use std::borrow::Cow;
use std::convert::Infallible;

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::bus::Subscription;
use crate::sessions::{TurnData, lenient_text};

/// One chunk of the UI message stream, with exactly the fields the SDK's schema for
/// its `type` has.
#[derive(Serialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
enum Chunk<'a> {
    Start {
        message_id: &'a str,
    },
    TextStart {
        id: &'a str,
    },
    TextDelta {
        id: &'a str,
        delta: &'a str,
    },
    TextEnd {
        id: &'a str,
    },
    ReasoningStart {
        id: &'a str,
    },
    ReasoningDelta {
        id: &'a str,
        delta: &'a str,
    },
    ReasoningEnd {
        id: &'a str,
    },
    ToolInputStart {
        tool_call_id: &'a str,
        tool_name: &'a str,
    },
    ToolInputAvailable {
        tool_call_id: &'a str,
        tool_name: &'a str,
        input: &'a RawValue,
    },
    ToolOutputAvailable {
        tool_call_id: &'a str,
        output: &'a RawValue,
    },
    ToolOutputError {
        tool_call_id: &'a str,
        error_text: &'a str,
    },
    Abort {
        reason: &'a str,
    },
    Error {
        error_text: &'a str,
    },
    Finish {
        finish_reason: &'a str,
    },
}

impl Chunk<'_> {
    fn text(&self) -> String {
        serde_json::to_string(self).expect("chunks serialize")
    }
}

/// The fields of `turn.finished` the stream reads, leniently: an end that the stream
/// could not read would leave its client waiting.
#[derive(Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Finished<'a> {
    #[serde(deserialize_with = "lenient_text")]
    message_id: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "lenient_text")]
    status: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "lenient_text")]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(deserialize_with = "lenient_text")]
    error: Option<Cow<'a, str>>,
}

/// The kinds of block a UI message streams text in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Reasoning,
}

impl Block {
    fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Reasoning => "reasoning",
        }
    }

    fn start(self, id: &str) -> String {
        match self {
            Self::Text => Chunk::TextStart { id }.text(),
            Self::Reasoning => Chunk::ReasoningStart { id }.text(),
        }
    }

    fn end(self, id: &str) -> String {
        match self {
            Self::Text => Chunk::TextEnd { id }.text(),
            Self::Reasoning => Chunk::ReasoningEnd { id }.text(),
        }
    }
}

/// Where a turn's stream is: which text/reasoning block is open.
struct Translation {
    message_id: String,
    reply_id: String,
    started: bool,
    /// The block open now, and its id: opening one closes the other.
    open: Option<(Block, String)>,
    blocks: u32,
    done: bool,
}

impl Translation {
    fn new(message_id: String) -> Self {
        Self {
            message_id,
            reply_id: ulid::Ulid::new().to_string(),
            started: false,
            open: None,
            blocks: 0,
            done: false,
        }
    }

    fn close_blocks(&mut self, out: &mut Vec<String>) {
        if let Some((kind, id)) = self.open.take() {
            out.push(kind.end(&id));
        }
    }

    /// The UI chunks (as text) for one session event, if it is of this turn.
    fn translate(&mut self, event_type: &str, data: &str) -> Vec<String> {
        let kind = event_type.trim_start_matches("switchyard.session.");
        let mut out = Vec::new();
        if kind == "deleted" {
            // No end is recorded for a turn of a deleted session: end here.
            let error_text = "the session was deleted";
            self.end(&mut out, Some(Chunk::Error { error_text }), "error");
            return out;
        }
        if kind == "turn.finished" || kind == "turn.interrupted" {
            let Ok(finished) = serde_json::from_str::<Finished>(data) else {
                return out;
            };
            if finished.message_id.as_deref() != Some(&self.message_id) {
                return out;
            }
            let (last, finish_reason) = if kind == "turn.interrupted" {
                let error_text = "the turn was interrupted by a restart";
                (Some(Chunk::Error { error_text }), "interrupted")
            } else {
                match (finished.status.as_deref(), finished.stop_reason.as_deref()) {
                    (Some("done"), Some("max-tokens")) => (None, "length"),
                    (Some("done"), _) => (None, "stop"),
                    (Some("aborted"), _) => {
                        let reason = "the turn was aborted";
                        (Some(Chunk::Abort { reason }), "other")
                    }
                    _ => {
                        let error_text = finished.error.as_deref().unwrap_or("the turn failed");
                        (Some(Chunk::Error { error_text }), "error")
                    }
                }
            };
            self.end(&mut out, last, finish_reason);
            return out;
        }
        let Ok(turn) = serde_json::from_str::<TurnData>(data) else {
            return out;
        };
        if turn.message_id.as_deref() != Some(&self.message_id) {
            return out;
        }
        self.start(&mut out);
        match kind {
            "turn.text_delta" => {
                let id = self.open(Block::Text, &mut out);
                let delta = turn.text.as_deref().unwrap_or_default();
                out.push(Chunk::TextDelta { id: &id, delta }.text());
            }
            "turn.reasoning_delta" => {
                let id = self.open(Block::Reasoning, &mut out);
                let delta = turn.text.as_deref().unwrap_or_default();
                out.push(Chunk::ReasoningDelta { id: &id, delta }.text());
            }
            "turn.tool_start" => {
                self.close_blocks(&mut out);
                let tool_call_id = turn.id.as_deref().unwrap_or_default();
                let tool_name = turn.name.as_deref().unwrap_or_default();
                out.push(
                    Chunk::ToolInputStart {
                        tool_call_id,
                        tool_name,
                    }
                    .text(),
                );
                out.push(
                    Chunk::ToolInputAvailable {
                        tool_call_id,
                        tool_name,
                        input: turn.input.as_deref().unwrap_or(RawValue::NULL),
                    }
                    .text(),
                );
            }
            "turn.tool_end" => {
                self.close_blocks(&mut out);
                let tool_call_id = turn.id.as_deref().unwrap_or_default();
                let output = turn.output.as_deref().unwrap_or(RawValue::NULL);
                if turn.is_error == Some(true) {
                    // The SDK shows text: a JSON string as itself, other JSON as written.
                    let text = serde_json::from_str::<String>(output.get())
                        .unwrap_or_else(|_| output.get().to_owned());
                    out.push(
                        Chunk::ToolOutputError {
                            tool_call_id,
                            error_text: &text,
                        }
                        .text(),
                    );
                } else {
                    out.push(
                        Chunk::ToolOutputAvailable {
                            tool_call_id,
                            output,
                        }
                        .text(),
                    );
                }
            }
            // turn.started, turn.message_complete, turn.error (streamed as text
            // already or reported at finish), message.queued: nothing to show.
            _ => {}
        }
        out
    }

    /// The id of the open block of `kind`, opened now (closing the other) unless it
    /// is open already.
    fn open(&mut self, kind: Block, out: &mut Vec<String>) -> String {
        if let Some((open, id)) = &self.open
            && *open == kind
        {
            return id.clone();
        }
        self.close_blocks(out);
        self.blocks += 1;
        let id = format!("{}-{}", kind.name(), self.blocks);
        out.push(kind.start(&id));
        self.open = Some((kind, id.clone()));
        id
    }

    /// End the turn: `start` if nothing was sent yet, the open block closed, `last`
    /// (why it did not end well, if so), then `finish`.
    fn end(&mut self, out: &mut Vec<String>, last: Option<Chunk>, finish_reason: &str) {
        self.start(out);
        self.close_blocks(out);
        self.done = true;
        out.extend(last.map(|chunk| chunk.text()));
        out.push(Chunk::Finish { finish_reason }.text());
    }

    /// The `start` chunk, before this turn's first.
    fn start(&mut self, out: &mut Vec<String>) {
        if !self.started {
            self.started = true;
            out.push(
                Chunk::Start {
                    message_id: &self.reply_id,
                }
                .text(),
            );
        }
    }
}

/// The SSE body of one turn's UI chunks, then `[DONE]`, with a comment line after
/// `keep_alive` without a write. The chunks of every event already here when one is
/// translated go out as one frame: a short turn is two writes (its start, then the
/// rest), not one per chunk, for the server and the client. Those already here are
/// taken with [`Subscription::ready`], which never starts a read of the log that
/// would be thrown away.
pub(super) fn frames(
    subscription: Subscription,
    message_id: String,
    keep_alive: std::time::Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let state = (subscription, Translation::new(message_id));
    futures::stream::unfold(Some(state), move |state| async move {
        let (mut subscription, mut t) = state?;
        let mut frame = String::new();
        // From the last write: events that show nothing (another turn's, say) do not
        // put the keep-alive off.
        let deadline = tokio::time::Instant::now() + keep_alive;
        while frame.is_empty() {
            let first = tokio::time::timeout_at(deadline, subscription.next()).await;
            let Ok(first) = first else {
                return Some((Ok(Bytes::from_static(b":\n\n")), Some((subscription, t))));
            };
            let mut next = Some(first);
            while let Some(result) = next.take() {
                match result {
                    Ok(event) => {
                        for chunk in t.translate(&event.event_type, event.data.text()) {
                            push_data(&mut frame, &chunk);
                        }
                    }
                    Err(e) => {
                        let error_text = e.to_string();
                        push_data(
                            &mut frame,
                            &Chunk::Error {
                                error_text: &error_text,
                            }
                            .text(),
                        );
                        t.done = true;
                    }
                }
                if t.done {
                    push_data(&mut frame, "[DONE]");
                    return Some((Ok(frame.into()), None));
                }
                next = subscription.ready().map(Ok);
            }
        }
        Some((Ok(frame.into()), Some((subscription, t))))
    })
}

/// One SSE event of `data` appended to `frame`: a `data:` line per line of it, as the
/// SSE format wants (a chunk's JSON is compact, but a tool's input or output is
/// passed on as it was published, and may be pretty-printed).
fn push_data(frame: &mut String, data: &str) {
    for line in data.split(['\n', '\r']) {
        frame.push_str("data: ");
        frame.push_str(line);
        frame.push('\n');
    }
    frame.push('\n');
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use serde_json::{Value, json};

    use super::Translation;
    use crate::bus::{Bus, Subscription, TopicPattern};
    use crate::sessions::SessionEvent;
    use crate::store::Store;

    /// A bus on a fresh store, and a subscription to session `s`'s events (keep the
    /// directory while the bus is used).
    fn session_bus() -> (tempfile::TempDir, Bus, Subscription) {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::new(Store::open(dir.path()).unwrap());
        let subscription = bus.subscribe_from(TopicPattern::parse("session.s.>").unwrap(), None);
        (dir, bus, subscription)
    }

    /// The chunks of every event published before the stream looks go out as one
    /// frame of `data:` lines; the frame with `finish` ends with `[DONE]`, and so does
    /// the stream.
    #[tokio::test]
    async fn events_already_there_make_one_frame() {
        let (_dir, bus, subscription) = session_bus();
        let publish = |kind: SessionEvent, data: Value| {
            let bus = bus.clone();
            async move { bus.publish(kind.event("s", Some("k"), data)).await.unwrap() }
        };
        let types = |frame: &[u8]| -> Vec<String> {
            let text = std::str::from_utf8(frame).unwrap();
            assert!(text.ends_with("\n\n"), "{text:?}");
            text.split_terminator("\n\n")
                .map(|event| {
                    let lines: Vec<&str> = event
                        .split('\n')
                        .map(|line| line.strip_prefix("data: ").expect("data lines only"))
                        .collect();
                    let data = lines.join("\n");
                    match serde_json::from_str::<Value>(&data) {
                        Ok(chunk) => chunk["type"].as_str().unwrap().to_owned(),
                        Err(_) => data,
                    }
                })
                .collect()
        };

        publish(SessionEvent::TurnStarted, json!({ "message_id": "m1" })).await;
        let keep_alive = std::time::Duration::from_secs(60);
        let mut frames = Box::pin(super::frames(subscription, "m1".into(), keep_alive));
        assert_eq!(types(&frames.next().await.unwrap().unwrap()), ["start"]);

        for word in ["a ", "b"] {
            let data = json!({ "message_id": "m1", "text": word });
            publish(SessionEvent::TextDelta, data).await;
        }
        // A tool's input as it was published, pretty-printed: each of its lines is a
        // `data:` line (checked by `types`), and the JSON reads back whole.
        let pretty = "{\n  \"message_id\": \"m1\",\n  \"id\": \"c1\",\n  \"name\": \"ls\",\n  \"input\": {\n    \"dir\": \"/\"\n  }\n}";
        let mut tool = SessionEvent::ToolStart.event("s", Some("k"), json!(null));
        tool.data = crate::event::EventData::from_text(pretty.into()).unwrap();
        bus.publish(tool).await.unwrap();
        let finished = json!({ "message_id": "m1", "status": "done", "stop_reason": "complete" });
        publish(SessionEvent::TurnFinished, finished).await;
        assert_eq!(
            types(&frames.next().await.unwrap().unwrap()),
            [
                "text-start",
                "text-delta",
                "text-delta",
                "text-end",
                "tool-input-start",
                "tool-input-available",
                "finish",
                "[DONE]"
            ]
        );
        assert!(frames.next().await.is_none());
    }

    /// The keep-alive comes a set time after the last write, however many events
    /// that show nothing (another turn's) arrive meanwhile.
    #[tokio::test]
    async fn events_that_show_nothing_do_not_put_the_keep_alive_off() {
        let (_dir, bus, subscription) = session_bus();
        let keep_alive = std::time::Duration::from_millis(300);
        let mut frames = Box::pin(super::frames(subscription, "m1".into(), keep_alive));
        let others = tokio::spawn({
            let bus = bus.clone();
            async move {
                for _ in 0..40 {
                    let data = json!({ "message_id": "other", "text": "not mine" });
                    let event = SessionEvent::TextDelta.event("s", Some("k"), data);
                    bus.publish(event).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                }
            }
        });
        let started = std::time::Instant::now();
        let frame = frames.next().await.unwrap().unwrap();
        assert_eq!(&frame[..], b":\n\n");
        assert!(
            started.elapsed() < std::time::Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        others.abort();
    }

    /// Translate session events `(kind, data)` of message `m1`; the chunks as JSON.
    fn translate(events: &[(&str, Value)]) -> Vec<Value> {
        let mut t = Translation::new("m1".into());
        t.reply_id = "r1".into();
        events
            .iter()
            .flat_map(|(kind, data)| {
                t.translate(&format!("switchyard.session.{kind}"), &data.to_string())
            })
            .map(|chunk| serde_json::from_str(&chunk).unwrap())
            .collect()
    }

    #[test]
    fn each_kind_of_event_becomes_the_sdk_chunks() {
        let m = |extra: Value| {
            let mut data = json!({ "message_id": "m1" });
            data.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            data
        };
        let chunks = translate(&[
            ("message.queued", m(json!({ "text": "hi", "position": 1 }))),
            ("turn.started", m(json!({ "input": "hi" }))),
            ("turn.reasoning_delta", m(json!({ "text": "hmm" }))),
            ("turn.text_delta", m(json!({ "text": "a \"b\"" }))),
            (
                "turn.tool_start",
                m(json!({ "id": "c1", "name": "ls", "input": { "dir": "/" } })),
            ),
            (
                "turn.tool_end",
                m(json!({ "id": "c1", "output": ["x"], "is_error": false })),
            ),
            (
                "turn.tool_end",
                m(json!({ "id": "c2", "output": "no such file", "is_error": true })),
            ),
            (
                "turn.tool_end",
                m(json!({ "id": "c3", "output": { "code": 2 }, "is_error": true })),
            ),
            ("turn.text_delta", m(json!({ "text": "done" }))),
            (
                "turn.text_delta",
                json!({ "message_id": "other", "text": "not mine" }),
            ),
            ("turn.message_complete", m(json!({ "text": "done" }))),
            (
                "turn.finished",
                m(
                    json!({ "status": "done", "stop_reason": "max-tokens", "error": null, "text": "done" }),
                ),
            ),
        ]);
        assert_eq!(
            chunks,
            [
                json!({ "type": "start", "messageId": "r1" }),
                json!({ "type": "reasoning-start", "id": "reasoning-1" }),
                json!({ "type": "reasoning-delta", "id": "reasoning-1", "delta": "hmm" }),
                json!({ "type": "reasoning-end", "id": "reasoning-1" }),
                json!({ "type": "text-start", "id": "text-2" }),
                json!({ "type": "text-delta", "id": "text-2", "delta": "a \"b\"" }),
                json!({ "type": "text-end", "id": "text-2" }),
                json!({ "type": "tool-input-start", "toolCallId": "c1", "toolName": "ls" }),
                json!({ "type": "tool-input-available", "toolCallId": "c1", "toolName": "ls", "input": { "dir": "/" } }),
                json!({ "type": "tool-output-available", "toolCallId": "c1", "output": ["x"] }),
                json!({ "type": "tool-output-error", "toolCallId": "c2", "errorText": "no such file" }),
                json!({ "type": "tool-output-error", "toolCallId": "c3", "errorText": "{\"code\":2}" }),
                json!({ "type": "text-start", "id": "text-3" }),
                json!({ "type": "text-delta", "id": "text-3", "delta": "done" }),
                json!({ "type": "text-end", "id": "text-3" }),
                json!({ "type": "finish", "finishReason": "length" }),
            ]
        );
    }

    #[test]
    fn a_turn_ends_as_it_ended() {
        let end = |kind: &str, data: Value| translate(&[(kind, data)]);
        let finished = |status: &str, stop: &str, error: Value| json!({ "message_id": "m1", "status": status, "stop_reason": stop, "error": error });
        assert_eq!(
            end("turn.finished", finished("done", "complete", Value::Null))[1],
            json!({ "type": "finish", "finishReason": "stop" })
        );
        assert_eq!(
            end("turn.finished", finished("aborted", "aborted", Value::Null))[1..],
            [
                json!({ "type": "abort", "reason": "the turn was aborted" }),
                json!({ "type": "finish", "finishReason": "other" }),
            ]
        );
        assert_eq!(
            end(
                "turn.finished",
                finished("failed", "error", json!("adapter crashed"))
            )[1..],
            [
                json!({ "type": "error", "errorText": "adapter crashed" }),
                json!({ "type": "finish", "finishReason": "error" }),
            ]
        );
        assert_eq!(
            end("turn.interrupted", json!({ "message_id": "m1" }))[1..],
            [
                json!({ "type": "error", "errorText": "the turn was interrupted by a restart" }),
                json!({ "type": "finish", "finishReason": "interrupted" }),
            ]
        );
        assert!(
            end(
                "turn.finished",
                json!({ "message_id": "m2", "status": "done" })
            )
            .is_empty()
        );
        // An end with fields of unexpected types still ends the stream.
        for error in [Value::Null, json!({ "code": 1 }), json!(7)] {
            assert_eq!(
                end("turn.finished", finished("failed", "error", error))[1..],
                [
                    json!({ "type": "error", "errorText": "the turn failed" }),
                    json!({ "type": "finish", "finishReason": "error" }),
                ]
            );
        }
        assert_eq!(
            end("turn.finished", json!({ "message_id": "m1", "status": 5 }))[1..],
            [
                json!({ "type": "error", "errorText": "the turn failed" }),
                json!({ "type": "finish", "finishReason": "error" }),
            ]
        );
        assert_eq!(
            end("deleted", json!({}))[1..],
            [
                json!({ "type": "error", "errorText": "the session was deleted" }),
                json!({ "type": "finish", "finishReason": "error" }),
            ]
        );
    }
}
