//! `/v1/recipes`: the recipes in force, with the problems of files that did not load.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

use super::{ApiError, AppState};
use crate::recipes::RecipeSummary;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/recipes", get(list))
        .route("/recipes/{name}", get(show))
}

async fn list(State(state): State<AppState>) -> Json<Vec<RecipeSummary>> {
    Json(state.recipes.list())
}

async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<RecipeSummary>, ApiError> {
    state
        .recipes
        .summary(&name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no recipe named `{name}`")))
}
