//! Server configuration: command-line flags, then `SWITCHYARD_*` environment variables,
//! then `switchyard.toml`, then built-in defaults — the first that sets a value wins.
//!
//! Each part owns the type of its section, with its defaults written once beside the
//! code that uses them (`sessions::SessionsConfig`, `bus::retention::RetentionConfig`,
//! `queues::QueuesConfig`, `store::StoreConfig`); this module only composes them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bus::retention::RetentionConfig;
use crate::queues::QueuesConfig;
use crate::sessions::SessionsConfig;
use crate::store::StoreConfig;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7777";

/// The effective configuration of a server. Each part owns its section's type and
/// defaults; this composes them.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub plugins_dir: PathBuf,
    pub recipes_dir: PathBuf,
    /// Compiled components, keyed by content hash (default `<data_dir>/cache/components`).
    pub cache_dir: PathBuf,
    /// `[plugins.NAME.config]`: values that override a plugin's manifest defaults.
    pub plugin_config: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// `[sessions]`.
    pub sessions: SessionsConfig,
    /// `[bus]`: the log's retention.
    pub bus: RetentionConfig,
    /// `[queues]`, with `[queues.NAME]` for the queues a plugin serves.
    pub queues: QueuesConfig,
    /// `[store]`.
    pub store: StoreConfig,
}

/// Values given on the command line or in the environment (clap merges the two).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// Address to listen on [default: 127.0.0.1:7777].
    #[arg(long, env = "SWITCHYARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the database and caches [default: ./.switchyard].
    #[arg(long, env = "SWITCHYARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory of plugins, one folder each [default: ./plugins].
    #[arg(long, env = "SWITCHYARD_PLUGINS")]
    pub plugins: Option<PathBuf>,
    /// Directory of recipe files [default: ./recipes].
    #[arg(long, env = "SWITCHYARD_RECIPES")]
    pub recipes: Option<PathBuf>,
    /// Directory of compiled components [default: <data-dir>/cache/components].
    #[arg(long, env = "SWITCHYARD_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Configuration file [default: ./switchyard.toml if it exists].
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `switchyard.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    plugins_dir: Option<PathBuf>,
    recipes_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    #[serde(default)]
    plugins: BTreeMap<String, PluginSection>,
    #[serde(default)]
    sessions: SessionsConfig,
    #[serde(default)]
    bus: RetentionConfig,
    #[serde(default)]
    queues: QueuesConfig,
    #[serde(default)]
    store: StoreConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginSection {
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl Config {
    /// Resolve the configuration from `overrides` and the config file.
    pub fn resolve(overrides: &Overrides) -> Result<Self, ConfigError> {
        let (file, base) = match &overrides.config {
            Some(path) => (read_file(path)?, path.parent().map(Path::to_owned)),
            None if Path::new("switchyard.toml").is_file() => {
                (read_file(Path::new("switchyard.toml"))?, None)
            }
            None => (FileConfig::default(), None),
        };
        // Paths in a config file are relative to the file.
        let rel = |p: PathBuf| match &base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p,
        };
        let data_dir = overrides
            .data_dir
            .clone()
            .or(file.data_dir.map(rel))
            .unwrap_or_else(|| PathBuf::from(".switchyard"));
        Ok(Self {
            cache_dir: overrides
                .cache_dir
                .clone()
                .or(file.cache_dir.map(rel))
                .unwrap_or_else(|| data_dir.join("cache").join("components")),
            data_dir,
            listen: overrides
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address")),
            plugins_dir: overrides
                .plugins
                .clone()
                .or(file.plugins_dir.map(rel))
                .unwrap_or_else(|| PathBuf::from("plugins")),
            recipes_dir: overrides
                .recipes
                .clone()
                .or(file.recipes_dir.map(rel))
                .unwrap_or_else(|| PathBuf::from("recipes")),
            plugin_config: file
                .plugins
                .into_iter()
                .map(|(name, section)| {
                    let values = section
                        .config
                        .into_iter()
                        .filter_map(|(k, v)| serde_json::to_value(v).ok().map(|v| (k, v)))
                        .collect();
                    (name, values)
                })
                .collect(),
            sessions: file.sessions,
            bus: file.bus,
            queues: file.queues,
            store: file.store,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|s| crate::plugins::manifest::line_col(&text, s.start))
            .unwrap_or((1, 1));
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            column,
            message: e.message().trim().to_owned(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"state\"\n[plugins.keyword-trigger.config]\nkeywords = [\"panic\"]\n",
        )
        .unwrap();
        let from_file = Config::resolve(&Overrides {
            config: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(from_file.listen.port(), 9000);
        assert_eq!(from_file.data_dir, dir.path().join("state"));
        assert_eq!(from_file.plugins_dir, PathBuf::from("plugins"));
        assert_eq!(
            from_file.plugin_config["keyword-trigger"]["keywords"],
            serde_json::json!(["panic"])
        );
        let flagged = Config::resolve(&Overrides {
            config: Some(path),
            listen: Some("127.0.0.1:1".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(flagged.listen.port(), 1);
    }

    #[test]
    fn a_typo_in_the_file_names_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nplugin_dir = \"x\"\n").unwrap();
        let err = Config::resolve(&Overrides {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("switchyard.toml:2:1:"), "{err}");
        assert!(err.contains("plugins_dir"), "{err}");
    }

    /// The README's `switchyard.toml` reads, and its values are the parts' defaults.
    #[test]
    fn the_readme_example_reads_and_shows_the_defaults() {
        let readme = include_str!("../README.md");
        let section = &readme[readme.find("## Configuration").expect("a section")..];
        let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let text = &section[start..start + section[start..].find("```").unwrap()];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::resolve(&Overrides {
            config: Some(path),
            ..Default::default()
        })
        .unwrap();
        let sessions = SessionsConfig::default();
        assert_eq!(config.sessions.default_adapter, sessions.default_adapter);
        assert_eq!(config.sessions.max_queue, sessions.max_queue);
        assert_eq!(config.sessions.history_limit, sessions.history_limit);
        assert_eq!(config.sessions.idle_timeout, sessions.idle_timeout);
        assert_eq!(config.sessions.abort_grace, sessions.abort_grace);
        let bus = RetentionConfig::default();
        assert_eq!(config.bus.retention_max_events, bus.retention_max_events);
        assert_eq!(config.bus.retention_max_age, bus.retention_max_age);
        let queues = QueuesConfig::default();
        assert_eq!(config.queues.backoff, queues.backoff);
        assert_eq!(config.queues.max_backoff, queues.max_backoff);
        assert_eq!(config.queues.default_lease, queues.default_lease);
        assert_eq!(config.queues.max_lease, queues.max_lease);
        assert_eq!(
            config.queues.default_max_attempts,
            queues.default_max_attempts
        );
        assert_eq!(config.queues.max_wait, queues.max_wait);
        assert_eq!(config.queues.reap_every, queues.reap_every);
        assert_eq!(config.queues.served["summaries"].concurrency, 2);
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    }
}
