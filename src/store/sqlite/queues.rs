//! Work queues (`queue_items`). Transitions are closures from the queues service run
//! inside the write, on the item as it is on disk, so a claim, an ack and the reaper
//! never act on a stale copy.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, params};

use super::events::record_event;
use super::writer::Undo;
use super::{CachedStatements, SqliteStore};
use crate::event::Event;
use crate::store::{ItemChange, ItemStatus, QueueItem, QueueStore, StoreError};

const COLUMNS: &str = "id, queue, payload, priority, idempotency_key, status, attempts, \
     max_attempts, available_at, expires_at, lease_token, lease_expires_at, worker, result, \
     error, created_at, updated_at";

/// A claimable status, written exactly as the condition of the `queue_items_ready`
/// index (migration 10), so that the planner knows a query that tests it can read
/// that index.
const READY: &str = "(status = 'pending' OR status = 'failed' OR status = 'timed_out')";

/// Item ?2 of queue ?1.
static BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM queue_items WHERE queue = ?1 AND id = ?2"));

/// The item of queue ?1 with idempotency key ?2.
static BY_KEY: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {COLUMNS} FROM queue_items WHERE queue = ?1 AND idempotency_key = ?2")
});

static INSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO queue_items ({COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    )
});

/// Queue ?1's items with status ?2 ('' for any) and ids below ?3, newest first, at
/// most ?4.
static LISTED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM queue_items
         WHERE queue = ?1 AND (?2 = '' OR status = ?2) AND id < ?3
         ORDER BY id DESC LIMIT CAST(?4 AS INTEGER)"
    )
});

/// The best ready items of queue ?1 at time ?2, at most ?3: a retryable status,
/// available, not expired, read from the `queue_items_ready` index, which is in claim
/// order.
static CLAIMABLE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM queue_items
         WHERE queue = ?1 AND {READY}
           AND available_at <= ?2 AND (expires_at IS NULL OR expires_at > ?2)
         ORDER BY priority DESC, available_at, id LIMIT CAST(?3 AS INTEGER)"
    )
});

/// When the next ready item of queue ?1 becomes available.
static NEXT_AVAILABLE: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT MIN(available_at) FROM queue_items WHERE queue = ?1 AND {READY}")
});

/// Items whose lease or TTL ran out by ?1, at most ?2; each test matches the
/// condition of its index (`queue_items_leased`, `queue_items_expiring`).
static DUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM queue_items
         WHERE (status IN ('claimed', 'running') AND lease_expires_at <= ?1)
            OR (expires_at IS NOT NULL AND expires_at <= ?1
                AND status IN ('pending', 'failed', 'timed_out', 'claimed', 'running'))
         LIMIT CAST(?2 AS INTEGER)"
    )
});

fn json(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

fn item_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueueItem> {
    Ok(QueueItem {
        id: r.get(0)?,
        queue: r.get(1)?,
        payload: json(r.get(2)?),
        priority: r.get(3)?,
        idempotency_key: r.get(4)?,
        status: r.get(5)?,
        attempts: r.get(6)?,
        max_attempts: r.get(7)?,
        available_at: r.get(8)?,
        expires_at: r.get(9)?,
        lease_token: r.get(10)?,
        lease_expires_at: r.get(11)?,
        worker: r.get(12)?,
        result: r.get::<_, Option<String>>(13)?.map(json),
        error: r.get(14)?,
        created_at: r.get(15)?,
        updated_at: r.get(16)?,
    })
}

const SAVE: &str = "UPDATE queue_items SET status = ?2, attempts = ?3, available_at = ?4,
         lease_token = ?5, lease_expires_at = ?6, worker = ?7, result = ?8, error = ?9,
         updated_at = ?10, priority = ?11, expires_at = ?12, max_attempts = ?13
     WHERE id = ?1";

/// Save `item`, which had status `was`.
fn save(c: &Connection, was: ItemStatus, item: &QueueItem) -> Result<(), StoreError> {
    c.exec(
        SAVE,
        params![
            item.id,
            item.status,
            item.attempts,
            item.available_at,
            item.lease_token,
            item.lease_expires_at,
            item.worker,
            item.result.as_ref().map(|r| r.to_string()),
            item.error,
            item.updated_at,
            item.priority,
            item.expires_at,
            item.max_attempts
        ],
    )?;
    // After the item's own UPDATE, like the INSERT's count: if that UPDATE fails, it
    // fails alone (SQLite undoes a failed statement), not after changing rows.
    count(c, &item.queue, Some(was), Some(item.status))
}

/// Move one item of `queue` from status `from` to status `to` in `queue_counts` (`None`:
/// the item is new, or gone). Each statement changes one row, so SQLite needs no
/// statement journal for it (see migration 11).
fn count(
    c: &Connection,
    queue: &str,
    from: Option<ItemStatus>,
    to: Option<ItemStatus>,
) -> Result<(), StoreError> {
    if from == to {
        return Ok(());
    }
    if let Some(from) = from {
        c.exec(
            "UPDATE queue_counts SET n = n - 1 WHERE queue = ?1 AND status = ?2",
            params![queue, from],
        )?;
    }
    if let Some(to) = to {
        let counted = c.exec(
            "UPDATE queue_counts SET n = n + 1 WHERE queue = ?1 AND status = ?2",
            params![queue, to],
        )?;
        if counted == 0 {
            c.exec(
                "INSERT INTO queue_counts (queue, status, n) VALUES (?1, ?2, 1)",
                params![queue, to],
            )?;
        }
    }
    Ok(())
}

/// Apply `change` to `item`: if it accepts, the changed item saved with its event; if
/// it refuses, why (nothing written).
fn transition(
    c: &Connection,
    item: QueueItem,
    change: &mut ItemChange,
    events: &mut Vec<std::sync::Arc<Event>>,
) -> Result<Result<QueueItem, String>, StoreError> {
    let was = item.status;
    match change(item) {
        Ok((changed, event)) => {
            save(c, was, &changed)?;
            record_event(c, event, events)?;
            Ok(Ok(changed))
        }
        Err(refused) => Ok(Err(refused)),
    }
}

/// Apply `change` to each of `items`; the ones it accepted, saved with their events.
fn apply(
    c: &Connection,
    items: Vec<QueueItem>,
    change: &mut ItemChange,
    events: &mut Vec<std::sync::Arc<Event>>,
) -> Result<Vec<QueueItem>, StoreError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let Ok(changed) = transition(c, item, change, events)? {
            out.push(changed);
        }
    }
    Ok(out)
}

fn select(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<QueueItem>, StoreError> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(p, item_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Queue writes take no savepoint (`Undo::Group`): each fails only when SQLite does,
/// since a refused change is an `Ok` (`change_item`) or leaves the item out (`apply`).
#[async_trait::async_trait]
impl QueueStore for SqliteStore {
    async fn enqueue_item(
        &self,
        item: QueueItem,
        event: crate::event::NewEvent,
    ) -> Result<(QueueItem, bool), StoreError> {
        self.write_events_undone(Undo::Group, move |c, events| {
            if let Some(key) = &item.idempotency_key {
                let existing = c
                    .one(&BY_KEY, params![item.queue, key], item_row)
                    .optional()?;
                if let Some(existing) = existing {
                    return Ok((existing, false));
                }
            }
            c.exec(
                &INSERT,
                params![
                    item.id,
                    item.queue,
                    item.payload.to_string(),
                    item.priority,
                    item.idempotency_key,
                    item.status,
                    item.attempts,
                    item.max_attempts,
                    item.available_at,
                    item.expires_at,
                    item.lease_token,
                    item.lease_expires_at,
                    item.worker,
                    item.result.as_ref().map(|r| r.to_string()),
                    item.error,
                    item.created_at,
                    item.updated_at
                ],
            )?;
            count(c, &item.queue, None, Some(item.status))?;
            record_event(c, event, events)?;
            Ok((item, true))
        })
        .await
    }

    async fn change_item(
        &self,
        queue: &str,
        id: &str,
        mut change: ItemChange,
    ) -> Result<Option<Result<QueueItem, String>>, StoreError> {
        let (queue, id) = (queue.to_owned(), id.to_owned());
        self.write_events_undone(Undo::Group, move |c, events| {
            let item = c.one(&BY_ID, params![queue, id], item_row).optional()?;
            let Some(item) = item else { return Ok(None) };
            transition(c, item, &mut change, events).map(Some)
        })
        .await
    }

    async fn claim_items(
        &self,
        queue: &str,
        now: String,
        limit: usize,
        mut change: ItemChange,
    ) -> Result<Vec<QueueItem>, StoreError> {
        let queue = queue.to_owned();
        self.write_events_undone(Undo::Group, move |c, events| {
            let ready = select(c, &CLAIMABLE, params![queue, now, limit as i64])?;
            apply(c, ready, &mut change, events)
        })
        .await
    }

    async fn reap_items(
        &self,
        now: String,
        limit: usize,
        mut change: ItemChange,
    ) -> Result<Vec<QueueItem>, StoreError> {
        self.write_events_undone(Undo::Group, move |c, events| {
            let due = select(c, &DUE, params![now, limit as i64])?;
            apply(c, due, &mut change, events)
        })
        .await
    }

    async fn queue_item(&self, queue: &str, id: &str) -> Result<Option<QueueItem>, StoreError> {
        let (queue, id) = (queue.to_owned(), id.to_owned());
        self.read(move |c| Ok(c.one(&BY_ID, params![queue, id], item_row).optional()?))
            .await
    }

    async fn queue_items(
        &self,
        queue: &str,
        status: Option<ItemStatus>,
        before: Option<String>,
        limit: usize,
    ) -> Result<Vec<QueueItem>, StoreError> {
        let queue = queue.to_owned();
        self.read(move |c| {
            select(
                c,
                &LISTED,
                params![
                    queue,
                    status.map_or("", ItemStatus::as_str),
                    before.unwrap_or_else(|| "~".into()),
                    limit as i64
                ],
            )
        })
        .await
    }

    async fn queue_status_counts(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<ItemStatus, u64>>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT queue, status, n FROM queue_counts WHERE n > 0")?;
            let mut out: BTreeMap<String, BTreeMap<ItemStatus, u64>> = BTreeMap::new();
            for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?)))? {
                let (queue, status, n): (String, ItemStatus, i64) = row?;
                out.entry(queue).or_default().insert(status, n as u64);
            }
            Ok(out)
        })
        .await
    }

    async fn next_available(&self, queue: &str) -> Result<Option<String>, StoreError> {
        let queue = queue.to_owned();
        self.read(move |c| Ok(c.one(&NEXT_AVAILABLE, [queue], |r| r.get(0))?))
            .await
    }

    async fn drop_dead_item(&self, queue: &str, id: &str) -> Result<bool, StoreError> {
        let (queue, id) = (queue.to_owned(), id.to_owned());
        self.write(move |c| {
            let dropped = c.exec(
                "DELETE FROM queue_items WHERE queue = ?1 AND id = ?2 AND status = 'dead'",
                params![queue, id],
            )? == 1;
            if dropped {
                count(c, &queue, Some(ItemStatus::Dead), None)?;
            }
            Ok(dropped)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, StatementStatus, params};

    use super::super::query_plan as plan;
    use super::{CLAIMABLE, DUE, NEXT_AVAILABLE};
    use crate::store::Store;

    /// A claim reads the ready index in claim order (no sort, no scan), the reaper
    /// reads the lease and TTL indexes, and the claim statement stays prepared when
    /// rebound (see `CachedStatements`).
    #[test]
    fn claims_and_reaps_read_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join("switchyard.db")).unwrap();
        let claim = plan(&c, &CLAIMABLE, params!["q", "2026", 1]);
        assert!(claim.contains("USING INDEX queue_items_ready"), "{claim}");
        assert!(!claim.contains("TEMP B-TREE"), "{claim}");
        let next = plan(&c, &NEXT_AVAILABLE, params!["q"]);
        assert!(next.contains("USING INDEX queue_items_ready"), "{next}");
        let reap = plan(&c, &DUE, params!["2026", 100]);
        assert!(reap.contains("queue_items_leased"), "{reap}");
        assert!(reap.contains("queue_items_expiring"), "{reap}");

        let mut stmt = c.prepare(&CLAIMABLE).unwrap();
        for n in 1..=5 {
            stmt.query(params!["q", format!("2026-01-0{n}"), n])
                .unwrap()
                .next()
                .unwrap();
        }
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
    }

    /// Saving an item tests the partial indexes' conditions on its old and new row; no
    /// condition may need a temporary B-tree (`status IN` a list of three or more
    /// does), which would be built and dropped on every queue transition.
    #[test]
    fn a_transition_builds_no_temporary_table() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join("switchyard.db")).unwrap();
        for sql in [super::SAVE, &super::INSERT] {
            let mut stmt = c.prepare(&format!("EXPLAIN {sql}")).unwrap();
            let mut rows = stmt.raw_query();
            while let Some(row) = rows.next().unwrap() {
                let opcode: String = row.get(1).unwrap();
                assert_ne!(opcode, "OpenEphemeral", "{sql}");
            }
        }
    }
}
