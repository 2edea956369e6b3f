//! State machines as types: each status or decision a record carries is an enum,
//! serialised (to users, to the database, to events) as the word a user reads. They
//! are kept here together, below the records that carry them: a firing shows its
//! run's status, and a run is created with its firing.

/// A status word the store did not write: the database was edited by hand, or by a
/// newer Switchyard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{word}` is not a {what}; expected one of: {expected}")]
pub struct UnknownWord {
    pub what: &'static str,
    pub word: String,
    pub expected: String,
}

/// Declares an enum of words: each variant's word is its serde name (and its OpenAPI
/// enum value), its `as_str`, its `Display` and what `FromStr` takes back. The word is
/// the variant's name in snake case (`TimedOut` = `timed_out`), written out beside it
/// so that a reader sees it; a unit test checks that the two agree.
macro_rules! words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize,
            serde::Deserialize,
            utoipa::ToSchema,
        )]
        // utoipa reads `rename_all`, not a variant's `rename`: the words are snake case.
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order of the state machine.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word a user reads.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::store::UnknownWord;

            fn from_str(word: &str) -> Result<Self, Self::Err> {
                match word {
                    $($word => Ok($name::$variant),)+
                    _ => Err($crate::store::UnknownWord {
                        what: $what,
                        word: word.to_owned(),
                        expected: [$($word),+].join(", "),
                    }),
                }
            }
        }
    };
}

words! {
    /// Where a run is: `running`, then `succeeded`, `failed` or `canceled`.
    pub enum RunStatus ("run status") {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Canceled = "canceled",
    }
}

impl RunStatus {
    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        self != RunStatus::Running
    }
}

words! {
    /// Where a step is: `pending`, `running`, `retrying`, then `succeeded`, `failed`,
    /// `skipped` or `canceled`.
    pub enum StepStatus ("step status") {
        Pending = "pending",
        Running = "running",
        Retrying = "retrying",
        Succeeded = "succeeded",
        Failed = "failed",
        Skipped = "skipped",
        Canceled = "canceled",
    }
}

impl StepStatus {
    /// Whether the step has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped | StepStatus::Canceled
        )
    }

    /// Whether a step that needs this one may start.
    pub fn lets_dependents_start(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Skipped)
    }
}

words! {
    /// Where a queue item is.
    pub enum ItemStatus ("queue item status") {
        /// Waiting for a worker.
        Pending = "pending",
        /// Claimed, with a lease.
        Claimed = "claimed",
        /// Its lease renewed at least once.
        Running = "running",
        Succeeded = "succeeded",
        /// An attempt failed; it retries at `available_at`.
        Failed = "failed",
        /// Its lease ran out; it retries at `available_at`.
        TimedOut = "timed_out",
        Canceled = "canceled",
        /// Out of attempts or past its TTL: a dead letter.
        Dead = "dead",
    }
}

impl ItemStatus {
    /// Held by a worker's lease.
    pub fn is_leased(self) -> bool {
        matches!(self, ItemStatus::Claimed | ItemStatus::Running)
    }

    /// Ended for good (only a dead letter can be retried by hand).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ItemStatus::Succeeded | ItemStatus::Canceled | ItemStatus::Dead
        )
    }
}

words! {
    /// Where a message is. A user message is `queued`, then `processing` during its
    /// turn, then ends as the turn did; a reply is `done`.
    pub enum MessageStatus ("message status") {
        Queued = "queued",
        Processing = "processing",
        /// The turn completed.
        Done = "done",
        /// The adapter failed.
        Failed = "failed",
        /// Aborted through the API.
        Aborted = "aborted",
        /// Cut off by a crash or a stop that could not wait for it.
        Interrupted = "interrupted",
    }
}

impl MessageStatus {
    /// Whether its turn has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, MessageStatus::Queued | MessageStatus::Processing)
    }
}

words! {
    /// What a firing decided.
    pub enum FiringDecision ("firing decision") {
        /// A run started.
        Started = "started",
        /// It waits for a run of the same automation to end (overlap policy `queue`).
        Queued = "queued",
        /// Nothing ran: the overlap policy, a trigger plugin's verdict, or a slot that
        /// fired already.
        Skipped = "skipped",
        /// The run could not start.
        Error = "error",
        /// Slots that passed while Switchyard was down, not caught up (`catch_up:
        /// none`): recorded once, at the latest of them.
        Missed = "missed",
    }
}

#[cfg(test)]
mod tests {
    words! {
        /// A test machine.
        pub enum Light ("light") {
            Red = "red",
            TimedOut = "timed_out",
        }
    }

    #[test]
    fn a_word_goes_out_and_comes_back_as_it_is_read() {
        assert_eq!(Light::TimedOut.as_str(), "timed_out");
        assert_eq!(
            serde_json::to_string(&Light::TimedOut).unwrap(),
            "\"timed_out\""
        );
        assert_eq!("red".parse::<Light>(), Ok(Light::Red));
        assert_eq!(
            serde_json::from_str::<Light>("\"red\"").unwrap(),
            Light::Red
        );
        let err = "green".parse::<Light>().unwrap_err().to_string();
        assert_eq!(
            err,
            "`green` is not a light; expected one of: red, timed_out"
        );
        assert_eq!(Light::ALL, [Light::Red, Light::TimedOut]);
    }

    /// Every word as written is the word serde and the OpenAPI document use.
    #[test]
    fn the_words_are_what_serde_and_the_api_document_say() {
        use crate::store::{FiringDecision, ItemStatus, MessageStatus, RunStatus, StepStatus};
        fn agree<T>(all: &[T])
        where
            T: serde::Serialize + utoipa::PartialSchema + std::fmt::Display,
        {
            let schema = serde_json::to_value(T::schema()).unwrap();
            let words: Vec<String> = all.iter().map(ToString::to_string).collect();
            assert_eq!(schema["enum"], serde_json::json!(words), "{schema}");
            for (value, word) in all.iter().zip(&words) {
                assert_eq!(serde_json::to_value(value).unwrap(), *word);
            }
        }
        agree(Light::ALL);
        agree(RunStatus::ALL);
        agree(StepStatus::ALL);
        agree(ItemStatus::ALL);
        agree(MessageStatus::ALL);
        agree(FiringDecision::ALL);
    }
}
