//! The host side of the plugin contract: one module per interface a plugin can import,
//! each owning its state and its permission check, composed into [`PluginState`], the
//! data of every call's `wasmtime::Store`. All linker wiring is in [`linker`].

mod bus;
mod config;
mod http;
mod kv;
mod limits;
mod log;
mod turn;

pub use bus::BusCap;
pub use config::ConfigCap;
pub use http::HttpPolicy;
pub use kv::KvCap;
pub use limits::CallLimits;
pub use log::LogCap;
pub use turn::{TurnCap, TurnControl};

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings;

/// Bytes of a plugin's stdout/stderr kept per call (then logged); more is discarded.
const STDIO_CAPTURE_BYTES: usize = 64 * 1024;

/// The data of one call's store.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    http_policy: HttpPolicy,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    pub(crate) limits: CallLimits,
    log: LogCap,
    bus: BusCap,
    kv: KvCap,
    config: ConfigCap,
    turn: TurnCap,
}

impl PluginState {
    /// A sandbox: no preopened directories, no environment, no arguments, no sockets.
    /// stdout and stderr are captured (bounded) for the log.
    pub fn new(
        http_policy: HttpPolicy,
        limits: CallLimits,
        log: LogCap,
        bus: BusCap,
        kv: KvCap,
        config: ConfigCap,
        turn: TurnCap,
    ) -> Self {
        let stdout = MemoryOutputPipe::new(STDIO_CAPTURE_BYTES);
        let stderr = MemoryOutputPipe::new(STDIO_CAPTURE_BYTES);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            http_policy,
            stdout,
            stderr,
            limits,
            log,
            bus,
            kv,
            config,
            turn,
        }
    }

    /// Capabilities the plugin asked for and was refused during this call.
    pub fn denials(&self) -> Vec<String> {
        let mut all = Vec::new();
        all.extend(self.http_policy.denied.iter().cloned());
        all.extend(self.bus.denied.iter().cloned());
        all.extend(self.kv.denied.iter().cloned());
        all
    }

    /// What the plugin wrote to stdout and stderr (bounded).
    pub fn stdio(&self) -> (bytes::Bytes, bytes::Bytes) {
        (self.stdout.contents(), self.stderr.contents())
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_policy,
        }
    }
}

/// The linker every plugin is instantiated with: WASI p2, outbound `wasi:http`, and
/// Switchyard's host interfaces. One linker serves all worlds; a component only links
/// what it imports.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<PluginState>> {
    use bindings::base::switchyard::plugin as base;
    let mut linker = Linker::<PluginState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    base::log::add_to_linker::<_, HasSelf<LogCap>>(&mut linker, |s| &mut s.log)?;
    base::bus::add_to_linker::<_, HasSelf<BusCap>>(&mut linker, |s| &mut s.bus)?;
    base::kv::add_to_linker::<_, HasSelf<KvCap>>(&mut linker, |s| &mut s.kv)?;
    base::config::add_to_linker::<_, HasSelf<ConfigCap>>(&mut linker, |s| &mut s.config)?;
    bindings::agent::switchyard::plugin::turn_events::add_to_linker::<_, HasSelf<TurnCap>>(
        &mut linker,
        |s| &mut s.turn,
    )?;
    Ok(linker)
}
