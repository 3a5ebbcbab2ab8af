//! The event source mapping's filter criteria, evaluated locally.
//!
//! The criteria live in `infra/filter-criteria.json`; the SAM template's
//! `FilterCriteria` must equal them (a test checks). The matcher implements
//! the subset of Lambda's filter syntax Beacon uses: nested objects, lists of
//! exact values, `prefix`, `suffix`, `anything-but` and `exists`.

use serde_json::Value;

/// The criteria file, compiled in so the poller cannot drift from it.
pub const FILTER_CRITERIA_JSON: &str = include_str!("../../../infra/filter-criteria.json");

/// A set of patterns; a record passes when any pattern matches.
#[derive(Debug, Clone)]
pub struct FilterCriteria {
    patterns: Vec<Value>,
}

/// The criteria could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// Not JSON (the file, or one pattern's text).
    #[error("filter criteria: {what} is not JSON: {source}")]
    Json {
        /// The document or pattern that failed.
        what: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// JSON, but not the template's shape.
    #[error("filter criteria: {0}")]
    Shape(&'static str),
}

impl FilterCriteria {
    /// Parses criteria in the template's shape: `{"Filters":[{"Pattern":"<json>"}]}`.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let doc: Value =
            serde_json::from_str(text).map_err(|source| FilterError::Json { what: "the document".into(), source })?;
        let filters =
            doc.get("Filters").and_then(Value::as_array).ok_or(FilterError::Shape("`Filters` must be a list"))?;
        let patterns = filters
            .iter()
            .map(|f| {
                let text = f
                    .get("Pattern")
                    .and_then(Value::as_str)
                    .ok_or(FilterError::Shape("each filter needs a `Pattern` string"))?;
                serde_json::from_str(text)
                    .map_err(|source| FilterError::Json { what: format!("pattern {text}"), source })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// Beacon's criteria (registrations and needs items only).
    pub fn beacon() -> Self {
        // The file is compiled in and covered by a test, so this only fails
        // if someone breaks the file — and then every test fails loudly.
        Self::parse(FILTER_CRITERIA_JSON).unwrap_or(Self { patterns: Vec::new() })
    }

    /// No criteria: every record passes (what a mapping without a filter
    /// does; the replication stand-in reads streams so).
    pub fn all() -> Self {
        Self { patterns: Vec::new() }
    }

    /// The patterns, as JSON values.
    pub fn patterns(&self) -> &[Value] {
        &self.patterns
    }

    /// Whether a record (the JSON Lambda would receive) passes.
    pub fn matches(&self, record: &Value) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| matches_object(p, record))
    }
}

fn matches_object(pattern: &Value, value: &Value) -> bool {
    let Some(fields) = pattern.as_object() else { return false };
    fields.iter().all(|(key, rule)| {
        let field = value.get(key);
        match rule {
            Value::Object(_) => field.is_some_and(|f| matches_object(rule, f)),
            Value::Array(options) => options.iter().any(|o| matches_rule(o, field)),
            _ => false,
        }
    })
}

fn matches_rule(rule: &Value, field: Option<&Value>) -> bool {
    match rule {
        Value::Object(op) => {
            if let Some(exists) = op.get("exists").and_then(Value::as_bool) {
                return field.is_some() == exists;
            }
            let text = field.and_then(Value::as_str);
            if let Some(prefix) = op.get("prefix").and_then(Value::as_str) {
                return text.is_some_and(|t| t.starts_with(prefix));
            }
            if let Some(suffix) = op.get("suffix").and_then(Value::as_str) {
                return text.is_some_and(|t| t.ends_with(suffix));
            }
            if let Some(but) = op.get("anything-but") {
                let excluded = match but {
                    Value::Array(list) => field.is_some_and(|f| list.contains(f)),
                    other => field == Some(other),
                };
                return field.is_some() && !excluded;
            }
            false
        }
        literal => field == Some(literal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(pk: &str, sk: &str) -> Value {
        json!({"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": sk}}}})
    }

    #[test]
    fn beacon_criteria_pass_registrations_and_needs_only() {
        let f = FilterCriteria::beacon();
        assert_eq!(f.patterns().len(), 2);
        assert!(f.matches(&record("SERVICE#a", "INSTANCE#1.0.0#i")));
        assert!(f.matches(&record("CONSUMER#web", "NEEDS")));
        assert!(!f.matches(&record("CONSUMER#web", "RESOLVED")));
        assert!(!f.matches(&record("SERVICE#a", "GENERATION")));
        assert!(!f.matches(&record("SERVICE#a", "DEPENDENT#web")));
        assert!(!f.matches(&record("FANOUT#a", "GENERATION")));
        assert!(!f.matches(&record("FANOUT#a", "DEPENDENT#web")));
        assert!(!f.matches(&record("FANOUT#a", "VIEW#00")));
        assert!(!f.matches(&json!({"dynamodb": {}})));
    }

    #[test]
    fn operators() {
        let f = FilterCriteria::parse(
            r#"{"Filters":[{"Pattern":"{\"eventName\":[{\"anything-but\":[\"REMOVE\"]}],\"x\":[{\"exists\":false}],\"y\":[{\"suffix\":\"z\"}]}"}]}"#,
        )
        .unwrap();
        assert!(f.matches(&json!({"eventName": "INSERT", "y": "az"})));
        assert!(!f.matches(&json!({"eventName": "REMOVE", "y": "az"})));
        assert!(!f.matches(&json!({"eventName": "INSERT", "x": 1, "y": "az"})));
        assert!(FilterCriteria::parse("{}").is_err());
    }
}
