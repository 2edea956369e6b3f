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
