//! Errors of the plugin host: why a plugin did not load, and why a call failed.

use std::path::PathBuf;

use super::manifest::{ManifestError, PluginKind};

/// Why a plugin was refused at load. Each message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path}: `name` is `{name}` but the folder is `{folder}`: they must be equal")]
    NameMismatch {
        path: PathBuf,
        name: String,
        folder: String,
    },
    #[error("{path}: component not found; build it with {build}")]
    MissingComponent { path: PathBuf, build: String },
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid WebAssembly component: {message}")]
    Compile { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    WrongExports { path: PathBuf, message: String },
    #[error(
        "{path}: imports something this host does not provide ({message}); the host serves switchyard:plugin@{versions}, WASI 0.2 and wasi:http"
    )]
    Link {
        path: PathBuf,
        message: String,
        versions: String,
    },
    #[error(
        "{path}: config key `{key}` is required: set [plugins.{plugin}.config] {key} = ... in switchyard.toml"
    )]
    MissingConfig {
        path: PathBuf,
        plugin: String,
        key: String,
    },
    #[error("{path}: secret `{name}` is required: set the environment variable {env}")]
    MissingSecret {
        path: PathBuf,
        name: String,
        env: String,
    },
    #[error("{path}: describe() failed: {source}")]
    Describe {
        path: PathBuf,
        source: Box<CallError>,
    },
    #[error(
        "{path}: the component's describe() says {field} `{component}`, the manifest says `{manifest}`"
    )]
    DescribeMismatch {
        path: PathBuf,
        field: &'static str,
        component: String,
        manifest: String,
    },
    #[error("loading {path} stopped: {message}")]
    Internal { path: PathBuf, message: String },
}

/// Why a call into a plugin failed. Every variant leaves the host serving.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("no plugin named `{0}` is loaded")]
    NotLoaded(String),
    #[error("plugin `{plugin}` is a {actual}, not a {expected}")]
    WrongKind {
        plugin: String,
        expected: PluginKind,
        actual: PluginKind,
    },
    #[error("plugin `{plugin}` ran past its deadline of {timeout_ms} ms and was stopped")]
    Timeout { plugin: String, timeout_ms: u64 },
    #[error("plugin `{plugin}` ran out of memory (limit {limit_mb} MiB, permissions.memory_mb)")]
    OutOfMemory { plugin: String, limit_mb: u64 },
    #[error("plugin `{plugin}` overflowed its stack (too deep a recursion)")]
    StackOverflow { plugin: String },
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap { plugin: String, message: String },
    #[error("plugin `{plugin}` returned {bytes} bytes, more than the limit of {limit} bytes")]
    OutputTooLarge {
        plugin: String,
        bytes: usize,
        limit: usize,
    },
    #[error("plugin `{plugin}` returned invalid output: {message}")]
    BadOutput { plugin: String, message: String },
    #[error("plugin `{plugin}` could not be started: {message}")]
    Instantiate { plugin: String, message: String },
    /// The plugin ran fine and answered with an error of its own.
    #[error("plugin `{plugin}`: {message}")]
    Plugin { plugin: String, message: String },
}

impl CallError {
    /// A short machine-readable name, for events, metrics and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotLoaded(_) => "not_loaded",
            Self::WrongKind { .. } => "wrong_kind",
            Self::Timeout { .. } => "timeout",
            Self::OutOfMemory { .. } => "out_of_memory",
            Self::StackOverflow { .. } => "stack_overflow",
            Self::Trap { .. } => "trap",
            Self::OutputTooLarge { .. } => "output_too_large",
            Self::BadOutput { .. } => "bad_output",
            Self::Instantiate { .. } => "instantiate",
            Self::Plugin { .. } => "plugin_error",
        }
    }

    /// Does this failure count against the plugin's health? A plugin's own error
    /// answer does not; a crash, a timeout or broken output does.
    pub fn is_fault(&self) -> bool {
        !matches!(
            self,
            Self::NotLoaded(_) | Self::WrongKind { .. } | Self::Plugin { .. }
        )
    }
}
