//! Automation firings (what fired, when, and what it decided) and each automation's
//! paused state.

use serde::{Deserialize, Serialize};

use super::{FiringDecision, RunStatus, StoreError};
use crate::event::NewEvent;

/// One firing of an automation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiringRecord {
    pub automation: String,
    /// What fires at most once: a scheduled time, an event id, a request id.
    pub slot: String,
    pub scheduled_at: Option<String>,
    pub fired_at: String,
    pub decision: FiringDecision,
    pub run_id: Option<String>,
    pub detail: Option<String>,
    /// The run's status when read (joined, not stored twice).
    #[serde(default)]
    pub run_status: Option<RunStatus>,
}

/// An automation's persisted state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutomationState {
    pub automation: String,
    pub paused: bool,
    /// When it was first seen; catch-up never reaches before it.
    pub since: String,
    /// The latest scheduled slot recorded.
    pub last_slot: Option<String>,
}

/// Automation firings and each automation's state.
#[async_trait::async_trait]
pub trait FiringStore: Send + Sync {
    /// Record a firing unless its slot is already recorded; `false` if it was.
    async fn record_firing(
        &self,
        firing: FiringRecord,
        event: NewEvent,
    ) -> Result<bool, StoreError>;
    /// The latest firings of `automation` (all when `None`), newest first.
    async fn firings(
        &self,
        automation: Option<String>,
        limit: usize,
    ) -> Result<Vec<FiringRecord>, StoreError>;
    /// The state of these automations, creating the missing ones (since = `now`).
    async fn automation_states(
        &self,
        automations: Vec<String>,
        now: String,
    ) -> Result<Vec<AutomationState>, StoreError>;
    async fn set_paused(
        &self,
        automation: &str,
        paused: bool,
        now: String,
    ) -> Result<(), StoreError>;
}
