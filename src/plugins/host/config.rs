//! `config`: the values and secrets a manifest declares. Undeclared keys and secrets are
//! never visible, whatever the environment holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::plugins::bindings::base::switchyard::plugin::config::Host;

pub struct ConfigCap {
    /// Key → JSON text of the effective value.
    values: Arc<BTreeMap<String, String>>,
    /// Secret name → environment variable that holds it.
    secrets: Arc<BTreeMap<String, String>>,
}

impl ConfigCap {
    pub fn new(
        values: Arc<BTreeMap<String, String>>,
        secrets: Arc<BTreeMap<String, String>>,
    ) -> Self {
        Self { values, secrets }
    }
}

impl Host for ConfigCap {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.values.get(&key).cloned())
    }

    async fn secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self
            .secrets
            .get(&name)
            .and_then(|var| std::env::var(var).ok()))
    }
}
