//! Change events on EventBridge (`EventBusName`): the schemas the stack
//! publishes to the EventBridge schema registry are the project's event
//! schemas (`events/schema/`), as EventBridge carries them, and the
//! functions put events on the bus only when the parameter is set.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{root, template};

/// The source events carry on the bus in a stack of stage `stage`.
pub(crate) fn source(stage: &str) -> String {
    format!("beacon.{stage}")
}

/// `events/schema/<name>.schema.json` (JSON Schema 2020-12) as the schema
/// of the EventBridge event that carries it, in the draft 4 the schema
/// registry takes (`JSONSchemaDraft4`): the envelope EventBridge adds
/// (`detail-type` one of `detail_types`, `source` the stack's), and
/// `detail` the event. Draft 4 has no `const`, `$defs`, `if`/`then` or
/// `propertyNames`: `const` becomes a one-value `enum`, `$defs` become
/// `definitions`, and the other two, which only narrow (which of
/// before/after is null per kind; the attribute keys' spelling), are left to
/// the JSON Schema in events/schema.
pub(crate) fn eventbridge_schema(name: &str, detail_types: &[&str], source: &str) -> Value {
    let path = root().join("events/schema").join(format!("{name}.schema.json"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut detail = draft4(&schema);
    let detail_map = detail.as_object_mut().unwrap();
    let definitions = detail_map.remove("definitions").unwrap_or_else(|| json!({}));
    let title = detail_map.get("title").cloned().unwrap_or(Value::Null);
    let mut definitions: BTreeMap<String, Value> = serde_json::from_value(definitions).unwrap();
    definitions.insert("detail".into(), detail);
    json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": format!("{} on EventBridge", title.as_str().unwrap_or(name)),
        "type": "object",
        "required": ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"],
        "properties": {
            "version": { "type": "string" },
            "id": { "type": "string" },
            "detail-type": { "type": "string", "enum": detail_types },
            "source": { "type": "string", "enum": [source] },
            "account": { "type": "string" },
            "time": { "type": "string", "format": "date-time" },
            "region": { "type": "string" },
            "resources": { "type": "array", "items": { "type": "string" } },
            "detail": { "$ref": "#/definitions/detail" }
        },
        "definitions": definitions
    })
}

fn draft4(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                match k.as_str() {
                    "$schema" | "$id" | "propertyNames" => {}
                    "const" => {
                        out.insert("enum".into(), json!([v]));
                    }
                    "$defs" => {
                        out.insert("definitions".into(), draft4(v));
                    }
                    "$ref" => {
                        out.insert(k.clone(), json!(v.as_str().unwrap().replace("#/$defs/", "#/definitions/")));
                    }
                    "allOf" => {
                        let kept: Vec<Value> =
                            v.as_array().unwrap().iter().filter(|s| s.get("if").is_none()).map(draft4).collect();
                        if !kept.is_empty() {
                            out.insert(k.clone(), Value::Array(kept));
                        }
                    }
                    _ => {
                        out.insert(k.clone(), draft4(v));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(draft4).collect()),
        other => other.clone(),
    }
}

/// The kinds a schema's `kind` property allows (its detail types).
pub(crate) fn kinds(name: &str) -> Vec<String> {
    let path = root().join("events/schema").join(format!("{name}.schema.json"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let kind = &schema["properties"]["kind"];
    match (kind.get("enum"), kind.get("const")) {
        (Some(Value::Array(kinds)), _) => kinds.iter().map(|k| k.as_str().unwrap().to_owned()).collect(),
        (_, Some(Value::String(kind))) => vec![kind.clone()],
        _ => panic!("{name}.schema.json has no kind"),
    }
}

/// The schemas a stack publishes, by resource: one per schema in
/// events/schema/ that an event on the bus follows (every kind's).
pub(crate) const SCHEMAS: &[(&str, &str)] =
    &[("ChangeEventSchema", "change"), ("InvalidEventSchema", "invalid"), ("ResolvedEventSchema", "resolved")];

/// Each schema resource's content is the derivation above (with the
/// stack's source), in the stack's registry, only when the bus is on.
#[test]
fn the_schema_registry_holds_the_event_schemas_as_eventbridge_carries_them() {
    let t = template("template.yaml");
    let registry = &t["Resources"]["EventSchemaRegistry"];
    assert_eq!(registry["Type"].as_str(), Some("AWS::EventSchemas::Registry"));
    assert_eq!(registry["Condition"].as_str(), Some("EventBusOn"));
    for (resource, name) in SCHEMAS {
        let r = &t["Resources"][*resource];
        assert_eq!(r["Type"].as_str(), Some("AWS::EventSchemas::Schema"), "{resource}");
        assert_eq!(r["Condition"].as_str(), Some("EventBusOn"), "{resource}");
        assert_eq!(r["Properties"]["Type"].as_str(), Some("JSONSchemaDraft4"), "{resource}");
        let serde_yaml::Value::Tagged(content) = &r["Properties"]["Content"] else {
            panic!("{resource}'s Content is not a !Sub")
        };
        assert_eq!(content.tag.to_string(), "!Sub");
        // `!Sub` would read any other `${…}` in a schema (a pattern's, say)
        // as a variable, and fail the deploy.
        let text = content.value.as_str().unwrap();
        assert_eq!(
            text.matches("${").count(),
            text.matches("${Stage}").count(),
            "{resource}: a ${{ }} beside ${{Stage}}"
        );
        let text = text.replace("${Stage}", "dev");
        let deployed: Value = serde_json::from_str(&text).unwrap();
        let kinds = kinds(name);
        let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
        let expected = eventbridge_schema(name, &kinds, &source("dev"));
        assert!(
            deployed == expected,
            "{resource}'s Content is stale; it should be:\n{}",
            serde_json::to_string_pretty(&eventbridge_schema(name, &kinds, "beacon.${Stage}")).unwrap()
        );
    }
}

/// Every kind an event can have on the bus has its schema in the registry.
#[test]
fn every_kind_on_the_bus_has_a_schema() {
    let mut covered: Vec<String> = SCHEMAS.iter().flat_map(|(_, name)| kinds(name)).collect();
    covered.sort();
    let mut all: Vec<String> = std::fs::read_dir(root().join("events/schema"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".schema.json").map(str::to_owned))
        // The extension's file, not an event.
        .filter(|name| name != "services-file")
        .flat_map(|name| kinds(&name))
        .collect();
    all.sort();
    assert_eq!(covered, all);
}
