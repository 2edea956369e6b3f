//! The events a run publishes: topic `run.<id>.<what>` (`run.<id>.step.<step>.<what>`
//! for a step), type `switchyard.run.<what>`, subject = the recipe's name, and the run's
//! correlation id on every one.

use serde_json::Value;

use crate::bus::TopicPattern;
use crate::event::{Event, NewEvent};
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

/// Every run's events about itself (`run.<id>.<what>`), not its steps'.
pub fn lifecycle_pattern() -> TopicPattern {
    TopicPattern::parse("run.*.*").expect("a valid pattern")
}

/// The id of the run whose end `event` announces (`succeeded`, `failed`, `canceled`).
pub fn ended_run(event: &Event) -> Option<&str> {
    let rest = event.topic.strip_prefix("run.")?;
    let (id, what) = rest.split_once('.')?;
    matches!(what, "succeeded" | "failed" | "canceled").then_some(id)
}
