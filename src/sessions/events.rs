//! The events a session publishes: topic `session.<id>.<kind>`, type
//! `switchyard.session.<kind>`, subject = the session key.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::bus::{EventData, NewEvent};
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

    pub fn event(
        self,
        session_id: &str,
        key: Option<&str>,
        data: impl Into<EventData>,
    ) -> NewEvent {
        NewEvent {
            topic: format!("session.{session_id}.{}", self.name()),
            event_type: format!("switchyard.session.{}", self.name()),
            source: "switchyard".into(),
            subject: key.map(str::to_owned),
            correlation_id: None,
            data: data.into(),
        }
    }

    /// The bus event for something an adapter streamed during the turn of
    /// `message_id`; its data written straight to text.
    pub fn from_turn(event: &TurnEvent, message_id: &str) -> (Self, EventData) {
        let data = TurnData {
            message_id: Some(message_id.into()),
            ..TurnData::default()
        };
        let (kind, data) = match event {
            TurnEvent::TextDelta { text } => (
                Self::TextDelta,
                TurnData {
                    text: Some(text.into()),
                    ..data
                },
            ),
            TurnEvent::ReasoningDelta { text } => (
                Self::ReasoningDelta,
                TurnData {
                    text: Some(text.into()),
                    ..data
                },
            ),
            TurnEvent::ToolStart { id, name, input } => (
                Self::ToolStart,
                TurnData {
                    id: Some(id.into()),
                    name: Some(name.into()),
                    input: raw(input),
                    ..data
                },
            ),
            TurnEvent::ToolEnd {
                id,
                output,
                is_error,
            } => (
                Self::ToolEnd,
                TurnData {
                    id: Some(id.into()),
                    output: raw(output),
                    is_error: Some(*is_error),
                    ..data
                },
            ),
            TurnEvent::MessageComplete { text } => (
                Self::MessageComplete,
                TurnData {
                    text: Some(text.into()),
                    ..data
                },
            ),
            TurnEvent::Error { message } => (
                Self::TurnError,
                TurnData {
                    message: Some(message.into()),
                    ..data
                },
            ),
        };
        (kind, EventData::of(&data))
    }
}

/// The data of a turn's stream events, as written and as read back (by the chat
/// stream): the fields an event has, and no others. Read, its text borrows from the
/// event's where it can.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TurnData<'a> {
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Cow<'a, str>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub text: Option<Cow<'a, str>>,
    /// A tool call's id.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub id: Option<Cow<'a, str>>,
    /// A tool's name.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// An adapter's error.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub message: Option<Cow<'a, str>>,
}

/// A tool's JSON as text: written once here, passed through as it is when read.
fn raw(value: &Value) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(value).ok()
}
