//! The SQLite backend: Switchyard's durable state in one database file (WAL mode).
//!
//! Every part that persists something goes through the typed methods here (plugin
//! key-value data, the bus log), never through SQL of its own. Methods are async and
//! run SQLite on tokio's blocking pool, so a slow disk never stalls the runtime's
//! worker threads.
//!
//! Invariant: one thread writes ([`writer`], committing in groups); readers use their
//! own connections, and WAL lets them see the last committed state without ever
//! waiting on the writer.

mod events;
mod kv;
mod migrations;
mod queues;
mod runs;
mod sessions;
mod tokens;
mod writer;

use super::{StoreBackend, StoreError};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// The SQLite store; cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: writer::Writer,
    /// Every event committed to the log, in commit (= seq) order.
    committed: tokio::sync::broadcast::Sender<crate::bus::Event>,
    /// Idle read connections; a read takes one (or opens one) and puts it back.
    readers: Mutex<Vec<Connection>>,
}

/// How often the WAL is checkpointed into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// WAL frames past which the checkpointer warns (once): a passive checkpoint never
/// waits for readers, so a reader that holds an old snapshot lets the log grow.
const WAL_FRAMES_WARN: i64 = 100_000;

/// Checkpoint the WAL from a thread of its own until the store is dropped. Only passive
/// checkpoints: they copy committed pages without taking the write lock, so the writer
/// never waits on them (a RESTART checkpoint holds that lock while it waits for readers,
/// and made the writer fail with "database is locked"). The automatic checkpoint this
/// replaces ran inside a commit, with an fsync, and showed up as latency spikes for
/// whoever committed at that moment.
fn spawn_checkpointer(conn: Connection, store: std::sync::Weak<Inner>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            let mut warned = false;
            while store.upgrade().is_some() {
                std::thread::sleep(CHECKPOINT_EVERY);
                let frames: rusqlite::Result<i64> =
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1));
                match frames {
                    Ok(n) if n > WAL_FRAMES_WARN && !warned => {
                        warned = true;
                        tracing::warn!(frames = n, "store: the WAL keeps growing; a long-lived reader may hold an old snapshot");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "store: checkpoint failed; retrying"),
                }
            }
        })?;
    Ok(())
}

/// Read connections kept open between reads.
const IDLE_READERS: usize = 4;
/// Prepared statements kept per connection; more than the store's distinct statements,
/// so none is parsed twice.
const STATEMENT_CACHE: usize = 64;
/// Committed events buffered for live subscribers; one that falls further behind
/// catches up from the log.
const LIVE_EVENTS: usize = 4096;

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    // WAL: readers never block the writer. synchronous=NORMAL in WAL mode keeps every
    // committed transaction across a process crash (only an OS crash or power loss can
    // lose the last ones), at a fraction of FULL's syncs; group commit shares them.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Statements through the connection's cache: the store runs the same few statements
/// all the time, and parsing them anew each time was a visible share of the writer's
/// work. Every statement of the store goes through these (or `prepare_cached`).
pub(crate) trait CachedStatements {
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize>;
    fn one<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl CachedStatements for Connection {
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn one<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, row)
    }
}

impl SqliteStore {
    /// Open (creating if needed) `switchyard.db` in `data_dir` and apply pending migrations.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, crate::store::Durability::default())
    }

    /// [`SqliteStore::open`] with the given durability (it only concerns the writer).
    pub fn open_with(
        data_dir: &Path,
        durability: crate::store::Durability,
    ) -> Result<Self, StoreError> {
        let path = data_dir.join("switchyard.db");
        let mut conn = open_connection(&path)?;
        if durability == crate::store::Durability::Full {
            conn.pragma_update(None, "synchronous", "FULL")?;
        }
        migrations::apply(&mut conn, &path)?;
        // Checkpoints run on their own thread (below), never inside a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpoints = open_connection(&path)?;
        let writer = writer::Writer::spawn(conn)
            .map_err(|e| StoreError::Commit(format!("cannot start the writer thread: {e}")))?;
        let store = Self {
            inner: Arc::new(Inner {
                path,
                writer,
                committed: tokio::sync::broadcast::channel(LIVE_EVENTS).0,
                readers: Mutex::new(Vec::new()),
            }),
        };
        spawn_checkpointer(checkpoints, Arc::downgrade(&store.inner))
            .map_err(|e| StoreError::Commit(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Run `f` in the writer's next group commit; resolves once it is on disk.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.writer.write(f).await
    }

    /// Like [`Store::write`], for writes that record events: `f` pushes the events it
    /// inserted (`events::record_event`) to its list, and they are fanned out to live
    /// subscribers right after the commit, from the writer, in commit order. A state
    /// change and the event announcing it are one transaction: neither exists without
    /// the other. The write is queued when this is called (see `Writer::submit`).
    fn write_events<T, F>(
        &self,
        f: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<crate::bus::Event>) -> Result<T, StoreError>
            + Send
            + 'static,
    {
        let live = self.inner.committed.clone();
        let committed = self.inner.writer.submit(
            move |c| {
                let mut events = Vec::new();
                let value = f(c, &mut events)?;
                Ok((value, events))
            },
            move |(_, events): &(T, Vec<crate::bus::Event>)| {
                metrics::counter!("switchyard_bus_events_total").increment(events.len() as u64);
                for e in events {
                    // No live subscriber is not an error: the log has it.
                    let _ = live.send(e.clone());
                }
            },
        );
        async move { Ok(committed.await?.0) }
    }

    fn subscribe_committed(&self) -> tokio::sync::broadcast::Receiver<crate::bus::Event> {
        self.inner.committed.subscribe()
    }

    /// Run `f` on a read connection, on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let idle = inner
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            let conn = match idle {
                Some(c) => c,
                None => open_connection(&inner.path)?,
            };
            let result = f(&conn);
            let mut idle = inner.readers.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
            result
        })
        .await?
    }
}

impl StoreBackend for SqliteStore {
    fn commit_stats(&self) -> (u64, u64) {
        let stats = self.inner.writer.stats();
        (
            stats.writes.load(std::sync::atomic::Ordering::Relaxed),
            stats.commits.load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_twice_and_keeps_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mode: String = store
            .read(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        drop(store);
        let again = SqliteStore::open(dir.path()).unwrap();
        let version: i64 = again
            .read(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(version, migrations::LATEST);
    }

    #[tokio::test]
    async fn full_durability_syncs_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_with(dir.path(), crate::store::Durability::Full).unwrap();
        let level: i64 = store
            .write(|c| Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(level, 2, "FULL");
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("switchyard.db")).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        drop(conn);
        let err = SqliteStore::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("schema version 999"), "{err}");
    }
}
