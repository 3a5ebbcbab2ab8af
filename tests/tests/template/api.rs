//! The catalog API's definition (`infra/openapi.yaml`): what is signed, the
//! routes by parameter, a valid OpenAPI document, and the README's route
//! table.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;

use crate::{as_list, template};

/// The API is defined by infra/openapi.yaml: every write is signed (IAM),
/// the per-service routes exist, the seed's unscoped routes exist only while
/// `UnscopedWriteRoutes` is on, and the reads are signed exactly when
/// `SignedReads` is on.
#[test]
fn the_api_definition_signs_writes_and_scopes_them_per_service() {
    let t = template("template.yaml");
    let include = &t["Resources"]["CatalogApi"]["Properties"]["DefinitionBody"]["Fn::Transform"];
    assert_eq!(include["Name"].as_str(), Some("AWS::Include"));
    assert_eq!(include["Parameters"]["Location"].as_str(), Some("openapi.yaml"));
    let api = template("openapi.yaml");
    let paths = &api["paths"];
    let signed = |op: &Value| as_list(&op["security"]).iter().any(|s| s.get("sigv4").is_some());
    for route in ["/catalog/services/{name}/register", "/catalog/services/{name}/deregister"] {
        assert!(signed(&paths[route]["post"]), "{route} is not signed");
    }
    for route in ["/catalog/register", "/catalog/deregister"] {
        let branches = as_list(&paths[route]["Fn::If"]);
        assert_eq!(branches[0].as_str(), Some("UnscopedWriteRoutesOn"), "{route} is not behind the parameter");
        assert!(signed(&branches[1]["post"]), "{route} is not signed");
    }
    for route in ["/catalog/{name}/{version}", "/catalog/{name}", "/catalog"] {
        let security = as_list(&paths[route]["get"]["security"]["Fn::If"]);
        assert_eq!(security[0].as_str(), Some("SignedReadsOn"), "{route}");
        assert!(as_list(&security[1]).iter().any(|s| s.get("sigv4").is_some()), "{route} signed when on");
        assert!(as_list(&security[2]).is_empty(), "{route} open when off");
    }
    let conditions = &t["Conditions"];
    assert!(!conditions["UnscopedWriteRoutesOn"].is_null() && !conditions["SignedReadsOn"].is_null());
}

/// The definition as CloudFormation hands it to API Gateway for one setting
/// of the stack's conditions: `Fn::If` picks a branch (`AWS::NoValue`
/// removes the key), `Fn::Sub` becomes a concrete ARN.
fn render(v: &Value, unscoped: bool, signed_reads: bool) -> Option<serde_json::Value> {
    match v {
        Value::Mapping(m) => {
            if let Some(branches) = m.get("Fn::If") {
                let b = as_list(branches);
                let on = match b[0].as_str() {
                    Some("UnscopedWriteRoutesOn") => unscoped,
                    Some("SignedReadsOn") => signed_reads,
                    // The Organization's resource policy: what it allows is
                    // tests/tests/iam/organization.rs's.
                    Some("OrganizationOn") => false,
                    other => panic!("unknown condition {other:?}"),
                };
                return render(&b[if on { 1 } else { 2 }], unscoped, signed_reads);
            }
            if m.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") {
                return None;
            }
            if let Some(Value::String(s)) = m.get("Fn::Sub") {
                let arn = "arn:aws:lambda:us-east-1:123456789012:function:beacon-catalog-api-dev";
                let out = s
                    .replace("${AWS::Partition}", "aws")
                    .replace("${AWS::Region}", "us-east-1")
                    .replace("${CatalogApiFunction.Arn}", arn);
                assert!(!out.contains("${"), "unresolved substitution in {s}");
                return Some(serde_json::Value::String(out));
            }
            Some(serde_json::Value::Object(
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), render(v, unscoped, signed_reads)?)))
                    .collect(),
            ))
        }
        Value::Sequence(s) => {
            Some(serde_json::Value::Array(s.iter().filter_map(|i| render(i, unscoped, signed_reads)).collect()))
        }
        other => Some(serde_json::to_value(other).unwrap()),
    }
}

/// Each way the stack can deploy the definition is a valid OpenAPI 3.0
/// document (openapi-spec-validator, from PyPI, installed by bootstrap), and
/// the README's route table lists exactly its routes.
#[test]
fn the_api_definition_is_valid_openapi_and_the_readme_lists_its_routes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let api = template("openapi.yaml");
    for (unscoped, signed) in [(true, false), (false, true)] {
        let doc = render(&api, unscoped, signed).unwrap();
        let file = std::env::temp_dir().join(format!("beacon-openapi-{unscoped}-{signed}-{}.json", std::process::id()));
        std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        let out = std::process::Command::new(root.join(".venv/bin/openapi-spec-validator"))
            .arg(&file)
            .output()
            .expect("openapi-spec-validator (./scripts/bootstrap installs it)");
        assert!(
            out.status.success(),
            "unscoped routes {unscoped}, signed reads {signed}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(file);
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.contains_key("/catalog/register"), unscoped, "the unscoped route follows its parameter");
    }
    let doc = render(&api, true, false).unwrap();
    let mut defined: BTreeSet<String> = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            defined.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let listed: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|r| r.starts_with("GET /catalog") || r.starts_with("POST /catalog"))
        .map(|r| r.split('?').next().unwrap_or(r).to_owned())
        .collect();
    assert_eq!(listed, defined, "the README's route table and infra/openapi.yaml differ");
}
