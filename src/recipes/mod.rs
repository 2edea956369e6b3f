//! Recipes: work written as YAML (`recipes/*.yaml`) — typed inputs, steps run by agent
//! adapters in a DAG, outputs — and the automations that start them (`on:` schedules,
//! bus events, webhooks).
//!
//! A file becomes a [`Recipe`] only through [`check::check`], which either returns a
//! recipe whose every reference, dependency, duration, cron expression and plugin is
//! known good, or every problem with its `file:line:col`. Nothing downstream re-checks.

pub mod check;
pub mod condition;
pub mod format;
pub mod registry;
pub mod schedule;
pub mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use check::{PluginCatalog, Problem, check};
pub use format::{CatchUp, InputType, Overlap};
pub use registry::{RecipeRegistry, RecipeReload, RecipeSummary};

use crate::bus::TopicPattern;
use condition::Condition;
use schedule::CronSchedule;
use template::Template;

/// A checked recipe.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub file: PathBuf,
    /// The text it was read from: a run keeps it, to go on with this version after a
    /// restart whatever the file says by then.
    pub source: Arc<str>,
    /// Names this text: see [`version_of`].
    pub version: String,
    pub name: String,
    pub description: String,
    pub inputs: BTreeMap<String, Input>,
    /// In file order.
    pub steps: Vec<Step>,
    pub outputs: BTreeMap<String, Template>,
    pub schedules: Vec<Schedule>,
    pub events: Vec<EventTrigger>,
    /// Paths under `/v1/hooks/`.
    pub webhooks: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Input {
    pub kind: InputType,
    pub description: String,
    pub required: bool,
    pub default: Option<Value>,
    /// For `enum` inputs.
    pub values: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    /// The agent adapter plugin and the session config handed to it.
    pub plugin: String,
    pub config: Value,
    pub role: Option<Template>,
    pub prompt: Template,
    pub needs: Vec<String>,
    pub timeout: Duration,
    pub retries: RetryPolicy,
    pub condition: Option<Condition>,
    pub verify: Option<VerifyRule>,
}

/// `max` retries after the first attempt; the wait starts at `backoff` and doubles, up
/// to `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max: 0,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone)]
pub struct VerifyRule {
    pub contains: Option<String>,
    pub matches: Option<regex::Regex>,
}

impl VerifyRule {
    /// Why `output` fails the check, if it does.
    pub fn failure(&self, output: &str) -> Option<String> {
        if let Some(text) = &self.contains
            && !output.contains(text.as_str())
        {
            return Some(format!("the output does not contain `{text}`"));
        }
        if let Some(re) = &self.matches
            && !re.is_match(output)
        {
            return Some(format!("the output does not match `{}`", re.as_str()));
        }
        None
    }
}

#[derive(Debug, Clone)]
pub struct Schedule {
    /// As written, for listings.
    pub expression: String,
    pub cron: CronSchedule,
    pub overlap: Overlap,
    pub catch_up: CatchUp,
    pub catch_up_window: Option<Duration>,
    pub jitter: Option<Duration>,
    pub inputs: BTreeMap<String, Value>,
}

#[derive(Debug, Clone)]
pub struct EventTrigger {
    pub topic: TopicPattern,
    pub trigger: Option<TriggerPlugin>,
    /// Values or templates over `event.*`.
    pub inputs: BTreeMap<String, Value>,
}

#[derive(Debug, Clone)]
pub struct TriggerPlugin {
    pub plugin: String,
    pub params: Value,
}

/// Read and check the recipe file at `path`.
pub fn load(path: &Path, plugins: Option<&PluginCatalog>) -> Result<Recipe, Vec<Problem>> {
    match std::fs::read_to_string(path) {
        Ok(text) => check(path, &text, plugins),
        Err(e) => Err(vec![Problem {
            file: path.to_owned(),
            line: 1,
            column: 1,
            message: format!("cannot read the file: {e}"),
            help: None,
        }]),
    }
}

/// A recipe text's version: the first 12 hex digits of its SHA-256.
pub fn version_of(text: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..6])
}

/// Is this a recipe file by its name (`*.yaml` / `*.yml`, not hidden)? Judged by name
/// alone, so that a deleted recipe file is still recognised.
pub fn is_recipe_name(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    !hidden
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        )
}

/// An existing recipe file.
pub fn is_recipe_file(path: &Path) -> bool {
    is_recipe_name(path) && path.is_file()
}

/// The JSON Schema of the recipe format, for editors (yaml-language-server).
pub fn json_schema() -> Value {
    let schema = schemars::schema_for!(format::RecipeFile);
    serde_json::to_value(schema).expect("a JSON Schema is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_schema_is_the_generated_one() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/recipe.schema.json");
        let shipped: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            shipped == json_schema(),
            "recipes/recipe.schema.json is stale: run `switchyard recipe schema > recipes/recipe.schema.json`"
        );
    }

    #[test]
    fn verify_rule_says_why() {
        let rule = VerifyRule {
            contains: Some("LGTM".into()),
            matches: Some(regex::Regex::new("^(APPROVE|REJECT)").unwrap()),
        };
        assert_eq!(rule.failure("APPROVE, LGTM"), None);
        assert!(rule.failure("APPROVE").unwrap().contains("LGTM"));
        assert!(rule.failure("LGTM").unwrap().contains("match"));
    }
}
