//! Versioned schema migrations, tracked in SQLite's `user_version`.
//!
//! Migrations are append-only: never edit one that has shipped, add the next.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// Each entry takes the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the bus log and plugin key-value data.
    r#"
    CREATE TABLE events (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        id             TEXT NOT NULL UNIQUE,
        topic          TEXT NOT NULL,
        type           TEXT NOT NULL,
        source         TEXT NOT NULL,
        subject        TEXT,
        time           TEXT NOT NULL,
        correlation_id TEXT,
        data           TEXT NOT NULL
    );
    CREATE INDEX events_by_topic ON events (topic, seq);

    CREATE TABLE plugin_kv (
        plugin     TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      BLOB NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (plugin, key)
    ) WITHOUT ROWID;
    "#,
    // 2: sessions and their messages (queue and history in one ordered table).
    r#"
    CREATE TABLE sessions (
        id         TEXT PRIMARY KEY,
        key        TEXT NOT NULL UNIQUE,
        adapter    TEXT NOT NULL,
        config     TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );

    -- One row per message. User messages are the queue while `queued`; assistant
    -- messages are written when a turn ends. Conversation order is (turn, seq): a
    -- user message's turn is its own seq, a reply's is the seq of the message it
    -- answers (replies are written after later messages were already queued).
    CREATE TABLE session_messages (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        turn        INTEGER NOT NULL,
        id          TEXT NOT NULL UNIQUE,
        session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        role        TEXT NOT NULL,
        text        TEXT NOT NULL,
        status      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        finished_at TEXT,
        error       TEXT
    );
    CREATE INDEX session_messages_by_session ON session_messages (session_id, turn, seq);
    CREATE INDEX session_messages_by_status ON session_messages (status, session_id, seq);
    "#,
    // 3: recipe runs and their steps, automation firings and state; a session's
    // system text (a recipe step's `role`).
    r#"
    ALTER TABLE sessions ADD COLUMN system TEXT;

    -- A run keeps the recipe text it started with (`source`): after a restart it goes
    -- on with that version, whatever the file says now.
    CREATE TABLE runs (
        id             TEXT PRIMARY KEY,
        recipe         TEXT NOT NULL,
        version        TEXT NOT NULL,
        file           TEXT NOT NULL,
        source         TEXT NOT NULL,
        inputs         TEXT NOT NULL,
        status         TEXT NOT NULL,
        trigger        TEXT NOT NULL,
        correlation_id TEXT NOT NULL,
        outputs        TEXT,
        error          TEXT,
        created_at     TEXT NOT NULL,
        finished_at    TEXT
    );
    CREATE INDEX runs_by_recipe ON runs (recipe, id);
    CREATE INDEX runs_by_status ON runs (status, id);

    CREATE TABLE run_steps (
        run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step_id     TEXT NOT NULL,
        position    INTEGER NOT NULL,
        status      TEXT NOT NULL,
        attempt     INTEGER NOT NULL,
        session     TEXT,
        message_id  TEXT,
        output      TEXT,
        error       TEXT,
        started_at  TEXT,
        finished_at TEXT,
        retry_at    TEXT,
        PRIMARY KEY (run_id, step_id)
    ) WITHOUT ROWID;

    -- One row per slot (a scheduled time, an event id, a webhook request): the
    -- primary key is what makes a slot fire at most once, across restarts too.
    CREATE TABLE automation_firings (
        automation   TEXT NOT NULL,
        slot         TEXT NOT NULL,
        scheduled_at TEXT,
        fired_at     TEXT NOT NULL,
        decision     TEXT NOT NULL,
        run_id       TEXT,
        detail       TEXT,
        PRIMARY KEY (automation, slot)
    ) WITHOUT ROWID;
    CREATE INDEX automation_firings_by_time ON automation_firings (automation, fired_at);

    CREATE TABLE automations (
        automation TEXT PRIMARY KEY,
        paused     INTEGER NOT NULL DEFAULT 0,
        since      TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 4: durable work queues.
    r#"
    -- An item is ready when its status is pending, failed or timed_out, its
    -- available_at has come and it has not expired.
    CREATE TABLE queue_items (
        id               TEXT PRIMARY KEY,
        queue            TEXT NOT NULL,
        payload          TEXT NOT NULL,
        priority         INTEGER NOT NULL,
        idempotency_key  TEXT,
        status           TEXT NOT NULL,
        attempts         INTEGER NOT NULL,
        max_attempts     INTEGER NOT NULL,
        available_at     TEXT NOT NULL,
        expires_at       TEXT,
        lease_token      TEXT,
        lease_expires_at TEXT,
        worker           TEXT,
        result           TEXT,
        error            TEXT,
        created_at       TEXT NOT NULL,
        updated_at       TEXT NOT NULL
    );
    CREATE UNIQUE INDEX queue_items_by_key ON queue_items (queue, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX queue_items_ready ON queue_items (queue, status, priority DESC, available_at, id);
    CREATE INDEX queue_items_by_lease ON queue_items (status, lease_expires_at);
    CREATE INDEX queue_items_by_expiry ON queue_items (status, expires_at);
    "#,
    // 5: API tokens. Only a hash of each secret is kept.
    r#"
    CREATE TABLE tokens (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        hash       BLOB NOT NULL,
        scopes     TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT
    );
    "#,
    // 6: queue indexes that hold only the items they serve, so that a transition
    // touches two of them instead of six: ready items in claim order, live leases,
    // items with a TTL, and (queue, id) for listing, which no transition touches.
    // Counts by status are kept by triggers in the same transaction, so a scrape reads
    // a few rows instead of counting every item ever queued.
    r#"
    DROP INDEX queue_items_ready;
    DROP INDEX queue_items_by_lease;
    DROP INDEX queue_items_by_expiry;
    CREATE INDEX queue_items_ready ON queue_items (queue, priority DESC, available_at, id)
        WHERE status IN ('pending', 'failed', 'timed_out');
    CREATE INDEX queue_items_leased ON queue_items (lease_expires_at)
        WHERE status IN ('claimed', 'running');
    CREATE INDEX queue_items_expiring ON queue_items (expires_at)
        WHERE expires_at IS NOT NULL;
    CREATE INDEX queue_items_by_queue ON queue_items (queue, id);

    CREATE TABLE queue_counts (
        queue  TEXT NOT NULL,
        status TEXT NOT NULL,
        n      INTEGER NOT NULL,
        PRIMARY KEY (queue, status)
    ) WITHOUT ROWID;
    INSERT INTO queue_counts (queue, status, n)
        SELECT queue, status, COUNT(*) FROM queue_items GROUP BY queue, status;
    CREATE TRIGGER queue_counts_insert AFTER INSERT ON queue_items BEGIN
        INSERT INTO queue_counts (queue, status, n) VALUES (NEW.queue, NEW.status, 1)
            ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER queue_counts_update AFTER UPDATE OF status ON queue_items
        WHEN OLD.status <> NEW.status BEGIN
        UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND status = OLD.status;
        INSERT INTO queue_counts (queue, status, n) VALUES (NEW.queue, NEW.status, 1)
            ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER queue_counts_delete AFTER DELETE ON queue_items BEGIN
        UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND status = OLD.status;
    END;
    "#,
    // 7: fewer pages written per session turn. `events_by_topic` served no query (a
    // subscription reads the log by seq and filters in memory) yet cost a B-tree insert
    // at a random place for every event. Messages by status: only the queued and the
    // processing ones are ever looked up by status, and the index of every message
    // ever sent moved each one twice per turn; the partial indexes hold only the few
    // messages in those two states.
    r#"
    DROP INDEX events_by_topic;
    DROP INDEX session_messages_by_status;
    CREATE INDEX session_messages_queued ON session_messages (session_id, seq)
        WHERE status = 'queued';
    CREATE INDEX session_messages_processing ON session_messages (session_id)
        WHERE status = 'processing';
    "#,
    // 8: the log without the unique index on `id`. No query looks an event up by id
    // (ids are ULIDs the runtime makes, unique by construction), yet every
    // event-writing transaction wrote one or two pages of that index. A column
    // constraint's index cannot be dropped, so the table is rebuilt. Its AUTOINCREMENT
    // counter moves over as it was: seqs never go back, even when retention deleted
    // the newest events.
    r#"
    CREATE TABLE events_rebuilt (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        id             TEXT NOT NULL,
        topic          TEXT NOT NULL,
        type           TEXT NOT NULL,
        source         TEXT NOT NULL,
        subject        TEXT,
        time           TEXT NOT NULL,
        correlation_id TEXT,
        data           TEXT NOT NULL
    );
    INSERT INTO events_rebuilt
        SELECT seq, id, topic, type, source, subject, time, correlation_id, data
        FROM events ORDER BY seq;
    DELETE FROM sqlite_sequence WHERE name = 'events_rebuilt';
    UPDATE sqlite_sequence SET name = 'events_rebuilt' WHERE name = 'events';
    DROP TABLE events;
    ALTER TABLE events_rebuilt RENAME TO events;
    "#,
    // 9: named readers' positions in the log: the `seq` up to which a reader (the
    // event automations) has handled every event, so that after a crash it reads on
    // from there instead of from the live end.
    r#"
    CREATE TABLE log_cursors (
        name TEXT PRIMARY KEY,
        seq  INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 10: the ready index's condition as equalities. SQLite tests `status IN` a list
    // of three or more by building a temporary B-tree of the list, and it tests an
    // index's condition on the old and the new row of every update: two B-trees, each
    // with its page cache, allocated and freed per queue transition. Queries name the
    // condition exactly as written here (`READY`), so the planner still reads the
    // index.
    r#"
    DROP INDEX queue_items_ready;
    CREATE INDEX queue_items_ready ON queue_items (queue, priority DESC, available_at, id)
        WHERE status = 'pending' OR status = 'failed' OR status = 'timed_out';
    "#,
    // 11: the counts by status kept by the queue writes themselves (`queues::count`)
    // instead of triggers. A statement that fires a trigger may change several rows,
    // so SQLite copied every page it touched to a statement journal first (5.5% of the
    // writer's time under 64 queue workers), and ran the trigger as a sub-program.
    r#"
    DROP TRIGGER queue_counts_insert;
    DROP TRIGGER queue_counts_update;
    DROP TRIGGER queue_counts_delete;
    "#,
];

/// The schema version after every migration ran.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Bring the database to [`LATEST`], one transaction per migration.
pub fn apply(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found: current,
            known: LATEST,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database at `version`, as an older Switchyard left it.
    fn at_version(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        conn
    }

    #[test]
    fn the_rebuilt_log_keeps_its_events_and_its_seq_counter() {
        let mut conn = at_version(7);
        for n in 1..=5 {
            conn.execute(
                "INSERT INTO events (id, topic, type, source, time, data)
                 VALUES (?1, 't', 'x', 's', '2026-01-01T00:00:00Z', '{}')",
                [format!("id{n}")],
            )
            .unwrap();
        }
        // Retention deleted the newest: the counter (5) is past the largest seq (3).
        conn.execute("DELETE FROM events WHERE seq > 3", [])
            .unwrap();

        apply(&mut conn, Path::new("test.db")).unwrap();

        let ids: Vec<(i64, String)> = conn
            .prepare("SELECT seq, id FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            ids,
            [(1, "id1".into()), (2, "id2".into()), (3, "id3".into())]
        );
        let indexes: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'events'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 0, "the log has no index beside its seq");
        conn.execute(
            "INSERT INTO events (id, topic, type, source, time, data)
             VALUES ('next', 't', 'x', 's', '2026-01-01T00:00:00Z', '{}')",
            [],
        )
        .unwrap();
        assert_eq!(conn.last_insert_rowid(), 6, "seqs never go back");
    }
}
