//! `log`: a plugin's log lines go to the host's `tracing` log, tagged with its name.

use std::sync::Arc;

use crate::plugins::bindings::base::switchyard::plugin::log::{Host, Level};

/// Longest line kept; the rest is cut.
const MAX_LINE_BYTES: usize = 4096;
/// Lines kept per call; a chatty plugin cannot flood the host's log.
const MAX_LINES_PER_CALL: usize = 1000;

pub struct LogCap {
    plugin: Arc<str>,
    lines: usize,
}

impl LogCap {
    pub fn new(plugin: Arc<str>) -> Self {
        Self { plugin, lines: 0 }
    }
}

impl Host for LogCap {
    async fn write(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.lines += 1;
        if self.lines > MAX_LINES_PER_CALL {
            if self.lines == MAX_LINES_PER_CALL + 1 {
                tracing::warn!(plugin = %self.plugin, "plugin log lines beyond {MAX_LINES_PER_CALL} in one call are dropped");
            }
            return Ok(());
        }
        let message = crate::plugins::truncate(&message, MAX_LINE_BYTES);
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(target: "plugin", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "plugin", plugin, "{message}"),
            Level::Info => tracing::info!(target: "plugin", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "plugin", plugin, "{message}"),
            Level::Error => tracing::error!(target: "plugin", plugin, "{message}"),
        }
        Ok(())
    }
}
