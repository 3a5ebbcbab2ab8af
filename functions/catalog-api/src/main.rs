//! The catalog API Lambda behind API Gateway: set-up only (docs/architecture.md, "Crates").
//! API Gateway verifies SigV4 on the write routes (IAM auth in the template).

use beacon_aws::config::sdk_config;
use beacon_catalog_api::{ApiConfig, allow_header, from_lambda, handle};
use lambda_http::{Body, Error, Request, Response, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    beacon_aws::logging::init();
    let api = ApiConfig::from_env()?;
    let config = sdk_config().await;
    let registry = beacon_aws::registry_from_env(&config)?;
    let registry = &registry;
    run(service_fn(move |request: Request| async move {
        let request = from_lambda(&request);
        let now = beacon_domain::clock::now_seconds();
        let (status, json) = handle(registry, api, &request, now).await;
        let mut response = Response::builder().status(status).header("content-type", "application/json");
        if let Some(allow) = allow_header(status, &json) {
            response = response.header("allow", allow);
        }
        Ok::<_, Error>(response.body(Body::Text(json.to_string()))?)
    }))
    .await
}
