//! Seed 1's registrar agent, in Rust. On a schedule it checks the parts that
//! make up a service — its Lambda functions and its API (REST or HTTP) — and:
//!
//! - all present → registers the service `healthy`;
//! - some present → registers it `unhealthy`;
//! - none present → deregisters it, removes its own schedule, and deletes
//!   itself (the service is gone, so its agent has nothing left to do).
//!
//! Every run rewrites the registration with a fresh `expires_at`, so a
//! registrar that stops running lets its service expire (the sweeper).
//!
//! Fixed from the seed: only "not found" counts as a missing part. The seed
//! treated any client error (throttling, access denied) as "gone" and could
//! deregister a healthy service and delete itself; here such an error fails
//! the run, writes nothing, and the next scheduled run tries again.

use beacon_domain::ports::{Catalog, CheckError, Components, InstanceKey};
use beacon_domain::registration::{DEFAULT_INSTANCE_ID, DEFAULT_TTL_SECONDS, Registration, Status, ttl_from_json};
use serde::Deserialize;

/// Every IAM action the registrar's code needs; `infra/registrar.yaml` must
/// grant exactly these (a test checks). `apigateway:GET` covers GetRestApi
/// and GetApi.
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "lambda:GetFunctionConfiguration",
    "apigateway:GET",
    "lambda:DeleteFunction",
    "events:ListTargetsByRule",
    "events:RemoveTargets",
    "events:DeleteRule",
];

/// What the registrar knows about its service: seed 1's
/// `service_properties.json`, plus Beacon's optional fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServiceProperties {
    /// The service's name.
    pub service_name: String,
    /// Its version (the seed uses `1.0`).
    pub service_version: String,
    /// Where clients call it.
    pub endpoint_url: String,
    /// The Lambda functions that make up the service.
    #[serde(default)]
    pub lambda_functions: Vec<String>,
    /// Its REST API (API Gateway v1), as in the seed.
    #[serde(default)]
    pub rest_api_id: Option<String>,
    /// Its HTTP API (API Gateway v2).
    #[serde(default)]
    pub http_api_id: Option<String>,
    /// Instance id (default `default`).
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Registration ttl in seconds (the seed sends "300").
    #[serde(default, deserialize_with = "ttl_text_or_number")]
    pub ttl: Option<u64>,
    /// The registrar's own function name, deleted when the service is gone.
    #[serde(default)]
    pub registrar_name: Option<String>,
    /// The EventBridge rule that schedules the registrar, removed with it
    /// (default: the registrar's own name, as the seed creates its rule).
    #[serde(default)]
    pub schedule_rule: Option<String>,
}

fn ttl_text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    ttl_from_json(value.as_ref()).map_err(serde::de::Error::custom)
}

/// Why the properties could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PropertiesError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The path tried.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The JSON is malformed or a field has the wrong type.
    #[error("{path}: {source}")]
    Parse {
        /// The path (or `environment`).
        path: String,
        /// The cause, naming the field.
        #[source]
        source: serde_json::Error,
    },
    /// A required variable is missing.
    #[error(transparent)]
    Env(#[from] beacon_aws::config::MissingEnv),
    /// The properties break a registration rule.
    #[error("service properties: {0}")]
    Invalid(#[from] beacon_domain::ValidationError),
}

impl ServiceProperties {
    /// Reads the bundled JSON file.
    pub fn from_file(path: &str) -> Result<Self, PropertiesError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| PropertiesError::Read { path: path.into(), source })?;
        let props: Self =
            serde_json::from_str(&text).map_err(|source| PropertiesError::Parse { path: path.into(), source })?;
        props.registration(Status::Healthy, 0)?;
        Ok(props)
    }

    /// Reads `REGISTRAR_SERVICE_NAME`, `REGISTRAR_SERVICE_VERSION`,
    /// `REGISTRAR_ENDPOINT_URL`, and optional `REGISTRAR_LAMBDA_FUNCTIONS`
    /// (comma-separated), `REGISTRAR_REST_API_ID`, `REGISTRAR_HTTP_API_ID`,
    /// `REGISTRAR_INSTANCE_ID`, `REGISTRAR_TTL`, `REGISTRAR_NAME`,
    /// `REGISTRAR_SCHEDULE_RULE`.
    pub fn from_env() -> Result<Self, PropertiesError> {
        use beacon_aws::config::require_env;
        let opt = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let ttl = match opt("REGISTRAR_TTL") {
            None => None,
            Some(t) => Some(t.parse().map_err(|_| {
                beacon_domain::ValidationError::new("ttl_seconds", format!("REGISTRAR_TTL `{t}` is not a number"))
            })?),
        };
        let props = Self {
            service_name: require_env("REGISTRAR_SERVICE_NAME", "the service this registrar registers")?,
            service_version: require_env("REGISTRAR_SERVICE_VERSION", "the service's version")?,
            endpoint_url: require_env("REGISTRAR_ENDPOINT_URL", "where clients call the service")?,
            lambda_functions: opt("REGISTRAR_LAMBDA_FUNCTIONS")
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
            rest_api_id: opt("REGISTRAR_REST_API_ID"),
            http_api_id: opt("REGISTRAR_HTTP_API_ID"),
            instance_id: opt("REGISTRAR_INSTANCE_ID"),
            ttl,
            registrar_name: opt("REGISTRAR_NAME"),
            schedule_rule: opt("REGISTRAR_SCHEDULE_RULE"),
        };
        props.registration(Status::Healthy, 0)?;
        Ok(props)
    }

    /// The registration these properties describe, `status` at `now`.
    pub fn registration(&self, status: Status, now: i64) -> Result<Registration, beacon_domain::ValidationError> {
        Registration::new_at(
            &self.service_name,
            &self.service_version,
            self.instance_id.as_deref().unwrap_or(DEFAULT_INSTANCE_ID),
            &self.endpoint_url,
            status,
            self.ttl.unwrap_or(DEFAULT_TTL_SECONDS),
            now.max(0),
        )
    }
}

/// The state of the service's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Every part is there.
    Healthy,
    /// Some parts are there.
    Unhealthy,
    /// None is: the service was removed.
    Removed,
}

/// Checks every part (seed 1's `component_status`).
pub async fn component_status(c: &impl Components, props: &ServiceProperties) -> Result<Health, CheckError> {
    let mut present = 0;
    let mut total = 0;
    for f in &props.lambda_functions {
        total += 1;
        present += usize::from(c.lambda_exists(f).await?);
    }
    if let Some(id) = &props.rest_api_id {
        total += 1;
        present += usize::from(c.rest_api_exists(id).await?);
    }
    if let Some(id) = &props.http_api_id {
        total += 1;
        present += usize::from(c.http_api_exists(id).await?);
    }
    Ok(match present {
        0 => Health::Removed,
        p if p == total => Health::Healthy,
        _ => Health::Unhealthy,
    })
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Registered with this status (and a fresh `expires_at`).
    Registered(Status),
    /// Deregistered, and removed its schedule and itself.
    Removed,
}

/// Why a run failed (nothing was decided; the next run retries).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A part could not be checked.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The registry write failed.
    #[error(transparent)]
    Store(#[from] beacon_domain::ports::StoreError),
    /// The properties break a rule.
    #[error(transparent)]
    Invalid(#[from] beacon_domain::ValidationError),
}

/// One scheduled run at `now`.
pub async fn run_once(
    catalog: &impl Catalog,
    components: &impl Components,
    props: &ServiceProperties,
    now: i64,
) -> Result<RunOutcome, RunError> {
    let health = component_status(components, props).await?;
    let status = match health {
        Health::Healthy => Status::Healthy,
        Health::Unhealthy => Status::Unhealthy,
        Health::Removed => {
            let r = props.registration(Status::Unhealthy, now)?;
            // Already gone (expired, or deregistered by hand) is as good.
            catalog.delete(&InstanceKey::of(&r)).await?;
            tracing::info!(service = %r.service, version = %r.version, "service removed: deregistered");
            // The seed names its rule like the registrar and has no
            // schedule_rule: without one, the rule named like the registrar.
            if let Some(rule) = props.schedule_rule.as_ref().or(props.registrar_name.as_ref()) {
                components.remove_schedule(rule).await?;
            }
            if let Some(name) = &props.registrar_name {
                components.delete_function(name).await?;
            }
            return Ok(RunOutcome::Removed);
        }
    };
    let r = props.registration(status, now)?;
    catalog.put(&r).await?;
    tracing::info!(service = %r.service, version = %r.version, %status, "registered");
    Ok(RunOutcome::Registered(status))
}
