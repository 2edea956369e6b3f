//! The store: Switchyard's durable state, behind one trait per part — [`KvStore`]
//! (plugin key-value data), [`EventLog`] (the bus log and its commit-ordered live feed)
//! and [`SessionStore`] (sessions and their message queues). Callers hold a [`Store`]
//! and call those traits; SQLite ([`SqliteStore`], WAL, one writer with group commit)
//! is the embedded backend, and another (PostgreSQL) can implement the same traits
//! without touching callers.
//!
//! Invariants every backend keeps:
//! - A write is acknowledged only once it is durable.
//! - A state change and the event announcing it commit together (`announce` closures).
//! - Events reach the [`Fanout`] in `seq` order, after their commit.

mod sqlite;

pub use sqlite::SqliteStore;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::bus::{Event, Fanout, NewEvent};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the database {path} has schema version {found}, newer than this switchyard knows ({known}); upgrade switchyard or use another --data-dir"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("could not commit: {0}")]
    Commit(String),
    #[error("the store's writer has stopped")]
    WriterStopped,
    #[error("{0}")]
    Invalid(String),
    #[error("the store's worker thread stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Size limits for one plugin's key-value data.
#[derive(Debug, Clone, Copy)]
pub struct KvLimits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_keys: usize,
}

impl KvLimits {
    /// The limits documented in `wit/host.wit`, with the manifest's key quota.
    pub fn with_max_keys(max_keys: usize) -> Self {
        Self {
            max_key_bytes: 256,
            max_value_bytes: 64 * 1024,
            max_keys,
        }
    }
}

/// Why a key-value operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A session's persisted attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub key: String,
    pub adapter: String,
    pub config: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
    /// System text put before the conversation of every turn (a recipe step's `role`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

/// How a turn ended: the status of its user message (`queued` and `processing` while
/// it has not), and the reply if there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnResult {
    pub status: String,
    pub error: Option<String>,
    pub reply: Option<String>,
}

impl TurnResult {
    pub fn is_final(&self) -> bool {
        !matches!(self.status.as_str(), "queued" | "processing")
    }
}

/// One message of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageRecord {
    pub id: String,
    pub seq: u64,
    pub role: String,
    pub text: String,
    pub status: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

/// Counts for a session's snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueCounts {
    pub queued: u64,
    pub processing: u64,
}

/// A message accepted into a session's queue.
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub message: MessageRecord,
    /// 1-based place among the queued messages.
    pub position: u64,
    /// Taken at once: the session was idle, and the message is its running turn.
    pub taken: bool,
}

/// What became of a message offered to a session's queue.
#[derive(Debug)]
pub enum EnqueueOutcome {
    Queued(Enqueued),
    /// The queue holds its maximum already.
    Full,
    /// No session has this id (it was deleted); the text is handed back.
    NoSession(String),
}

/// Each makes the event that announces a write, inside the write's transaction.
pub type AnnounceSession = Box<dyn FnOnce(&SessionRecord) -> NewEvent + Send>;
pub type AnnounceQueued = Box<dyn FnOnce(&MessageRecord, u64) -> NewEvent + Send>;
pub type AnnounceTaken = Box<dyn FnOnce(&MessageRecord) -> NewEvent + Send>;
pub type AnnounceFinished = Box<dyn FnOnce(Option<&MessageRecord>) -> NewEvent + Send>;
pub type AnnounceInterrupted = Box<dyn Fn(&str, &MessageRecord) -> NewEvent + Send>;
/// Hands a message taken at enqueue to its session's worker (see
/// [`SessionStore::enqueue_message`]).
pub type StartTurn = Box<dyn FnOnce(&MessageRecord) + Send>;

/// A turn's end, recorded.
#[derive(Debug, Clone)]
pub struct FinishedTurn {
    /// The reply, stored as the assistant's message.
    pub reply: Option<MessageRecord>,
}

/// Plugin key-value data, with the limits the WIT `kv` interface promises.
#[async_trait::async_trait]
pub trait KvStore: Send + Sync {
    async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        limits: KvLimits,
    ) -> Result<(), KvError>;
    async fn kv_delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError>;
    /// Keys starting with `prefix`, in order, at most `limit`.
    async fn kv_list_keys(
        &self,
        plugin: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// Atomically add `delta` to the integer at `key` (absent = 0).
    async fn kv_increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        limits: KvLimits,
    ) -> Result<i64, KvError>;
}

/// The bus log.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync {
    /// Append one event. The write is queued when this is called, so appends commit
    /// in call order; the future resolves after the commit.
    fn append_event(&self, event: NewEvent) -> BoxFuture<'static, Result<Arc<Event>, StoreError>>;
    /// Append several events in one transaction: all or none, consecutive `seq`s.
    fn append_events(
        &self,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'static, Result<Vec<Arc<Event>>, StoreError>>;
    /// Stored events with `seq > after`, oldest first, at most `limit`.
    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// Delete up to `batch` of the oldest events beyond the newest `keep` or older than
    /// `before` (RFC 3339); returns how many.
    async fn trim_events(
        &self,
        keep: Option<u64>,
        before: Option<String>,
        batch: u64,
    ) -> Result<u64, StoreError>;
    /// The live subscribers, which the backend hands every event after its commit, in
    /// `seq` order ([`Fanout::deliver`]); it starts at the log's last `seq`.
    fn fanout(&self) -> &Arc<Fanout>;
    /// Where the reader `name` saved its position in the log, if it ever did.
    async fn log_cursor(&self, name: &str) -> Result<Option<u64>, StoreError>;
    /// Save the reader `name`'s position: every event up to `seq` handled.
    async fn save_log_cursor(&self, name: &str, seq: u64) -> Result<(), StoreError>;
}

/// Sessions and their durable message queues.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// Create a session with its announcing event; `None` if the key is taken.
    async fn create_session(
        &self,
        record: SessionRecord,
        announce: AnnounceSession,
    ) -> Result<Option<SessionRecord>, StoreError>;
    async fn session_by_key(&self, key: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Sessions ordered by key, after `after` (exclusive), at most `limit`.
    async fn list_sessions(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError>;
    async fn delete_session(&self, id: &str) -> Result<bool, StoreError>;
    /// Queue a user message if fewer than `max_queued` are queued; returns it and its
    /// 1-based place. When the session has nothing queued or processing, the message is
    /// taken at once (`processing`, with `announce_taken`'s event in the same
    /// transaction), as [`SessionStore::take_next_message`] would, and handed to
    /// `start`.
    ///
    /// `start` may run before the transaction commits, so that the turn runs while its
    /// message is written: every write of the turn checks that its message is there
    /// ([`SessionStore::append_turn_events`], [`SessionStore::finish_turn`]), so
    /// nothing of a turn whose message failed to commit is kept.
    async fn enqueue_message(
        &self,
        session_id: &str,
        text: String,
        max_queued: usize,
        announce: AnnounceQueued,
        announce_taken: AnnounceTaken,
        start: StartTurn,
    ) -> Result<EnqueueOutcome, StoreError>;
    /// Take the oldest queued message (now `processing`).
    async fn take_next_message(
        &self,
        session_id: &str,
        announce: AnnounceTaken,
    ) -> Result<Option<MessageRecord>, StoreError>;
    /// The conversation before the turn of message `seq` (done user messages and
    /// replies, in conversation order), at most `limit` of the latest. A read, not a
    /// write: it must not occupy the single writer.
    async fn history_before(
        &self,
        session_id: &str,
        seq: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    /// Store what the turn of message `message_id` streams, as one write queued now
    /// (in call order); nothing if the message is not `processing` (gone with a reset
    /// or a delete, or never committed).
    fn append_turn_events(
        &self,
        message_id: &str,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'static, Result<Vec<Arc<Event>>, StoreError>>;
    /// Record how a turn ended and its reply; `None` (and nothing stored) if the
    /// message is gone.
    async fn finish_turn(
        &self,
        session_id: &str,
        message_id: &str,
        status: &'static str,
        reply: Option<String>,
        error: Option<String>,
        announce: AnnounceFinished,
    ) -> Result<Option<FinishedTurn>, StoreError>;
    /// Mark turns that were `processing` when the process stopped as `interrupted`.
    async fn interrupt_unfinished_turns(
        &self,
        announce: AnnounceInterrupted,
    ) -> Result<usize, StoreError>;
    /// Keys of sessions with queued messages.
    async fn sessions_with_queued_messages(&self) -> Result<Vec<String>, StoreError>;
    /// Reset, first step: drop queued messages; returns (dropped, highest message seq).
    async fn drop_queue(&self, session_id: &str) -> Result<(u64, u64), StoreError>;
    /// Reset, last step: forget messages up to `through_seq` and their replies.
    async fn clear_history(&self, session_id: &str, through_seq: u64) -> Result<(), StoreError>;
    /// The last `limit` messages, in conversation order.
    async fn session_messages(
        &self,
        session_id: &str,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    async fn queue_counts(&self, session_id: &str) -> Result<QueueCounts, StoreError>;
    /// The same counts over every session.
    async fn message_counts(&self) -> Result<QueueCounts, StoreError>;
    /// How the turn of user message `message_id` ended; `None` if the message is gone.
    async fn turn_result(&self, message_id: &str) -> Result<Option<TurnResult>, StoreError>;
}

/// A recipe run as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunRecord {
    pub id: String,
    pub recipe: String,
    /// The first 12 hex digits of the SHA-256 of `source`.
    pub version: String,
    pub file: String,
    /// The recipe text the run started with.
    #[serde(skip)]
    pub source: String,
    pub inputs: serde_json::Value,
    /// `running`, then `succeeded`, `failed` or `canceled`.
    pub status: String,
    /// What started it: `{"kind": "manual" | "schedule" | "event" | "webhook", …}`.
    pub trigger: serde_json::Value,
    pub correlation_id: String,
    pub outputs: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// One step of a run as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepRecord {
    pub step_id: String,
    /// `pending`, `running`, `retrying`, then `succeeded`, `failed`, `skipped` or
    /// `canceled`.
    pub status: String,
    /// 1-based attempt number; 0 before the first.
    pub attempt: u32,
    /// The key of the step's session.
    pub session: Option<String>,
    /// The message of the attempt in flight (or the last one).
    pub message_id: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// When a `retrying` step tries again.
    pub retry_at: Option<String>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub recipe: Option<String>,
    pub status: Option<String>,
    /// Runs with ids before this one (newest first paging).
    pub before: Option<String>,
    pub limit: usize,
}

/// One firing of an automation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FiringRecord {
    pub automation: String,
    /// What fires at most once: a scheduled time, an event id, a request id.
    pub slot: String,
    pub scheduled_at: Option<String>,
    pub fired_at: String,
    /// `started`, `queued`, `skipped` or `error`.
    pub decision: String,
    pub run_id: Option<String>,
    pub detail: Option<String>,
    /// The run's status when read (joined, not stored twice).
    #[serde(default)]
    pub run_status: Option<String>,
}

/// An automation's persisted state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutomationState {
    pub automation: String,
    pub paused: bool,
    /// When it was first seen; catch-up never reaches before it.
    pub since: String,
    /// The latest scheduled slot recorded.
    pub last_slot: Option<String>,
}

/// Recipe runs, their steps, and automation firings.
#[async_trait::async_trait]
pub trait RunStore: Send + Sync {
    /// Create a run and its steps with the event announcing it. With a `firing`, in
    /// the same transaction: the firing is recorded too, and nothing is written (and
    /// `false` returned) if its slot already was.
    async fn create_run(
        &self,
        run: RunRecord,
        steps: Vec<StepRecord>,
        event: NewEvent,
        firing: Option<(FiringRecord, NewEvent)>,
    ) -> Result<bool, StoreError>;
    /// Write a run's status, outputs, error and end, with its event.
    async fn save_run(&self, run: RunRecord, event: NewEvent) -> Result<(), StoreError>;
    /// Write one step's state, with its event.
    async fn save_step(
        &self,
        run_id: &str,
        step: StepRecord,
        event: NewEvent,
    ) -> Result<(), StoreError>;
    /// A run and its steps (in file order).
    async fn run(&self, id: &str) -> Result<Option<(RunRecord, Vec<StepRecord>)>, StoreError>;
    /// Runs newest first.
    async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunRecord>, StoreError>;
    /// Ids of runs still `running` (to resume after a restart).
    async fn unfinished_runs(&self) -> Result<Vec<String>, StoreError>;
    /// Record a firing unless its slot is already recorded; `false` if it was.
    async fn record_firing(
        &self,
        firing: FiringRecord,
        event: NewEvent,
    ) -> Result<bool, StoreError>;
    /// The latest firings of `automation` (all when `None`), newest first.
    async fn firings(
        &self,
        automation: Option<String>,
        limit: usize,
    ) -> Result<Vec<FiringRecord>, StoreError>;
    /// The state of these automations, creating the missing ones (since = `now`).
    async fn automation_states(
        &self,
        automations: Vec<String>,
        now: String,
    ) -> Result<Vec<AutomationState>, StoreError>;
    async fn set_paused(
        &self,
        automation: &str,
        paused: bool,
        now: String,
    ) -> Result<(), StoreError>;
}

/// An item of a work queue as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueItem {
    pub id: String,
    pub queue: String,
    pub payload: serde_json::Value,
    /// Higher first.
    pub priority: i64,
    pub idempotency_key: Option<String>,
    /// `pending`, `claimed`, `running`, `succeeded`, `failed` (retries at
    /// `available_at`), `timed_out` (its lease ran out; retries at `available_at`),
    /// `canceled`, `dead`.
    pub status: String,
    /// Claims so far.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Not claimed before (delay, backoff).
    pub available_at: String,
    /// Dead if not done by then (TTL).
    pub expires_at: Option<String>,
    /// Proves the claim to `extend`, `ack` and `nack`; never listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_token: Option<String>,
    pub lease_expires_at: Option<String>,
    pub worker: Option<String>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A transition of one queue item, run inside the store's write: the new state and
/// its event, or why the transition is refused (the item is left as it was).
pub type ItemChange = Box<dyn FnMut(QueueItem) -> Result<(QueueItem, NewEvent), String> + Send>;

/// Durable work queues.
#[async_trait::async_trait]
pub trait QueueStore: Send + Sync {
    /// Insert `item` with its event, unless its queue already has an item with the
    /// same idempotency key: then that item, and `false`.
    async fn enqueue_item(
        &self,
        item: QueueItem,
        event: NewEvent,
    ) -> Result<(QueueItem, bool), StoreError>;
    /// Apply `change` to item `id` of `queue`: `None` if there is no such item,
    /// `Some(Err)` if the change refused.
    async fn change_item(
        &self,
        queue: &str,
        id: &str,
        change: ItemChange,
    ) -> Result<Option<Result<QueueItem, String>>, StoreError>;
    /// Apply `change` to up to `limit` ready items of `queue` (best first) at `now`.
    async fn claim_items(
        &self,
        queue: &str,
        now: String,
        limit: usize,
        change: ItemChange,
    ) -> Result<Vec<QueueItem>, StoreError>;
    /// Apply `change` to up to `limit` items whose lease or TTL ran out by `now`.
    async fn reap_items(
        &self,
        now: String,
        limit: usize,
        change: ItemChange,
    ) -> Result<Vec<QueueItem>, StoreError>;
    async fn queue_item(&self, queue: &str, id: &str) -> Result<Option<QueueItem>, StoreError>;
    /// Items of `queue`, newest first, with `status` if given, ids before `before`.
    async fn queue_items(
        &self,
        queue: &str,
        status: Option<String>,
        before: Option<String>,
        limit: usize,
    ) -> Result<Vec<QueueItem>, StoreError>;
    /// Every queue with its item count by status.
    async fn queue_status_counts(
        &self,
    ) -> Result<
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
        StoreError,
    >;
    /// When the next item of `queue` becomes ready (delay or backoff), if any waits.
    async fn next_available(&self, queue: &str) -> Result<Option<String>, StoreError>;
    /// Delete item `id` of `queue` if it is dead; whether it was.
    async fn drop_dead_item(&self, queue: &str, id: &str) -> Result<bool, StoreError>;
}

/// An API token as stored: a hash of its secret, never the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret part.
    pub hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// API tokens.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_token(&self, token: TokenRecord) -> Result<(), StoreError>;
    /// Every token, revoked and expired ones too, oldest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Mark token `id` revoked at `at` (once); the record after, `None` if unknown.
    async fn revoke_token(&self, id: &str, at: String) -> Result<Option<TokenRecord>, StoreError>;
}

/// Everything a backend implements.
pub trait StoreBackend:
    KvStore + EventLog + SessionStore + RunStore + QueueStore + TokenStore
{
    /// (writes, commits) since open; `writes / commits` is the mean group-commit size.
    fn commit_stats(&self) -> (u64, u64);
}

/// When a commit counts as written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// In the write-ahead log before it is answered: survives a crash of the process,
    /// not of the machine (SQLite `synchronous=NORMAL`). The WAL is synced at
    /// checkpoints.
    #[default]
    Normal,
    /// Synced to the disk before it is answered (`synchronous=FULL`): survives power
    /// loss. One sync per group commit.
    Full,
}

/// A handle on the store; cheap to clone. Call the part traits on it.
#[derive(Clone)]
pub struct Store(Arc<dyn StoreBackend>);

impl Store {
    /// The embedded default: `switchyard.db` (SQLite) in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, Durability::default())
    }

    /// [`Store::open`] with the given durability.
    pub fn open_with(data_dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        Ok(Self(Arc::new(SqliteStore::open_with(
            data_dir, durability,
        )?)))
    }

    /// A store on another backend.
    pub fn new(backend: Arc<dyn StoreBackend>) -> Self {
        Self(backend)
    }
}

impl Deref for Store {
    type Target = dyn StoreBackend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}
