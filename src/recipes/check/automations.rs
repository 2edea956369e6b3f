//! The `on:` block: schedules (cron, zone, overlap, catch-up), event patterns and
//! trigger plugins, webhooks, and the inputs each hands its run.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::inputs::check_value;
use super::syntax::did_you_mean;
use super::{Checker, RefScope};
use crate::bus::TopicPattern;
use crate::plugins::PluginKind;
use crate::recipes::format::{self};
use crate::recipes::schedule::CronSchedule;
use crate::recipes::{EventTrigger, Input, Schedule, TriggerPlugin};

impl Checker<'_> {
    /// Inputs given by an automation: each must be declared; with `complete`, every
    /// required input without a default must be given.
    pub(super) fn automation_inputs(
        &mut self,
        what: &str,
        at: Location,
        given: &BTreeMap<String, Spanned<Value>>,
        inputs: &BTreeMap<String, Input>,
        complete: bool,
        event: bool,
    ) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (name, value) in given {
            let Some(input) = inputs.get(name) else {
                let help = did_you_mean(name, inputs.keys().map(String::as_str));
                let key = self.key_before(value.referenced, name);
                self.at(
                    key,
                    format!("{what}: `{name}` is not an input of this recipe"),
                    help,
                );
                continue;
            };
            if let Value::String(s) = &value.value
                && s.contains("{{")
            {
                let scope = RefScope {
                    inputs,
                    steps: &BTreeSet::new(),
                    step_needs: None,
                    event,
                };
                let spanned = Spanned::new(s.clone(), value.referenced, value.defined);
                self.template(&format!("{what} input `{name}`"), &spanned, &scope);
            } else if let Err(why) = check_value(input.kind, Some(&input.values), &value.value) {
                self.at(
                    value.referenced,
                    format!("{what}: input `{name}` {why}"),
                    None,
                );
            }
            out.insert(name.clone(), value.value.clone());
        }
        if complete {
            for (name, input) in inputs {
                if input.required && input.default.is_none() && !given.contains_key(name) {
                    self.at(
                        at,
                        format!("{what}: required input `{name}` is not given"),
                        Some(format!("add `{name}:` under this automation's `inputs`, or give the input a default")),
                    );
                }
            }
        }
        out
    }

    pub(super) fn schedule(
        &mut self,
        s: format::ScheduleSpec,
        inputs: &BTreeMap<String, Input>,
    ) -> Option<Schedule> {
        let zone = s.timezone.as_ref().map(|z| z.value.as_str());
        let cron = match CronSchedule::parse(&s.cron.value, zone) {
            Ok(c) => Some(c),
            Err(e @ crate::recipes::schedule::ScheduleError::Zone(_)) => {
                let loc = s
                    .timezone
                    .as_ref()
                    .map_or(s.cron.referenced, |z| z.referenced);
                let help = zone
                    .and_then(|z| did_you_mean(z, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name())));
                self.at(loc, e.to_string(), help);
                None
            }
            Err(e) => {
                self.at(
                    s.cron.referenced,
                    format!("schedule `{}`: {e}", s.cron.value),
                    Some("crontab fields: minute hour day-of-month month day-of-week (1 = Monday), with an optional seconds field first".into()),
                );
                None
            }
        };
        let window = self.duration("catch_up_window", &s.catch_up_window);
        let jitter = self.duration("jitter", &s.jitter);
        let given = self.automation_inputs(
            "schedule",
            s.cron.referenced,
            &s.inputs,
            inputs,
            true,
            false,
        );
        Some(Schedule {
            expression: s.cron.value,
            cron: cron?,
            overlap: s.overlap,
            catch_up: s.catch_up,
            catch_up_window: window,
            jitter,
            inputs: given,
        })
    }

    pub(super) fn event(
        &mut self,
        e: format::EventSpec,
        inputs: &BTreeMap<String, Input>,
    ) -> Option<EventTrigger> {
        let topic = match TopicPattern::parse(&e.topic.value) {
            Ok(t) => Some(t),
            Err(err) => {
                self.at(
                    e.topic.referenced,
                    format!("event topic `{}`: {err}", e.topic.value),
                    None,
                );
                None
            }
        };
        let trigger = e.trigger.map(|t| {
            self.plugin(
                t.plugin.referenced,
                &t.plugin.value,
                PluginKind::Trigger,
                "event trigger",
            );
            TriggerPlugin {
                plugin: t.plugin.value,
                params: Value::Object(t.params),
            }
        });
        let given = self.automation_inputs(
            "event",
            e.topic.referenced,
            &e.inputs,
            inputs,
            trigger.is_none(),
            true,
        );
        Some(EventTrigger {
            topic: topic?,
            trigger,
            inputs: given,
        })
    }
}
