//! Sessions and their durable message queues.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{MessageStatus, StoreError};
use crate::event::{Event, NewEvent};

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
    pub status: MessageStatus,
    pub error: Option<String>,
    pub reply: Option<String>,
}

impl TurnResult {
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }
}

/// One message of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: String,
    pub seq: u64,
    pub role: String,
    pub text: String,
    pub status: MessageStatus,
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
        status: MessageStatus,
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
