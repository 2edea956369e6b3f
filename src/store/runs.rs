//! Recipe runs and their steps, as persisted.

use serde::{Deserialize, Serialize};

use super::{FiringRecord, RunStatus, StepStatus, StoreError};
use crate::event::NewEvent;

/// A recipe run as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub recipe: String,
    /// The first 12 hex digits of the SHA-256 of `source`.
    pub version: String,
    pub file: String,
    /// The recipe text the run started with.
    #[serde(skip)]
    pub source: String,
    pub inputs: serde_json::Value,
    pub status: RunStatus,
    /// What started it: `{"kind": "manual" | "schedule" | "event" | "webhook", …}`.
    pub trigger: serde_json::Value,
    pub correlation_id: String,
    pub outputs: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// One step of a run as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step_id: String,
    pub status: StepStatus,
    /// 1-based attempt number; 0 before the first.
    pub attempt: u32,
    /// The key of the step's session.
    pub session: Option<String>,
    /// The message of the attempt in flight (or the last one).
    pub message_id: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// When a `retrying` step tries again.
    pub retry_at: Option<String>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub recipe: Option<String>,
    pub status: Option<RunStatus>,
    /// Runs with ids before this one (newest first paging).
    pub before: Option<String>,
    pub limit: usize,
}

/// Recipe runs and their steps.
#[async_trait::async_trait]
pub trait RunStore: Send + Sync {
    /// Create a run and its steps with the event announcing it. With a `firing`, in
    /// the same transaction: the firing is recorded too, and nothing is written (and
    /// `false` returned) if its slot already was.
    async fn create_run(
        &self,
        run: RunRecord,
        steps: Vec<StepRecord>,
        event: NewEvent,
        firing: Option<(FiringRecord, NewEvent)>,
    ) -> Result<bool, StoreError>;
    /// Write a run's status, outputs, error and end, with its event.
    async fn save_run(&self, run: RunRecord, event: NewEvent) -> Result<(), StoreError>;
    /// Write one step's state, with its event.
    async fn save_step(
        &self,
        run_id: &str,
        step: StepRecord,
        event: NewEvent,
    ) -> Result<(), StoreError>;
    /// A run and its steps (in file order).
    async fn run(&self, id: &str) -> Result<Option<(RunRecord, Vec<StepRecord>)>, StoreError>;
    /// Runs newest first.
    async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunRecord>, StoreError>;
    /// Ids of runs still `running` (to resume after a restart).
    async fn unfinished_runs(&self) -> Result<Vec<String>, StoreError>;
}
