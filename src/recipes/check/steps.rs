//! Steps: ids, agents, durations, retries, verify rules, the `needs` DAG (no cycle,
//! no unknown step) and every reference in prompts and conditions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use serde_saphyr::Location;

use super::syntax::did_you_mean;
use super::{Checker, DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF, DEFAULT_STEP_TIMEOUT, RefScope};
use crate::plugins::PluginKind;
use crate::recipes::format::{self, AgentSpec};
use crate::recipes::template::Template;
use crate::recipes::{Input, RetryPolicy, Step, VerifyRule};

impl Checker<'_> {
    pub(super) fn steps(
        &mut self,
        raw: Vec<format::StepSpec>,
        inputs: &BTreeMap<String, Input>,
    ) -> Vec<Step> {
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

    pub(super) fn verify(
        &mut self,
        id: &str,
        v: &format::Verify,
        step_at: Location,
    ) -> Option<VerifyRule> {
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
}

pub(super) fn valid_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A cycle in `needs`, as the ids along it with the first repeated at the end.
pub(super) fn find_cycle(needs: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
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
pub(super) fn ancestors(
    needs: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, BTreeSet<String>> {
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
