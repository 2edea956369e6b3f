//! API tokens (`tokens`).

use rusqlite::{OptionalExtension, params};

use super::{CachedStatements, SqliteStore};
use crate::store::{StoreError, TokenRecord, TokenStore};

const COLUMNS: &str = "id, name, hash, scopes, created_at, expires_at, revoked_at";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    let scopes: String = r.get(3)?;
    Ok(TokenRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        hash: r.get(2)?,
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

#[async_trait::async_trait]
impl TokenStore for SqliteStore {
    async fn insert_token(&self, token: TokenRecord) -> Result<(), StoreError> {
        self.write(move |c| {
            c.exec(
                &format!("INSERT INTO tokens ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                params![
                    token.id,
                    token.name,
                    token.hash,
                    serde_json::to_string(&token.scopes).unwrap_or_default(),
                    token.created_at,
                    token.expires_at,
                    token.revoked_at,
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM tokens ORDER BY id"))?;
            let rows = stmt.query_map([], token_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn revoke_token(&self, id: &str, at: String) -> Result<Option<TokenRecord>, StoreError> {
        let id = id.to_owned();
        self.write(move |c| {
            c.exec(
                "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, at],
            )?;
            Ok(
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1"))?
                    .query_row(params![id], token_row)
                    .optional()?,
            )
        })
        .await
    }
}
