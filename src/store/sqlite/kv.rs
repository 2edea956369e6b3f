//! Per-plugin key-value data (`plugin_kv`), with the limits the WIT `kv` interface promises.

use rusqlite::{OptionalExtension, params};

use super::{CachedStatements, SqliteStore};
use crate::store::{KvError, KvLimits, KvStore, StoreError};

impl From<rusqlite::Error> for KvError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

fn check_key(key: &str, limits: &KvLimits) -> Result<(), KvError> {
    if key.len() > limits.max_key_bytes {
        return Err(KvError::TooLarge(format!(
            "key of {} bytes is longer than the limit of {} bytes",
            key.len(),
            limits.max_key_bytes
        )));
    }
    Ok(())
}

/// Refuse to add a new key once the plugin holds `max_keys`.
fn check_quota(
    tx: &rusqlite::Connection,
    plugin: &str,
    key: &str,
    limits: &KvLimits,
) -> Result<(), KvError> {
    let exists: bool = tx
        .one(
            "SELECT 1 FROM plugin_kv WHERE plugin = ?1 AND key = ?2",
            params![plugin, key],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !exists {
        let count: i64 = tx.one(
            "SELECT COUNT(*) FROM plugin_kv WHERE plugin = ?1",
            params![plugin],
            |r| r.get(0),
        )?;
        if count as usize >= limits.max_keys {
            return Err(KvError::TooLarge(format!(
                "the plugin already holds {count} keys, its limit (kv_max_keys in plugin.toml)"
            )));
        }
    }
    Ok(())
}

/// A limit refused inside a write travels as `StoreError::Invalid` through the writer...
fn into_store(e: KvError) -> StoreError {
    match e {
        KvError::TooLarge(m) => StoreError::Invalid(m),
        KvError::Store(e) => e,
    }
}

/// ...and comes back out as the limit it was.
fn from_store(e: StoreError) -> KvError {
    match e {
        StoreError::Invalid(m) => KvError::TooLarge(m),
        e => KvError::Store(e),
    }
}

fn now() -> String {
    crate::time::now_rfc3339()
}

#[async_trait::async_trait]
impl KvStore for SqliteStore {
    async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (plugin, key) = (plugin.to_owned(), key.to_owned());
        self.read(move |c| {
            Ok(c.one(
                "SELECT value FROM plugin_kv WHERE plugin = ?1 AND key = ?2",
                params![plugin, key],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        limits: KvLimits,
    ) -> Result<(), KvError> {
        check_key(key, &limits)?;
        if value.len() > limits.max_value_bytes {
            return Err(KvError::TooLarge(format!(
                "value of {} bytes is larger than the limit of {} bytes",
                value.len(),
                limits.max_value_bytes
            )));
        }
        let (plugin, key) = (plugin.to_owned(), key.to_owned());
        self.write(move |tx| {
            check_quota(tx, &plugin, &key, &limits).map_err(into_store)?;
            tx.exec(
                "INSERT INTO plugin_kv (plugin, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![plugin, key, value, now()],
            )?;
            Ok(())
        })
        .await
        .map_err(from_store)
    }

    async fn kv_delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError> {
        let (plugin, key) = (plugin.to_owned(), key.to_owned());
        self.write(move |c| {
            Ok(c.exec(
                "DELETE FROM plugin_kv WHERE plugin = ?1 AND key = ?2",
                params![plugin, key],
            )? > 0)
        })
        .await
    }

    async fn kv_list_keys(
        &self,
        plugin: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let (plugin, prefix) = (plugin.to_owned(), prefix.to_owned());
        self.read(move |c| {
            // Range scan on the primary key instead of LIKE, so '%' and '_' in a
            // prefix are literal.
            let mut stmt = c.prepare_cached(
                "SELECT key FROM plugin_kv WHERE plugin = ?1 AND key >= ?2 ORDER BY key LIMIT CAST(?3 AS INTEGER)",
            )?;
            let mut keys = Vec::new();
            let mut rows = stmt.query(params![plugin, prefix, i64::from(limit)])?;
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                if !key.starts_with(&prefix) {
                    break;
                }
                keys.push(key);
            }
            Ok(keys)
        })
        .await
    }

    /// Atomically add `delta` to the integer at `key` (absent = 0).
    async fn kv_increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        limits: KvLimits,
    ) -> Result<i64, KvError> {
        check_key(key, &limits)?;
        let (plugin, key) = (plugin.to_owned(), key.to_owned());
        self.write(move |tx| {
            check_quota(tx, &plugin, &key, &limits).map_err(into_store)?;
            let current: Option<Vec<u8>> = tx
                .one(
                    "SELECT value FROM plugin_kv WHERE plugin = ?1 AND key = ?2",
                    params![plugin, key],
                    |r| r.get(0),
                )
                .optional()?;
            let current = match current {
                None => 0,
                Some(bytes) => std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .ok_or_else(|| {
                        StoreError::Invalid(format!(
                            "key `{key}` holds a value that is not a decimal integer"
                        ))
                    })?,
            };
            let next = current.checked_add(delta).ok_or_else(|| {
                StoreError::Invalid(format!("incrementing `{key}` by {delta} overflows"))
            })?;
            tx.exec(
                "INSERT INTO plugin_kv (plugin, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![plugin, key, next.to_string().into_bytes(), now()],
            )?;
            Ok(next)
        })
        .await
        .map_err(from_store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kv_roundtrip_quota_and_increment() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let limits = KvLimits::with_max_keys(2);
        store.kv_set("p", "a", b"1".to_vec(), limits).await.unwrap();
        assert_eq!(store.kv_get("p", "a").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.kv_get("other", "a").await.unwrap(), None);
        assert_eq!(store.kv_increment("p", "a", 41, limits).await.unwrap(), 42);
        assert_eq!(store.kv_increment("p", "b", -1, limits).await.unwrap(), -1);
        // Third key refused; overwriting an existing key is still fine.
        let err = store.kv_set("p", "c", vec![], limits).await.unwrap_err();
        assert!(err.to_string().contains("kv_max_keys"), "{err}");
        store.kv_set("p", "b", b"x".to_vec(), limits).await.unwrap();
        let err = store.kv_increment("p", "b", 1, limits).await.unwrap_err();
        assert!(err.to_string().contains("not a decimal integer"), "{err}");
        let big = vec![0; 64 * 1024 + 1];
        assert!(store.kv_set("p", "a", big, limits).await.is_err());
        assert_eq!(store.kv_list_keys("p", "", 10).await.unwrap(), ["a", "b"]);
        assert_eq!(store.kv_list_keys("p", "b", 10).await.unwrap(), ["b"]);
        assert!(store.kv_delete("p", "a").await.unwrap());
        assert!(!store.kv_delete("p", "a").await.unwrap());
    }
}
