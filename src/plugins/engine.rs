//! The one `wasmtime::Engine` of the process, configured for many short sandboxed calls:
//! the pooling allocator (instantiation in microseconds), epoch interruption (deadlines
//! without fuel's per-instruction cost) and async support (a plugin waiting on outbound
//! HTTP never blocks a runtime thread).

use std::time::Duration;

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
