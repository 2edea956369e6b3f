//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! attributes, and the scopes it declares per operation, which [`super::auth`]
//! enforces: what the document says a route needs is what the route checks.

use std::collections::HashMap;

use axum::http::Method;
use serde_json::Value;
use serde_json::json;
use utoipa::openapi::OpenApi;

use super::error::ErrorBody;

/// The security scheme every operation names.
pub const SCHEME: &str = "token";

/// The served document: title, version, the bearer scheme, the error shape as every
/// operation's `default` response, and paths in OpenAPI's template syntax.
pub fn finish(doc: OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).expect("an OpenAPI document serializes");
    doc["info"] = json!({
        "title": "Switchyard",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Sessions, queues and an event bus for AI-agent work. Send \
            `Authorization: Bearer <token>`; each operation names the scope it needs. \
            Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}`.",
    });
    let mut error = schema_for::<ErrorBody>();
    error["description"] = json!("Every error response: what went wrong, and where.");
    doc["components"]["securitySchemes"][SCHEME] = json!({"type": "http", "scheme": "bearer"});
    doc["components"]["schemas"]["ErrorBody"] = error;
    let default = json!({
        "description": "An error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    });
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    let mut renamed = serde_json::Map::new();
    for (path, mut item) in paths {
        if let Some(ops) = item.as_object_mut() {
            for op in ops.values_mut() {
                op["responses"]["default"] = default.clone();
                // Handlers are named for what they do within their module (`list`,
                // `show`); the tag makes the id unique in the document.
                if let (Some(tag), Some(id)) = (op["tags"][0].as_str(), op["operationId"].as_str())
                {
                    op["operationId"] = json!(format!("{tag}_{id}"));
                }
            }
        }
        // axum's catch-all `{*path}` is OpenAPI's `{path}`.
        renamed.insert(path.replace("{*", "{"), item);
    }
    doc["paths"] = Value::Object(renamed);
    doc
}

fn schema_for<T: utoipa::PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).expect("a schema serializes")
}

/// What an operation needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Needed {
    /// No token (`security: [{}]`).
    Nothing,
    /// A valid token holding these scopes (none: any valid token).
    Scopes(Vec<String>),
}

/// Each operation's need, by method and path template.
#[derive(Debug, Default)]
pub struct RouteScopes(HashMap<(Method, String), Needed>);

impl RouteScopes {
    pub fn from_doc(doc: &Value) -> Self {
        let mut table = HashMap::new();
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, operation) in item {
                let Ok(method) = method.to_uppercase().parse::<Method>() else {
                    continue;
                };
                // An operation that declares nothing needs `admin`: forgetting to
                // declare a scope must close a route, not open it.
                let needed = match operation["security"].as_array() {
                    Some(reqs)
                        if reqs
                            .iter()
                            .any(|r| r.as_object().is_some_and(|o| o.is_empty())) =>
                    {
                        Needed::Nothing
                    }
                    Some(reqs) => Needed::Scopes(
                        reqs.iter()
                            .filter_map(|r| r[SCHEME].as_array())
                            .flatten()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect(),
                    ),
                    None => Needed::Scopes(vec!["admin".into()]),
                };
                table.insert((method, path.clone()), needed);
            }
        }
        Self(table)
    }

    /// The need of the route axum matched (`/v1/hooks/{*path}` is found as
    /// `/v1/hooks/{path}`); `admin` for a route the document does not know.
    pub fn needed(&self, method: &Method, matched: &str) -> Needed {
        let key = (method.clone(), matched.replace("{*", "{"));
        let fallback = || Needed::Scopes(vec!["admin".into()]);
        match self.0.get(&key) {
            Some(n) => n.clone(),
            // HEAD is answered by the GET route.
            None if method == Method::HEAD => self
                .0
                .get(&(Method::GET, key.1))
                .cloned()
                .unwrap_or_else(fallback),
            None => fallback(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_a_unique_id_a_scope_and_the_error_shape() {
        let doc = crate::api::openapi();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            assert!(!path.contains("{*"), "{path}");
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
                assert!(
                    op["security"].is_array(),
                    "{method} {path} declares no security"
                );
                assert_eq!(
                    op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody"
                );
            }
        }
    }

    #[test]
    fn scopes_come_from_the_document_and_unknown_routes_need_admin() {
        let routes = RouteScopes::from_doc(&crate::api::openapi());
        let scopes = |s: &[&str]| Needed::Scopes(s.iter().map(|x| x.to_string()).collect());
        assert_eq!(routes.needed(&Method::GET, "/healthz"), Needed::Nothing);
        assert_eq!(
            routes.needed(&Method::POST, "/v1/queues/{queue}/claim"),
            scopes(&["queues:work"])
        );
        assert_eq!(
            routes.needed(&Method::POST, "/v1/hooks/{*path}"),
            scopes(&["hooks:write"])
        );
        assert_eq!(
            routes.needed(&Method::HEAD, "/v1/queues"),
            scopes(&["queues:read"])
        );
        assert_eq!(
            routes.needed(&Method::GET, "/v1/nowhere"),
            scopes(&["admin"])
        );
    }
}
