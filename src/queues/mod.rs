//! Durable work queues: jobs that are not a conversation, handed to workers with a
//! lease.
//!
//! An item is `pending` until a worker claims it (`claimed`, with a lease and a token
//! that proves the claim); `extend` renews the lease (`running`); `ack` ends it
//! (`succeeded`), `nack` fails the attempt (`failed`, retried after a backoff) and
//! `cancel` drops it (`canceled`). A lease that runs out makes it `timed_out` (retried
//! after a backoff). After `max_attempts` claims, a failure makes it `dead`: the
//! queue's dead-letter list, from which it can be retried or dropped. A TTL that runs
//! out makes it `dead` too.
//!
//! Invariants:
//! - Every transition is one write, decided on the item as it is on disk, with its bus
//!   event (`queue.<name>.<status>`).
//! - Delivery is at least once: a claim that is never acked comes back when its lease
//!   runs out; a stale worker's `ack` is refused by the token.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use tokio::sync::Notify;

mod config;
pub mod served;

pub use config::{QueuesConfig, ServedQueueConfig};

use crate::event::{EventData, NewEvent};
use crate::store::{ItemChange, ItemStatus, QueueItem, Store, StoreError};

/// Why a queue operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no item `{id}` in queue `{queue}`")]
    NotFound { queue: String, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new item.
#[derive(Debug, Clone, Default)]
pub struct NewItem {
    pub payload: Value,
    pub priority: i64,
    pub idempotency_key: Option<String>,
    /// Not claimed before this long.
    pub delay: Duration,
    /// Dead if not done within this long.
    pub ttl: Option<Duration>,
    pub max_attempts: Option<u32>,
}

/// A claim request.
#[derive(Debug, Clone)]
pub struct Claim {
    pub worker: String,
    pub lease: Option<Duration>,
    /// Wait this long for an item when none is ready.
    pub wait: Duration,
    pub max: usize,
}

/// The queues service; cheap to clone.
#[derive(Clone)]
pub struct Queues {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: QueuesConfig,
    /// Long-polling claims wait here, per queue.
    ready: std::sync::Mutex<HashMap<String, Arc<Notify>>>,
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A new item's id, greater than every id this process made before: items made in the
/// same millisecond (the precision of `available_at`) are still claimed in the order
/// they were made, where `Ulid::new` would order them by its random bits.
fn item_id() -> String {
    static IDS: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    let mut ids = IDS.lock().unwrap_or_else(|p| p.into_inner());
    // An error means 2^80 ids in one millisecond.
    ids.generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

fn after(d: Duration) -> String {
    stamp(Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
}

/// A queue name is one bus topic token.
pub fn validate_name(name: &str) -> Result<(), QueueError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(QueueError::Invalid {
            field: "queue",
            message: format!("`{name}` is not a queue name: use 1-64 letters, digits, `-` and `_`"),
        })
    }
}

/// The event of an item's transition: `queue.<name>.<status>`, the item as data
/// without its lease token, which proves a claim and goes to the claimer alone.
fn event(item: &mut QueueItem) -> NewEvent {
    // Taken out for the moment the item is written (it is skipped when `None`), so
    // that the item is written straight to JSON text, not copied first.
    let lease_token = item.lease_token.take();
    let data = EventData::of(item);
    item.lease_token = lease_token;
    NewEvent {
        topic: format!("queue.{}.{}", item.queue, item.status),
        event_type: format!("switchyard.queue.{}", item.status),
        source: "switchyard".into(),
        subject: Some(item.id.clone()),
        correlation_id: None,
        data,
    }
}

fn change(f: impl FnMut(QueueItem) -> Result<QueueItem, String> + Send + 'static) -> ItemChange {
    let mut f = f;
    Box::new(move |item| {
        let mut changed = f(item)?;
        changed.updated_at = stamp(Utc::now());
        let e = event(&mut changed);
        Ok((changed, e))
    })
}

impl Queues {
    pub fn new(store: Store, config: QueuesConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                ready: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &QueuesConfig {
        &self.inner.config
    }

    fn notify(&self, queue: &str) -> Arc<Notify> {
        self.inner
            .ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(queue.to_owned())
            .or_default()
            .clone()
    }

    /// The wait before retry number `attempt` (1-based) of item `id`: `backoff`
    /// doubled per attempt up to `max_backoff`, ±20 % (a hash of id and attempt, so
    /// workers retrying together spread out, and a test can predict it).
    pub fn backoff(&self, id: &str, attempt: u32) -> Duration {
        use sha2::Digest;
        let c = &self.inner.config;
        let base = c
            .backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(c.max_backoff);
        let digest = sha2::Sha256::digest(format!("{id}#{attempt}").as_bytes());
        let unit = f64::from(u16::from_le_bytes([digest[0], digest[1]])) / f64::from(u16::MAX);
        base.mul_f64(0.8 + 0.4 * unit)
    }

    /// Add an item; with an idempotency key already used in this queue, the first item
    /// instead, and `false`.
    pub async fn enqueue(
        &self,
        queue: &str,
        new: NewItem,
    ) -> Result<(QueueItem, bool), QueueError> {
        validate_name(queue)?;
        let max_attempts = new
            .max_attempts
            .unwrap_or(self.inner.config.default_max_attempts);
        if max_attempts == 0 {
            return Err(QueueError::Invalid {
                field: "max_attempts",
                message: "must be at least 1".into(),
            });
        }
        let now = Utc::now();
        let mut item = QueueItem {
            id: item_id(),
            queue: queue.to_owned(),
            payload: new.payload,
            priority: new.priority,
            idempotency_key: new.idempotency_key,
            status: ItemStatus::Pending,
            attempts: 0,
            max_attempts,
            available_at: stamp(now + chrono::Duration::from_std(new.delay).unwrap_or_default()),
            expires_at: new.ttl.map(after),
            lease_token: None,
            lease_expires_at: None,
            worker: None,
            result: None,
            error: None,
            created_at: stamp(now),
            updated_at: stamp(now),
        };
        let e = event(&mut item);
        let (item, created) = self.inner.store.enqueue_item(item, e).await?;
        if created {
            self.notify(queue).notify_waiters();
        }
        Ok((item, created))
    }

    /// Claim up to `max` ready items, best first (priority, then age), each with a
    /// lease; wait up to `wait` for one when none is ready.
    pub async fn claim(&self, queue: &str, claim: Claim) -> Result<Vec<QueueItem>, QueueError> {
        validate_name(queue)?;
        let lease = self.lease(claim.lease)?;
        let wait = claim.wait.min(self.inner.config.max_wait);
        let deadline = tokio::time::Instant::now() + wait;
        let notify = self.notify(queue);
        loop {
            // Registered before looking, so an enqueue in between is not missed.
            let woken = notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let worker = claim.worker.clone();
            let items = self
                .inner
                .store
                .claim_items(
                    queue,
                    stamp(Utc::now()),
                    claim.max.clamp(1, 100),
                    change(move |mut item| {
                        item.status = ItemStatus::Claimed;
                        item.attempts += 1;
                        item.lease_token = Some(ulid::Ulid::new().to_string());
                        item.lease_expires_at = Some(after(lease));
                        item.worker = Some(worker.clone());
                        Ok(item)
                    }),
                )
                .await?;
            let now = tokio::time::Instant::now();
            if !items.is_empty() || now >= deadline {
                return Ok(items);
            }
            // Sleep until woken, the next delayed item, or the deadline.
            let next = self
                .inner
                .store
                .next_available(queue)
                .await?
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| {
                    (t.with_timezone(&Utc) - Utc::now())
                        .to_std()
                        .unwrap_or_default()
                });
            let until = next.map_or(deadline, |d| deadline.min(now + d));
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    fn lease(&self, lease: Option<Duration>) -> Result<Duration, QueueError> {
        let lease = lease.unwrap_or(self.inner.config.default_lease);
        if lease.is_zero() || lease > self.inner.config.max_lease {
            return Err(QueueError::Invalid {
                field: "lease",
                message: format!(
                    "must be more than 0 and at most {}",
                    humantime::format_duration(self.inner.config.max_lease)
                ),
            });
        }
        Ok(lease)
    }

    async fn change(&self, queue: &str, id: &str, c: ItemChange) -> Result<QueueItem, QueueError> {
        match self.inner.store.change_item(queue, id, c).await? {
            None => Err(QueueError::NotFound {
                queue: queue.to_owned(),
                id: id.to_owned(),
            }),
            Some(Err(refused)) => Err(QueueError::Conflict(refused)),
            Some(Ok(item)) => Ok(item),
        }
    }

    /// Renew the lease of a claimed item (it is then `running`).
    pub async fn extend(
        &self,
        queue: &str,
        id: &str,
        token: &str,
        lease: Option<Duration>,
    ) -> Result<QueueItem, QueueError> {
        let lease = self.lease(lease)?;
        let token = token.to_owned();
        self.change(
            queue,
            id,
            change(move |mut item| {
                holds_lease(&item, &token)?;
                item.status = ItemStatus::Running;
                item.lease_expires_at = Some(after(lease));
                Ok(item)
            }),
        )
        .await
    }

    /// The work is done: `succeeded`, with its result.
    pub async fn ack(
        &self,
        queue: &str,
        id: &str,
        token: &str,
        result: Value,
    ) -> Result<QueueItem, QueueError> {
        let token = token.to_owned();
        self.change(
            queue,
            id,
            change(move |mut item| {
                holds_lease(&item, &token)?;
                item.status = ItemStatus::Succeeded;
                item.result = Some(result.clone());
                item.error = None;
                release(&mut item);
                Ok(item)
            }),
        )
        .await
    }

    /// The attempt failed: retried after the backoff (`failed`) unless `retry` is
    /// false or it was the last attempt (`dead`).
    pub async fn nack(
        &self,
        queue: &str,
        id: &str,
        token: &str,
        reason: String,
        retry: bool,
    ) -> Result<QueueItem, QueueError> {
        let token = token.to_owned();
        let this = self.clone();
        let item = self
            .change(
                queue,
                id,
                change(move |mut item| {
                    holds_lease(&item, &token)?;
                    this.fail(&mut item, ItemStatus::Failed, reason.clone(), retry);
                    Ok(item)
                }),
            )
            .await?;
        self.notify(queue).notify_waiters();
        Ok(item)
    }

    /// An attempt that ended badly: retry later, or dead.
    fn fail(&self, item: &mut QueueItem, status: ItemStatus, reason: String, retry: bool) {
        release(item);
        item.error = Some(reason);
        if retry && item.attempts < item.max_attempts {
            item.status = status;
            item.available_at = after(self.backoff(&item.id, item.attempts));
        } else {
            item.status = ItemStatus::Dead;
        }
    }

    /// Drop an item that has not ended.
    pub async fn cancel(&self, queue: &str, id: &str) -> Result<QueueItem, QueueError> {
        self.change(
            queue,
            id,
            change(|mut item| {
                if item.status.is_final() {
                    return Err(format!(
                        "item `{}` has already ended ({})",
                        item.id, item.status
                    ));
                }
                item.status = ItemStatus::Canceled;
                release(&mut item);
                Ok(item)
            }),
        )
        .await
    }

    /// Put a dead item back in the queue with its attempts reset.
    pub async fn retry_dead(&self, queue: &str, id: &str) -> Result<QueueItem, QueueError> {
        let item = self
            .change(
                queue,
                id,
                change(|mut item| {
                    if item.status != ItemStatus::Dead {
                        return Err(format!("item `{}` is {}, not dead", item.id, item.status));
                    }
                    item.status = ItemStatus::Pending;
                    item.attempts = 0;
                    item.available_at = stamp(Utc::now());
                    item.expires_at = None;
                    Ok(item)
                }),
            )
            .await?;
        self.notify(queue).notify_waiters();
        Ok(item)
    }

    /// Delete a dead item.
    pub async fn drop_dead(&self, queue: &str, id: &str) -> Result<(), QueueError> {
        if self.inner.store.drop_dead_item(queue, id).await? {
            return Ok(());
        }
        match self.inner.store.queue_item(queue, id).await? {
            None => Err(QueueError::NotFound {
                queue: queue.to_owned(),
                id: id.to_owned(),
            }),
            Some(item) => Err(QueueError::Conflict(format!(
                "item `{id}` is {}, not dead",
                item.status
            ))),
        }
    }

    pub async fn get(&self, queue: &str, id: &str) -> Result<QueueItem, QueueError> {
        let mut item = self
            .inner
            .store
            .queue_item(queue, id)
            .await?
            .ok_or_else(|| QueueError::NotFound {
                queue: queue.to_owned(),
                id: id.to_owned(),
            })?;
        item.lease_token = None;
        Ok(item)
    }

    /// Items newest first, by status if given.
    pub async fn list(
        &self,
        queue: &str,
        status: Option<String>,
        before: Option<String>,
        limit: usize,
    ) -> Result<Vec<QueueItem>, QueueError> {
        validate_name(queue)?;
        let status = match status.as_deref().map(str::parse::<ItemStatus>) {
            None => None,
            Some(Ok(status)) => Some(status),
            Some(Err(e)) => {
                return Err(QueueError::Invalid {
                    field: "status",
                    message: format!("no status `{}`; one of {}", e.word, e.expected),
                });
            }
        };
        let mut items = self
            .inner
            .store
            .queue_items(queue, status, before, limit)
            .await?;
        for i in &mut items {
            i.lease_token = None;
        }
        Ok(items)
    }

    /// Every queue with its item count by status.
    pub async fn summaries(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<ItemStatus, u64>>, QueueError> {
        Ok(self.inner.store.queue_status_counts().await?)
    }

    /// Release expired leases (`timed_out`, or `dead` after the last attempt) and kill
    /// items past their TTL, every `reap_every`, until the process ends.
    pub async fn reap(self) {
        let mut tick = tokio::time::interval(self.inner.config.reap_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = stamp(Utc::now());
            let this = self.clone();
            let cut = now.clone();
            let reaped = self
                .inner
                .store
                .reap_items(
                    now,
                    1000,
                    change(move |mut item| {
                        if item
                            .expires_at
                            .as_deref()
                            .is_some_and(|e| e <= cut.as_str())
                        {
                            this.fail(
                                &mut item,
                                ItemStatus::Dead,
                                "expired: not done within its ttl".into(),
                                false,
                            );
                        } else {
                            let why = format!(
                                "lease of worker `{}` ran out",
                                item.worker.clone().unwrap_or_default()
                            );
                            metrics::counter!("switchyard_queue_lease_expiries_total", "queue" => item.queue.clone())
                                .increment(1);
                            this.fail(&mut item, ItemStatus::TimedOut, why, true);
                        }
                        Ok(item)
                    }),
                )
                .await;
            match reaped {
                Ok(items) => {
                    let mut queues: Vec<&str> = items.iter().map(|i| i.queue.as_str()).collect();
                    queues.dedup();
                    for q in queues {
                        self.notify(q).notify_waiters();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "queues: cannot reap expired leases; retrying")
                }
            }
        }
    }
}

/// The item is no longer held by anyone.
fn release(item: &mut QueueItem) {
    item.lease_token = None;
    item.lease_expires_at = None;
}

/// Refuse a transition by anyone but the holder of a live lease.
fn holds_lease(item: &QueueItem, token: &str) -> Result<(), String> {
    if !item.status.is_leased() {
        return Err(format!(
            "item `{}` is {}, not claimed",
            item.id, item.status
        ));
    }
    if item.lease_token.as_deref() != Some(token) {
        return Err(format!("item `{}` is claimed under another lease", item.id));
    }
    if item
        .lease_expires_at
        .as_deref()
        .is_some_and(|t| t <= stamp(Utc::now()).as_str())
    {
        return Err(format!("the lease on item `{}` has run out", item.id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queues::new(Store::open(dir.path()).unwrap(), QueuesConfig::default());
        for attempt in 1..=12 {
            let base = Duration::from_secs(1)
                .saturating_mul(2u32.pow(attempt - 1))
                .min(Duration::from_secs(300));
            let b = q.backoff("item", attempt);
            assert!(
                b >= base.mul_f64(0.8) && b <= base.mul_f64(1.2),
                "{attempt}: {b:?}"
            );
            assert_eq!(b, q.backoff("item", attempt));
        }
        assert!(validate_name("jobs.x").is_err());
        assert!(validate_name("build-jobs_2").is_ok());
    }

    /// Items of one priority are claimed oldest first, also when many were made in the
    /// same millisecond.
    #[tokio::test]
    async fn items_are_claimed_in_the_order_they_were_made() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queues::new(Store::open(dir.path()).unwrap(), QueuesConfig::default());
        for n in 0..50 {
            q.enqueue(
                "fifo",
                NewItem {
                    payload: n.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        let claim = Claim {
            worker: "w".into(),
            lease: None,
            wait: Duration::ZERO,
            max: 50,
        };
        let order: Vec<Value> = q
            .claim("fifo", claim)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.payload)
            .collect();
        assert_eq!(order, (0..50).map(Value::from).collect::<Vec<_>>());
    }

    /// The counts kept by the queue writes equal a count of the items after every kind of
    /// transition.
    #[tokio::test]
    async fn counts_follow_every_transition() {
        let dir = tempfile::tempdir().unwrap();
        let config = QueuesConfig {
            reap_every: Duration::from_millis(20),
            ..QueuesConfig::default()
        };
        let q = Queues::new(Store::open(dir.path()).unwrap(), config);
        let claim = |max| Claim {
            worker: "w".into(),
            lease: None,
            wait: Duration::ZERO,
            max,
        };
        for queue in ["a", "b"] {
            for n in 0..6 {
                q.enqueue(
                    queue,
                    NewItem {
                        payload: n.into(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            }
        }
        let items = q.claim("a", claim(4)).await.unwrap();
        let token = |i: &QueueItem| i.lease_token.clone().unwrap();
        q.ack("a", &items[0].id, &token(&items[0]), Value::Null)
            .await
            .unwrap();
        q.nack("a", &items[1].id, &token(&items[1]), "x".into(), true)
            .await
            .unwrap();
        q.nack("a", &items[2].id, &token(&items[2]), "x".into(), false)
            .await
            .unwrap();
        q.cancel("b", &q.claim("b", claim(1)).await.unwrap()[0].id)
            .await
            .unwrap();
        q.retry_dead("a", &items[2].id).await.unwrap();
        let dead = q.claim("a", claim(6)).await.unwrap();
        q.nack("a", &dead[0].id, &token(&dead[0]), "x".into(), false)
            .await
            .unwrap();
        q.drop_dead("a", &dead[0].id).await.unwrap();
        // The reaper's two: a lease that runs out (timed_out), a TTL that passes (dead).
        let short = Duration::from_millis(50);
        let expiring = q
            .enqueue(
                "c",
                NewItem {
                    ttl: Some(short),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .0;
        let leased = q
            .claim(
                "b",
                Claim {
                    lease: Some(short),
                    ..claim(1)
                },
            )
            .await
            .unwrap();
        tokio::spawn(q.clone().reap());
        for _ in 0..250 {
            let timed_out = q.get("b", &leased[0].id).await.unwrap().status == ItemStatus::TimedOut;
            let dead = q.get("c", &expiring.id).await.unwrap().status == ItemStatus::Dead;
            if timed_out && dead {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            q.get("b", &leased[0].id).await.unwrap().status,
            ItemStatus::TimedOut
        );
        assert_eq!(
            q.get("c", &expiring.id).await.unwrap().status,
            ItemStatus::Dead
        );

        let counted = q.summaries().await.unwrap();
        let c = rusqlite::Connection::open(dir.path().join("switchyard.db")).unwrap();
        let mut stmt = c
            .prepare("SELECT queue, status, COUNT(*) FROM queue_items GROUP BY queue, status")
            .unwrap();
        let mut expected: BTreeMap<String, BTreeMap<ItemStatus, u64>> = BTreeMap::new();
        for row in stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?.parse::<ItemStatus>().unwrap(),
                    r.get::<_, i64>(2)?,
                ))
            })
            .unwrap()
        {
            let (queue, status, n) = row.unwrap();
            expected.entry(queue).or_default().insert(status, n as u64);
        }
        assert_eq!(counted, expected);
        assert!(expected["a"].len() >= 3, "{expected:?}");
    }
}
