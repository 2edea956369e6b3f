//! A subscription: the events matching a pattern after a cursor — first replayed from the
//! log, then live — with no gap and no duplicate.
//!
//! The live channel is bounded and publishers never wait on it. A subscriber that falls
//! behind it (a slow SSE client) loses its place in the channel, not events: it goes
//! back to reading the log from its cursor and rejoins live when caught up. Live events
//! arrive in `seq` order (the bus fans out in commit order), so "skip what is at or
//! below the cursor" is all the deduplication needed.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use super::{Bus, Event, TopicPattern};
use crate::store::StoreError;

/// Events read from the log per query while catching up.
const PAGE: usize = 512;

pub struct Subscription {
    bus: Bus,
    pattern: TopicPattern,
    /// The last seq this subscriber has been past (delivered or skipped as not matching).
    cursor: u64,
    live: broadcast::Receiver<Arc<Event>>,
    /// Replayed events not yet handed out.
    backlog: VecDeque<Arc<Event>>,
    catching_up: bool,
}

impl Subscription {
    /// Subscribe to `pattern` after `cursor` (`None`: from now on).
    pub(super) async fn start(
        bus: Bus,
        pattern: TopicPattern,
        cursor: Option<u64>,
    ) -> Result<Self, StoreError> {
        // Join live before reading where the log ends, so nothing falls in between.
        let live = bus.store.committed_events();
        let cursor = match cursor {
            Some(c) => c,
            None => bus.store.last_event_seq().await?,
        };
        metrics::gauge!("switchyard_bus_subscribers").increment(1);
        Ok(Self {
            bus,
            pattern,
            cursor,
            live,
            backlog: VecDeque::new(),
            catching_up: true,
        })
    }

    /// The last seq this subscription has passed.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The next matching event; waits for one.
    pub async fn next(&mut self) -> Result<Arc<Event>, StoreError> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                return Ok(e);
            }
            if self.catching_up {
                let page = self.bus.store.events_after(self.cursor, PAGE).await?;
                self.catching_up = page.len() == PAGE;
                for e in page {
                    self.cursor = e.seq;
                    if self.pattern.matches(&e.topic) {
                        self.backlog.push_back(Arc::new(e));
                    }
                }
                continue;
            }
            match self.live.recv().await {
                Ok(e) if e.seq <= self.cursor => {}
                Ok(e) => {
                    if e.seq > self.cursor + 1 {
                        // Published before we joined and committed in between: the
                        // log has what lies between.
                        self.catching_up = true;
                        continue;
                    }
                    self.cursor = e.seq;
                    if self.pattern.matches(&e.topic) {
                        metrics::histogram!("switchyard_bus_subscriber_lag_events")
                            .record(self.live.len() as f64);
                        return Ok(e);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    metrics::counter!("switchyard_bus_subscriber_overflows_total").increment(1);
                    tracing::debug!(
                        missed,
                        cursor = self.cursor,
                        "subscriber fell behind; catching up from the log"
                    );
                    self.catching_up = true;
                }
                Err(RecvError::Closed) => return Err(StoreError::WriterStopped),
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        metrics::gauge!("switchyard_bus_subscribers").decrement(1);
    }
}
