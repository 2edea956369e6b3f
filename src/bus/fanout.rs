//! Live fan-out: committed events handed, in `seq` order, to the subscribers whose
//! pattern matches, without waking the others.
//!
//! Routes are indexed by their pattern's literal prefix (the tokens before its first
//! wildcard), so an event looks up the prefixes of its own topic (a few hash lookups)
//! instead of testing every subscriber: with a chat stream open on each of N sessions,
//! a session's event wakes one of them, not N.
//!
//! Each route has its own bounded queue, and a publisher never waits on it: an event
//! that finds the queue full is dropped and the route marked lagged. The subscriber
//! reads what it lost back from the log (see [`super::Subscription`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::TopicPattern;
use crate::event::Event;
use crate::store::CommitSink;

/// Events a route buffers for its subscriber before it is marked lagged.
const ROUTE_QUEUE: usize = 4096;

/// The live routes of one event log; the store hands it every commit through
/// [`CommitSink`].
pub struct Fanout {
    routes: Mutex<Routes>,
}

struct Routes {
    /// The seq of the last event delivered: a route added now gets every later one.
    last_seq: u64,
    next_id: u64,
    /// Routes by the literal prefix of their pattern (`""` when it starts with a
    /// wildcard).
    by_prefix: HashMap<String, Vec<Route>>,
}

struct Route {
    id: u64,
    pattern: TopicPattern,
    queue: mpsc::Sender<Arc<Event>>,
    lagged: Arc<AtomicBool>,
}

/// One subscriber's end of a route; dropping it removes the route.
pub struct LiveFeed {
    fanout: Arc<Fanout>,
    id: u64,
    prefix: String,
    queue: mpsc::Receiver<Arc<Event>>,
    lagged: Arc<AtomicBool>,
}

impl Fanout {
    /// A fan-out whose log ends at `last_seq`.
    pub fn new(last_seq: u64) -> Arc<Self> {
        Arc::new(Self {
            routes: Mutex::new(Routes {
                last_seq,
                next_id: 0,
                by_prefix: HashMap::new(),
            }),
        })
    }

    fn routes(&self) -> MutexGuard<'_, Routes> {
        // A panic while holding the lock leaves the map consistent (no partial edits).
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hand committed events, in `seq` order, to the routes that match them.
    pub fn deliver(&self, events: &[Arc<Event>]) {
        let mut routes = self.routes();
        for event in events {
            for prefix in prefixes(&event.topic) {
                let Some(list) = routes.by_prefix.get(prefix) else {
                    continue;
                };
                for route in list.iter().filter(|r| r.pattern.matches(&event.topic)) {
                    if let Err(mpsc::error::TrySendError::Full(_)) =
                        route.queue.try_send(event.clone())
                    {
                        route.lagged.store(true, Ordering::Release);
                    }
                }
            }
            routes.last_seq = event.seq;
        }
    }

    /// The seq of the last event delivered.
    pub fn last_seq(&self) -> u64 {
        self.routes().last_seq
    }

    /// A route for `pattern`, and the seq of the last event delivered before it: the
    /// feed gets every matching event after that one, unless it lags.
    pub fn join(self: &Arc<Self>, pattern: TopicPattern) -> (LiveFeed, u64) {
        let prefix = pattern.literal_prefix();
        let (queue, receiver) = mpsc::channel(ROUTE_QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut routes = self.routes();
        let id = routes.next_id;
        routes.next_id += 1;
        routes
            .by_prefix
            .entry(prefix.clone())
            .or_default()
            .push(Route {
                id,
                pattern,
                queue,
                lagged: lagged.clone(),
            });
        let last_seq = routes.last_seq;
        drop(routes);
        let feed = LiveFeed {
            fanout: self.clone(),
            id,
            prefix,
            queue: receiver,
            lagged,
        };
        (feed, last_seq)
    }

    /// Live routes now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.routes().by_prefix.values().map(Vec::len).sum()
    }
}

impl CommitSink for Fanout {
    fn attached(&self, last_seq: u64) {
        self.routes().last_seq = last_seq;
    }

    fn committed(&self, events: &[Arc<Event>]) {
        self.deliver(events);
    }
}

impl LiveFeed {
    /// Did the route drop events since the last call? Clears the mark.
    pub fn take_lagged(&self) -> bool {
        self.lagged.swap(false, Ordering::AcqRel)
    }

    /// Has the route dropped events since the last `take_lagged`?
    pub fn is_lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }

    /// The seq of the last event the fan-out delivered (to any route).
    pub fn last_seq(&self) -> u64 {
        self.fanout.last_seq()
    }

    /// Drop what is queued: a subscriber that lagged reads it back from the log, and a
    /// full queue would make it lag again.
    pub fn clear(&mut self) {
        while self.queue.try_recv().is_ok() {}
    }

    /// Events delivered and not yet received.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// The next delivered event; `None` once the fan-out is gone.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        self.queue.recv().await
    }

    /// The next delivered event if one is queued.
    pub fn try_recv(&mut self) -> Option<Arc<Event>> {
        self.queue.try_recv().ok()
    }
}

impl Drop for LiveFeed {
    fn drop(&mut self) {
        let mut routes = self.fanout.routes();
        if let Some(list) = routes.by_prefix.get_mut(&self.prefix) {
            list.retain(|r| r.id != self.id);
            if list.is_empty() {
                routes.by_prefix.remove(&self.prefix);
            }
        }
    }
}

/// `""`, then each dot-ended prefix of `topic`, then `topic` itself: `a.b` gives `""`,
/// `a`, `a.b`.
fn prefixes(topic: &str) -> impl Iterator<Item = &str> {
    let dots = topic.match_indices('.').map(|(i, _)| i);
    std::iter::once(0)
        .chain(dots)
        .chain(std::iter::once(topic.len()))
        .map(|end| &topic[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventData;

    fn event(seq: u64, topic: &str) -> Arc<Event> {
        Arc::new(Event {
            seq,
            id: seq.to_string(),
            topic: topic.into(),
            event_type: "t".into(),
            source: "test".into(),
            subject: None,
            time: String::new(),
            correlation_id: None,
            data: EventData::null(),
        })
    }

    fn pattern(p: &str) -> TopicPattern {
        TopicPattern::parse(p).unwrap()
    }

    fn drain(feed: &mut LiveFeed) -> Vec<u64> {
        std::iter::from_fn(|| feed.queue.try_recv().ok().map(|e| e.seq)).collect()
    }

    #[test]
    fn prefixes_of_a_topic() {
        assert_eq!(
            prefixes("a.bc.d").collect::<Vec<_>>(),
            ["", "a", "a.bc", "a.bc.d"]
        );
        assert_eq!(prefixes("a").collect::<Vec<_>>(), ["", "a"]);
    }

    #[test]
    fn each_route_gets_what_its_pattern_matches_and_nothing_else() {
        let fanout = Fanout::new(0);
        let (mut all, _) = fanout.join(pattern(">"));
        let (mut one, _) = fanout.join(pattern("session.s1.>"));
        let (mut star, _) = fanout.join(pattern("session.*.turn"));
        let (mut exact, _) = fanout.join(pattern("session.s2"));
        fanout.deliver(&[
            event(1, "session.s1.turn"),
            event(2, "session.s2.turn"),
            event(3, "session.s2"),
            event(4, "session.s1"),
            event(5, "plugin.loaded"),
        ]);
        assert_eq!(drain(&mut all), [1, 2, 3, 4, 5]);
        assert_eq!(drain(&mut one), [1]);
        assert_eq!(drain(&mut star), [1, 2]);
        assert_eq!(drain(&mut exact), [3]);
    }

    #[test]
    fn a_route_joined_later_starts_after_what_was_delivered() {
        let fanout = Fanout::new(7);
        fanout.deliver(&[event(8, "a")]);
        let (mut feed, last) = fanout.join(pattern("a"));
        assert_eq!(last, 8);
        fanout.deliver(&[event(9, "a")]);
        assert_eq!(drain(&mut feed), [9]);
    }

    #[test]
    fn a_full_route_is_marked_lagged_and_the_others_go_on() {
        let fanout = Fanout::new(0);
        let (mut slow, _) = fanout.join(pattern("a"));
        let (mut other, _) = fanout.join(pattern("b"));
        let mut events: Vec<_> = (1..=ROUTE_QUEUE as u64 + 1)
            .map(|s| event(s, "a"))
            .collect();
        events.push(event(ROUTE_QUEUE as u64 + 2, "b"));
        fanout.deliver(&events);
        assert!(slow.take_lagged());
        assert!(!slow.take_lagged(), "taking the mark clears it");
        assert_eq!(drain(&mut slow).len(), ROUTE_QUEUE);
        assert_eq!(drain(&mut other), [ROUTE_QUEUE as u64 + 2]);
        assert!(!other.take_lagged());
    }

    #[test]
    fn dropping_a_feed_removes_its_route() {
        let fanout = Fanout::new(0);
        let (a, _) = fanout.join(pattern("x.>"));
        let (b, _) = fanout.join(pattern("x.>"));
        assert_eq!(fanout.len(), 2);
        drop(a);
        assert_eq!(fanout.len(), 1);
        drop(b);
        assert_eq!(fanout.len(), 0);
        assert!(fanout.routes().by_prefix.is_empty());
    }
}
