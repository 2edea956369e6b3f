//! Templates in recipes: text with `{{ reference }}` holes, where a reference is
//! `inputs.<name>`, `steps.<id>.output` or `event.<path>` (`event.topic`,
//! `event.subject`, `event.data.<field>…`). No logic in templates: conditions belong in
//! a step's `if`.

use std::fmt;

use serde_json::Value;

/// What a hole refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Input(String),
    StepOutput(String),
    /// `event.` followed by these path segments.
    Event(Vec<String>),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Input(name) => write!(f, "inputs.{name}"),
            Self::StepOutput(id) => write!(f, "steps.{id}.output"),
            Self::Event(path) => write!(f, "event.{}", path.join(".")),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Hole(Reference),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// A template that does not parse: what is wrong and at which byte of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

/// Values the holes are filled from.
pub trait Scope {
    fn lookup(&self, reference: &Reference) -> Option<Value>;
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut at = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let inner_start = open + 2;
            let Some(close) = rest[inner_start..].find("}}") else {
                return Err(TemplateError {
                    offset: at + open,
                    message: "`{{` is never closed with `}}`".into(),
                });
            };
            let inner = &rest[inner_start..inner_start + close];
            let reference = parse_reference(inner.trim()).map_err(|message| TemplateError {
                offset: at + open,
                message,
            })?;
            pieces.push(Piece::Hole(reference));
            let consumed = inner_start + close + 2;
            at += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self { pieces })
    }

    /// The references, in order.
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Hole(r) => Some(r),
            Piece::Text(_) => None,
        })
    }

    /// Fill the holes: strings as they are, other JSON values as JSON, missing as "".
    pub fn render(&self, scope: &dyn Scope) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Hole(r) => match scope.lookup(r) {
                    Some(Value::String(s)) => out.push_str(&s),
                    Some(Value::Null) | None => {}
                    Some(other) => out.push_str(&other.to_string()),
                },
            }
        }
        out
    }
}

impl Template {
    /// Like [`Template::render`], except that a template that is one hole and nothing
    /// else gives the value itself: `"{{ event.data.count }}"` stays a number.
    pub fn render_value(&self, scope: &dyn Scope) -> Value {
        match self.pieces.as_slice() {
            [Piece::Hole(r)] => scope.lookup(r).unwrap_or(Value::Null),
            _ => Value::String(self.render(scope)),
        }
    }
}

/// `inputs.x`, `steps.x.output`, `event.a.b`.
pub fn parse_reference(text: &str) -> Result<Reference, String> {
    let parts: Vec<&str> = text.split('.').collect();
    let valid = |p: &&str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if text.is_empty() {
        return Err("empty `{{ }}`: write a reference such as `inputs.name`".into());
    }
    if !parts.iter().all(valid) {
        return Err(format!(
            "`{text}` is not a reference: use `inputs.<name>`, `steps.<id>.output` or `event.<field>`"
        ));
    }
    match parts.as_slice() {
        ["inputs", name] => Ok(Reference::Input((*name).to_owned())),
        ["steps", id, "output"] => Ok(Reference::StepOutput((*id).to_owned())),
        ["steps", id] => Err(format!("`{text}`: write `steps.{id}.output`")),
        ["event", path @ ..] if !path.is_empty() => Ok(Reference::Event(
            path.iter().map(|s| (*s).to_owned()).collect(),
        )),
        _ => Err(format!(
            "`{text}` is not a reference: use `inputs.<name>`, `steps.<id>.output` or `event.<field>`"
        )),
    }
}

/// A scope from reference text (`"inputs.x"`) to value, for tests.
#[cfg(test)]
pub(crate) struct MapScope(pub std::collections::HashMap<String, Value>);

#[cfg(test)]
impl Scope for MapScope {
    fn lookup(&self, r: &Reference) -> Option<Value> {
        self.0.get(&r.to_string()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::MapScope as Map;
    use super::*;

    #[test]
    fn renders_holes() {
        let t =
            Template::parse("Review {{ inputs.diff }} after {{steps.plan.output}}: {{ inputs.n }}")
                .unwrap();
        let scope = Map(HashMap::from([
            ("inputs.diff".into(), json!("the diff")),
            ("steps.plan.output".into(), json!("the plan")),
            ("inputs.n".into(), json!(3)),
        ]));
        assert_eq!(t.render(&scope), "Review the diff after the plan: 3");
        assert_eq!(t.references().count(), 3);
    }

    #[test]
    fn names_what_is_wrong_and_where() {
        let e = Template::parse("ok {{ inputs }} x").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(e.message.contains("not a reference"), "{}", e.message);
        let e = Template::parse("a {{ inputs.x").unwrap_err();
        assert!(e.message.contains("never closed"));
        let e = Template::parse("{{ steps.plan }}").unwrap_err();
        assert!(e.message.contains("steps.plan.output"), "{}", e.message);
        assert_eq!(
            Template::parse("{{ event.data.pr.title }}")
                .unwrap()
                .references()
                .next(),
            Some(&Reference::Event(vec![
                "data".into(),
                "pr".into(),
                "title".into()
            ]))
        );
    }
}
