//! The API's definition, `infra/openapi.yaml` (`crate::openapi`), and every
//! request checked against it before a handler reads it: an operation's
//! path, query and header parameters and its JSON body must match their
//! schemas, or the answer is the usual 400 naming each bad field. The same
//! check runs behind API Gateway and in `beacon dev`'s server (both call
//! [`crate::handle`]), so a request the definition rejects is rejected the
//! same way everywhere. (API Gateway's own request validators answer with a
//! body of their own that cannot name fields.) The handlers' domain rules
//! (a version semver accepts, a URL the URL standard parses) still apply
//! after: the definition never accepts what they refuse, and the fuzzer in
//! `tests/tests/api_fuzz.rs` holds both to that.
//!
//! The document is taken as one stack deploys it, for the function's own
//! [`ApiConfig`] ([`crate::openapi::for_stack`]).

use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::routes::Route;
use crate::{ApiConfig, ApiError, ApiRequest, FieldError};

/// Body fields with another accepted name (the seed's and Beacon's); the
/// definition requires one of each pair.
const ALIASES: &[(&str, &str)] = &[("service", "service_name"), ("version", "service_version")];

/// The document for one setting of the stack's switches
/// ([`crate::openapi::for_stack`]).
pub fn rendered(config: ApiConfig, signed_reads: bool) -> Value {
    let stack = crate::openapi::Stack { unscoped_write_routes: config.unscoped_writes, signed_reads };
    crate::openapi::for_stack(stack).unwrap_or(Value::Null)
}

/// Replaces every local `$ref` by what it points to, turns OpenAPI 3.0's
/// `nullable` into JSON Schema (null, or the schema), and reads the
/// `x-propertyNames` extension as `propertyNames` (3.0 has no rule on keys).
fn inline(value: &Value, root: &Value, depth: usize) -> Value {
    if depth > 32 {
        return Value::Null;
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref")
                && let Some(pointer) = reference.strip_prefix('#')
            {
                return root.pointer(pointer).map_or(Value::Null, |target| inline(target, root, depth + 1));
            }
            let mut out: Map<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), inline(v, root, depth + 1))).collect();
            if let Some(names) = out.remove("x-propertyNames") {
                out.insert("propertyNames".into(), names);
            }
            if out.remove("nullable") == Some(Value::Bool(true)) {
                return serde_json::json!({ "anyOf": [{ "type": "null" }, Value::Object(out)] });
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| inline(v, root, depth + 1)).collect()),
        other => other.clone(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Path,
    Query,
    Header,
}

struct Parameter {
    name: String,
    place: Place,
    required: bool,
    integer: bool,
    schema: jsonschema::Validator,
}

/// A path template's segment: a literal, or `{name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter(String),
}

struct Operation {
    method: String,
    /// The path template as the document writes it (a route's `template`).
    template: String,
    segments: Vec<Segment>,
    parameters: Vec<Parameter>,
    body: Option<(bool, jsonschema::Validator)>,
}

/// The operations of one rendering, ready to check requests.
pub struct Definition {
    operations: Vec<Operation>,
}

impl std::fmt::Debug for Definition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Definition").field("operations", &self.operations.len()).finish()
    }
}

impl Definition {
    /// Compiles the operations of a rendered definition.
    pub fn compile(document: &Value) -> Result<Self, String> {
        let mut operations = Vec::new();
        let paths = document.get("paths").and_then(Value::as_object).ok_or("the definition has no paths")?;
        for (template, item) in paths {
            let segments: Vec<Segment> = template
                .trim_start_matches('/')
                .split('/')
                .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Parameter(name.to_owned()),
                    None => Segment::Literal(s.to_owned()),
                })
                .collect();
            for (method, operation) in item.as_object().into_iter().flatten() {
                let operation = inline(operation, document, 0);
                let mut parameters = Vec::new();
                for p in operation.get("parameters").and_then(Value::as_array).into_iter().flatten() {
                    let place = match p.get("in").and_then(Value::as_str) {
                        Some("path") => Place::Path,
                        Some("query") => Place::Query,
                        Some("header") => Place::Header,
                        _ => continue,
                    };
                    let schema = p.get("schema").cloned().unwrap_or(Value::Bool(true));
                    parameters.push(Parameter {
                        name: p.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                        place,
                        required: p.get("required").and_then(Value::as_bool).unwrap_or(false),
                        integer: schema.get("type").and_then(Value::as_str) == Some("integer"),
                        schema: jsonschema::validator_for(&schema).map_err(|e| format!("{template}: {e}"))?,
                    });
                }
                let body = match operation.get("requestBody") {
                    Some(b) => {
                        let schema =
                            b.pointer("/content/application~1json/schema").cloned().unwrap_or(Value::Bool(true));
                        let required = b.get("required").and_then(Value::as_bool).unwrap_or(false);
                        Some((required, jsonschema::validator_for(&schema).map_err(|e| format!("{template}: {e}"))?))
                    }
                    None => None,
                };
                operations.push(Operation {
                    method: method.to_uppercase(),
                    template: template.clone(),
                    segments: segments.clone(),
                    parameters,
                    body,
                });
            }
        }
        Ok(Self { operations })
    }

    /// The definition for `config`, compiled once per process.
    pub fn for_config(config: ApiConfig) -> &'static Definition {
        static ON: OnceLock<Definition> = OnceLock::new();
        static OFF: OnceLock<Definition> = OnceLock::new();
        let cell = if config.unscoped_writes { &ON } else { &OFF };
        cell.get_or_init(|| {
            // The file is compiled in and checked by the tests: failing to
            // compile it is a build defect, not a request's.
            Definition::compile(&rendered(config, false)).unwrap_or(Definition { operations: Vec::new() })
        })
    }

    /// The operations, as (method, template): what the route table must
    /// hold for this rendering.
    pub fn operations(&self) -> impl Iterator<Item = (&str, &str)> {
        self.operations.iter().map(|o| (o.method.as_str(), o.template.as_str()))
    }

    /// Checks a request against its route's operation; `segments` are the
    /// path's (decoded), as the route matched them. A route the rendering
    /// does not describe (an unscoped write turned off) passes: the router
    /// answers it.
    pub fn check(&self, route: &Route, segments: &[String], req: &ApiRequest) -> Result<(), ApiError> {
        let Some(operation) = self.operations.iter().find(|o| o.method == route.method && o.template == route.template)
        else {
            return Ok(());
        };
        let mut errors = Vec::new();
        for p in &operation.parameters {
            let value = match p.place {
                Place::Path => operation
                    .segments
                    .iter()
                    .zip(segments)
                    .find_map(|(t, s)| (*t == Segment::Parameter(p.name.clone())).then(|| s.clone())),
                Place::Query => req.query.get(&p.name).cloned(),
                Place::Header if p.name.eq_ignore_ascii_case("if-none-match") => req.if_none_match.clone(),
                Place::Header => None,
            };
            let Some(text) = value else {
                if p.required {
                    errors.push(FieldError { field: p.name.clone(), message: "is required".into() });
                }
                continue;
            };
            let instance = if p.integer {
                match text.parse::<i64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => {
                        errors.push(FieldError { field: p.name.clone(), message: "must be an integer".into() });
                        continue;
                    }
                }
            } else {
                Value::String(text)
            };
            if let Some(e) = p.schema.iter_errors(&instance).next() {
                errors.push(FieldError { field: p.name.clone(), message: e.to_string() });
            }
        }
        if let Some((required, schema)) = &operation.body {
            match body_of(&req.body) {
                Ok(None) if *required => {
                    errors.push(FieldError { field: "body".into(), message: "is required".into() })
                }
                Ok(None) => {}
                Ok(Some(body)) => {
                    for e in schema.iter_errors(&body) {
                        errors.push(match e.kind() {
                            // The alias pairs' "not neither" (infra/openapi.yaml's
                            // `not: { not: { anyOf } }`): name what is missing.
                            jsonschema::error::ValidationErrorKind::Not { .. }
                            | jsonschema::error::ValidationErrorKind::AnyOf { .. }
                                if e.instance_path().as_str().is_empty() =>
                            {
                                let missing = ALIASES.iter().find(|(alias, canonical)| {
                                    body.get(alias).is_none() && body.get(canonical).is_none()
                                });
                                match missing {
                                    Some((alias, canonical)) => FieldError {
                                        field: (*canonical).into(),
                                        message: format!("is required (or `{alias}`)"),
                                    },
                                    None => FieldError { field: "body".into(), message: e.to_string() },
                                }
                            }
                            _ => FieldError { field: field_of(&e), message: e.to_string() },
                        });
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        // One entry per field: the first problem found with it.
        let mut seen = std::collections::BTreeSet::new();
        errors.retain(|e| seen.insert(e.field.clone()));
        Err(ApiError::BadRequest(errors))
    }
}

/// The body as JSON; `None` when empty.
fn body_of(bytes: &[u8]) -> Result<Option<Value>, FieldError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| FieldError { field: "body".into(), message: format!("is not valid JSON: {e}") })
}

/// The field a body error is about: `attributes.zone` for
/// `/attributes/zone`, the property for a missing one, else `body`.
fn field_of(e: &jsonschema::ValidationError<'_>) -> String {
    let pointer = e.instance_path().as_str();
    if pointer.is_empty() {
        if let jsonschema::error::ValidationErrorKind::Required { property } = e.kind() {
            return property.as_str().unwrap_or("body").to_owned();
        }
        return "body".into();
    }
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `req` as the handler does: through its route.
    fn check(d: &Definition, req: &ApiRequest) -> Result<(), ApiError> {
        match crate::routes::find(&req.method, &req.path) {
            crate::routes::Found::Route(route, segments) => d.check(route, &segments, req),
            _ => Ok(()),
        }
    }

    fn has(d: &Definition, method: &str, template: &str) -> bool {
        d.operations().any(|o| o == (method, template))
    }

    fn request(method: &str, path: &str, body: &str) -> ApiRequest {
        ApiRequest { method: method.into(), path: path.into(), body: body.as_bytes().to_vec(), ..ApiRequest::default() }
    }

    #[test]
    fn the_definition_renders_and_compiles_for_both_settings() {
        for unscoped in [true, false] {
            let d = Definition::compile(&rendered(ApiConfig { unscoped_writes: unscoped }, false)).unwrap();
            assert_eq!(has(&d, "POST", "/catalog/register"), unscoped);
            assert!(has(&d, "POST", "/catalog/services/{name}/register"));
            assert!(has(&d, "GET", "/catalog/{name}/{version}"));
        }
    }

    #[test]
    fn a_request_the_definition_rejects_names_each_field() {
        let d = Definition::for_config(ApiConfig::default());
        let err = check(
            d,
            &request("POST", "/catalog/register", r#"{"service_name": "9bad", "ttl": true, "endpoint_url": 7}"#),
        )
        .unwrap_err();
        let ApiError::BadRequest(fields) = err else { panic!("{err:?}") };
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        for name in ["service_name", "ttl", "endpoint_url", "service_version"] {
            assert!(names.contains(&name), "{name} not named in {names:?}");
        }
        let mut list = request("GET", "/catalog", "");
        list.query.insert("limit".into(), "zero".into());
        let err = check(d, &list).unwrap_err();
        let ApiError::BadRequest(fields) = err else { panic!("{err:?}") };
        assert_eq!(fields[0].field, "limit");
    }

    #[test]
    fn aliases_and_good_requests_pass() {
        let d = Definition::for_config(ApiConfig::default());
        let body =
            r#"{"service": "orders", "version": "1.2.0", "endpoint_url": "https://o.example", "ttl_seconds": 60}"#;
        check(d, &request("POST", "/dev/catalog/register", body)).unwrap();
        check(d, &request("GET", "/catalog/orders/1.2.0", "")).unwrap();
        check(d, &request("DELETE", "/catalog/anything", "")).unwrap();
    }
}
