//! Shutdown as a part of its own: every background loop is spawned here, under the
//! stage it belongs to, and the server drains the stages in one documented order.
//!
//! | stage | what stops | why here |
//! |---|---|---|
//! | [`Stage::Accept`] | the HTTP listener, streams, the file watchers | no new work comes in |
//! | [`Stage::Automations`] | schedules, event and webhook firings | nothing starts runs any more |
//! | [`Stage::Work`] | session workers, run drivers, served queues, the reaper, retention | turns in flight finish; what is queued stays queued on disk |
//! | [`Stage::Plugins`] | plugin calls still in flight | nothing else calls them now |
//! | [`Stage::Store`] | nothing new: it waits until every write queued has committed | the last writes of the stages above are durable |
//!
//! A stage's signal ([`Shutdown::signal`]) is cancelled when its turn comes; its
//! loops end by themselves on it, its drain hooks run ([`Shutdown::on_drain`]), and the
//! next stage begins once its tasks are gone or the grace has run out. Nothing
//! acknowledged is lost either way: a write is acknowledged only after its commit, a
//! queued message resumes at the next start, and a turn cut off is marked
//! `interrupted` then, as after a crash.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The stages, in drain order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Accept,
    Automations,
    Work,
    Plugins,
    Store,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Accept,
        Stage::Automations,
        Stage::Work,
        Stage::Plugins,
        Stage::Store,
    ];

    /// How the logs name it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Accept => "accept",
            Stage::Automations => "automations",
            Stage::Work => "work",
            Stage::Plugins => "plugins",
            Stage::Store => "store",
        }
    }
}

type Hook = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

struct StageState {
    signal: CancellationToken,
    tasks: TaskTracker,
    hooks: Mutex<Vec<(&'static str, Hook)>>,
}

/// The server's shutdown; cheap to clone.
#[derive(Clone)]
pub struct Shutdown {
    stages: Arc<[StageState; 5]>,
}

/// What a drain left behind: for each stage that did not finish in its grace, its name
/// and the tasks still running.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DrainReport {
    pub left: Vec<(&'static str, usize)>,
}

impl DrainReport {
    /// Every stage drained in time.
    pub fn is_clean(&self) -> bool {
        self.left.is_empty()
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let stage = || StageState {
            signal: CancellationToken::new(),
            tasks: TaskTracker::new(),
            hooks: Mutex::new(Vec::new()),
        };
        Self {
            stages: Arc::new([stage(), stage(), stage(), stage(), stage()]),
        }
    }

    fn stage(&self, stage: Stage) -> &StageState {
        &self.stages[stage as usize]
    }

    /// Cancelled when `stage` begins to drain.
    pub fn signal(&self, stage: Stage) -> CancellationToken {
        self.stage(stage).signal.clone()
    }

    /// Whether the drain has begun (the first stage's signal).
    pub fn is_draining(&self) -> bool {
        self.stage(Stage::Accept).signal.is_cancelled()
    }

    /// Run `task` in the background as part of `stage`: the drain waits for it before
    /// the next stage begins. The task ends itself on [`Shutdown::signal`].
    pub fn spawn<F>(&self, stage: Stage, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.stage(stage).tasks.spawn(task)
    }

    /// Run the endless `task` (a loop with nothing to finish: the reaper, retention)
    /// as part of `stage`, dropped when the stage's signal comes.
    pub fn spawn_loop<F>(&self, stage: Stage, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let signal = self.signal(stage);
        self.spawn(stage, async move {
            tokio::select! {
                () = task => {}
                () = signal.cancelled() => {}
            }
        });
    }

    /// The tracker of `stage`, for a part that spawns tasks of its own there (the
    /// served queues' workers) and must have them counted in the drain. (Sessions and
    /// runs keep their own trackers and drain through [`Shutdown::on_drain`].)
    pub fn tracker(&self, stage: Stage) -> TaskTracker {
        self.stage(stage).tasks.clone()
    }

    /// Run `hook` when `stage` drains, after its signal: a part's own way to stop
    /// (sessions stop taking messages, the plugin host waits for calls in flight).
    pub fn on_drain<F, Fut>(&self, stage: Stage, name: &'static str, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: Hook = Box::new(move || Box::pin(hook()));
        self.stage(stage)
            .hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, hook));
    }

    /// Drain every stage in order, each for at most `grace`.
    pub async fn drain(&self, grace: Duration) -> DrainReport {
        let mut report = DrainReport::default();
        for stage in Stage::ALL {
            let state = self.stage(stage);
            state.signal.cancel();
            let hooks = std::mem::take(&mut *state.hooks.lock().unwrap_or_else(|p| p.into_inner()));
            state.tasks.close();
            let names: Vec<&str> = hooks.iter().map(|(name, _)| *name).collect();
            tracing::info!(
                stage = stage.name(),
                tasks = state.tasks.len(),
                hooks = ?names,
                "shutdown: draining"
            );
            let work = async {
                futures::future::join_all(hooks.into_iter().map(|(_, hook)| hook())).await;
                state.tasks.wait().await;
            };
            if tokio::time::timeout(grace, work).await.is_err() {
                let left = state.tasks.len();
                tracing::warn!(
                    stage = stage.name(),
                    tasks = left,
                    "shutdown: the stage did not drain in {grace:?}; going on"
                );
                report.left.push((stage.name(), left));
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn stages_drain_in_order_and_each_waits_for_its_tasks() {
        let shutdown = Shutdown::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        for stage in [Stage::Store, Stage::Work, Stage::Accept] {
            let (signal, order) = (shutdown.signal(stage), order.clone());
            shutdown.spawn(stage, async move {
                signal.cancelled().await;
                // A task that takes a while to stop holds the next stage back.
                tokio::time::sleep(Duration::from_millis(20)).await;
                order.lock().unwrap().push(stage);
            });
        }
        let hooked = Arc::new(AtomicUsize::new(0));
        let seen = hooked.clone();
        shutdown.on_drain(Stage::Plugins, "count", move || async move {
            seen.fetch_add(1, Ordering::SeqCst);
        });
        let report = shutdown.drain(Duration::from_secs(5)).await;
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(
            *order.lock().unwrap(),
            [Stage::Accept, Stage::Work, Stage::Store]
        );
        assert_eq!(hooked.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stage_that_does_not_stop_is_reported_and_the_rest_go_on() {
        let shutdown = Shutdown::new();
        shutdown.spawn(Stage::Work, std::future::pending::<()>());
        let store = shutdown.signal(Stage::Store);
        let report = shutdown.drain(Duration::from_millis(50)).await;
        assert_eq!(report.left, [("work", 1)]);
        assert!(store.is_cancelled(), "later stages still drain");
    }
}
