//! The catalog API: through the Lambda handler with the sample API Gateway
//! events, and through `beacon dev`'s loopback server with a client that
//! signs with the AWS SDK's own SigV4 signer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::Path;

use beacon_catalog_api::{ApiConfig, from_lambda, handle};
use beacon_domain::ports::ServiceState;
use beacon_local::setup::LOCAL_SECRET_KEY;
use beacon_tests::api::LocalApi;
use beacon_tests::{TestPipeline, now};
use serde_json::{Value, json};

fn sample(name: &str) -> lambda_http::Request {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/api").join(name);
    lambda_http::request::from_str(&std::fs::read_to_string(path).unwrap()).expect("a sample API Gateway event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_routes_work_through_the_lambda_handler() {
    let p = TestPipeline::start("api-lambda").await;
    let (status, body) = handle(&p.registry, ApiConfig::default(), &from_lambda(&sample("register.json")), now()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["registered"]["version"], "1.0.0");
    assert_eq!(body["registered"]["ttl_seconds"], 300, "the seed's ttl string \"300\" is read");

    // Seed 1's exact lookup route and response.
    let (status, body) = handle(&p.registry, ApiConfig::default(), &from_lambda(&sample("lookup.json")), now()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["endpoint_url"], "https://abc123.execute-api.us-east-1.amazonaws.com/dev");
    assert_eq!(body["ttl"], 300);
    assert_eq!(body["status"], "healthy");

    let (status, body) = handle(&p.registry, ApiConfig::default(), &from_lambda(&sample("resolve.json")), now()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resolved"]["version"], "1.0.0");

    let (status, body) = handle(&p.registry, ApiConfig::default(), &from_lambda(&sample("list.json")), now()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["registrations"][0]["service"], "helloworld");

    let (status, body) =
        handle(&p.registry, ApiConfig::default(), &from_lambda(&sample("deregister.json")), now()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = handle(&p.registry, ApiConfig::default(), &from_lambda(&sample("lookup.json")), now()).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("Service Not Found")));
    let (status, _) = handle(&p.registry, ApiConfig::default(), &from_lambda(&sample("deregister.json")), now()).await;
    assert_eq!(status, 404, "deregistering twice");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_server_requires_sigv4_on_writes_and_names_bad_fields() {
    let p = TestPipeline::start("api-local").await;
    let api = LocalApi::start(p.registry.clone(), LOCAL_SECRET_KEY).await;
    let register = json!({"service_name": "helloworld", "service_version": "1.0", "endpoint_url": "https://hello.example/dev", "ttl": "300", "status": "healthy"});
    let body = serde_json::to_vec(&register).unwrap();

    let (status, resp) = api.call("POST", "/catalog/register", body.clone(), None, &[]).await;
    assert_eq!(status, 403, "an unsigned write: {resp}");
    let (status, resp) = api.call("POST", "/catalog/register", body.clone(), Some("wrong-secret"), &[]).await;
    assert_eq!(status, 403, "a wrongly signed write: {resp}");
    assert!(resp["error"].as_str().unwrap().contains("signature"), "{resp}");
    assert!(p.registry.read_service("helloworld").await.unwrap().instances.is_empty(), "a refused write was stored");

    let (status, resp) = api.call("POST", "/catalog/register", body.clone(), Some(LOCAL_SECRET_KEY), &[]).await;
    assert_eq!(status, 200, "{resp}");
    let (status, resp) = api.call("GET", "/catalog/helloworld/1.0", vec![], None, &[]).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        (resp["endpoint_url"].as_str(), resp["ttl"].as_u64(), resp["status"].as_str()),
        (Some("https://hello.example/dev"), Some(300), Some("healthy"))
    );
    let (status, resp) = api.call("GET", "/catalog/helloworld?requirement=%5E2", vec![], None, &[]).await;
    assert_eq!(status, 404, "{resp}");
    assert_eq!(resp["unresolved"]["reason"], "no_version_matches", "{resp}");
    let (status, resp) = api.call("GET", "/catalog?limit=1", vec![], None, &[]).await;
    assert_eq!(status, 200, "{resp}");

    // Create-only registration conflicts with the existing instance.
    let (status, resp) =
        api.call("POST", "/catalog/register", body.clone(), Some(LOCAL_SECRET_KEY), &[("if-none-match", "*")]).await;
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
        let (status, resp) = api.call("POST", "/catalog/register", bad, Some(LOCAL_SECRET_KEY), &[]).await;
        assert_eq!(status, 400, "{resp}");
        let fields: Vec<&str> =
            resp["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
        assert!(fields.contains(&field), "expected {field} in {resp}");
    }
    // Every invalid field at once.
    let all_bad =
        serde_json::to_vec(&json!({"service_name": "", "service_version": "x", "endpoint_url": "nope"})).unwrap();
    let (_, resp) = api.call("POST", "/catalog/register", all_bad, Some(LOCAL_SECRET_KEY), &[]).await;
    let mut fields: Vec<&str> =
        resp["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["endpoint_url", "service_name", "service_version"], "{resp}");

    let dereg = serde_json::to_vec(&json!({"service_name": "helloworld", "service_version": "1.0"})).unwrap();
    let (status, _) = api.call("POST", "/catalog/deregister", dereg.clone(), Some(LOCAL_SECRET_KEY), &[]).await;
    assert_eq!(status, 200);
    let (status, resp) = api.call("GET", "/catalog/helloworld/1.0", vec![], None, &[]).await;
    assert_eq!((status, resp["error"].as_str()), (404, Some("Service Not Found")));
    let (status, _) = api.call("DELETE", "/catalog/register", vec![], Some(LOCAL_SECRET_KEY), &[]).await;
    assert_eq!(status, 405);

    api.stop().await;
    p.stop().await;
}

/// Hostile requests, each correctly signed so that only its content is
/// judged: every one gets a 4xx naming what is wrong, none is stored, and the
/// server still answers a good request afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_a_clear_error_and_change_nothing() {
    let p = TestPipeline::start("api-hostile").await;
    let api = LocalApi::start(p.registry.clone(), LOCAL_SECRET_KEY).await;
    let body = |overrides: Value| {
        let mut b = json!({"service_name": "orders", "service_version": "1.0", "endpoint_url": "https://o.example"});
        for (k, v) in overrides.as_object().unwrap() {
            b[k] = v.clone();
        }
        serde_json::to_vec(&b).unwrap()
    };
    let nested = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)).into_bytes();
    let many_attributes: serde_json::Map<String, Value> = (0..100).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("2 MB body", "/catalog/register", vec![b' '; 2 << 20], 413, "larger than"),
        ("empty body", "/catalog/register", vec![], 400, "body"),
        ("invalid UTF-8", "/catalog/register", vec![0xff, 0xfe, b'{'], 400, "body"),
        ("30,000 nested arrays", "/catalog/register", nested, 400, "body"),
        ("NUL in the name", "/catalog/register", body(json!({"service_name": "ord\u{0}ers"})), 400, "service_name"),
        ("RTL override", "/catalog/register", body(json!({"instance_id": "i-\u{202e}1"})), 400, "instance_id"),
        (
            "huge version",
            "/catalog/register",
            body(json!({"service_version": "99999999999999999999.0.0"})),
            400,
            "service_version",
        ),
        ("negative ttl", "/catalog/register", body(json!({"ttl": -5})), 400, "ttl"),
        ("ttl 1e30", "/catalog/register", body(json!({"ttl": 1e30})), 400, "ttl"),
        ("ttl as an object", "/catalog/register", body(json!({"ttl": {"s": 1}})), 400, "ttl"),
        (
            "credentials in the URL",
            "/catalog/register",
            body(json!({"endpoint_url": "https://u:p@o.example"})),
            400,
            "endpoint_url",
        ),
        ("file URL", "/catalog/register", body(json!({"endpoint_url": "file:///etc/passwd"})), 400, "endpoint_url"),
        (
            "2 KB+ URL",
            "/catalog/register",
            body(json!({"endpoint_url": format!("https://o.example/{}", "a".repeat(3000))})),
            400,
            "endpoint_url",
        ),
        ("status unknown", "/catalog/register", body(json!({"status": "sideways"})), 400, "status"),
        ("attributes a list", "/catalog/register", body(json!({"attributes": [1]})), 400, "attributes"),
        ("100 attributes", "/catalog/register", body(json!({"attributes": many_attributes})), 400, "attributes"),
        ("name a number", "/catalog/register", body(json!({"service_name": 7})), 400, "service_name"),
        // Found by the API fuzz (docs/reliability.md, "The API fuzz").
        ("status null", "/catalog/register", body(json!({"status": null})), 400, "status"),
        (
            "a version that would pad past 64",
            "/catalog/register",
            body(json!({"service_version": format!("1.2+{}", "b".repeat(59))})),
            400,
            "service_version",
        ),
        (
            "neither version nor alias",
            "/catalog/register",
            body(json!({"service_version": null})),
            400,
            "service_version",
        ),
        (
            "deregister without a version",
            "/catalog/deregister",
            serde_json::to_vec(&json!({"service_name": "orders"})).unwrap(),
            400,
            "service_version",
        ),
    ];
    for (what, path, bytes, status, says) in cases {
        let (got, resp) = api.call("POST", path, bytes, Some(LOCAL_SECRET_KEY), &[]).await;
        assert_eq!(got, status, "{what}: {resp}");
        assert!(resp.to_string().contains(says), "{what}: expected `{says}` in {resp}");
        assert!(
            resp.to_string().len() < 4096,
            "{what}: the error echoes the request ({} bytes)",
            resp.to_string().len()
        );
    }
    for (what, path, status, says) in [
        ("a requirement that does not parse", "/catalog/orders?requirement=%3E%3D%3E", 400, "requirement"),
        ("a bad limit", "/catalog?limit=-1", 400, "limit"),
        ("a huge limit", "/catalog?limit=99999999999999999999", 400, "limit"),
        ("a forged page token", "/catalog?next=not-a-token", 400, "next"),
        // The seed's lookup route answers only "found" or "not found".
        ("a bad name in the path", "/catalog/%F0%9F%92%A3/1.0", 404, "Service Not Found"),
        ("a bad version in the path", "/catalog/orders/one", 404, "Service Not Found"),
        ("a path that climbs", "/catalog/../../etc/passwd", 404, "no route"),
        ("a bad name to resolve", "/catalog/%F0%9F%92%A3", 400, "name"),
        // Found by the API fuzz.
        ("bare digits as a requirement", "/catalog/orders?requirement=000", 400, "requirement"),
        ("an escaped `+` in a version", "/catalog/orders/1.0.0%2Bb", 404, "Service Not Found"),
    ] {
        let (got, resp) = api.call("GET", path, vec![], None, &[]).await;
        assert_eq!(got, status, "{what}: {resp}");
        assert!(resp.to_string().contains(says), "{what}: expected `{says}` in {resp}");
    }
    // Methods no route defines: 405 naming what is allowed, signed or not.
    for (method, path, allow) in
        [("PUT", "/catalog/orders", "GET"), ("TRACE", "/catalog", "GET"), ("POST", "/catalog/orders/1.0", "GET")]
    {
        let (got, resp) = api.call(method, path, vec![], None, &[]).await;
        assert_eq!((got, resp["allow"].as_str()), (405, Some(allow)), "{method} {path}: {resp}");
    }
    assert!(p.registry.read_service("orders").await.unwrap().instances.is_empty(), "a hostile request was stored");
    let (status, resp) = api.call("POST", "/catalog/register", body(json!({})), Some(LOCAL_SECRET_KEY), &[]).await;
    assert_eq!(status, 200, "the server stopped answering good requests: {resp}");
    api.stop().await;
    p.stop().await;
}

/// The second local principal may write only its own service, through its
/// own routes: another service is refused with 403 naming the service and
/// the principal, by the per-service route and by the unscoped body route,
/// and nothing is stored. The account-wide principal is not limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_scoped_to_one_service_cannot_write_another() {
    use beacon_local::setup::{DEFAULT_SCOPED_SERVICE, LOCAL_SCOPED_ACCESS_KEY, LOCAL_SCOPED_SECRET_KEY};
    let p = TestPipeline::start("scoped").await;
    let api = LocalApi::start(p.registry.clone(), LOCAL_SECRET_KEY).await;
    let body = |service: &str, instance: &str| {
        serde_json::to_vec(&json!({
            "service_name": service, "service_version": "1.0", "instance_id": instance,
            "endpoint_url": "https://evil.example", "ttl": "300", "status": "healthy"
        }))
        .unwrap()
    };
    let scoped = |method: &'static str, path: String, b: Vec<u8>| {
        let api = &api;
        async move { api.call_as(LOCAL_SCOPED_ACCESS_KEY, method, &path, b, Some(LOCAL_SCOPED_SECRET_KEY), &[]).await }
    };
    let own = DEFAULT_SCOPED_SERVICE;
    let (status, resp) = scoped("POST", format!("/catalog/services/{own}/register"), body(own, "i-1")).await;
    assert_eq!(status, 200, "{resp}");

    let refusals = [
        ("/catalog/services/payments/register".to_owned(), body("payments", "i-1")),
        ("/catalog/services/payments/deregister".to_owned(), body("payments", "i-1")),
        ("/catalog/register".to_owned(), body("payments", "i-1")),
        // Its own service, but by the unscoped route its grant does not cover.
        ("/catalog/register".to_owned(), body(own, "i-2")),
    ];
    for (path, b) in refusals {
        let (status, resp) = scoped("POST", path.clone(), b).await;
        assert_eq!(status, 403, "{path}: {resp}");
        let message = resp["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(LOCAL_SCOPED_ACCESS_KEY) && message.contains("may write only service"),
            "{path}: {message}"
        );
    }
    let (_, resp) = scoped("POST", "/catalog/services/payments/register".into(), body("payments", "i-1")).await;
    assert!(resp["error"].as_str().unwrap().contains("`payments`"), "the refusal names the service: {resp}");

    assert!(
        ServiceState::read_service(&p.registry, "payments").await.unwrap().instances.is_empty(),
        "payments was written"
    );
    let own_instances = ServiceState::read_service(&p.registry, own).await.unwrap().instances;
    assert_eq!(own_instances.len(), 1, "only the allowed write landed: {own_instances:?}");

    // The account-wide principal writes any service.
    let (status, resp) = api
        .call("POST", "/catalog/services/payments/register", body("payments", "i-9"), Some(LOCAL_SECRET_KEY), &[])
        .await;
    assert_eq!(status, 200, "{resp}");
    api.stop().await;
    p.stop().await;
}
