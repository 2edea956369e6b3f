//! `kv`: a plugin's private key-value data in the store, if the manifest grants `kv`.

use std::sync::Arc;

use crate::plugins::bindings::base::switchyard::plugin::kv::{Host, KvError};
use crate::store::{self, KvLimits, Store};

pub struct KvCap {
    plugin: Arc<str>,
    allowed: bool,
    store: Option<Store>,
    limits: KvLimits,
    pub(super) denied: Vec<String>,
}

impl KvCap {
    /// `store` is `None` when there is no runtime around the call (offline checks).
    pub fn new(plugin: Arc<str>, allowed: bool, store: Option<Store>, max_keys: usize) -> Self {
        Self {
            plugin,
            allowed,
            store,
            limits: KvLimits::with_max_keys(max_keys),
            denied: Vec::new(),
        }
    }

    fn store(&mut self, op: &str) -> Result<Store, KvError> {
        if !self.allowed {
            self.denied.push(format!(
                "kv.{op} denied: plugin.toml does not grant permissions.kv"
            ));
            return Err(KvError::Denied);
        }
        self.store
            .clone()
            .ok_or_else(|| KvError::Storage("no store is open (offline call)".into()))
    }
}

fn from_store(e: store::StoreError) -> KvError {
    KvError::Storage(e.to_string())
}

fn from_kv(e: store::KvError) -> KvError {
    match e {
        store::KvError::TooLarge(m) => KvError::TooLarge(m),
        store::KvError::Store(e) => from_store(e),
    }
}

impl Host for KvCap {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, KvError>> {
        let store = match self.store("get") {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        Ok(store.kv_get(&self.plugin, &key).await.map_err(from_store))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), KvError>> {
        let store = match self.store("set") {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        Ok(store
            .kv_set(&self.plugin, &key, value, self.limits)
            .await
            .map_err(from_kv))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, KvError>> {
        let store = match self.store("delete") {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        Ok(store
            .kv_delete(&self.plugin, &key)
            .await
            .map_err(from_store))
    }

    async fn list_keys(
        &mut self,
        prefix: String,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<String>, KvError>> {
        let store = match self.store("list-keys") {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let limit = limit.min(self.limits.max_keys as u32);
        Ok(store
            .kv_list_keys(&self.plugin, &prefix, limit)
            .await
            .map_err(from_store))
    }

    async fn increment(
        &mut self,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, KvError>> {
        let store = match self.store("increment") {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        Ok(store
            .kv_increment(&self.plugin, &key, delta, self.limits)
            .await
            .map_err(from_kv))
    }
}
