//! The plugin host: loads WebAssembly components that implement the worlds of `wit/`,
//! keeps one active version of each, and calls them in fresh sandboxed stores.
//!
//! Invariants:
//! - A plugin's failure (trap, timeout, out of memory, bad output) is a [`CallError`] for
//!   that call, never a panic or a crash of the host.
//! - A reload that fails leaves the previous version active; calls in flight always
//!   finish on the version they started with.
//! - Other parts talk to plugins only through the typed methods of [`PluginHost`].

pub mod bindings;
pub mod cache;
mod call;
pub mod engine;
mod error;
pub mod host;
mod load;
mod loaded;
pub mod manifest;
pub mod types;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use wasmtime::Engine;
use wasmtime::component::Linker;

pub use cache::{CacheOutcome, ComponentCache};
use call::{CallOutput, parse_json};
pub use engine::EngineOptions;
pub use error::{CallError, LoadError};
pub use host::TurnControl;
use host::{PluginState, TurnCap};
pub use loaded::{KindPre, LoadedPlugin};
pub use manifest::{PluginKind, PluginManifest};
use types::*;

use crate::bus::Bus;
use crate::event::Event;
use crate::store::Store;

/// What the host gives plugins access to. `None` parts make the matching host calls
/// fail cleanly, for offline use (`plugin check`).
#[derive(Clone, Default)]
pub struct HostServices {
    pub store: Option<Store>,
    pub bus: Option<Bus>,
    /// Per-plugin config overrides (`[plugins.NAME.config]` in switchyard.toml).
    pub plugin_config: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

/// A plugin's slot in the registry.
struct Entry {
    dir: PathBuf,
    active: Option<Arc<LoadedPlugin>>,
    last_error: Option<String>,
}

/// How a plugin looks in `plugin list`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PluginSummary {
    pub name: String,
    pub kind: Option<PluginKind>,
    pub version: Option<String>,
    pub language: Option<String>,
    /// `ready`, `unhealthy` or `failed` (no version could be loaded).
    pub status: String,
    pub summary: Option<String>,
    /// The last load error; with status `ready` it means the last reload failed and the
    /// previous version is still serving.
    pub last_error: Option<String>,
    pub loaded_at: Option<String>,
    pub load_ms: Option<f64>,
    pub from_cache: Option<bool>,
    pub calls: u64,
    pub faults: u64,
    #[schema(value_type = String)]
    pub dir: PathBuf,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    Loaded,
    Replaced,
    Unchanged,
    /// It failed; the previous version (if any) stays active.
    Failed(String),
    Unloaded,
}

pub struct PluginHost {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: ComponentCache,
    services: HostServices,
    entries: RwLock<BTreeMap<String, Entry>>,
    in_flight: TaskTracker,
}

impl PluginHost {
    /// A host with its own engine, caching compiled components in `cache_dir`.
    pub fn new(
        options: EngineOptions,
        cache_dir: impl Into<PathBuf>,
        services: HostServices,
    ) -> wasmtime::Result<Self> {
        let engine = engine::build(options)?;
        let linker = host::linker(&engine)?;
        Ok(Self {
            engine,
            linker,
            cache: ComponentCache::new(cache_dir),
            services,
            entries: RwLock::new(BTreeMap::new()),
            in_flight: TaskTracker::new(),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Load every plugin folder (one holding a `plugin.toml`) under `dir`, and unload
    /// plugins whose folder is gone.
    pub async fn scan(&self, dir: &Path) -> Vec<(String, ReloadOutcome)> {
        let mut seen = Vec::new();
        if let Ok(read) = std::fs::read_dir(dir) {
            let mut dirs: Vec<PathBuf> = read
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("plugin.toml").is_file())
                .collect();
            dirs.sort();
            for d in dirs {
                seen.push(self.reload(&d).await);
            }
        }
        let known: Vec<String> = self.read_entries().keys().cloned().collect();
        for name in known {
            if !seen.iter().any(|(n, _)| *n == name) {
                seen.push(self.reload(&dir.join(&name)).await);
            }
        }
        seen
    }

    /// (Re)load the plugin in folder `dir`: unload it if the folder or its manifest is
    /// gone, keep the active version if the new one fails any check.
    pub async fn reload(&self, dir: &Path) -> (String, ReloadOutcome) {
        let folder = dir
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !dir.join("plugin.toml").is_file() {
            let removed = self.write_entries().remove(&folder);
            if removed.is_some() {
                tracing::info!(plugin = %folder, "plugin unloaded (its folder or manifest is gone)");
                self.notify(&folder, "unloaded", serde_json::json!({}))
                    .await;
                return (folder, ReloadOutcome::Unloaded);
            }
            return (folder, ReloadOutcome::Unchanged);
        }
        let current = self
            .read_entries()
            .get(&folder)
            .and_then(|e| e.active.clone());
        let outcome = match self.load(dir, current.as_deref()).await {
            Ok(None) => ReloadOutcome::Unchanged,
            Ok(Some(plugin)) => {
                let plugin = Arc::new(plugin);
                let data = serde_json::json!({
                    "version": plugin.manifest.version,
                    "kind": plugin.manifest.kind,
                    "load_ms": plugin.load_time.as_secs_f64() * 1e3,
                    "from_cache": plugin.cache == CacheOutcome::Hit,
                });
                tracing::info!(
                    plugin = %folder,
                    version = %plugin.manifest.version,
                    load_ms = %format_args!("{:.1}", plugin.load_time.as_secs_f64() * 1e3),
                    from_cache = plugin.cache == CacheOutcome::Hit,
                    "plugin {}", if current.is_some() { "reloaded" } else { "loaded" }
                );
                self.write_entries().insert(
                    folder.clone(),
                    Entry {
                        dir: dir.to_owned(),
                        active: Some(plugin),
                        last_error: None,
                    },
                );
                let what = if current.is_some() {
                    "reloaded"
                } else {
                    "loaded"
                };
                self.notify(&folder, what, data).await;
                if current.is_some() {
                    ReloadOutcome::Replaced
                } else {
                    ReloadOutcome::Loaded
                }
            }
            Err(e) => {
                let message = e.to_string();
                tracing::error!(plugin = %folder, "plugin not loaded: {message}{}",
                    if current.is_some() { " (the previous version stays active)" } else { "" });
                self.write_entries()
                    .entry(folder.clone())
                    .and_modify(|entry| entry.last_error = Some(message.clone()))
                    .or_insert_with(|| Entry {
                        dir: dir.to_owned(),
                        active: None,
                        last_error: Some(message.clone()),
                    });
                self.notify(
                    &folder,
                    "load_failed",
                    serde_json::json!({ "error": message, "previous_active": current.is_some() }),
                )
                .await;
                ReloadOutcome::Failed(message)
            }
        };
        (folder, outcome)
    }

    /// Every known plugin, loaded or not, by name.
    pub fn list(&self) -> Vec<PluginSummary> {
        self.read_entries()
            .iter()
            .map(|(name, entry)| summarize(name, entry))
            .collect()
    }

    /// One plugin's summary.
    pub fn get(&self, name: &str) -> Option<PluginSummary> {
        self.read_entries().get(name).map(|e| summarize(name, e))
    }

    /// The active version of `name`, which must be of `kind`.
    pub fn active(&self, name: &str, kind: PluginKind) -> Result<Arc<LoadedPlugin>, CallError> {
        let plugin = self
            .read_entries()
            .get(name)
            .and_then(|e| e.active.clone())
            .ok_or_else(|| CallError::NotLoaded(name.to_owned()))?;
        if plugin.manifest.kind != kind {
            return Err(CallError::WrongKind {
                plugin: name.to_owned(),
                expected: kind,
                actual: plugin.manifest.kind,
            });
        }
        Ok(plugin)
    }

    /// Wait (at most `grace`) for calls in flight to finish; used at shutdown.
    pub async fn drain(&self, grace: std::time::Duration) -> bool {
        self.in_flight.close();
        tokio::time::timeout(grace, self.in_flight.wait())
            .await
            .is_ok()
    }

    /// Calls running now.
    pub fn calls_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn read_entries(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_entries(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    // ---- typed calls, one per export ----

    /// `describe` of any kind.
    pub async fn describe(&self, plugin: &LoadedPlugin) -> Result<PluginInfo, CallError> {
        let info = match &plugin.pre {
            KindPre::Agent(pre) => {
                self.run(plugin, "describe", TurnCap::default(), async |store| {
                    let b = pre.instantiate_async(&mut *store).await?;
                    Ok(Ok(b
                        .switchyard_plugin_agent_api()
                        .call_describe(&mut *store)
                        .await?))
                })
                .await?
            }
            KindPre::Connector(pre) => {
                self.run(plugin, "describe", TurnCap::default(), async |store| {
                    let b = pre.instantiate_async(&mut *store).await?;
                    Ok(Ok(b
                        .switchyard_plugin_connector_api()
                        .call_describe(&mut *store)
                        .await?))
                })
                .await?
            }
            KindPre::Trigger(pre) => {
                self.run(plugin, "describe", TurnCap::default(), async |store| {
                    let b = pre.instantiate_async(&mut *store).await?;
                    Ok(Ok(b
                        .switchyard_plugin_trigger_api()
                        .call_describe(&mut *store)
                        .await?))
                })
                .await?
            }
        };
        Ok(info.into())
    }

    /// How many of a session's last `limit` messages a turn hands agent adapter `name`:
    /// fewer if its manifest's `[adapter] history` asks for fewer.
    pub fn history_for(&self, name: &str, limit: usize) -> usize {
        self.read_entries()
            .get(name)
            .and_then(|e| e.active.as_ref()?.manifest.adapter.as_ref()?.history)
            .map_or(limit, |wanted| wanted.min(limit))
    }

    /// Run one turn of agent adapter `name`, streaming its events into `events`.
    pub async fn run_turn(
        &self,
        name: &str,
        request: TurnRequest,
        events: mpsc::Sender<TurnEvent>,
        control: TurnControl,
    ) -> Result<TurnResult, CallError> {
        let plugin = self.active(name, PluginKind::AgentAdapter)?;
        let KindPre::Agent(pre) = &plugin.pre else {
            unreachable!("kind checked by active()")
        };
        let request = request.into();
        let result = self
            .run(
                &plugin,
                "run-turn",
                TurnCap::new(events, control),
                async |store| {
                    let b = pre.instantiate_async(&mut *store).await?;
                    b.switchyard_plugin_agent_api()
                        .call_run_turn(&mut *store, &request)
                        .await
                },
            )
            .await?;
        Ok(result.into())
    }

    /// Does agent adapter `name` take steering text during a turn?
    pub async fn supports_steering(&self, name: &str) -> Result<bool, CallError> {
        let plugin = self.active(name, PluginKind::AgentAdapter)?;
        let KindPre::Agent(pre) = &plugin.pre else {
            unreachable!("kind checked by active()")
        };
        self.run(
            &plugin,
            "supports-steering",
            TurnCap::default(),
            async |store| {
                let b = pre.instantiate_async(&mut *store).await?;
                Ok(Ok(b
                    .switchyard_plugin_agent_api()
                    .call_supports_steering(&mut *store)
                    .await?))
            },
        )
        .await
    }

    /// Hand an inbound webhook to connector `name`.
    pub async fn handle_webhook(
        &self,
        name: &str,
        request: &WebhookRequest,
    ) -> Result<WebhookOutcome, CallError> {
        let plugin = self.active(name, PluginKind::Connector)?;
        let KindPre::Connector(pre) = &plugin.pre else {
            unreachable!("kind checked by active()")
        };
        let request = request.into();
        let outcome = self
            .run(
                &plugin,
                "handle-webhook",
                TurnCap::default(),
                async |store| {
                    let b = pre.instantiate_async(&mut *store).await?;
                    b.switchyard_plugin_connector_api()
                        .call_handle_webhook(&mut *store, &request)
                        .await
                },
            )
            .await?;
        let mut items = Vec::with_capacity(outcome.items.len());
        for item in outcome.items {
            items.push(match item {
                WitInboundItem::Message(m) => InboundItem::Message {
                    session: m.session,
                    text: m.text,
                },
                WitInboundItem::Event(e) => InboundItem::Event {
                    data: parse_json(&plugin, "items[].event.data", &e.data)?,
                    topic: e.topic,
                    event_type: e.event_type,
                    subject: e.subject,
                },
            });
        }
        Ok(WebhookOutcome {
            status: outcome.status,
            body: outcome.body,
            items,
        })
    }

    /// Ask connector `name` to deliver a reply; returns its receipt.
    pub async fn deliver(
        &self,
        name: &str,
        message: &OutboundMessage,
    ) -> Result<serde_json::Value, CallError> {
        let plugin = self.active(name, PluginKind::Connector)?;
        let KindPre::Connector(pre) = &plugin.pre else {
            unreachable!("kind checked by active()")
        };
        let message = message.into();
        let receipt = self
            .run(&plugin, "deliver", TurnCap::default(), async |store| {
                let b = pre.instantiate_async(&mut *store).await?;
                b.switchyard_plugin_connector_api()
                    .call_deliver(&mut *store, &message)
                    .await
            })
            .await?;
        parse_json(&plugin, "receipt", &receipt)
    }

    /// Ask trigger `name` whether `event` fires, with the automation's `params`.
    pub async fn evaluate(
        &self,
        name: &str,
        event: &Event,
        params: &serde_json::Value,
    ) -> Result<Decision, CallError> {
        let plugin = self.active(name, PluginKind::Trigger)?;
        let KindPre::Trigger(pre) = &plugin.pre else {
            unreachable!("kind checked by active()")
        };
        let event = wit_event(event);
        let params = params.to_string();
        let decision = self
            .run(&plugin, "evaluate", TurnCap::default(), async |store| {
                let b = pre.instantiate_async(&mut *store).await?;
                b.switchyard_plugin_trigger_api()
                    .call_evaluate(&mut *store, &event, &params)
                    .await
            })
            .await?;
        let inputs = parse_json(&plugin, "inputs", &decision.inputs)?;
        if decision.fire && !inputs.is_object() {
            return Err(CallError::BadOutput {
                plugin: name.to_owned(),
                message: "`inputs` must be a JSON object".into(),
            });
        }
        Ok(Decision {
            fire: decision.fire,
            inputs,
            reason: decision.reason,
        })
    }
}

fn summarize(name: &str, entry: &Entry) -> PluginSummary {
    let active = entry.active.as_deref();
    let status = match active {
        None => "failed",
        Some(p) if !p.health.is_healthy() => "unhealthy",
        Some(_) => "ready",
    };
    PluginSummary {
        name: name.to_owned(),
        kind: active.map(|p| p.manifest.kind),
        version: active.map(|p| p.manifest.version.clone()),
        language: active.and_then(|p| p.manifest.language.clone()),
        status: status.into(),
        summary: active.map(|p| p.info.summary.clone()),
        last_error: entry.last_error.clone(),
        loaded_at: active.map(|p| p.loaded_at.clone()),
        load_ms: active.map(|p| p.load_time.as_secs_f64() * 1e3),
        from_cache: active.map(|p| p.cache == CacheOutcome::Hit),
        calls: active.map_or(0, |p| p.health.calls()),
        faults: active.map_or(0, |p| p.health.faults()),
        dir: entry.dir.clone(),
    }
}

/// Cut `text` to at most `max` bytes on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl CallOutput for bindings::base::switchyard::plugin::types::PluginInfo {
    fn output_bytes(&self) -> usize {
        self.name.len() + self.version.len() + self.summary.len()
    }
}

impl CallOutput for bindings::agent::switchyard::plugin::agent_types::TurnResult {
    fn output_bytes(&self) -> usize {
        self.text.len()
    }
}

impl CallOutput for WitWebhookOutcome {
    fn output_bytes(&self) -> usize {
        self.body.len()
            + self
                .items
                .iter()
                .map(|i| match i {
                    WitInboundItem::Message(m) => m.session.len() + m.text.len(),
                    WitInboundItem::Event(e) => e.topic.len() + e.event_type.len() + e.data.len(),
                })
                .sum::<usize>()
    }
}

impl CallOutput for WitDecision {
    fn output_bytes(&self) -> usize {
        self.inputs.len() + self.reason.len()
    }
}
