//! `/v1/tokens`: make, list and revoke API tokens (scope `admin`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::duration;
use super::extract::{Body, Path};
use super::{ApiError, AppState};
use crate::auth::{Issued, TokenError, TokenInfo};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        let message = e.to_string();
        match e {
            TokenError::Invalid { field, .. } => ApiError::bad_request(message).with_field(field),
            TokenError::NotFound(_) => ApiError::not_found(message),
            TokenError::Store(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store", message)
            }
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    /// What the token is for (`ci`, `worker-3`).
    name: String,
    /// e.g. `["queues:work"]`; see `switchyard token scopes`.
    scopes: Vec<String>,
    /// Lifetime such as `30d`, `12h`; none: until revoked.
    #[serde(default)]
    ttl: Option<String>,
}

#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    request_body = CreateRequest,
    responses((status = 201, description = "The token; its secret is shown this once", body = Issued)),
    security(("token" = ["admin"]))
)]
async fn create(
    State(state): State<AppState>,
    Body(req): Body<CreateRequest>,
) -> Result<(StatusCode, Json<Issued>), ApiError> {
    let ttl = duration("ttl", req.ttl.as_deref())?;
    let issued = state.tokens.create(&req.name, req.scopes, ttl).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    responses((status = 200, description = "Every token, oldest first (never a secret)", body = TokenList)),
    security(("token" = ["admin"]))
)]
async fn list(State(state): State<AppState>) -> Json<TokenList> {
    Json(TokenList {
        tokens: state.tokens.list(),
    })
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct TokenList {
    tokens: Vec<TokenInfo>,
}

#[utoipa::path(
    post,
    path = "/tokens/{id}/revoke",
    tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, description = "The token, revoked from now on", body = TokenInfo)),
    security(("token" = ["admin"]))
)]
async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    Ok(Json(state.tokens.revoke(&id).await?))
}
