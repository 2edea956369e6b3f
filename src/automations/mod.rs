//! Automations: the `on:` block of recipes — cron schedules, bus events (optionally
//! decided by a trigger plugin) and webhooks — firing recipe runs.
//!
//! Every automation has an id: `<recipe>:schedule`, `<recipe>:event`, `<recipe>:webhook`
//! (`:2`, `:3`… for a recipe's second and later of a kind).
//!
//! Invariants:
//! - A slot (a scheduled time, an event id, a webhook request) fires at most once, also
//!   across restarts: the firing is recorded in the same transaction as the run it
//!   starts (or with its decision: skipped, error), and a slot already recorded is
//!   never started again.
//! - Slots missed while the server was down are caught up at start by the schedule's
//!   `catch_up` (none: recorded as missed; latest; all, within `catch_up_window`).
//! - A recipe reload recomputes schedules; an unchanged schedule keeps its next slot.
//! - Every event in the log is handed to the event automations, also across a crash:
//!   they save how far they got (see [`LogProgress`]) and read on from there at start.
//!   An event read twice fires nothing twice: its slot is its id. An automation never
//!   fires for an event older than itself.

mod events;
mod firing;
mod schedule;
pub mod timetable;
mod webhook;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

use crate::bus::Bus;
use crate::plugins::PluginHost;
use crate::recipes::{Overlap, Recipe, RecipeRegistry};
use crate::runs::{RunError, Runs};
use crate::store::{FiringRecord, Store, StoreError};
use events::{LOG_CURSOR, LogProgress, SAVE_PROGRESS_EVERY, next_event};
pub use firing::firing_event;
use timetable::Timetable;

/// The id of a recipe's `index`-th automation of `kind`.
pub fn automation_id(recipe: &str, kind: &str, index: usize) -> String {
    match index {
        0 => format!("{recipe}:{kind}"),
        n => format!("{recipe}:{kind}:{}", n + 1),
    }
}

/// A slot's time as recorded: RFC 3339 in UTC to the millisecond, so that text order
/// is time order.
pub(super) fn slot_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Why an automation operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AutomationError {
    #[error("no automation `{0}`{1}")]
    NotFound(String, String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An automation as listed.
#[derive(Debug, Clone)]
pub struct AutomationView {
    pub id: String,
    pub recipe: String,
    /// `schedule`, `event` or `webhook`.
    pub kind: &'static str,
    /// The cron expression and zone, the topic pattern, or the webhook path.
    pub detail: Value,
    pub paused: bool,
    /// The next firings (schedules).
    pub next: Vec<String>,
    /// Runs it started that are still going.
    pub running: Vec<String>,
    pub last_firing: Option<FiringRecord>,
}

/// One automation of the recipes in force.
#[derive(Clone)]
struct Known {
    recipe: Arc<Recipe>,
    kind: &'static str,
    index: usize,
}

/// A firing about to happen.
struct Firing {
    automation: String,
    recipe: Arc<Recipe>,
    slot: String,
    scheduled_at: Option<DateTime<Utc>>,
    inputs: Map<String, Value>,
    trigger: Value,
    correlation_id: Option<String>,
    overlap: Overlap,
    /// Said in the firing record (e.g. "caught up after a stop").
    detail: Option<String>,
}

#[derive(Default)]
struct State {
    timetable: Timetable,
    known: HashMap<String, Known>,
    paused: HashSet<String>,
    /// Automations whose `since` exists in the store, with it: an event automation
    /// ignores older events (read again after a crash).
    registered: HashMap<String, String>,
    /// Runs each automation started that have not ended.
    running: HashMap<String, Vec<String>>,
    /// `overlap: queue`: the one firing waiting for the running run to end.
    waiting: HashMap<String, Firing>,
    log: LogProgress,
}

/// The automations service; cheap to clone.
#[derive(Clone)]
pub struct Automations {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    bus: Bus,
    runs: Runs,
    recipes: Arc<RecipeRegistry>,
    plugins: Arc<PluginHost>,
    state: std::sync::Mutex<State>,
    /// The timetable changed: the scheduler recomputes its wake-up.
    changed: Notify,
    /// Firings in progress (each starts a run or records its decision).
    firings: TaskTracker,
}

impl Automations {
    pub fn new(
        store: Store,
        bus: Bus,
        runs: Runs,
        recipes: Arc<RecipeRegistry>,
        plugins: Arc<PluginHost>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                bus,
                runs,
                recipes,
                plugins,
                state: std::sync::Mutex::new(State::default()),
                changed: Notify::new(),
                firings: TaskTracker::new(),
            }),
        }
    }

    /// Shutdown, after the loop of [`Automations::run`] has stopped: wait for the
    /// firings in progress (a firing records its decision, or its run, in one write).
    pub async fn stop(&self) {
        self.inner.firings.close();
        self.inner.firings.wait().await;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take the recipes in force, catch up what was missed while down, then fire
    /// schedules, bus events and queued firings until the process ends. Call once the
    /// recipes are loaded and the runs in flight resumed.
    pub async fn run(self) {
        let mut generation = self.inner.recipes.generation();
        generation.mark_unchanged();
        // Runs announce their end on the bus; a firing that waits for one starts then.
        let mut run_ends = self
            .inner
            .bus
            .subscribe_from(crate::runs::events::lifecycle_pattern(), None);
        // Events are read from where the last process got to (the first start: from
        // before the automations register).
        let saved = match self.inner.store.log_cursor(LOG_CURSOR).await {
            Ok(saved) => saved,
            Err(e) => {
                tracing::error!(error = %e, "automations: cannot read how far they got in the bus log; starting from now");
                None
            }
        };
        let head = self.inner.bus.head();
        {
            let mut state = self.state();
            state.log.read = saved.unwrap_or(head);
            state.log.saved = saved.unwrap_or(0);
        }
        let mut save_progress = tokio::time::interval(SAVE_PROGRESS_EVERY);
        save_progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // No event is read before the automations are known: an event read with none
        // known would move the saved position past it without firing anything.
        while let Err(e) = self.refresh(true).await {
            if matches!(e, StoreError::WriterStopped) {
                return;
            }
            tracing::error!(error = %e, "automations: cannot read their state; retrying in a second");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut events = None;
        self.follow_events(&mut events, saved.unwrap_or(head));
        loop {
            let wake = self.state().timetable.next_wake();
            let sleep = wake
                .map(|w| (w - Utc::now()).to_std().unwrap_or_default())
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                () = tokio::time::sleep(sleep) => self.fire_due(Utc::now()),
                () = self.inner.changed.notified() => {}
                changed = generation.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let head = self.inner.bus.head();
                    if let Err(e) = self.refresh(false).await {
                        tracing::error!(error = %e, "automations: cannot apply a recipe change");
                    }
                    self.follow_events(&mut events, head);
                }
                event = run_ends.next() => match event {
                    Ok(event) => {
                        if let Some(id) = self.inner.runs.ended(&event) {
                            self.run_ended(id);
                        }
                    }
                    Err(StoreError::WriterStopped) => return,
                    Err(e) => {
                        tracing::error!(error = %e, "automations: cannot read run ends from the bus log; retrying in a second");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                _ = save_progress.tick() => {
                    self.passed(events.as_ref());
                    self.save_progress().await;
                }
                event = next_event(&mut events) => match event {
                    Ok(event) => self.on_event(event),
                    Err(StoreError::WriterStopped) => return,
                    Err(e) => {
                        // It reads the log again from its cursor on the next turn.
                        tracing::error!(error = %e, "automations: cannot read the bus log; retrying in a second");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
            }
        }
    }

    /// Rebuild from the recipes in force; at start (`catch_up`), fire what was missed.
    async fn refresh(&self, catch_up: bool) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut known = HashMap::new();
        let mut schedules = Vec::new();
        for recipe in self.inner.recipes.recipes() {
            let kinds = [
                ("schedule", recipe.schedules.len()),
                ("event", recipe.events.len()),
                ("webhook", recipe.webhooks.len()),
            ];
            for (kind, count) in kinds {
                for index in 0..count {
                    let id = automation_id(&recipe.name, kind, index);
                    if kind == "schedule" {
                        schedules.push((id.clone(), recipe.clone(), index));
                    }
                    let recipe = recipe.clone();
                    known.insert(
                        id,
                        Known {
                            recipe,
                            kind,
                            index,
                        },
                    );
                }
            }
        }
        let new: Vec<String> = {
            let state = self.state();
            known
                .keys()
                .filter(|id| catch_up || !state.registered.contains_key(*id))
                .cloned()
                .collect()
        };
        let states = self
            .inner
            .store
            .automation_states(new, slot_text(now))
            .await?;
        let mut missed = Vec::new();
        {
            let mut state = self.state();
            for s in &states {
                state
                    .registered
                    .insert(s.automation.clone(), s.since.clone());
                if s.paused {
                    state.paused.insert(s.automation.clone());
                }
                let Some(k) = known.get(&s.automation).filter(|k| k.kind == "schedule") else {
                    continue;
                };
                if !catch_up || s.paused {
                    continue;
                }
                let from = [Some(&s.since), s.last_slot.as_ref()]
                    .into_iter()
                    .flatten()
                    .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .max()
                    .unwrap_or(now);
                let slots = timetable::missed(&k.recipe.schedules[k.index], from, now);
                if !slots.is_empty() {
                    missed.push((s.automation.clone(), k.clone(), slots));
                }
            }
            state.timetable.replace(schedules, now);
            state.known = known;
        }
        self.inner.changed.notify_one();
        for (id, known, slots) in missed {
            self.catch_up(id, known, slots).await;
        }
        Ok(())
    }

    /// Fire an automation now (a recipe name means its first automation), through its
    /// overlap policy. Returns the firing as recorded.
    pub async fn fire_now(&self, name: &str) -> Result<FiringRecord, AutomationError> {
        let (id, known) = self.resolve(name)?;
        let slot = format!("manual-{}", ulid::Ulid::new());
        let (inputs, overlap) = match known.kind {
            "schedule" => {
                let s = &known.recipe.schedules[known.index];
                (s.inputs.clone().into_iter().collect(), s.overlap)
            }
            _ => (Map::new(), Overlap::Allow),
        };
        let firing = Firing {
            automation: id.clone(),
            recipe: known.recipe,
            slot,
            scheduled_at: None,
            inputs,
            trigger: json!({ "kind": "manual", "automation": id }),
            correlation_id: None,
            overlap,
            detail: Some("fired by hand".into()),
        };
        Ok(self.fire(firing).await)
    }

    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<String, AutomationError> {
        let (id, _) = self.resolve(name)?;
        self.inner
            .store
            .set_paused(&id, paused, slot_text(Utc::now()))
            .await?;
        let mut state = self.state();
        if paused {
            state.paused.insert(id.clone());
        } else {
            state.paused.remove(&id);
        }
        Ok(id)
    }

    /// An automation by id, or a recipe name meaning its first automation.
    fn resolve(&self, name: &str) -> Result<(String, Known), AutomationError> {
        let state = self.state();
        if let Some(k) = state.known.get(name) {
            return Ok((name.to_owned(), k.clone()));
        }
        let mut of_recipe: Vec<(&String, &Known)> = state
            .known
            .iter()
            .filter(|(_, k)| k.recipe.name == name)
            .collect();
        of_recipe.sort_by_key(|(id, _)| id.as_str());
        if let Some((id, k)) = of_recipe.first() {
            return Ok(((*id).clone(), (*k).clone()));
        }
        let hint = crate::recipes::check::nearest(name, state.known.keys().map(String::as_str))
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        Err(AutomationError::NotFound(name.to_owned(), hint))
    }

    /// Every automation, with its next firings and its last firing.
    pub async fn list(&self) -> Result<Vec<AutomationView>, AutomationError> {
        let now = Utc::now();
        let mut views: Vec<AutomationView> = {
            let state = self.state();
            state
                .known
                .iter()
                .map(|(id, k)| {
                    let (detail, next) = match k.kind {
                        "schedule" => {
                            let s = &k.recipe.schedules[k.index];
                            let first = state.timetable.get(id).and_then(|e| e.next);
                            let next = first
                                .map(|f| {
                                    let mut v = vec![f];
                                    v.extend(s.cron.upcoming(f, 2));
                                    v
                                })
                                .unwrap_or_else(|| s.cron.upcoming(now, 3));
                            (
                                json!({
                                    "cron": s.expression,
                                    "timezone": s.cron.zone().name(),
                                    "overlap": s.overlap,
                                    "catch_up": s.catch_up,
                                }),
                                next.into_iter().map(|t| t.to_rfc3339()).collect(),
                            )
                        }
                        "event" => (
                            json!({
                                "topic": k.recipe.events[k.index].topic.to_string(),
                                "trigger": k.recipe.events[k.index].trigger.as_ref().map(|t| &t.plugin),
                            }),
                            Vec::new(),
                        ),
                        _ => (json!({ "path": format!("/v1/hooks/{}", k.recipe.webhooks[k.index]) }), Vec::new()),
                    };
                    AutomationView {
                        id: id.clone(),
                        recipe: k.recipe.name.clone(),
                        kind: k.kind,
                        detail,
                        paused: state.paused.contains(id),
                        next,
                        running: state.running.get(id).cloned().unwrap_or_default(),
                        last_firing: None,
                    }
                })
                .collect()
        };
        views.sort_by(|a, b| a.id.cmp(&b.id));
        for v in &mut views {
            v.last_firing = self.inner.store.firings(Some(v.id.clone()), 1).await?.pop();
        }
        Ok(views)
    }

    /// The latest firings of an automation (all when `None`), newest first.
    pub async fn firings(
        &self,
        name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FiringRecord>, AutomationError> {
        let id = match name {
            Some(n) => Some(self.resolve(n)?.0),
            None => None,
        };
        Ok(self.inner.store.firings(id, limit).await?)
    }

    /// Scheduled automations in the timetable.
    pub fn scheduled(&self) -> usize {
        self.state().timetable.len()
    }
}
