//! The one `wasmtime::Engine` of the process, configured for many short sandboxed calls:
//! the pooling allocator (instantiation in microseconds), epoch interruption (deadlines
//! without fuel's per-instruction cost) and async support (a plugin waiting on outbound
//! HTTP never blocks a runtime thread).

use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::manifest::MAX_MEMORY_MB;

/// How often the epoch advances. A deadline is checked at this granularity, and a
/// plugin running pure wasm yields to the async runtime this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Bytes of a pooled linear memory / table reset in place (not decommitted) after a
/// call. Warm slots keep at most this much resident each.
const KEEP_RESIDENT_MEMORY: usize = 2 << 20;
const KEEP_RESIDENT_TABLE: usize = 256 << 10;

/// Sizing of the engine's instance pool.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// Component instances (calls in flight) the pool holds at once.
    pub concurrent_instances: u32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            concurrent_instances: 128,
        }
    }
}

/// Build the engine and start its epoch ticker (which stops when the engine is dropped).
pub fn build(options: EngineOptions) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // Guest stack for wasm frames; deep recursion traps with a stack overflow here,
    // well inside the fiber's own stack.
    config.max_wasm_stack(1 << 20);
    config.async_stack_size(4 << 20);

    let slots = options.concurrent_instances;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        // Components built by componentize-py/-js hold a dozen core instances,
        // memories and tables each.
        .max_core_instances_per_component(64)
        .total_core_instances(slots * 16)
        .total_memories(slots * 4)
        .total_tables(slots * 16)
        .total_stacks(slots)
        .max_memory_size((MAX_MEMORY_MB as usize) << 20)
        .max_core_instance_size(16 << 20)
        .max_component_instance_size(16 << 20)
        .table_elements(100_000)
        // Keep a few slots warm so a plugin's next call reuses its pages.
        .max_unused_warm_slots(slots.min(32));
    // Reset a finished instance's memory and tables in place rather than with
    // `madvise`: every call ends an instance, and each `madvise` flushed the TLB of both
    // cores (an interrupt to the other) and made the next call fault its pages back in,
    // a sixth of a runtime worker's time in short session turns. Only with PAGEMAP_SCAN
    // (Linux 6.7+), which resets just the pages the call dirtied: without it, keeping
    // memory resident means a memset of its first bytes after every call.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE);
    }
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

    let engine = Engine::new(&config)?;
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map_err(wasmtime::Error::new)?;
    Ok(engine)
}

/// Attempts at building a component's memory images before the load fails.
const IMAGE_ATTEMPTS: u32 = 5;

/// Build `component`'s copy-on-write memory images now, on the loading thread, rather
/// than in its first call.
///
/// On Linux the image of a freshly compiled component is a sealed memfd. The kernel
/// refuses the seal with `EBUSY` while any of the pages just written are still pinned
/// (a per-CPU LRU batch not yet drained, a page being migrated), which passes within
/// milliseconds; so a busy refusal is retried with a growing pause. Any other error,
/// or a refusal that outlasts the attempts, fails the load.
pub fn prepare_memory_images(component: &Component) -> wasmtime::Result<()> {
    let mut pause = Duration::from_millis(10);
    for _ in 1..IMAGE_ATTEMPTS {
        match component.initialize_copy_on_write_image() {
            Err(e) if is_busy(&e) => {
                tracing::debug!(error = %e, ?pause, "memory image busy; retrying");
                std::thread::sleep(pause);
                pause *= 2;
            }
            done => return done,
        }
    }
    component.initialize_copy_on_write_image()
}

/// Whether `error` was caused by an `EBUSY` from the system.
fn is_busy(error: &wasmtime::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ResourceBusy)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// memfd's error wraps the `io::Error` as its source, as wasmtime hands it back.
    #[derive(Debug)]
    struct SealError(std::io::Error);

    impl std::fmt::Display for SealError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("cannot add seals to the memfd")
        }
    }

    impl std::error::Error for SealError {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn seal_error(kind: std::io::ErrorKind) -> wasmtime::Error {
        wasmtime::Error::new(SealError(kind.into())).context("instantiating")
    }

    #[test]
    fn a_busy_seal_is_retried_and_other_errors_are_not() {
        assert!(is_busy(&seal_error(std::io::ErrorKind::ResourceBusy)));
        assert!(!is_busy(&seal_error(std::io::ErrorKind::PermissionDenied)));
        assert!(!is_busy(&wasmtime::Error::msg("trap")));
    }

    #[test]
    fn memory_images_of_a_compiled_component_are_built() {
        let engine = build(EngineOptions::default()).unwrap();
        let wat = r#"(component (core module (memory 1) (data (i32.const 0) "hi")))"#;
        let component = Component::new(&engine, wat).unwrap();
        prepare_memory_images(&component).unwrap();
    }
}
