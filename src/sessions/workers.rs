//! The workers: one task per session with work, in memory while it has some. The
//! registry of the sessions that have one ([`Workers`]), and a worker's loop: take the
//! next message, run its turn, leave memory when idle or at shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use super::active::Active;
use super::{Inner, SessionEvent, locked};
use crate::plugins::types::{Message, Role};
use crate::store::{MessageRecord, SessionRecord, StoreError};

/// The sessions with a worker in memory, by id and by key.
///
/// By key, it spares the hot paths (a message, a chat turn) a read of the store to
/// find the session: while a session has a worker, its record is here. A deleted
/// session's key is forgotten once the delete is stored, and its worker leaves memory
/// as soon as its turn has ended and no enqueue pins it.
#[derive(Default)]
pub(super) struct Workers {
    by_id: HashMap<String, Arc<Active>>,
    by_key: HashMap<String, Arc<Active>>,
}

impl Workers {
    pub(super) fn get(&self, id: &str) -> Option<&Arc<Active>> {
        self.by_id.get(id)
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(super) fn insert(&mut self, active: Arc<Active>) {
        self.by_key
            .insert(active.record.key.clone(), active.clone());
        self.by_id.insert(active.record.id.clone(), active);
    }

    pub(super) fn remove(&mut self, active: &Arc<Active>) {
        self.by_id.remove(&active.record.id);
        shrink(&mut self.by_id);
        self.forget_key(&active.record.key, |named| named == active.record.id);
    }

    /// The session of `record` is gone from the store: forget its key, and have its
    /// worker leave memory without waiting out the idle timeout.
    pub(super) fn forget_deleted(&mut self, record: &SessionRecord) {
        self.forget_key(&record.key, |named| named == record.id);
        if let Some(active) = self.by_id.get(&record.id) {
            active.deleted.store(true, Ordering::SeqCst);
            active.wake.notify_one();
        }
    }

    /// Forget `key` if the session it names here is `stale` (by its id).
    pub(super) fn forget_key(&mut self, key: &str, stale: impl FnOnce(&str) -> bool) {
        if self.by_key.get(key).is_some_and(|a| stale(&a.record.id)) {
            self.by_key.remove(key);
            shrink(&mut self.by_key);
        }
    }

    pub(super) fn record_by_key(&self, key: &str) -> Option<SessionRecord> {
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

impl Inner {
    /// A session's worker: take queued messages in order, one turn each; leave memory
    /// when idle.
    pub(super) async fn work(self: Arc<Self>, active: Arc<Active>) {
        let id = active.record.id.clone();
        loop {
            // At shutdown a message handed at enqueue (already `processing`) still runs,
            // and so does one an enqueue under way hands over (it pins the worker);
            // nothing more is taken from the queue.
            if self.stopping.is_cancelled() && locked(&active.handed).is_none() {
                let mut map = self.active.lock().await;
                if active.pinned.load(Ordering::SeqCst) == 0 && locked(&active.handed).is_none() {
                    map.remove(&active);
                    return;
                }
                drop(map);
                // Woken when the message is handed or the pin is dropped (each stores
                // a permit if it comes first).
                active.wake.notified().await;
                continue;
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
}

/// The event of a turn starting on message `m`.
pub(super) fn turn_started(
    session_id: &str,
    key: &str,
    m: &MessageRecord,
) -> crate::event::NewEvent {
    SessionEvent::TurnStarted.event(
        session_id,
        Some(key),
        json!({ "message_id": m.id, "input": m.text }),
    )
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
