//! The SNS/SQS adapter for the [`Subscribers`] port (the sweeper's janitor,
//! `beacon_sweeper::janitor`), and the one STS call a registry viewer makes:
//! who it is ([`caller_user_id`]), the `beacon:owner` its queue is tagged
//! with.

use async_trait::async_trait;
use aws_sdk_sns::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use beacon_domain::ports::{LEASE_TAG, StoreError, Subscribers, TopicSubscription, VIEWER_QUEUE_PREFIXES, ViewerQueue};

/// The topic's subscriptions and the viewers' queues, over SNS and SQS.
#[derive(Debug, Clone)]
pub struct SnsSqsSubscribers {
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    topic_arn: String,
}

impl SnsSqsSubscribers {
    /// The subscribers of `topic_arn`.
    pub fn new(sns: aws_sdk_sns::Client, sqs: aws_sdk_sqs::Client, topic_arn: impl Into<String>) -> Self {
        Self { sns, sqs, topic_arn: topic_arn.into() }
    }
}

/// The janitor's port for `topic_arn`, from the shared AWS configuration.
pub fn subscribers(config: &aws_config::SdkConfig, topic_arn: impl Into<String>) -> SnsSqsSubscribers {
    SnsSqsSubscribers::new(aws_sdk_sns::Client::new(config), aws_sdk_sqs::Client::new(config), topic_arn)
}

fn call_error<E, R>(operation: String, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    // A refusal (no permission, a bad parameter) stays refused; throttling,
    // the server's faults and the network may pass on the next run.
    let retryable = match &err {
        SdkError::ServiceError(_) => err.code().is_some_and(|c| {
            c.contains("Throttl") || c.contains("Internal") || c.contains("Unavailable") || c == "RequestThrottled"
        }),
        _ => true,
    };
    let message = match err.message() {
        Some(m) => format!("{}: {m}", err.code().unwrap_or_default()),
        None => format!("{}", DisplayErrorContext(&err)),
    };
    StoreError { operation, message, retryable, bad_item: false, source: Some(Box::new(err)) }
}

/// The name of the queue at `url` (its last path segment).
fn queue_name(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

impl SnsSqsSubscribers {
    /// A queue's `CreatedTimestamp`; `None` if it is gone meanwhile.
    async fn created(&self, name: &str, url: &str) -> Result<Option<i64>, StoreError> {
        use aws_sdk_sqs::types::QueueAttributeName;
        let read = self.sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::CreatedTimestamp);
        match read.send().await {
            Ok(out) => Ok(out
                .attributes
                .and_then(|a| a.get(&QueueAttributeName::CreatedTimestamp).and_then(|v| v.trim().parse().ok()))),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) => Ok(None),
            Err(e) => Err(call_error(format!("GetQueueAttributes {name}"), e)),
        }
    }
}

#[async_trait]
impl Subscribers for SnsSqsSubscribers {
    async fn subscriptions(&self) -> Result<Vec<TopicSubscription>, StoreError> {
        let mut all = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .sns
                .list_subscriptions_by_topic()
                .topic_arn(&self.topic_arn)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| call_error(format!("ListSubscriptionsByTopic {}", self.topic_arn), e))?;
            for s in out.subscriptions.unwrap_or_default() {
                all.push(TopicSubscription {
                    arn: s.subscription_arn.unwrap_or_default(),
                    protocol: s.protocol.unwrap_or_default(),
                    endpoint: s.endpoint.unwrap_or_default(),
                });
            }
            match out.next_token {
                Some(t) if !t.is_empty() => next = Some(t),
                _ => return Ok(all),
            }
        }
    }

    async fn viewer_queues(&self) -> Result<Vec<ViewerQueue>, StoreError> {
        let mut urls = Vec::new();
        for prefix in VIEWER_QUEUE_PREFIXES {
            let mut next: Option<String> = None;
            loop {
                let out = self
                    .sqs
                    .list_queues()
                    .queue_name_prefix(*prefix)
                    .max_results(1000)
                    .set_next_token(next.take())
                    .send()
                    .await
                    .map_err(|e| call_error(format!("ListQueues {prefix}"), e))?;
                urls.extend(out.queue_urls.unwrap_or_default());
                match out.next_token {
                    Some(t) if !t.is_empty() => next = Some(t),
                    _ => break,
                }
            }
        }
        let mut queues = Vec::with_capacity(urls.len());
        for url in urls {
            let name = queue_name(&url).to_owned();
            let tags = match self.sqs.list_queue_tags().queue_url(&url).send().await {
                Ok(out) => out.tags.unwrap_or_default(),
                // Deleted since it was listed: nothing to do.
                Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) => continue,
                Err(e) => return Err(call_error(format!("ListQueueTags {name}"), e)),
            };
            let lease = tags.get(LEASE_TAG).and_then(|v| v.trim().parse::<i64>().ok());
            let created = match lease {
                Some(_) => None,
                None => self.created(&name, &url).await?,
            };
            queues.push(ViewerQueue { name, url, lease, created });
        }
        Ok(queues)
    }

    async fn queue_exists(&self, name: &str) -> Result<bool, StoreError> {
        match self.sqs.get_queue_url().queue_name(name).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) => Ok(false),
            Err(e) => Err(call_error(format!("GetQueueUrl {name}"), e)),
        }
    }

    async fn unsubscribe(&self, subscription_arn: &str) -> Result<(), StoreError> {
        match self.sns.unsubscribe().subscription_arn(subscription_arn).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found_exception()) => Ok(()),
            Err(e) => Err(call_error(format!("Unsubscribe {subscription_arn}"), e)),
        }
    }

    async fn delete_queue(&self, url: &str) -> Result<(), StoreError> {
        match self.sqs.delete_queue().queue_url(url).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) => Ok(()),
            Err(e) => Err(call_error(format!("DeleteQueue {}", queue_name(url)), e)),
        }
    }
}

/// Whether `url`'s host is a loopback address.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        rest.split([':', '/']).next().unwrap_or_default()
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Where STS calls go when nothing names an STS endpoint but SQS is a local
/// stack on loopback (an older `dev.env`): the same local server, so a
/// viewer of the local stack never asks AWS who it is. `var` reads the
/// environment.
pub fn local_sts_endpoint(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    if var("AWS_ENDPOINT_URL_STS").is_some() || var("AWS_ENDPOINT_URL").is_some() {
        return None;
    }
    var("AWS_ENDPOINT_URL_SQS").filter(|u| is_loopback(u))
}

/// The caller's `aws:userid` (the `UserId` STS GetCallerIdentity returns):
/// the `beacon:owner` a viewer tags its queue with, which the viewer policy
/// compares with `${aws:userid}`. GetCallerIdentity needs no permission.
pub async fn caller_user_id(config: &aws_config::SdkConfig) -> Result<String, StoreError> {
    let mut builder = aws_sdk_sts::config::Builder::from(config);
    if let Some(url) = local_sts_endpoint(|k| std::env::var(k).ok().filter(|v| !v.is_empty())) {
        builder = builder.endpoint_url(url);
    }
    let sts = aws_sdk_sts::Client::from_conf(builder.build());
    let out = sts.get_caller_identity().send().await.map_err(|e| {
        let retryable = !matches!(e, SdkError::ServiceError(_));
        let message = format!("{}", DisplayErrorContext(&e));
        StoreError {
            operation: "GetCallerIdentity".into(),
            message,
            retryable,
            bad_item: false,
            source: Some(Box::new(e)),
        }
    })?;
    out.user_id.filter(|u| !u.is_empty()).ok_or_else(|| StoreError {
        operation: "GetCallerIdentity".into(),
        message: "no UserId in the answer".into(),
        retryable: false,
        bad_item: false,
        source: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_is_named_by_its_urls_last_segment() {
        assert_eq!(queue_name("https://sqs.us-east-1.amazonaws.com/123456789012/beacon-ui-1-2"), "beacon-ui-1-2");
        assert_eq!(queue_name("http://127.0.0.1:5000/123456789012/beacon-watch-3-4/"), "beacon-watch-3-4");
    }

    #[test]
    fn sts_follows_a_loopback_sqs_endpoint_only_when_nothing_names_one() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(
            local_sts_endpoint(env(&[("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:5000")])),
            Some("http://127.0.0.1:5000".to_owned())
        );
        assert_eq!(
            local_sts_endpoint(env(&[("AWS_ENDPOINT_URL_SQS", "http://localhost:5000/")])),
            Some("http://localhost:5000/".to_owned())
        );
        assert!(local_sts_endpoint(env(&[("AWS_ENDPOINT_URL_SQS", "http://[::1]:5000")])).is_some());
        for pairs in [
            &[][..],
            &[("AWS_ENDPOINT_URL_SQS", "https://vpce-1.sqs.us-east-1.vpce.amazonaws.com")][..],
            &[("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1.evil.example:5000")][..],
            &[("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:5000"), ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:6000")][..],
            &[("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:5000"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:6000")][..],
        ] {
            assert_eq!(local_sts_endpoint(env(pairs)), None, "{pairs:?}");
        }
    }
}
