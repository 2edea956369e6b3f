//! A subscription: the events matching a pattern after a cursor — first replayed from the
//! log, then live — with no gap and no duplicate.
//!
//! The live feed is the subscriber's own bounded route (see [`super::fanout`]) and
//! publishers never wait on it. A subscriber that falls behind it (a slow SSE client)
//! loses events from the route, not from its stream: it goes back to reading the log
//! from its cursor and rejoins live when caught up. Live events arrive in `seq` order
//! (the store fans out in commit order), so "skip what is at or below the cursor" is
//! all the deduplication needed.

use std::collections::VecDeque;
use std::sync::Arc;

use super::fanout::LiveFeed;
use super::{Bus, TopicPattern};
use crate::event::Event;
use crate::store::StoreError;

/// Events read from the log per query while catching up.
const PAGE: usize = 512;

pub struct Subscription {
    bus: Bus,
    pattern: TopicPattern,
    /// The last seq this subscriber has been past (delivered, or skipped in the log as
    /// not matching).
    cursor: u64,
    live: LiveFeed,
    /// Replayed events not yet handed out.
    backlog: VecDeque<Arc<Event>>,
    catching_up: bool,
}

impl Subscription {
    /// Subscribe to `pattern` after `cursor` (`None`: from now on).
    pub(super) fn start(bus: Bus, pattern: TopicPattern, cursor: Option<u64>) -> Self {
        // The route is in place before the position is read, so nothing falls in
        // between. From now on (no cursor), live has everything: no read of the log.
        let (live, delivered) = bus.fanout.join(pattern.clone());
        let catching_up = cursor.is_some();
        let cursor = cursor.unwrap_or(delivered);
        metrics::gauge!("switchyard_bus_subscribers").increment(1);
        Self {
            bus,
            pattern,
            cursor,
            live,
            backlog: VecDeque::new(),
            catching_up,
        }
    }

    pub fn pattern(&self) -> &TopicPattern {
        &self.pattern
    }

    /// The last seq this subscription has passed.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// How far this subscription has passed in the log, matching or not: every
    /// matching event at or below it has been handed out. Unlike [`Self::cursor`], it
    /// moves past the events of other topics while following live, so a subscriber
    /// that saves it, or starts another subscription from it, neither misses an event
    /// nor goes back over a long stretch of others.
    pub fn position(&self) -> u64 {
        if let Some(first) = self.backlog.front() {
            return first.seq - 1;
        }
        if self.catching_up {
            return self.cursor;
        }
        // The fan-out queues an event on its route before it moves `last_seq` past it,
        // under one lock: read `last_seq` first, and an empty queue that did not lag
        // means every matching event up to it has been received, and so handed out.
        let delivered = self.live.last_seq();
        if self.live.len() == 0 && !self.live.is_lagged() {
            self.cursor.max(delivered)
        } else {
            self.cursor
        }
    }

    /// The next matching event; waits for one.
    pub async fn next(&mut self) -> Result<Arc<Event>, StoreError> {
        loop {
            if let Some(e) = self.ready() {
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
            // Dropped events came after everything still queued and were committed
            // before they were dropped: the log, read from the cursor, has them.
            if self.live.take_lagged() {
                metrics::counter!("switchyard_bus_subscriber_overflows_total").increment(1);
                tracing::debug!(
                    cursor = self.cursor,
                    "subscriber fell behind; catching up from the log"
                );
                self.live.clear();
                self.catching_up = true;
                continue;
            }
            match self.live.recv().await {
                Some(e) => {
                    if let Some(e) = self.take_live(e) {
                        return Ok(e);
                    }
                }
                None => return Err(StoreError::WriterStopped),
            }
        }
    }

    /// The next matching event if one is already here (replayed, or delivered live);
    /// `None` when [`Self::next`] would have to wait, or read the log.
    pub fn ready(&mut self) -> Option<Arc<Event>> {
        if let Some(e) = self.backlog.pop_front() {
            return Some(e);
        }
        if self.catching_up || self.live.is_lagged() {
            return None;
        }
        while let Some(e) = self.live.try_recv() {
            if let Some(e) = self.take_live(e) {
                return Some(e);
            }
        }
        None
    }

    /// A live event to hand out, unless it is at or below the cursor (read from the
    /// log already).
    fn take_live(&mut self, e: Arc<Event>) -> Option<Arc<Event>> {
        if e.seq <= self.cursor {
            return None;
        }
        self.cursor = e.seq;
        metrics::histogram!("switchyard_bus_subscriber_lag_events").record(self.live.len() as f64);
        Some(e)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        metrics::gauge!("switchyard_bus_subscribers").decrement(1);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::bus::{Bus, TopicPattern};
    use crate::event::NewEvent;
    use crate::store::Store;

    fn event(i: u64) -> NewEvent {
        NewEvent::runtime("t.x", "test", json!({ "i": i }))
    }

    /// A subscriber from now on (no cursor) starts where the live channel is, without
    /// reading the log: every event committed after it subscribed arrives, in order,
    /// once, while publishers run beside it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn from_now_on_misses_and_repeats_nothing_under_concurrent_publishers() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::new(Store::open(dir.path()).unwrap());
        let publishers: Vec<_> = (0..4)
            .map(|p| {
                let bus = bus.clone();
                tokio::spawn(async move {
                    for i in 0..300 {
                        bus.publish(event(p * 1000 + i)).await.unwrap();
                    }
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut sub = bus.subscribe_from(TopicPattern::parse(">").unwrap(), None);
        let marker = bus.publish(event(u64::MAX)).await.unwrap();
        let mut last = sub.cursor();
        loop {
            let e = sub.next().await.unwrap();
            assert_eq!(e.seq, last + 1, "a gap or a repeat after {last}");
            last = e.seq;
            if e.seq == marker.seq {
                break;
            }
        }
        for p in publishers {
            p.await.unwrap();
        }
    }

    /// The position moves past other topics' events, never past a matching event not
    /// yet handed out; catching up, it stops before the first one held back.
    #[tokio::test]
    async fn the_position_passes_other_topics_and_never_an_event_held_back() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::new(Store::open(dir.path()).unwrap());
        let other = |i| NewEvent::runtime("b.x", "test", json!({ "i": i }));
        let mut sub = bus.subscribe_from(TopicPattern::parse("t.>").unwrap(), None);
        for i in 0..3 {
            bus.publish(other(i)).await.unwrap();
        }
        assert_eq!(sub.position(), 3, "past the other topics");
        let mine = bus.publish(event(0)).await.unwrap();
        bus.publish(other(3)).await.unwrap();
        assert!(sub.position() < mine.seq, "not past the one queued");
        assert_eq!(sub.next().await.unwrap().seq, mine.seq);
        assert_eq!(sub.position(), 5);

        let mut replay = bus.subscribe_from(TopicPattern::parse("t.>").unwrap(), Some(0));
        assert_eq!(replay.next().await.unwrap().seq, mine.seq);
        assert_eq!(replay.position(), 5, "caught up: the log's end");
        let mut held = bus.subscribe_from(TopicPattern::parse("t.>").unwrap(), Some(0));
        let held_back = bus.publish(event(1)).await.unwrap();
        assert_eq!(held.next().await.unwrap().seq, mine.seq);
        assert_eq!(
            held.position(),
            held_back.seq - 1,
            "the next one is held back"
        );
    }

    /// After a restart the live position is the log's last event, so "from now on"
    /// does not replay the log.
    #[tokio::test]
    async fn from_now_on_after_a_restart_starts_after_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::new(Store::open(dir.path()).unwrap());
        for i in 0..3 {
            bus.publish(event(i)).await.unwrap();
        }
        drop(bus);
        let bus = Bus::new(Store::open(dir.path()).unwrap());
        let mut sub = bus.subscribe_from(TopicPattern::parse(">").unwrap(), None);
        assert_eq!(sub.cursor(), 3);
        bus.publish(event(3)).await.unwrap();
        assert_eq!(sub.next().await.unwrap().seq, 4);
    }
}
