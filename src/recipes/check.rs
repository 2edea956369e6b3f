//! From a recipe file's text to a [`Recipe`], or to every problem found, each with
//! `file:line:col` and what to do about it.
//!
//! Two passes: serde reads the YAML into [`format`] types (a syntax or type error stops
//! there: it is reported with its location and, for a misspelt field, the nearest valid
//! name); then the meaning is checked as a whole (the `needs` DAG, references in
//! templates and conditions, inputs, durations, cron, plugins) and every problem found
//! is reported at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::condition::Condition;
use super::format::{self, AgentSpec, InputType, RecipeFile};
use super::schedule::CronSchedule;
use super::template::{Reference, Template};
use super::{EventTrigger, Input, Recipe, RetryPolicy, Schedule, Step, TriggerPlugin, VerifyRule};
use crate::bus::TopicPattern;
use crate::plugins::PluginKind;
use crate::plugins::manifest::line_col;

/// A step with no `timeout` may run this long.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(600);
const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(300);

/// One thing wrong with a recipe file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[schema(value_type = String)]
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// What to do about it, when there is something better to say than the message.
    pub help: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Plugins a recipe may name, with their kinds. `None` skips the plugin checks.
pub type PluginCatalog = BTreeMap<String, PluginKind>;

/// Parse and check the recipe in `text` (read from `file`).
pub fn check(
    file: &Path,
    text: &str,
    plugins: Option<&PluginCatalog>,
) -> Result<Recipe, Vec<Problem>> {
    let raw: RecipeFile = match serde_saphyr::from_str(text) {
        Ok(raw) => raw,
        Err(e) => return Err(vec![parse_problem(file, &e)]),
    };
    let mut c = Checker {
        file,
        text,
        plugins,
        problems: Vec::new(),
    };
    let recipe = c.recipe(raw);
    if c.problems.is_empty() {
        Ok(recipe)
    } else {
        c.problems.sort_by_key(|p| (p.line, p.column));
        Err(c.problems)
    }
}

/// A serde error as a problem: its location, a message without the YAML snippet, and
/// for an unknown field or variant the nearest expected name.
fn parse_problem(file: &Path, e: &serde_saphyr::Error) -> Problem {
    let (line, column) = e
        .location()
        .filter(|l| l.line() > 0)
        .map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
    let text = e.without_snippet().to_string();
    let mut message = text.lines().next().unwrap_or_default().trim();
    message = message.trim_start_matches("error: ");
    // The location is in front of the message already.
    if let Some(cut) = message.rfind(" at line ") {
        message = &message[..cut];
    }
    let (message, help) = if let Some(key) = message.strip_prefix("duplicate mapping key: ") {
        let key = key.split(',').next().unwrap_or(key);
        (
            format!("`{key}` is given twice in the same mapping"),
            Some("keep one of them".to_owned()),
        )
    } else if message.contains("expected sequence") {
        (
            message.to_owned(),
            Some("write a list: `[a, b]`, or one `- item` per line".to_owned()),
        )
    } else {
        (message.to_owned(), unknown_name_help(message))
    };
    Problem {
        file: file.to_owned(),
        line,
        column,
        message,
        help,
    }
}

/// From serde's "unknown field `x`, expected one of `a`, `b`": "did you mean `a`?".
fn unknown_name_help(message: &str) -> Option<String> {
    if !message.contains("unknown field") && !message.contains("unknown variant") {
        return None;
    }
    let given = message.split('`').nth(1)?;
    let expected: Vec<&str> = message
        .split_once("expected one of ")
        .map(|(_, list)| list.split(", ").map(|n| n.trim_matches('`')).collect())
        .or_else(|| {
            let (_, one) = message.split_once("expected ")?;
            Some(vec![one.trim_matches('`')])
        })?;
    match nearest(given, expected.iter().copied()) {
        Some(name) => Some(format!("did you mean `{name}`?")),
        None => Some(format!(
            "valid names here: {}",
            expected
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The candidate closest to `given`, if any is close enough to be a likely typo.
pub fn nearest<'a>(given: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn did_you_mean<'a>(given: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    nearest(given, candidates).map(|n| format!("did you mean `{n}`?"))
}

/// A 1-based line and column.
struct Pos(usize, usize);

impl From<Location> for Pos {
    fn from(loc: Location) -> Self {
        if loc.line() > 0 {
            Pos(loc.line() as usize, loc.column() as usize)
        } else {
            Pos(1, 1)
        }
    }
}

struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    plugins: Option<&'a PluginCatalog>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn at(&mut self, pos: impl Into<Pos>, message: impl Into<String>, help: Option<String>) {
        let Pos(line, column) = pos.into();
        self.problems.push(Problem {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
            help,
        });
    }

    /// Report at `byte` bytes into the scalar at `loc`, when that text can be found in
    /// the source (plain and block scalars); else at the scalar.
    fn within(&mut self, loc: Location, needle: &str, message: String, help: Option<String>) {
        let start = loc.span().byte_offset().map(|o| o as usize);
        match start.and_then(|s| self.text.get(s..)?.find(needle).map(|i| s + i)) {
            Some(offset) => {
                let (line, column) = line_col(self.text, offset);
                self.problems.push(Problem {
                    file: self.file.to_owned(),
                    line,
                    column,
                    message,
                    help,
                });
            }
            None => self.at(loc, message, help),
        }
    }

    fn duration(&mut self, field: &str, value: &Option<Spanned<String>>) -> Option<Duration> {
        let v = value.as_ref()?;
        match humantime::parse_duration(v.value.trim()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.at(
                    v.referenced,
                    format!("`{field}`: `{}` is not a duration ({e})", v.value),
                    Some("write a number with a unit, e.g. `30s`, `5m`, `2h`".into()),
                );
                None
            }
        }
    }

    fn plugin(&mut self, loc: Location, name: &str, want: PluginKind, what: &str) {
        let Some(plugins) = self.plugins else { return };
        match plugins.get(name) {
            Some(kind) if *kind == want => {}
            Some(kind) => self.at(
                loc,
                format!(
                    "{what}: plugin `{name}` has kind `{}`, but this needs kind `{}`",
                    kind.as_str(),
                    want.as_str()
                ),
                None,
            ),
            None => {
                let same_kind = plugins
                    .iter()
                    .filter(|(_, k)| **k == want)
                    .map(|(n, _)| n.as_str());
                let help = did_you_mean(name, same_kind.clone()).or_else(|| {
                    let names: Vec<_> = same_kind.map(|n| format!("`{n}`")).collect();
                    (!names.is_empty()).then(|| {
                        format!("installed {} plugins: {}", want.as_str(), names.join(", "))
                    })
                });
                self.at(loc, format!("{what}: no plugin named `{name}`"), help);
            }
        }
    }

    fn recipe(&mut self, raw: RecipeFile) -> Recipe {
        if !valid_name(&raw.name.value) {
            self.at(
                raw.name.referenced,
                format!("`{}` is not a valid recipe name", raw.name.value),
                Some("use letters, digits, `-` and `_`, starting with a letter or digit".into()),
            );
        }
        let inputs = self.inputs(&raw.inputs);
        let steps = self.steps(raw.steps, &inputs);
        let step_ids: BTreeSet<String> = steps.iter().map(|s| s.id.clone()).collect();
        let mut outputs = BTreeMap::new();
        for (name, text) in &raw.outputs {
            let scope = RefScope {
                inputs: &inputs,
                steps: &step_ids,
                step_needs: None,
                event: false,
            };
            if let Some(t) = self.template(&format!("outputs.{name}"), text, &scope) {
                outputs.insert(name.clone(), t);
            }
        }
        let on = raw.on.unwrap_or_default();
        let schedules = on
            .schedule
            .into_iter()
            .filter_map(|s| self.schedule(s, &inputs))
            .collect();
        let events = on
            .event
            .into_iter()
            .filter_map(|e| self.event(e, &inputs))
            .collect();
        let mut webhooks = Vec::new();
        for w in on.webhook {
            let path = w.path.value.trim_matches('/').to_owned();
            let ok = !path.is_empty()
                && path.split('/').all(|seg| {
                    !seg.is_empty()
                        && seg
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                });
            if ok {
                webhooks.push(path);
            } else {
                self.at(
                    w.path.referenced,
                    format!("webhook path `{}` is not valid", w.path.value),
                    Some("use segments of letters, digits, `-` and `_` joined by `/`, e.g. `github/push`".into()),
                );
            }
        }
        Recipe {
            file: self.file.to_owned(),
            source: self.text.into(),
            version: super::version_of(self.text),
            name: raw.name.value,
            description: raw.description.unwrap_or_default(),
            inputs,
            steps,
            outputs,
            schedules,
            events,
            webhooks,
        }
    }

    fn inputs(&mut self, raw: &BTreeMap<String, format::InputSpec>) -> BTreeMap<String, Input> {
        let mut out = BTreeMap::new();
        for (name, spec) in raw {
            let values = spec.values.as_ref().map(|v| v.value.clone());
            match (spec.kind, &spec.values) {
                (InputType::Enum, None) => self.at(
                    self.key_location(name),
                    format!("input `{name}` is an enum without `values`"),
                    Some("list the allowed values: `values: [a, b]`".into()),
                ),
                (InputType::Enum, Some(v)) if v.value.is_empty() => self.at(
                    v.referenced,
                    format!("input `{name}`: `values` is empty"),
                    None,
                ),
                (kind, Some(v)) if kind != InputType::Enum => self.at(
                    v.referenced,
                    format!("input `{name}`: `values` only applies to `type: enum`"),
                    Some("use `type: enum`, or remove `values`".into()),
                ),
                _ => {}
            }
            if let Some(default) = &spec.default
                && let Err(why) = check_value(spec.kind, values.as_deref(), &default.value)
            {
                self.at(
                    default.referenced,
                    format!("input `{name}`: the default {why}"),
                    None,
                );
            }
            out.insert(
                name.clone(),
                Input {
                    kind: spec.kind,
                    description: spec.description.clone().unwrap_or_default(),
                    required: spec.required,
                    default: spec.default.as_ref().map(|d| d.value.clone()),
                    values: values.unwrap_or_default(),
                },
            );
        }
        out
    }

    /// The key `key` of the value at `loc`: its last occurrence before the value.
    fn key_before(&self, loc: Location, key: &str) -> Pos {
        loc.span()
            .byte_offset()
            .and_then(|end| self.text.get(..end as usize)?.rfind(key))
            .map_or_else(
                || loc.into(),
                |offset| {
                    let (line, column) = line_col(self.text, offset);
                    Pos(line, column)
                },
            )
    }

    /// Where a mapping key appears (best effort: its first occurrence as `key:`).
    fn key_location(&self, key: &str) -> Pos {
        let needle = format!("{key}:");
        match self.text.find(&needle) {
            Some(offset) => {
                let (line, column) = line_col(self.text, offset);
                Pos(line, column)
            }
            None => Pos(1, 1),
        }
    }

    fn steps(&mut self, raw: Vec<format::StepSpec>, inputs: &BTreeMap<String, Input>) -> Vec<Step> {
        // Ids first: `needs` and references may point forward.
        let mut first_at: HashMap<String, Location> = HashMap::new();
        for s in &raw {
            if !valid_name(&s.id.value) {
                self.at(
                    s.id.referenced,
                    format!("`{}` is not a valid step id", s.id.value),
                    Some("use letters, digits, `-` and `_`".into()),
                );
            }
            if let Some(first) = first_at.get(&s.id.value) {
                let help = format!(
                    "the first step `{}` is at line {}",
                    s.id.value,
                    first.line()
                );
                self.at(
                    s.id.referenced,
                    format!("step id `{}` is used twice", s.id.value),
                    Some(help),
                );
            } else {
                first_at.insert(s.id.value.clone(), s.id.referenced);
            }
        }
        let ids: BTreeSet<String> = first_at.keys().cloned().collect();
        let mut needs_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in &raw {
            let mut needs = Vec::new();
            for n in &s.needs {
                if n.value == s.id.value {
                    self.at(
                        n.referenced,
                        format!("step `{}` needs itself", n.value),
                        None,
                    );
                } else if !ids.contains(&n.value) {
                    let help = did_you_mean(&n.value, ids.iter().map(String::as_str));
                    self.at(
                        n.referenced,
                        format!(
                            "step `{}` needs `{}`, which is not a step of this recipe",
                            s.id.value, n.value
                        ),
                        help,
                    );
                } else {
                    needs.push(n.value.clone());
                }
            }
            needs_of.entry(s.id.value.clone()).or_insert(needs);
        }
        if let Some(cycle) = find_cycle(&needs_of) {
            let loc = first_at[&cycle[0]];
            self.at(
                loc,
                format!("the steps' `needs` form a cycle: {}", cycle.join(" → ")),
                Some("remove one of these `needs` so that the steps can run in order".into()),
            );
        }
        let ancestors = ancestors(&needs_of);
        let mut steps = Vec::new();
        for s in raw {
            let id = s.id.value.clone();
            let scope = RefScope {
                inputs,
                steps: &ids,
                step_needs: Some((&id, ancestors.get(&id))),
                event: false,
            };
            let prompt = self.template(&format!("step `{id}` prompt"), &s.prompt, &scope);
            let role = s
                .role
                .as_ref()
                .and_then(|r| self.template(&format!("step `{id}` role"), r, &scope));
            let condition = s
                .condition
                .as_ref()
                .and_then(|c| self.condition(&id, c, &scope));
            self.plugin(
                s.agent.referenced,
                s.agent.value.plugin(),
                PluginKind::AgentAdapter,
                &format!("step `{id}` agent"),
            );
            let timeout = self
                .duration("timeout", &s.timeout)
                .unwrap_or(DEFAULT_STEP_TIMEOUT);
            let retries = match &s.retries {
                None => RetryPolicy::default(),
                Some(r) => RetryPolicy {
                    max: r.max,
                    backoff: self
                        .duration("backoff", &r.backoff)
                        .unwrap_or(DEFAULT_BACKOFF),
                    max_backoff: self
                        .duration("max_backoff", &r.max_backoff)
                        .unwrap_or(DEFAULT_MAX_BACKOFF),
                },
            };
            let verify = s
                .verify
                .as_ref()
                .and_then(|v| self.verify(&id, v, s.id.referenced));
            let (plugin, config) = match s.agent.value {
                AgentSpec::Name(name) => (name, serde_json::Map::new()),
                AgentSpec::Full(full) => (full.plugin, full.config),
            };
            steps.push(Step {
                id: id.clone(),
                plugin,
                config: Value::Object(config),
                role,
                prompt: prompt.unwrap_or_else(|| Template::parse("").expect("empty template")),
                needs: needs_of.remove(&id).unwrap_or_default(),
                timeout,
                retries,
                condition,
                verify,
            });
        }
        steps
    }

    fn verify(&mut self, id: &str, v: &format::Verify, step_at: Location) -> Option<VerifyRule> {
        if v.contains.is_none() && v.matches.is_none() {
            self.at(
                step_at,
                format!("step `{id}`: `verify` needs `contains` or `matches`"),
                None,
            );
            return None;
        }
        let matches = match &v.matches {
            None => None,
            Some(m) => match regex::Regex::new(&m.value) {
                Ok(r) => Some(r),
                Err(e) => {
                    let first = e.to_string();
                    let detail = first.lines().last().unwrap_or_default().trim();
                    let detail = detail.trim_start_matches("error: ");
                    self.at(
                        m.referenced,
                        format!("step `{id}`: `verify.matches` is not a valid regular expression: {detail}"),
                        None,
                    );
                    return None;
                }
            },
        };
        Some(VerifyRule {
            contains: v.contains.clone(),
            matches,
        })
    }

    fn template(
        &mut self,
        what: &str,
        text: &Spanned<String>,
        scope: &RefScope,
    ) -> Option<Template> {
        let parsed = Template::parse(&text.value).map_err(|e| (e.offset, e.message));
        self.parsed(what, text, scope, parsed, |t| t.references().collect())
    }

    fn condition(
        &mut self,
        id: &str,
        text: &Spanned<String>,
        scope: &RefScope,
    ) -> Option<Condition> {
        let parsed = Condition::parse(&text.value).map_err(|e| (e.offset, e.message));
        self.parsed(&format!("step `{id}` if"), text, scope, parsed, |c| {
            c.references()
        })
    }

    /// Report a parse error (at its place in the text) or each reference `scope` does
    /// not allow; the parsed value only when there was neither.
    fn parsed<T>(
        &mut self,
        what: &str,
        text: &Spanned<String>,
        scope: &RefScope,
        parsed: Result<T, (usize, String)>,
        references: impl Fn(&T) -> Vec<&Reference>,
    ) -> Option<T> {
        match parsed {
            Ok(value) => {
                let mut ok = true;
                for r in references(&value) {
                    if let Some((message, help)) = scope.problem(r) {
                        ok = false;
                        let message = format!("{what}: {message}");
                        self.within(text.referenced, &r.to_string(), message, help);
                    }
                }
                ok.then_some(value)
            }
            Err((offset, message)) => {
                // The rest of the line from the error, to find it in the source.
                let rest = text.value[offset..].lines().next().unwrap_or_default();
                let needle = if rest.is_empty() { &text.value } else { rest };
                let needle = needle.to_owned();
                self.within(text.referenced, &needle, format!("{what}: {message}"), None);
                None
            }
        }
    }

    /// Inputs given by an automation: each must be declared; with `complete`, every
    /// required input without a default must be given.
    fn automation_inputs(
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

    fn schedule(
        &mut self,
        s: format::ScheduleSpec,
        inputs: &BTreeMap<String, Input>,
    ) -> Option<Schedule> {
        let zone = s.timezone.as_ref().map(|z| z.value.as_str());
        let cron = match CronSchedule::parse(&s.cron.value, zone) {
            Ok(c) => Some(c),
            Err(e @ super::schedule::ScheduleError::Zone(_)) => {
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

    fn event(
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

/// What references may point at, from one template.
struct RefScope<'a> {
    inputs: &'a BTreeMap<String, Input>,
    steps: &'a BTreeSet<String>,
    /// In a step: its id and the steps it needs, directly or not.
    step_needs: Option<(&'a str, Option<&'a BTreeSet<String>>)>,
    /// `event.*` is available (an event automation's inputs).
    event: bool,
}

impl RefScope<'_> {
    fn problem(&self, r: &Reference) -> Option<(String, Option<String>)> {
        match r {
            Reference::Input(name) if !self.inputs.contains_key(name) => Some((
                format!("`{r}` refers to an input the recipe does not declare"),
                did_you_mean(name, self.inputs.keys().map(String::as_str)).or_else(|| {
                    Some(format!(
                        "declare it under `inputs:`, e.g. `{name}: {{ type: string }}`"
                    ))
                }),
            )),
            Reference::StepOutput(id) if !self.steps.contains(id) => Some((
                format!("`{r}` refers to a step the recipe does not have"),
                did_you_mean(id, self.steps.iter().map(String::as_str)),
            )),
            Reference::StepOutput(id) => match self.step_needs {
                Some((me, _)) if me == id => {
                    Some((format!("`{r}`: a step cannot use its own output"), None))
                }
                Some((me, needs)) if !needs.is_some_and(|n| n.contains(id)) => Some((
                    format!(
                        "`{r}` is used by step `{me}`, which does not need `{id}`: it may not have run yet"
                    ),
                    Some(format!("add `{id}` to the `needs` of `{me}`")),
                )),
                _ => None,
            },
            Reference::Event(_) if !self.event => Some((
                format!(
                    "`{r}`: `event.*` is only available in the inputs of an `on.event` automation"
                ),
                None,
            )),
            _ => None,
        }
    }
}

/// Does `value` fit an input of `kind`? Says why not.
pub fn check_value(
    kind: InputType,
    values: Option<&[String]>,
    value: &Value,
) -> Result<(), String> {
    let ok = match kind {
        InputType::String => value.is_string(),
        InputType::Number => value.is_number(),
        InputType::Boolean => value.is_boolean(),
        InputType::Enum => value
            .as_str()
            .is_some_and(|s| values.unwrap_or_default().iter().any(|v| v == s)),
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        InputType::Enum => format!(
            "must be one of {}, not {value}",
            values
                .unwrap_or_default()
                .iter()
                .map(|v| format!("`{v}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => format!("must be a {}, not {value}", kind.as_str()),
    })
}

fn valid_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A cycle in `needs`, as the ids along it with the first repeated at the end.
fn find_cycle(needs: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        id: &str,
        needs: &BTreeMap<String, Vec<String>>,
        marks: &mut HashMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(id) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = path.iter().position(|p| p == id).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(id.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(id.to_owned(), Mark::Visiting);
        path.push(id.to_owned());
        for n in needs.get(id).into_iter().flatten() {
            if let Some(c) = visit(n, needs, marks, path) {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(id.to_owned(), Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    needs
        .keys()
        .find_map(|id| visit(id, needs, &mut marks, &mut Vec::new()))
}

/// For each step, every step it needs directly or through others.
fn ancestors(needs: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for id in needs.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = needs[id].iter().collect();
        while let Some(n) = stack.pop() {
            if seen.insert(n.clone()) {
                stack.extend(needs.get(n).into_iter().flatten());
            }
        }
        out.insert(id.clone(), seen);
    }
    out
}
