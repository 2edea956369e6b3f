//! API tokens, stored as hashes of their secrets.

use super::StoreError;

/// An API token as stored: a hash of its secret, never the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret part.
    pub hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// API tokens.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_token(&self, token: TokenRecord) -> Result<(), StoreError>;
    /// Every token, revoked and expired ones too, oldest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Mark token `id` revoked at `at` (once); the record after, `None` if unknown.
    async fn revoke_token(&self, id: &str, at: String) -> Result<Option<TokenRecord>, StoreError>;
}
