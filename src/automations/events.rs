//! Event automations: every event in the log is read once, in order, matched against
//! the automations' topic patterns (and a trigger plugin, when one is named) and
//! fired concurrently; how far they got is saved, so a crash makes them read again
//! from there and find the events fired already (an event's slot is its id).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Automations, Firing, Known};
use crate::bus::{Subscription, TopicPattern};
use crate::event::Event;
use crate::recipes::Overlap;
use crate::recipes::template::{Reference, Scope, Template};
use crate::store::{FiringDecision, StoreError};

/// The next event of `events`; none ever without a subscription.
pub(super) async fn next_event(
    events: &mut Option<Subscription>,
) -> Result<Arc<Event>, StoreError> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

/// The log cursor of the event automations.
pub(super) const LOG_CURSOR: &str = "automations";
/// How often the event automations save how far they got in the log: what a crash
/// makes them read again (and find fired already).
pub(super) const SAVE_PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// How far the event automations got in the log. Events are read in `seq` order but
/// fired concurrently, so the position that can be saved is just below the oldest
/// event still firing.
#[derive(Default)]
pub(super) struct LogProgress {
    /// How far the log has been read: the last event handed to the automations, or
    /// past it, over events no automation matches.
    pub(super) read: u64,
    /// Events whose firings have not all ended, by seq: how many have not.
    pub(super) firing: std::collections::BTreeMap<u64, usize>,
    /// The position saved last.
    pub(super) saved: u64,
}

impl LogProgress {
    /// Every event up to this one is handled.
    pub(super) fn handled(&self) -> u64 {
        self.firing
            .keys()
            .next()
            .map_or(self.read, |oldest| oldest - 1)
    }
}

/// One firing of event `seq` going on; counted off its event when dropped, however
/// it ended.
pub(super) struct EventFiring {
    automations: Automations,
    seq: u64,
}

impl Drop for EventFiring {
    fn drop(&mut self) {
        let mut state = self.automations.state();
        if let Some(left) = state.log.firing.get_mut(&self.seq) {
            *left -= 1;
            if *left == 0 {
                state.log.firing.remove(&self.seq);
            }
        }
    }
}

impl Automations {
    /// Note how far the log has been read, the events of other topics included: the
    /// subscription's position, or with none (no event automation) the log's end.
    /// Otherwise the saved position would stay at the last matching event, and a
    /// restart, or a new pattern, would go back over everything since.
    pub(super) fn passed(&self, events: Option<&Subscription>) {
        let passed = events.map_or_else(|| self.inner.bus.head(), Subscription::position);
        let mut state = self.state();
        state.log.read = state.log.read.max(passed);
    }

    /// Read the events that the event automations in force may match, and no others:
    /// a subscription to a pattern covering theirs, none when there are none (with
    /// `>`, every event published woke this loop). A new subscription reads the log
    /// from where the last one got to (its position: nothing it holds back is lost),
    /// else `from`: where the last process got to, or the log's end before the
    /// automations now in force registered (an automation fires for no older event).
    ///
    /// A subscription, not the bare live feed: when a burst outruns this loop it reads
    /// the missed events back from the log instead of dropping them.
    pub(super) fn follow_events(&self, events: &mut Option<Subscription>, from: u64) {
        let wanted = {
            let state = self.state();
            let patterns = state
                .known
                .values()
                .filter(|k| k.kind == "event")
                .map(|k| &k.recipe.events[k.index].topic);
            TopicPattern::covering(patterns)
        };
        if events.is_none() {
            // Nothing was read, and no event automation was there to match it.
            let mut state = self.state();
            state.log.read = state.log.read.max(from);
        }
        if wanted.as_ref() == events.as_ref().map(Subscription::pattern) {
            return;
        }
        let from = match events.take() {
            Some(old) => old.position().max(self.state().log.read),
            None => from,
        };
        *events = wanted.map(|pattern| self.inner.bus.subscribe_from(pattern, Some(from)));
    }

    /// Save how far the event automations got in the log, if further than last time.
    pub(super) async fn save_progress(&self) {
        let handled = {
            let state = self.state();
            let handled = state.log.handled();
            if handled <= state.log.saved {
                return;
            }
            handled
        };
        match self.inner.store.save_log_cursor(LOG_CURSOR, handled).await {
            Ok(()) => self.state().log.saved = handled,
            Err(e) => {
                tracing::warn!(error = %e, "automations: cannot save how far they got in the bus log")
            }
        }
    }

    /// A bus event: fire the event automations whose pattern it matches.
    pub(super) fn on_event(&self, event: Arc<Event>) {
        let matching: Vec<(String, Known)> = {
            let mut state = self.state();
            let matching: Vec<_> = state
                .known
                .iter()
                .filter(|(id, k)| k.kind == "event" && !state.paused.contains(*id))
                .filter(|(_, k)| k.recipe.events[k.index].topic.matches(&event.topic))
                // A recipe's own run events never start it again (no loops).
                .filter(|(_, k)| {
                    !(event.topic.starts_with("run.")
                        && event.subject.as_deref() == Some(&k.recipe.name))
                })
                .filter(|(id, _)| {
                    state
                        .registered
                        .get(*id)
                        .is_none_or(|since| event.time >= *since)
                })
                .map(|(id, k)| (id.clone(), k.clone()))
                .collect();
            state.log.read = state.log.read.max(event.seq);
            if !matching.is_empty() {
                state.log.firing.insert(event.seq, matching.len());
            }
            matching
        };
        for (id, known) in matching {
            let going = EventFiring {
                automations: self.clone(),
                seq: event.seq,
            };
            let event = event.clone();
            // `going` is dropped when the firing ends, however it ends.
            let firings = going.automations.inner.firings.clone();
            firings.spawn(async move { going.automations.fire_event(id, known, event).await });
        }
    }

    pub(super) async fn fire_event(&self, id: String, known: Known, event: Arc<Event>) {
        let spec = &known.recipe.events[known.index];
        let event_json = json!(*event);
        let scope = EventScope(&event_json);
        let mut inputs: Map<String, Value> = spec
            .inputs
            .iter()
            .map(|(name, v)| (name.clone(), render(v, &scope)))
            .collect();
        if let Some(trigger) = &spec.trigger {
            match self
                .inner
                .plugins
                .evaluate(&trigger.plugin, &event, &trigger.params)
                .await
            {
                Ok(decision) if !decision.fire => {
                    tracing::debug!(automation = %id, reason = %decision.reason, "automations: the trigger did not fire");
                    return;
                }
                Ok(decision) => {
                    // The trigger's inputs fill the recipe's inputs of the same name;
                    // what else it computed is not the recipe's business.
                    if let Value::Object(computed) = decision.inputs {
                        inputs.extend(
                            computed
                                .into_iter()
                                .filter(|(name, _)| known.recipe.inputs.contains_key(name)),
                        );
                    }
                }
                Err(e) => {
                    let firing = Firing {
                        automation: id.clone(),
                        recipe: known.recipe.clone(),
                        slot: event.id.clone(),
                        scheduled_at: None,
                        inputs: Map::new(),
                        trigger: Value::Null,
                        correlation_id: None,
                        overlap: Overlap::Allow,
                        detail: None,
                    };
                    let record = self.decided(
                        &firing,
                        FiringDecision::Error,
                        format!("trigger `{}`: {e}", trigger.plugin),
                    );
                    self.record(record).await;
                    return;
                }
            }
        }
        let firing = Firing {
            automation: id.clone(),
            recipe: known.recipe,
            slot: event.id.clone(),
            scheduled_at: None,
            inputs,
            trigger: json!({ "kind": "event", "automation": id, "event": event_json }),
            correlation_id: Some(
                event
                    .correlation_id
                    .clone()
                    .unwrap_or_else(|| event.id.clone()),
            ),
            overlap: Overlap::Allow,
            detail: None,
        };
        self.fire(firing).await;
    }
}

/// Templates of an event automation's inputs see the event.
struct EventScope<'a>(&'a Value);

impl Scope for EventScope<'_> {
    fn lookup(&self, reference: &Reference) -> Option<Value> {
        match reference {
            Reference::Event(path) => path.iter().try_fold(self.0, |v, key| v.get(key)).cloned(),
            _ => None,
        }
    }
}

/// An input value of an automation: text is a template over the event.
fn render(value: &Value, scope: &dyn Scope) -> Value {
    match value {
        Value::String(text) => match Template::parse(text) {
            Ok(t) => t.render_value(scope),
            Err(_) => value.clone(),
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::LogProgress;

    #[test]
    fn the_saved_position_stays_below_the_oldest_event_still_firing() {
        let mut log = LogProgress {
            read: 10,
            ..LogProgress::default()
        };
        assert_eq!(log.handled(), 10, "nothing firing: all read is handled");
        log.firing.insert(12, 2);
        log.firing.insert(15, 1);
        log.read = 17;
        assert_eq!(log.handled(), 11);
        log.firing.remove(&12);
        assert_eq!(log.handled(), 14);
        log.firing.remove(&15);
        assert_eq!(log.handled(), 17);
    }
}
