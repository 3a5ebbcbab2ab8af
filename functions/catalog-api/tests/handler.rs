//! The catalog API's handler over an in-memory catalog and a fixed clock:
//! routing, the seed's bodies, conditional writes, expiry and paging, with
//! no network. (Signed requests against `beacon dev`'s server and DynamoDB
//! Local are `tests/tests/catalog_api.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use beacon_catalog_api::{ApiConfig, ApiRequest, handle};
use beacon_domain::memory::MemoryCatalog;
use serde_json::{Value, json};

const NOW: i64 = 1_700_000_000;

async fn call(catalog: &MemoryCatalog, req: &ApiRequest, now: i64) -> (u16, Value) {
    handle(catalog, ApiConfig::default(), req, now).await
}

fn post(path: &str, body: Value) -> ApiRequest {
    ApiRequest { method: "POST".into(), path: path.into(), body: body.to_string().into_bytes(), ..Default::default() }
}

fn get(path: &str, query: &[(&str, &str)]) -> ApiRequest {
    ApiRequest {
        method: "GET".into(),
        path: path.into(),
        query: query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    }
}

fn seed_body(instance: Option<&str>, ttl: Value) -> Value {
    let mut body = json!({
        "service_name": "helloworld", "service_version": "1.0",
        "endpoint_url": "https://abc.execute-api.us-east-1.amazonaws.com/dev", "ttl": ttl, "status": "healthy"
    });
    if let Some(i) = instance {
        body["instance_id"] = json!(i);
    }
    body
}

#[tokio::test]
async fn the_seeds_register_then_lookup_with_its_text_ttl_and_the_injected_clock() {
    let catalog = MemoryCatalog::new();
    let (status, body) = call(&catalog, &post("/dev/catalog/register", seed_body(None, json!("300"))), NOW).await;
    assert_eq!(status, 200, "{body}");
    let stored = catalog.registrations();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].instance_id.as_str(), stored[0].expires_at, stored[0].updated_at),
        ("default", NOW + 300, NOW)
    );

    let (status, body) = call(&catalog, &get("/catalog/helloworld/1.0", &[]), NOW + 299).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["endpoint_url"], "https://abc.execute-api.us-east-1.amazonaws.com/dev");
    assert_eq!((body["ttl"].as_u64(), body["service_version"].as_str()), (Some(300), Some("1.0.0")));
    // One second past its expiry the same lookup finds nothing.
    let (status, body) = call(&catalog, &get("/catalog/helloworld/1.0", &[]), NOW + 300).await;
    assert_eq!((status, &body["error"]), (404, &json!("Service Not Found")));
}

#[tokio::test]
async fn create_only_refuses_an_existing_instance_and_deregister_says_what_it_found() {
    let catalog = MemoryCatalog::new();
    let mut create = post("/catalog/register", seed_body(Some("i-1"), json!(60)));
    create.if_none_match = Some("*".into());
    assert_eq!(call(&catalog, &create, NOW).await.0, 200);
    let (status, body) = call(&catalog, &create, NOW + 1).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(catalog.registrations()[0].updated_at, NOW, "the refused create wrote nothing");

    let dereg = post(
        "/catalog/deregister",
        json!({"service_name": "helloworld", "service_version": "1.0", "instance_id": "i-1"}),
    );
    assert_eq!(call(&catalog, &dereg, NOW).await.0, 200);
    assert!(catalog.registrations().is_empty());
    let (status, body) = call(&catalog, &dereg, NOW).await;
    assert_eq!((status, &body["error"]), (404, &json!("Service Not Found")));
}

#[tokio::test]
async fn resolution_names_why_nothing_resolves() {
    let catalog = MemoryCatalog::new();
    call(&catalog, &post("/catalog/register", seed_body(None, json!(60))), NOW).await;
    let (status, body) = call(&catalog, &get("/catalog/helloworld", &[("requirement", "^1")]), NOW).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resolved"]["version"], "1.0.0");
    let (status, body) = call(&catalog, &get("/catalog/helloworld", &[("requirement", "^2")]), NOW).await;
    assert_eq!(status, 404);
    assert_eq!(body["unresolved"]["reason"], "no_version_matches");
    let (status, body) = call(&catalog, &get("/catalog/helloworld", &[]), NOW + 61).await;
    assert_eq!((status, &body["unresolved"]["reason"]), (404, &json!("no_such_service")));
}

#[tokio::test]
async fn every_invalid_field_is_named_at_once_and_nothing_is_written() {
    let catalog = MemoryCatalog::new();
    let body = json!({"service_name": "9lives", "service_version": "one", "endpoint_url": "ftp://x", "ttl": "soon", "status": "up"});
    let (status, out) = call(&catalog, &post("/catalog/register", body), NOW).await;
    assert_eq!(status, 400, "{out}");
    let fields: Vec<&str> = out["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    for want in ["service_name", "service_version", "endpoint_url", "ttl", "status"] {
        assert!(fields.contains(&want), "{want} not named in {fields:?}");
    }
    assert!(catalog.registrations().is_empty());
}

#[tokio::test]
async fn the_list_pages_through_every_registration_with_opaque_tokens() {
    let catalog = MemoryCatalog::new();
    for i in 0..5 {
        call(&catalog, &post("/catalog/register", seed_body(Some(&format!("i-{i}")), json!(60))), NOW).await;
    }
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..10 {
        let mut query = vec![("limit", "2")];
        if let Some(t) = &next {
            query.push(("next", t.as_str()));
        }
        let (status, body) = call(&catalog, &get("/catalog", &query), NOW).await;
        assert_eq!(status, 200, "{body}");
        seen.extend(
            body["registrations"].as_array().unwrap().iter().map(|r| r["instance_id"].as_str().unwrap().to_owned()),
        );
        next = body["next"].as_str().map(str::to_owned);
        if next.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["i-0", "i-1", "i-2", "i-3", "i-4"]);
    let (status, body) = call(&catalog, &get("/catalog", &[("next", "not-a-token")]), NOW).await;
    assert_eq!((status, &body["fields"][0]["field"]), (400, &json!("next")));
}

#[tokio::test]
async fn the_per_service_routes_take_the_service_from_the_path_and_refuse_another_in_the_body() {
    let catalog = MemoryCatalog::new();
    let mut body = seed_body(Some("i-1"), json!(60));
    body.as_object_mut().unwrap().remove("service_name");
    let (status, out) = call(&catalog, &post("/dev/catalog/services/helloworld/register", body), NOW).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(catalog.registrations()[0].service, "helloworld");

    // The body may repeat the path's service, never name another: IAM
    // authorised the path.
    let (status, out) =
        call(&catalog, &post("/catalog/services/orders/register", seed_body(Some("i-2"), json!(60))), NOW).await;
    assert_eq!((status, &out["service"]), (403, &json!("helloworld")), "{out}");
    assert!(out["error"].as_str().unwrap().contains("`orders`"), "{out}");
    assert_eq!(catalog.registrations().len(), 1, "the refused write stored something");

    let dereg =
        post("/catalog/services/helloworld/deregister", json!({"service_version": "1.0", "instance_id": "i-1"}));
    assert_eq!(call(&catalog, &dereg, NOW).await.0, 200);
    assert!(catalog.registrations().is_empty());
    let get = get("/catalog/services/helloworld/register", &[]);
    assert_eq!(call(&catalog, &get, NOW).await.0, 405);
}

#[tokio::test]
async fn the_unscoped_routes_can_be_turned_off() {
    let catalog = MemoryCatalog::new();
    let off = ApiConfig { unscoped_writes: false };
    let (status, out) = handle(&catalog, off, &post("/catalog/register", seed_body(None, json!(60))), NOW).await;
    assert_eq!(status, 403, "{out}");
    assert!(out["error"].as_str().unwrap().contains("/catalog/services/"), "{out}");
    assert!(catalog.registrations().is_empty());
    let (status, _) =
        handle(&catalog, off, &post("/catalog/services/helloworld/register", seed_body(None, json!(60))), NOW).await;
    assert_eq!(status, 200);
}
