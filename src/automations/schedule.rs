//! Schedules: the slots due now fire, and the slots missed while Switchyard was down
//! are caught up at start by the schedule's `catch_up`.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Automations, Firing, Known, slot_text};
use crate::recipes::CatchUp;
use crate::store::{FiringDecision, FiringRecord};

impl Automations {
    /// Slots missed while down, by the schedule's `catch_up`.
    pub(super) async fn catch_up(&self, id: String, known: Known, slots: Vec<DateTime<Utc>>) {
        let schedule = &known.recipe.schedules[known.index];
        let count = slots.len();
        let latest = *slots.last().expect("not empty");
        let chosen: Vec<DateTime<Utc>> = match schedule.catch_up {
            CatchUp::None => {
                // Recorded once, at the latest slot, so the next start does not count
                // them again.
                let firing = FiringRecord {
                    automation: id.clone(),
                    slot: slot_text(latest),
                    scheduled_at: Some(slot_text(latest)),
                    fired_at: crate::time::now_rfc3339(),
                    decision: FiringDecision::Missed,
                    run_id: None,
                    detail: Some(format!(
                        "{count} firing(s) missed while switchyard was down; catch_up is none"
                    )),
                    run_status: None,
                };
                self.record(firing).await;
                Vec::new()
            }
            CatchUp::Latest => vec![latest],
            CatchUp::All => slots,
        };
        tracing::info!(automation = %id, missed = count, replaying = chosen.len(), "automations: catching up");
        for slot in chosen {
            let firing =
                self.scheduled_firing(&id, &known, slot, Some("caught up after a stop".into()));
            self.fire(firing).await;
        }
    }

    pub(super) fn scheduled_firing(
        &self,
        id: &str,
        known: &Known,
        slot: DateTime<Utc>,
        detail: Option<String>,
    ) -> Firing {
        let schedule = &known.recipe.schedules[known.index];
        Firing {
            automation: id.to_owned(),
            recipe: known.recipe.clone(),
            slot: slot_text(slot),
            scheduled_at: Some(slot),
            inputs: schedule.inputs.clone().into_iter().collect(),
            trigger: json!({ "kind": "schedule", "automation": id, "scheduled_at": slot_text(slot) }),
            correlation_id: None,
            overlap: schedule.overlap,
            detail,
        }
    }

    /// Fire every schedule slot due at `now` (each in its own task: a slow store write
    /// for one does not delay the others).
    pub(super) fn fire_due(&self, now: DateTime<Utc>) {
        let due = {
            let mut state = self.state();
            let due = state.timetable.due(now);
            due.into_iter()
                .filter(|(id, _)| !state.paused.contains(id))
                .filter_map(|(id, slot)| Some((state.known.get(&id)?.clone(), id, slot)))
                .collect::<Vec<_>>()
        };
        for (known, id, slot) in due {
            let firing = self.scheduled_firing(&id, &known, slot, None);
            let this = self.clone();
            let firings = this.inner.firings.clone();
            firings.spawn(async move { this.fire(firing).await });
        }
    }
}
