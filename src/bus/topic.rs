//! Topic names and NATS-style patterns: dot-separated tokens, `*` matches one token,
//! `>` (last token only) matches one or more remaining tokens.

/// Why a topic or pattern is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic is empty")]
    Empty,
    #[error("topic `{0}` is longer than 256 bytes")]
    TooLong(String),
    #[error(
        "topic `{topic}` has an empty token at position {position} (two dots, or a dot at an end)"
    )]
    EmptyToken { topic: String, position: usize },
    #[error("topic `{topic}` has `{token}`: tokens use letters, digits, '-', '_' and ':'")]
    BadToken { topic: String, token: String },
    #[error(
        "topic `{0}` has a wildcard: publish to a concrete topic (wildcards are for subscribing)"
    )]
    Wildcard(String),
    #[error("pattern `{0}` has `>` before its last token")]
    TailNotLast(String),
}

fn tokens(topic: &str) -> Result<std::str::Split<'_, char>, TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > 256 {
        return Err(TopicError::TooLong(topic.to_owned()));
    }
    Ok(topic.split('.'))
}

fn check_token(topic: &str, position: usize, token: &str) -> Result<(), TopicError> {
    if token.is_empty() {
        return Err(TopicError::EmptyToken {
            topic: topic.to_owned(),
            position,
        });
    }
    if !token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':'))
    {
        return Err(TopicError::BadToken {
            topic: topic.to_owned(),
            token: token.to_owned(),
        });
    }
    Ok(())
}

/// Check a concrete topic (what events are published to).
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    for (i, token) in tokens(topic)?.enumerate() {
        if token == "*" || token == ">" {
            return Err(TopicError::Wildcard(topic.to_owned()));
        }
        check_token(topic, i, token)?;
    }
    Ok(())
}

/// A parsed subscription pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    tokens: Vec<String>,
}

impl TopicPattern {
    pub fn parse(pattern: &str) -> Result<Self, TopicError> {
        let parts: Vec<&str> = tokens(pattern)?.collect();
        for (i, token) in parts.iter().enumerate() {
            match *token {
                "*" => {}
                ">" if i + 1 == parts.len() => {}
                ">" => return Err(TopicError::TailNotLast(pattern.to_owned())),
                _ => check_token(pattern, i, token)?,
            }
        }
        Ok(Self {
            tokens: parts.into_iter().map(str::to_owned).collect(),
        })
    }

    /// Does `topic` (a valid concrete topic) match?
    pub fn matches(&self, topic: &str) -> bool {
        let mut topic_tokens = topic.split('.');
        for (i, want) in self.tokens.iter().enumerate() {
            match (want.as_str(), topic_tokens.next()) {
                (">", Some(_)) if i + 1 == self.tokens.len() => return true,
                (_, None) => return false,
                ("*", Some(_)) => {}
                (w, Some(t)) if w == t => {}
                _ => return false,
            }
        }
        topic_tokens.next().is_none()
    }

    /// The tokens before the first wildcard, dot-joined: every topic it matches starts
    /// with them (`""` when the pattern starts with a wildcard).
    pub fn literal_prefix(&self) -> String {
        let literal = self.tokens.iter().take_while(|t| *t != "*" && *t != ">");
        literal.map(String::as_str).collect::<Vec<_>>().join(".")
    }

    /// One pattern that matches every topic some of `patterns` match, and as few others
    /// as this form allows: the pattern itself if they are all the same, else their
    /// shared leading literal tokens then `>`. `None` when there are none.
    pub fn covering<'a>(patterns: impl IntoIterator<Item = &'a TopicPattern>) -> Option<Self> {
        let patterns: Vec<&TopicPattern> = patterns.into_iter().collect();
        let first = *patterns.first()?;
        if patterns.iter().all(|p| *p == first) {
            return Some(first.clone());
        }
        let shortest = patterns.iter().map(|p| p.tokens.len()).min().unwrap_or(0);
        // `>` needs a token of its own, so at least one is left for it.
        let shared = (0..shortest.saturating_sub(1))
            .take_while(|&i| {
                let t = &first.tokens[i];
                t != "*" && t != ">" && patterns.iter().all(|p| p.tokens[i] == *t)
            })
            .count();
        let mut tokens = first.tokens[..shared].to_vec();
        tokens.push(">".into());
        Some(Self { tokens })
    }
}

impl std::fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.tokens.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        TopicPattern::parse(p).unwrap().matches(t)
    }

    #[test]
    fn a_covering_pattern_matches_what_each_pattern_matches() {
        let cover = |ps: &[&str]| {
            let ps: Vec<_> = ps.iter().map(|p| TopicPattern::parse(p).unwrap()).collect();
            TopicPattern::covering(&ps).map(|p| p.to_string())
        };
        assert_eq!(cover(&[]), None);
        assert_eq!(cover(&["a.b"]), Some("a.b".into()));
        assert_eq!(cover(&["a.*.c", "a.*.c"]), Some("a.*.c".into()));
        assert_eq!(cover(&["a.b", "a.c"]), Some("a.>".into()));
        assert_eq!(cover(&["a.b", "a.b.c"]), Some("a.>".into()));
        assert_eq!(cover(&["a.b.c.d", "a.b.c.e"]), Some("a.b.c.>".into()));
        assert_eq!(cover(&["a.*", "a.b"]), Some("a.>".into()));
        assert_eq!(cover(&["a.>", "a.b.>"]), Some("a.>".into()));
        assert_eq!(cover(&["a.b", "c.d"]), Some(">".into()));
        assert_eq!(cover(&["*.b", "a.b"]), Some(">".into()));
        assert_eq!(cover(&[">", "a"]), Some(">".into()));
        for (ps, topic) in [(["a.b", "a.b.c"], "a.b"), (["a.b", "a.b.c"], "a.b.c")] {
            let ps: Vec<_> = ps.iter().map(|p| TopicPattern::parse(p).unwrap()).collect();
            assert!(TopicPattern::covering(&ps).unwrap().matches(topic));
        }
    }

    #[test]
    fn wildcards() {
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "a.b.c"));
        assert!(!m("a.b.c", "a.b"));
        assert!(m("a.*", "a.b"));
        assert!(!m("a.*", "a.b.c"));
        assert!(m("a.*.c", "a.x.c"));
        assert!(m("a.>", "a.b"));
        assert!(m("a.>", "a.b.c.d"));
        assert!(!m("a.>", "a"));
        assert!(m(">", "anything.at.all"));
        assert!(m("*.*", "x.y"));
    }

    #[test]
    fn literal_prefix_stops_at_the_first_wildcard() {
        let prefix = |p: &str| TopicPattern::parse(p).unwrap().literal_prefix();
        assert_eq!(prefix("session.s1.>"), "session.s1");
        assert_eq!(prefix("a.*.c"), "a");
        assert_eq!(prefix("a.b"), "a.b");
        assert_eq!(prefix(">"), "");
    }

    #[test]
    fn rejects_bad_topics_and_patterns() {
        assert_eq!(validate_topic(""), Err(TopicError::Empty));
        assert!(matches!(
            validate_topic("a..b"),
            Err(TopicError::EmptyToken { position: 1, .. })
        ));
        assert!(matches!(
            validate_topic("a.*"),
            Err(TopicError::Wildcard(_))
        ));
        assert!(matches!(
            validate_topic("a b"),
            Err(TopicError::BadToken { .. })
        ));
        assert!(validate_topic("plugin.echo-agent.loaded").is_ok());
        assert!(matches!(
            TopicPattern::parse("a.>.b"),
            Err(TopicError::TailNotLast(_))
        ));
    }
}
