//! Wire faults for the tests: the fault proxy ([`beacon_local::proxy`]) in
//! front of DynamoDB Local and the SNS/SQS server, one proxy per service
//! with one shared [`FaultPlan`], and clients that go through them. The
//! clients are the ordinary ones with the ordinary policy
//! ([`beacon_aws::config`]); only their endpoints differ, exactly as a
//! deployed function's only differ by its `AWS_ENDPOINT_URL_*` variables.

use std::sync::Arc;

use beacon_local::pipeline::Clients;
use beacon_local::proxy::{FaultPlan, FaultProxy};

/// Three proxies and their plan.
pub struct Wire {
    /// The faults to inject, and the log of what was.
    pub plan: Arc<FaultPlan>,
    /// In front of DynamoDB Local.
    pub dynamodb: FaultProxy,
    /// In front of the SNS server.
    pub sns: FaultProxy,
    /// In front of the SQS server.
    pub sqs: FaultProxy,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the suite with ./scripts/test"))
}

impl Wire {
    /// Proxies in front of the local stack's engines (from `dev.env`).
    pub async fn start() -> Self {
        Self::start_to(&env("AWS_ENDPOINT_URL_SNS")).await
    }

    /// The same, with SNS reached through `sns_upstream` (an
    /// [`crate::faults::Outage`] hop, say).
    pub async fn start_to(sns_upstream: &str) -> Self {
        let plan = FaultPlan::new();
        let start = |upstream: String| {
            let plan = plan.clone();
            async move { FaultProxy::start(&upstream, 0, plan).await.expect("starting a fault proxy") }
        };
        Self {
            dynamodb: start(env("AWS_ENDPOINT_URL_DYNAMODB")).await,
            sns: start(sns_upstream.to_owned()).await,
            sqs: start(env("AWS_ENDPOINT_URL_SQS")).await,
            plan,
        }
    }

    /// Clients through the proxies: DynamoDB, SNS and SQS. The streams
    /// client stays direct: it is the local stand-in for Lambda's own
    /// pollers, which Beacon does not run in AWS.
    pub fn clients(&self, config: &aws_config::SdkConfig) -> Clients {
        let direct = Clients::from_config(config);
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(config).endpoint_url(&self.dynamodb.url).build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(config).endpoint_url(&self.sns.url).build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(config).endpoint_url(&self.sqs.url).build(),
            ),
            ..direct
        }
    }

    /// The endpoint variables a child process (a function binary) gets to
    /// go through the proxies.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb.url.clone()),
            ("AWS_ENDPOINT_URL_SNS", self.sns.url.clone()),
            ("AWS_ENDPOINT_URL_SQS", self.sqs.url.clone()),
        ]
    }

    /// Stops the proxies.
    pub async fn stop(self) {
        self.dynamodb.stop().await;
        self.sns.stop().await;
        self.sqs.stop().await;
    }
}
