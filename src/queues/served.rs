//! Queues served by a plugin. Workers inside the runtime claim items the way a remote
//! worker does (same leases, retries, backoff and dead letters) and hand each to a
//! plugin export, chosen by the plugin's kind:
//!
//! - an **agent adapter** runs a turn on the item's `{"text", "session"?}` in a session
//!   of its own (`queue-<queue>-<item id>` unless the payload names one); the ack
//!   carries `{"session", "reply"}`;
//! - a **connector** delivers it as an outbound message (`{"text", "session"?,
//!   "target"?}`); the ack carries the receipt.
//!
//! A failure nacks the item with the reason (retried until its attempts run out); a
//! payload of the wrong shape goes straight to the dead letters. The lease is renewed
//! while the plugin works, so a long turn is not taken for a dead worker; a crash
//! mid-item leaves the lease to run out and the item comes back.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{Claim, Queues, ServedQueueConfig};
use crate::plugins::types::OutboundMessage;
use crate::plugins::{PluginHost, PluginKind};
use crate::sessions::{NewSession, SessionError, Sessions};
use crate::store::QueueItem;

/// How long one claim waits for an item before asking again.
const POLL: Duration = Duration::from_secs(30);

/// What serving needs.
#[derive(Clone)]
pub struct Server {
    pub queues: Queues,
    pub sessions: Sessions,
    pub plugins: Arc<PluginHost>,
    pub shutdown: CancellationToken,
    /// Where the workers are counted, so that shutdown waits for them.
    pub tasks: tokio_util::task::TaskTracker,
}

/// What an item asks for.
#[derive(Deserialize)]
struct Payload {
    text: String,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    target: Option<Value>,
}

/// Why an item was not served: the reason, and whether to try again.
struct Refusal(String, bool);

impl Server {
    /// Start `concurrency` workers for each served queue; they stop at shutdown.
    pub fn spawn(&self, served: &std::collections::BTreeMap<String, ServedQueueConfig>) {
        for (queue, section) in served {
            for n in 0..section.concurrency.max(1) {
                let this = self.clone();
                let (queue, section) = (queue.clone(), section.clone());
                self.tasks
                    .spawn(async move { this.work(queue, section, n).await });
            }
            tracing::info!(%queue, plugin = %section.plugin, concurrency = section.concurrency, "serving queue with a plugin");
        }
    }

    async fn work(self, queue: String, section: ServedQueueConfig, n: usize) {
        let lease = section.lease.max(Duration::from_secs(1));
        let worker = format!("plugin:{}#{n}", section.plugin);
        loop {
            let claim = Claim {
                worker: worker.clone(),
                lease: Some(lease),
                wait: POLL,
                max: 1,
            };
            let items = tokio::select! {
                items = self.queues.claim(&queue, claim) => items,
                () = self.shutdown.cancelled() => return,
            };
            let items = match items {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(%queue, error = %e, "cannot claim; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for item in items {
                let token = item.lease_token.clone().unwrap_or_default();
                let served = tokio::select! {
                    served = self.serve(&queue, &section.plugin, &item) => served,
                    () = self.renew(&queue, &item.id, &token, lease) => unreachable!("renews until dropped"),
                    // Left to its lease: it comes back after a restart.
                    () = self.shutdown.cancelled() => return,
                };
                let answered = match served {
                    Ok(result) => self.queues.ack(&queue, &item.id, &token, result).await,
                    Err(Refusal(reason, retry)) => {
                        self.queues
                            .nack(&queue, &item.id, &token, reason, retry)
                            .await
                    }
                };
                if let Err(e) = answered {
                    tracing::warn!(%queue, item = %item.id, error = %e, "cannot finish a served item");
                }
            }
        }
    }

    /// Extend the lease at half its length, forever (the caller drops this future).
    async fn renew(&self, queue: &str, id: &str, token: &str, lease: Duration) {
        loop {
            tokio::time::sleep(lease / 2).await;
            if let Err(e) = self.queues.extend(queue, id, token, Some(lease)).await {
                tracing::warn!(%queue, item = %id, error = %e, "cannot extend a lease");
            }
        }
    }

    async fn serve(&self, queue: &str, plugin: &str, item: &QueueItem) -> Result<Value, Refusal> {
        let payload: Payload = serde_json::from_value(item.payload.clone()).map_err(|e| {
            Refusal(
                format!("the payload must be {{\"text\", \"session\"?, \"target\"?}}: {e}"),
                false,
            )
        })?;
        let session = payload
            .session
            .unwrap_or_else(|| format!("queue-{queue}-{}", item.id.to_lowercase()));
        match self.plugins.get(plugin).and_then(|p| p.kind) {
            Some(PluginKind::AgentAdapter) => self.turn(plugin, session, payload.text).await,
            Some(PluginKind::Connector) => {
                let message = OutboundMessage {
                    session,
                    text: payload.text,
                    target: payload.target.unwrap_or_else(|| json!({})),
                };
                self.plugins
                    .deliver(plugin, &message)
                    .await
                    .map_err(|e| Refusal(e.to_string(), true))
            }
            Some(kind) => Err(Refusal(
                format!(
                    "plugin `{plugin}` is a {kind}: only agent adapters and connectors serve queues"
                ),
                true,
            )),
            None => Err(Refusal(format!("plugin `{plugin}` is not loaded"), true)),
        }
    }

    async fn turn(&self, adapter: &str, session: String, text: String) -> Result<Value, Refusal> {
        let failed = |e: SessionError| Refusal(e.to_string(), true);
        let created = self
            .sessions
            .create(NewSession {
                key: Some(session.clone()),
                adapter: Some(adapter.to_owned()),
                config: None,
                system: None,
            })
            .await;
        match created {
            Ok(_) | Err(SessionError::Exists(_)) => {}
            Err(e) => return Err(failed(e)),
        }
        let (message, _) = self
            .sessions
            .enqueue(&session, text)
            .await
            .map_err(failed)?;
        match self.sessions.wait_turn(&message.id).await.map_err(failed)? {
            Some(end) if end.status == crate::store::MessageStatus::Done => {
                Ok(json!({ "session": session, "reply": end.reply }))
            }
            Some(end) => Err(Refusal(
                format!(
                    "the turn ended {}: {}",
                    end.status,
                    end.error.unwrap_or_default()
                ),
                true,
            )),
            None => Err(Refusal(
                format!("session `{session}` was reset or deleted"),
                true,
            )),
        }
    }
}
