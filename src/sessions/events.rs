//! The events a session publishes: topic `session.<id>.<kind>`, type
//! `switchyard.session.<kind>`, subject = the session key.

use serde_json::{Value, json};

use crate::bus::NewEvent;
use crate::plugins::types::TurnEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    Created,
    MessageQueued,
    TurnStarted,
    TextDelta,
    ReasoningDelta,
    ToolStart,
    ToolEnd,
    MessageComplete,
    TurnError,
    TurnFinished,
    TurnInterrupted,
    Steered,
    Reset,
    Deleted,
}

impl SessionEvent {
    /// The last topic token(s) and the type suffix.
    pub fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::MessageQueued => "message.queued",
            Self::TurnStarted => "turn.started",
            Self::TextDelta => "turn.text_delta",
            Self::ReasoningDelta => "turn.reasoning_delta",
            Self::ToolStart => "turn.tool_start",
            Self::ToolEnd => "turn.tool_end",
            Self::MessageComplete => "turn.message_complete",
            Self::TurnError => "turn.error",
            Self::TurnFinished => "turn.finished",
            Self::TurnInterrupted => "turn.interrupted",
            Self::Steered => "steered",
            Self::Reset => "reset",
            Self::Deleted => "deleted",
        }
    }

    pub fn event(self, session_id: &str, key: Option<&str>, data: Value) -> NewEvent {
        NewEvent {
            topic: format!("session.{session_id}.{}", self.name()),
            event_type: format!("switchyard.session.{}", self.name()),
            source: "switchyard".into(),
            subject: key.map(str::to_owned),
            correlation_id: None,
            data: data.into(),
        }
    }

    /// The bus event for something an adapter streamed.
    pub fn from_turn(event: &TurnEvent) -> (Self, Value) {
        match event {
            TurnEvent::TextDelta { text } => (Self::TextDelta, json!({ "text": text })),
            TurnEvent::ReasoningDelta { text } => (Self::ReasoningDelta, json!({ "text": text })),
            TurnEvent::ToolStart { id, name, input } => (
                Self::ToolStart,
                json!({ "id": id, "name": name, "input": input }),
            ),
            TurnEvent::ToolEnd {
                id,
                output,
                is_error,
            } => (
                Self::ToolEnd,
                json!({ "id": id, "output": output, "is_error": is_error }),
            ),
            TurnEvent::MessageComplete { text } => (Self::MessageComplete, json!({ "text": text })),
            TurnEvent::Error { message } => (Self::TurnError, json!({ "message": message })),
        }
    }
}
