//! Recipe runs and their steps (`runs`, `run_steps`).
//!
//! Every state change is written with the event announcing it, in one transaction, so
//! the bus and the tables never disagree about what a run did.

use rusqlite::{OptionalExtension, params};

use super::events::record_event;
use super::firings::insert_firing;
use super::{CachedStatements, SqliteStore};
use crate::event::NewEvent;
use crate::store::{
    FiringRecord, RunFilter, RunRecord, RunStatus, RunStore, StepRecord, StoreError,
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
                    filter.status.map_or("", RunStatus::as_str),
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
