//! `GET /api/v1/openapi.json`: the API's OpenAPI 3.1 document, hand-maintained in
//! `openapi.json` beside this file. A unit test checks it against the router's routes (every
//! route and method documented, nothing documented that is not routed), so it cannot drift.

use axum::http::header;
use axum::response::IntoResponse;

pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// (path, method) of every `.route("...", ...)` under `/api/v1` in the router's source.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
        let api = &source[source.find("let api = Router::new()").unwrap()..source.find(".fallback(").unwrap()];
        let mut routes = BTreeSet::new();
        for chunk in api.split(".route(").skip(1) {
            let chunk = chunk.trim_start();
            let path = chunk[1..].split('"').next().unwrap().to_owned();
            // Methods: `get(`, `.post(`, ... up to the route's end.
            let end = chunk.find("\n        .").unwrap_or(chunk.len());
            for method in ["get", "post", "put", "patch", "delete"] {
                let body = &chunk[..end];
                let called = body
                    .match_indices(&format!("{method}("))
                    .any(|(i, _)| i == 0 || matches!(body.as_bytes()[i - 1], b'.' | b' ' | b'\n' | b'('));
                if called {
                    routes.insert((path.clone(), method.to_owned()));
                }
            }
        }
        routes
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((path.clone(), method.clone()));
            }
        }
        let routed = routed();
        assert!(routed.len() > 20, "parsed only {routed:?}");
        assert_eq!(routed, documented);
        // Every schema reference resolves.
        let text = DOCUMENT;
        for (i, _) in text.match_indices("#/components/schemas/") {
            let name = text[i + 21..].split('"').next().unwrap();
            assert!(doc["components"]["schemas"].get(name).is_some(), "missing schema {name}");
        }
    }
}
