//! The store's single writer: one thread owns the writing connection and commits the
//! writes queued while the previous commit ran as one transaction — one WAL sync for the
//! whole group (group commit). Under light load a group is one write; under heavy load
//! hundreds share a sync.
//!
//! A failing write rolls back alone and the rest of its group still commits: each write
//! runs inside its own savepoint, except a write that fails only when SQLite does
//! (see [`Undo::Group`]). A write's caller is answered only after the group's
//! COMMIT returned: an `Ok` means the write is on disk.
//!
//! The writer also finishes checkpoints when asked (see `request_checkpoint`): only a
//! checkpoint that runs while nobody writes can copy the whole WAL back into the
//! database, and only then does the next transaction start the WAL over from its
//! beginning instead of appending to an ever longer file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use tokio::sync::oneshot;

use super::{CachedStatements, StoreError};

/// Most writes committed in one transaction.
const MAX_GROUP: usize = 1024;

/// Runs one write inside the group's transaction (or learns why there is none) and
/// returns how to answer its caller once the commit outcome is known, and whether it
/// left changes it could not undo (see [`Undo::Group`]).
type Job = Box<dyn FnOnce(Result<&Connection, &rusqlite::Error>) -> (Reply, bool) + Send>;
type Reply = Box<dyn FnOnce(Result<(), &rusqlite::Error>) + Send>;

/// How a write that fails is undone, so that the rest of its group still commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undo {
    /// Roll back to a savepoint taken before it: any write.
    Savepoint,
    /// No savepoint: the write fails only when SQLite does (it answers a refusal as an
    /// `Ok` value), and SQLite undoes a failed statement by itself, so a write of one
    /// statement fails alone. One that fails after changing rows takes its whole group
    /// down: the group is rolled back and answered with an error, nothing half-done is
    /// committed. The errors that can do that (disk full, I/O) may roll back the whole
    /// transaction in SQLite anyway. Spares the savepoint, which copies every page the
    /// write touches: an event append, ~a tenth of its cost; a queue transition, a
    /// fifth of the writer's CPU.
    Group,
}

/// A handle on the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    stats: Arc<WriterStats>,
}

/// Counters of the writer thread.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Writes committed (or failed) so far.
    pub writes: AtomicU64,
    /// Transactions committed so far; `writes / commits` is the mean group size.
    pub commits: AtomicU64,
    /// Set to have the writer run a checkpoint after its current group.
    checkpoint_due: AtomicBool,
}

impl Writer {
    /// Start the writer thread, which owns `conn` until every handle is dropped.
    pub fn spawn(conn: Connection) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let stats = Arc::new(WriterStats::default());
        let counters = stats.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(conn, queue, &counters))?;
        Ok(Self { jobs, stats })
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Have the writer run a passive checkpoint between two groups, where no write is
    /// in flight, so that it can copy the WAL's last frames and let the next
    /// transaction restart the log. Cheap when a background checkpoint has just copied
    /// the bulk.
    pub fn request_checkpoint(&self) {
        self.stats.checkpoint_due.store(true, Ordering::Relaxed);
    }

    /// Run `f` in the next group; resolves once its group is committed. `then` runs on
    /// the writer thread right after the commit, in commit order — the place to fan out
    /// what was written so that observers see writes in the order they were made.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.write_then(f, |_| {}).await
    }

    /// [`Writer::write`] with a hook run after the commit (see there).
    pub async fn write_then<T, F, H>(&self, f: F, then: H) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        H: FnOnce(&T) + Send + 'static,
    {
        self.submit(Undo::Savepoint, f, then).await
    }

    /// Queue the write now, in call order, and return a future for its outcome. Writes
    /// run and commit in the order they were submitted, so a caller can submit several
    /// and await only the last.
    pub fn submit<T, F, H>(
        &self,
        undo: Undo,
        f: F,
        then: H,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F, H>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        H: FnOnce(&T) + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |tx| {
            let mut half_done = false;
            let result = match tx {
                Ok(tx) => match undo {
                    Undo::Savepoint => in_savepoint(tx, f),
                    Undo::Group => {
                        let before = tx.total_changes();
                        let result = f(tx);
                        half_done = result.is_err() && tx.total_changes() != before;
                        result
                    }
                },
                Err(e) => Err(StoreError::Commit(format!(
                    "cannot begin a transaction: {e}"
                ))),
            };
            let reply: Reply = Box::new(move |committed: Result<(), &rusqlite::Error>| {
                let outcome = match (result, committed) {
                    (Ok(value), Ok(())) => {
                        then(&value);
                        Ok(value)
                    }
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(StoreError::Commit(e.to_string())),
                };
                let _ = answer.send(outcome);
            });
            (reply, half_done)
        });
        let sent = self.jobs.send(job);
        async move {
            sent.map_err(|_| StoreError::WriterStopped)?;
            answered.await.map_err(|_| StoreError::WriterStopped)?
        }
    }
}

/// Run `f` in a savepoint of its own, so that its failure rolls back only its changes.
/// The savepoint statements are cached: they run for every write.
fn in_savepoint<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    c.exec("SAVEPOINT write", [])?;
    match f(c) {
        Ok(value) => {
            c.exec("RELEASE write", [])?;
            Ok(value)
        }
        Err(e) => {
            if let Err(undo) = c
                .exec("ROLLBACK TO write", [])
                .and_then(|_| c.exec("RELEASE write", []))
            {
                tracing::error!(error = %undo, "store: cannot roll back a failed write");
            }
            Err(e)
        }
    }
}

/// How long the writer polls for the next write before it sleeps.
const POLL_BEFORE_SLEEP: Duration = Duration::from_micros(100);

/// The next write, `None` once every handle is gone. Under load the next write comes
/// within microseconds of a commit; a writer asleep by then is woken through the
/// kernel, and that wake-up was the longest wait in a publish's round trip: polling
/// first (yielding the core to any thread that wants it) took durable publishing on
/// a socket from ~87,000 to ~105,000 events/s and session turns up 8%. It costs at
/// most this long of one core per idle spell.
fn next_job(queue: &mpsc::Receiver<Job>) -> Option<Job> {
    let start = Instant::now();
    loop {
        match queue.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if start.elapsed() < POLL_BEFORE_SLEEP => {
                std::thread::yield_now()
            }
            Err(mpsc::TryRecvError::Empty) => return queue.recv().ok(),
        }
    }
}

fn run(conn: Connection, queue: mpsc::Receiver<Job>, stats: &WriterStats) {
    while let Some(first) = next_job(&queue) {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        // BEGIN and COMMIT through the statement cache, like every other statement:
        // `Connection::transaction` parses them anew for every group.
        //
        // IMMEDIATE: the write lock is taken here, where SQLite waits out a moment of
        // contention (busy_timeout). A deferred transaction whose first statement reads
        // takes it at its first write, where SQLite does not wait: a reader that
        // briefly holds it (to read a WAL header a commit is rewriting) failed that
        // write with "database is locked".
        if let Err(e) = conn.exec("BEGIN IMMEDIATE", []) {
            tracing::error!(error = %e, "store: cannot begin a transaction");
            // None of the group ran; each caller learns why.
            for job in group {
                job(Err(&e)).0(Err(&e));
            }
            continue;
        }
        let mut half_done = false;
        let replies: Vec<Reply> = group
            .into_iter()
            .map(|job| {
                let (reply, left) = job(Ok(&conn));
                half_done |= left;
                reply
            })
            .collect();
        let committed = if half_done {
            tracing::error!("store: a one-statement write changed rows, then failed");
            Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("a write of this group failed half-done, so the group was rolled back".into()),
            ))
        } else {
            conn.exec("COMMIT", []).map(|_| ())
        };
        if committed.is_err()
            && !conn.is_autocommit()
            && let Err(e) = conn.exec("ROLLBACK", [])
        {
            tracing::error!(error = %e, "store: cannot roll back a failed commit");
        }
        stats
            .writes
            .fetch_add(replies.len() as u64, Ordering::Relaxed);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = &committed {
            tracing::error!(error = %e, writes = replies.len(), "store: group commit failed");
        }
        for reply in replies {
            reply(committed.as_ref().map(|_| ()));
        }
        // After the replies, so the group's callers do not wait for it.
        if stats.checkpoint_due.swap(false, Ordering::Relaxed)
            && let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            tracing::warn!(error = %e, "store: the writer's checkpoint failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn writer() -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER UNIQUE)",
        )
        .unwrap();
        (Writer::spawn(conn).unwrap(), dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_rolls_back_alone_and_hooks_follow_commit_order() {
        let (w, _dir) = writer();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for n in 0..200i64 {
            let (w, order) = (w.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                w.write_then(
                    move |c| {
                        // Every 10th write inserts twice: the second fails on the key.
                        c.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                        if n % 10 == 0 {
                            c.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                        }
                        Ok(c.last_insert_rowid())
                    },
                    move |rowid| order.lock().unwrap().push(*rowid),
                )
                .await
            }));
        }
        let mut failed = 0;
        for t in tasks {
            if t.await.unwrap().is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 20);
        let count: i64 = w
            .write(
                |c| Ok(c.query_row("SELECT COUNT(*) FROM t WHERE n % 10 = 0", [], |r| r.get(0))?),
            )
            .await
            .unwrap();
        assert_eq!(count, 0, "failed writes left nothing behind");
        let order = order.lock().unwrap();
        assert_eq!(order.len(), 180);
        // The writer runs writes one after another, so ids grow in execution order;
        // hooks saw them in exactly that order.
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(*order, sorted);
    }

    /// Keep the writer busy for a moment, so that the writes submitted next queue up
    /// and share one group.
    async fn hold(w: &Writer) {
        let (started, running) = oneshot::channel();
        drop(w.submit(
            Undo::Savepoint,
            move |_| {
                let _ = started.send(());
                std::thread::sleep(std::time::Duration::from_millis(100));
                Ok(())
            },
            |_| {},
        ));
        running.await.unwrap();
    }

    /// A write without a savepoint: of one statement, failing, it still rolls back
    /// alone; failing after changing rows, it takes its group down with it rather than
    /// commit half of it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_without_savepoint_fail_alone_or_roll_their_group_back() {
        let (w, _dir) = writer();
        let insert = |n: i64| {
            w.submit(
                Undo::Group,
                move |c| Ok(c.execute("INSERT INTO t (n) VALUES (?1)", [n])?),
                |_| {},
            )
        };
        let rows = || {
            w.write(|c| {
                let mut s = c.prepare("SELECT n FROM t ORDER BY n")?;
                let rows = s.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<Vec<i64>, _>>()?)
            })
        };

        hold(&w).await;
        let (a, dup, b) = (insert(1), insert(1), insert(2));
        assert_eq!(a.await.unwrap(), 1);
        assert!(dup.await.is_err(), "the duplicate key fails");
        assert_eq!(b.await.unwrap(), 1, "the rest of the group commits");
        assert_eq!(rows().await.unwrap(), [1, 2]);

        hold(&w).await;
        let fine = insert(3);
        let half_done = w.submit(
            Undo::Group,
            |c| {
                c.execute("INSERT INTO t (n) VALUES (4)", [])?;
                Ok(c.execute("INSERT INTO t (n) VALUES (1)", [])?)
            },
            |_| {},
        );
        let after = insert(5);
        assert!(half_done.await.is_err());
        let (fine, after) = (fine.await.unwrap_err(), after.await.unwrap_err());
        assert!(fine.to_string().contains("half-done"), "{fine}");
        assert!(after.to_string().contains("half-done"), "{after}");
        assert_eq!(
            rows().await.unwrap(),
            [1, 2],
            "nothing of that group is left"
        );
    }

    /// Another connection holding the write lock for a moment (SQLite's readers take
    /// it briefly when they race a commit rewriting the WAL header) delays a write that
    /// reads before it writes; it does not fail it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_reads_first_waits_out_a_held_write_lock() {
        let (w, dir) = writer();
        let other = Connection::open(dir.path().join("t.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let write = w.write(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?;
            Ok(c.execute("INSERT INTO t (n) VALUES (?1)", [n + 100])?)
        });
        let release = tokio::task::spawn_blocking(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            other.execute_batch("COMMIT").unwrap();
        });
        assert_eq!(write.await.unwrap(), 1);
        release.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits() {
        let (w, dir) = writer();
        let mut tasks = Vec::new();
        for n in 0..2000i64 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                w.write(move |c| Ok(c.execute("INSERT INTO t (n) VALUES (?1)", [n])?))
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let reader = Connection::open(dir.path().join("t.db")).unwrap();
        let count: i64 = reader
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 2000);
        let (writes, commits) = (
            w.stats().writes.load(Ordering::Relaxed),
            w.stats().commits.load(Ordering::Relaxed),
        );
        assert_eq!(writes, 2000);
        // 2,000 writers racing: they queue while a commit runs and share the next one.
        assert!(commits < writes, "{commits} commits for {writes} writes");
    }
}
