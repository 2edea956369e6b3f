//! Durable work queues: items, their leases and transitions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ItemStatus, StoreError};
use crate::event::NewEvent;

/// An item of a work queue as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueItem {
    pub id: String,
    pub queue: String,
    pub payload: serde_json::Value,
    /// Higher first.
    pub priority: i64,
    pub idempotency_key: Option<String>,
    pub status: ItemStatus,
    /// Claims so far.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Not claimed before (delay, backoff).
    pub available_at: String,
    /// Dead if not done by then (TTL).
    pub expires_at: Option<String>,
    /// Proves the claim to `extend`, `ack` and `nack`; never listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_token: Option<String>,
    pub lease_expires_at: Option<String>,
    pub worker: Option<String>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A transition of one queue item, run inside the store's write: the new state and
/// its event, or why the transition is refused (the item is left as it was).
pub type ItemChange = Box<dyn FnMut(QueueItem) -> Result<(QueueItem, NewEvent), String> + Send>;

/// Durable work queues.
#[async_trait::async_trait]
pub trait QueueStore: Send + Sync {
    /// Insert `item` with its event, unless its queue already has an item with the
    /// same idempotency key: then that item, and `false`.
    async fn enqueue_item(
        &self,
        item: QueueItem,
        event: NewEvent,
    ) -> Result<(QueueItem, bool), StoreError>;
    /// Apply `change` to item `id` of `queue`: `None` if there is no such item,
    /// `Some(Err)` if the change refused.
    async fn change_item(
        &self,
        queue: &str,
        id: &str,
        change: ItemChange,
    ) -> Result<Option<Result<QueueItem, String>>, StoreError>;
    /// Apply `change` to up to `limit` ready items of `queue` (best first) at `now`.
    async fn claim_items(
        &self,
        queue: &str,
        now: String,
        limit: usize,
        change: ItemChange,
    ) -> Result<Vec<QueueItem>, StoreError>;
    /// Apply `change` to up to `limit` items whose lease or TTL ran out by `now`.
    async fn reap_items(
        &self,
        now: String,
        limit: usize,
        change: ItemChange,
    ) -> Result<Vec<QueueItem>, StoreError>;
    async fn queue_item(&self, queue: &str, id: &str) -> Result<Option<QueueItem>, StoreError>;
    /// Items of `queue`, newest first, with `status` if given, ids before `before`.
    async fn queue_items(
        &self,
        queue: &str,
        status: Option<ItemStatus>,
        before: Option<String>,
        limit: usize,
    ) -> Result<Vec<QueueItem>, StoreError>;
    /// Every queue with its item count by status.
    async fn queue_status_counts(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<ItemStatus, u64>>, StoreError>;
    /// When the next item of `queue` becomes ready (delay or backoff), if any waits.
    async fn next_available(&self, queue: &str) -> Result<Option<String>, StoreError>;
    /// Delete item `id` of `queue` if it is dead; whether it was.
    async fn drop_dead_item(&self, queue: &str, id: &str) -> Result<bool, StoreError>;
}
