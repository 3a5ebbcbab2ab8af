//! The registrar's [`Components`] port over Lambda, API Gateway (v1 and v2)
//! and EventBridge. Behind the `registrar` feature, so the other functions
//! do not compile those SDKs.
//!
//! Only "not found" counts as a missing part: access denied, throttling or
//! any other failure is a [`CheckError`], and the run changes nothing.

use async_trait::async_trait;
use aws_sdk_lambda::error::ProvideErrorMetadata as _;
use beacon_domain::ports::{CheckError, Components};

/// The AWS adapter for [`Components`].
#[derive(Debug, Clone)]
pub struct AwsComponents {
    /// Lambda.
    pub lambda: aws_sdk_lambda::Client,
    /// API Gateway (REST APIs).
    pub apigateway: aws_sdk_apigateway::Client,
    /// API Gateway v2 (HTTP APIs).
    pub apigatewayv2: aws_sdk_apigatewayv2::Client,
    /// EventBridge (the schedule).
    pub events: aws_sdk_eventbridge::Client,
}

impl AwsComponents {
    /// All four clients from one config.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            lambda: aws_sdk_lambda::Client::new(config),
            apigateway: aws_sdk_apigateway::Client::new(config),
            apigatewayv2: aws_sdk_apigatewayv2::Client::new(config),
            events: aws_sdk_eventbridge::Client::new(config),
        }
    }
}

/// Maps an SDK result to "exists / not found / could not tell".
fn existence<T, E, R>(
    part: String,
    result: Result<T, aws_sdk_lambda::error::SdkError<E, R>>,
) -> Result<bool, CheckError>
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.code(), Some("ResourceNotFoundException" | "NotFoundException")) => Ok(false),
        Err(e) => Err(CheckError { part, source: Box::new(e) }),
    }
}

#[async_trait]
impl Components for AwsComponents {
    async fn lambda_exists(&self, name: &str) -> Result<bool, CheckError> {
        existence(format!("Lambda {name}"), self.lambda.get_function_configuration().function_name(name).send().await)
    }

    async fn rest_api_exists(&self, id: &str) -> Result<bool, CheckError> {
        existence(format!("REST API {id}"), self.apigateway.get_rest_api().rest_api_id(id).send().await)
    }

    async fn http_api_exists(&self, id: &str) -> Result<bool, CheckError> {
        existence(format!("HTTP API {id}"), self.apigatewayv2.get_api().api_id(id).send().await)
    }

    async fn remove_schedule(&self, rule: &str) -> Result<(), CheckError> {
        let err =
            |e: Box<dyn std::error::Error + Send + Sync>| CheckError { part: format!("schedule {rule}"), source: e };
        // A rule that is already gone is done: a retried run after a partial
        // removal, or a rule removed by hand.
        let gone = |code: Option<&str>| code == Some("ResourceNotFoundException");
        let targets = match self.events.list_targets_by_rule().rule(rule).send().await {
            Ok(t) => t,
            Err(e) if gone(e.code()) => return Ok(()),
            Err(e) => return Err(err(Box::new(e))),
        };
        let ids: Vec<String> = targets.targets.unwrap_or_default().into_iter().map(|t| t.id).collect();
        if !ids.is_empty() {
            match self.events.remove_targets().rule(rule).set_ids(Some(ids)).send().await {
                Ok(_) => {}
                Err(e) if gone(e.code()) => return Ok(()),
                Err(e) => return Err(err(Box::new(e))),
            }
        }
        match self.events.delete_rule().name(rule).send().await {
            Ok(_) => Ok(()),
            Err(e) if gone(e.code()) => Ok(()),
            Err(e) => Err(err(Box::new(e))),
        }
    }

    async fn delete_function(&self, name: &str) -> Result<(), CheckError> {
        self.lambda
            .delete_function()
            .function_name(name)
            .send()
            .await
            .map_err(|e| CheckError { part: format!("Lambda {name}"), source: Box::new(e) })?;
        Ok(())
    }
}
