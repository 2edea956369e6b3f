//! Events: the facts every part records, as the store keeps them and the bus hands
//! them out. The ground floor of the house: this module imports no other part, so the
//! store, the bus and every service can speak of events without speaking of each
//! other.

mod data;

pub use data::EventData;

/// An event as stored and delivered (CloudEvents-style attributes plus `seq`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub seq: u64,
    pub id: String,
    pub topic: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: String,
    pub subject: Option<String>,
    pub time: String,
    pub correlation_id: Option<String>,
    pub data: EventData,
}

/// An event to publish; the store assigns `seq`, `id` and `time` as it commits it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub topic: String,
    pub event_type: String,
    pub source: String,
    pub subject: Option<String>,
    pub correlation_id: Option<String>,
    pub data: EventData,
}

impl NewEvent {
    /// An event from the runtime itself (`source` = `switchyard`).
    pub fn runtime(
        topic: impl Into<String>,
        event_type: impl Into<String>,
        data: impl Into<EventData>,
    ) -> Self {
        Self {
            topic: topic.into(),
            event_type: event_type.into(),
            source: "switchyard".into(),
            subject: None,
            correlation_id: None,
            data: data.into(),
        }
    }
}
