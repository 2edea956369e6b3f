//! The first pass: serde reads the YAML into `format` types; an error there is one
//! problem, at its location, with the nearest valid name for a misspelling.

use std::path::Path;

use super::Problem;

/// A serde error as a problem: its location, a message without the YAML snippet, and
/// for an unknown field or variant the nearest expected name.
pub(super) fn parse_problem(file: &Path, e: &serde_saphyr::Error) -> Problem {
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
pub(super) fn unknown_name_help(message: &str) -> Option<String> {
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

pub(super) fn did_you_mean<'a>(
    given: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<String> {
    nearest(given, candidates).map(|n| format!("did you mean `{n}`?"))
}
