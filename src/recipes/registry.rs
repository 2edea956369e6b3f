//! The recipes in force: one entry per recipe file, hot-reloaded.
//!
//! A changed file is checked first. Valid: its recipe replaces the previous version in
//! one swap (runs in flight hold an `Arc` of the version they started with). Invalid:
//! the last good version stays in force and the problems are kept beside it, shown by
//! `recipe list`, the API and a `recipe.<name>.load_failed` event. A deleted file
//! unloads its recipe. Every change bumps [`RecipeRegistry::generation`], which is what
//! schedulers watch to recompute.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{PluginCatalog, Problem, Recipe};
use crate::bus::Bus;
use crate::event::NewEvent;

/// Gives the plugins recipes may name, as they are now.
pub type CatalogSource = Box<dyn Fn() -> PluginCatalog + Send + Sync>;

pub struct RecipeRegistry {
    files: RwLock<BTreeMap<PathBuf, FileState>>,
    /// Recipe name → its file; changed only under the `files` write lock.
    names: RwLock<HashMap<String, PathBuf>>,
    catalog: CatalogSource,
    bus: Option<Bus>,
    generation: tokio::sync::watch::Sender<u64>,
}

struct FileState {
    /// The last good version, if the file ever had one.
    recipe: Option<Arc<Recipe>>,
    /// Problems of the file as it is now; empty when `recipe` is its current content.
    problems: Vec<Problem>,
    /// SHA-256 of the text last read, so that touching a file without changing it is
    /// not a reload.
    fingerprint: [u8; 32],
    loaded_at: Option<String>,
}

/// What a reload did, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipeReload {
    Loaded(String),
    Reloaded(String),
    Unchanged,
    /// Problems; the previous version (if any) stays in force.
    Failed(usize),
    Unloaded(String),
}

/// A recipe file as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecipeSummary {
    /// The recipe's name; for a file that never loaded, its file stem.
    pub name: String,
    #[schema(value_type = String)]
    pub file: PathBuf,
    /// `ready`, or `failed` (no version could be loaded).
    pub status: &'static str,
    /// The version in force (see `recipes::version_of`).
    pub version: Option<String>,
    pub description: String,
    pub inputs: Value,
    pub steps: Vec<Value>,
    pub automations: Value,
    /// Problems of the file as it is now; with status `ready` the previous version is
    /// in force.
    pub problems: Vec<Problem>,
    pub loaded_at: Option<String>,
}

impl RecipeRegistry {
    pub fn new(catalog: CatalogSource, bus: Option<Bus>) -> Self {
        Self {
            files: RwLock::new(BTreeMap::new()),
            names: RwLock::new(HashMap::new()),
            catalog,
            bus,
            generation: tokio::sync::watch::channel(0).0,
        }
    }

    /// Bumped after every change of the recipes in force.
    pub fn generation(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Load every recipe file of `dir` (a missing directory is no recipes).
    pub async fn scan(&self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            tracing::info!(dir = %dir.display(), "no recipes directory");
            return;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        files.sort();
        // The plugins do not change during a scan: one catalog serves every file.
        let catalog = (self.catalog)();
        for f in files.into_iter().filter(|f| super::is_recipe_file(f)) {
            self.reload_against(&f, &catalog).await;
        }
    }

    /// Bring the file at `path` in line with the disk.
    pub async fn reload(&self, path: &Path) -> RecipeReload {
        self.reload_against(path, &(self.catalog)()).await
    }

    /// [`Self::reload`], checking plugin names against `catalog`.
    async fn reload_against(&self, path: &Path, catalog: &PluginCatalog) -> RecipeReload {
        // One key per file, however it was named (the watcher reports canonical paths).
        let path = &canonical(path);
        let text = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.unload(path).await,
            Err(e) => {
                let problem = Problem {
                    file: path.to_owned(),
                    line: 1,
                    column: 1,
                    message: format!("cannot read the file: {e}"),
                    help: None,
                };
                return self.failed(path, vec![problem], [0; 32]).await;
            }
        };
        let fingerprint: [u8; 32] = Sha256::digest(&text).into();
        if self
            .read()
            .get(path)
            .is_some_and(|f| f.fingerprint == fingerprint)
        {
            return RecipeReload::Unchanged;
        }
        let text = String::from_utf8_lossy(&text);
        let checked = super::check(path, &text, Some(catalog));
        let recipe = match checked {
            Ok(recipe) => recipe,
            Err(problems) => return self.failed(path, problems, fingerprint).await,
        };
        if let Some(other) = self.file_of(&recipe.name).filter(|f| f != path) {
            let problem = Problem {
                file: path.to_owned(),
                line: 1,
                column: 1,
                message: format!(
                    "recipe `{}` is already defined in {}",
                    recipe.name,
                    other.display()
                ),
                help: Some("recipe names must be unique: rename one of them".into()),
            };
            return self.failed(path, vec![problem], fingerprint).await;
        }
        let name = recipe.name.clone();
        let previous = {
            let mut files = self.write();
            let previous = files.get(path).and_then(|f| f.recipe.clone());
            let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
            if let Some(old) = &previous {
                names.remove(&old.name);
            }
            names.insert(name.clone(), path.to_owned());
            drop(names);
            files.insert(
                path.to_owned(),
                FileState {
                    recipe: Some(Arc::new(recipe)),
                    problems: Vec::new(),
                    fingerprint,
                    loaded_at: Some(crate::time::now_rfc3339()),
                },
            );
            previous
        };
        self.generation.send_modify(|g| *g += 1);
        // A renamed recipe: the old name is gone.
        if let Some(old) = previous.as_ref().filter(|p| p.name != name) {
            self.announce(
                &old.name,
                "unloaded",
                json!({ "file": path, "renamed_to": name }),
            );
        }
        let what = if previous.is_some() {
            "reloaded"
        } else {
            "loaded"
        };
        tracing::info!(recipe = %name, file = %path.display(), "recipe {what}");
        self.announce(&name, what, json!({ "file": path }));
        if previous.is_some() {
            RecipeReload::Reloaded(name)
        } else {
            RecipeReload::Loaded(name)
        }
    }

    async fn failed(
        &self,
        path: &Path,
        problems: Vec<Problem>,
        fingerprint: [u8; 32],
    ) -> RecipeReload {
        let count = problems.len();
        let name = {
            let mut files = self.write();
            let state = files.entry(path.to_owned()).or_insert(FileState {
                recipe: None,
                problems: Vec::new(),
                fingerprint,
                loaded_at: None,
            });
            state.problems = problems.clone();
            state.fingerprint = fingerprint;
            state
                .recipe
                .as_ref()
                .map_or_else(|| file_stem(path), |r| r.name.clone())
        };
        for p in &problems {
            tracing::warn!(recipe = %name, "recipe not loaded: {p}");
        }
        self.generation.send_modify(|g| *g += 1);
        self.announce(
            &name,
            "load_failed",
            json!({ "file": path, "problems": problems, "previous_version_in_force": self.get(&name).is_some() }),
        );
        RecipeReload::Failed(count)
    }

    async fn unload(&self, path: &Path) -> RecipeReload {
        let removed = {
            let mut files = self.write();
            let removed = files.remove(path);
            if let Some(r) = removed.as_ref().and_then(|s| s.recipe.as_ref()) {
                self.names
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&r.name);
            }
            removed
        };
        let Some(state) = removed else {
            return RecipeReload::Unchanged;
        };
        self.generation.send_modify(|g| *g += 1);
        let name = state
            .recipe
            .map_or_else(|| file_stem(path), |r| r.name.clone());
        tracing::info!(recipe = %name, file = %path.display(), "recipe unloaded (file deleted)");
        self.announce(&name, "unloaded", json!({ "file": path }));
        RecipeReload::Unloaded(name)
    }

    fn announce(&self, name: &str, what: &str, data: Value) {
        if let Some(bus) = &self.bus {
            let mut event = NewEvent::runtime(
                format!("recipe.{name}.{what}"),
                format!("switchyard.recipe.{what}"),
                data,
            );
            event.subject = Some(name.to_owned());
            // Queued now (so in order), not awaited: a scan of many files does not
            // wait for one commit per file.
            match bus.submit(event) {
                Ok(committed) => {
                    tokio::spawn(async move {
                        if let Err(e) = committed.await {
                            tracing::warn!(error = %e, "recipe event not stored");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "recipe event refused"),
            }
        }
    }

    /// The recipe `name` in force.
    pub fn get(&self, name: &str) -> Option<Arc<Recipe>> {
        let path = self.file_of(name)?;
        self.read().get(&path)?.recipe.clone()
    }

    /// Every recipe in force.
    pub fn recipes(&self) -> Vec<Arc<Recipe>> {
        self.read()
            .values()
            .filter_map(|f| f.recipe.clone())
            .collect()
    }

    fn file_of(&self, name: &str) -> Option<PathBuf> {
        self.names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The summary of the file whose recipe (or, never loaded, file stem) is `name`.
    pub fn summary(&self, name: &str) -> Option<RecipeSummary> {
        let now = chrono::Utc::now();
        self.read()
            .iter()
            .find(|(file, state)| {
                state
                    .recipe
                    .as_ref()
                    .map_or_else(|| file_stem(file) == name, |r| r.name == name)
            })
            .map(|(file, state)| summary(file, state, now))
    }

    pub fn list(&self) -> Vec<RecipeSummary> {
        let now = chrono::Utc::now();
        self.read()
            .iter()
            .map(|(file, state)| summary(file, state, now))
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<PathBuf, FileState>> {
        self.files.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<PathBuf, FileState>> {
        self.files.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// `path` with its directory canonicalized (the file itself may be gone).
fn canonical(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            dir.canonicalize()
                .map(|d| d.join(name))
                .unwrap_or_else(|_| path.to_owned())
        }
        _ => path.to_owned(),
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("recipe")
        .to_owned()
}

fn summary(file: &Path, state: &FileState, now: chrono::DateTime<chrono::Utc>) -> RecipeSummary {
    let Some(r) = &state.recipe else {
        return RecipeSummary {
            name: file_stem(file),
            file: file.to_owned(),
            status: "failed",
            version: None,
            description: String::new(),
            inputs: json!({}),
            steps: Vec::new(),
            automations: json!({}),
            problems: state.problems.clone(),
            loaded_at: None,
        };
    };
    let inputs: serde_json::Map<String, Value> = r
        .inputs
        .iter()
        .map(|(name, i)| {
            let mut v = json!({ "type": i.kind.as_str(), "required": i.required });
            if !i.description.is_empty() {
                v["description"] = json!(i.description);
            }
            if let Some(d) = &i.default {
                v["default"] = d.clone();
            }
            if !i.values.is_empty() {
                v["values"] = json!(i.values);
            }
            (name.clone(), v)
        })
        .collect();
    let steps = r
        .steps
        .iter()
        .map(|s| json!({ "id": s.id, "agent": s.plugin, "needs": s.needs }))
        .collect();
    let schedules: Vec<Value> = r
        .schedules
        .iter()
        .map(|s| {
            json!({
                "cron": s.expression,
                "timezone": s.cron.zone().name(),
                "overlap": s.overlap,
                "catch_up": s.catch_up,
                "next": s.cron.upcoming(now, 3).iter().map(|t| t.to_rfc3339()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let events: Vec<Value> = r
        .events
        .iter()
        .map(|e| json!({ "topic": e.topic.to_string(), "trigger": e.trigger.as_ref().map(|t| &t.plugin) }))
        .collect();
    RecipeSummary {
        version: Some(r.version.clone()),
        name: r.name.clone(),
        file: file.to_owned(),
        status: "ready",
        description: r.description.clone(),
        inputs: Value::Object(inputs),
        steps,
        automations: json!({ "schedule": schedules, "event": events, "webhook": r.webhooks }),
        problems: state.problems.clone(),
        loaded_at: state.loaded_at.clone(),
    }
}
