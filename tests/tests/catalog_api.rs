//! The catalog API: through the Lambda handler with the sample API Gateway
//! events, and through `beacon dev`'s loopback server with a client that
//! signs with the AWS SDK's own SigV4 signer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::io::{Read, Write};
use std::path::Path;
use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use beacon::local::setup::{LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY};
use beacon_catalog_api::local_server::{LocalCredentials, serve};
use beacon_catalog_api::{from_lambda, handle};
use beacon_tests::{TestPipeline, now};
use serde_json::{Value, json};

fn sample(name: &str) -> lambda_http::Request {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/api").join(name);
    lambda_http::request::from_str(&std::fs::read_to_string(path).unwrap()).expect("a sample API Gateway event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_routes_work_through_the_lambda_handler() {
    let p = TestPipeline::start("api-lambda").await;
    let (status, body) = handle(&p.registry, &from_lambda(&sample("register.json")), now()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["registered"]["version"], "1.0.0");
    assert_eq!(body["registered"]["ttl_seconds"], 300, "the seed's ttl string \"300\" is read");

    // Seed 1's exact lookup route and response.
    let (status, body) = handle(&p.registry, &from_lambda(&sample("lookup.json")), now()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["endpoint_url"], "https://abc123.execute-api.us-east-1.amazonaws.com/dev");
    assert_eq!(body["ttl"], 300);
    assert_eq!(body["status"], "healthy");

    let (status, body) = handle(&p.registry, &from_lambda(&sample("resolve.json")), now()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resolved"]["version"], "1.0.0");

    let (status, body) = handle(&p.registry, &from_lambda(&sample("list.json")), now()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["registrations"][0]["service"], "helloworld");

    let (status, body) = handle(&p.registry, &from_lambda(&sample("deregister.json")), now()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = handle(&p.registry, &from_lambda(&sample("lookup.json")), now()).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("Service Not Found")));
    let (status, _) = handle(&p.registry, &from_lambda(&sample("deregister.json")), now()).await;
    assert_eq!(status, 404, "deregistering twice");
    p.stop().await;
}

/// A minimal HTTP/1.1 client over loopback; returns (status, JSON body).
fn http(addr: &str, method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status: u16 = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let json =
        response.split("\r\n\r\n").nth(1).map(|b| serde_json::from_str(b).unwrap_or(Value::Null)).unwrap_or_default();
    (status, json)
}

/// Headers for a SigV4-signed request, signed by the AWS SDK's signer.
fn signed(addr: &str, method: &str, path: &str, body: &[u8], secret: &str) -> Vec<(String, String)> {
    let identity = aws_credential_types::Credentials::new(LOCAL_ACCESS_KEY, secret, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("execute-api")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let base =
        vec![("host".to_string(), addr.to_string()), ("content-type".to_string(), "application/json".to_string())];
    let url = format!("http://{addr}{path}");
    let signable = SignableRequest::new(
        method,
        url,
        base.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut headers = base;
    for h in instructions.headers() {
        headers.push((h.0.to_string(), h.1.to_string()));
    }
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_server_requires_sigv4_on_writes_and_names_bad_fields() {
    let p = TestPipeline::start("api-local").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let creds = LocalCredentials { access_key: LOCAL_ACCESS_KEY.into(), secret_key: LOCAL_SECRET_KEY.into() };
    let server = tokio::spawn(serve(listener, p.registry.clone(), creds, rx));

    let a = addr.clone();
    let call = move |method: &'static str, path: String, body: Vec<u8>, secret: Option<&'static str>| {
        let a = a.clone();
        tokio::task::spawn_blocking(move || {
            let headers = match secret {
                Some(s) => signed(&a, method, &path, &body, s),
                None => vec![("host".into(), a.clone()), ("content-type".into(), "application/json".into())],
            };
            http(&a, method, &path, &headers, &body)
        })
    };
    let register = json!({"service_name": "helloworld", "service_version": "1.0", "endpoint_url": "https://hello.example/dev", "ttl": "300", "status": "healthy"});
    let body = serde_json::to_vec(&register).unwrap();

    let (status, resp) = call("POST", "/catalog/register".into(), body.clone(), None).await.unwrap();
    assert_eq!(status, 403, "an unsigned write: {resp}");
    let (status, resp) = call("POST", "/catalog/register".into(), body.clone(), Some("wrong-secret")).await.unwrap();
    assert_eq!(status, 403, "a wrongly signed write: {resp}");
    assert!(resp["error"].as_str().unwrap().contains("signature"), "{resp}");
    use beacon::store::Registry as _;
    assert!(p.registry.read_service("helloworld").await.unwrap().instances.is_empty(), "a refused write was stored");

    let (status, resp) = call("POST", "/catalog/register".into(), body.clone(), Some(LOCAL_SECRET_KEY)).await.unwrap();
    assert_eq!(status, 200, "{resp}");
    let (status, resp) = call("GET", "/catalog/helloworld/1.0".into(), vec![], None).await.unwrap();
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        (resp["endpoint_url"].as_str(), resp["ttl"].as_u64(), resp["status"].as_str()),
        (Some("https://hello.example/dev"), Some(300), Some("healthy"))
    );
    let (status, resp) = call("GET", "/catalog/helloworld?requirement=%5E2".into(), vec![], None).await.unwrap();
    assert_eq!(status, 404, "{resp}");
    assert_eq!(resp["unresolved"]["reason"], "no_version_matches", "{resp}");
    let (status, resp) = call("GET", "/catalog?limit=1".into(), vec![], None).await.unwrap();
    assert_eq!(status, 200, "{resp}");

    // Create-only registration conflicts with the existing instance.
    let a2 = addr.clone();
    let (status, resp) = tokio::task::spawn_blocking(move || {
        let mut headers = signed(&a2, "POST", "/catalog/register", &body, LOCAL_SECRET_KEY);
        headers.push(("if-none-match".into(), "*".into()));
        http(&a2, "POST", "/catalog/register", &headers, &body)
    })
    .await
    .unwrap();
    assert_eq!(status, 409, "{resp}");

    for (bad, field) in [
        (b"{not json".to_vec(), "body"),
        (
            serde_json::to_vec(&json!({"service_name": "9bad", "service_version": "1.0", "endpoint_url": "https://x"}))
                .unwrap(),
            "service_name",
        ),
        (
            serde_json::to_vec(&json!({"service_name": "ok", "service_version": "v1", "endpoint_url": "https://x"}))
                .unwrap(),
            "service_version",
        ),
        (
            serde_json::to_vec(
                &json!({"service_name": "ok", "service_version": "1.0", "endpoint_url": "file:///etc/passwd"}),
            )
            .unwrap(),
            "endpoint_url",
        ),
        (
            serde_json::to_vec(
                &json!({"service_name": "ok", "service_version": "1.0", "endpoint_url": "https://x", "ttl": "soon"}),
            )
            .unwrap(),
            "ttl",
        ),
        (serde_json::to_vec(&json!({"service_version": "1.0", "endpoint_url": "https://x"})).unwrap(), "service_name"),
        (serde_json::to_vec(&json!([1, 2])).unwrap(), "body"),
    ] {
        let (status, resp) = call("POST", "/catalog/register".into(), bad, Some(LOCAL_SECRET_KEY)).await.unwrap();
        assert_eq!(status, 400, "{resp}");
        let fields: Vec<&str> =
            resp["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
        assert!(fields.contains(&field), "expected {field} in {resp}");
    }
    // Every invalid field at once.
    let all_bad =
        serde_json::to_vec(&json!({"service_name": "", "service_version": "x", "endpoint_url": "nope"})).unwrap();
    let (_, resp) = call("POST", "/catalog/register".into(), all_bad, Some(LOCAL_SECRET_KEY)).await.unwrap();
    let mut fields: Vec<&str> =
        resp["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["endpoint_url", "service_name", "service_version"], "{resp}");

    let dereg = serde_json::to_vec(&json!({"service_name": "helloworld", "service_version": "1.0"})).unwrap();
    let (status, _) = call("POST", "/catalog/deregister".into(), dereg.clone(), Some(LOCAL_SECRET_KEY)).await.unwrap();
    assert_eq!(status, 200);
    let (status, resp) = call("GET", "/catalog/helloworld/1.0".into(), vec![], None).await.unwrap();
    assert_eq!((status, resp["error"].as_str()), (404, Some("Service Not Found")));
    let (status, _) = call("DELETE", "/catalog/register".into(), vec![], Some(LOCAL_SECRET_KEY)).await.unwrap();
    assert_eq!(status, 405);

    let _ = stop.send(true);
    let _ = server.await;
    p.stop().await;
}
