//! The recipe file format (`recipes/*.yaml`) as written: what serde reads, with the
//! source location of every value a later check may need to point at.
//!
//! These types are also the source of the JSON Schema shipped for editors
//! (`recipes/recipe.schema.json`, see `switchyard recipe schema`), so a field added here
//! is autocompleted without a second edit. Meaning (references, the DAG, cron, plugins)
//! is checked in [`super::check`], not here.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

/// A recipe: typed inputs, steps run by agents (a DAG), outputs, and optionally the
/// automations that start it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Switchyard recipe")]
pub struct RecipeFile {
    /// Unique name of the recipe: letters, digits, `-` and `_`. Runs are started by it.
    #[schemars(with = "String", regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"))]
    pub name: Spanned<String>,
    /// What the recipe does, shown in `recipe list`.
    #[serde(default)]
    pub description: Option<String>,
    /// Named, typed inputs, available to templates as `inputs.<name>`.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputSpec>,
    /// The steps. Each runs in a session of its own; steps without `needs` between them
    /// run in parallel.
    #[schemars(length(min = 1))]
    pub steps: Vec<StepSpec>,
    /// Named results of the run: templates over `inputs.*` and `steps.<id>.output`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub outputs: BTreeMap<String, Spanned<String>>,
    /// Automations: when the recipe starts by itself.
    #[serde(default, rename = "on")]
    pub on: Option<Automations>,
}

/// The type of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    String,
    Number,
    Boolean,
    /// One of `values`.
    Enum,
}

impl InputType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Enum => "enum",
        }
    }
}

/// One input of a recipe.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    #[serde(rename = "type")]
    pub kind: InputType,
    #[serde(default)]
    pub description: Option<String>,
    /// A run must give this input (unless it has a `default`).
    #[serde(default)]
    pub required: bool,
    /// Used when a run does not give the input; must have the input's type.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub default: Option<Spanned<Value>>,
    /// The allowed values of an `enum` input.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub values: Option<Spanned<Vec<String>>>,
}

/// One step: a prompt for an agent, run in its own session.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Unique within the recipe; other steps refer to it in `needs` and as
    /// `steps.<id>.output`.
    #[schemars(with = "String", regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"))]
    pub id: Spanned<String>,
    /// The agent adapter plugin, by name, or `{plugin, config}`.
    #[schemars(with = "AgentSpec")]
    pub agent: Spanned<AgentSpec>,
    /// System text for the agent (a template).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub role: Option<Spanned<String>>,
    /// What the agent is asked (a template over `inputs.*` and `steps.<id>.output`).
    #[schemars(with = "String")]
    pub prompt: Spanned<String>,
    /// Steps that must succeed before this one starts.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub needs: Vec<Spanned<String>>,
    /// Longest time the step may take, e.g. `90s`, `5m` (default 10m).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Retry a failed step.
    #[serde(default)]
    pub retries: Option<Retries>,
    /// Run the step only when this condition holds, e.g.
    /// `inputs.language == 'rust'`, `steps.review.output contains 'LGTM'`, `not inputs.dry_run`.
    #[serde(default, rename = "if")]
    #[schemars(with = "Option<String>")]
    pub condition: Option<Spanned<String>>,
    /// The output must pass this check, or the step fails (and may be retried).
    #[serde(default)]
    pub verify: Option<Verify>,
}

/// Which adapter runs a step, and its configuration.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(untagged)]
pub enum AgentSpec {
    /// Just the plugin name; its configuration from switchyard.toml.
    Name(String),
    Full(AgentFull),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentFull {
    /// An `agent-adapter` plugin.
    pub plugin: String,
    /// Per-session configuration handed to the adapter (e.g. `model`).
    #[serde(default)]
    pub config: serde_json::Map<String, Value>,
}

impl AgentSpec {
    pub fn plugin(&self) -> &str {
        match self {
            Self::Name(name) => name,
            Self::Full(full) => &full.plugin,
        }
    }
}

impl<'de> Deserialize<'de> for AgentSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AgentSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a plugin name or a map with `plugin` and `config`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AgentSpec, E> {
                Ok(AgentSpec::Name(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<AgentSpec, A::Error> {
                AgentFull::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(AgentSpec::Full)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Retry policy: `max` more attempts, waiting `backoff`, doubled after each attempt, at
/// most `max_backoff`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// Attempts after the first.
    pub max: u32,
    /// Wait before the first retry, e.g. `5s` (default 1s).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub backoff: Option<Spanned<String>>,
    /// Longest wait between attempts (default 5m).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub max_backoff: Option<Spanned<String>>,
}

/// A check of a step's output.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// The output must contain this text.
    #[serde(default)]
    pub contains: Option<String>,
    /// The output must match this regular expression.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub matches: Option<Spanned<String>>,
}

/// The `on:` block: schedules, bus events and webhooks that start the recipe.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Automations {
    #[serde(default)]
    pub schedule: Vec<ScheduleSpec>,
    #[serde(default)]
    pub event: Vec<EventSpec>,
    #[serde(default)]
    pub webhook: Vec<WebhookSpec>,
}

/// A cron schedule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Standard crontab: `minute hour day-of-month month day-of-week` (1 = Monday,
    /// 0 and 7 = Sunday, names, ranges, steps), with an optional leading seconds field.
    #[schemars(with = "String")]
    pub cron: Spanned<String>,
    /// IANA time zone the expression is read in (default UTC), e.g. `Europe/Paris`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    /// What to do when a firing comes while the previous run is still going.
    #[serde(default)]
    pub overlap: Overlap,
    /// Firings missed while Switchyard was down.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// Only catch up firings this recent, e.g. `6h` (default: no limit).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub catch_up_window: Option<Spanned<String>>,
    /// Delay each firing by a random time up to this, e.g. `30s`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub jitter: Option<Spanned<String>>,
    /// Inputs of the runs it starts.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Value>")]
    pub inputs: BTreeMap<String, Spanned<Value>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Skip the firing (recorded as skipped).
    #[default]
    Skip,
    /// Keep one firing waiting until the running one ends.
    Queue,
    /// Start another run alongside.
    Allow,
    /// Cancel the running one, then start.
    CancelPrevious,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Missed firings are recorded as missed, not run.
    #[default]
    None,
    /// Run once for the latest missed firing.
    Latest,
    /// Run every missed firing, in order.
    All,
}

/// Start on bus events.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Topic pattern: dot-separated, `*` matches one token, `>` the rest.
    #[schemars(with = "String")]
    pub topic: Spanned<String>,
    /// A `trigger` plugin that decides whether the event starts a run and may compute
    /// its inputs.
    #[serde(default)]
    pub trigger: Option<TriggerSpec>,
    /// Inputs of the runs: templates over `event.*` (`event.data.<field>`,
    /// `event.subject`, `event.topic`).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Value>")]
    pub inputs: BTreeMap<String, Spanned<Value>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// A `trigger` plugin.
    #[schemars(with = "String")]
    pub plugin: Spanned<String>,
    /// Parameters handed to its `evaluate`.
    #[serde(default)]
    pub params: serde_json::Map<String, Value>,
}

/// Start on an HTTP request: the JSON body is the run's inputs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Path under `/v1/hooks/`, e.g. `deploy` or `github/push`.
    #[schemars(with = "String")]
    pub path: Spanned<String>,
}
