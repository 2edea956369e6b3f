//! The bus: every fact the runtime records is an event, appended to the store's log
//! with a monotonically increasing `seq`, then fanned out in memory to live
//! subscribers.
//!
//! Invariant: an event is persisted before any subscriber sees it, so a subscriber that
//! resumes from the log never misses what it was shown live.

mod fanout;
pub mod retention;
mod subscription;
pub mod topic;

use std::sync::Arc;

use crate::event::{Event, NewEvent};
use crate::store::{Store, StoreError};
pub use fanout::Fanout;
pub use subscription::Subscription;
pub use topic::{TopicError, TopicPattern};

/// Largest `data` payload accepted, in bytes of JSON text.
pub const MAX_EVENT_DATA_BYTES: usize = 1024 * 1024;

/// Why an event was not published.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error("event data is {0} bytes, more than the limit of {MAX_EVENT_DATA_BYTES}")]
    TooLarge(usize),
    #[error("event type is empty")]
    EmptyType,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a batch was refused: the index of its first invalid event, and what is wrong.
pub type Refused = (usize, BusError);

/// Check an event before it is stored.
pub fn validate(event: &NewEvent) -> Result<(), BusError> {
    topic::validate_topic(&event.topic)?;
    if event.event_type.is_empty() {
        return Err(BusError::EmptyType);
    }
    let bytes = event.data.text().len();
    if bytes > MAX_EVENT_DATA_BYTES {
        return Err(BusError::TooLarge(bytes));
    }
    Ok(())
}

/// The bus; cheap to clone. The log is the store's; the bus validates what is
/// published, receives every commit as the store's [`CommitSink`](crate::store::CommitSink)
/// and serves subscriptions.
#[derive(Clone)]
pub struct Bus {
    store: Store,
    fanout: Arc<Fanout>,
}

impl Bus {
    /// The bus of `store`'s log: attaches its fan-out to the store's commits. One bus
    /// per store (a second would get every commit too, and serve its own subscribers).
    pub fn new(store: Store) -> Self {
        let fanout = Fanout::new(0);
        store.attach_sink(fanout.clone());
        Self { store, fanout }
    }

    /// Validate, persist, then fan out. Returns the stored event.
    pub async fn publish(&self, event: NewEvent) -> Result<Arc<Event>, BusError> {
        self.submit(event)?.await
    }

    /// Publish several events atomically (one transaction, consecutive `seq`s). The
    /// first invalid event refuses the whole batch, with its index.
    pub async fn publish_batch(&self, events: Vec<NewEvent>) -> Result<Vec<Arc<Event>>, Refused> {
        self.submit_batch(events)?.await.map_err(|e| (0, e))
    }

    /// [`Bus::publish_batch`], queued now like [`Bus::submit`].
    pub fn submit_batch(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<impl Future<Output = Result<Vec<Arc<Event>>, BusError>> + Send + use<>, Refused>
    {
        for (i, event) in events.iter().enumerate() {
            validate(event).map_err(|e| (i, e))?;
        }
        Ok(self.append(events))
    }

    /// Store validated events as one write.
    fn append(
        &self,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<Arc<Event>>, BusError>> + Send + use<> {
        let stored = self.store.append_events(events);
        async move { Ok(stored.await?) }
    }

    /// Validate and queue the event now; the future resolves once it is committed (and
    /// fanned out). Events submitted one after another are stored in that order, so a
    /// producer can keep several in flight and await only the last.
    pub fn submit(
        &self,
        event: NewEvent,
    ) -> Result<impl Future<Output = Result<Arc<Event>, BusError>> + Send + use<>, BusError> {
        validate(&event)?;
        // The store fans out right after the commit, in seq order: a live subscriber
        // never sees seq N+1 before N.
        let stored = self.store.append_event(event);
        Ok(async move { Ok(stored.await?) })
    }

    /// Publish and log instead of failing: for the runtime's own notices, which must
    /// never turn a successful operation into a failed one.
    pub async fn notify(&self, event: NewEvent) {
        let topic = event.topic.clone();
        if let Err(e) = self.publish(event).await {
            tracing::warn!(%topic, error = %e, "could not publish a runtime event");
        }
    }

    /// Events on topics matching `pattern` after `cursor` (`None`: from now on),
    /// replayed from the log and then live, without gap or duplicate.
    pub fn subscribe_from(&self, pattern: TopicPattern, cursor: Option<u64>) -> Subscription {
        Subscription::start(self.clone(), pattern, cursor)
    }

    /// The seq of the last event fanned out: a subscription from it misses nothing
    /// published later.
    pub fn head(&self) -> u64 {
        self.fanout.last_seq()
    }

    /// Stored events with `seq > after`, oldest first, at most `limit`.
    pub async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.store.events_after(after, limit).await
    }
}
