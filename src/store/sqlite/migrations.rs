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
