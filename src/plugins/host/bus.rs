//! `bus`: publishing events, if the manifest grants `bus_publish`.

use std::sync::Arc;

use crate::bus::Bus;
use crate::event::NewEvent;
use crate::plugins::bindings::base::switchyard::plugin::bus::{Host, OutgoingEvent};

/// Events one call may publish.
const MAX_PUBLISHES_PER_CALL: usize = 1000;

pub struct BusCap {
    plugin: Arc<str>,
    allowed: bool,
    bus: Option<Bus>,
    published: usize,
    pub(super) denied: Vec<String>,
}

impl BusCap {
    /// `bus` is `None` when there is no runtime around the call (offline checks).
    pub fn new(plugin: Arc<str>, allowed: bool, bus: Option<Bus>) -> Self {
        Self {
            plugin,
            allowed,
            bus,
            published: 0,
            denied: Vec::new(),
        }
    }
}

impl Host for BusCap {
    async fn publish(&mut self, event: OutgoingEvent) -> wasmtime::Result<Result<u64, String>> {
        if !self.allowed {
            let msg = format!(
                "bus.publish to `{}` denied: plugin.toml does not grant permissions.bus_publish",
                event.topic
            );
            self.denied.push(msg.clone());
            return Ok(Err(msg));
        }
        let Some(bus) = &self.bus else {
            return Ok(Err("no bus is running (offline call)".into()));
        };
        self.published += 1;
        if self.published > MAX_PUBLISHES_PER_CALL {
            return Ok(Err(format!(
                "more than {MAX_PUBLISHES_PER_CALL} events published in one call"
            )));
        }
        let data = match serde_json::from_str(&event.data) {
            Ok(v) => v,
            Err(e) => return Ok(Err(format!("event data is not JSON: {e}"))),
        };
        let published = bus
            .publish(NewEvent {
                topic: event.topic,
                event_type: event.event_type,
                source: format!("plugin:{}", self.plugin),
                subject: event.subject,
                correlation_id: None,
                data,
            })
            .await;
        Ok(published.map(|e| e.seq).map_err(|e| e.to_string()))
    }
}
