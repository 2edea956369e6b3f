//! State machines as types: each status or decision a record carries is an enum,
//! serialised (to users, to the database, to events) as the word a user reads.

/// A status word the store did not write: the database was edited by hand, or by a
/// newer Switchyard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{word}` is not a {what}; expected one of: {expected}")]
pub struct UnknownWord {
    pub what: &'static str,
    pub word: String,
    pub expected: String,
}

/// Declares an enum of words: each variant's word is its serde name, its
/// [`as_str`](RunStatus::as_str), its `Display` and what `FromStr` takes back.
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
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $word)] $variant, )+
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

pub(crate) use words;

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
}
