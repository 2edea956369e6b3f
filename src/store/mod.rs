//! The store: Switchyard's durable state, behind one trait per part, each in its own
//! file with the records it speaks: [`KvStore`] (plugin key-value data), [`EventLog`]
//! (the bus log), [`SessionStore`] (sessions and their message queues), [`RunStore`]
//! (recipe runs), [`FiringStore`] (automation firings), [`QueueStore`] (work queues)
//! and [`TokenStore`] (API tokens). Callers hold a [`Store`] and call those traits;
//! SQLite (`sqlite/`, WAL, one writer with group commit) is the embedded backend, and
//! another can implement the same traits without touching callers.
//!
//! Invariants every backend keeps:
//! - A write is acknowledged only once it is durable.
//! - A state change and the event announcing it commit together (`announce` closures).
//! - Committed events reach the attached [`CommitSink`]s in `seq` order, after their
//!   commit ([`CommitFeed`]).
//! - The store imports the ground floor (`event`) and nothing of the parts above it.

mod events;
mod firings;
mod kv;
mod queues;
mod runs;
mod sessions;
mod sqlite;
mod status;
mod tokens;

pub use events::{CommitFeed, CommitSink, EventLog};
pub use firings::{AutomationState, FiringRecord, FiringStore};
pub use kv::{KvError, KvLimits, KvStore};
pub use queues::{ItemChange, QueueItem, QueueStore};
pub use runs::{RunFilter, RunRecord, RunStore, StepRecord};
pub use sessions::{
    AnnounceFinished, AnnounceInterrupted, AnnounceQueued, AnnounceSession, AnnounceTaken,
    EnqueueOutcome, Enqueued, FinishedTurn, MessageRecord, QueueCounts, SessionRecord,
    SessionStore, StartTurn, TurnResult,
};
pub use sqlite::SqliteStore;
pub use status::{FiringDecision, ItemStatus, MessageStatus, RunStatus, StepStatus, UnknownWord};
pub use tokens::{TokenRecord, TokenStore};

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

/// A backend's own error, behind a type that names no backend.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open { path: PathBuf, source: BackendError },
    #[error(
        "the database {path} has schema version {found}, newer than this switchyard knows ({known}); upgrade switchyard or use another --data-dir"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// The backend's own error (SQLite's), kept as the cause.
    #[error("database error: {0}")]
    Backend(#[source] BackendError),
    #[error("could not commit: {0}")]
    Commit(String),
    #[error("the store's writer has stopped")]
    WriterStopped,
    #[error("{0}")]
    Invalid(String),
    #[error("the store's worker thread stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Everything a backend implements.
pub trait StoreBackend:
    KvStore + EventLog + SessionStore + RunStore + FiringStore + QueueStore + TokenStore
{
    /// (writes, commits) since open; `writes / commits` is the mean group-commit size.
    fn commit_stats(&self) -> (u64, u64);
    /// Resolves once every write queued before it has committed (the last step of
    /// shutdown).
    fn flush(&self) -> BoxFuture<'static, Result<(), StoreError>>;
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

/// The store's configuration: `[store]` in `switchyard.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `normal` (survives a process crash) or `full` (synced: survives power loss).
    pub durability: Durability,
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
