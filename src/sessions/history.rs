//! The history window a session's worker keeps between turns.
//!
//! A turn hands its adapter the session's last `history_limit` messages. Read from the
//! store for every turn, they were the largest cost of a short turn: every commit resets
//! a read connection's page cache, and the messages of sessions that talk at the same
//! time sit on different pages, so each turn read some 200 pages from the file again. The
//! worker therefore reads the window once, appends each turn it finishes, and reads the
//! store again only when the window is dropped: by a reset, after a failed write, or
//! with the worker when it leaves memory.
//!
//! The worker is the only one that ends turns, so it is the only one that appends; a
//! reset drops the window after it cleared the stored history. An epoch settles the one
//! race: a window read before a reset but kept after it would bring the cleared messages
//! back, so a window read under an older epoch is not kept.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::plugins::types::Message;

pub struct HistoryWindow {
    limit: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Bumped by every [`HistoryWindow::drop_window`].
    epoch: u64,
    messages: Option<VecDeque<Message>>,
}

impl HistoryWindow {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last `n` kept messages, oldest first; or, when none are kept, the epoch to
    /// hand [`HistoryWindow::fill`] with what the store has.
    pub fn last(&self, n: usize) -> Result<Vec<Message>, u64> {
        let state = self.state();
        match &state.messages {
            Some(messages) => Ok(messages
                .range(messages.len().saturating_sub(n)..)
                .cloned()
                .collect()),
            None => Err(state.epoch),
        }
    }

    /// Keep `messages` (read from the store under `epoch`) unless the window was
    /// dropped since.
    pub fn fill(&self, epoch: u64, messages: &[Message]) {
        let mut state = self.state();
        if state.epoch == epoch {
            let start = messages.len().saturating_sub(self.limit);
            state.messages = Some(messages[start..].iter().cloned().collect());
        }
    }

    /// Append a finished turn's messages (no-op when none are kept).
    pub fn push(&self, turn: impl IntoIterator<Item = Message>) {
        let mut state = self.state();
        if let Some(messages) = &mut state.messages {
            messages.extend(turn);
            let excess = messages.len().saturating_sub(self.limit);
            messages.drain(..excess);
        }
    }

    /// Forget the window; the next turn reads the store.
    pub fn drop_window(&self) {
        let mut state = self.state();
        state.epoch += 1;
        state.messages = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::types::Role;

    fn user(text: &str) -> Message {
        Message {
            role: Role::User,
            content: text.into(),
        }
    }

    /// The contents of the last `n` messages kept.
    fn texts(window: &HistoryWindow, n: usize) -> Vec<String> {
        window
            .last(n)
            .unwrap()
            .into_iter()
            .map(|m| m.content)
            .collect()
    }

    #[test]
    fn keeps_the_last_limit_messages() {
        let window = HistoryWindow::new(3);
        let epoch = window.last(3).unwrap_err();
        window.fill(epoch, &[user("a"), user("b"), user("c"), user("d")]);
        assert_eq!(texts(&window, 3), ["b", "c", "d"]);
        window.push([user("e"), user("f")]);
        assert_eq!(texts(&window, 3), ["d", "e", "f"]);
        assert_eq!(texts(&window, 2), ["e", "f"]);
        assert!(texts(&window, 0).is_empty());
    }

    #[test]
    fn appends_nothing_until_filled() {
        let window = HistoryWindow::new(3);
        window.push([user("a")]);
        assert!(window.last(3).is_err());
    }

    #[test]
    fn a_window_read_before_a_drop_is_not_kept() {
        let window = HistoryWindow::new(3);
        let epoch = window.last(3).unwrap_err();
        // A reset clears the history while the worker is reading it.
        window.drop_window();
        window.fill(epoch, &[user("cleared")]);
        assert!(window.last(3).is_err());
        let epoch = window.last(3).unwrap_err();
        window.fill(epoch, &[]);
        assert_eq!(texts(&window, 3), Vec::<String>::new());
    }
}
