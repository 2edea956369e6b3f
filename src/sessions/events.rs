//! The events a session publishes: topic `session.<id>.<kind>`, type
//! `switchyard.session.<kind>`, subject = the session key.

use std::borrow::Cow;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::event::{EventData, NewEvent};
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
/// event's where it can, and a text field that holds something else reads as absent.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct TurnData<'a> {
    #[serde(
        deserialize_with = "lenient_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_id: Option<Cow<'a, str>>,
    #[serde(
        deserialize_with = "lenient_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub text: Option<Cow<'a, str>>,
    /// A tool call's id.
    #[serde(
        deserialize_with = "lenient_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<Cow<'a, str>>,
    /// A tool's name.
    #[serde(
        deserialize_with = "lenient_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// An adapter's error.
    #[serde(
        deserialize_with = "lenient_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub message: Option<Cow<'a, str>>,
}

/// A tool's JSON as text: written once here, passed through as it is when read.
fn raw(value: &Value) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(value).ok()
}

/// A text field read leniently: borrowed from the input when it has no escapes,
/// `None` when it is null or not a string (serde borrows only a bare `Cow<str>`, not
/// one inside an `Option`).
pub fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(Text)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::{SessionEvent, TurnData};
    use crate::plugins::types::TurnEvent;

    #[test]
    fn turn_data_reads_back_what_it_wrote_borrowing_its_text() {
        let event = TurnEvent::ToolStart {
            id: "c1".into(),
            name: "ls".into(),
            input: serde_json::json!({ "dir": "/" }),
        };
        let (kind, data) = SessionEvent::from_turn(&event, "m1");
        assert_eq!(kind, SessionEvent::ToolStart);
        let read: TurnData = serde_json::from_str(data.text()).unwrap();
        assert!(matches!(read.message_id, Some(Cow::Borrowed("m1"))));
        assert!(matches!(read.name, Some(Cow::Borrowed("ls"))));
        assert_eq!(read.input.unwrap().get(), r#"{"dir":"/"}"#);
        assert_eq!(read.text, None);

        let read: TurnData =
            serde_json::from_str(r#"{"text": "a \"b\"", "name": 5, "id": {"x": [1]}}"#).unwrap();
        assert!(matches!(read.text, Some(Cow::Owned(ref t)) if t == "a \"b\""));
        assert_eq!((read.name, read.id), (None, None), "not text: absent");
    }
}
