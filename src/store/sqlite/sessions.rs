//! Sessions and their messages (`sessions`, `session_messages`).
//!
//! A session's user messages are its durable queue: `queued` until a turn takes one
//! (`processing`), then `done`, `aborted`, `failed`, `interrupted` (the process died
//! during the turn) or `canceled` (dropped by a reset). Assistant messages are written
//! when their turn ends. History is every `done` user message and assistant message, in
//! order.

use std::sync::{Arc, LazyLock};

use futures::future::BoxFuture;

use rusqlite::{OptionalExtension, params};

use super::events::{insert_events, record_event};
use super::writer::Undo;
use super::{CachedStatements, SqliteStore};
use crate::event::{Event, NewEvent};
use crate::store::{
    AnnounceFinished, AnnounceInterrupted, AnnounceQueued, AnnounceSession, AnnounceTaken,
    EnqueueOutcome, Enqueued, FinishedTurn, MessageRecord, MessageStatus, QueueCounts,
    SessionRecord, SessionStore, StartTurn, StoreError, TurnResult,
};

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRecord> {
    let config: String = r.get(3)?;
    Ok(SessionRecord {
        id: r.get(0)?,
        key: r.get(1)?,
        adapter: r.get(2)?,
        config: serde_json::from_str(&config).unwrap_or(serde_json::Value::Null),
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
        system: r.get(6)?,
    })
}

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRecord> {
    message_row_at(r, 0)
}

/// A message from the [`MESSAGE_COLUMNS`] starting at column `at`.
fn message_row_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<MessageRecord> {
    Ok(MessageRecord {
        seq: r.get::<_, i64>(at)? as u64,
        id: r.get(at + 1)?,
        role: r.get(at + 2)?,
        text: r.get(at + 3)?,
        status: r.get(at + 4)?,
        created_at: r.get(at + 5)?,
        finished_at: r.get(at + 6)?,
        error: r.get(at + 7)?,
    })
}

const SESSION_COLUMNS: &str = "id, key, adapter, config, created_at, updated_at, system";
const MESSAGE_COLUMNS: &str = "seq, id, role, text, status, created_at, finished_at, error";

// The statements that look messages up by status read the partial indexes of queued
// and processing messages (migration 7), never the history; `reads_by_status_use_*`
// checks their plans.

/// A session's queued and processing messages.
const SESSION_COUNTS: &str =
    "SELECT (SELECT COUNT(*) FROM session_messages WHERE session_id = ?1 AND status = 'queued'),
            (SELECT COUNT(*) FROM session_messages WHERE session_id = ?1 AND status = 'processing')";

/// Every session's queued and processing messages.
const ALL_COUNTS: &str = "SELECT (SELECT COUNT(*) FROM session_messages WHERE status = 'queued'),
        (SELECT COUNT(*) FROM session_messages WHERE status = 'processing')";

/// A session's oldest queued message (the statement text is built once: it is looked
/// up in the statement cache for every turn).
static NEXT_QUEUED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM session_messages
         WHERE session_id = ?1 AND status = 'queued' ORDER BY seq LIMIT 1"
    )
});

/// The writes of a turn (create, enqueue, take, finish) take no savepoint
/// (`Undo::Group`): each fails only when SQLite does; a full queue or a message gone is
/// an `Ok` answer.
#[async_trait::async_trait]
impl SessionStore for SqliteStore {
    /// Create a session, with the event `announce` makes of it; `Ok(None)` if the key
    /// is taken.
    async fn create_session(
        &self,
        record: SessionRecord,
        announce: AnnounceSession,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.write_events_undone(Undo::Group, move |c, events| {
            let inserted = c.exec(
                "INSERT INTO sessions (id, key, adapter, config, created_at, updated_at, system)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (key) DO NOTHING",
                params![
                    record.id,
                    record.key,
                    record.adapter,
                    record.config.to_string(),
                    record.created_at,
                    record.updated_at,
                    record.system
                ],
            )?;
            if inserted == 0 {
                return Ok(None);
            }
            record_event(c, announce(&record), events)?;
            Ok(Some(record))
        })
        .await
    }

    async fn session_by_key(&self, key: &str) -> Result<Option<SessionRecord>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            Ok(c.one(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE key = ?1"),
                [key],
                session_row,
            )
            .optional()?)
        })
        .await
    }

    /// Sessions ordered by key, after `after` (exclusive), at most `limit`.
    async fn list_sessions(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE key > ?1 ORDER BY key LIMIT CAST(?2 AS INTEGER)"
            ))?;
            let rows = stmt.query_map(
                params![after.unwrap_or_default(), limit as i64],
                session_row,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |c| Ok(c.exec("DELETE FROM sessions WHERE id = ?1", [id])? == 1))
            .await
    }

    /// Append a user message to the queue if it holds fewer than `max_queued`; returns
    /// the message and its 1-based place among queued messages, or why it was not.
    /// The event `announce` makes of the message is written in the same transaction.
    /// A message for an idle session (nothing queued or processing) is taken at once:
    /// the worker is handed it without a write of its own.
    async fn enqueue_message(
        &self,
        session_id: &str,
        text: String,
        max_queued: usize,
        announce: AnnounceQueued,
        announce_taken: AnnounceTaken,
        start: StartTurn,
    ) -> Result<EnqueueOutcome, StoreError> {
        let session_id = session_id.to_owned();
        self.write_events_undone(Undo::Group, move |c, events| {
            let counts = c.one(SESSION_COUNTS, [&session_id], counts_row)?;
            if counts.queued as usize >= max_queued {
                return Ok(EnqueueOutcome::Full);
            }
            let taken = counts.queued == 0 && counts.processing == 0;
            let status = if taken {
                MessageStatus::Processing
            } else {
                MessageStatus::Queued
            };
            let id = ulid::Ulid::new().to_string();
            let now = crate::time::now_rfc3339();
            // A user message opens its own turn: turn = its seq (the next rowid).
            let inserted = c.exec(
                "INSERT INTO session_messages (turn, id, session_id, role, text, status, created_at)
                 VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM session_messages), ?1, ?2, 'user', ?3, ?4, ?5)",
                params![id, session_id, text, status, now],
            );
            // The foreign key finds the session gone, at no cost to every other message.
            match inserted {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
                {
                    return Ok(EnqueueOutcome::NoSession(text));
                }
                other => other?,
            };
            c.exec(
                "UPDATE sessions SET updated_at = ?1 WHERE id = ?2",
                params![now, session_id],
            )?;
            let mut message = MessageRecord {
                seq: c.last_insert_rowid() as u64,
                id,
                role: "user".into(),
                text,
                status: MessageStatus::Queued,
                created_at: now,
                finished_at: None,
                error: None,
            };
            let position = counts.queued + 1;
            record_event(c, announce(&message, position), events)?;
            if taken {
                message.status = status;
                record_event(c, announce_taken(&message), events)?;
                // Last, once nothing of this write can fail: the turn runs while the
                // group commits.
                start(&message);
            }
            Ok(EnqueueOutcome::Queued(Enqueued {
                message,
                position,
                taken,
            }))
        })
        .await
    }

    /// Take the oldest queued message of a session: mark it `processing`, record the
    /// event `announce` makes of it, and return it with the history before it.
    async fn take_next_message(
        &self,
        session_id: &str,
        announce: AnnounceTaken,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let session_id = session_id.to_owned();
        self.write_events_undone(Undo::Group, move |c, events| {
            let next = c.one(&NEXT_QUEUED, [&session_id], message_row).optional()?;
            let Some(mut next) = next else {
                return Ok(None);
            };
            c.exec(
                "UPDATE session_messages SET status = 'processing' WHERE id = ?1",
                [&next.id],
            )?;
            next.status = MessageStatus::Processing;
            record_event(c, announce(&next), events)?;
            Ok(Some(next))
        })
        .await
    }

    async fn history_before(
        &self,
        session_id: &str,
        seq: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let session_id = session_id.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM (SELECT * FROM session_messages
                 WHERE session_id = ?1 AND turn < ?2 AND status = 'done'
                 ORDER BY turn DESC, seq DESC LIMIT CAST(?3 AS INTEGER)) ORDER BY turn, seq"
            ))?;
            let rows =
                stmt.query_map(params![session_id, seq as i64, limit as i64], message_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Finish a turn: set the user message's final status and, if there is a reply,
    /// append the assistant message; the event `announce` makes of the reply is written
    /// in the same transaction. Returns the assistant message. Nothing is written (and
    /// no event) if the message is gone: its session was reset or deleted meanwhile.
    async fn finish_turn(
        &self,
        session_id: &str,
        message_id: &str,
        status: MessageStatus,
        reply: Option<String>,
        error: Option<String>,
        announce: AnnounceFinished,
    ) -> Result<Option<FinishedTurn>, StoreError> {
        let (session_id, message_id) = (session_id.to_owned(), message_id.to_owned());
        self.write_events_undone(Undo::Group, move |c, events| {
            let now = crate::time::now_rfc3339();
            // One lookup of the message, not a SELECT of its turn and then an UPDATE.
            let turn: Option<i64> = c
                .one(
                    "UPDATE session_messages SET status = ?1, finished_at = ?2, error = ?3 WHERE id = ?4
                     RETURNING turn",
                    params![status, now, error, message_id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(turn) = turn else { return Ok(None) };
            c.exec("UPDATE sessions SET updated_at = ?1 WHERE id = ?2", params![now, session_id])?;
            let reply = match reply {
                None => None,
                Some(text) => {
                    let id = ulid::Ulid::new().to_string();
                    c.exec(
                        "INSERT INTO session_messages (turn, id, session_id, role, text, status, created_at, finished_at)
                         VALUES (?1, ?2, ?3, 'assistant', ?4, 'done', ?5, ?5)",
                        params![turn, id, session_id, text, now],
                    )?;
                    Some(MessageRecord {
                        seq: c.last_insert_rowid() as u64,
                        id,
                        role: "assistant".into(),
                        text,
                        status: MessageStatus::Done,
                        created_at: now.clone(),
                        finished_at: Some(now),
                        error: None,
                    })
                }
            };
            record_event(c, announce(reply.as_ref()), events)?;
            Ok(Some(FinishedTurn { reply }))
        })
        .await
    }

    fn append_turn_events(
        &self,
        message_id: &str,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'static, Result<Vec<Arc<Event>>, StoreError>> {
        let message_id = message_id.to_owned();
        Box::pin(self.write_events(move |c, out| {
            let running = c
                .one(
                    "SELECT 1 FROM session_messages WHERE id = ?1 AND status = 'processing'",
                    [&message_id],
                    |_| Ok(()),
                )
                .optional()?;
            if running.is_none() {
                return Ok(Vec::new());
            }
            insert_events(c, events, out)
        }))
    }

    /// Messages that were `processing` when the process stopped: mark them
    /// `interrupted`, each with the event `announce(session_id, message)` in the same
    /// transaction. Returns how many.
    async fn interrupt_unfinished_turns(
        &self,
        announce: AnnounceInterrupted,
    ) -> Result<usize, StoreError> {
        self.write_events(move |c, events| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT session_id, {MESSAGE_COLUMNS} FROM session_messages WHERE status = 'processing'"
            ))?;
            let rows: Vec<(String, MessageRecord)> = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, message_row_at(r, 1)?)))?
                .collect::<Result<_, _>>()?;
            let now = crate::time::now_rfc3339();
            let reason = "the server stopped during this turn";
            for (session_id, mut message) in rows.iter().cloned() {
                c.exec(
                    "UPDATE session_messages SET status = 'interrupted', finished_at = ?1, error = ?2 WHERE id = ?3",
                    params![now, reason, message.id],
                )?;
                message.status = MessageStatus::Interrupted;
                message.finished_at = Some(now.clone());
                message.error = Some(reason.into());
                record_event(c, announce(&session_id, &message), events)?;
            }
            Ok(rows.len())
        })
        .await
    }

    /// Keys of sessions with queued messages (to resume their queues at start).
    async fn sessions_with_queued_messages(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT DISTINCT s.key FROM session_messages m JOIN sessions s ON s.id = m.session_id
                 WHERE m.status = 'queued' ORDER BY s.key",
            )?;
            let keys = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            Ok(keys)
        })
        .await
    }

    /// First step of a reset: drop the queued messages, so no new turn starts. Returns
    /// how many were dropped and the highest message seq at this point.
    async fn drop_queue(&self, session_id: &str) -> Result<(u64, u64), StoreError> {
        let session_id = session_id.to_owned();
        self.write(move |c| {
            let dropped = c.exec(
                "DELETE FROM session_messages WHERE session_id = ?1 AND status = 'queued'",
                [&session_id],
            )?;
            let max: i64 = c.one(
                "SELECT COALESCE(MAX(seq), 0) FROM session_messages",
                [],
                |r| r.get(0),
            )?;
            Ok((dropped as u64, max as u64))
        })
        .await
    }

    /// Last step of a reset: forget the session's messages up to `through_seq` and the
    /// replies to them (messages queued after the reset began stay).
    async fn clear_history(&self, session_id: &str, through_seq: u64) -> Result<(), StoreError> {
        let session_id = session_id.to_owned();
        self.write(move |c| {
            c.exec(
                "DELETE FROM session_messages WHERE session_id = ?1 AND turn <= ?2",
                params![session_id, through_seq as i64],
            )?;
            Ok(())
        })
        .await
    }

    /// The last `limit` messages of a session (all statuses), oldest first.
    async fn session_messages(
        &self,
        session_id: &str,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let session_id = session_id.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM (SELECT * FROM session_messages WHERE session_id = ?1
                 ORDER BY turn DESC, seq DESC LIMIT CAST(?2 AS INTEGER)) ORDER BY turn, seq"
            ))?;
            let rows = stmt.query_map(params![session_id, limit as i64], message_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// How the turn of user message `message_id` ended, with its reply.
    async fn turn_result(&self, message_id: &str) -> Result<Option<TurnResult>, StoreError> {
        let message_id = message_id.to_owned();
        self.read(move |c| {
            Ok(c.one(
                "SELECT m.status, m.error, (SELECT r.text FROM session_messages r
                     WHERE r.session_id = m.session_id AND r.turn = m.turn AND r.role = 'assistant')
                 FROM session_messages m WHERE m.id = ?1 AND m.role = 'user'",
                [message_id],
                |r| {
                    Ok(TurnResult {
                        status: r.get(0)?,
                        error: r.get(1)?,
                        reply: r.get(2)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn queue_counts(&self, session_id: &str) -> Result<QueueCounts, StoreError> {
        let session_id = session_id.to_owned();
        self.read(move |c| Ok(c.one(SESSION_COUNTS, [session_id], counts_row)?))
            .await
    }

    async fn message_counts(&self) -> Result<QueueCounts, StoreError> {
        self.read(|c| Ok(c.one(ALL_COUNTS, [], counts_row)?)).await
    }
}

/// `(queued, processing)` as counts.
fn counts_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueueCounts> {
    Ok(QueueCounts {
        queued: r.get::<_, i64>(0)? as u64,
        processing: r.get::<_, i64>(1)? as u64,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rusqlite::Connection;

    use super::super::query_plan;
    use super::{ALL_COUNTS, NEXT_QUEUED, SESSION_COUNTS};
    use crate::event::NewEvent;
    use crate::store::{EnqueueOutcome, Enqueued, MessageStatus, SessionRecord, Store};

    /// Every lookup by status reads a partial index of the few queued or processing
    /// messages, never the whole history (nor sorts it).
    #[test]
    fn reads_by_status_use_the_partial_indexes() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join("switchyard.db")).unwrap();
        let plan = query_plan(&c, &NEXT_QUEUED, ["s"]);
        assert!(plan.contains("session_messages_queued"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        for plan in [
            query_plan(&c, SESSION_COUNTS, ["s"]),
            query_plan(&c, ALL_COUNTS, []),
        ] {
            assert!(plan.contains("session_messages_queued"), "{plan}");
            assert!(plan.contains("session_messages_processing"), "{plan}");
        }
        let recover = query_plan(
            &c,
            "SELECT seq FROM session_messages WHERE status = 'processing'",
            [],
        );
        assert!(recover.contains("session_messages_processing"), "{recover}");
    }

    /// A turn's streamed events are stored only while its message is `processing`:
    /// the message taken at enqueue is handed over before its write commits, and
    /// nothing of a turn whose message is not there (never committed, finished, or
    /// gone) is kept.
    #[tokio::test]
    async fn turn_events_are_stored_only_while_their_message_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let event = |what: &str| NewEvent {
            topic: format!("session.s1.{what}"),
            event_type: format!("test.{what}"),
            source: "test".into(),
            subject: None,
            correlation_id: None,
            data: serde_json::json!({}).into(),
        };
        let record = SessionRecord {
            id: "s1".into(),
            key: "k1".into(),
            adapter: "echo-agent".into(),
            config: serde_json::json!({}),
            created_at: String::new(),
            updated_at: String::new(),
            system: None,
        };
        store
            .create_session(record, Box::new(move |_| event("created")))
            .await
            .unwrap()
            .unwrap();
        let handed = Arc::new(std::sync::Mutex::new(None));
        let started = handed.clone();
        let outcome = store
            .enqueue_message(
                "s1",
                "hello".into(),
                8,
                Box::new(move |_, _| event("queued")),
                Box::new(move |_| event("started")),
                Box::new(move |m| *started.lock().unwrap() = Some(m.clone())),
            )
            .await
            .unwrap();
        let EnqueueOutcome::Queued(Enqueued { message, taken, .. }) = outcome else {
            panic!("{outcome:?}");
        };
        assert!(taken);
        assert_eq!(handed.lock().unwrap().as_ref(), Some(&message));

        let stored = store
            .append_turn_events(&message.id, vec![event("delta")])
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);
        let nowhere = store
            .append_turn_events("no-such-message", vec![event("delta")])
            .await
            .unwrap();
        assert!(nowhere.is_empty());

        let finished = store
            .finish_turn(
                "s1",
                &message.id,
                MessageStatus::Done,
                Some("hi".into()),
                None,
                Box::new(move |_| event("finished")),
            )
            .await
            .unwrap()
            .expect("the message is there");
        assert_eq!(finished.reply.unwrap().text, "hi");
        let late = store
            .append_turn_events(&message.id, vec![event("delta")])
            .await
            .unwrap();
        assert!(late.is_empty(), "the turn is over");
        let gone = store
            .finish_turn(
                "s1",
                "no-such-message",
                MessageStatus::Done,
                None,
                None,
                Box::new(move |_| event("finished")),
            )
            .await
            .unwrap();
        assert!(gone.is_none());
    }
}
