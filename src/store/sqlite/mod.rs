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
mod firings;
mod kv;
mod migrations;
mod queues;
mod runs;
mod sessions;
mod tokens;
mod writer;

use super::{CommitFeed, StoreBackend, StoreError};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// Statuses are stored as the words users read; a word this build does not know reads
/// as a conversion error naming it.
macro_rules! stored_as_word {
    ($($t:ty),+) => {$(
        impl rusqlite::types::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $t {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    )+};
}

stored_as_word!(
    super::RunStatus,
    super::StepStatus,
    super::ItemStatus,
    super::MessageStatus,
    super::FiringDecision
);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// The SQLite store; cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: writer::Writer,
    /// Where every event goes after its commit, in commit (= seq) order.
    feed: CommitFeed,
    /// Idle read connections; a read takes one (or opens one) and puts it back.
    readers: Mutex<Vec<Connection>>,
    /// One permit per read connection: at most [`READERS`] reads run at once, so every
    /// connection opened is kept, and a burst of reads waits for one rather than
    /// opening (and closing) more.
    read_permits: tokio::sync::Semaphore,
}

/// How often the WAL is checkpointed when it is short.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// How often while it is long: under sustained writes the checkpointer keeps pace.
const CHECKPOINT_BUSY: std::time::Duration = std::time::Duration::from_millis(10);
/// WAL frames (pages) past which the log should start over: 16 MiB of 4 KiB pages.
const WAL_RESTART_FRAMES: i64 = 4096;
/// WAL frames past which the checkpointer warns (once): a passive checkpoint never
/// waits for readers, so a reader that holds an old snapshot lets the log grow.
const WAL_FRAMES_WARN: i64 = 100_000;
/// A WAL that grew past this in a burst is truncated back when it restarts.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Checkpoint the WAL from a thread of its own until the store is dropped. Only passive
/// checkpoints: they copy committed pages without taking the write lock, so the writer
/// never waits on them (a RESTART checkpoint holds that lock while it waits for readers,
/// and made the writer fail with "database is locked"). SQLite's automatic checkpoint,
/// which this replaces, ran inside a commit, with an fsync, and showed up as latency
/// spikes for whoever committed at that moment.
///
/// A checkpoint that runs beside the writer never catches up with it under sustained
/// writes, and a WAL that is never wholly copied back is never restarted: it grew to
/// hundreds of megabytes in seconds, every commit extending the file. So once the log
/// is past [`WAL_RESTART_FRAMES`], this thread copies the bulk and then asks the writer
/// to copy the last frames between two groups (`Writer::request_checkpoint`).
fn spawn_checkpointer(conn: Connection, store: std::sync::Weak<Inner>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            let mut warned = false;
            let mut pause = CHECKPOINT_EVERY;
            loop {
                std::thread::sleep(pause);
                let Some(inner) = store.upgrade() else { return };
                let frames: rusqlite::Result<(i64, i64)> =
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get(1)?, r.get(2)?))
                    });
                pause = CHECKPOINT_EVERY;
                let (log, copied) = match frames {
                    Ok(frames) => frames,
                    Err(e) => {
                        tracing::warn!(error = %e, "store: checkpoint failed; retrying");
                        continue;
                    }
                };
                if log >= WAL_RESTART_FRAMES {
                    pause = CHECKPOINT_BUSY;
                    // Once the bulk is copied; the writer copies the rest.
                    if copied >= log - WAL_RESTART_FRAMES / 4 {
                        inner.writer.request_checkpoint();
                    }
                }
                if log > WAL_FRAMES_WARN && !warned {
                    warned = true;
                    tracing::warn!(
                        frames = log,
                        "store: the WAL keeps growing; a long-lived reader may hold an old snapshot"
                    );
                }
            }
        })?;
    Ok(())
}

/// Read connections, opened on demand and kept. Opening one parses the schema and sets
/// its pragmas; with fewer kept than concurrent reads (16 session turns), opening and
/// closing them took a fifth of the server's CPU.
const READERS: usize = 8;
/// Prepared statements kept per connection; more than the store's distinct statements,
/// so none is parsed twice.
const STATEMENT_CACHE: usize = 64;

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    static CONFIGURED: std::sync::Once = std::sync::Once::new();
    CONFIGURED.call_once(configure_sqlite);
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source: Box::new(source),
    })?;
    // WAL: readers never block the writer. synchronous=NORMAL in WAL mode keeps every
    // committed transaction across a process crash (only an OS crash or power loss can
    // lose the last ones), at a fraction of FULL's syncs; group commit shares them.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Savepoint and sort scratch in memory: on disk it cost a temp file per group.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Process-wide SQLite settings, made before its first connection (afterwards SQLite
/// refuses them, harmlessly: they only cost speed).
///
/// Memory statistics off: SQLite keeps them under one process-wide mutex taken on every
/// allocation, which the writer and the readers then contend for (the writer was seen
/// waiting on it in its savepoint journal's allocations). Switchyard never reads them.
fn configure_sqlite() {
    // SAFETY: sqlite3_config with SQLITE_CONFIG_MEMSTATUS takes one int; it is called
    // once, before this process opens a connection (or it returns SQLITE_MISUSE).
    let rc = unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0) };
    if rc != rusqlite::ffi::SQLITE_OK {
        tracing::debug!(
            rc,
            "SQLite was already initialized; memory statistics stay on"
        );
    }
}

/// Statements through the connection's cache: the store runs the same few statements
/// all the time, and parsing them anew each time was a visible share of the writer's
/// work. Every statement of the store goes through these (or `prepare_cached`).
///
/// A cached statement stays parsed only if rebinding it does not expire it, and SQLite
/// expires a statement whose plan read a bound value: a bare `LIMIT ?n` is one (the
/// planner sizes the loop by it). So limits are written `LIMIT CAST(?n AS INTEGER)`,
/// which the planner does not read; a bare one made the claim query be parsed and
/// planned again on every claim (a tenth of the writer's time).
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
        let last_seq: i64 =
            conn.one("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
        // Checkpoints run on their own thread (below), never inside a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpoints = open_connection(&path)?;
        let writer = writer::Writer::spawn(conn)
            .map_err(|e| StoreError::Commit(format!("cannot start the writer thread: {e}")))?;
        let store = Self {
            inner: Arc::new(Inner {
                path,
                writer,
                feed: CommitFeed::new(last_seq as u64),
                readers: Mutex::new(Vec::new()),
                read_permits: tokio::sync::Semaphore::new(READERS),
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
        F: FnOnce(&Connection, &mut Vec<Arc<crate::event::Event>>) -> Result<T, StoreError>
            + Send
            + 'static,
    {
        self.write_events_undone(writer::Undo::Savepoint, f)
    }

    /// [`SqliteStore::write_events`] for a write that fails only when SQLite does (see
    /// [`writer::Undo::Group`]).
    fn write_events_undone<T, F>(
        &self,
        undo: writer::Undo,
        f: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Arc<crate::event::Event>>) -> Result<T, StoreError>
            + Send
            + 'static,
    {
        let inner = self.inner.clone();
        let committed = self.inner.writer.submit(
            undo,
            move |c| {
                let mut events = Vec::new();
                let value = f(c, &mut events)?;
                Ok((value, events))
            },
            move |(_, events): &(T, Vec<Arc<crate::event::Event>>)| {
                metrics::counter!("switchyard_bus_events_total").increment(events.len() as u64);
                inner.feed.deliver(events);
            },
        );
        async move { Ok(committed.await?.0) }
    }

    /// Run `f` on a read connection, on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self
            .inner
            .read_permits
            .acquire()
            .await
            .expect("the read semaphore is never closed");
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
            // (More than READERS exist only if a cancelled read outlived its permit.)
            let mut idle = inner.readers.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < READERS {
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

    fn flush(&self) -> futures::future::BoxFuture<'static, Result<(), StoreError>> {
        // Writes commit in the order they are queued: an empty one after them commits
        // after them.
        let store = self.clone();
        Box::pin(async move { store.write(|_| Ok(())).await })
    }
}

/// `EXPLAIN QUERY PLAN` of `sql`, its details joined by `; ` (for tests that pin which
/// index a statement reads).
#[cfg(test)]
pub(crate) fn query_plan(c: &Connection, sql: &str, p: impl rusqlite::Params) -> String {
    let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let rows = stmt.query_map(p, |r| r.get::<_, String>(3)).unwrap();
    rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
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

    /// Sustained writes used to grow the WAL without bound: the background checkpoint
    /// never caught up, so the log never started over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_sustained_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let wal = dir.path().join("switchyard.db-wal");
        const WRITTEN: usize = 4 * WAL_SIZE_LIMIT as usize;
        const VALUE: usize = 32 * 1024;
        let mut largest = 0;
        for round in 0..WRITTEN / VALUE / 32 {
            let writes = (0..32).map(|n| {
                store.write(move |c| {
                    let key = format!("k{}", (round * 32 + n) % 512);
                    c.exec(
                        "INSERT OR REPLACE INTO plugin_kv (plugin, key, value, updated_at)
                         VALUES ('p', ?1, randomblob(?2), '')",
                        rusqlite::params![key, VALUE as i64],
                    )?;
                    Ok(())
                })
            });
            for w in futures::future::join_all(writes).await {
                w.unwrap();
            }
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
        // Without the writer finishing checkpoints it holds every byte written.
        assert!(
            largest < WRITTEN as u64 / 2,
            "the WAL reached {largest} bytes after {WRITTEN} bytes of writes"
        );
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

    /// See [`CachedStatements`]: a bare `LIMIT ?n` is parsed again on every run.
    #[test]
    fn no_statement_binds_a_bare_limit() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/sqlite");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.ends_with("mod.rs") {
                continue; // this file: its queries bind no limit, its tests do on purpose
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                if let Some(at) = line.find("LIMIT ?") {
                    panic!(
                        "{}:{}:{}: LIMIT ?n: write LIMIT CAST(?n AS INTEGER)",
                        path.display(),
                        n + 1,
                        at + 1
                    );
                }
            }
        }
    }

    #[test]
    fn a_rebound_limit_does_not_reprepare() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER PRIMARY KEY, b INTEGER)")
            .unwrap();
        let count = |sql: &str| {
            let mut stmt = conn.prepare(sql).unwrap();
            for limit in 1..=5 {
                stmt.query([limit]).unwrap().next().unwrap();
            }
            stmt.get_status(rusqlite::StatementStatus::RePrepare)
        };
        assert_eq!(
            count("SELECT a FROM t ORDER BY b LIMIT ?1"),
            5,
            "SQLite's behaviour changed"
        );
        assert_eq!(
            count("SELECT a FROM t ORDER BY b LIMIT CAST(?1 AS INTEGER)"),
            0
        );
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
