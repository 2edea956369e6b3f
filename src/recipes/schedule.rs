//! Cron schedules: standard crontab semantics (croner: 1 = Monday, 0 and 7 = Sunday,
//! names, ranges, steps, day-of-month OR day-of-week as in Vixie cron) with an optional
//! leading seconds field, read in an IANA time zone.
//!
//! Why croner and not the `cron` crate: `cron` reads Quartz expressions (1 = Sunday,
//! seconds required), which silently shifts every weekday of a crontab line by one.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed cron expression and the zone it is read in.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Arc<Cron>,
    zone: Tz,
}

/// Parsed expressions, shared: croner keeps a 5,000-entry table for the year field in
/// every parsed expression (~5 KB), so 100,000 automations on a few hundred distinct
/// expressions hold a few hundred tables instead of 100,000.
static PARSED: LazyLock<Mutex<HashMap<String, Weak<Cron>>>> = LazyLock::new(Default::default);

fn shared(
    expression: &str,
    parse: impl FnOnce() -> Result<Cron, ScheduleError>,
) -> Result<Arc<Cron>, ScheduleError> {
    let mut parsed = PARSED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(cron) = parsed.get(expression).and_then(Weak::upgrade) {
        return Ok(cron);
    }
    let cron = Arc::new(parse()?);
    // Forget expressions no schedule uses any more, now and then.
    if parsed.len() >= 1024 && parsed.len().is_power_of_two() {
        parsed.retain(|_, c| c.strong_count() > 0);
    }
    parsed.insert(expression.to_owned(), Arc::downgrade(&cron));
    Ok(cron)
}

impl CronSchedule {
    /// Parse `expression` in `zone` (an IANA name; `None` = UTC).
    pub fn parse(expression: &str, zone: Option<&str>) -> Result<Self, ScheduleError> {
        let fields = expression.split_whitespace().count();
        let cron = shared(expression, || {
            CronParser::builder()
                .seconds(Seconds::Optional)
                .year(Year::Disallowed)
                .build()
                .parse(expression)
                .map_err(|e| {
                ScheduleError::Cron(if (5..=6).contains(&fields) || expression.contains('@') {
                    e.to_string()
                } else {
                    format!(
                        "{fields} fields: write 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)"
                    )
                })
            })
        })?;
        let zone = match zone {
            None => Tz::UTC,
            Some(name) => name
                .parse()
                .map_err(|_| ScheduleError::Zone(name.to_owned()))?,
        };
        Ok(Self { cron, zone })
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The next `n` firings after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("bad cron expression: {0}")]
    Cron(String),
    #[error(
        "unknown time zone `{0}`: use an IANA name such as `Europe/Paris` or `America/New_York`"
    )]
    Zone(String),
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, TimeZone, Timelike, Weekday};

    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn one_is_monday_and_zero_and_seven_are_sunday() {
        // 2026-11-21 is a Saturday.
        let from = utc(2026, 11, 21, 12, 0);
        let monday = CronSchedule::parse("0 9 * * 1", None).unwrap();
        let next = monday.next_after(from).unwrap();
        assert_eq!(
            (next.weekday(), next.day(), next.hour()),
            (Weekday::Mon, 23, 9)
        );
        for sunday in ["0 9 * * 0", "0 9 * * 7", "0 9 * * sun"] {
            let s = CronSchedule::parse(sunday, None).unwrap();
            assert_eq!(
                s.next_after(from).unwrap().weekday(),
                Weekday::Sun,
                "{sunday}"
            );
        }
    }

    #[test]
    fn reads_the_expression_in_its_zone() {
        let paris = CronSchedule::parse("0 9 * * mon-fri", Some("Europe/Paris")).unwrap();
        // 09:00 in Paris is 08:00 UTC in winter.
        assert_eq!(
            paris.next_after(utc(2026, 11, 23, 0, 0)).unwrap(),
            utc(2026, 11, 23, 8, 0)
        );
    }

    #[test]
    fn seconds_field_is_optional() {
        let every_10s = CronSchedule::parse("*/10 * * * * *", None).unwrap();
        let next = every_10s.upcoming(utc(2026, 1, 1, 0, 0), 3);
        assert_eq!(next[2].second(), 30);
    }

    #[test]
    fn bad_expressions_and_zones_are_named() {
        assert!(matches!(
            CronSchedule::parse("0 9 * *", None),
            Err(ScheduleError::Cron(m)) if m.contains("4 fields")
        ));
        assert!(CronSchedule::parse("0 25 * * *", None).is_err());
        assert!(CronSchedule::parse("0 9 * * 1 2026", None).is_err());
        assert_eq!(
            CronSchedule::parse("0 9 * * *", Some("Europe/Pariss")).unwrap_err(),
            ScheduleError::Zone("Europe/Pariss".into())
        );
    }
}
