//! `/v1/recipes`: the recipes in force, with the problems of files that did not load.

use super::extract::Path;
use axum::Json;
use axum::extract::State;

use super::{ApiError, AppState};
use crate::recipes::RecipeSummary;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
}

#[utoipa::path(
    get,
    path = "/recipes",
    tag = "recipes",
    responses((status = 200, description = "Recipes in force and files that failed", body = Vec<RecipeSummary>)),
    security(("token" = ["recipes:read"]))
)]
async fn list(State(state): State<AppState>) -> Json<Vec<RecipeSummary>> {
    Json(state.recipes.list())
}

#[utoipa::path(
    get,
    path = "/recipes/{name}",
    tag = "recipes",
    params(("name" = String, Path, description = "Recipe name")),
    responses((status = 200, description = "The recipe", body = RecipeSummary)),
    security(("token" = ["recipes:read"]))
)]
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
