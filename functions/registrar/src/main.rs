//! The registrar Lambda, on its service's schedule: set-up only (docs/architecture.md, "Crates").
//! Properties come from the bundled `service_properties.json` (path in
//! `REGISTRAR_PROPERTIES`, default beside the bootstrap) or, when that file
//! is absent, from `REGISTRAR_*` variables.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use beacon_aws::components::AwsComponents;
use beacon_aws::config::sdk_config;
use beacon_registrar::{RunOutcome, ServiceProperties, run_once};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    beacon_aws::logging::init();
    let path = std::env::var("REGISTRAR_PROPERTIES").unwrap_or_else(|_| {
        let root = std::env::var("LAMBDA_TASK_ROOT").unwrap_or_else(|_| ".".into());
        format!("{root}/service_properties.json")
    });
    let props = if std::path::Path::new(&path).exists() {
        ServiceProperties::from_file(&path)?
    } else {
        ServiceProperties::from_env()?
    };
    let config = sdk_config().await;
    let registry = beacon_aws::registry_from_env(&config)?;
    let components = AwsComponents::new(&config);
    let (registry, components, props) = (&registry, &components, &props);
    run(service_fn(move |event: LambdaEvent<EventBridgeEvent>| async move {
        let now = event.payload.time.map_or_else(beacon_domain::clock::now_seconds, |t| t.timestamp());
        let outcome = run_once(registry, components, props, now).await?;
        Ok::<_, Error>(match outcome {
            RunOutcome::Registered(status) => serde_json::json!({ "registered": status }),
            RunOutcome::Removed => serde_json::json!({ "removed": true }),
        })
    }))
    .await
}
