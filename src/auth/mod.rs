//! API tokens: random, shown once, stored as a SHA-256 of their secret, checked in
//! constant time. Every token is held in memory too, so a check costs a hash and a map
//! lookup, and a revocation or an expiry takes effect on the very next request.
//!
//! A token reads `sy_<id>_<secret>`: the id finds the record, the secret (32 random
//! bytes, hex) proves it. A hash without salt or stretching is right here: the secret
//! has 256 bits of entropy, nothing to guess.

pub mod scope;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{Store, StoreError, TokenRecord};

/// The environment variable that sets an admin token instead of making one.
pub const ADMIN_TOKEN_ENV: &str = "SWITCHYARD_ADMIN_TOKEN";
/// Where the first start writes the admin token it made (mode 0600), for the CLI on
/// the same machine.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// The token id of the admin token from [`ADMIN_TOKEN_ENV`] (stored ids are ULIDs).
const ENV_TOKEN_ID: &str = "env";

/// A token as the API shows it (never its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
}

/// A token just made: its secret, shown this once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Issued {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// Who made a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: String,
    pub scopes: Vec<String>,
}

/// Why a request is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("this route needs a token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the token is not valid")]
    Invalid,
    #[error("token {0} has expired")]
    Expired(String),
    #[error("token {0} has been revoked")]
    Revoked(String),
    #[error("this route needs scope {needed}; the token has {held}")]
    Forbidden { needed: String, held: String },
}

/// Why a token cannot be made or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no token {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Tokens {
    store: Store,
    by_id: Arc<RwLock<HashMap<String, TokenRecord>>>,
    /// SHA-256 of `SWITCHYARD_ADMIN_TOKEN`, if set.
    env_admin: Option<[u8; 32]>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn status(record: &TokenRecord, now: chrono::DateTime<chrono::Utc>) -> &'static str {
    if record.revoked_at.is_some() {
        "revoked"
    } else if record
        .expires_at
        .as_deref()
        .and_then(parse_time)
        .is_some_and(|at| at <= now)
    {
        "expired"
    } else {
        "active"
    }
}

fn info(record: &TokenRecord, now: chrono::DateTime<chrono::Utc>) -> TokenInfo {
    TokenInfo {
        id: record.id.clone(),
        name: record.name.clone(),
        scopes: record.scopes.clone(),
        created_at: record.created_at.clone(),
        expires_at: record.expires_at.clone(),
        revoked_at: record.revoked_at.clone(),
        status: status(record, now),
    }
}

impl Tokens {
    /// Load every token; `env_admin` (from [`ADMIN_TOKEN_ENV`]) is accepted as an
    /// admin token besides.
    pub async fn load(store: Store, env_admin: Option<&str>) -> anyhow::Result<Self> {
        if let Some(t) = env_admin
            && t.len() < 16
        {
            anyhow::bail!("{ADMIN_TOKEN_ENV} must be at least 16 characters long");
        }
        let records = store.tokens().await?;
        Ok(Self {
            store,
            by_id: Arc::new(RwLock::new(
                records.into_iter().map(|r| (r.id.clone(), r)).collect(),
            )),
            env_admin: env_admin.map(|t| sha256(t.as_bytes())),
        })
    }

    /// On a first start (no token yet, none from the environment) make an admin token
    /// and write it to `<data_dir>/admin-token`; its secret, to print once.
    pub async fn bootstrap(&self, data_dir: &Path) -> anyhow::Result<Option<(String, PathBuf)>> {
        if self.env_admin.is_some() || !self.by_id.read().unwrap().is_empty() {
            return Ok(None);
        }
        let issued = self.create("admin", vec!["admin".into()], None).await?;
        let path = data_dir.join(ADMIN_TOKEN_FILE);
        write_private(&path, &issued.token)?;
        Ok(Some((issued.token, path)))
    }

    pub async fn create(
        &self,
        name: &str,
        scopes: Vec<String>,
        ttl: Option<Duration>,
    ) -> Result<Issued, TokenError> {
        let invalid = |field, message: String| TokenError::Invalid { field, message };
        if name.trim().is_empty() || name.len() > 200 {
            return Err(invalid("name", "`name` must be 1 to 200 characters".into()));
        }
        if scopes.is_empty() {
            return Err(invalid(
                "scopes",
                "`scopes` must name at least one scope".into(),
            ));
        }
        for scope in &scopes {
            scope::check(scope).map_err(|m| invalid("scopes", format!("`scopes`: {m}")))?;
        }
        let now = chrono::Utc::now();
        let expires_at = match ttl {
            None => None,
            Some(ttl) => {
                let ttl = chrono::Duration::from_std(ttl)
                    .ok()
                    .filter(|t| *t > chrono::Duration::zero())
                    .and_then(|t| now.checked_add_signed(t))
                    .ok_or_else(|| {
                        invalid("ttl", "`ttl` must be positive and not absurd".into())
                    })?;
                Some(ttl.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            }
        };
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| StoreError::Invalid(format!("no randomness: {e}")))?;
        let secret = hex::encode(secret);
        let record = TokenRecord {
            id: ulid::Ulid::new().to_string(),
            name: name.trim().to_owned(),
            hash: sha256(secret.as_bytes()).to_vec(),
            scopes,
            created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            expires_at,
            revoked_at: None,
        };
        self.store.insert_token(record.clone()).await?;
        let token = format!("sy_{}_{secret}", record.id);
        let info = info(&record, now);
        self.by_id
            .write()
            .unwrap()
            .insert(record.id.clone(), record);
        Ok(Issued { token, info })
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Vec<TokenInfo> {
        let now = chrono::Utc::now();
        let mut all: Vec<TokenInfo> = self
            .by_id
            .read()
            .unwrap()
            .values()
            .map(|r| info(r, now))
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Revoke token `id`; from now on it is refused. Revoking twice is not an error.
    pub async fn revoke(&self, id: &str) -> Result<TokenInfo, TokenError> {
        let record = self
            .store
            .revoke_token(id, crate::time::now_rfc3339())
            .await?
            .ok_or_else(|| TokenError::NotFound(id.to_owned()))?;
        let info = info(&record, chrono::Utc::now());
        self.by_id
            .write()
            .unwrap()
            .insert(record.id.clone(), record);
        Ok(info)
    }

    /// Who `presented` (the bearer token) is, if it is valid now.
    pub fn verify(&self, presented: &str) -> Result<Principal, AuthError> {
        if let Some(env) = &self.env_admin
            && bool::from(sha256(presented.as_bytes()).ct_eq(env))
        {
            return Ok(Principal {
                token_id: ENV_TOKEN_ID.into(),
                scopes: vec!["admin".into()],
            });
        }
        let (id, secret) = presented
            .strip_prefix("sy_")
            .and_then(|rest| rest.split_once('_'))
            .ok_or(AuthError::Invalid)?;
        let by_id = self.by_id.read().unwrap();
        let record = by_id.get(id).ok_or(AuthError::Invalid)?;
        if !bool::from(sha256(secret.as_bytes()).ct_eq(&record.hash[..])) {
            return Err(AuthError::Invalid);
        }
        valid(record)?;
        Ok(Principal {
            token_id: record.id.clone(),
            scopes: record.scopes.clone(),
        })
    }

    /// Whether the token `principal` was verified with is still valid: a connection
    /// that outlives a request (a socket) asks before each message, so that expiry and
    /// revocation cut it off at once.
    pub fn recheck(&self, principal: &Principal) -> Result<(), AuthError> {
        if principal.token_id == ENV_TOKEN_ID {
            return Ok(());
        }
        let by_id = self.by_id.read().unwrap();
        valid(by_id.get(&principal.token_id).ok_or(AuthError::Invalid)?)
    }
}

fn valid(record: &TokenRecord) -> Result<(), AuthError> {
    match status(record, chrono::Utc::now()) {
        "revoked" => Err(AuthError::Revoked(record.id.clone())),
        "expired" => Err(AuthError::Expired(record.id.clone())),
        _ => Ok(()),
    }
}

/// Write `text` to `path`, readable by the owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    writeln!(file, "{text}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn tokens() -> (tempfile::TempDir, Tokens) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tokens = Tokens::load(store, None).await.unwrap();
        (dir, tokens)
    }

    #[tokio::test]
    async fn a_token_verifies_until_revoked_and_survives_a_reload() {
        let (dir, tokens) = tokens().await;
        let issued = tokens
            .create("worker", vec!["queues:work".into()], None)
            .await
            .unwrap();
        let who = tokens.verify(&issued.token).unwrap();
        assert_eq!(who.scopes, vec!["queues:work"]);
        // A wrong secret for a real id is refused. (Its last character changed: to
        // `0`, unless it was one, which made this test fail once in ~60 runs.)
        let (head, last) = issued.token.split_at(issued.token.len() - 1);
        let forged = format!("{head}{}", if last == "0" { "1" } else { "0" });
        assert_eq!(tokens.verify(&forged).unwrap_err(), AuthError::Invalid);

        let again = Tokens::load(Store::open(dir.path()).unwrap(), None)
            .await
            .unwrap();
        assert!(again.verify(&issued.token).is_ok());
        tokens.revoke(&issued.info.id).await.unwrap();
        assert!(matches!(
            tokens.verify(&issued.token),
            Err(AuthError::Revoked(_))
        ));
    }

    #[tokio::test]
    async fn expiry_takes_effect_without_a_write() {
        let (_dir, tokens) = tokens().await;
        let issued = tokens
            .create(
                "short",
                vec!["bus:read".into()],
                Some(Duration::from_millis(50)),
            )
            .await
            .unwrap();
        assert!(tokens.verify(&issued.token).is_ok());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(matches!(
            tokens.verify(&issued.token),
            Err(AuthError::Expired(_))
        ));
    }

    #[tokio::test]
    async fn bad_requests_name_the_field() {
        let (_dir, tokens) = tokens().await;
        let err = tokens
            .create("x", vec!["queue:work".into()], None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                TokenError::Invalid {
                    field: "scopes",
                    ..
                }
            ),
            "{err}"
        );
        let err = tokens.create("x", vec![], None).await.unwrap_err();
        assert!(matches!(
            err,
            TokenError::Invalid {
                field: "scopes",
                ..
            }
        ));
    }

    #[tokio::test]
    async fn first_start_writes_an_admin_token_once() {
        let (dir, tokens) = tokens().await;
        let (token, path) = tokens.bootstrap(dir.path()).await.unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), token);
        assert_eq!(tokens.verify(&token).unwrap().scopes, vec!["admin"]);
        assert!(tokens.bootstrap(dir.path()).await.unwrap().is_none());
    }
}
