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

/// A plugin world's bindings: exports are async, imports async and able to trap, and
/// the shared host interfaces come from [`base`].
macro_rules! world {
    ($(#[$doc:meta])* $module:ident, $world:literal) => {
        $(#[$doc])*
        pub mod $module {
            wasmtime::component::bindgen!({
                path: "wit",
                world: $world,
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
    };
}

world!(
    /// World `agent-adapter`.
    agent,
    "agent-adapter"
);
world!(
    /// World `connector`.
    connector,
    "connector"
);
world!(
    /// World `trigger`.
    trigger,
    "trigger"
);
