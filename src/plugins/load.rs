//! Loading a plugin folder: manifest → component (from the cache) → export check →
//! link → typed pre-instance → `describe()` agrees with the manifest. Any failed step
//! refuses the plugin with a message that says which step and why.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::PluginHost;
use super::bindings::{agent::AgentAdapterPre, connector::ConnectorPre, trigger::TriggerPre};
use super::cache::content_hash;
use super::error::LoadError;
use super::loaded::{Health, KindPre, LoadedPlugin};
use super::manifest::{PluginKind, PluginManifest, SUPPORTED_WORLD_VERSIONS};

const PACKAGE: &str = "switchyard:plugin";

impl PluginHost {
    /// Load the plugin in `dir`. Returns `Ok(None)` when neither its manifest nor its
    /// component changed since `current` was loaded.
    pub(super) async fn load(
        &self,
        dir: &Path,
        current: Option<&LoadedPlugin>,
    ) -> Result<Option<LoadedPlugin>, LoadError> {
        let started = Instant::now();
        let manifest_path = dir.join("plugin.toml");
        let manifest_text =
            std::fs::read_to_string(&manifest_path).map_err(|source| LoadError::Read {
                path: manifest_path.clone(),
                source,
            })?;
        let manifest = PluginManifest::parse(&manifest_text, &manifest_path)?;
        let folder = dir.file_name().unwrap_or_default().to_string_lossy();
        if manifest.name != folder {
            return Err(LoadError::NameMismatch {
                path: manifest_path,
                name: manifest.name,
                folder: folder.into_owned(),
            });
        }
        let component_path = manifest.component_path(dir);
        let bytes = match std::fs::read(&component_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LoadError::MissingComponent {
                    build: build_hint(dir),
                    path: component_path,
                });
            }
            Err(source) => {
                return Err(LoadError::Read {
                    path: component_path,
                    source,
                });
            }
        };
        let component_hash = content_hash(&bytes);
        let fingerprint = content_hash(format!("{component_hash}\n{manifest_text}").as_bytes());
        if current.is_some_and(|c| c.fingerprint == fingerprint) {
            return Ok(None);
        }

        // Compiling is CPU-heavy (seconds for an interpreter-based component): keep it
        // off the async worker threads.
        let (engine, cache, path) = (
            self.engine.clone(),
            self.cache.clone(),
            component_path.clone(),
        );
        let hash = component_hash.clone();
        let (component, cache_outcome) = tokio::task::spawn_blocking(move || {
            let (component, outcome) =
                cache
                    .load(&engine, &bytes, &hash)
                    .map_err(|e| LoadError::Compile {
                        path: path.clone(),
                        message: format!("{e:#}"),
                    })?;
            super::engine::prepare_memory_images(&component).map_err(|e| LoadError::Internal {
                path,
                message: format!("cannot build its memory image: {e:#}"),
            })?;
            Ok::<_, LoadError>((component, outcome))
        })
        .await
        .map_err(|e| LoadError::Internal {
            path: component_path.clone(),
            message: e.to_string(),
        })??;

        check_exports(
            &self.engine,
            &component,
            manifest.kind,
            &manifest.world,
            &component_path,
        )?;
        let link_error = |e: wasmtime::Error| LoadError::Link {
            path: component_path.clone(),
            message: format!("{e:#}"),
            versions: SUPPORTED_WORLD_VERSIONS.join(", "),
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(link_error)?;
        let typed = |e: wasmtime::Error| LoadError::WrongExports {
            path: component_path.clone(),
            message: format!("does not match world `{}`: {e:#}", manifest.kind.world()),
        };
        let pre = match manifest.kind {
            PluginKind::AgentAdapter => {
                KindPre::Agent(AgentAdapterPre::new(instance_pre).map_err(typed)?)
            }
            PluginKind::Connector => {
                KindPre::Connector(ConnectorPre::new(instance_pre).map_err(typed)?)
            }
            PluginKind::Trigger => KindPre::Trigger(TriggerPre::new(instance_pre).map_err(typed)?),
        };

        let config_values = Arc::new(self.effective_config(&manifest, &manifest_path)?);
        let secrets = Arc::new(secrets_of(&manifest, &manifest_path)?);
        let allowed_hosts: Arc<[String]> = manifest.permissions.allowed_hosts.clone().into();
        let mut plugin = LoadedPlugin {
            name: manifest.name.as_str().into(),
            dir: dir.to_owned(),
            component_path: component_path.clone(),
            component_hash,
            fingerprint,
            info: super::types::PluginInfo {
                name: String::new(),
                version: String::new(),
                summary: String::new(),
            },
            loaded_at: crate::time::now_rfc3339(),
            load_time: Default::default(),
            cache: cache_outcome,
            pre,
            config_values,
            secrets,
            allowed_hosts,
            health: Health::default(),
            manifest,
        };
        let info = self
            .describe(&plugin)
            .await
            .map_err(|e| LoadError::Describe {
                path: component_path.clone(),
                source: Box::new(e),
            })?;
        for (field, component, manifest) in [
            ("name", &info.name, &plugin.manifest.name),
            ("version", &info.version, &plugin.manifest.version),
        ] {
            if component != manifest {
                return Err(LoadError::DescribeMismatch {
                    path: component_path,
                    field,
                    component: component.clone(),
                    manifest: manifest.clone(),
                });
            }
        }
        plugin.info = info;
        plugin.load_time = started.elapsed();
        Ok(Some(plugin))
    }

    /// Manifest defaults overlaid with switchyard.toml's `[plugins.NAME.config]`, as
    /// JSON text per key.
    fn effective_config(
        &self,
        manifest: &PluginManifest,
        path: &Path,
    ) -> Result<BTreeMap<String, String>, LoadError> {
        let overrides = self.services.plugin_config.get(&manifest.name);
        let mut values = BTreeMap::new();
        for (key, decl) in &manifest.config {
            let value = overrides.and_then(|o| o.get(key).cloned()).or_else(|| {
                decl.default
                    .as_ref()
                    .and_then(|d| serde_json::to_value(d).ok())
            });
            match value {
                Some(v) => {
                    values.insert(key.clone(), v.to_string());
                }
                None if decl.required => {
                    return Err(LoadError::MissingConfig {
                        path: path.to_owned(),
                        plugin: manifest.name.clone(),
                        key: key.clone(),
                    });
                }
                None => {}
            }
        }
        Ok(values)
    }
}

fn secrets_of(
    manifest: &PluginManifest,
    path: &Path,
) -> Result<BTreeMap<String, String>, LoadError> {
    let mut secrets = BTreeMap::new();
    for (name, decl) in &manifest.secrets {
        if decl.required && std::env::var_os(&decl.env).is_none() {
            return Err(LoadError::MissingSecret {
                path: path.to_owned(),
                name: name.clone(),
                env: decl.env.clone(),
            });
        }
        secrets.insert(name.clone(), decl.env.clone());
    }
    Ok(secrets)
}

/// The command that builds the plugin in `dir`, for error messages.
fn build_hint(dir: &Path) -> String {
    let script = dir.join("build.sh");
    if script.exists() {
        script.display().to_string()
    } else {
        format!(
            "the plugin's build, or plugins/build-all.sh ({} has no build.sh)",
            dir.display()
        )
    }
}

/// The component must export the interface of its kind at a version this host serves,
/// and the version the manifest names. Say what it does export when it does not.
fn check_exports(
    engine: &wasmtime::Engine,
    component: &Component,
    kind: PluginKind,
    world_version: &str,
    path: &Path,
) -> Result<(), LoadError> {
    let ours: Vec<String> = component
        .component_type()
        .exports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .map(|(name, _)| name.to_owned())
        .filter(|name| name.starts_with(&format!("{PACKAGE}/")))
        .collect();
    let wanted = format!("{PACKAGE}/{}@{world_version}", kind.export_interface());
    if ours.contains(&wanted) {
        return Ok(());
    }
    let message = if ours.is_empty() {
        format!(
            "exports no {PACKAGE} interface; a {kind} plugin must export {wanted} (world `{}`)",
            kind.world()
        )
    } else if let Some(other) = [
        PluginKind::AgentAdapter,
        PluginKind::Connector,
        PluginKind::Trigger,
    ]
    .into_iter()
    .find(|k| {
        ours.iter()
            .any(|n| n.contains(&format!("/{}@", k.export_interface())))
    })
    .filter(|k| *k != kind)
    {
        format!(
            "exports {}: the component implements world `{}`, but plugin.toml says kind = \"{kind}\"",
            ours.join(", "),
            other.world()
        )
    } else {
        format!(
            "exports {} but a {kind} plugin for world version {world_version} must export {wanted}",
            ours.join(", ")
        )
    };
    Err(LoadError::WrongExports {
        path: path.to_owned(),
        message,
    })
}
