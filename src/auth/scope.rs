//! Scopes: what a token may do, as `area:action` (`queues:work`), or `admin` for all.

/// Every scope a token can hold. A route names the one it needs (in its OpenAPI
/// `security`); `admin` satisfies any.
pub const SCOPES: &[(&str, &str)] = &[
    ("admin", "everything, including tokens"),
    ("plugins:read", "list and show plugins"),
    ("plugins:write", "reload plugins and call their exports"),
    ("bus:read", "read and follow bus events"),
    ("bus:write", "publish bus events"),
    ("sessions:read", "list and show sessions, history, events"),
    (
        "sessions:write",
        "create, message, steer, abort, reset and delete sessions",
    ),
    ("recipes:read", "list and show recipes"),
    ("runs:read", "list, show and follow runs"),
    ("runs:write", "start and cancel runs"),
    ("automations:read", "list automations and their firings"),
    ("automations:write", "fire, pause and resume automations"),
    ("hooks:write", "deliver webhooks"),
    ("queues:read", "list queues, items and dead letters"),
    ("queues:write", "enqueue, cancel, retry and drop items"),
    ("queues:work", "claim, extend, ack and nack items"),
    ("metrics:read", "metrics and readiness"),
];

/// `scope` if it is one of [`SCOPES`]; otherwise an error naming the nearest.
pub fn check(scope: &str) -> Result<(), String> {
    if SCOPES.iter().any(|(s, _)| *s == scope) {
        return Ok(());
    }
    let nearest = SCOPES
        .iter()
        .map(|(s, _)| (strsim::jaro_winkler(s, scope), *s))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score > 0.8)
        .map(|(_, s)| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    Err(format!(
        "`{scope}` is not a scope{nearest} (see `switchyard token scopes`)"
    ))
}

/// Whether a token holding `held` may use a route that needs `needed` (an empty
/// `needed`: any valid token).
pub fn allows(held: &[String], needed: &[String]) -> bool {
    held.iter().any(|s| s == "admin") || needed.iter().all(|n| held.contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_covers_all_and_others_match_exactly() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(allows(&s(&["admin"]), &s(&["queues:work"])));
        assert!(allows(&s(&["queues:work"]), &s(&["queues:work"])));
        assert!(!allows(&s(&["queues:read"]), &s(&["queues:work"])));
        assert!(allows(&s(&["bus:read"]), &s(&[])));
    }

    #[test]
    fn unknown_scope_names_the_nearest() {
        assert!(check("queues:work").is_ok());
        let e = check("queue:work").unwrap_err();
        assert!(e.contains("did you mean `queues:work`"), "{e}");
    }
}
