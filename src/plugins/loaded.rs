//! A plugin version that passed every load check: its manifest, its pre-instantiated
//! component for its kind, its effective configuration and its health.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::bindings::{agent::AgentAdapterPre, connector::ConnectorPre, trigger::TriggerPre};
use super::cache::CacheOutcome;
use super::host::PluginState;
use super::manifest::PluginManifest;
use super::types::PluginInfo;

/// Consecutive faults after which a plugin is marked unhealthy.
pub const UNHEALTHY_AFTER: u32 = 5;

/// The component, linked and type-checked against its world.
pub enum KindPre {
    Agent(AgentAdapterPre<PluginState>),
    Connector(ConnectorPre<PluginState>),
    Trigger(TriggerPre<PluginState>),
}

/// One loaded version of a plugin. Immutable; a reload makes a new one, and calls in
/// flight keep the `Arc` of the version they started on.
pub struct LoadedPlugin {
    pub name: Arc<str>,
    pub manifest: PluginManifest,
    pub dir: PathBuf,
    pub component_path: PathBuf,
    /// SHA-256 of the component binary.
    pub component_hash: String,
    /// Changes whenever the manifest or the component changes.
    pub fingerprint: String,
    pub info: PluginInfo,
    pub loaded_at: String,
    pub load_time: Duration,
    pub cache: CacheOutcome,
    pub(super) pre: KindPre,
    /// Config key → JSON text of its effective value.
    pub(super) config_values: Arc<BTreeMap<String, String>>,
    /// Secret name → environment variable.
    pub(super) secrets: Arc<BTreeMap<String, String>>,
    pub(super) allowed_hosts: Arc<[String]>,
    pub health: Health,
}

/// Call counters of one loaded version.
#[derive(Default)]
pub struct Health {
    calls: AtomicU64,
    faults: AtomicU64,
    consecutive: AtomicU32,
}

impl Health {
    /// Count a call; returns true when this fault is the one that makes the plugin
    /// unhealthy (so it is announced once).
    pub fn record(&self, fault: bool) -> bool {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if fault {
            self.faults.fetch_add(1, Ordering::Relaxed);
            self.consecutive.fetch_add(1, Ordering::Relaxed) + 1 == UNHEALTHY_AFTER
        } else {
            self.consecutive.store(0, Ordering::Relaxed);
            false
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.consecutive_failures() < UNHEALTHY_AFTER
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive.load(Ordering::Relaxed)
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }
}
