//! `turn-events`: how an agent adapter streams a turn's progress to the host and learns
//! of an abort or steering text. Outside a turn (other kinds) every call traps.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::plugins::bindings::agent::switchyard::plugin::turn_events::{self, Host};
use crate::plugins::types::TurnEvent;

/// Total bytes of events one turn may stream.
const MAX_TURN_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// The user's side of a running turn: abort it, or hand it steering text.
#[derive(Clone, Default)]
pub struct TurnControl {
    aborted: Arc<AtomicBool>,
    steering: Arc<Mutex<VecDeque<String>>>,
}

impl TurnControl {
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
    }

    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    pub fn steer(&self, text: String) {
        self.steering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(text);
    }

    fn take_steering(&self) -> Option<String> {
        self.steering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }
}

/// The turn a call belongs to, if it is a turn.
#[derive(Default)]
pub struct TurnCap {
    turn: Option<(mpsc::Sender<TurnEvent>, TurnControl)>,
    streamed_bytes: usize,
}

impl TurnCap {
    pub fn new(events: mpsc::Sender<TurnEvent>, control: TurnControl) -> Self {
        Self {
            turn: Some((events, control)),
            streamed_bytes: 0,
        }
    }

    fn turn(&self) -> wasmtime::Result<&(mpsc::Sender<TurnEvent>, TurnControl)> {
        self.turn
            .as_ref()
            .ok_or_else(|| wasmtime::format_err!("turn-events used outside a turn"))
    }
}

impl Host for TurnCap {
    async fn emit(&mut self, event: turn_events::TurnEvent) -> wasmtime::Result<()> {
        let event = TurnEvent::from(event);
        self.streamed_bytes += event.size();
        if self.streamed_bytes > MAX_TURN_EVENT_BYTES {
            wasmtime::bail!("turn streamed more than {MAX_TURN_EVENT_BYTES} bytes of events");
        }
        let (events, _) = self.turn()?;
        // A receiver that went away (client disconnected) does not fail the turn.
        let _ = events.send(event).await;
        Ok(())
    }

    async fn aborted(&mut self) -> wasmtime::Result<bool> {
        Ok(self.turn()?.1.is_aborted())
    }

    async fn take_steering(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.turn()?.1.take_steering())
    }
}
