//! A run's inputs: what was given, checked against the recipe's typed inputs, with
//! defaults filled in.

use serde_json::{Map, Value};

use crate::recipes::check::check_value;
use crate::recipes::{InputType, Recipe};

/// One input that is wrong: `field` is `inputs.<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputProblem {
    pub field: String,
    pub message: String,
}

/// The inputs of a run of `recipe`: every given value checked against its type, every
/// missing one defaulted, every problem reported at once. Text given for a number or a
/// boolean input (`--input count=3` on the command line) is read as one.
pub fn resolve(
    recipe: &Recipe,
    given: Map<String, Value>,
) -> Result<Map<String, Value>, Vec<InputProblem>> {
    let mut problems = Vec::new();
    let mut out = Map::new();
    for (name, value) in given {
        let field = format!("inputs.{name}");
        let Some(input) = recipe.inputs.get(&name) else {
            let known: Vec<&str> = recipe.inputs.keys().map(String::as_str).collect();
            let message = match crate::recipes::check::nearest(&name, known.iter().copied()) {
                Some(near) => format!(
                    "`{name}` is not an input of `{}`; did you mean `{near}`?",
                    recipe.name
                ),
                None if known.is_empty() => format!("`{}` takes no inputs", recipe.name),
                None => format!(
                    "`{name}` is not an input of `{}`; its inputs are {}",
                    recipe.name,
                    known.join(", ")
                ),
            };
            problems.push(InputProblem { field, message });
            continue;
        };
        let value = coerce(input.kind, value);
        match check_value(input.kind, Some(&input.values), &value) {
            Ok(()) => {
                out.insert(name, value);
            }
            Err(message) => problems.push(InputProblem { field, message }),
        }
    }
    for (name, input) in &recipe.inputs {
        if out.contains_key(name) || problems.iter().any(|p| p.field == format!("inputs.{name}")) {
            continue;
        }
        match &input.default {
            Some(default) => {
                out.insert(name.clone(), default.clone());
            }
            None if input.required => problems.push(InputProblem {
                field: format!("inputs.{name}"),
                message: format!("`{name}` is required and has no default"),
            }),
            None => {}
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Text that reads as the input's type becomes that type.
fn coerce(kind: InputType, value: Value) -> Value {
    let Value::String(text) = &value else {
        return value;
    };
    match kind {
        InputType::Number => text
            .trim()
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .unwrap_or(value),
        InputType::Boolean => match text.trim() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => value,
        },
        InputType::String | InputType::Enum => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recipe() -> Recipe {
        crate::recipes::check(
            std::path::Path::new("r.yaml"),
            r#"
name: r
inputs:
  repo: { type: string, required: true }
  depth: { type: number, default: 2 }
  strict: { type: boolean }
  mode: { type: enum, values: [quick, deep], default: quick }
steps:
  - id: a
    agent: echo-agent
    prompt: "{{ inputs.repo }}"
"#,
            None,
        )
        .unwrap()
    }

    fn given(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn fills_defaults_and_reads_text_as_the_type() {
        let inputs = resolve(
            &recipe(),
            given(json!({"repo": "x", "depth": "5", "strict": "true"})),
        )
        .unwrap();
        assert_eq!(
            Value::Object(inputs),
            json!({"repo": "x", "depth": 5, "strict": true, "mode": "quick"})
        );
    }

    #[test]
    fn reports_every_problem_by_field() {
        let problems = resolve(
            &recipe(),
            given(json!({"rpo": "x", "depth": "many", "mode": "slow"})),
        )
        .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["inputs.depth", "inputs.mode", "inputs.rpo", "inputs.repo"]
        );
        assert!(
            problems[2].message.contains("did you mean `repo`?"),
            "{problems:?}"
        );
        assert!(problems[3].message.contains("required"), "{problems:?}");
    }
}
