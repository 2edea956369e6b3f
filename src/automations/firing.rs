//! A firing: the overlap policy decides (start, queue, skip), then the run starts with
//! its firing recorded in the same transaction, or the decision alone is recorded.
//! A run's end, heard on the bus, starts the firing that waited for it.

use super::{Automations, Firing, slot_text};
use crate::event::NewEvent;
use crate::recipes::Overlap;
use crate::runs::{RunError, Trigger, TriggerFiring};
use crate::store::{FiringDecision, FiringRecord};

/// The bus event announcing a firing (topic `automation.<recipe>.<decision>`).
pub fn firing_event(firing: &FiringRecord, correlation_id: &str) -> NewEvent {
    let recipe = firing.automation.split(':').next().unwrap_or_default();
    NewEvent {
        topic: format!("automation.{recipe}.{}", firing.decision),
        event_type: format!("switchyard.automation.{}", firing.decision),
        source: "switchyard".into(),
        subject: Some(firing.automation.clone()),
        correlation_id: Some(correlation_id.to_owned()),
        data: crate::event::EventData::of(firing),
    }
}

impl Automations {
    /// Apply the overlap policy and start (or record why not); returns the firing as
    /// decided.
    pub(super) async fn fire(&self, firing: Firing) -> FiringRecord {
        let running = self.running_of(&firing.automation);
        if running.is_empty() || firing.overlap == Overlap::Allow {
            return self.start(firing).await;
        }
        let others = running.join(", ");
        match firing.overlap {
            Overlap::Allow => unreachable!("handled above"),
            Overlap::Skip => {
                let record = self.decided(
                    &firing,
                    FiringDecision::Skipped,
                    format!("run {others} is still running (overlap: skip)"),
                );
                self.record(record).await
            }
            Overlap::Queue => {
                let waits = self.decided(
                    &firing,
                    FiringDecision::Queued,
                    "waits for the running run to end (overlap: queue)".into(),
                );
                let refused = {
                    let mut state = self.state();
                    if state.waiting.contains_key(&firing.automation) {
                        Some(firing)
                    } else {
                        tracing::info!(automation = %firing.automation, slot = %firing.slot, "automations: firing waits for the running run");
                        state.waiting.insert(firing.automation.clone(), firing);
                        None
                    }
                };
                match refused {
                    Some(firing) => {
                        let record = self.decided(&firing, FiringDecision::Skipped, format!("run {others} is still running and a firing already waits (overlap: queue)"));
                        self.record(record).await
                    }
                    // Recorded when it starts.
                    None => waits,
                }
            }
            Overlap::CancelPrevious => {
                for id in &running {
                    if let Err(e) = self.inner.runs.cancel(id).await {
                        tracing::warn!(run = %id, error = %e, "automations: cannot cancel the previous run");
                    }
                }
                let detail = format!("canceled run {others} (overlap: cancel_previous)");
                self.start(Firing {
                    detail: Some(detail),
                    ..firing
                })
                .await
            }
        }
    }

    pub(super) async fn start(&self, firing: Firing) -> FiringRecord {
        let mut record = self.decided(
            &firing,
            FiringDecision::Started,
            firing.detail.clone().unwrap_or_default(),
        );
        let trigger = Trigger {
            detail: firing.trigger.clone(),
            correlation_id: firing.correlation_id.clone(),
            firing: Some(TriggerFiring {
                record: record.clone(),
                announce: firing_event,
            }),
        };
        let automation = firing.automation.clone();
        match self
            .inner
            .runs
            .start(firing.recipe.clone(), firing.inputs.clone(), trigger)
            .await
        {
            Ok(crate::runs::RunView { run, .. }) => {
                self.state()
                    .running
                    .entry(automation)
                    .or_default()
                    .push(run.id.clone());
                // A run that ended before it was added here is forgotten at once.
                if !self.inner.runs.is_live(&run.id) {
                    self.run_ended(&run.id);
                }
                tracing::info!(automation = %record.automation, slot = %record.slot, run = %run.id, "automation fired: run started");
                record.run_id = Some(run.id);
                record
            }
            Err(RunError::SlotTaken { .. }) => {
                tracing::debug!(automation = %automation, slot = %firing.slot, "automations: slot fired already");
                // Not recorded again: the slot's first firing stands.
                self.decided(
                    &firing,
                    FiringDecision::Skipped,
                    "the slot has fired already".into(),
                )
            }
            Err(e) => {
                tracing::warn!(automation = %automation, error = %e, "automations: cannot start a run");
                let record = self.decided(&firing, FiringDecision::Error, e.to_string());
                self.record(record).await
            }
        }
    }

    pub(super) fn decided(
        &self,
        firing: &Firing,
        decision: FiringDecision,
        detail: String,
    ) -> FiringRecord {
        FiringRecord {
            automation: firing.automation.clone(),
            slot: firing.slot.clone(),
            scheduled_at: firing.scheduled_at.map(slot_text),
            fired_at: crate::time::now_rfc3339(),
            decision,
            run_id: None,
            detail: (!detail.is_empty()).then_some(detail),
            run_status: None,
        }
    }

    /// Record a firing that starts no run; returns it.
    pub(super) async fn record(&self, firing: FiringRecord) -> FiringRecord {
        let detail = firing.detail.as_deref().unwrap_or("");
        match firing.decision {
            FiringDecision::Error => {
                tracing::warn!(automation = %firing.automation, slot = %firing.slot, decision = %firing.decision, detail, "automation fired: no run")
            }
            _ => {
                tracing::info!(automation = %firing.automation, slot = %firing.slot, decision = %firing.decision, detail, "automation fired: no run")
            }
        }
        let event = firing_event(&firing, &firing.slot);
        if let Err(e) = self.inner.store.record_firing(firing.clone(), event).await {
            tracing::error!(error = %e, "automations: cannot record a firing");
        }
        firing
    }

    pub(super) fn running_of(&self, automation: &str) -> Vec<String> {
        let mut state = self.state();
        let runs = &self.inner.runs;
        let list = state.running.entry(automation.to_owned()).or_default();
        list.retain(|id| runs.is_live(id));
        list.clone()
    }

    /// A run ended: forget it, and start the firing that waited for it.
    pub(super) fn run_ended(&self, run_id: &str) {
        let waiting = {
            let mut state = self.state();
            let Some(automation) = state
                .running
                .iter()
                .find(|(_, runs)| runs.iter().any(|r| r == run_id))
                .map(|(a, _)| a.clone())
            else {
                return;
            };
            let runs = state.running.get_mut(&automation).expect("found above");
            runs.retain(|r| r != run_id);
            let waiting = if runs.is_empty() {
                state.waiting.remove(&automation)
            } else {
                None
            };
            // A firing that waited while its automation was paused does not start.
            waiting.filter(|_| !state.paused.contains(&automation))
        };
        if let Some(firing) = waiting {
            let this = self.clone();
            let firings = this.inner.firings.clone();
            firings.spawn(async move { this.start(firing).await });
        }
    }
}
