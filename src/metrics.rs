//! Prometheus metrics, served at `/metrics`.
//!
//! Counters and histograms are recorded where things happen (the `metrics` macros, a
//! no-op until a recorder is installed); levels that the database already knows
//! (queue depths, queued messages) are read when scraped instead of kept in step by
//! hand. What there is:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `switchyard_http_request_duration_seconds` | histogram | `method`, `route`, `status` |
//! | `switchyard_sessions_active` | gauge (scrape) | sessions with a worker in memory |
//! | `switchyard_session_messages` | gauge (scrape) | `status` = `queued`, `processing` |
//! | `switchyard_queue_items` | gauge (scrape) | `queue`, `status` |
//! | `switchyard_queue_lease_expiries_total` | counter | `queue` |
//! | `switchyard_bus_events_total` | counter | events committed to the bus log |
//! | `switchyard_bus_subscribers` | gauge | live subscriptions |
//! | `switchyard_bus_subscriber_lag_events` | histogram | events a subscriber had behind it at each delivery |
//! | `switchyard_bus_subscriber_overflows_total` | counter | live feed overruns (the subscriber re-reads the log) |
//! | `switchyard_plugin_call_duration_seconds` | histogram | `plugin`, `export` |
//! | `switchyard_plugin_call_failures_total` | counter | `plugin`, `export`, `code` |

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds: from half a millisecond (a cached read) to a minute (a long poll).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
const LAG_BUCKETS: &[f64] = &[0.0, 1.0, 10.0, 100.0, 1000.0, 10_000.0];

/// Install the process-wide recorder; `None` if one is installed already.
pub fn install() -> Option<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .ok()?
        .set_buckets_for_metric(Matcher::Suffix("_lag_events".into()), LAG_BUCKETS)
        .ok()?
        .install_recorder()
        .ok()?;
    describe();
    Some(handle)
}

/// Histograms keep raw samples until upkeep folds them into buckets: run this for as
/// long as the recorder records.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        "switchyard_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by route (the route template, not the path)"
    );
    describe_gauge!(
        "switchyard_sessions_active",
        "Sessions with a worker in memory"
    );
    describe_gauge!(
        "switchyard_session_messages",
        "Session messages waiting or being processed"
    );
    describe_gauge!(
        "switchyard_queue_items",
        "Work queue items by queue and status"
    );
    describe_counter!(
        "switchyard_queue_lease_expiries_total",
        "Leases that ran out before an ack or nack"
    );
    describe_counter!(
        "switchyard_bus_events_total",
        "Events committed to the bus log"
    );
    describe_gauge!("switchyard_bus_subscribers", "Live bus subscriptions");
    describe_histogram!(
        "switchyard_bus_subscriber_lag_events",
        "Events a subscriber had yet to read when it was handed one"
    );
    describe_counter!(
        "switchyard_bus_subscriber_overflows_total",
        "Times a subscriber fell behind the live feed and re-read the log"
    );
    describe_counter!(
        "switchyard_store_writes_total",
        "Writes committed by the store's writer"
    );
    describe_counter!(
        "switchyard_store_commits_total",
        "Transactions the store's writer committed; writes / commits is the mean group size"
    );
    describe_histogram!(
        "switchyard_plugin_call_duration_seconds",
        Unit::Seconds,
        "Plugin export call latency"
    );
    describe_counter!(
        "switchyard_plugin_call_failures_total",
        "Plugin calls that failed, by error code"
    );
}

/// The text exposition of everything recorded; the caller sets the levels read at
/// scrape time first (`api::health`).
pub fn render(handle: &PrometheusHandle) -> String {
    handle.run_upkeep();
    handle.render()
}
