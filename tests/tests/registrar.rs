//! The registrar against moto's Lambda, API Gateway and EventBridge APIs
//! (which suffice for every check and removal it makes) and DynamoDB Local.
//! One test double, `Flaky`, injects an error moto cannot produce on demand
//! (access denied), to show that only "not found" counts as a missing part.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::process::Command;

use async_trait::async_trait;
use beacon_aws::components::AwsComponents;
use beacon_domain::Status;
use beacon_domain::ports::ServiceState;
use beacon_domain::ports::{CheckError, Components};
use beacon_registrar::{RunOutcome, ServiceProperties, run_once};
use beacon_tests::{TestPipeline, now, sdk_config, unique};

fn aws(args: &[&str]) -> String {
    let cli = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/aws");
    let endpoint = std::env::var("AWS_ENDPOINT_URL_SNS").unwrap();
    let out = Command::new(cli).args(args).args(["--endpoint-url", &endpoint, "--output", "text"]).output().unwrap();
    assert!(
        out.status.success() || String::from_utf8_lossy(&out.stderr).contains("EntityAlreadyExists"),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn create_function(name: &str, zip: &str) -> String {
    aws(&[
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        "provided.al2023",
        "--handler",
        "bootstrap",
        "--role",
        "arn:aws:iam::123456789012:role/beacon-test",
        "--zip-file",
        &format!("fileb://{zip}"),
        "--query",
        "FunctionArn",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_unhealthy_and_removed_each_lead_to_the_right_write() {
    let p = TestPipeline::start("registrar").await;
    let dir = std::env::temp_dir().join(unique("registrar"));
    std::fs::create_dir_all(&dir).unwrap();
    let zip = dir.join("fn.zip");
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let made = Command::new(py)
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], 'w'); z.writestr('bootstrap', 'x'); z.close()",
            zip.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(made.success());
    let zip = zip.to_str().unwrap();
    aws(&["iam", "create-role", "--role-name", "beacon-test", "--assume-role-policy-document", "{}"]);
    let tag = unique("hw");
    let (fa, fb, registrar) = (format!("{tag}-a"), format!("{tag}-b"), format!("registrar_{tag}"));
    create_function(&fa, zip);
    create_function(&fb, zip);
    let registrar_arn = create_function(&registrar, zip);
    let api = aws(&["apigateway", "create-rest-api", "--name", &tag, "--query", "id"]);
    aws(&["events", "put-rule", "--name", &registrar, "--schedule-expression", "rate(5 minutes)"]);
    aws(&["events", "put-targets", "--rule", &registrar, "--targets", &format!("Id=1,Arn={registrar_arn}")]);

    // Exactly the file the seed's deploy script writes: its keys, nothing of
    // Beacon's (no schedule_rule, no ttl). Its rule is named like the
    // registrar, as the seed creates it.
    let props_path = dir.join("service_properties.json");
    std::fs::write(
        &props_path,
        serde_json::json!({
            "lambda_functions": [fa, fb], "rest_api_id": api, "stage": "dev",
            "endpoint_url": "https://hello.example/dev", "service_name": "helloworld", "service_version": "1.0",
            "discovery_service_endpoint": "https://1vvw0qvh4i---execute-api---us-east-1.amazonaws.com.rproxy.goskope.com/dev",
            "registrar_name": registrar
        })
        .to_string(),
    )
    .unwrap();
    let props = ServiceProperties::from_file(props_path.to_str().unwrap()).unwrap();
    let components = AwsComponents::new(&sdk_config().await);

    let t = now();
    assert_eq!(run_once(&p.registry, &components, &props, t).await.unwrap(), RunOutcome::Registered(Status::Healthy));
    let r = p.registry.read_service("helloworld").await.unwrap().instances;
    assert_eq!((r.len(), r[0].status, r[0].expires_at), (1, Status::Healthy, t + 300));

    aws(&["lambda", "delete-function", "--function-name", &fa]);
    assert_eq!(
        run_once(&p.registry, &components, &props, t + 60).await.unwrap(),
        RunOutcome::Registered(Status::Unhealthy)
    );
    let r = p.registry.read_service("helloworld").await.unwrap().instances;
    assert_eq!((r[0].status, r[0].expires_at), (Status::Unhealthy, t + 360), "each run refreshes expires_at");

    aws(&["lambda", "delete-function", "--function-name", &fb]);
    aws(&["apigateway", "delete-rest-api", "--rest-api-id", &api]);
    assert_eq!(run_once(&p.registry, &components, &props, t + 120).await.unwrap(), RunOutcome::Removed);
    assert!(p.registry.read_service("helloworld").await.unwrap().instances.is_empty(), "not deregistered");
    assert!(!components.lambda_exists(&registrar).await.unwrap(), "the registrar did not delete itself");
    let rules = aws(&["events", "list-rules", "--name-prefix", &registrar]);
    assert!(rules.is_empty(), "the schedule is still there: {rules}");
    // A rule already gone is done, not an error (a retried run after a
    // partial removal, or a rule removed by hand).
    components.remove_schedule(&registrar).await.expect("removing an absent rule");
    let _ = std::fs::remove_dir_all(dir);
    p.stop().await;
}

/// Test double: a part whose check fails with an error other than "not
/// found" (moto cannot be made to deny access on demand).
struct Flaky;

#[async_trait]
impl Components for Flaky {
    async fn lambda_exists(&self, name: &str) -> Result<bool, CheckError> {
        Err(CheckError { part: name.into(), source: "AccessDeniedException".into() })
    }
    async fn rest_api_exists(&self, _: &str) -> Result<bool, CheckError> {
        Ok(false)
    }
    async fn http_api_exists(&self, _: &str) -> Result<bool, CheckError> {
        Ok(false)
    }
    async fn remove_schedule(&self, _: &str) -> Result<(), CheckError> {
        panic!("must not remove anything on an undecided check")
    }
    async fn delete_function(&self, _: &str) -> Result<(), CheckError> {
        panic!("must not delete itself on an undecided check")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_that_is_not_not_found_decides_nothing() {
    let p = TestPipeline::start("registrar-err").await;
    let props: ServiceProperties = serde_json::from_value(serde_json::json!({
        "service_name": "svc", "service_version": "2.0.0", "endpoint_url": "https://svc.example",
        "lambda_functions": ["f"], "registrar_name": "me", "schedule_rule": "me"
    }))
    .unwrap();
    let err = run_once(&p.registry, &Flaky, &props, now()).await.unwrap_err();
    assert!(err.to_string().contains("AccessDenied"), "{err}");
    assert!(p.registry.read_service("svc").await.unwrap().instances.is_empty());
    p.stop().await;
}

#[test]
fn bad_properties_name_the_problem() {
    let dir = std::env::temp_dir().join(unique("props"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.json");
    for (body, says) in [
        (r#"{"service_version": "1.0", "endpoint_url": "https://x"}"#, "service_name"),
        (r#"{"service_name": "a", "service_version": "1.0", "endpoint_url": "ftp://x"}"#, "endpoint_url"),
        (r#"{"service_name": "a", "service_version": "1.0", "endpoint_url": "https://x", "ttl": "soon"}"#, "ttl"),
        ("not json", "expected"),
    ] {
        std::fs::write(&path, body).unwrap();
        let err = ServiceProperties::from_file(path.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains(says), "{body}: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
