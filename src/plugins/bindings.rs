//! Rust bindings for the WIT contract in `wit/` (package `switchyard:plugin@0.1.0`).
//!
//! The shared host interfaces (`log`, `bus`, `kv`, `config`, `types`) are generated
//! once, from the `host-base` world; the three plugin worlds reuse them through `with`,
//! so each host interface has exactly one Rust trait and one implementation.

/// The host interfaces every world imports.
pub mod base {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "host-base",
        imports: { default: async | trappable },
    });
}

/// World `agent-adapter`.
pub mod agent {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "agent-adapter",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "switchyard:plugin/types": super::base::switchyard::plugin::types,
            "switchyard:plugin/log": super::base::switchyard::plugin::log,
            "switchyard:plugin/bus": super::base::switchyard::plugin::bus,
            "switchyard:plugin/kv": super::base::switchyard::plugin::kv,
            "switchyard:plugin/config": super::base::switchyard::plugin::config,
        },
    });
}

/// World `connector`.
pub mod connector {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "connector",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "switchyard:plugin/types": super::base::switchyard::plugin::types,
            "switchyard:plugin/log": super::base::switchyard::plugin::log,
            "switchyard:plugin/bus": super::base::switchyard::plugin::bus,
            "switchyard:plugin/kv": super::base::switchyard::plugin::kv,
            "switchyard:plugin/config": super::base::switchyard::plugin::config,
        },
    });
}

/// World `trigger`.
pub mod trigger {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "trigger",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "switchyard:plugin/types": super::base::switchyard::plugin::types,
            "switchyard:plugin/log": super::base::switchyard::plugin::log,
            "switchyard:plugin/bus": super::base::switchyard::plugin::bus,
            "switchyard:plugin/kv": super::base::switchyard::plugin::kv,
            "switchyard:plugin/config": super::base::switchyard::plugin::config,
        },
    });
}
