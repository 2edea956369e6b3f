//! The event log, and the sinks its committed events go to.
//!
//! The store does not know who listens: the bus attaches itself as a [`CommitSink`],
//! and every backend hands its commits to a [`CommitFeed`], which passes them on in
//! `seq` order. So the store stands below the bus and never names it.

use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;

use super::StoreError;
use crate::event::{Event, NewEvent};

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
    /// Hand every event committed from now on to `sink`, after its commit and in `seq`
    /// order; `sink` first learns the `seq` of the last event committed before it
    /// ([`CommitSink::attached`]), so it can tell a reader where live delivery starts.
    fn attach_sink(&self, sink: Arc<dyn CommitSink>);
    /// Where the reader `name` saved its position in the log, if it ever did.
    async fn log_cursor(&self, name: &str) -> Result<Option<u64>, StoreError>;
    /// Save the reader `name`'s position: every event up to `seq` handled.
    async fn save_log_cursor(&self, name: &str, seq: u64) -> Result<(), StoreError>;
}

/// Where committed events go: the bus's live fan-out implements it.
pub trait CommitSink: Send + Sync {
    /// The sink is attached; `last_seq` is the last event committed before it, and
    /// every later one will reach [`CommitSink::committed`].
    fn attached(&self, last_seq: u64);
    /// Events just committed, in `seq` order, each batch after the one before it.
    /// Called from the store's commit path: it must not block.
    fn committed(&self, events: &[Arc<Event>]);
}

/// A backend's hand-off to its sinks: it calls [`CommitFeed::deliver`] after each
/// commit, in commit order.
pub struct CommitFeed {
    state: Mutex<FeedState>,
}

struct FeedState {
    /// The seq of the last event delivered (or in the log at open).
    last_seq: u64,
    sinks: Vec<Arc<dyn CommitSink>>,
}

impl CommitFeed {
    /// A feed for a log that ends at `last_seq`.
    pub fn new(last_seq: u64) -> Self {
        Self {
            state: Mutex::new(FeedState {
                last_seq,
                sinks: Vec::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, FeedState> {
        // A sink that panicked leaves the list as it was.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a sink. Under the same lock as [`CommitFeed::deliver`], so no commit falls
    /// between what `attached` is told and the first batch it gets.
    pub fn attach(&self, sink: Arc<dyn CommitSink>) {
        let mut state = self.state();
        sink.attached(state.last_seq);
        state.sinks.push(sink);
    }

    /// Hand committed events, in `seq` order, to every sink.
    pub fn deliver(&self, events: &[Arc<Event>]) {
        let Some(last) = events.last() else { return };
        let mut state = self.state();
        state.last_seq = last.seq;
        for sink in &state.sinks {
            sink.committed(events);
        }
    }
}
