//! Wall-clock timestamps as the runtime writes them: RFC 3339, UTC, milliseconds.

/// Now, e.g. `2026-11-21T09:00:00.123Z`.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
