//! Switchyard: a host runtime for AI-agent work. Sessions, queues and an event bus,
//! with everything that touches the outside world done by WebAssembly components.
//!
//! See `ARCHITECTURE.md` for the map of the modules.

pub mod api;
pub mod auth;
pub mod automations;
pub mod bus;
pub mod cli;
pub mod config;
pub mod event;
pub mod metrics;
pub mod plugins;
pub mod queues;
pub mod recipes;
pub mod runs;
pub mod server;
pub mod sessions;
pub mod shutdown;
pub mod store;
pub mod time;
pub mod watch;
