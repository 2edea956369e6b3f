//! A recipe's typed inputs: their declarations, and a given value checked against one
//! (the same check a run's inputs get).

use std::collections::BTreeMap;

use serde_json::Value;

use super::Checker;
use crate::recipes::Input;
use crate::recipes::format::{self, InputType};

impl Checker<'_> {
    pub(super) fn inputs(
        &mut self,
        raw: &BTreeMap<String, format::InputSpec>,
    ) -> BTreeMap<String, Input> {
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
