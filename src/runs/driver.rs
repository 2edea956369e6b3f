//! Drives one run: starts the steps whose `needs` are met, each in its own task, and
//! writes every transition (with its event) as it happens.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Inner;
use super::events::{run_event, step_event};
use crate::recipes::template::{Reference, Scope};
use crate::recipes::{Recipe, Step};
use crate::sessions::{NewSession, SessionError};
use crate::store::{MessageStatus, RunRecord, RunStatus, StepRecord, StepStatus};

/// What templates of a run see: its inputs, the outputs of finished steps and, for a
/// run an event started, that event.
struct RunScope<'a> {
    inputs: &'a Value,
    outputs: &'a HashMap<String, String>,
    trigger: &'a Value,
}

impl Scope for RunScope<'_> {
    fn lookup(&self, reference: &Reference) -> Option<Value> {
        match reference {
            Reference::Input(name) => self.inputs.get(name).cloned(),
            Reference::StepOutput(id) => self.outputs.get(id).cloned().map(Value::String),
            Reference::Event(path) => path
                .iter()
                .try_fold(self.trigger.get("event")?, |v, key| v.get(key))
                .cloned(),
        }
    }
}

/// Drive `run` to its end. `steps` is the persisted state (all `pending` for a new run;
/// anything for a resumed one).
pub(super) async fn drive(
    inner: Arc<Inner>,
    recipe: Arc<Recipe>,
    mut run: RunRecord,
    mut steps: Vec<StepRecord>,
    cancel: CancellationToken,
) {
    // Canceled when the run fails or is canceled: stops the steps in flight.
    let stop_steps = CancellationToken::new();
    let mut outputs: HashMap<String, String> = steps
        .iter()
        .filter_map(|s| Some((s.step_id.clone(), s.output.clone()?)))
        .collect();
    let mut in_flight: JoinSet<(usize, StepRecord)> = JoinSet::new();
    let mut started = vec![false; steps.len()];
    let mut failure: Option<String> = None;
    let mut canceled = false;

    loop {
        if failure.is_none() && !canceled {
            for (i, step) in recipe.steps.iter().enumerate() {
                let state = &steps[i];
                if started[i] || state.status.is_final() {
                    continue;
                }
                // A resumed step goes on where it was; a pending one waits for its needs.
                let resumed = state.status != StepStatus::Pending;
                let ready = resumed
                    || step.needs.iter().all(|need| {
                        steps
                            .iter()
                            .any(|s| &s.step_id == need && s.status.lets_dependents_start())
                    });
                if !ready {
                    continue;
                }
                started[i] = true;
                let ctx = StepTask {
                    inner: inner.clone(),
                    run: run.clone(),
                    step: step.clone(),
                    prompt_scope: (run.inputs.clone(), outputs.clone(), run.trigger.clone()),
                    stop: stop_steps.clone(),
                };
                let record = state.clone();
                in_flight.spawn(async move { (i, ctx.run(record).await) });
            }
        }
        if in_flight.is_empty() {
            break;
        }
        tokio::select! {
            joined = in_flight.join_next() => {
                let Some(joined) = joined else { continue };
                let (i, record) = match joined {
                    Ok(done) => done,
                    Err(e) => {
                        // A step task that panicked: the run cannot know its state.
                        failure.get_or_insert(format!("a step task failed: {e}"));
                        stop_steps.cancel();
                        continue;
                    }
                };
                if record.status == StepStatus::Succeeded {
                    outputs.insert(record.step_id.clone(), record.output.clone().unwrap_or_default());
                }
                if record.status == StepStatus::Failed && failure.is_none() {
                    failure = Some(format!(
                        "step `{}` failed: {}",
                        record.step_id,
                        record.error.as_deref().unwrap_or("no reason given")
                    ));
                    stop_steps.cancel();
                }
                steps[i] = record;
            }
            () = cancel.cancelled(), if !canceled => {
                canceled = true;
                stop_steps.cancel();
            }
        }
    }

    // Steps that never started: canceled by the failure or the cancel.
    let reason = if canceled {
        "the run was canceled".to_owned()
    } else {
        failure.clone().unwrap_or_default()
    };
    for step in steps.iter_mut().filter(|s| !s.status.is_final()) {
        step.status = StepStatus::Canceled;
        step.error = Some(reason.clone());
        step.finished_at = Some(crate::time::now_rfc3339());
        let event = step_event(&run, &step.step_id, "canceled", json!({ "reason": reason }));
        save_step(&inner, &run, step.clone(), event).await;
    }

    let scope = RunScope {
        inputs: &run.inputs,
        outputs: &outputs,
        trigger: &run.trigger,
    };
    let (status, error) = if canceled {
        (RunStatus::Canceled, Some(reason))
    } else if let Some(failure) = failure {
        (RunStatus::Failed, Some(failure))
    } else {
        let rendered: Map<String, Value> = recipe
            .outputs
            .iter()
            .map(|(name, t)| (name.clone(), Value::String(t.render(&scope))))
            .collect();
        run.outputs = Some(Value::Object(rendered));
        (RunStatus::Succeeded, None)
    };
    run.status = status;
    run.error = error;
    finish(&inner, run).await;
}

/// A run whose recipe text no longer reads (it cannot be resumed): failed.
pub(super) async fn finish_unresumable(inner: &Arc<Inner>, mut run: RunRecord, error: String) {
    run.status = RunStatus::Failed;
    run.error = Some(error);
    finish(inner, run).await;
}

/// Write the run's end with its event: who waits for it (a cancel, the automations)
/// learns it from the bus.
async fn finish(inner: &Arc<Inner>, mut run: RunRecord) {
    run.finished_at = Some(crate::time::now_rfc3339());
    // No longer live before its end is announced, so a listener that hears the end
    // never finds the run still live (and an end published by anyone else, while the
    // run is live, is not taken for it).
    if let Some(live) = inner
        .live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(&run.id)
    {
        live.ending = true;
    }
    let event = run_event(
        &run,
        run.status.as_str(),
        json!({ "outputs": run.outputs, "error": run.error }),
    );
    let error = run.error.as_deref().unwrap_or("");
    match run.status {
        RunStatus::Failed => {
            tracing::warn!(run = %run.id, recipe = %run.recipe, error, "run failed")
        }
        status => tracing::info!(run = %run.id, recipe = %run.recipe, %status, "run ended"),
    }
    if let Err(e) = inner.store.save_run(run.clone(), event).await {
        // The run stays `running` on disk and is resumed (and ends again) at restart.
        tracing::error!(run = %run.id, error = %e, "cannot record the end of a run");
    }
    inner
        .live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&run.id);
}

async fn save_step(
    inner: &Inner,
    run: &RunRecord,
    step: StepRecord,
    event: crate::event::NewEvent,
) {
    // A lost write is recovered from the session at restart; the run goes on.
    if let Err(e) = inner.store.save_step(&run.id, step, event).await {
        tracing::error!(run = %run.id, error = %e, "cannot record a step transition");
    }
}

/// One step of a run, attempt after attempt.
struct StepTask {
    inner: Arc<Inner>,
    run: RunRecord,
    step: Step,
    /// Inputs, outputs of the steps before, trigger.
    prompt_scope: (Value, HashMap<String, String>, Value),
    stop: CancellationToken,
}

impl StepTask {
    fn scope(&self) -> RunScope<'_> {
        RunScope {
            inputs: &self.prompt_scope.0,
            outputs: &self.prompt_scope.1,
            trigger: &self.prompt_scope.2,
        }
    }

    fn session_key(&self) -> String {
        format!("run-{}-{}", self.run.id.to_lowercase(), self.step.id)
    }

    async fn save(&self, record: &StepRecord, what: &str, data: Value) {
        let event = step_event(&self.run, &self.step.id, what, data);
        save_step(&self.inner, &self.run, record.clone(), event).await;
    }

    async fn run(self, mut record: StepRecord) -> StepRecord {
        if record.status == StepStatus::Pending
            && let Some(condition) = &self.step.condition
            && !condition.eval(&self.scope())
        {
            record.status = StepStatus::Skipped;
            record.finished_at = Some(crate::time::now_rfc3339());
            self.save(&record, "skipped", json!({ "reason": "its `if` is false" }))
                .await;
            return record;
        }
        loop {
            if record.status == StepStatus::Retrying {
                let wait = record
                    .retry_at
                    .as_deref()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| {
                        (t.with_timezone(&Utc) - Utc::now())
                            .to_std()
                            .unwrap_or_default()
                    })
                    .unwrap_or_default();
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = self.stop.cancelled() => return self.canceled(record).await,
                }
            }
            // A resumed attempt has its message already; otherwise send the prompt.
            let message_id = match (record.status, record.message_id.clone()) {
                (StepStatus::Running, Some(id)) => id,
                _ => match self.send(&mut record).await {
                    Ok(id) => id,
                    Err(error) => {
                        record.attempt += 1;
                        match self.attempt_failed(&mut record, error).await {
                            Some(()) => continue,
                            None => return record,
                        }
                    }
                },
            };
            let outcome = tokio::select! {
                outcome = tokio::time::timeout(self.step.timeout, self.inner.sessions.wait_turn(&message_id)) => outcome,
                () = self.stop.cancelled() => {
                    self.abort_turn(&message_id).await;
                    return self.canceled(record).await;
                }
            };
            let result = match outcome {
                Ok(Ok(Some(turn))) if turn.status == MessageStatus::Done => {
                    let output = turn.reply.unwrap_or_default();
                    match self.step.verify.as_ref().and_then(|v| v.failure(&output)) {
                        None => Ok(output),
                        Some(why) => Err(format!("verify: {why}")),
                    }
                }
                Ok(Ok(Some(turn))) => Err(format!(
                    "the turn ended `{}`{}",
                    turn.status,
                    turn.error.map(|e| format!(": {e}")).unwrap_or_default()
                )),
                Ok(Ok(None)) => {
                    Err("the step's session lost its message (reset or deleted)".into())
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => {
                    self.abort_turn(&message_id).await;
                    Err(format!(
                        "timed out after {}",
                        humantime::format_duration(self.step.timeout)
                    ))
                }
            };
            match result {
                Ok(output) => {
                    record.status = StepStatus::Succeeded;
                    record.output = Some(output.clone());
                    record.error = None;
                    record.retry_at = None;
                    record.finished_at = Some(crate::time::now_rfc3339());
                    self.save(
                        &record,
                        "succeeded",
                        json!({ "attempt": record.attempt, "output": output }),
                    )
                    .await;
                    return record;
                }
                Err(error) => match self.attempt_failed(&mut record, error).await {
                    Some(()) => continue,
                    None => return record,
                },
            }
        }
    }

    /// Abort the step's turn and wait (boundedly) until it has stopped, so that what
    /// is recorded next is true of the session too.
    async fn abort_turn(&self, message_id: &str) {
        let _ = self.inner.sessions.abort(&self.session_key()).await;
        let limit = self.inner.sessions.config().abort_grace + Duration::from_secs(1);
        let _ = tokio::time::timeout(limit, self.inner.sessions.wait_turn(message_id)).await;
    }

    /// Open the step's session (first attempt) and send the prompt; the step is then
    /// `running` with that message. Returns the message id.
    async fn send(&self, record: &mut StepRecord) -> Result<String, String> {
        let key = self.session_key();
        let scope = self.scope();
        let new = NewSession {
            key: Some(key.clone()),
            adapter: Some(self.step.plugin.clone()),
            config: Some(self.step.config.clone()),
            system: self.step.role.as_ref().map(|r| r.render(&scope)),
        };
        match self.inner.sessions.create(new).await {
            Ok(_) | Err(SessionError::Exists(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
        let prompt = self.step.prompt.render(&scope);
        let (message, _) = self
            .inner
            .sessions
            .enqueue(&key, prompt)
            .await
            .map_err(|e| e.to_string())?;
        record.attempt += 1;
        record.status = StepStatus::Running;
        record.session = Some(key.clone());
        record.message_id = Some(message.id.clone());
        record.retry_at = None;
        record
            .started_at
            .get_or_insert_with(crate::time::now_rfc3339);
        self.save(
            record,
            "started",
            json!({ "attempt": record.attempt, "session": key, "message_id": message.id }),
        )
        .await;
        Ok(message.id)
    }

    /// Record a failed attempt: `Some` to try again (after the backoff), `None` when
    /// the step has failed for good.
    async fn attempt_failed(&self, record: &mut StepRecord, error: String) -> Option<()> {
        tracing::warn!(run = %self.run.id, step = %self.step.id, attempt = record.attempt, error = %error, "run step attempt failed");
        record.error = Some(error.clone());
        let policy = self.step.retries;
        if record.attempt <= policy.max {
            let backoff = backoff(policy.backoff, policy.max_backoff, record.attempt);
            let at = Utc::now() + chrono::Duration::from_std(backoff).unwrap_or_default();
            record.status = StepStatus::Retrying;
            record.retry_at = Some(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            self.save(
                record,
                "retrying",
                json!({
                    "attempt": record.attempt,
                    "error": error,
                    "retry_in_ms": backoff.as_millis() as u64,
                }),
            )
            .await;
            return Some(());
        }
        record.status = StepStatus::Failed;
        record.finished_at = Some(crate::time::now_rfc3339());
        self.save(
            record,
            "failed",
            json!({ "attempt": record.attempt, "error": error }),
        )
        .await;
        None
    }

    async fn canceled(&self, mut record: StepRecord) -> StepRecord {
        record.status = StepStatus::Canceled;
        record.finished_at = Some(crate::time::now_rfc3339());
        self.save(&record, "canceled", json!({ "attempt": record.attempt }))
            .await;
        record
    }
}

/// The wait before retry `attempt + 1`: `first`, doubling, at most `max`.
fn backoff(first: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    first.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Duration::from_secs;
        let waits: Vec<Duration> = (1..=6).map(|a| backoff(s(1), s(10), a)).collect();
        assert_eq!(waits, [s(1), s(2), s(4), s(8), s(10), s(10)]);
    }

    #[test]
    fn scope_reads_inputs_outputs_and_the_event() {
        let inputs = json!({ "repo": "x", "n": 3 });
        let outputs = HashMap::from([("a".to_owned(), "out".to_owned())]);
        let trigger = json!({ "kind": "event", "event": { "data": { "pr": 7 } } });
        let scope = RunScope {
            inputs: &inputs,
            outputs: &outputs,
            trigger: &trigger,
        };
        let t = crate::recipes::template::Template::parse(
            "{{ inputs.repo }} {{ inputs.n }} {{ steps.a.output }} {{ event.data.pr }} [{{ steps.b.output }}]",
        )
        .unwrap();
        assert_eq!(t.render(&scope), "x 3 out 7 []");
    }
}
