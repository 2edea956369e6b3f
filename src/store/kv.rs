//! Plugin key-value data: each plugin's own keys, with the limits the WIT `kv`
//! interface promises.

use super::StoreError;

/// Size limits for one plugin's key-value data.
#[derive(Debug, Clone, Copy)]
pub struct KvLimits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_keys: usize,
}

impl KvLimits {
    /// The limits documented in `wit/host.wit`, with the manifest's key quota.
    pub fn with_max_keys(max_keys: usize) -> Self {
        Self {
            max_key_bytes: 256,
            max_value_bytes: 64 * 1024,
            max_keys,
        }
    }
}

/// Why a key-value operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Plugin key-value data, with the limits the WIT `kv` interface promises.
#[async_trait::async_trait]
pub trait KvStore: Send + Sync {
    async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        limits: KvLimits,
    ) -> Result<(), KvError>;
    async fn kv_delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError>;
    /// Keys starting with `prefix`, in order, at most `limit`.
    async fn kv_list_keys(
        &self,
        plugin: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// Atomically add `delta` to the integer at `key` (absent = 0).
    async fn kv_increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        limits: KvLimits,
    ) -> Result<i64, KvError>;
}
