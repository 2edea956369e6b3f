//! The queues' configuration: `[queues]` in `switchyard.toml`. Its plain keys set the
//! limits and defaults of every queue; each table under it (`[queues.NAME]`) makes a
//! plugin serve queue NAME:
//!
//! A served queue cannot be named like a setting.
//!
//! ```toml
//! [queues]
//! default_max_attempts = 5
//! backoff_secs = 1
//!
//! [queues.summaries]
//! plugin = "echo-agent"
//! concurrency = 2
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// Limits and defaults of the queues.
#[derive(Debug, Clone)]
pub struct QueuesConfig {
    /// Wait before the first retry; doubled each attempt (±20 % jitter) (`backoff_secs`).
    pub backoff: Duration,
    /// The longest wait between retries (`max_backoff_secs`).
    pub max_backoff: Duration,
    /// A claim's lease when the claim names none (`default_lease_secs`).
    pub default_lease: Duration,
    /// The longest lease a claim or an extend may ask for (`max_lease_secs`).
    pub max_lease: Duration,
    /// Claims of an item before a failure makes it dead, when its enqueue names none.
    pub default_max_attempts: u32,
    /// Longest long-poll of a claim (`max_wait_secs`).
    pub max_wait: Duration,
    /// How often expired leases and TTLs are looked for (`reap_every_secs`).
    pub reap_every: Duration,
    /// `[queues.NAME]`: queues served by a plugin inside the runtime.
    pub served: BTreeMap<String, ServedQueueConfig>,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        Self {
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            default_lease: Duration::from_secs(30),
            max_lease: Duration::from_secs(3600),
            default_max_attempts: 5,
            max_wait: Duration::from_secs(60),
            reap_every: Duration::from_millis(250),
            served: BTreeMap::new(),
        }
    }
}

/// `[queues.NAME]`: a plugin serves queue NAME.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServedQueueConfig {
    /// An agent adapter (each item is a turn) or a connector (each item is delivered).
    pub plugin: String,
    /// Items served at once.
    #[serde(default = "one")]
    pub concurrency: usize,
    /// Lease of each claim, renewed while the plugin works (`lease_secs`).
    #[serde(
        rename = "lease_secs",
        with = "crate::time::secs",
        default = "five_minutes"
    )]
    pub lease: Duration,
}

fn one() -> usize {
    1
}

fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

/// A number of seconds, read as a [`Duration`].
struct Secs(Duration);

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::time::secs::deserialize(d).map(Secs)
    }
}

/// The plain keys of `[queues]`; any other key names a served queue.
const SETTINGS: &[&str] = &[
    "backoff_secs",
    "max_backoff_secs",
    "default_lease_secs",
    "max_lease_secs",
    "default_max_attempts",
    "max_wait_secs",
    "reap_every_secs",
];

impl<'de> Deserialize<'de> for QueuesConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Section;

        impl<'de> Visitor<'de> for Section {
            type Value = QueuesConfig;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "queue settings ({}) and `[queues.NAME]` tables of served queues",
                    SETTINGS.join(", ")
                )
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<QueuesConfig, A::Error> {
                let mut config = QueuesConfig::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "backoff_secs" => config.backoff = map.next_value::<Secs>()?.0,
                        "max_backoff_secs" => config.max_backoff = map.next_value::<Secs>()?.0,
                        "default_lease_secs" => config.default_lease = map.next_value::<Secs>()?.0,
                        "max_lease_secs" => config.max_lease = map.next_value::<Secs>()?.0,
                        "default_max_attempts" => config.default_max_attempts = map.next_value()?,
                        "max_wait_secs" => config.max_wait = map.next_value::<Secs>()?.0,
                        "reap_every_secs" => config.reap_every = map.next_value::<Secs>()?.0,
                        _ => {
                            let served = map.next_value::<ServedQueueConfig>().map_err(|e| {
                                de::Error::custom(format!(
                                    "`{key}` is not a queue setting ({}), so it is read as the \
                                     table of served queue `{key}`: {e}",
                                    SETTINGS.join(", ")
                                ))
                            })?;
                            config.served.insert(key, served);
                        }
                    }
                }
                for (key, value) in [
                    ("default_lease_secs", config.default_lease),
                    ("max_lease_secs", config.max_lease),
                    ("reap_every_secs", config.reap_every),
                ] {
                    if value.is_zero() {
                        return Err(de::Error::custom(format!("`{key}` must be more than 0")));
                    }
                }
                Ok(config)
            }
        }

        d.deserialize_map(Section)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_served_queues_share_the_section() {
        let config: QueuesConfig = toml::from_str(
            "backoff_secs = 0.5\ndefault_max_attempts = 3\n\
             [summaries]\nplugin = \"echo-agent\"\nconcurrency = 2\n",
        )
        .unwrap();
        assert_eq!(config.backoff, Duration::from_millis(500));
        assert_eq!(config.default_max_attempts, 3);
        assert_eq!(config.max_lease, QueuesConfig::default().max_lease);
        let served = &config.served["summaries"];
        assert_eq!(
            (served.plugin.as_str(), served.concurrency),
            ("echo-agent", 2)
        );
        assert_eq!(served.lease, Duration::from_secs(300));
    }

    #[test]
    fn a_misspelt_setting_says_what_it_was_taken_for() {
        let err = toml::from_str::<QueuesConfig>("backof_secs = 2\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`backof_secs` is not a queue setting"),
            "{err}"
        );
        let err = toml::from_str::<QueuesConfig>("backoff_secs = -1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a number of seconds"), "{err}");
        let err = toml::from_str::<QueuesConfig>("reap_every_secs = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`reap_every_secs` must be more than 0"),
            "{err}"
        );
    }
}
