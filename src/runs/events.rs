//! The events a run publishes: topic `run.<id>.<what>` (`run.<id>.step.<step>.<what>`
//! for a step), type `switchyard.run.<what>`, subject = the recipe's name, and the run's
//! correlation id on every one.

use serde_json::Value;

use crate::bus::NewEvent;
use crate::store::RunRecord;

/// A run's event about itself (`started`, `succeeded`, `failed`, `canceled`, `resumed`).
pub fn run_event(run: &RunRecord, what: &str, data: Value) -> NewEvent {
    event(run, format!("run.{}.{what}", run.id), what, data)
}

/// A run's event about one step (`started`, `succeeded`, `failed`, `retrying`,
/// `skipped`, `canceled`).
pub fn step_event(run: &RunRecord, step: &str, what: &str, data: Value) -> NewEvent {
    event(
        run,
        format!("run.{}.step.{step}.{what}", run.id),
        &format!("step.{what}"),
        data,
    )
}

fn event(run: &RunRecord, topic: String, what: &str, data: Value) -> NewEvent {
    NewEvent {
        topic,
        event_type: format!("switchyard.run.{what}"),
        source: "switchyard".into(),
        subject: Some(run.recipe.clone()),
        correlation_id: Some(run.correlation_id.clone()),
        data: data.into(),
    }
}
