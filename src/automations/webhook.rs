//! Webhook automations: a request to `/v1/hooks/{path}` starts its recipe's run, the
//! request's id as the firing's slot.

use serde_json::{Map, Value, json};

use super::firing::firing_event;
use super::{AutomationError, Automations};
use crate::runs::{Trigger, TriggerFiring};
use crate::store::{FiringDecision, FiringRecord};

impl Automations {
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
}
