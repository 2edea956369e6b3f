//! From a recipe file's text to a [`Recipe`], or to every problem found, each with
//! `file:line:col` and what to do about it.
//!
//! Two passes: serde reads the YAML into [`format`] types (a syntax or type error stops
//! there: it is reported with its location and, for a misspelt field, the nearest valid
//! name); then the meaning is checked as a whole (the `needs` DAG, references in
//! templates and conditions, inputs, durations, cron, plugins) and every problem found
//! is reported at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

mod automations;
mod inputs;
mod steps;
mod syntax;

use super::condition::Condition;
use super::format::RecipeFile;
use super::template::{Reference, Template};
use super::{Input, Recipe};
use crate::plugins::PluginKind;
use crate::plugins::manifest::line_col;
pub use inputs::check_value;
use steps::valid_name;
pub use syntax::nearest;
use syntax::{did_you_mean, parse_problem};

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
