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

pub mod timetable;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

use crate::bus::{Bus, Subscription, TopicPattern};
use crate::event::{Event, NewEvent};
use crate::plugins::PluginHost;
use crate::recipes::template::{Reference, Scope, Template};
use crate::recipes::{CatchUp, Overlap, Recipe, RecipeRegistry};
use crate::runs::{RunError, Runs, Trigger, TriggerFiring};
use crate::store::{FiringDecision, FiringRecord, Store, StoreError};
use timetable::Timetable;

/// The next event of `events`; none ever without a subscription.
async fn next_event(events: &mut Option<Subscription>) -> Result<Arc<Event>, StoreError> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

/// The id of a recipe's `index`-th automation of `kind`.
pub fn automation_id(recipe: &str, kind: &str, index: usize) -> String {
    match index {
        0 => format!("{recipe}:{kind}"),
        n => format!("{recipe}:{kind}:{}", n + 1),
    }
}

/// A slot's time as recorded: RFC 3339 in UTC to the millisecond, so that text order
/// is time order.
fn slot_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The bus event announcing a firing (topic `automation.<recipe>.fired`).
pub fn firing_event(firing: &FiringRecord, correlation_id: &str) -> NewEvent {
    let recipe = firing.automation.split(':').next().unwrap_or_default();
    NewEvent {
        topic: format!("automation.{recipe}.{}", firing.decision),
        event_type: format!("switchyard.automation.{}", firing.decision),
        source: "switchyard".into(),
        subject: Some(firing.automation.clone()),
        correlation_id: Some(correlation_id.to_owned()),
        data: crate::event::EventData::of(firing),
    }
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

/// The log cursor of the event automations.
const LOG_CURSOR: &str = "automations";
/// How often the event automations save how far they got in the log: what a crash
/// makes them read again (and find fired already).
const SAVE_PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// How far the event automations got in the log. Events are read in `seq` order but
/// fired concurrently, so the position that can be saved is just below the oldest
/// event still firing.
#[derive(Default)]
struct LogProgress {
    /// How far the log has been read: the last event handed to the automations, or
    /// past it, over events no automation matches.
    read: u64,
    /// Events whose firings have not all ended, by seq: how many have not.
    firing: std::collections::BTreeMap<u64, usize>,
    /// The position saved last.
    saved: u64,
}

impl LogProgress {
    /// Every event up to this one is handled.
    fn handled(&self) -> u64 {
        self.firing
            .keys()
            .next()
            .map_or(self.read, |oldest| oldest - 1)
    }
}

/// One firing of event `seq` going on; counted off its event when dropped, however
/// it ended.
struct EventFiring {
    automations: Automations,
    seq: u64,
}

impl Drop for EventFiring {
    fn drop(&mut self) {
        let mut state = self.automations.state();
        if let Some(left) = state.log.firing.get_mut(&self.seq) {
            *left -= 1;
            if *left == 0 {
                state.log.firing.remove(&self.seq);
            }
        }
    }
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
                        if let Some(id) = crate::runs::events::ended_run(&event) {
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

    /// Note how far the log has been read, the events of other topics included: the
    /// subscription's position, or with none (no event automation) the log's end.
    /// Otherwise the saved position would stay at the last matching event, and a
    /// restart, or a new pattern, would go back over everything since.
    fn passed(&self, events: Option<&Subscription>) {
        let passed = events.map_or_else(|| self.inner.bus.head(), Subscription::position);
        let mut state = self.state();
        state.log.read = state.log.read.max(passed);
    }

    /// Read the events that the event automations in force may match, and no others:
    /// a subscription to a pattern covering theirs, none when there are none (with
    /// `>`, every event published woke this loop). A new subscription reads the log
    /// from where the last one got to (its position: nothing it holds back is lost),
    /// else `from`: where the last process got to, or the log's end before the
    /// automations now in force registered (an automation fires for no older event).
    ///
    /// A subscription, not the bare live feed: when a burst outruns this loop it reads
    /// the missed events back from the log instead of dropping them.
    fn follow_events(&self, events: &mut Option<Subscription>, from: u64) {
        let wanted = {
            let state = self.state();
            let patterns = state
                .known
                .values()
                .filter(|k| k.kind == "event")
                .map(|k| &k.recipe.events[k.index].topic);
            TopicPattern::covering(patterns)
        };
        if events.is_none() {
            // Nothing was read, and no event automation was there to match it.
            let mut state = self.state();
            state.log.read = state.log.read.max(from);
        }
        if wanted.as_ref() == events.as_ref().map(Subscription::pattern) {
            return;
        }
        let from = match events.take() {
            Some(old) => old.position().max(self.state().log.read),
            None => from,
        };
        *events = wanted.map(|pattern| self.inner.bus.subscribe_from(pattern, Some(from)));
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

    /// Slots missed while down, by the schedule's `catch_up`.
    async fn catch_up(&self, id: String, known: Known, slots: Vec<DateTime<Utc>>) {
        let schedule = &known.recipe.schedules[known.index];
        let count = slots.len();
        let latest = *slots.last().expect("not empty");
        let chosen: Vec<DateTime<Utc>> = match schedule.catch_up {
            CatchUp::None => {
                // Recorded once, at the latest slot, so the next start does not count
                // them again.
                let firing = FiringRecord {
                    automation: id.clone(),
                    slot: slot_text(latest),
                    scheduled_at: Some(slot_text(latest)),
                    fired_at: crate::time::now_rfc3339(),
                    decision: FiringDecision::Missed,
                    run_id: None,
                    detail: Some(format!(
                        "{count} firing(s) missed while switchyard was down; catch_up is none"
                    )),
                    run_status: None,
                };
                self.record(firing).await;
                Vec::new()
            }
            CatchUp::Latest => vec![latest],
            CatchUp::All => slots,
        };
        tracing::info!(automation = %id, missed = count, replaying = chosen.len(), "automations: catching up");
        for slot in chosen {
            let firing =
                self.scheduled_firing(&id, &known, slot, Some("caught up after a stop".into()));
            self.fire(firing).await;
        }
    }

    fn scheduled_firing(
        &self,
        id: &str,
        known: &Known,
        slot: DateTime<Utc>,
        detail: Option<String>,
    ) -> Firing {
        let schedule = &known.recipe.schedules[known.index];
        Firing {
            automation: id.to_owned(),
            recipe: known.recipe.clone(),
            slot: slot_text(slot),
            scheduled_at: Some(slot),
            inputs: schedule.inputs.clone().into_iter().collect(),
            trigger: json!({ "kind": "schedule", "automation": id, "scheduled_at": slot_text(slot) }),
            correlation_id: None,
            overlap: schedule.overlap,
            detail,
        }
    }

    /// Fire every schedule slot due at `now` (each in its own task: a slow store write
    /// for one does not delay the others).
    fn fire_due(&self, now: DateTime<Utc>) {
        let due = {
            let mut state = self.state();
            let due = state.timetable.due(now);
            due.into_iter()
                .filter(|(id, _)| !state.paused.contains(id))
                .filter_map(|(id, slot)| Some((state.known.get(&id)?.clone(), id, slot)))
                .collect::<Vec<_>>()
        };
        for (known, id, slot) in due {
            let firing = self.scheduled_firing(&id, &known, slot, None);
            let this = self.clone();
            let firings = this.inner.firings.clone();
            firings.spawn(async move { this.fire(firing).await });
        }
    }

    /// Apply the overlap policy and start (or record why not); returns the firing as
    /// decided.
    async fn fire(&self, firing: Firing) -> FiringRecord {
        let running = self.running_of(&firing.automation);
        if running.is_empty() || firing.overlap == Overlap::Allow {
            return self.start(firing).await;
        }
        let others = running.join(", ");
        match firing.overlap {
            Overlap::Allow => unreachable!("handled above"),
            Overlap::Skip => {
                let record = self.decided(
                    &firing,
                    FiringDecision::Skipped,
                    format!("run {others} is still running (overlap: skip)"),
                );
                self.record(record).await
            }
            Overlap::Queue => {
                let waits = self.decided(
                    &firing,
                    FiringDecision::Queued,
                    "waits for the running run to end (overlap: queue)".into(),
                );
                let refused = {
                    let mut state = self.state();
                    if state.waiting.contains_key(&firing.automation) {
                        Some(firing)
                    } else {
                        tracing::info!(automation = %firing.automation, slot = %firing.slot, "automations: firing waits for the running run");
                        state.waiting.insert(firing.automation.clone(), firing);
                        None
                    }
                };
                match refused {
                    Some(firing) => {
                        let record = self.decided(&firing, FiringDecision::Skipped, format!("run {others} is still running and a firing already waits (overlap: queue)"));
                        self.record(record).await
                    }
                    // Recorded when it starts.
                    None => waits,
                }
            }
            Overlap::CancelPrevious => {
                for id in &running {
                    if let Err(e) = self.inner.runs.cancel(id).await {
                        tracing::warn!(run = %id, error = %e, "automations: cannot cancel the previous run");
                    }
                }
                let detail = format!("canceled run {others} (overlap: cancel_previous)");
                self.start(Firing {
                    detail: Some(detail),
                    ..firing
                })
                .await
            }
        }
    }

    async fn start(&self, firing: Firing) -> FiringRecord {
        let mut record = self.decided(
            &firing,
            FiringDecision::Started,
            firing.detail.clone().unwrap_or_default(),
        );
        let trigger = Trigger {
            detail: firing.trigger.clone(),
            correlation_id: firing.correlation_id.clone(),
            firing: Some(TriggerFiring {
                record: record.clone(),
                announce: firing_event,
            }),
        };
        let automation = firing.automation.clone();
        match self
            .inner
            .runs
            .start(firing.recipe.clone(), firing.inputs.clone(), trigger)
            .await
        {
            Ok(crate::runs::RunView { run, .. }) => {
                self.state()
                    .running
                    .entry(automation)
                    .or_default()
                    .push(run.id.clone());
                // A run that ended before it was added here is forgotten at once.
                if !self.inner.runs.is_live(&run.id) {
                    self.run_ended(&run.id);
                }
                record.run_id = Some(run.id);
                record
            }
            Err(RunError::SlotTaken { .. }) => {
                tracing::debug!(automation = %automation, slot = %firing.slot, "automations: slot fired already");
                // Not recorded again: the slot's first firing stands.
                self.decided(
                    &firing,
                    FiringDecision::Skipped,
                    "the slot has fired already".into(),
                )
            }
            Err(e) => {
                tracing::warn!(automation = %automation, error = %e, "automations: cannot start a run");
                let record = self.decided(&firing, FiringDecision::Error, e.to_string());
                self.record(record).await
            }
        }
    }

    fn decided(&self, firing: &Firing, decision: FiringDecision, detail: String) -> FiringRecord {
        FiringRecord {
            automation: firing.automation.clone(),
            slot: firing.slot.clone(),
            scheduled_at: firing.scheduled_at.map(slot_text),
            fired_at: crate::time::now_rfc3339(),
            decision,
            run_id: None,
            detail: (!detail.is_empty()).then_some(detail),
            run_status: None,
        }
    }

    /// Record a firing that starts no run; returns it.
    async fn record(&self, firing: FiringRecord) -> FiringRecord {
        let event = firing_event(&firing, &firing.slot);
        if let Err(e) = self.inner.store.record_firing(firing.clone(), event).await {
            tracing::error!(error = %e, "automations: cannot record a firing");
        }
        firing
    }

    fn running_of(&self, automation: &str) -> Vec<String> {
        let mut state = self.state();
        let runs = &self.inner.runs;
        let list = state.running.entry(automation.to_owned()).or_default();
        list.retain(|id| runs.is_live(id));
        list.clone()
    }

    /// A run ended: forget it, and start the firing that waited for it.
    fn run_ended(&self, run_id: &str) {
        let waiting = {
            let mut state = self.state();
            let Some(automation) = state
                .running
                .iter()
                .find(|(_, runs)| runs.iter().any(|r| r == run_id))
                .map(|(a, _)| a.clone())
            else {
                return;
            };
            let runs = state.running.get_mut(&automation).expect("found above");
            runs.retain(|r| r != run_id);
            let waiting = if runs.is_empty() {
                state.waiting.remove(&automation)
            } else {
                None
            };
            // A firing that waited while its automation was paused does not start.
            waiting.filter(|_| !state.paused.contains(&automation))
        };
        if let Some(firing) = waiting {
            let this = self.clone();
            let firings = this.inner.firings.clone();
            firings.spawn(async move { this.start(firing).await });
        }
    }

    /// Save how far the event automations got in the log, if further than last time.
    async fn save_progress(&self) {
        let handled = {
            let state = self.state();
            let handled = state.log.handled();
            if handled <= state.log.saved {
                return;
            }
            handled
        };
        match self.inner.store.save_log_cursor(LOG_CURSOR, handled).await {
            Ok(()) => self.state().log.saved = handled,
            Err(e) => {
                tracing::warn!(error = %e, "automations: cannot save how far they got in the bus log")
            }
        }
    }

    /// A bus event: fire the event automations whose pattern it matches.
    fn on_event(&self, event: Arc<Event>) {
        let matching: Vec<(String, Known)> = {
            let mut state = self.state();
            let matching: Vec<_> = state
                .known
                .iter()
                .filter(|(id, k)| k.kind == "event" && !state.paused.contains(*id))
                .filter(|(_, k)| k.recipe.events[k.index].topic.matches(&event.topic))
                // A recipe's own run events never start it again (no loops).
                .filter(|(_, k)| {
                    !(event.topic.starts_with("run.")
                        && event.subject.as_deref() == Some(&k.recipe.name))
                })
                .filter(|(id, _)| {
                    state
                        .registered
                        .get(*id)
                        .is_none_or(|since| event.time >= *since)
                })
                .map(|(id, k)| (id.clone(), k.clone()))
                .collect();
            state.log.read = state.log.read.max(event.seq);
            if !matching.is_empty() {
                state.log.firing.insert(event.seq, matching.len());
            }
            matching
        };
        for (id, known) in matching {
            let going = EventFiring {
                automations: self.clone(),
                seq: event.seq,
            };
            let event = event.clone();
            // `going` is dropped when the firing ends, however it ends.
            let firings = going.automations.inner.firings.clone();
            firings.spawn(async move { going.automations.fire_event(id, known, event).await });
        }
    }

    async fn fire_event(&self, id: String, known: Known, event: Arc<Event>) {
        let spec = &known.recipe.events[known.index];
        let event_json = json!(*event);
        let scope = EventScope(&event_json);
        let mut inputs: Map<String, Value> = spec
            .inputs
            .iter()
            .map(|(name, v)| (name.clone(), render(v, &scope)))
            .collect();
        if let Some(trigger) = &spec.trigger {
            match self
                .inner
                .plugins
                .evaluate(&trigger.plugin, &event, &trigger.params)
                .await
            {
                Ok(decision) if !decision.fire => {
                    tracing::debug!(automation = %id, reason = %decision.reason, "automations: the trigger did not fire");
                    return;
                }
                Ok(decision) => {
                    // The trigger's inputs fill the recipe's inputs of the same name;
                    // what else it computed is not the recipe's business.
                    if let Value::Object(computed) = decision.inputs {
                        inputs.extend(
                            computed
                                .into_iter()
                                .filter(|(name, _)| known.recipe.inputs.contains_key(name)),
                        );
                    }
                }
                Err(e) => {
                    let firing = Firing {
                        automation: id.clone(),
                        recipe: known.recipe.clone(),
                        slot: event.id.clone(),
                        scheduled_at: None,
                        inputs: Map::new(),
                        trigger: Value::Null,
                        correlation_id: None,
                        overlap: Overlap::Allow,
                        detail: None,
                    };
                    let record = self.decided(
                        &firing,
                        FiringDecision::Error,
                        format!("trigger `{}`: {e}", trigger.plugin),
                    );
                    self.record(record).await;
                    return;
                }
            }
        }
        let firing = Firing {
            automation: id.clone(),
            recipe: known.recipe,
            slot: event.id.clone(),
            scheduled_at: None,
            inputs,
            trigger: json!({ "kind": "event", "automation": id, "event": event_json }),
            correlation_id: Some(
                event
                    .correlation_id
                    .clone()
                    .unwrap_or_else(|| event.id.clone()),
            ),
            overlap: Overlap::Allow,
            detail: None,
        };
        self.fire(firing).await;
    }

    /// A webhook request on `path`: start the recipe that listens there, with the body's
    /// fields as inputs.
    pub async fn webhook(
        &self,
        path: &str,
        body: Map<String, Value>,
        correlation_id: Option<String>,
    ) -> Result<crate::store::RunRecord, AutomationError> {
        let found = {
            let state = self.state();
            state
                .known
                .iter()
                .filter(|(id, k)| k.kind == "webhook" && !state.paused.contains(*id))
                .filter(|(_, k)| k.recipe.webhooks[k.index] == path)
                // Two recipes on one path: the first by id, every time.
                .min_by(|a, b| a.0.cmp(b.0))
                .map(|(id, k)| (id.clone(), k.clone()))
        };
        let Some((id, known)) = found else {
            return Err(AutomationError::NotFound(
                format!("/v1/hooks/{path}"),
                " (no active recipe webhook on this path)".into(),
            ));
        };
        let request = ulid::Ulid::new().to_string();
        let firing = FiringRecord {
            automation: id.clone(),
            slot: format!("request-{request}"),
            scheduled_at: None,
            fired_at: crate::time::now_rfc3339(),
            decision: FiringDecision::Started,
            run_id: None,
            detail: None,
            run_status: None,
        };
        let trigger = Trigger {
            detail: json!({ "kind": "webhook", "automation": id, "path": path }),
            correlation_id: correlation_id.or(Some(request)),
            firing: Some(TriggerFiring {
                record: firing,
                announce: firing_event,
            }),
        };
        Ok(self
            .inner
            .runs
            .start(known.recipe, body, trigger)
            .await?
            .run)
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

/// Templates of an event automation's inputs see the event.
struct EventScope<'a>(&'a Value);

impl Scope for EventScope<'_> {
    fn lookup(&self, reference: &Reference) -> Option<Value> {
        match reference {
            Reference::Event(path) => path.iter().try_fold(self.0, |v, key| v.get(key)).cloned(),
            _ => None,
        }
    }
}

/// An input value of an automation: text is a template over the event.
fn render(value: &Value, scope: &dyn Scope) -> Value {
    match value {
        Value::String(text) => match Template::parse(text) {
            Ok(t) => t.render_value(scope),
            Err(_) => value.clone(),
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::LogProgress;

    #[test]
    fn the_saved_position_stays_below_the_oldest_event_still_firing() {
        let mut log = LogProgress {
            read: 10,
            ..LogProgress::default()
        };
        assert_eq!(log.handled(), 10, "nothing firing: all read is handled");
        log.firing.insert(12, 2);
        log.firing.insert(15, 1);
        log.read = 17;
        assert_eq!(log.handled(), 11);
        log.firing.remove(&12);
        assert_eq!(log.handled(), 14);
        log.firing.remove(&15);
        assert_eq!(log.handled(), 17);
    }
}
