//! Wall-clock timestamps as the runtime writes them: RFC 3339, UTC, milliseconds.

/// Now, e.g. `2026-11-21T09:00:00.123Z`.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A [`Duration`](std::time::Duration) written in configuration as a number of seconds
/// (`idle_timeout_secs = 60`, `lease_secs = 0.5`): `#[serde(with = "crate::time::secs")]`.
pub mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, de::Error};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let n = f64::deserialize(d)?;
        Duration::try_from_secs_f64(n)
            .map_err(|_| D::Error::custom(format!("{n} is not a number of seconds (0 or more)")))
    }
}

/// A [`Duration`](std::time::Duration) written in configuration as a number of hours.
pub mod hours {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, de::Error};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let n = f64::deserialize(d)?;
        Duration::try_from_secs_f64(n * 3600.0)
            .map_err(|_| D::Error::custom(format!("{n} is not a number of hours (0 or more)")))
    }
}
