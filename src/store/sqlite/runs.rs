//! Recipe runs and their steps (`runs`, `run_steps`), automation firings and state
//! (`automation_firings`, `automations`).
//!
//! Every state change is written with the event announcing it, in one transaction, so
//! the bus and the tables never disagree about what a run did.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::events::record_event;
use super::{CachedStatements, SqliteStore};
use crate::bus::NewEvent;
use crate::store::{
    AutomationState, FiringRecord, RunFilter, RunRecord, RunStore, StepRecord, StoreError,
};

const RUN_COLUMNS: &str = "id, recipe, version, file, source, inputs, status, trigger, \
     correlation_id, outputs, error, created_at, finished_at";
const STEP_COLUMNS: &str = "step_id, status, attempt, session, message_id, output, error, \
     started_at, finished_at, retry_at";

fn json(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: r.get(0)?,
        recipe: r.get(1)?,
        version: r.get(2)?,
        file: r.get(3)?,
        source: r.get(4)?,
        inputs: json(r.get(5)?),
        status: r.get(6)?,
        trigger: json(r.get(7)?),
        correlation_id: r.get(8)?,
        outputs: r.get::<_, Option<String>>(9)?.map(json),
        error: r.get(10)?,
        created_at: r.get(11)?,
        finished_at: r.get(12)?,
    })
}

fn step_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StepRecord> {
    Ok(StepRecord {
        step_id: r.get(0)?,
        status: r.get(1)?,
        attempt: r.get(2)?,
        session: r.get(3)?,
        message_id: r.get(4)?,
        output: r.get(5)?,
        error: r.get(6)?,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
        retry_at: r.get(9)?,
    })
}

fn firing_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FiringRecord> {
    Ok(FiringRecord {
        automation: r.get(0)?,
        slot: r.get(1)?,
        scheduled_at: r.get(2)?,
        fired_at: r.get(3)?,
        decision: r.get(4)?,
        run_id: r.get(5)?,
        detail: r.get(6)?,
        run_status: r.get(7)?,
    })
}

#[async_trait::async_trait]
impl RunStore for SqliteStore {
    async fn create_run(
        &self,
        run: RunRecord,
        steps: Vec<StepRecord>,
        event: NewEvent,
        firing: Option<(FiringRecord, NewEvent)>,
    ) -> Result<bool, StoreError> {
        self.write_events(move |c, events| {
            if let Some((firing, announce)) = firing {
                if !insert_firing(c, &firing)? {
                    return Ok(false);
                }
                record_event(c, announce, events)?;
            }
            c.exec(
                &format!(
                    "INSERT INTO runs ({RUN_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ),
                params![
                    run.id,
                    run.recipe,
                    run.version,
                    run.file,
                    run.source,
                    run.inputs.to_string(),
                    run.status,
                    run.trigger.to_string(),
                    run.correlation_id,
                    run.outputs.as_ref().map(|o| o.to_string()),
                    run.error,
                    run.created_at,
                    run.finished_at
                ],
            )?;
            for (position, step) in steps.iter().enumerate() {
                insert_step(c, &run.id, position, step)?;
            }
            record_event(c, event, events)?;
            Ok(true)
        })
        .await
    }

    async fn save_run(&self, run: RunRecord, event: NewEvent) -> Result<(), StoreError> {
        self.write_events(move |c, events| {
            c.exec(
                "UPDATE runs SET status = ?1, outputs = ?2, error = ?3, finished_at = ?4 WHERE id = ?5",
                params![
                    run.status,
                    run.outputs.as_ref().map(|o| o.to_string()),
                    run.error,
                    run.finished_at,
                    run.id
                ],
            )?;
            record_event(c, event, events)
        })
        .await
    }

    async fn save_step(
        &self,
        run_id: &str,
        step: StepRecord,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        let run_id = run_id.to_owned();
        self.write_events(move |c, events| {
            c.exec(
                "UPDATE run_steps SET status = ?3, attempt = ?4, session = ?5, message_id = ?6,
                     output = ?7, error = ?8, started_at = ?9, finished_at = ?10, retry_at = ?11
                 WHERE run_id = ?1 AND step_id = ?2",
                params![
                    run_id,
                    step.step_id,
                    step.status,
                    step.attempt,
                    step.session,
                    step.message_id,
                    step.output,
                    step.error,
                    step.started_at,
                    step.finished_at,
                    step.retry_at
                ],
            )?;
            record_event(c, event, events)
        })
        .await
    }

    async fn run(&self, id: &str) -> Result<Option<(RunRecord, Vec<StepRecord>)>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            let run = c
                .one(
                    &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                    [&id],
                    run_row,
                )
                .optional()?;
            let Some(run) = run else { return Ok(None) };
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {STEP_COLUMNS} FROM run_steps WHERE run_id = ?1 ORDER BY position"
            ))?;
            let steps = stmt.query_map([&id], step_row)?.collect::<Result<_, _>>()?;
            Ok(Some((run, steps)))
        })
        .await
    }

    async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        self.read(move |c| {
            // Empty strings match everything; `~` sorts after every ULID.
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE (?1 = '' OR recipe = ?1) AND (?2 = '' OR status = ?2) AND id < ?3
                 ORDER BY id DESC LIMIT CAST(?4 AS INTEGER)"
            ))?;
            let rows = stmt.query_map(
                params![
                    filter.recipe.unwrap_or_default(),
                    filter.status.unwrap_or_default(),
                    filter.before.unwrap_or_else(|| "~".into()),
                    filter.limit as i64
                ],
                run_row,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn unfinished_runs(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT id FROM runs WHERE status = 'running' ORDER BY id")?;
            let ids = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(ids)
        })
        .await
    }

    async fn record_firing(
        &self,
        firing: FiringRecord,
        event: NewEvent,
    ) -> Result<bool, StoreError> {
        self.write_events(move |c, events| {
            if !insert_firing(c, &firing)? {
                return Ok(false);
            }
            record_event(c, event, events)?;
            Ok(true)
        })
        .await
    }

    async fn firings(
        &self,
        automation: Option<String>,
        limit: usize,
    ) -> Result<Vec<FiringRecord>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT f.automation, f.slot, f.scheduled_at, f.fired_at, f.decision, f.run_id,
                        f.detail, r.status
                 FROM automation_firings f LEFT JOIN runs r ON r.id = f.run_id
                 WHERE (?1 = '' OR f.automation = ?1)
                 ORDER BY f.fired_at DESC LIMIT CAST(?2 AS INTEGER)",
            )?;
            let rows = stmt.query_map(
                params![automation.unwrap_or_default(), limit as i64],
                firing_row,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn automation_states(
        &self,
        automations: Vec<String>,
        now: String,
    ) -> Result<Vec<AutomationState>, StoreError> {
        self.write(move |c| {
            let mut out = Vec::with_capacity(automations.len());
            let mut last: HashMap<String, String> = HashMap::new();
            {
                let mut stmt = c.prepare_cached(
                    "SELECT automation, MAX(scheduled_at) FROM automation_firings
                     WHERE scheduled_at IS NOT NULL GROUP BY automation",
                )?;
                for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
                    let (a, slot): (String, String) = row?;
                    last.insert(a, slot);
                }
            }
            for name in automations {
                c.exec(
                    "INSERT INTO automations (automation, since) VALUES (?1, ?2)
                     ON CONFLICT DO NOTHING",
                    params![name, now],
                )?;
                let (paused, since): (bool, String) = c.one(
                    "SELECT paused, since FROM automations WHERE automation = ?1",
                    [&name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                out.push(AutomationState {
                    last_slot: last.remove(&name),
                    automation: name,
                    paused,
                    since,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn set_paused(
        &self,
        automation: &str,
        paused: bool,
        now: String,
    ) -> Result<(), StoreError> {
        let automation = automation.to_owned();
        self.write(move |c| {
            c.exec(
                // A resume starts the automation's time afresh: catch-up after a later
                // stop never replays the slots it was paused for.
                "INSERT INTO automations (automation, paused, since) VALUES (?1, ?2, ?3)
                 ON CONFLICT (automation) DO UPDATE SET paused = excluded.paused,
                     since = CASE WHEN excluded.paused THEN automations.since ELSE excluded.since END",
                params![automation, paused, now],
            )?;
            Ok(())
        })
        .await
    }
}

/// Record a firing unless its slot is taken; whether it was recorded.
fn insert_firing(c: &rusqlite::Connection, firing: &FiringRecord) -> Result<bool, StoreError> {
    let inserted = c.exec(
        "INSERT INTO automation_firings
             (automation, slot, scheduled_at, fired_at, decision, run_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        params![
            firing.automation,
            firing.slot,
            firing.scheduled_at,
            firing.fired_at,
            firing.decision,
            firing.run_id,
            firing.detail
        ],
    )?;
    Ok(inserted == 1)
}

fn insert_step(
    c: &rusqlite::Connection,
    run_id: &str,
    position: usize,
    step: &StepRecord,
) -> Result<(), StoreError> {
    c.exec(
        "INSERT INTO run_steps (run_id, step_id, position, status, attempt, session, message_id,
             output, error, started_at, finished_at, retry_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            run_id,
            step.step_id,
            position as i64,
            step.status,
            step.attempt,
            step.session,
            step.message_id,
            step.output,
            step.error,
            step.started_at,
            step.finished_at,
            step.retry_at
        ],
    )?;
    Ok(())
}
