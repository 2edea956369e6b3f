//! Sessions: conversations with agent adapters, one turn at a time, over a durable
//! queue of messages.
//!
//! Each session with work has a worker task (in memory) that takes its queued messages
//! in order (FIFO) from the store, runs a turn on the session's adapter plugin and
//! publishes what happens on the bus as `session.<id>.<what>`. A worker with nothing to
//! do for `idle_timeout` leaves memory; the session stays on disk and the next message
//! brings a worker back.
//!
//! Invariants:
//! - The queue is the store: a message is accepted only once written (its turn may
//!   start while it is written: every write of the turn checks that the message is
//!   there, and a turn whose message failed to commit is stopped), and a restart
//!   resumes every queue; a turn cut off by a crash is marked `interrupted` (with an
//!   event) and its queue moves on.
//! - One turn at a time per session; different sessions run in parallel.

mod active;
mod events;
mod history;
mod turn;
mod workers;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Mutex, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::Bus;
use crate::plugins::PluginHost;
use crate::store::{
    EnqueueOutcome, Enqueued, MessageRecord, SessionRecord, Store, StoreError, TurnResult,
};

use active::{Active, Pinned};
pub use events::{SessionEvent, TurnData, lenient_text};
use workers::{Workers, turn_started};

/// Limits and defaults of the sessions part: `[sessions]` in `switchyard.toml`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Adapter for sessions created without one.
    pub default_adapter: String,
    /// Queued messages a session holds before refusing more (`429`).
    pub max_queue: usize,
    /// Messages of history handed to a turn.
    pub history_limit: usize,
    /// A worker with nothing to do leaves memory after this long (`idle_timeout_secs`);
    /// the session stays on disk.
    #[serde(rename = "idle_timeout_secs", with = "crate::time::secs")]
    pub idle_timeout: Duration,
    /// After an abort, how long the adapter has to stop by itself before the turn is
    /// cut off (`abort_grace_secs`).
    #[serde(rename = "abort_grace_secs", with = "crate::time::secs")]
    pub abort_grace: Duration,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            default_adapter: "echo-agent".into(),
            max_queue: 64,
            history_limit: 200,
            idle_timeout: Duration::from_secs(60),
            abort_grace: Duration::from_secs(2),
        }
    }
}

/// Why a session operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no session with key `{0}`")]
    NotFound(String),
    #[error("a session with key `{0}` already exists")]
    Exists(String),
    #[error("session `{key}` already has {max} queued messages; wait for some to be processed")]
    QueueFull { key: String, max: usize },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A session as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionSnapshot {
    pub key: String,
    pub id: String,
    pub adapter: String,
    pub config: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub queue_depth: u64,
    pub processing: bool,
    /// The message being processed, if any.
    pub current_message: Option<String>,
    pub last_message_preview: Option<String>,
    /// Is a worker for it in memory now?
    pub in_memory: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// What a new session is made of; every field has a default.
#[derive(Debug, Clone, Default)]
pub struct NewSession {
    pub key: Option<String>,
    pub adapter: Option<String>,
    pub config: Option<Value>,
    pub system: Option<String>,
}

/// How a turn ended, as [`Sessions::wait_turn`] reports it.
#[derive(Debug, Clone)]
pub struct TurnEnded {
    pub message_id: String,
    pub result: TurnResult,
}

/// Where steering text went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SteerOutcome {
    /// Handed to the running turn.
    Steered,
    /// No turn could take it: queued as a follow-up message.
    Queued,
}

/// The sessions service; cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    bus: Bus,
    plugins: Arc<PluginHost>,
    config: SessionsConfig,
    /// Sessions with a worker, by session id and by key.
    active: Mutex<Workers>,
    workers: TaskTracker,
    /// Cancelled at shutdown: workers take no more messages (they stay queued on disk)
    /// and leave once their turn in flight is over.
    stopping: CancellationToken,
    /// Every turn's end, for [`Sessions::wait_turn`].
    ended: broadcast::Sender<Arc<TurnEnded>>,
}

/// A message offered to a session.
#[derive(Debug)]
pub enum Offered {
    /// Queued (or taken at once), at this 1-based place.
    Queued(MessageRecord, u64),
    /// The session is gone (deleted); the text is handed back.
    Gone(String),
}

impl Sessions {
    pub fn new(store: Store, bus: Bus, plugins: Arc<PluginHost>, config: SessionsConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                bus,
                plugins,
                config,
                active: Mutex::new(Workers::default()),
                workers: TaskTracker::new(),
                stopping: CancellationToken::new(),
                ended: broadcast::channel(1024).0,
            }),
        }
    }

    pub fn config(&self) -> &SessionsConfig {
        &self.inner.config
    }

    /// After a restart: mark turns cut off by the crash as interrupted (with an event)
    /// and start workers for every session with queued messages.
    pub async fn recover(&self) -> Result<(), SessionError> {
        let interrupted = self
            .inner
            .store
            .interrupt_unfinished_turns(Box::new(|session_id: &str, message: &MessageRecord| {
                SessionEvent::TurnInterrupted.event(
                    session_id,
                    None,
                    json!({ "message_id": message.id, "reason": message.error }),
                )
            }))
            .await?;
        if interrupted > 0 {
            tracing::warn!(
                turns = interrupted,
                "turns cut off by the last stop are marked interrupted"
            );
        }
        for key in self.inner.store.sessions_with_queued_messages().await? {
            if let Some(record) = self.inner.store.session_by_key(&key).await? {
                let worker = self.pin_worker(record).await;
                worker.0.queued.store(true, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// Create a session. `key` defaults to a new ULID, `adapter` to the default.
    pub async fn create(&self, new: NewSession) -> Result<SessionRecord, SessionError> {
        let NewSession {
            key,
            adapter,
            config,
            system,
        } = new;
        let key = key.unwrap_or_else(|| ulid::Ulid::new().to_string().to_lowercase());
        validate_key(&key)?;
        let adapter = adapter.unwrap_or_else(|| self.inner.config.default_adapter.clone());
        let config = config.unwrap_or_else(|| json!({}));
        if !config.is_object() {
            return Err(SessionError::Invalid {
                field: "config",
                message: "must be a JSON object".into(),
            });
        }
        if let Err(e) = self
            .inner
            .plugins
            .active(&adapter, crate::plugins::PluginKind::AgentAdapter)
        {
            return Err(SessionError::Invalid {
                field: "adapter",
                message: e.to_string(),
            });
        }
        let now = crate::time::now_rfc3339();
        let record = SessionRecord {
            id: ulid::Ulid::new().to_string(),
            key: key.clone(),
            adapter,
            config,
            created_at: now.clone(),
            updated_at: now,
            system,
        };
        let created = self
            .inner
            .store
            .create_session(
                record,
                Box::new(|r: &SessionRecord| {
                    SessionEvent::Created.event(
                        &r.id,
                        Some(&r.key),
                        json!({ "adapter": r.adapter }),
                    )
                }),
            )
            .await?
            .ok_or(SessionError::Exists(key))?;
        // Whatever the key named here was deleted (the store took the key again); the
        // store says what it names now.
        (self.inner.active.lock().await).forget_key(&created.key, |named| named != created.id);
        Ok(created)
    }

    /// The session `key`, created with the defaults if missing.
    pub async fn get_or_create(&self, key: &str) -> Result<SessionRecord, SessionError> {
        match self.record(key).await {
            Err(SessionError::NotFound(_)) => {}
            found => return found,
        }
        let new = NewSession {
            key: Some(key.to_owned()),
            ..NewSession::default()
        };
        match self.create(new).await {
            Err(SessionError::Exists(_)) => self.record(key).await,
            other => other,
        }
    }

    /// The session `key`: its worker's copy if it has one in memory, else the store's.
    async fn record(&self, key: &str) -> Result<SessionRecord, SessionError> {
        if let Some(record) = self.inner.active.lock().await.record_by_key(key) {
            return Ok(record);
        }
        self.stored_record(key).await
    }

    async fn stored_record(&self, key: &str) -> Result<SessionRecord, SessionError> {
        self.inner
            .store
            .session_by_key(key)
            .await?
            .ok_or_else(|| SessionError::NotFound(key.to_owned()))
    }

    pub async fn list(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<SessionSnapshot>, SessionError> {
        let records = self.inner.store.list_sessions(after, limit).await?;
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            out.push(self.snapshot_of(r).await?);
        }
        Ok(out)
    }

    pub async fn snapshot(&self, key: &str) -> Result<SessionSnapshot, SessionError> {
        // From the store: the worker's copy of the record has its first `updated_at`.
        let record = self.stored_record(key).await?;
        self.snapshot_of(record).await
    }

    async fn snapshot_of(&self, record: SessionRecord) -> Result<SessionSnapshot, SessionError> {
        let counts = self.inner.store.queue_counts(&record.id).await?;
        let last = self.inner.store.session_messages(&record.id, 1).await?;
        let active = self.inner.active.lock().await.get(&record.id).cloned();
        let current_message = active
            .as_ref()
            .and_then(|a| locked(&a.turn).as_ref().map(|t| t.message_id.clone()));
        Ok(SessionSnapshot {
            key: record.key,
            id: record.id,
            adapter: record.adapter,
            config: record.config,
            system: record.system,
            queue_depth: counts.queued,
            processing: counts.processing > 0,
            current_message,
            last_message_preview: last
                .first()
                .map(|m| crate::plugins::truncate(&m.text, 200).to_owned()),
            in_memory: active.is_some(),
            created_at: record.created_at,
            updated_at: record.updated_at,
        })
    }

    /// Queue a message; returns it and its 1-based place in the queue.
    pub async fn enqueue(
        &self,
        key: &str,
        text: String,
    ) -> Result<(MessageRecord, u64), SessionError> {
        let record = self.record(key).await?;
        match self.enqueue_on(record, text).await? {
            Offered::Queued(message, position) => Ok((message, position)),
            // Deleted under a key remembered here (see `enqueue_on`): once more, with
            // what the store says the key names now.
            Offered::Gone(text) => match self
                .enqueue_on(self.stored_record(key).await?, text)
                .await?
            {
                Offered::Queued(message, position) => Ok((message, position)),
                Offered::Gone(_) => Err(SessionError::NotFound(key.to_owned())),
            },
        }
    }

    /// [`Sessions::enqueue`] on a session the caller has just looked up; the text is
    /// handed back if that session is gone.
    pub async fn enqueue_on(
        &self,
        record: SessionRecord,
        text: String,
    ) -> Result<Offered, SessionError> {
        // On a task of its own: a caller that goes away (a client hanging up) must not
        // stop it between the write and telling the worker that a message is queued,
        // or the message would wait for the worker's idle check.
        let sessions = self.clone();
        let queued = tokio::spawn(async move {
            let offered = sessions.queue_and_wake(record.clone(), text).await?;
            if let Offered::Gone(_) = offered {
                // The session was deleted, and its key may still name it here: an
                // enqueue that raced the delete can wake its worker after the delete
                // forgot the key.
                (sessions.inner.active.lock().await).forget_deleted(&record);
            }
            Ok(offered)
        });
        match queued.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::WriterStopped.into()),
        }
    }

    /// Queue `text` on the session and wake its worker; the text back if the session
    /// is gone.
    async fn queue_and_wake(
        &self,
        record: SessionRecord,
        text: String,
    ) -> Result<Offered, SessionError> {
        let max = self.inner.config.max_queue;
        let (id, key) = (record.id.clone(), record.key.clone());
        let (sid, skey) = (id.clone(), key.clone());
        // The worker is there before the store takes the message, to be handed it then.
        let worker = self.pin_worker(record.clone()).await;
        let (active, handed) = (worker.0.clone(), Arc::new(std::sync::Mutex::new(None)));
        let handed_id = handed.clone();
        let enqueued = self
            .inner
            .store
            .enqueue_message(
                &record.id,
                text,
                max,
                Box::new(move |m: &MessageRecord, position| {
                    SessionEvent::MessageQueued.event(
                        &id,
                        Some(&key),
                        json!({ "message_id": m.id, "text": m.text, "position": position }),
                    )
                }),
                Box::new(move |m: &MessageRecord| turn_started(&sid, &skey, m)),
                Box::new(move |m: &MessageRecord| {
                    *locked(&handed_id) = Some(m.id.clone());
                    active.hand(m);
                }),
            )
            .await;
        let enqueued = match enqueued {
            Ok(enqueued) => enqueued,
            Err(e) => {
                // Handed over, then not committed: that turn must not run (or go on).
                if let Some(id) = locked(&handed).take() {
                    worker.0.cancel(&id);
                }
                return Err(e.into());
            }
        };
        let Enqueued {
            message,
            position,
            taken,
        } = match enqueued {
            EnqueueOutcome::Queued(enqueued) => enqueued,
            EnqueueOutcome::Full => {
                return Err(SessionError::QueueFull {
                    key: record.key,
                    max,
                });
            }
            EnqueueOutcome::NoSession(text) => return Ok(Offered::Gone(text)),
        };
        if !taken {
            worker.0.queued.store(true, Ordering::SeqCst);
        }
        Ok(Offered::Queued(message, position))
    }

    /// Abort the running turn, if any: cooperative first (the adapter sees `aborted()`),
    /// then cut off after `abort_grace`. Returns whether a turn was running.
    pub async fn abort(&self, key: &str) -> Result<bool, SessionError> {
        let record = self.record(key).await?;
        Ok(self.abort_running(&record.id).await)
    }

    async fn abort_running(&self, session_id: &str) -> bool {
        let active = self.inner.active.lock().await.get(session_id).cloned();
        active.is_some_and(|active| active.abort_turn(None))
    }

    /// Steer the running turn if its adapter takes steering; otherwise queue the text
    /// as a follow-up message.
    pub async fn steer(
        &self,
        key: &str,
        text: String,
    ) -> Result<(SteerOutcome, Option<MessageRecord>), SessionError> {
        let record = self.record(key).await?;
        let steerable = self
            .inner
            .plugins
            .supports_steering(&record.adapter)
            .await
            .unwrap_or(false);
        if steerable {
            let active = self.inner.active.lock().await.get(&record.id).cloned();
            let steered = active.and_then(|active| {
                let turn = locked(&active.turn);
                turn.as_ref().filter(|t| !t.over).map(|t| {
                    t.control.steer(text.clone());
                    t.message_id.clone()
                })
            });
            if let Some(message_id) = steered {
                self.inner
                    .publish(
                        &record.id,
                        Some(&record.key),
                        SessionEvent::Steered,
                        json!({ "message_id": message_id, "text": text }),
                    )
                    .await;
                return Ok((SteerOutcome::Steered, None));
            }
        }
        let (message, _) = self.enqueue(key, text).await?;
        Ok((SteerOutcome::Queued, Some(message)))
    }

    /// Stop the running turn, drop the queue and the history.
    pub async fn reset(&self, key: &str) -> Result<u64, SessionError> {
        let record = self.record(key).await?;
        // Drop the queue first so the worker starts nothing new, then stop the running
        // turn, then forget everything up to where the reset began.
        let (dropped, through) = self.inner.store.drop_queue(&record.id).await?;
        self.stop_turn(&record.id, Some(through)).await;
        self.inner.store.clear_history(&record.id, through).await?;
        if let Some(active) = self.inner.active.lock().await.get(&record.id) {
            active.history.drop_window();
        }
        self.inner
            .publish(
                &record.id,
                Some(&record.key),
                SessionEvent::Reset,
                json!({ "dropped_messages": dropped }),
            )
            .await;
        Ok(dropped)
    }

    /// Delete the session and everything it holds.
    pub async fn delete(&self, key: &str) -> Result<(), SessionError> {
        let mut record = self.record(key).await?;
        if !self.delete_record(&record).await? {
            // Deleted already, under a key remembered here: the store says what the
            // key names now, if anything.
            record = self.stored_record(key).await?;
            if !self.delete_record(&record).await? {
                return Err(SessionError::NotFound(record.key));
            }
        }
        self.inner
            .publish(
                &record.id,
                Some(&record.key),
                SessionEvent::Deleted,
                json!({}),
            )
            .await;
        Ok(())
    }

    /// Stop the session's turn and delete it from the store; false if it was gone.
    async fn delete_record(&self, record: &SessionRecord) -> Result<bool, SessionError> {
        self.stop_turn(&record.id, None).await;
        let deleted = self.inner.store.delete_session(&record.id).await?;
        // After the delete: until then the store has the session too, and an enqueue
        // that raced the delete may have woken a worker under its key.
        (self.inner.active.lock().await).forget_deleted(record);
        Ok(deleted)
    }

    /// Abort the running turn and wait until it has ended. A message handed over at
    /// enqueue and not started yet goes too, unless it came after `through` (a
    /// reset's last message): one taken after the reset began stays to be run.
    async fn stop_turn(&self, session_id: &str, through: Option<u64>) {
        if let Some(a) = self.inner.active.lock().await.get(session_id) {
            let mut handed = locked(&a.handed);
            if handed
                .as_ref()
                .is_some_and(|m| through.is_none_or(|last| m.seq <= last))
            {
                handed.take();
            }
        }
        // Waits for a turn that is over but still recording its end, too.
        self.abort_running(session_id).await;
        let limit = self.inner.config.abort_grace + Duration::from_secs(1);
        let start = tokio::time::Instant::now();
        while self.is_running(session_id).await && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn is_running(&self, session_id: &str) -> bool {
        let active = self.inner.active.lock().await.get(session_id).cloned();
        active.is_some_and(|a| locked(&a.turn).is_some())
    }

    /// History: the last `limit` messages, oldest first.
    pub async fn history(
        &self,
        key: &str,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, SessionError> {
        let record = self.record(key).await?;
        Ok(self.inner.store.session_messages(&record.id, limit).await?)
    }

    /// The session's id (for its bus topic), or NotFound.
    pub async fn id_of(&self, key: &str) -> Result<String, SessionError> {
        Ok(self.record(key).await?.id)
    }

    /// Wait until the turn of message `message_id` has ended (at once if it has).
    /// `None` if the message is gone (its session was reset or deleted).
    pub async fn wait_turn(&self, message_id: &str) -> Result<Option<TurnResult>, SessionError> {
        // Subscribe before reading the store, so an end between the two is not missed.
        let mut ended = self.inner.ended.subscribe();
        loop {
            match self.inner.store.turn_result(message_id).await? {
                Some(result) if !result.is_final() => {}
                other => return Ok(other),
            }
            loop {
                match ended.recv().await {
                    Ok(end) if end.message_id == message_id => {
                        return Ok(Some(end.result.clone()));
                    }
                    Ok(_) => {}
                    // Missed some: the store has the answer.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(StoreError::WriterStopped.into());
                    }
                }
            }
        }
    }

    /// Sessions with a worker in memory now.
    pub async fn in_memory(&self) -> usize {
        self.inner.active.lock().await.len()
    }

    /// Shutdown: take no more messages, and wait (at most `grace`) for the turns in
    /// flight to end. Queued messages stay queued on disk and resume at the next start.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.inner.stopping.cancel();
        self.inner.workers.close();
        tokio::time::timeout(grace, self.inner.workers.wait())
            .await
            .is_ok()
    }

    /// The session's worker, started if it has none, held in memory until dropped.
    async fn pin_worker(&self, record: SessionRecord) -> Pinned {
        let mut active = self.inner.active.lock().await;
        let a = match active.get(&record.id) {
            Some(a) => a.clone(),
            None => {
                let a = Arc::new(Active::new(record, self.inner.config.history_limit));
                active.insert(a.clone());
                let (inner, worker) = (self.inner.clone(), a.clone());
                self.inner
                    .workers
                    .spawn(async move { inner.work(worker).await });
                a
            }
        };
        // Under the lock, where the worker decides to leave memory.
        a.pinned.fetch_add(1, Ordering::SeqCst);
        Pinned(a)
    }
}

/// A worker's small state behind a std mutex, held for a moment and never across an
/// await: a panic while holding it leaves nothing half-changed, so poisoning is ignored.
fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn validate_key(key: &str) -> Result<(), SessionError> {
    if key.is_empty() || key.len() > 200 || key.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(SessionError::Invalid {
            field: "key",
            message: format!(
                "`{key}` is not a valid session key: use 1-200 characters without spaces or control characters"
            ),
        });
    }
    Ok(())
}
