//! A turn: one user message through the session's adapter. The adapter's events are
//! stored (in order, a window of batches in flight) and published as they stream;
//! abort and steering reach the running call; the end is recorded with the reply.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use super::active::{Active, RunningTurn};
use super::{Inner, SessionEvent, TurnEnded, locked};
use crate::plugins::TurnControl;
use crate::plugins::types::{Message, Role, StopReason, TurnRequest};
use crate::store::{MessageRecord, MessageStatus, SessionRecord, StoreError, TurnResult};

/// Batches of turn events in flight to the store at once, per turn.
const STREAM_WINDOW: usize = 64;
/// Most turn events stored as one write.
const STREAM_BATCH: usize = 64;

impl Inner {
    /// Run one turn for `message`.
    pub(super) async fn turn(
        &self,
        active: &Active,
        message: MessageRecord,
        history: Vec<Message>,
    ) {
        let record = &active.record;
        let control = TurnControl::default();
        let hard_abort = Arc::new(Notify::new());
        *locked(&active.turn) = Some(RunningTurn {
            message_id: message.id.clone(),
            control: control.clone(),
            hard_abort: hard_abort.clone(),
            over: false,
        });

        let system = record.system.iter().map(|text| Message {
            role: Role::System,
            content: text.clone(),
        });
        let request = TurnRequest {
            session: record.key.clone(),
            history: system.chain(history).collect(),
            input: message.text.clone(),
            config: record.config.clone(),
        };
        let (events, mut stream) = mpsc::channel(256);
        let call = self
            .plugins
            .run_turn(&record.adapter, request, events, control.clone());
        // Stream events are submitted in order without waiting for each commit, those
        // already waiting as one batch (one write); at most STREAM_WINDOW batches are
        // in flight, so a fast adapter cannot queue without bound.
        let forward = async {
            let mut in_flight = std::collections::VecDeque::new();
            let mut waiting = Vec::new();
            while stream.recv_many(&mut waiting, STREAM_BATCH).await > 0 {
                let batch = waiting.drain(..).map(|event| {
                    let (kind, data) = SessionEvent::from_turn(&event, &message.id);
                    kind.event(&record.id, Some(&record.key), data)
                });
                // An event refused (too large) is dropped alone, not with its batch.
                let valid: Vec<_> = batch
                    .filter(|event| match crate::bus::validate(event) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(session = %record.key, error = %e, "turn event refused");
                            false
                        }
                    })
                    .collect();
                if !valid.is_empty() {
                    in_flight.push_back(self.store.append_turn_events(&message.id, valid));
                }
                if in_flight.len() >= STREAM_WINDOW
                    && let Some(oldest) = in_flight.pop_front()
                    && let Err(e) = oldest.await
                {
                    tracing::warn!(session = %record.key, error = %e, "turn events not stored");
                }
            }
            in_flight
        };
        let cut_off = async {
            hard_abort.notified().await;
            tokio::time::sleep(self.config.abort_grace).await;
        };
        let (outcome, in_flight) = tokio::select! {
            (result, in_flight) = futures::future::join(call, forward) => (Some(result), in_flight),
            () = cut_off => (None, Default::default()),
        };
        // Before the end is recorded: a client that has seen `turn.finished` and then
        // aborts or steers must find no turn running.
        if let Some(t) = locked(&active.turn).as_mut() {
            t.over = true;
        }

        let (status, reply, error, stop_reason) = match outcome {
            Some(Ok(result)) => {
                let aborted = control.is_aborted() || result.stop_reason == StopReason::Aborted;
                let status = if aborted {
                    MessageStatus::Aborted
                } else {
                    MessageStatus::Done
                };
                let reply = (!result.text.is_empty() || !aborted).then_some(result.text);
                let reason = if aborted {
                    StopReason::Aborted
                } else {
                    result.stop_reason
                };
                (status, reply, None, Some(reason))
            }
            Some(Err(e)) => (
                MessageStatus::Failed,
                None,
                Some(e.to_string()),
                Some(StopReason::Error),
            ),
            None => (
                MessageStatus::Aborted,
                None,
                Some(format!(
                    "the adapter did not stop within {:?} of the abort; the turn was cut off",
                    self.config.abort_grace
                )),
                Some(StopReason::Aborted),
            ),
        };
        if let Some(error) = &error {
            tracing::warn!(session = %record.key, message = %message.id, %status, error = %error, "turn ended with an error");
        }
        // What the stored history gains (see `history_before`): a done user message,
        // and any reply.
        let gained: Vec<Message> = (status == MessageStatus::Done)
            .then(|| Message {
                role: Role::User,
                content: message.text.clone(),
            })
            .into_iter()
            .chain(reply.iter().map(|text| Message {
                role: Role::Assistant,
                content: text.clone(),
            }))
            .collect();
        // The end is queued behind the turn's last events without waiting for their
        // commit: writes commit in the order queued, so `turn.finished` still comes
        // last, often in the same group, a commit's round trip sooner. (`finish_turn`
        // queues its write when first polled, here, after every batch was queued. A
        // group that fails rolls back those events with the end.)
        let recorded = self
            .record_end(record, &message.id, status, reply, error, stop_reason)
            .await;
        for committed in in_flight {
            if let Err(e) = committed.await {
                tracing::warn!(session = %record.key, error = %e, "turn events not stored");
            }
        }
        if recorded {
            active.history.push(gained);
        } else {
            active.history.drop_window();
        }
        *locked(&active.turn) = None;
    }

    /// A turn that could not start: recorded as failed, so the queue moves on.
    pub(super) async fn fail_turn(&self, active: &Active, message: MessageRecord, e: StoreError) {
        tracing::error!(session = %active.record.key, error = %e, "cannot read the session history");
        let error = format!("cannot read the session history: {e}");
        self.record_end(
            &active.record,
            &message.id,
            MessageStatus::Failed,
            None,
            Some(error),
            Some(StopReason::Error),
        )
        .await;
    }

    /// Store how a turn ended (and its reply) and announce it; false if the store
    /// failed or the message is gone.
    pub(super) async fn record_end(
        &self,
        record: &SessionRecord,
        message_id: &str,
        status: MessageStatus,
        reply: Option<String>,
        error: Option<String>,
        stop_reason: Option<StopReason>,
    ) -> bool {
        let (id, key, announced_id) =
            (record.id.clone(), record.key.clone(), message_id.to_owned());
        let ended_error = error.clone();
        let finished = self
            .store
            .finish_turn(
                &record.id,
                message_id,
                status,
                reply,
                error.clone(),
                Box::new(move |reply: Option<&MessageRecord>| {
                    SessionEvent::TurnFinished.event(
                        &id,
                        Some(&key),
                        json!({
                            "message_id": announced_id,
                            "status": status,
                            "stop_reason": stop_reason,
                            "text": reply.map(|r| r.text.clone()),
                            "reply_id": reply.map(|r| r.id.clone()),
                            "error": error,
                        }),
                    )
                }),
            )
            .await;
        match finished {
            Ok(finished) => {
                // (A message gone meanwhile is answered too: its waiters learn the end.)
                let recorded = finished.is_some();
                let _ = self.ended.send(Arc::new(TurnEnded {
                    message_id: message_id.to_owned(),
                    result: TurnResult {
                        status,
                        error: ended_error,
                        reply: finished.and_then(|f| f.reply).map(|r| r.text),
                    },
                }));
                recorded
            }
            Err(e) => {
                tracing::error!(session = %record.key, error = %e, "cannot record the end of a turn");
                false
            }
        }
    }

    pub(super) async fn publish(
        &self,
        session_id: &str,
        key: Option<&str>,
        kind: SessionEvent,
        data: Value,
    ) {
        self.bus.notify(kind.event(session_id, key, data)).await;
    }
}
