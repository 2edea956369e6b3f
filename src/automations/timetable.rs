//! When schedules fire: the next slot of every scheduled automation in a heap, the
//! slots missed while down, and jitter. Pure: every function takes `now`, so tests
//! drive it with any clock (days of schedules in microseconds).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::recipes::{Recipe, Schedule};

/// Most slots one catch-up replays (`catch_up: all` after a long stop).
pub const MAX_CATCH_UP: usize = 1000;

/// A scheduled automation.
#[derive(Clone)]
pub struct Entry {
    pub recipe: Arc<Recipe>,
    /// Which of the recipe's schedules.
    pub index: usize,
    /// The next slot (scheduled time), if the expression has one.
    pub next: Option<DateTime<Utc>>,
}

impl Entry {
    pub fn schedule(&self) -> &Schedule {
        &self.recipe.schedules[self.index]
    }
}

/// Every scheduled automation with its next slot.
#[derive(Default)]
pub struct Timetable {
    entries: HashMap<String, Entry>,
    /// (fire time = slot + jitter, automation). Entries whose slot moved leave stale
    /// items behind; `due` drops them.
    heap: BinaryHeap<Reverse<(DateTime<Utc>, String)>>,
}

impl Timetable {
    /// Take `schedules` (automation id → recipe and schedule index) as the set in
    /// force. An automation whose recipe version is unchanged keeps its next slot (so
    /// a reload never skips nor repeats one); a new or changed one starts after `now`.
    pub fn replace(&mut self, schedules: Vec<(String, Arc<Recipe>, usize)>, now: DateTime<Utc>) {
        let mut entries = HashMap::with_capacity(schedules.len());
        for (id, recipe, index) in schedules {
            let kept = self
                .entries
                .get(&id)
                .filter(|e| e.recipe.version == recipe.version && e.index == index)
                .and_then(|e| e.next);
            let schedule = &recipe.schedules[index];
            let next = kept.or_else(|| schedule.cron.next_after(now));
            entries.insert(
                id,
                Entry {
                    recipe,
                    index,
                    next,
                },
            );
        }
        self.entries = entries;
        self.heap = self
            .entries
            .iter()
            .filter_map(|(id, e)| Some(Reverse((fire_time(id, e.schedule(), e.next?), id.clone()))))
            .collect();
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When the next firing is due.
    pub fn next_wake(&mut self) -> Option<DateTime<Utc>> {
        while let Some(Reverse((at, id))) = self.heap.peek() {
            if self.is_current(id, *at) {
                return Some(*at);
            }
            self.heap.pop();
        }
        None
    }

    /// The slots due at `now`, each automation moved on to its following slot.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<(String, DateTime<Utc>)> {
        let mut out = Vec::new();
        while let Some(Reverse((at, _))) = self.heap.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, id))) = self.heap.pop() else {
                break;
            };
            if !self.is_current(&id, at) {
                continue;
            }
            let entry = self.entries.get_mut(&id).expect("checked by is_current");
            let slot = entry.next.expect("checked by is_current");
            entry.next = entry.schedule().cron.next_after(slot);
            if let Some(next) = entry.next {
                let fire = fire_time(&id, entry.schedule(), next);
                self.heap.push(Reverse((fire, id.clone())));
            }
            out.push((id, slot));
        }
        out
    }

    /// Is `(at, id)` the heap item of the automation's current slot?
    fn is_current(&self, id: &str, at: DateTime<Utc>) -> bool {
        self.entries
            .get(id)
            .and_then(|e| Some(fire_time(id, e.schedule(), e.next?)))
            == Some(at)
    }
}

/// When a slot fires: the slot plus its jitter.
pub fn fire_time(id: &str, schedule: &Schedule, slot: DateTime<Utc>) -> DateTime<Utc> {
    match schedule.jitter {
        Some(max) => slot + chrono::Duration::from_std(jitter(id, slot, max)).unwrap_or_default(),
        None => slot,
    }
}

/// A delay in `[0, max)`, the same for a given automation and slot (so a restart does
/// not move a firing), and spread across automations and slots.
pub fn jitter(id: &str, slot: DateTime<Utc>, max: Duration) -> Duration {
    use sha2::Digest;
    let max_ms = max.as_millis().max(1) as u64;
    let digest = sha2::Sha256::digest(format!("{id}@{}", slot.timestamp()).as_bytes());
    let n = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
    Duration::from_millis(n % max_ms)
}

/// The slots of `schedule` after `from` up to `now` (missed while down), oldest first:
/// only those within `window` of `now` when there is one, and at most the latest
/// [`MAX_CATCH_UP`].
pub fn missed(schedule: &Schedule, from: DateTime<Utc>, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let from = match schedule.catch_up_window {
        Some(window) => from.max(now - chrono::Duration::from_std(window).unwrap_or_default()),
        None => from,
    };
    let mut out = std::collections::VecDeque::new();
    let mut t = from;
    while let Some(slot) = schedule.cron.next_after(t) {
        if slot > now {
            break;
        }
        if out.len() == MAX_CATCH_UP {
            out.pop_front();
        }
        out.push_back(slot);
        t = slot;
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike};

    fn recipe(schedule: &str) -> Arc<Recipe> {
        let yaml = format!(
            "name: r\nsteps:\n  - id: a\n    agent: echo-agent\n    prompt: hi\non:\n  schedule:\n{schedule}"
        );
        Arc::new(crate::recipes::check(std::path::Path::new("r.yaml"), &yaml, None).unwrap())
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// Every slot fired from `from` to `to`, driving the timetable with a clock that
    /// jumps straight to each wake-up.
    fn fire_between(recipe: Arc<Recipe>, from: &str, to: &str) -> Vec<DateTime<Utc>> {
        let mut t = Timetable::default();
        t.replace(vec![("r:schedule".into(), recipe, 0)], utc(from));
        let mut fired = Vec::new();
        while let Some(wake) = t.next_wake() {
            if wake > utc(to) {
                break;
            }
            for (_, slot) in t.due(wake) {
                fired.push(slot);
            }
        }
        fired
    }

    #[test]
    fn monday_only_fires_on_monday_in_its_zone() {
        // 00:30 on Mondays in Tokyo is still Sunday in UTC.
        let r = recipe("    - cron: \"30 0 * * 1\"\n      timezone: Asia/Tokyo\n");
        let fired = fire_between(r, "2026-11-01T00:00:00Z", "2026-11-30T00:00:00Z");
        // The Mondays of November 2026 in Tokyo: 2, 9, 16, 23, 30.
        assert_eq!(fired.len(), 5, "{fired:?}");
        for slot in &fired {
            let local = slot.with_timezone(&chrono_tz::Asia::Tokyo);
            assert_eq!(local.weekday(), chrono::Weekday::Mon, "{local}");
            assert_eq!((local.hour(), local.minute()), (0, 30));
            assert_eq!(slot.weekday(), chrono::Weekday::Sun, "UTC: {slot}");
        }
    }

    fn in_paris(slots: &[DateTime<Utc>]) -> Vec<String> {
        slots
            .iter()
            .map(|s| s.with_timezone(&chrono_tz::Europe::Paris).to_rfc3339())
            .collect()
    }

    #[test]
    fn dst_spring_forward_fires_once_and_keeps_local_time_after() {
        // Europe/Paris skips 02:00-03:00 on 2026-03-29.
        let r = recipe("    - cron: \"30 2 * * *\"\n      timezone: Europe/Paris\n");
        let fired = fire_between(r, "2026-03-27T12:00:00Z", "2026-03-31T12:00:00Z");
        let paris = in_paris(&fired);
        assert_eq!(
            paris,
            [
                "2026-03-28T02:30:00+01:00",
                // The day 02:30 does not exist: once, at the jump (as Vixie cron does).
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00",
                "2026-03-31T02:30:00+02:00",
            ]
        );
    }

    #[test]
    fn dst_fall_back_fires_once_in_the_repeated_hour() {
        // Europe/Paris has 02:00-03:00 twice on 2026-10-25.
        let r = recipe("    - cron: \"30 2 * * *\"\n      timezone: Europe/Paris\n");
        let fired = fire_between(r, "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z");
        let paris = in_paris(&fired);
        assert_eq!(
            paris,
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
        );
        // An every-30-minutes schedule keeps a real 30 minutes between firings through
        // the repeated hour: 00:00 UTC to 02:00 UTC is five slots.
        let r = recipe("    - cron: \"*/30 * * * *\"\n      timezone: Europe/Paris\n");
        let fired = fire_between(r, "2026-10-24T23:59:00Z", "2026-10-25T02:00:00Z");
        let gaps: Vec<i64> = fired
            .windows(2)
            .map(|w| (w[1] - w[0]).num_minutes())
            .collect();
        assert_eq!(fired.len(), 5, "{fired:?}");
        assert!(gaps.iter().all(|g| *g == 30), "{gaps:?}");
    }

    #[test]
    fn a_reload_of_the_same_version_keeps_the_next_slot() {
        let r = recipe("    - cron: \"0 9 * * *\"\n");
        let mut t = Timetable::default();
        t.replace(
            vec![("a".into(), r.clone(), 0)],
            utc("2026-11-21T08:00:00Z"),
        );
        // A reload after the slot was due but before it was taken does not skip it.
        t.replace(vec![("a".into(), r, 0)], utc("2026-11-21T09:00:30Z"));
        assert_eq!(
            t.due(utc("2026-11-21T09:00:30Z")),
            [("a".into(), utc("2026-11-21T09:00:00Z"))]
        );
        // A new version starts after its load.
        let changed = recipe("    - cron: \"0 10 * * *\"\n");
        t.replace(vec![("a".into(), changed, 0)], utc("2026-11-21T10:30:00Z"));
        assert_eq!(t.next_wake(), Some(utc("2026-11-22T10:00:00Z")));
        t.replace(Vec::new(), utc("2026-11-21T10:30:00Z"));
        assert_eq!(t.next_wake(), None);
    }

    #[test]
    fn jitter_is_stable_bounded_and_spread() {
        let slot = utc("2026-11-21T09:00:00Z");
        let max = Duration::from_secs(30);
        assert_eq!(jitter("a", slot, max), jitter("a", slot, max));
        let all: Vec<Duration> = (0..200)
            .map(|i| jitter(&format!("a{i}"), slot, max))
            .collect();
        assert!(all.iter().all(|j| *j < max));
        assert!(all.iter().any(|j| *j < Duration::from_secs(10)));
        assert!(all.iter().any(|j| *j > Duration::from_secs(20)));
        let r = recipe("    - cron: \"0 9 * * *\"\n      jitter: 30s\n");
        let fire = fire_time("r:schedule", &r.schedules[0], slot);
        assert!(fire >= slot && fire < slot + chrono::Duration::seconds(30));
    }

    #[test]
    fn missed_slots_honour_the_window_and_the_cap() {
        let r =
            recipe("    - cron: \"0 * * * *\"\n      catch_up: all\n      catch_up_window: 3h\n");
        let missed = missed(
            &r.schedules[0],
            utc("2026-11-20T00:00:00Z"),
            utc("2026-11-21T10:30:00Z"),
        );
        assert_eq!(
            missed,
            [
                utc("2026-11-21T08:00:00Z"),
                utc("2026-11-21T09:00:00Z"),
                utc("2026-11-21T10:00:00Z")
            ]
        );
        let r = recipe("    - cron: \"* * * * * *\"\n      catch_up: all\n");
        let missed = super::missed(
            &r.schedules[0],
            utc("2026-11-20T00:00:00Z"),
            utc("2026-11-21T00:00:00Z"),
        );
        assert_eq!(missed.len(), MAX_CATCH_UP);
        assert_eq!(missed.last(), Some(&utc("2026-11-21T00:00:00Z")));
    }
}
