//! A step's `if`: a small boolean expression over the same references as templates.
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | compare
//! compare := operand (("==" | "!=" | "contains") operand)?
//! operand := reference | 'text' | "text" | number | true | false | "(" expr ")"
//! ```
//! A lone operand is true when it is `true`, a non-empty string or a non-zero number.

use serde_json::Value;

use super::template::{Reference, Scope, parse_reference};

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Or(Box<Condition>, Box<Condition>),
    And(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
    Compare(Operand, Op, Operand),
    Truthy(Operand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Contains,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Ref(Reference),
    Literal(Value),
    Group(Box<Condition>),
}

/// A condition that does not parse: what is wrong, at which byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    pub offset: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(f64),
    Eq,
    Ne,
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ConditionError> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        let start = i;
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' | ')' => {
                out.push((start, if c == '(' { Token::Open } else { Token::Close }));
                i += 1;
            }
            '=' | '!' if bytes.get(i + 1) == Some(&b'=') => {
                out.push((start, if c == '=' { Token::Eq } else { Token::Ne }));
                i += 2;
            }
            '\'' | '"' => {
                let Some(len) = text[i + 1..].find(c) else {
                    return Err(ConditionError {
                        offset: start,
                        message: format!("text starting here is never closed with {c}"),
                    });
                };
                out.push((start, Token::Text(text[i + 1..i + 1 + len].to_owned())));
                i += len + 2;
            }
            _ if c.is_ascii_digit() || c == '-' => {
                let len = text[i..]
                    .find(|ch: char| !(ch.is_ascii_digit() || ch == '.' || ch == '-'))
                    .unwrap_or(text.len() - i);
                let n = text[i..i + len].parse().map_err(|_| ConditionError {
                    offset: start,
                    message: format!("`{}` is not a number", &text[i..i + len]),
                })?;
                out.push((start, Token::Number(n)));
                i += len;
            }
            _ if c.is_ascii_alphabetic() || c == '_' => {
                let len = text[i..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || "._-".contains(ch)))
                    .unwrap_or(text.len() - i);
                out.push((start, Token::Word(text[i..i + len].to_owned())));
                i += len;
            }
            _ => {
                return Err(ConditionError {
                    offset: start,
                    message: format!(
                        "unexpected `{c}`: use `==`, `!=`, `contains`, `and`, `or`, `not`, references and quoted text"
                    ),
                });
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(o, _)| *o)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ConditionError> {
        Err(ConditionError {
            offset: self.offset(),
            message: message.into(),
        })
    }

    fn word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(x)) if x == w)
    }

    fn expr(&mut self) -> Result<Condition, ConditionError> {
        let mut left = self.and()?;
        while self.word("or") {
            self.at += 1;
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, ConditionError> {
        let mut left = self.unary()?;
        while self.word("and") {
            self.at += 1;
            left = Condition::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Condition, ConditionError> {
        if self.word("not") {
            self.at += 1;
            return Ok(Condition::Not(Box::new(self.unary()?)));
        }
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Token::Eq) => Op::Eq,
            Some(Token::Ne) => Op::Ne,
            Some(Token::Word(w)) if w == "contains" => Op::Contains,
            _ => return Ok(Condition::Truthy(left)),
        };
        self.at += 1;
        Ok(Condition::Compare(left, op, self.operand()?))
    }

    fn operand(&mut self) -> Result<Operand, ConditionError> {
        let offset = self.offset();
        let Some(token) = self.peek().cloned() else {
            return self.error("the condition ends where a value was expected");
        };
        self.at += 1;
        Ok(match token {
            Token::Text(t) => Operand::Literal(Value::String(t)),
            Token::Number(n) => Operand::Literal(serde_json::json!(n)),
            Token::Word(w) if w == "true" || w == "false" => {
                Operand::Literal(Value::Bool(w == "true"))
            }
            Token::Word(w) => Operand::Ref(
                parse_reference(&w).map_err(|message| ConditionError { offset, message })?,
            ),
            Token::Open => {
                let inner = self.expr()?;
                if self.peek() != Some(&Token::Close) {
                    return self.error("`(` is never closed with `)`");
                }
                self.at += 1;
                Operand::Group(Box::new(inner))
            }
            Token::Close | Token::Eq | Token::Ne => {
                self.at -= 1;
                return self.error("a value was expected here");
            }
        })
    }
}

impl Condition {
    pub fn parse(text: &str) -> Result<Self, ConditionError> {
        let mut p = Parser {
            tokens: tokenize(text)?,
            at: 0,
            end: text.len(),
        };
        let c = p.expr()?;
        if p.at < p.tokens.len() {
            return p
                .error("unexpected text after the condition: join conditions with `and` / `or`");
        }
        Ok(c)
    }

    /// Every reference in the condition.
    pub fn references(&self) -> Vec<&Reference> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Reference>) {
        let operand = |o: &'a Operand, out: &mut Vec<&'a Reference>| match o {
            Operand::Ref(r) => out.push(r),
            Operand::Group(c) => c.collect(out),
            Operand::Literal(_) => {}
        };
        match self {
            Self::Or(a, b) | Self::And(a, b) => {
                a.collect(out);
                b.collect(out);
            }
            Self::Not(c) => c.collect(out),
            Self::Compare(a, _, b) => {
                operand(a, out);
                operand(b, out);
            }
            Self::Truthy(o) => operand(o, out),
        }
    }

    pub fn eval(&self, scope: &dyn Scope) -> bool {
        match self {
            Self::Or(a, b) => a.eval(scope) || b.eval(scope),
            Self::And(a, b) => a.eval(scope) && b.eval(scope),
            Self::Not(c) => !c.eval(scope),
            Self::Truthy(o) => truthy(&value(o, scope)),
            Self::Compare(a, op, b) => {
                let (a, b) = (value(a, scope), value(b, scope));
                match op {
                    Op::Eq => same(&a, &b),
                    Op::Ne => !same(&a, &b),
                    Op::Contains => text(&a).contains(&text(&b)),
                }
            }
        }
    }
}

fn value(o: &Operand, scope: &dyn Scope) -> Value {
    match o {
        Operand::Ref(r) => scope.lookup(r).unwrap_or(Value::Null),
        Operand::Literal(v) => v.clone(),
        Operand::Group(c) => Value::Bool(c.eval(scope)),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Numbers compare as numbers (`3 == 3.0`), everything else by its text.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => text(a) == text(b),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::recipes::template::MapScope as Map;

    fn eval(text: &str) -> bool {
        let scope = Map(HashMap::from([
            ("inputs.lang".into(), json!("rust")),
            ("inputs.dry_run".into(), json!(false)),
            ("inputs.n".into(), json!(3)),
            ("steps.review.output".into(), json!("Looks good. LGTM")),
        ]));
        Condition::parse(text).unwrap().eval(&scope)
    }

    #[test]
    fn evaluates() {
        assert!(eval("inputs.lang == 'rust'"));
        assert!(!eval("inputs.lang != \"rust\""));
        assert!(eval("not inputs.dry_run"));
        assert!(eval(
            "inputs.n == 3 and steps.review.output contains 'LGTM'"
        ));
        assert!(eval("inputs.dry_run or (inputs.n == 3.0)"));
        assert!(!eval("inputs.missing"));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = Condition::parse("inputs.a == ").unwrap_err();
        assert_eq!(e.offset, 12);
        let e = Condition::parse("inputs.a inputs.b").unwrap_err();
        assert_eq!(e.offset, 9);
        assert!(e.message.contains("and"), "{}", e.message);
        let e = Condition::parse("inputs.a == 'x").unwrap_err();
        assert!(e.message.contains("never closed"));
        let e = Condition::parse("input.a").unwrap_err();
        assert!(e.message.contains("not a reference"), "{}", e.message);
        let e = Condition::parse("inputs.a & 1").unwrap_err();
        assert_eq!(e.offset, 9);
    }
}
