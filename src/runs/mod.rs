//! Runs: a recipe started with inputs. Each step runs in a session of its own (key
//! `run-<run id>-<step id>`), steps whose `needs` are met run in parallel, and every
//! transition of the run and of its steps is written with its bus event (carrying the
//! run's correlation id) before anything else happens.
//!
//! Invariants:
//! - A run goes on with the recipe version it started with: it keeps the recipe's
//!   text, and after a restart it is resumed from that text, not from the file.
//! - A step in flight at a crash is resumed: its turn's outcome (done, or interrupted by
//!   the crash) is read from its session, and an interrupted attempt is retried or
//!   failed by the step's `retries` policy, like any failed attempt.
//! - The first failed step fails the run: steps in flight are canceled, steps not yet
//!   started are marked canceled.

mod driver;
pub mod events;
pub mod inputs;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::Bus;
use crate::event::NewEvent;
use crate::recipes::Recipe;
use crate::sessions::Sessions;
use crate::store::{
    FiringRecord, RunFilter, RunRecord, RunStatus, StepRecord, StepStatus, Store, StoreError,
};
pub use inputs::InputProblem;

/// Why a run operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no run with id `{0}`")]
    NotFound(String),
    #[error("{}", .0.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))]
    Inputs(Vec<InputProblem>),
    #[error("slot `{slot}` of automation `{automation}` has fired already")]
    SlotTaken { automation: String, slot: String },
    #[error("run `{id}` has already ended ({status})")]
    Ended { id: String, status: RunStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A run with its steps.
#[derive(Debug, Clone)]
pub struct RunView {
    pub run: RunRecord,
    pub steps: Vec<StepRecord>,
}

/// How a run was started.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// `manual`, `schedule`, `event` or `webhook`, with what the kind needs to say.
    pub detail: Value,
    /// Taken from the start (an event's, a request's); a new one otherwise.
    pub correlation_id: Option<String>,
    /// The automation firing that starts it: recorded with the run, atomically, and
    /// refused ([`RunError::SlotTaken`]) if its slot has fired already.
    pub firing: Option<TriggerFiring>,
}

/// A firing that starts a run, and how its owner announces it: the firing's event is
/// the automations' vocabulary, written with the run once the run's id is known.
#[derive(Debug, Clone)]
pub struct TriggerFiring {
    pub record: FiringRecord,
    /// The event for the firing (with its run id set) under the run's correlation id.
    pub announce: fn(&FiringRecord, &str) -> NewEvent,
}

impl Trigger {
    pub fn manual() -> Self {
        Self {
            detail: json!({ "kind": "manual" }),
            correlation_id: None,
            firing: None,
        }
    }
}

/// The runs service; cheap to clone.
#[derive(Clone)]
pub struct Runs {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    bus: Bus,
    sessions: Sessions,
    /// Runs being driven in this process, by id.
    live: std::sync::Mutex<HashMap<String, LiveRun>>,
    tasks: TaskTracker,
    /// Cancelled at shutdown: drivers stop where they are, and the runs are resumed
    /// at the next start (as after a crash).
    stopping: CancellationToken,
}

/// A run driven by this process.
struct LiveRun {
    /// Cancels the run (its driver aborts the steps in flight).
    cancel: CancellationToken,
    /// The driver is writing the run's end: no longer live, though a cancel still
    /// waits for the end to be announced.
    ending: bool,
}

impl Runs {
    pub fn new(store: Store, bus: Bus, sessions: Sessions) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                bus,
                sessions,
                live: std::sync::Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                stopping: CancellationToken::new(),
            }),
        }
    }

    /// Start `recipe` with `given` inputs: checked and defaulted, the run and its steps
    /// written, then driven in the background. Returns the run and its steps as created.
    pub async fn start(
        &self,
        recipe: Arc<Recipe>,
        given: Map<String, Value>,
        trigger: Trigger,
    ) -> Result<RunView, RunError> {
        let inputs = inputs::resolve(&recipe, given).map_err(RunError::Inputs)?;
        let id = ulid::Ulid::new().to_string();
        let run = RunRecord {
            correlation_id: trigger.correlation_id.unwrap_or_else(|| id.clone()),
            id,
            recipe: recipe.name.clone(),
            version: recipe.version.clone(),
            file: recipe.file.display().to_string(),
            source: recipe.source.to_string(),
            inputs: Value::Object(inputs),
            status: RunStatus::Running,
            trigger: trigger.detail,
            outputs: None,
            error: None,
            created_at: crate::time::now_rfc3339(),
            finished_at: None,
        };
        let steps: Vec<StepRecord> = recipe
            .steps
            .iter()
            .map(|s| StepRecord {
                step_id: s.id.clone(),
                status: StepStatus::Pending,
                attempt: 0,
                session: None,
                message_id: None,
                output: None,
                error: None,
                started_at: None,
                finished_at: None,
                retry_at: None,
            })
            .collect();
        let event = events::run_event(
            &run,
            "started",
            json!({
                "recipe": run.recipe,
                "version": run.version,
                "inputs": run.inputs,
                "trigger": run.trigger,
            }),
        );
        let firing = trigger.firing.map(
            |TriggerFiring {
                 mut record,
                 announce,
             }| {
                record.run_id = Some(run.id.clone());
                let event = announce(&record, &run.correlation_id);
                (record, event)
            },
        );
        let slot = firing
            .as_ref()
            .map(|(f, _)| (f.automation.clone(), f.slot.clone()));
        let created = self
            .inner
            .store
            .create_run(run.clone(), steps.clone(), event, firing)
            .await?;
        if !created {
            let (automation, slot) = slot.unwrap_or_default();
            return Err(RunError::SlotTaken { automation, slot });
        }
        tracing::info!(run = %run.id, recipe = %run.recipe, trigger = %run.trigger["kind"].as_str().unwrap_or("?"), "run started");
        self.drive(recipe, run.clone(), steps.clone());
        Ok(RunView { run, steps })
    }

    /// After a restart: go on with every run that was running, from the recipe text it
    /// started with. Call after [`Sessions::recover`], which settles cut-off turns.
    pub async fn recover(&self) -> Result<usize, RunError> {
        let ids = self.inner.store.unfinished_runs().await?;
        for id in &ids {
            let Some((run, steps)) = self.inner.store.run(id).await? else {
                continue;
            };
            match crate::recipes::check(std::path::Path::new(&run.file), &run.source, None) {
                Ok(recipe) => {
                    self.inner
                        .bus
                        .notify(events::run_event(&run, "resumed", json!({})))
                        .await;
                    self.drive(Arc::new(recipe), run, steps);
                }
                Err(problems) => {
                    let error = format!(
                        "cannot resume: the recipe text it started with no longer reads: {}",
                        problems[0]
                    );
                    driver::finish_unresumable(&self.inner, run, error).await;
                }
            }
        }
        if !ids.is_empty() {
            tracing::info!(
                runs = ids.len(),
                "resumed the runs in flight at the last stop"
            );
        }
        Ok(ids.len())
    }

    fn drive(&self, recipe: Arc<Recipe>, run: RunRecord, steps: Vec<StepRecord>) {
        let cancel = CancellationToken::new();
        self.inner
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                run.id.clone(),
                LiveRun {
                    cancel: cancel.clone(),
                    ending: false,
                },
            );
        let inner = self.inner.clone();
        let stopping = self.inner.stopping.clone();
        self.inner.tasks.spawn(async move {
            // Dropped at shutdown with its step tasks: nothing is written, and the run,
            // still `running` on disk, is resumed at the next start.
            tokio::select! {
                () = driver::drive(inner, recipe, run, steps, cancel) => {}
                () = stopping.cancelled() => {}
            }
        });
    }

    /// Shutdown: stop driving runs (they stay `running` on disk and resume at the next
    /// start); resolves once every driver is gone.
    pub async fn stop(&self) {
        self.inner.stopping.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    pub async fn get(&self, id: &str) -> Result<RunView, RunError> {
        let (run, steps) = self
            .inner
            .store
            .run(id)
            .await?
            .ok_or_else(|| RunError::NotFound(id.to_owned()))?;
        Ok(RunView { run, steps })
    }

    /// Runs newest first.
    pub async fn list(&self, filter: RunFilter) -> Result<Vec<RunRecord>, RunError> {
        Ok(self.inner.store.list_runs(filter).await?)
    }

    /// Cancel a running run: its steps in flight are aborted, the others marked
    /// canceled. Returns the run once it has ended.
    pub async fn cancel(&self, id: &str) -> Result<RunView, RunError> {
        // Subscribed before the run is read, so its end cannot fall in between.
        let mut ends = self
            .inner
            .bus
            .subscribe_from(events::lifecycle_pattern(), None);
        let view = self.get(id).await?;
        if view.run.status != RunStatus::Running {
            return Err(RunError::Ended {
                id: id.to_owned(),
                status: view.run.status,
            });
        }
        let token = self
            .inner
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|live| live.cancel.clone());
        if let Some(token) = token {
            // (A run already ending only finishes writing its end.)
            token.cancel();
            // The driver aborts turns in flight and writes the end; wait for it (an
            // adapter that ignores the abort is cut off after the sessions' grace).
            let wait = async {
                loop {
                    match ends.next().await {
                        Ok(event) if self.ended(&event) == Some(id) => break,
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(10), wait).await;
        }
        self.get(id).await
    }

    /// Is the run being driven now (and not yet writing its end)?
    pub fn is_live(&self, id: &str) -> bool {
        self.inner
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .is_some_and(|live| !live.ending)
    }

    /// The run whose end `event` announces. Anyone may publish on `run.…` topics: an
    /// end counts only once the run is no longer live here, which its driver makes so
    /// before it announces the end.
    pub fn ended<'e>(&self, event: &'e crate::event::Event) -> Option<&'e str> {
        events::ended_run(event).filter(|id| !self.is_live(id))
    }
}
