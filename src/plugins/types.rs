//! The plugin calls' inputs and outputs as the rest of the runtime sees them: plain
//! serde types with JSON values, converted to and from the WIT bindings here only.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::bindings::agent::switchyard::plugin::agent_types as wit_agent;
use super::bindings::agent::switchyard::plugin::turn_events as wit_turn;
use super::bindings::base::switchyard::plugin::types as wit_types;
use super::bindings::connector::exports::switchyard::plugin::connector_api as wit_connector;
use super::bindings::trigger::exports::switchyard::plugin::trigger_api as wit_trigger;

/// What a plugin says about itself (`describe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub summary: String,
}

impl From<wit_types::PluginInfo> for PluginInfo {
    fn from(i: wit_types::PluginInfo) -> Self {
        Self {
            name: i.name,
            version: i.version,
            summary: i.summary,
        }
    }
}

// ---- agent adapters ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// One turn for an agent adapter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnRequest {
    pub session: String,
    #[serde(default)]
    pub history: Vec<Message>,
    pub input: String,
    /// The session's adapter configuration (an object).
    #[serde(default = "empty_object")]
    pub config: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// By value: a turn's history (up to `history_limit` messages) moves into the call
/// instead of being copied once more on its way to the guest.
impl From<TurnRequest> for wit_agent::TurnRequest {
    fn from(r: TurnRequest) -> Self {
        Self {
            session: r.session,
            history: r
                .history
                .into_iter()
                .map(|m| wit_agent::Message {
                    role: match m.role {
                        Role::System => wit_agent::Role::System,
                        Role::User => wit_agent::Role::User,
                        Role::Assistant => wit_agent::Role::Assistant,
                        Role::Tool => wit_agent::Role::Tool,
                    },
                    content: m.content,
                })
                .collect(),
            input: r.input,
            config: r.config.to_string(),
        }
    }
}

/// Something that happened during a turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum TurnEvent {
    TextDelta {
        text: String,
    },
    ReasoningDelta {
        text: String,
    },
    ToolStart {
        id: String,
        name: String,
        input: Value,
    },
    ToolEnd {
        id: String,
        output: Value,
        is_error: bool,
    },
    MessageComplete {
        text: String,
    },
    Error {
        message: String,
    },
}

impl TurnEvent {
    /// Approximate size, for the per-turn streaming cap.
    pub fn size(&self) -> usize {
        match self {
            Self::TextDelta { text }
            | Self::ReasoningDelta { text }
            | Self::MessageComplete { text } => text.len(),
            Self::Error { message } => message.len(),
            Self::ToolStart { id, name, input } => id.len() + name.len() + input.to_string().len(),
            Self::ToolEnd { id, output, .. } => id.len() + output.to_string().len(),
        }
    }
}

/// Tool inputs and outputs are JSON text in WIT; keep text that is not JSON as a string.
fn json_or_string(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

impl From<wit_turn::TurnEvent> for TurnEvent {
    fn from(e: wit_turn::TurnEvent) -> Self {
        use wit_turn::TurnEvent as W;
        match e {
            W::TextDelta(text) => Self::TextDelta { text },
            W::ReasoningDelta(text) => Self::ReasoningDelta { text },
            W::ToolStart(c) => Self::ToolStart {
                id: c.id,
                name: c.name,
                input: json_or_string(c.input),
            },
            W::ToolEnd(r) => Self::ToolEnd {
                id: r.id,
                output: json_or_string(r.output),
                is_error: r.is_error,
            },
            W::MessageComplete(text) => Self::MessageComplete { text },
            W::Error(message) => Self::Error { message },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    Complete,
    Aborted,
    MaxTokens,
    Error,
}

/// The final message of a turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnResult {
    pub text: String,
    pub stop_reason: StopReason,
}

impl From<wit_agent::TurnResult> for TurnResult {
    fn from(r: wit_agent::TurnResult) -> Self {
        Self {
            text: r.text,
            stop_reason: match r.stop_reason {
                wit_agent::StopReason::Complete => StopReason::Complete,
                wit_agent::StopReason::Aborted => StopReason::Aborted,
                wit_agent::StopReason::MaxTokens => StopReason::MaxTokens,
                wit_agent::StopReason::Error => StopReason::Error,
            },
        }
    }
}

// ---- connectors ----

/// An inbound webhook as handed to a connector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    #[serde(default = "post")]
    pub method: String,
    #[serde(default = "root")]
    pub path: String,
    #[serde(default)]
    pub query: String,
    /// Header names are lower-cased before the plugin sees them.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body as text (webhooks are JSON or form data).
    #[serde(default)]
    pub body: String,
}

fn post() -> String {
    "POST".into()
}
fn root() -> String {
    "/".into()
}

impl From<&WebhookRequest> for wit_connector::WebhookRequest {
    fn from(r: &WebhookRequest) -> Self {
        Self {
            method: r.method.clone(),
            path: r.path.clone(),
            query: r.query.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            body: r.body.as_bytes().to_vec(),
        }
    }
}

/// An item a connector produced from a webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum InboundItem {
    Message {
        session: String,
        text: String,
    },
    Event {
        topic: String,
        event_type: String,
        subject: Option<String>,
        data: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookOutcome {
    pub status: u16,
    pub body: String,
    pub items: Vec<InboundItem>,
}

/// A reply for a connector to deliver.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundMessage {
    pub session: String,
    pub text: String,
    #[serde(default = "empty_object")]
    pub target: Value,
}

impl From<&OutboundMessage> for wit_connector::OutboundMessage {
    fn from(m: &OutboundMessage) -> Self {
        Self {
            session: m.session.clone(),
            text: m.text.clone(),
            target: m.target.to_string(),
        }
    }
}

// ---- triggers ----

/// A trigger's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub fire: bool,
    pub inputs: Value,
    pub reason: String,
}

/// The event a trigger evaluates. `seq` is not part of the WIT record.
pub fn wit_event(e: &crate::event::Event) -> wit_types::Event {
    wit_types::Event {
        id: e.id.clone(),
        topic: e.topic.clone(),
        event_type: e.event_type.clone(),
        source: e.source.clone(),
        subject: e.subject.clone(),
        time: e.time.clone(),
        correlation_id: e.correlation_id.clone(),
        data: e.data.text().to_owned(),
    }
}

pub(super) use wit_connector::{
    InboundItem as WitInboundItem, WebhookOutcome as WitWebhookOutcome,
};
pub(super) use wit_trigger::Decision as WitDecision;
