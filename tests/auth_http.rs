//! Tokens and scopes over real HTTP: every operation of the served OpenAPI document
//! refuses a missing, wrong-scope, expired and revoked token, and takes the right one;
//! the CLI makes, lists and revokes tokens; a first start writes an admin token.

mod util;

use std::time::Duration;

use serde_json::{Value, json};
use util::Server;

/// Send `method path` with `token` (none: no header); the status and error code.
async fn call(server: &Server, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", server.url);
    let mut req = client.request(method.parse().unwrap(), url);
    if method != "GET" && method != "DELETE" {
        req = req.json(&json!({}));
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    // Headers are enough: an SSE route's body never ends.
    let r = tokio::time::timeout(Duration::from_secs(10), req.send())
        .await
        .unwrap_or_else(|_| panic!("{method} {path} did not answer"))
        .unwrap();
    let status = r.status().as_u16();
    let code = if status == 401 || status == 403 {
        let body: Value = r.json().await.unwrap_or_default();
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    } else {
        String::new()
    };
    (status, code)
}

#[tokio::test]
async fn every_route_refuses_missing_wrong_scope_expired_and_revoked_tokens() {
    let server = Server::start(&[]).await;
    let (status, doc) = server.get("/v1/openapi.json").await;
    assert_eq!(status, 200);

    let (expired, _) = server.token(&["admin"], Some("1s")).await;
    let (revoked, revoked_id) = server.token(&["admin"], None).await;
    server.revoke(&revoked_id).await;
    // Two narrow tokens: each route is called with one that lacks its scope.
    let (metrics_only, _) = server.token(&["metrics:read"], None).await;
    let (bus_only, _) = server.token(&["bus:read"], None).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let mut public = Vec::new();
    let mut checked = 0;
    let param = regex::Regex::new(r"\{[^}]+\}").unwrap();
    for (template, item) in doc["paths"].as_object().unwrap() {
        // Any value fills a path parameter: refusal comes before the handler.
        let path = param.replace_all(template, "x").into_owned();
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let security = op["security"]
                .as_array()
                .expect("every operation declares security");
            if security.iter().any(|r| r.as_object().unwrap().is_empty()) {
                public.push(template.clone());
                assert_eq!(call(&server, &method, &path, None).await.0, 200);
                continue;
            }
            let needed: Vec<&str> = security
                .iter()
                .flat_map(|r| r["token"].as_array().unwrap())
                .map(|s| s.as_str().unwrap())
                .collect();
            let what = format!("{method} {template} (needs {needed:?})");
            assert_eq!(
                call(&server, &method, &path, None).await,
                (401, "unauthorized".into()),
                "{what}"
            );
            assert_eq!(
                call(&server, &method, &path, Some("sy_nope_nope")).await,
                (401, "invalid_token".into()),
                "{what}"
            );
            assert_eq!(
                call(&server, &method, &path, Some(&expired)).await,
                (401, "token_expired".into()),
                "{what}"
            );
            assert_eq!(
                call(&server, &method, &path, Some(&revoked)).await,
                (401, "token_revoked".into()),
                "{what}"
            );
            if !needed.is_empty() {
                let wrong = if needed.contains(&"metrics:read") {
                    &bus_only
                } else {
                    &metrics_only
                };
                assert_eq!(
                    call(&server, &method, &path, Some(wrong)).await,
                    (403, "forbidden".into()),
                    "{what}"
                );
            }
            // A token with exactly the declared scopes passes the check.
            let right = if needed.is_empty() {
                bus_only.clone()
            } else {
                server.token(&needed, None).await.0
            };
            let (status, _) = call(&server, &method, &path, Some(&right)).await;
            assert!(
                status != 401 && status != 403,
                "{what}: {status} with the right scope"
            );
            checked += 1;
        }
    }
    assert_eq!(public, ["/healthz"], "only /healthz is open");
    assert!(checked >= 40, "only {checked} operations in the document");
}

#[tokio::test]
async fn the_cli_makes_lists_and_revokes_tokens_and_secrets_are_stored_hashed() {
    let server = Server::start(&[]).await;
    let out = server.cli(&[
        "token",
        "create",
        "--name",
        "worker-1",
        "--scope",
        "queues:work,queues:read",
        "--ttl",
        "1h",
    ]);
    assert!(out.status.success(), "{out:?}");
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(secret.starts_with("sy_"), "{secret}");

    // The token does what its scopes say, and nothing else.
    let claim = server.cli_as(&secret, &["queue", "claim", "jobs"]);
    assert!(claim.status.success(), "{claim:?}");
    let push = server.cli_as(&secret, &["queue", "push", "jobs", "{}"]);
    assert!(!push.status.success());
    let err = String::from_utf8_lossy(&push.stderr);
    assert!(err.contains("403") && err.contains("queues:write"), "{err}");

    let list = server.cli(&["token", "list"]);
    let listing = String::from_utf8(list.stdout).unwrap();
    let line = listing
        .lines()
        .find(|l| l.contains("worker-1"))
        .expect(&listing);
    assert!(
        line.contains("active") && line.contains("queues:work,queues:read"),
        "{line}"
    );
    assert!(
        !listing.contains(&secret[30..]),
        "a listing never shows a secret"
    );
    let id = line.split_whitespace().next().unwrap();

    // Only a hash is on disk.
    let db = std::fs::read(server.data_dir.path().join("switchyard.db")).unwrap();
    let wal = std::fs::read(server.data_dir.path().join("switchyard.db-wal")).unwrap_or_default();
    let secret_part = secret.rsplit('_').next().unwrap().as_bytes();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(secret_part.len()).any(|w| w == secret_part));
    }

    let revoke = server.cli(&["token", "revoke", id]);
    assert!(revoke.status.success(), "{revoke:?}");
    let claim = server.cli_as(&secret, &["queue", "claim", "jobs"]);
    let err = String::from_utf8_lossy(&claim.stderr);
    assert!(err.contains("401") && err.contains("revoked"), "{err}");

    // Unknown scopes are refused with the nearest one named.
    let bad = server.cli(&["token", "create", "--scope", "queue:work"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("did you mean `queues:work`"), "{err}");
}

#[tokio::test]
async fn a_first_start_without_an_admin_token_makes_one_and_keeps_it_private() {
    let server = Server::start_with_env(&[], &[("SWITCHYARD_ADMIN_TOKEN", None)]).await;
    let path = server.data_dir.path().join("admin-token");
    let token = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        call(&server, "GET", "/readyz", Some(util::ADMIN_TOKEN))
            .await
            .0,
        401
    );
    let mut ready = false;
    for _ in 0..200 {
        if call(&server, "GET", "/readyz", Some(&token)).await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready);
    // A restart does not make another.
    let server = server.restart().await;
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), token);
    assert_eq!(
        call(&server, "GET", "/v1/tokens", Some(&token)).await.0,
        200
    );
}
