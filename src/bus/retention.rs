//! Retention: the bus log is trimmed by count and by age, in the background, a batch at
//! a time so the writer is never held for long.
//!
//! A subscriber resuming from a cursor older than the oldest kept event gets what is
//! left; the events in between are gone by policy.

use std::time::Duration;

use super::Bus;

/// The retention policy: `[bus]` in `switchyard.toml`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Keep at most this many events in the log (0 = no limit).
    pub retention_max_events: u64,
    /// Drop events older than this (`retention_max_age_hours`; 0 = no limit).
    #[serde(rename = "retention_max_age_hours", with = "crate::time::hours")]
    pub retention_max_age: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            retention_max_events: 1_000_000,
            retention_max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// How often the log is trimmed.
const INTERVAL: Duration = Duration::from_secs(60);
/// Events deleted per transaction.
const BATCH: u64 = 10_000;

pub async fn run(bus: Bus, policy: RetentionConfig) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        match trim(&bus, &policy).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "bus retention trimmed the event log"),
            Err(e) => tracing::warn!(error = %e, "bus retention failed; retrying later"),
        }
    }
}

/// Apply the policy once; returns how many events were deleted.
pub async fn trim(bus: &Bus, policy: &RetentionConfig) -> Result<u64, crate::store::StoreError> {
    let cutoff_time = (!policy.retention_max_age.is_zero()).then(|| {
        let age =
            chrono::Duration::from_std(policy.retention_max_age).unwrap_or(chrono::Duration::MAX);
        (chrono::Utc::now() - age).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    });
    let keep = (policy.retention_max_events > 0).then_some(policy.retention_max_events);
    let mut total = 0;
    loop {
        let n = bus
            .store
            .trim_events(keep, cutoff_time.clone(), BATCH)
            .await?;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::NewEvent;
    use crate::store::Store;

    #[tokio::test]
    async fn trims_by_count_then_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::new(Store::open(dir.path()).unwrap());
        for n in 0..10 {
            bus.publish(NewEvent::runtime("t.x", "t", serde_json::json!({ "n": n })))
                .await
                .unwrap();
        }
        let by_count = RetentionConfig {
            retention_max_events: 3,
            retention_max_age: Duration::ZERO,
        };
        assert_eq!(trim(&bus, &by_count).await.unwrap(), 7);
        let left = bus.events_after(0, 100).await.unwrap();
        assert_eq!(
            left.iter()
                .map(|e| e.data.value()["n"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            [7, 8, 9]
        );
        assert_eq!(trim(&bus, &by_count).await.unwrap(), 0);

        tokio::time::sleep(Duration::from_millis(20)).await;
        let by_age = RetentionConfig {
            retention_max_events: 0,
            retention_max_age: Duration::from_micros(3600), // 1e-6 hours
        };
        assert_eq!(trim(&bus, &by_age).await.unwrap(), 3);
        assert!(bus.events_after(0, 100).await.unwrap().is_empty());
    }
}
