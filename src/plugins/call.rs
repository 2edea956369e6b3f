//! The call path: a fresh, sandboxed store per call, from the plugin's `InstancePre`,
//! with its memory cap and deadline; failures classified into [`CallError`], counted
//! for health, logged and published.

use std::time::{Duration, Instant};

use tracing::Instrument;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::PluginHost;
use super::error::CallError;
use super::host::{BusCap, CallLimits, ConfigCap, HttpPolicy, KvCap, LogCap, PluginState, TurnCap};
use super::loaded::LoadedPlugin;
use crate::event::NewEvent;

/// Largest output a call may return (text, JSON), in bytes.
pub const MAX_OUTPUT_BYTES: usize = 16 * 1024 * 1024;
/// Extra time past the deadline before the host abandons a call that is blocked in a
/// host function (the epoch deadline only interrupts running wasm).
const HOST_SLACK: Duration = Duration::from_millis(250);

impl PluginHost {
    /// A store for one call of `plugin`.
    fn new_store(&self, plugin: &LoadedPlugin, turn: TurnCap) -> Store<PluginState> {
        let p = &plugin.manifest.permissions;
        let name = plugin.name.clone();
        let state = PluginState::new(
            HttpPolicy::new(name.clone(), plugin.allowed_hosts.clone()),
            CallLimits::new((p.memory_mb as usize) << 20),
            LogCap::new(name.clone()),
            BusCap::new(name.clone(), p.bus_publish, self.services.bus.clone()),
            KvCap::new(name, p.kv, self.services.store.clone(), p.kv_max_keys),
            ConfigCap::new(plugin.config_values.clone(), plugin.secrets.clone()),
            turn,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let deadline = Instant::now() + Duration::from_millis(p.timeout_ms);
        // Check once per epoch tick: yield to the runtime so a busy plugin never
        // starves other tasks, and stop it at its deadline.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Run `f` against a fresh store of `plugin`. `f` instantiates and calls one export;
    /// it returns the export's own result (`Err(String)` = the plugin's error answer).
    pub(super) async fn run<T: CallOutput>(
        &self,
        plugin: &LoadedPlugin,
        export: &'static str,
        turn: TurnCap,
        f: impl AsyncFnOnce(&mut Store<PluginState>) -> wasmtime::Result<Result<T, String>>,
    ) -> Result<T, CallError> {
        let _in_flight = self.in_flight.token();
        let name = plugin.name.to_string();
        let span = tracing::debug_span!("plugin_call", plugin = %name, export);
        let mut store = self.new_store(plugin, turn);
        let timeout_ms = plugin.manifest.permissions.timeout_ms;
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            Duration::from_millis(timeout_ms) + HOST_SLACK,
            f(&mut store).instrument(span),
        )
        .await;
        let result = match outcome {
            Err(_elapsed) => Err(CallError::Timeout {
                plugin: name.clone(),
                timeout_ms,
            }),
            Ok(Ok(Ok(value))) if value.output_bytes() > MAX_OUTPUT_BYTES => {
                Err(CallError::OutputTooLarge {
                    plugin: name.clone(),
                    bytes: value.output_bytes(),
                    limit: MAX_OUTPUT_BYTES,
                })
            }
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(message))) => Err(CallError::Plugin {
                plugin: name.clone(),
                message,
            }),
            Ok(Err(error)) => Err(classify(error, store.data(), plugin)),
        };
        // Take what the bookkeeping needs out of the store before awaiting again: the
        // store is Send but not Sync.
        metrics::histogram!("switchyard_plugin_call_duration_seconds", "plugin" => name.clone(), "export" => export)
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            metrics::counter!("switchyard_plugin_call_failures_total", "plugin" => name.clone(), "export" => export, "code" => e.code())
                .increment(1);
        }
        let (stdout, stderr) = store.data().stdio();
        let report = CallReport {
            export,
            elapsed: started.elapsed(),
            stdout,
            stderr,
            denials: store.data().denials(),
        };
        drop(store);
        self.after_call(plugin, report, &result).await;
        result
    }

    /// Bookkeeping after every call: stdio and denials into the log, health counters,
    /// and a bus event for faults and denials.
    async fn after_call<T>(
        &self,
        plugin: &LoadedPlugin,
        report: CallReport,
        result: &Result<T, CallError>,
    ) {
        let name = &*plugin.name;
        let CallReport {
            export,
            elapsed,
            stdout,
            stderr,
            denials,
        } = report;
        for (stream, bytes) in [("stdout", stdout), ("stderr", stderr)] {
            if !bytes.is_empty() {
                let text = String::from_utf8_lossy(&bytes);
                tracing::info!(target: "plugin", plugin = name, stream, "{}", text.trim_end());
            }
        }
        if !denials.is_empty() {
            self.notify(
                name,
                "denied",
                serde_json::json!({ "export": export, "denied": denials }),
            )
            .await;
        }
        let fault = result.as_ref().err().filter(|e| e.is_fault());
        let became_unhealthy = plugin.health.record(fault.is_some());
        match result {
            Ok(_) => tracing::debug!(plugin = name, export, ?elapsed, "plugin call"),
            Err(e) if e.is_fault() => {
                tracing::warn!(
                    plugin = name,
                    export,
                    ?elapsed,
                    code = e.code(),
                    "plugin call failed: {e}"
                );
                self.notify(
                    name,
                    "call_failed",
                    serde_json::json!({ "export": export, "code": e.code(), "message": e.to_string() }),
                )
                .await;
            }
            Err(e) => tracing::debug!(
                plugin = name,
                export,
                ?elapsed,
                "plugin answered with an error: {e}"
            ),
        }
        if became_unhealthy {
            tracing::error!(
                plugin = name,
                "plugin marked unhealthy after repeated failures"
            );
            self.notify(
                name,
                "unhealthy",
                serde_json::json!({ "consecutive_failures": plugin.health.consecutive_failures() }),
            )
            .await;
        }
    }

    /// Publish `plugin.<name>.<what>` (type `switchyard.plugin.<what>`), if a bus runs.
    pub(super) async fn notify(&self, plugin: &str, what: &str, mut data: serde_json::Value) {
        if let Some(bus) = &self.services.bus {
            if let Some(obj) = data.as_object_mut() {
                obj.insert("plugin".into(), plugin.into());
            }
            bus.notify(NewEvent::runtime(
                format!("plugin.{plugin}.{what}"),
                format!("switchyard.plugin.{what}"),
                data,
            ))
            .await;
        }
    }
}

/// What a finished call leaves for the log and the bus.
struct CallReport {
    export: &'static str,
    elapsed: Duration,
    stdout: bytes::Bytes,
    stderr: bytes::Bytes,
    denials: Vec<String>,
}

/// Name what went wrong in a failed call.
fn classify(error: wasmtime::Error, state: &PluginState, plugin: &LoadedPlugin) -> CallError {
    let name = plugin.name.to_string();
    let trap = error.downcast_ref::<Trap>().copied();
    match trap {
        Some(Trap::Interrupt) => CallError::Timeout {
            plugin: name,
            timeout_ms: plugin.manifest.permissions.timeout_ms,
        },
        Some(Trap::StackOverflow) => CallError::StackOverflow { plugin: name },
        _ if state.limits.memory_refused() => CallError::OutOfMemory {
            plugin: name,
            limit_mb: plugin.manifest.permissions.memory_mb,
        },
        _ => CallError::Trap {
            plugin: name,
            message: format!("{error:#}"),
        },
    }
}

/// Parse JSON text a plugin returned in `field`.
pub(super) fn parse_json(
    plugin: &LoadedPlugin,
    field: &str,
    text: &str,
) -> Result<serde_json::Value, CallError> {
    serde_json::from_str(text).map_err(|e| CallError::BadOutput {
        plugin: plugin.name.to_string(),
        message: format!("`{field}` is not JSON: {e}"),
    })
}

/// The size of what an export returned, checked against [`MAX_OUTPUT_BYTES`] (the guest's
/// memory cap bounds it already; this keeps a generous cap from flooding the host).
pub(super) trait CallOutput {
    fn output_bytes(&self) -> usize;
}

impl CallOutput for bool {
    fn output_bytes(&self) -> usize {
        1
    }
}

impl CallOutput for String {
    fn output_bytes(&self) -> usize {
        self.len()
    }
}
