//! Automation firings and state (`automation_firings`, `automations`).
//!
//! A firing is written with the event announcing it, in one transaction; a slot fires
//! at most once (a unique key), also when it creates a run (`runs::create_run`).

use std::collections::HashMap;

use rusqlite::params;

use super::events::record_event;
use super::{CachedStatements, SqliteStore};
use crate::event::NewEvent;
use crate::store::{AutomationState, FiringRecord, FiringStore, StoreError};

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
impl FiringStore for SqliteStore {
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
pub(super) fn insert_firing(
    c: &rusqlite::Connection,
    firing: &FiringRecord,
) -> Result<bool, StoreError> {
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
