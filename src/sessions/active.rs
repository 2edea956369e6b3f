//! A session with a worker in memory: what the worker holds ([`Active`]), the turn it
//! is running ([`RunningTurn`], what abort and steering reach), and the pin an enqueue
//! holds on it ([`Pinned`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::history::HistoryWindow;
use super::locked;
use crate::plugins::TurnControl;
use crate::store::{MessageRecord, SessionRecord};

/// A session with a worker in memory.
pub(super) struct Active {
    pub(super) record: SessionRecord,
    pub(super) wake: Notify,
    /// A message the store took at enqueue (the session was idle), for the worker to
    /// run next. At most one: the store takes none while one is processing.
    pub(super) handed: std::sync::Mutex<Option<MessageRecord>>,
    /// The store may hold queued messages: set when the worker starts, after a message
    /// is queued behind another, at recovery, and when the idle check finds some, so
    /// the worker looks at its queue only then (a look is a write).
    pub(super) queued: AtomicBool,
    /// Enqueues under way that may hand this worker a message; it stays in memory
    /// until they are done (see [`Pinned`]).
    pub(super) pinned: AtomicUsize,
    /// The session is deleted: the worker leaves memory once nothing pins it.
    pub(super) deleted: AtomicBool,
    pub(super) turn: std::sync::Mutex<Option<RunningTurn>>,
    pub(super) history: HistoryWindow,
}

impl Active {
    pub(super) fn new(record: SessionRecord, history_limit: usize) -> Self {
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
    pub(super) fn hand(&self, message: &MessageRecord) {
        *locked(&self.handed) = Some(message.clone());
        self.wake.notify_one();
    }

    /// Drop the message `id` if handed over and not started, else abort its turn.
    pub(super) fn cancel(&self, id: &str) {
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
    pub(super) fn abort_turn(&self, message_id: Option<&str>) -> bool {
        let turn = locked(&self.turn);
        let running = turn
            .as_ref()
            .filter(|t| !t.over && message_id.is_none_or(|id| t.message_id == id));
        running.inspect(|t| t.abort()).is_some()
    }
}

/// A session's worker held in memory while an enqueue may hand it a message; on drop
/// the worker looks again at what it has.
pub(super) struct Pinned(pub(super) Arc<Active>);

impl Drop for Pinned {
    fn drop(&mut self) {
        self.0.pinned.fetch_sub(1, Ordering::SeqCst);
        self.0.wake.notify_one();
    }
}

/// The turn a worker is running: what abort and steering reach.
pub(super) struct RunningTurn {
    pub(super) message_id: String,
    pub(super) control: TurnControl,
    pub(super) hard_abort: Arc<Notify>,
    /// The adapter's call is over and the turn is recording its end: there is nothing
    /// left to abort or steer, though a delete still waits for it.
    pub(super) over: bool,
}

impl RunningTurn {
    /// Cooperative first (the adapter sees `aborted()`), then cut off after the grace.
    pub(super) fn abort(&self) {
        self.control.abort();
        self.hard_abort.notify_one();
    }
}
