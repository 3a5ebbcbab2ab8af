//! The catalog API's OpenAPI document (`infra/openapi.yaml`) and what the
//! template deploys (`infra/api-gateway.json`): what is signed, the routes
//! by parameter, the deployed definition equal to the document for every
//! stack setting, valid OpenAPI as it is, and the README's route table.

use std::collections::BTreeSet;
use std::path::Path;

use beacon_catalog_api::openapi;
use serde_yaml::Value;

use crate::{as_list, template};

/// The API is defined by infra/api-gateway.json: every write is signed
/// (IAM), the per-service routes exist, the seed's unscoped routes exist
/// only while `UnscopedWriteRoutes` is on, and the reads are signed exactly
/// when `SignedReads` is on.
#[test]
fn the_api_definition_signs_writes_and_scopes_them_per_service() {
    let t = template("template.yaml");
    let include = &t["Resources"]["CatalogApi"]["Properties"]["DefinitionBody"]["Fn::Transform"];
    assert_eq!(include["Name"].as_str(), Some("AWS::Include"));
    assert_eq!(include["Parameters"]["Location"].as_str(), Some("api-gateway.json"));
    let api = template("api-gateway.json");
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

/// infra/api-gateway.json is what `beacon openapi --api-gateway` generates
/// from infra/openapi.yaml today: nobody edited it by hand, and nobody
/// changed the document without regenerating it.
#[test]
fn the_deployed_definition_is_generated_from_the_document() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let committed = std::fs::read_to_string(root.join(openapi::API_GATEWAY_FILE)).unwrap();
    let generated = openapi::api_gateway_file().unwrap();
    assert!(
        committed == generated,
        "{} is stale: run `cargo run -p beacon-cli -- openapi --api-gateway > {}`",
        openapi::API_GATEWAY_FILE,
        openapi::API_GATEWAY_FILE
    );
}

/// For every setting of the stack's switches, what CloudFormation hands API
/// Gateway (infra/api-gateway.json rendered for that setting, API Gateway's
/// own extensions removed) is the plain document of that stack, operation
/// for operation and schema for schema. The one other difference:
/// `servers` is the document's (API Gateway serves the stage's own URL).
#[test]
fn what_each_stack_deploys_is_the_plain_document_of_that_stack() {
    let deployed = template("api-gateway.json");
    for stack in openapi::Stack::ALL {
        let mut rendered = render(&deployed, stack.unscoped_write_routes, stack.signed_reads).unwrap();
        strip_extensions(&mut rendered, "x-amazon-apigateway-");
        let mut documented = openapi::for_stack(stack).unwrap();
        documented.as_object_mut().unwrap().remove("servers");
        assert!(rendered == documented, "{stack:?}: the deployed definition and the document differ");
        assert!(rendered["paths"]["/catalog/services/{name}/register"]["post"]["requestBody"].is_object());
    }
}

/// Removes every key that starts with `prefix`, at any depth.
fn strip_extensions(v: &mut serde_json::Value, prefix: &str) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !k.starts_with(prefix));
            m.values_mut().for_each(|v| strip_extensions(v, prefix));
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|v| strip_extensions(v, prefix)),
        _ => {}
    }
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

/// The document as written, and as each stack deploys it, is a valid
/// OpenAPI 3.0 document (openapi-spec-validator, from PyPI, installed by
/// bootstrap), and the README's route table lists exactly its routes.
#[test]
fn the_api_definition_is_valid_openapi_and_the_readme_lists_its_routes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let validate = |file: &Path, what: &str| {
        let out = std::process::Command::new(root.join(".venv/bin/openapi-spec-validator"))
            .arg(file)
            .output()
            .expect("openapi-spec-validator (./scripts/bootstrap installs it)");
        assert!(
            out.status.success(),
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    validate(&root.join("infra/openapi.yaml"), "infra/openapi.yaml as written");
    for stack in openapi::Stack::ALL {
        let doc = openapi::for_stack(stack).unwrap();
        let file = std::env::temp_dir().join(format!(
            "beacon-openapi-{}-{}-{}.json",
            stack.unscoped_write_routes,
            stack.signed_reads,
            std::process::id()
        ));
        std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        validate(&file, &format!("{stack:?}"));
        let _ = std::fs::remove_file(file);
    }
    let doc = openapi::document();
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
