//! `plugin.toml`: what a plugin is, what it may do and what it needs.
//!
//! Parsing is strict (unknown fields are errors, with the nearest valid name) so a typo
//! in a permission never silently grants or withholds something.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// WIT package versions of `switchyard:plugin` this host serves.
pub const SUPPORTED_WORLD_VERSIONS: &[&str] = &["0.1.0"];
/// Upper bounds a manifest may ask for.
pub const MAX_MEMORY_MB: u64 = 1024;
pub const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1000;

/// The three plugin kinds, one WIT world each.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    AgentAdapter,
    Connector,
    Trigger,
}

impl PluginKind {
    /// The WIT world that implements this kind.
    pub fn world(self) -> &'static str {
        match self {
            Self::AgentAdapter => "agent-adapter",
            Self::Connector => "connector",
            Self::Trigger => "trigger",
        }
    }

    /// The interface the component must export.
    pub fn export_interface(self) -> &'static str {
        match self {
            Self::AgentAdapter => "agent-api",
            Self::Connector => "connector-api",
            Self::Trigger => "trigger-api",
        }
    }

    pub fn as_str(self) -> &'static str {
        self.world()
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed, validated `plugin.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginManifest {
    pub name: String,
    pub version: String,
    pub kind: PluginKind,
    /// Version of the `switchyard:plugin` WIT package the component targets.
    pub world: String,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub description: String,
    /// The component file, relative to the plugin folder (default `<name>.wasm`).
    #[serde(default)]
    pub component: Option<PathBuf>,
    #[serde(default)]
    pub permissions: Permissions,
    #[serde(default)]
    pub config: BTreeMap<String, ConfigKey>,
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretDecl>,
    /// What an agent adapter takes of a session (kind `agent-adapter` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<AdapterNeeds>,
}

/// `[adapter]`: what an agent adapter takes of a session with each turn.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterNeeds {
    /// Most conversation messages of the session a turn hands the adapter, within the
    /// server's `[sessions] history_limit`; unset for that limit. 0 for an adapter that
    /// keeps no conversation: its turns copy no history into the sandbox. (The
    /// session's system prompt is not counted: it is always sent.)
    #[serde(default)]
    pub history: Option<usize>,
}

/// What the plugin may do. Everything is denied unless granted here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Permissions {
    /// Hosts reachable over outbound HTTP: `host` (any port) or `host:port`.
    pub allowed_hosts: Vec<String>,
    pub bus_publish: bool,
    pub kv: bool,
    pub kv_max_keys: usize,
    pub memory_mb: u64,
    pub timeout_ms: u64,
}

impl Default for Permissions {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            bus_publish: false,
            kv: false,
            kv_max_keys: 1024,
            memory_mb: 64,
            timeout_ms: 5000,
        }
    }
}

/// A configuration key the plugin reads with `config.get`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigKey {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub default: Option<toml::Value>,
    #[serde(default)]
    pub required: bool,
}

/// A secret the plugin reads with `config.secret`, taken from an environment variable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretDecl {
    pub env: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
}

/// Why a manifest was refused. The message names the file and what to change.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
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
    #[error("{path}: `{field}` {problem}")]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
    },
}

impl PluginManifest {
    /// Read and validate `<dir>/plugin.toml`.
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join("plugin.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path)
    }

    /// Parse and validate manifest text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let manifest: Self = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_col(text, span.start))
                .unwrap_or((1, 1));
            ManifestError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        manifest.validate(path)?;
        Ok(manifest)
    }

    fn validate(&self, path: &Path) -> Result<(), ManifestError> {
        let invalid = |field: &str, problem: String| ManifestError::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            problem,
        };
        if !is_plugin_name(&self.name) {
            return Err(invalid(
                "name",
                format!(
                    "is `{}`: use 1-64 lower-case letters, digits and '-', starting with a letter",
                    self.name
                ),
            ));
        }
        if !is_semver(&self.version) {
            return Err(invalid(
                "version",
                format!(
                    "is `{}`: use a semantic version such as 0.1.0",
                    self.version
                ),
            ));
        }
        if !SUPPORTED_WORLD_VERSIONS.contains(&self.world.as_str()) {
            return Err(invalid(
                "world",
                format!(
                    "is `{}`: this switchyard serves switchyard:plugin versions {}",
                    self.world,
                    SUPPORTED_WORLD_VERSIONS.join(", ")
                ),
            ));
        }
        let p = &self.permissions;
        if p.memory_mb == 0 || p.memory_mb > MAX_MEMORY_MB {
            return Err(invalid(
                "permissions.memory_mb",
                format!("is {}: choose 1 to {MAX_MEMORY_MB}", p.memory_mb),
            ));
        }
        if p.timeout_ms == 0 || p.timeout_ms > MAX_TIMEOUT_MS {
            return Err(invalid(
                "permissions.timeout_ms",
                format!("is {}: choose 1 to {MAX_TIMEOUT_MS}", p.timeout_ms),
            ));
        }
        for host in &p.allowed_hosts {
            if host.is_empty() || host.contains('/') || host.contains("://") {
                return Err(invalid(
                    "permissions.allowed_hosts",
                    format!("has `{host}`: give a host name or host:port, without scheme or path"),
                ));
            }
        }
        if let Some(component) = &self.component
            && (component.is_absolute()
                || component
                    .components()
                    .any(|c| c == std::path::Component::ParentDir))
        {
            return Err(invalid(
                "component",
                format!(
                    "is `{}`: give a path inside the plugin folder",
                    component.display()
                ),
            ));
        }
        if self.adapter.is_some() && self.kind != PluginKind::AgentAdapter {
            return Err(invalid(
                "adapter",
                format!(
                    "is set for a {}: `[adapter]` is only for kind agent-adapter",
                    self.kind.world()
                ),
            ));
        }
        for (name, secret) in &self.secrets {
            if secret.env.is_empty() {
                return Err(invalid(
                    &format!("secrets.{name}.env"),
                    "is empty: name the environment variable that holds the secret".into(),
                ));
            }
        }
        Ok(())
    }

    /// Path of the component file for a plugin in `dir`.
    pub fn component_path(&self, dir: &Path) -> PathBuf {
        match &self.component {
            Some(c) => dir.join(c),
            None => dir.join(format!("{}.wasm", self.name)),
        }
    }
}

/// 1-64 lower-case letters, digits and '-', starting with a letter: a plugin's name is
/// also its folder's, so this keeps it one plain path component.
pub fn is_plugin_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// The plugins of a plugins directory by name, with their kinds, from their manifests
/// alone (nothing compiled); folders without a valid manifest are left out. For offline
/// checks of what names a plugin (recipes).
pub fn kinds_in(dir: &Path) -> std::io::Result<BTreeMap<String, PluginKind>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.join("plugin.toml").is_file()
            && let Ok(m) = PluginManifest::load(&path)
        {
            out.insert(m.name, m.kind);
        }
    }
    Ok(out)
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "keyword-trigger"
version = "0.1.0"
kind = "trigger"
world = "0.1.0"
language = "javascript"

[permissions]
allowed_hosts = ["api.example.com", "127.0.0.1:8080"]

[config.keywords]
default = ["panic"]

[secrets.token]
env = "EXAMPLE_TOKEN"
"#;

    fn parse(text: &str) -> Result<PluginManifest, ManifestError> {
        PluginManifest::parse(text, Path::new("plugins/x/plugin.toml"))
    }

    #[test]
    fn parses_a_full_manifest_with_defaults() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.kind, PluginKind::Trigger);
        assert_eq!(m.permissions.memory_mb, 64);
        assert!(!m.permissions.kv);
        assert_eq!(
            m.component_path(Path::new("d")),
            Path::new("d/keyword-trigger.wasm")
        );
    }

    #[test]
    fn adapter_needs_are_only_for_adapters() {
        let adapter = GOOD
            .replace("kind = \"trigger\"", "kind = \"agent-adapter\"")
            .replace("[permissions]", "[adapter]\nhistory = 0\n\n[permissions]");
        let m = parse(&adapter).unwrap();
        assert_eq!(m.adapter.unwrap().history, Some(0));
        assert!(parse(GOOD).unwrap().adapter.is_none());

        let trigger = GOOD.replace("[permissions]", "[adapter]\nhistory = 0\n\n[permissions]");
        let err = parse(&trigger).unwrap_err().to_string();
        assert!(err.contains("adapter"), "{err}");
        assert!(err.contains("only for kind agent-adapter"), "{err}");
        let negative = adapter.replace("history = 0", "history = -1");
        let err = parse(&negative).unwrap_err().to_string();
        assert!(err.starts_with("plugins/x/plugin.toml:"), "{err}");
    }

    #[test]
    fn unknown_field_names_line_and_column() {
        let text = GOOD.replace("allowed_hosts", "allowed_host");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("plugins/x/plugin.toml:9:1:"), "{err}");
        assert!(err.contains("unknown field `allowed_host`"), "{err}");
        assert!(err.contains("allowed_hosts"), "{err}");
    }

    #[test]
    fn refuses_unknown_kind_and_world() {
        let err = parse(&GOOD.replace("\"trigger\"", "\"trigga\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `trigga`"), "{err}");
        let err = parse(&GOOD.replace("world = \"0.1.0\"", "world = \"9.0.0\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`world` is `9.0.0`"), "{err}");
    }

    #[test]
    fn refuses_bad_names_limits_and_paths() {
        assert!(parse(&GOOD.replace("keyword-trigger", "Keyword")).is_err());
        assert!(parse(&GOOD.replace("0.1.0\"\nkind", "1.0\"\nkind")).is_err());
        let t = GOOD.replace("[permissions]", "component = \"../x.wasm\"\n[permissions]");
        // `component` must come before a table in TOML; put it at the top.
        let t = t.replace("component = \"../x.wasm\"\n", "");
        let t = format!("component = \"../x.wasm\"\n{t}");
        assert!(parse(&t).unwrap_err().to_string().contains("`component`"));
        let t = GOOD.replace("[permissions]\n", "[permissions]\nmemory_mb = 4096\n");
        assert!(parse(&t).unwrap_err().to_string().contains("memory_mb"));
        let t = GOOD.replace("\"api.example.com\"", "\"https://api.example.com\"");
        assert!(parse(&t).unwrap_err().to_string().contains("allowed_hosts"));
    }
}
