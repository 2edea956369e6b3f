//! The bus log (`events`): append and read back in `seq` order.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use futures::future::BoxFuture;

use super::writer::Undo;
use super::{CachedStatements, SqliteStore};
use crate::event::{Event, EventData, NewEvent};
use crate::store::{CommitSink, EventLog, StoreError};

/// Insert one event inside a write. The caller pushes the returned event to the
/// write's committed-events list (see `Store::write_events`).
pub(crate) fn insert_event(c: &Connection, event: NewEvent) -> Result<Event, StoreError> {
    let id = ulid::Ulid::new().to_string();
    let time = crate::time::now_rfc3339();
    c.prepare_cached(
        "INSERT INTO events (id, topic, type, source, subject, time, correlation_id, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        id,
        event.topic,
        event.event_type,
        event.source,
        event.subject,
        time,
        event.correlation_id,
        event.data.text()
    ])?;
    Ok(Event {
        seq: c.last_insert_rowid() as u64,
        id,
        topic: event.topic,
        event_type: event.event_type,
        source: event.source,
        subject: event.subject,
        time,
        correlation_id: event.correlation_id,
        data: event.data,
    })
}

/// [`insert_event`] for each of `events`, each also pushed to the write's
/// committed-events list `out`.
pub(crate) fn insert_events(
    c: &Connection,
    events: Vec<NewEvent>,
    out: &mut Vec<Arc<Event>>,
) -> Result<Vec<Arc<Event>>, StoreError> {
    let mut stored = Vec::with_capacity(events.len());
    for event in events {
        let e = Arc::new(insert_event(c, event)?);
        out.push(e.clone());
        stored.push(e);
    }
    Ok(stored)
}

/// [`insert_event`], the event pushed to the write's committed-events list `out`.
pub(crate) fn record_event(
    c: &Connection,
    event: NewEvent,
    out: &mut Vec<Arc<Event>>,
) -> Result<(), StoreError> {
    out.push(Arc::new(insert_event(c, event)?));
    Ok(())
}

#[async_trait::async_trait]
impl EventLog for SqliteStore {
    /// Append one event. Queued when called, in call order.
    fn append_event(&self, event: NewEvent) -> BoxFuture<'static, Result<Arc<Event>, StoreError>> {
        // One INSERT: no savepoint needed to undo it alone.
        Box::pin(self.write_events_undone(Undo::Group, move |c, out| {
            let e = Arc::new(insert_event(c, event)?);
            out.push(e.clone());
            Ok(e)
        }))
    }

    fn append_events(
        &self,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'static, Result<Vec<Arc<Event>>, StoreError>> {
        Box::pin(self.write_events(move |c, out| insert_events(c, events, out)))
    }

    fn attach_sink(&self, sink: Arc<dyn CommitSink>) {
        self.inner.feed.attach(sink)
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, id, topic, type, source, subject, time, correlation_id, data
                 FROM events WHERE seq > ?1 ORDER BY seq LIMIT CAST(?2 AS INTEGER)",
            )?;
            let rows = stmt.query_map(params![after as i64, limit as i64], |r| {
                let data: String = r.get(8)?;
                Ok(Event {
                    seq: r.get::<_, i64>(0)? as u64,
                    id: r.get(1)?,
                    topic: r.get(2)?,
                    event_type: r.get(3)?,
                    source: r.get(4)?,
                    subject: r.get(5)?,
                    time: r.get(6)?,
                    correlation_id: r.get(7)?,
                    // Written by this store, so JSON; a row edited by hand reads as null.
                    data: EventData::from_text(data).unwrap_or_default(),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn log_cursor(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| {
            Ok(
                c.one("SELECT seq FROM log_cursors WHERE name = ?1", [name], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?
                .map(|seq| seq as u64),
            )
        })
        .await
    }

    async fn save_log_cursor(&self, name: &str, seq: u64) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |c| {
            c.exec(
                "INSERT INTO log_cursors (name, seq) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
                params![name, seq as i64],
            )?;
            Ok(())
        })
        .await
    }

    /// Delete up to `batch` of the oldest events that are beyond the newest `keep` or
    /// older than `before` (RFC 3339). Returns how many were deleted.
    async fn trim_events(
        &self,
        keep: Option<u64>,
        before: Option<String>,
        batch: u64,
    ) -> Result<u64, StoreError> {
        self.write(move |c| {
            let max: i64 = c.one("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
            let below_seq = keep.map_or(0, |k| (max - k as i64).max(0));
            let deleted = c.exec(
                "DELETE FROM events WHERE seq IN (
                   SELECT seq FROM events WHERE seq <= ?1 OR time < ?2 ORDER BY seq LIMIT CAST(?3 AS INTEGER))",
                params![below_seq, before.unwrap_or_default(), batch as i64],
            )?;
            Ok(deleted as u64)
        })
        .await
    }
}
