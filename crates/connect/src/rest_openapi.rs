//! The OpenAPI 3 description of the Connect REST API (docs/connect-openapi.json), served at
//! `GET /openapi.json`.
//!
//! The document is kept as a file in docs/ so it can be read and used without a running worker;
//! it is compiled in, so a worker always serves the description of its own routes. The tests
//! below compare it with [`crate::rest::ROUTES`], the table the router is built from, so a route
//! added to one and not the other fails the build's tests.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The document, as shipped in docs/.
pub const OPENAPI_JSON: &str = include_str!("../../../docs/connect-openapi.json");

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::OPENAPI_JSON;
    use crate::rest::ROUTES;

    const HTTP_METHODS: &[&str] = &[
        "get", "put", "post", "delete", "patch", "head", "options", "trace",
    ];

    fn doc() -> Value {
        serde_json::from_str(OPENAPI_JSON).expect("docs/connect-openapi.json is JSON")
    }

    /// (path, method) of every operation the document describes.
    fn documented(doc: &Value) -> BTreeSet<(String, String)> {
        let paths = doc["paths"].as_object().expect("paths");
        paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("path item")
                    .keys()
                    .filter(|k| HTTP_METHODS.contains(&k.as_str()))
                    .map(move |m| (path.clone(), m.clone()))
            })
            .collect()
    }

    fn served() -> BTreeSet<(String, String)> {
        ROUTES
            .iter()
            .flat_map(|(path, methods)| methods.iter().map(|m| (path.to_string(), m.to_string())))
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_is_served() {
        let doc = doc();
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "an OpenAPI 3 document"
        );
        let documented = documented(&doc);
        let served = served();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from docs/connect-openapi.json: {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "documented but not served: {unserved:?}"
        );
        assert!(served.contains(&("/openapi.json".to_string(), "get".to_string())));
    }

    /// Follows a local `$ref`, or gives the value itself.
    fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.strip_prefix('#').expect("a local $ref");
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("$ref {r} points nowhere"))
            }
            None => v,
        }
    }

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn refs_resolve_path_parameters_are_declared_and_errors_use_the_error_body() {
        let doc = doc();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').expect("local $ref");
            assert!(doc.pointer(pointer).is_some(), "$ref {r} points nowhere");
        }
        let error = &doc["components"]["schemas"]["Error"]["properties"];
        assert!(error.get("error_code").is_some() && error.get("message").is_some());

        for (path, item) in doc["paths"].as_object().expect("paths") {
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            for (method, op) in item.as_object().expect("item") {
                let declared: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .map(|p| resolve(&doc, p))
                            .filter(|p| p["in"] == "path")
                            .filter_map(|p| p["name"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(declared, in_path, "{method} {path}: path parameters");
                for (code, resp) in op["responses"].as_object().expect("responses") {
                    if code.starts_with('4') || code.starts_with('5') {
                        let schema = &resp["content"]["application/json"]["schema"]["$ref"];
                        // /health answers 503 with its own body, as Kafka's.
                        if path != "/health" {
                            assert_eq!(
                                schema, "#/components/schemas/Error",
                                "{method} {path} {code}"
                            );
                        }
                    }
                }
            }
        }
    }
}
