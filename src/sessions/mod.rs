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

mod events;
mod history;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::Bus;
use crate::plugins::types::{Message, Role, StopReason, TurnRequest};
use crate::plugins::{PluginHost, TurnControl};
use crate::store::{
    EnqueueOutcome, Enqueued, MessageRecord, MessageStatus, SessionRecord, Store, StoreError,
    TurnResult,
};

pub use events::{SessionEvent, TurnData, lenient_text};
use history::HistoryWindow;

/// Batches of turn events in flight to the store at once, per turn.
const STREAM_WINDOW: usize = 64;
/// Most turn events stored as one write.
const STREAM_BATCH: usize = 64;

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

/// The sessions with a worker in memory, by id and by key.
///
/// By key, it spares the hot paths (a message, a chat turn) a read of the store to
/// find the session: while a session has a worker, its record is here. A deleted
/// session's key is forgotten once the delete is stored, and its worker leaves memory
/// as soon as its turn has ended and no enqueue pins it.
#[derive(Default)]
struct Workers {
    by_id: HashMap<String, Arc<Active>>,
    by_key: HashMap<String, Arc<Active>>,
}

impl Workers {
    fn get(&self, id: &str) -> Option<&Arc<Active>> {
        self.by_id.get(id)
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }

    fn insert(&mut self, active: Arc<Active>) {
        self.by_key
            .insert(active.record.key.clone(), active.clone());
        self.by_id.insert(active.record.id.clone(), active);
    }

    fn remove(&mut self, active: &Arc<Active>) {
        self.by_id.remove(&active.record.id);
        shrink(&mut self.by_id);
        self.forget_key(&active.record.key, |named| named == active.record.id);
    }

    /// The session of `record` is gone from the store: forget its key, and have its
    /// worker leave memory without waiting out the idle timeout.
    fn forget_deleted(&mut self, record: &SessionRecord) {
        self.forget_key(&record.key, |named| named == record.id);
        if let Some(active) = self.by_id.get(&record.id) {
            active.deleted.store(true, Ordering::SeqCst);
            active.wake.notify_one();
        }
    }

    /// Forget `key` if the session it names here is `stale` (by its id).
    fn forget_key(&mut self, key: &str, stale: impl FnOnce(&str) -> bool) {
        if self.by_key.get(key).is_some_and(|a| stale(&a.record.id)) {
            self.by_key.remove(key);
            shrink(&mut self.by_key);
        }
    }

    fn record_by_key(&self, key: &str) -> Option<SessionRecord> {
        self.by_key.get(key).map(|a| a.record.clone())
    }
}

/// A burst of sessions leaves a map's table at its peak: give the memory back once it
/// is a quarter full, down to twice what it holds (so the cost stays amortized).
fn shrink<V>(map: &mut HashMap<String, V>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

/// A message offered to a session.
#[derive(Debug)]
pub enum Offered {
    /// Queued (or taken at once), at this 1-based place.
    Queued(MessageRecord, u64),
    /// The session is gone (deleted); the text is handed back.
    Gone(String),
}

/// A session with a worker in memory.
struct Active {
    record: SessionRecord,
    wake: Notify,
    /// A message the store took at enqueue (the session was idle), for the worker to
    /// run next. At most one: the store takes none while one is processing.
    handed: std::sync::Mutex<Option<MessageRecord>>,
    /// The store may hold queued messages: set when the worker starts, after a message
    /// is queued behind another, at recovery, and when the idle check finds some, so
    /// the worker looks at its queue only then (a look is a write).
    queued: AtomicBool,
    /// Enqueues under way that may hand this worker a message; it stays in memory
    /// until they are done (see [`Pinned`]).
    pinned: AtomicUsize,
    /// The session is deleted: the worker leaves memory once nothing pins it.
    deleted: AtomicBool,
    turn: std::sync::Mutex<Option<RunningTurn>>,
    history: HistoryWindow,
}

impl Active {
    fn new(record: SessionRecord, history_limit: usize) -> Self {
        Self {
            record,
            wake: Notify::new(),
            handed: std::sync::Mutex::new(None),
            // A new worker looks once: its session may have messages queued.
            queued: AtomicBool::new(true),
            pinned: AtomicUsize::new(0),
            deleted: AtomicBool::new(false),
            turn: std::sync::Mutex::new(None),
            history: HistoryWindow::new(history_limit),
        }
    }

    /// Give the worker a message taken for it; called as the store takes it, which
    /// may be before the message is committed (see `SessionStore::enqueue_message`).
    fn hand(&self, message: &MessageRecord) {
        *locked(&self.handed) = Some(message.clone());
        self.wake.notify_one();
    }

    /// Drop the message `id` if handed over and not started, else abort its turn.
    fn cancel(&self, id: &str) {
        let mut handed = locked(&self.handed);
        if handed.as_ref().is_some_and(|m| m.id == id) {
            handed.take();
            return;
        }
        drop(handed);
        self.abort_turn(Some(id));
    }

    /// Abort the running turn (only if it is `message_id`'s, when given); whether one
    /// was running. A turn whose call is over has nothing left to abort.
    fn abort_turn(&self, message_id: Option<&str>) -> bool {
        let turn = locked(&self.turn);
        let running = turn
            .as_ref()
            .filter(|t| !t.over && message_id.is_none_or(|id| t.message_id == id));
        running.inspect(|t| t.abort()).is_some()
    }
}

/// A session's worker held in memory while an enqueue may hand it a message; on drop
/// the worker looks again at what it has.
struct Pinned(Arc<Active>);

impl Drop for Pinned {
    fn drop(&mut self) {
        self.0.pinned.fetch_sub(1, Ordering::SeqCst);
        self.0.wake.notify_one();
    }
}

struct RunningTurn {
    message_id: String,
    control: TurnControl,
    hard_abort: Arc<Notify>,
    /// The adapter's call is over and the turn is recording its end: there is nothing
    /// left to abort or steer, though a delete still waits for it.
    over: bool,
}

impl RunningTurn {
    /// Cooperative first (the adapter sees `aborted()`), then cut off after the grace.
    fn abort(&self) {
        self.control.abort();
        self.hard_abort.notify_one();
    }
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

impl Inner {
    /// A session's worker: take queued messages in order, one turn each; leave memory
    /// when idle.
    async fn work(self: Arc<Self>, active: Arc<Active>) {
        let id = active.record.id.clone();
        loop {
            // At shutdown a message handed at enqueue (already `processing`) still runs;
            // nothing more is taken.
            if self.stopping.is_cancelled() && locked(&active.handed).is_none() {
                self.active.lock().await.remove(&active);
                return;
            }
            let handed = locked(&active.handed).take();
            let next = match handed {
                Some(message) => Ok(Some(message)),
                None if active.queued.swap(false, Ordering::SeqCst) => {
                    let (sid, key) = (id.clone(), active.record.key.clone());
                    let started = move |m: &MessageRecord| turn_started(&sid, &key, m);
                    let next = self.store.take_next_message(&id, Box::new(started)).await;
                    // Taken one, or failed to look: there may be more.
                    if !matches!(next, Ok(None)) {
                        active.queued.store(true, Ordering::SeqCst);
                    }
                    next
                }
                None => Ok(None),
            };
            match next {
                Ok(Some(message)) => match self.history(&active, &message).await {
                    Ok(history) => self.turn(&active, message, history).await,
                    Err(e) => self.fail_turn(&active, message, e).await,
                },
                Ok(None) => {
                    // A deleted session's worker waits only while an enqueue pins it.
                    let deleted = active.deleted.load(Ordering::SeqCst);
                    if !deleted || active.pinned.load(Ordering::SeqCst) > 0 {
                        let idle = self.config.idle_timeout;
                        let woken = tokio::select! {
                            woken = tokio::time::timeout(idle, active.wake.notified()) => woken.is_ok(),
                            () = self.stopping.cancelled() => continue,
                        };
                        if woken {
                            continue;
                        }
                    }
                    // Idle. Leave memory unless a message arrived meanwhile or an
                    // enqueue may bring one: an enqueue pins the worker under the same
                    // lock before writing its message.
                    let mut map = self.active.lock().await;
                    if active.pinned.load(Ordering::SeqCst) > 0 {
                        continue;
                    }
                    // A deleted session has no queue left; a count that cannot be read
                    // keeps the worker.
                    let queued = if deleted {
                        0
                    } else {
                        self.store.queue_counts(&id).await.map_or(1, |c| c.queued)
                    };
                    let handed = locked(&active.handed).is_some();
                    if queued == 0 && !handed {
                        map.remove(&active);
                        tracing::debug!(session = %active.record.key, "session idle; left memory");
                        return;
                    }
                    if queued > 0 {
                        active.queued.store(true, Ordering::SeqCst);
                    }
                }
                Err(e) => {
                    tracing::error!(session = %active.record.key, error = %e, "cannot read the session queue; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The history before `message` that the session's adapter takes: the end of the
    /// worker's window, or of the store's (then kept as the window). Nothing is read or
    /// copied for an adapter that takes none.
    async fn history(
        &self,
        active: &Active,
        message: &MessageRecord,
    ) -> Result<Vec<Message>, StoreError> {
        let wanted = self
            .plugins
            .history_for(&active.record.adapter, self.config.history_limit);
        if wanted == 0 {
            return Ok(Vec::new());
        }
        let epoch = match active.history.last(wanted) {
            Ok(window) => return Ok(window),
            Err(epoch) => epoch,
        };
        // Earlier turns are all finished (one at a time), so the history before this
        // message is settled and a reader may fetch it.
        let stored = self
            .store
            .history_before(&active.record.id, message.seq, self.config.history_limit)
            .await?;
        let mut history: Vec<Message> = stored
            .into_iter()
            .map(|m| Message {
                role: if m.role == "assistant" {
                    Role::Assistant
                } else {
                    Role::User
                },
                content: m.text,
            })
            .collect();
        active.history.fill(epoch, &history);
        Ok(history.split_off(history.len().saturating_sub(wanted)))
    }

    /// Run one turn for `message`.
    async fn turn(&self, active: &Active, message: MessageRecord, history: Vec<Message>) {
        let record = &active.record;
        let control = TurnControl::default();
        let hard_abort = Arc::new(Notify::new());
        *locked(&active.turn) = Some(RunningTurn {
            message_id: message.id.clone(),
            control: control.clone(),
            hard_abort: hard_abort.clone(),
            over: false,
        });

        let system = record.system.iter().map(|text| Message {
            role: Role::System,
            content: text.clone(),
        });
        let request = TurnRequest {
            session: record.key.clone(),
            history: system.chain(history).collect(),
            input: message.text.clone(),
            config: record.config.clone(),
        };
        let (events, mut stream) = mpsc::channel(256);
        let call = self
            .plugins
            .run_turn(&record.adapter, request, events, control.clone());
        // Stream events are submitted in order without waiting for each commit, those
        // already waiting as one batch (one write); at most STREAM_WINDOW batches are
        // in flight, so a fast adapter cannot queue without bound.
        let forward = async {
            let mut in_flight = std::collections::VecDeque::new();
            let mut waiting = Vec::new();
            while stream.recv_many(&mut waiting, STREAM_BATCH).await > 0 {
                let batch = waiting.drain(..).map(|event| {
                    let (kind, data) = SessionEvent::from_turn(&event, &message.id);
                    kind.event(&record.id, Some(&record.key), data)
                });
                // An event refused (too large) is dropped alone, not with its batch.
                let valid: Vec<_> = batch
                    .filter(|event| match crate::bus::validate(event) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(session = %record.key, error = %e, "turn event refused");
                            false
                        }
                    })
                    .collect();
                if !valid.is_empty() {
                    in_flight.push_back(self.store.append_turn_events(&message.id, valid));
                }
                if in_flight.len() >= STREAM_WINDOW
                    && let Some(oldest) = in_flight.pop_front()
                    && let Err(e) = oldest.await
                {
                    tracing::warn!(session = %record.key, error = %e, "turn events not stored");
                }
            }
            in_flight
        };
        let cut_off = async {
            hard_abort.notified().await;
            tokio::time::sleep(self.config.abort_grace).await;
        };
        let (outcome, in_flight) = tokio::select! {
            (result, in_flight) = futures::future::join(call, forward) => (Some(result), in_flight),
            () = cut_off => (None, Default::default()),
        };
        // Before the end is recorded: a client that has seen `turn.finished` and then
        // aborts or steers must find no turn running.
        if let Some(t) = locked(&active.turn).as_mut() {
            t.over = true;
        }

        let (status, reply, error, stop_reason) = match outcome {
            Some(Ok(result)) => {
                let aborted = control.is_aborted() || result.stop_reason == StopReason::Aborted;
                let status = if aborted {
                    MessageStatus::Aborted
                } else {
                    MessageStatus::Done
                };
                let reply = (!result.text.is_empty() || !aborted).then_some(result.text);
                let reason = if aborted {
                    StopReason::Aborted
                } else {
                    result.stop_reason
                };
                (status, reply, None, Some(reason))
            }
            Some(Err(e)) => (
                MessageStatus::Failed,
                None,
                Some(e.to_string()),
                Some(StopReason::Error),
            ),
            None => (
                MessageStatus::Aborted,
                None,
                Some(format!(
                    "the adapter did not stop within {:?} of the abort; the turn was cut off",
                    self.config.abort_grace
                )),
                Some(StopReason::Aborted),
            ),
        };
        // What the stored history gains (see `history_before`): a done user message,
        // and any reply.
        let gained: Vec<Message> = (status == MessageStatus::Done)
            .then(|| Message {
                role: Role::User,
                content: message.text.clone(),
            })
            .into_iter()
            .chain(reply.iter().map(|text| Message {
                role: Role::Assistant,
                content: text.clone(),
            }))
            .collect();
        // The end is queued behind the turn's last events without waiting for their
        // commit: writes commit in the order queued, so `turn.finished` still comes
        // last, often in the same group, a commit's round trip sooner. (`finish_turn`
        // queues its write when first polled, here, after every batch was queued. A
        // group that fails rolls back those events with the end.)
        let recorded = self
            .record_end(record, &message.id, status, reply, error, stop_reason)
            .await;
        for committed in in_flight {
            if let Err(e) = committed.await {
                tracing::warn!(session = %record.key, error = %e, "turn events not stored");
            }
        }
        if recorded {
            active.history.push(gained);
        } else {
            active.history.drop_window();
        }
        *locked(&active.turn) = None;
    }

    /// A turn that could not start: recorded as failed, so the queue moves on.
    async fn fail_turn(&self, active: &Active, message: MessageRecord, e: StoreError) {
        tracing::error!(session = %active.record.key, error = %e, "cannot read the session history");
        let error = format!("cannot read the session history: {e}");
        self.record_end(
            &active.record,
            &message.id,
            MessageStatus::Failed,
            None,
            Some(error),
            Some(StopReason::Error),
        )
        .await;
    }

    /// Store how a turn ended (and its reply) and announce it; false if the store
    /// failed or the message is gone.
    async fn record_end(
        &self,
        record: &SessionRecord,
        message_id: &str,
        status: MessageStatus,
        reply: Option<String>,
        error: Option<String>,
        stop_reason: Option<StopReason>,
    ) -> bool {
        let (id, key, announced_id) =
            (record.id.clone(), record.key.clone(), message_id.to_owned());
        let ended_error = error.clone();
        let finished = self
            .store
            .finish_turn(
                &record.id,
                message_id,
                status,
                reply,
                error.clone(),
                Box::new(move |reply: Option<&MessageRecord>| {
                    SessionEvent::TurnFinished.event(
                        &id,
                        Some(&key),
                        json!({
                            "message_id": announced_id,
                            "status": status,
                            "stop_reason": stop_reason,
                            "text": reply.map(|r| r.text.clone()),
                            "reply_id": reply.map(|r| r.id.clone()),
                            "error": error,
                        }),
                    )
                }),
            )
            .await;
        match finished {
            Ok(finished) => {
                // (A message gone meanwhile is answered too: its waiters learn the end.)
                let recorded = finished.is_some();
                let _ = self.ended.send(Arc::new(TurnEnded {
                    message_id: message_id.to_owned(),
                    result: TurnResult {
                        status,
                        error: ended_error,
                        reply: finished.and_then(|f| f.reply).map(|r| r.text),
                    },
                }));
                recorded
            }
            Err(e) => {
                tracing::error!(session = %record.key, error = %e, "cannot record the end of a turn");
                false
            }
        }
    }

    async fn publish(&self, session_id: &str, key: Option<&str>, kind: SessionEvent, data: Value) {
        self.bus.notify(kind.event(session_id, key, data)).await;
    }
}

/// A worker's small state behind a std mutex, held for a moment and never across an
/// await: a panic while holding it leaves nothing half-changed, so poisoning is ignored.
fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The event of a turn starting on message `m`.
fn turn_started(session_id: &str, key: &str, m: &MessageRecord) -> crate::event::NewEvent {
    SessionEvent::TurnStarted.event(
        session_id,
        Some(key),
        json!({ "message_id": m.id, "input": m.text }),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// After a burst of sessions leaves memory, the maps give back their tables.
    #[test]
    fn the_workers_maps_shrink_after_a_burst() {
        let mut workers = Workers::default();
        let burst: Vec<Arc<Active>> = (0..10_000)
            .map(|i| {
                let record = SessionRecord {
                    id: format!("id-{i}"),
                    key: format!("key-{i}"),
                    adapter: "echo-agent".into(),
                    config: json!({}),
                    created_at: String::new(),
                    updated_at: String::new(),
                    system: None,
                };
                Arc::new(Active::new(record, 10))
            })
            .collect();
        for a in &burst {
            workers.insert(a.clone());
        }
        let peak = workers.by_id.capacity();
        assert!(peak >= 10_000);
        for a in &burst[10..] {
            workers.remove(a);
        }
        assert_eq!(workers.len(), 10);
        assert!(
            workers.by_id.capacity() <= 64,
            "{}",
            workers.by_id.capacity()
        );
        assert!(
            workers.by_key.capacity() <= 64,
            "{}",
            workers.by_key.capacity()
        );
        assert!(workers.get("id-3").is_some());
        assert_eq!(workers.record_by_key("key-9").unwrap().id, "id-9");
    }
}
