//! The API's JSON answers checked against its own OpenAPI document (api/src/http/openapi.json):
//! every `call` of the harness goes through `check_response`, so an answer that the document
//! does not describe fails the test that got it.
//!
//! Stricter than JSON Schema where that finds drift: an object with `properties` and no
//! `additionalProperties` may hold no other key (the document must name every field sent).
//! Errors (4xx, 5xx) are checked against the shared `Error` schema, documented or not; a
//! success status the operation does not document fails.
//!
//! Hand-written for the keywords the document uses (`$ref`, `type`, `enum`, `properties`,
//! `required`, `additionalProperties`, `items`, `maxItems`, `minimum`, `maximum`, `oneOf`,
//! `format: date-time`) rather than the `jsonschema` crate, whose ~40 dependencies would
//! lengthen every test build.

use std::sync::LazyLock;

use serde_json::Value;

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../api/src/http/openapi.json")).expect("openapi.json is JSON")
});

const BASE: &str = "/api/v1";

/// Panics when `json`, the answer `status` to `method url`, is not what the document says.
pub fn check_response(method: &str, url: &str, status: u16, json: &Value) {
    let text = json.to_string();
    let body = Shown(&text);
    let path = url.split_once("://").map_or(url, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let Some(route) = path.strip_prefix(BASE) else { return };
    let operation = find_route(route).and_then(|(template, item)| Some((template, item.get(method.to_lowercase())?)));
    let Some((template, operation)) = operation else {
        // Probing a route or method that does not exist.
        assert!(matches!(status, 404 | 405), "{method} {route} answered {status} but is not in openapi.json: {body}");
        return;
    };
    let response = operation["responses"].get(status.to_string());
    let schema = match response {
        Some(response) => match response.get("content") {
            Some(content) => match content.get("application/json") {
                Some(json) => json["schema"].clone(),
                // text/calendar and the like: not JSON.
                None => return,
            },
            None => {
                assert!(
                    json == &Value::String(String::new()),
                    "{method} {template} {status}: documented without a body, got {body}"
                );
                return;
            }
        },
        None if status >= 400 => serde_json::json!({"$ref": "#/components/schemas/Error"}),
        None => panic!("{method} {template} answered {status}, which openapi.json does not document: {body}"),
    };
    if let Err(problem) = validate(&schema, json, "$") {
        panic!("{method} {template} {status}: the answer does not match openapi.json: {problem}\n{body}");
    }
}

/// The document's path item for `route` (under `/api/v1`): the match with the most literal
/// segments (`/streams/{id}` against `/streams/abc`).
pub fn find_route(route: &str) -> Option<(&'static str, &'static Value)> {
    let segments: Vec<&str> = route.trim_end_matches('/').split('/').collect();
    let paths = DOCUMENT["paths"].as_object().expect("paths");
    paths
        .iter()
        .filter_map(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            let matches = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(part, segment)| {
                    (part.starts_with('{') && part.ends_with('}') && !segment.is_empty()) || part == segment
                });
            matches.then(|| (parts.iter().filter(|p| !p.starts_with('{')).count(), template.as_str(), item))
        })
        .max_by_key(|(literal, ..)| *literal)
        .map(|(_, template, item)| (template, item))
}

fn resolve(schema: &Value) -> &Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.strip_prefix("#/components/schemas/").expect("a local schema reference");
            let target = &DOCUMENT["components"]["schemas"][name];
            assert!(!target.is_null(), "openapi.json refers to a missing schema {name}");
            resolve(target)
        }
        None => schema,
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("openapi.json uses an unknown type {other}"),
    }
}

/// `Err(where and what)` when `value` does not match `schema`.
pub fn validate(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(schema);
    if let Some(choices) = schema.get("oneOf").and_then(Value::as_array) {
        let fits: Vec<String> = choices.iter().filter_map(|choice| validate(choice, value, at).err()).collect();
        return match fits.len() < choices.len() {
            true => Ok(()),
            false => Err(format!("{at}: matches none of oneOf: {}", fits.join("; "))),
        };
    }
    if let Some(types) = schema.get("type") {
        let names: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => panic!("openapi.json: a type that is neither a string nor a list at {at}"),
        };
        if !names.iter().any(|name| type_matches(name, value)) {
            return Err(format!("{at}: {value} is not of type {types}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {}", Value::Array(allowed.clone())));
    }
    if let Some(number) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && number < min
        {
            return Err(format!("{at}: {number} is under the minimum {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && number > max
        {
            return Err(format!("{at}: {number} is over the maximum {max}"));
        }
    }
    if schema.get("format").and_then(Value::as_str) == Some("date-time")
        && let Some(text) = value.as_str()
        && chrono::DateTime::parse_from_rfc3339(text).is_err()
    {
        return Err(format!("{at}: {text:?} is not an RFC 3339 date-time"));
    }
    if let Some(items) = value.as_array() {
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            return Err(format!("{at}: {} items, at most {max}", items.len()));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(item_schema, item, &format!("{at}[{i}]"))?;
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                return Err(format!("{at}: the required {name:?} is missing"));
            }
        }
        for (key, field) in object {
            let at = format!("{at}.{key}");
            match (properties.and_then(|p| p.get(key)), schema.get("additionalProperties")) {
                (Some(property), _) => validate(property, field, &at)?,
                (None, Some(Value::Bool(true))) => {}
                (None, Some(extra @ Value::Object(_))) => validate(extra, field, &at)?,
                (None, None) if properties.is_none() => {}
                (None, _) => return Err(format!("{at}: not in the document")),
            }
        }
    }
    Ok(())
}

/// A body in a failure message: its first 1,000 characters.
struct Shown<'a>(&'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(1000) {
            Some((end, _)) => write!(f, "{}…", &self.0[..end]),
            None => f.write_str(self.0),
        }
    }
}
