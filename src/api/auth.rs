//! Every request but the public ones carries a bearer token with the scope its route
//! needs ([`super::openapi::RouteScopes`]); otherwise 401 (no valid token) or 403
//! (valid, but not allowed).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::openapi::{Needed, RouteScopes};
use crate::auth::{AuthError, Principal, Tokens, scope};

#[derive(Clone)]
pub struct Guard {
    pub tokens: Tokens,
    pub routes: Arc<RouteScopes>,
}

pub async fn authorize(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    let matched = super::matched_route(&req);
    let needed = match guard.routes.needed(req.method(), &matched) {
        Needed::Nothing => return next.run(req).await,
        Needed::Scopes(s) => s,
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let principal = match presented {
        None => Err(AuthError::Missing),
        Some(token) => guard.tokens.verify(token),
    };
    match principal.and_then(|p| require(&p, &needed).map(|()| p)) {
        Ok(p) => {
            req.extensions_mut().insert::<Principal>(p);
            next.run(req).await
        }
        Err(e) => refuse(e),
    }
}

/// Whether `principal` holds the scopes `needed`; `Forbidden`, naming both, if not.
pub fn require(principal: &Principal, needed: &[String]) -> Result<(), AuthError> {
    if scope::allows(&principal.scopes, needed) {
        return Ok(());
    }
    let list = |scopes: &[String]| {
        scopes
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(AuthError::Forbidden {
        needed: list(needed),
        held: list(&principal.scopes),
    })
}

fn refuse(e: AuthError) -> Response {
    let refused = refusal(e);
    let status = refused.status;
    let mut response = refused.into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// The error a request (or a socket's message) is refused with.
pub fn refusal(e: AuthError) -> ApiError {
    let (status, code) = match &e {
        AuthError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
        AuthError::Missing => (StatusCode::UNAUTHORIZED, "unauthorized"),
        AuthError::Invalid => (StatusCode::UNAUTHORIZED, "invalid_token"),
        AuthError::Expired(_) => (StatusCode::UNAUTHORIZED, "token_expired"),
        AuthError::Revoked(_) => (StatusCode::UNAUTHORIZED, "token_revoked"),
    };
    ApiError::new(status, code, e.to_string())
}
