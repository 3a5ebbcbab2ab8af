//! A queue subscribed to the change topic, as a registry viewer (`beacon
//! watch`, `beacon ui`) or a user (`beacon dev --demo`, the tests) makes
//! one: the queue policy that lets only the topic send, the viewer's
//! `beacon:owner` and `beacon:lease` tags and the lease kept ahead, and
//! reading its events. Used against AWS as against the local stack, so it
//! lives with the adapters (docs/architecture.md, "The janitor").

type Cause = Box<dyn std::error::Error + Send + Sync>;

/// An SNS or SQS call for a subscribed queue failed: which call, and why.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// An AWS call failed. A refusal leads with the account, principal
    /// and resource (a viewer in a member account is refused by the
    /// registry's topic policy, not its own).
    #[error("{operation}: {}", refusal.clone().unwrap_or_else(|| crate::error_chain(source.as_ref())))]
    Call {
        /// The call and its target (`CreateQueue beacon-watch-…`).
        operation: String,
        /// Who refused what, when AWS refused it.
        refusal: Option<String>,
        /// The SDK's error, with its context.
        #[source]
        source: Cause,
    },
    /// A call answered without what is needed.
    #[error("{0}")]
    Incomplete(String),
}

impl CallError {
    /// Maps an SDK error of `operation`.
    pub fn call<E: std::error::Error + Send + Sync + 'static>(operation: impl Into<String>) -> impl FnOnce(E) -> Self {
        let operation = operation.into();
        move |e| CallError::Call { operation, refusal: None, source: Box::new(e) }
    }

    /// Maps an AWS call's error of `operation`; a refusal names who refused
    /// what ([`crate::refusal`]).
    pub fn aws<E>(operation: impl Into<String>) -> impl FnOnce(E) -> Self
    where
        E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let operation = operation.into();
        move |e| {
            let refusal = match (e.code(), e.message()) {
                (Some(code), Some(message)) if crate::refusal::is_refusal(code) => {
                    Some(crate::refusal::describe(code, message))
                }
                _ => None,
            };
            CallError::Call { operation, refusal, source: Box::new(e) }
        }
    }
}

/// A queue subscribed to the topic.
#[derive(Debug, Clone)]
pub struct SubscribedQueue {
    /// The queue's URL.
    pub url: String,
    /// The queue's ARN.
    pub arn: String,
    /// The subscription, as Subscribe returned it.
    pub subscription_arn: Option<String>,
}

/// A registry viewer's lease on its queue (docs/architecture.md, "The
/// janitor"): whose queue it is, and how far ahead `beacon:lease` is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerLease {
    /// The viewer's `aws:userid` (`beacon:owner`).
    pub owner: String,
    /// How far ahead of now the lease is set.
    pub length: std::time::Duration,
}

/// The lease length when `BEACON_VIEWER_LEASE_SECONDS` does not set one.
pub const DEFAULT_VIEWER_LEASE: std::time::Duration = std::time::Duration::from_secs(300);

impl ViewerLease {
    /// The lease for `owner`, its length from `BEACON_VIEWER_LEASE_SECONDS`
    /// (at least 2 s; tests shorten it) or [`DEFAULT_VIEWER_LEASE`].
    pub fn from_env(owner: impl Into<String>) -> Self {
        let length = std::env::var("BEACON_VIEWER_LEASE_SECONDS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_VIEWER_LEASE, |s| std::time::Duration::from_secs(s.max(2)));
        Self { owner: owner.into(), length }
    }

    /// The lease's end if it is renewed at `now` (epoch seconds).
    pub fn until(&self, now: i64) -> i64 {
        now.saturating_add(i64::try_from(self.length.as_secs()).unwrap_or(i64::MAX))
    }

    /// How often it is renewed: a fifth of its length (every minute for
    /// five), so four renewals in a row can fail before it lapses.
    pub fn renew_every(&self) -> std::time::Duration {
        (self.length / 5).max(std::time::Duration::from_millis(400))
    }
}

impl SubscribedQueue {
    /// Sets the queue's `beacon:lease` to `until` (TagQueue: the viewer
    /// policy lets a viewer tag only the queues it owns).
    pub async fn set_lease(
        &self,
        sqs: &aws_sdk_sqs::Client,
        until: i64,
    ) -> Result<(), aws_sdk_sqs::error::SdkError<aws_sdk_sqs::operation::tag_queue::TagQueueError>> {
        sqs.tag_queue()
            .queue_url(&self.url)
            .tags(beacon_domain::ports::LEASE_TAG, until.to_string())
            .send()
            .await
            .map(|_| ())
    }

    /// Keeps the lease ahead until the queue is gone (the janitor removed
    /// it: its lease had lapsed), which it returns as an error; a failed
    /// renewal is logged and tried again at the next turn.
    pub async fn keep_lease(&self, sqs: &aws_sdk_sqs::Client, lease: &ViewerLease) -> Result<(), CallError> {
        loop {
            tokio::time::sleep(lease.renew_every()).await;
            match self.set_lease(sqs, lease.until(beacon_domain::clock::now_seconds())).await {
                Ok(()) => {}
                Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) => {
                    return Err(CallError::Incomplete(format!(
                        "the queue {} was removed (its lease lapsed: was this process suspended?)",
                        self.url
                    )));
                }
                Err(e) => tracing::warn!(
                    queue = %self.url,
                    error = %aws_sdk_sqs::error::DisplayErrorContext(&e),
                    "renewing the queue's lease failed; retrying"
                ),
            }
        }
    }

    /// A viewer's exit: the lease ends, and the sweeper's janitor
    /// removes the subscription and then the queue on its next run (a
    /// viewer may not unsubscribe; and deleting the queue first would leave
    /// a subscription pointing at nothing, which the local SNS server
    /// answers by failing every publish to the topic).
    pub async fn release(
        &self,
        sqs: &aws_sdk_sqs::Client,
    ) -> Result<(), aws_sdk_sqs::error::SdkError<aws_sdk_sqs::operation::tag_queue::TagQueueError>> {
        // Already passed (the janitor removes a lease strictly before its
        // run's time), yet recent: another stack's janitor, which sees the
        // queue but not its subscription, leaves it to this topic's.
        self.set_lease(sqs, beacon_domain::clock::now_seconds() - 1).await
    }
}

/// Creates the queue `name` (CreateQueue is idempotent) and returns its URL.
pub async fn ensure_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String, CallError> {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(CallError::aws(format!("CreateQueue {name}")))?
        .queue_url
        .ok_or_else(|| CallError::Incomplete(format!("CreateQueue {name} returned no URL")))
}

/// A queue's ARN.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, CallError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(CallError::aws(format!("GetQueueAttributes {url}")))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| CallError::Incomplete(format!("no ARN for queue {url}")))
}

/// The queue policy SNS needs to deliver to a queue: `sqs:SendMessage` by
/// the SNS service, only for messages from `topic_arn` (`aws:SourceArn`),
/// and an explicit Deny of `sqs:SendMessage` to every principal whose
/// request does not come from `topic_arn`, so no identity policy in the
/// account (a broad `sqs:SendMessage` grant) can forge events into the
/// queue. Without the Allow AWS drops every delivery (the local SNS server
/// does not check, so it is evaluated with an IAM simulator in the tests).
pub fn queue_policy(queue_arn: &str, topic_arn: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OnlyTheBeaconTopic",
                "Effect": "Allow",
                "Principal": { "Service": "sns.amazonaws.com" },
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": { "ArnEquals": { "aws:SourceArn": topic_arn } }
            },
            {
                "Sid": "NothingButTheBeaconTopic",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": { "ArnNotEquals": { "aws:SourceArn": topic_arn } }
            }
        ]
    })
}

/// Creates (or reuses) the queue `name`, lets only `topic_arn` send to it
/// ([`queue_policy`]), and subscribes it with raw delivery and an optional
/// filter policy. For a user's queue; a registry viewer's is
/// [`subscribe_viewer_queue`].
pub async fn subscribe_queue(
    sqs: &aws_sdk_sqs::Client,
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    name: &str,
    filter_policy: Option<&str>,
) -> Result<SubscribedQueue, CallError> {
    let url = ensure_queue(sqs, name).await?;
    subscribe_url(sqs, sns, topic_arn, name, url, filter_policy).await
}

/// A registry viewer's queue (`name` must start with one of
/// [`beacon_domain::ports::VIEWER_QUEUE_PREFIXES`]): created with its
/// `beacon:owner` and `beacon:lease` tags (the viewer policy allows a
/// viewer to create a queue only so tagged, and to use only the queues it
/// owns), given [`queue_policy`], then subscribed. Keep the lease with
/// [`SubscribedQueue::keep_lease`]; end it with
/// [`SubscribedQueue::release`].
pub async fn subscribe_viewer_queue(
    sqs: &aws_sdk_sqs::Client,
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    name: &str,
    filter_policy: Option<&str>,
    lease: &ViewerLease,
) -> Result<SubscribedQueue, CallError> {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .tags(beacon_domain::ports::OWNER_TAG, &lease.owner)
        .tags(beacon_domain::ports::LEASE_TAG, lease.until(beacon_domain::clock::now_seconds()).to_string())
        .send()
        .await
        .map_err(CallError::aws(format!("CreateQueue {name}")))?
        .queue_url
        .ok_or_else(|| CallError::Incomplete(format!("CreateQueue {name} returned no URL")))?;
    let subscribed = subscribe_url(sqs, sns, topic_arn, name, url.clone(), filter_policy).await;
    if subscribed.is_err() {
        // Not subscribed: hand the queue to the janitor at once.
        let queue = SubscribedQueue { url, arn: String::new(), subscription_arn: None };
        let _ = queue.release(sqs).await;
    }
    subscribed
}

async fn subscribe_url(
    sqs: &aws_sdk_sqs::Client,
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    name: &str,
    url: String,
    filter_policy: Option<&str>,
) -> Result<SubscribedQueue, CallError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let arn = queue_arn(sqs, &url).await?;
    // The policy before the subscription, so no delivery is ever refused.
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::Policy, queue_policy(&arn, topic_arn).to_string())
        .send()
        .await
        .map_err(CallError::aws(format!("SetQueueAttributes {name}")))?;
    let mut subscribe =
        sns.subscribe().topic_arn(topic_arn).protocol("sqs").endpoint(&arn).attributes("RawMessageDelivery", "true");
    if let Some(policy) = filter_policy {
        subscribe = subscribe.attributes("FilterPolicy", policy);
    }
    let subscription_arn =
        subscribe.send().await.map_err(CallError::aws(format!("Subscribe {name}")))?.subscription_arn;
    Ok(SubscribedQueue { url, arn, subscription_arn })
}

/// The SNS and SQS clients a subscribed queue needs.
#[derive(Debug, Clone)]
pub struct Clients {
    /// SQS (the queue).
    pub sqs: aws_sdk_sqs::Client,
    /// SNS (the subscription).
    pub sns: aws_sdk_sns::Client,
}

impl Clients {
    /// Both, from the shared AWS configuration.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self { sqs: aws_sdk_sqs::Client::new(config), sns: aws_sdk_sns::Client::new(config) }
    }

    /// Both, in the topic's Region: the topic takes only queues of its own
    /// Region, so a viewer in a member account whose default Region is
    /// elsewhere makes its queue where the registry is.
    pub fn for_topic(config: &aws_config::SdkConfig, topic_arn: &str) -> Self {
        match topic_arn.split(':').nth(3).filter(|r| !r.is_empty()) {
            Some(region) if config.region().map(|r| r.as_ref()) != Some(region) => {
                let region = aws_config::Region::new(region.to_owned());
                Self {
                    sqs: aws_sdk_sqs::Client::from_conf(
                        aws_sdk_sqs::config::Builder::from(config).region(region.clone()).build(),
                    ),
                    sns: aws_sdk_sns::Client::from_conf(
                        aws_sdk_sns::config::Builder::from(config).region(region).build(),
                    ),
                }
            }
            _ => Self::new(config),
        }
    }
}

/// A subscribed queue with the client that reads it: what a viewer holds.
#[derive(Debug, Clone)]
pub struct EventQueue {
    sqs: aws_sdk_sqs::Client,
    queue: SubscribedQueue,
}

/// How a [`EventQueue::release`] went.
#[derive(Debug)]
pub enum Released {
    /// The lease is ended: the janitor takes the queue.
    Done,
    /// Nothing answered (under `beacon dev`, Ctrl-C reaches the local
    /// SNS/SQS server too, and the queue went with it).
    EndpointGone,
}

impl EventQueue {
    /// A registry viewer's queue `name`, subscribed with `filter_policy`
    /// and leased by `lease` ([`subscribe_viewer_queue`]).
    pub async fn viewer(
        clients: &Clients,
        topic_arn: &str,
        name: &str,
        filter_policy: Option<&str>,
        lease: &ViewerLease,
    ) -> Result<Self, CallError> {
        let queue = subscribe_viewer_queue(&clients.sqs, &clients.sns, topic_arn, name, filter_policy, lease).await?;
        Ok(Self { sqs: clients.sqs.clone(), queue })
    }

    /// A user's queue `name` ([`subscribe_queue`]).
    pub async fn user(
        clients: &Clients,
        topic_arn: &str,
        name: &str,
        filter_policy: Option<&str>,
    ) -> Result<Self, CallError> {
        let queue = subscribe_queue(&clients.sqs, &clients.sns, topic_arn, name, filter_policy).await?;
        Ok(Self { sqs: clients.sqs.clone(), queue })
    }

    /// The queue.
    pub fn queue(&self) -> &SubscribedQueue {
        &self.queue
    }

    /// Drops every message waiting (what an earlier run left behind).
    pub async fn purge(&self) -> Result<(), CallError> {
        self.sqs
            .purge_queue()
            .queue_url(&self.queue.url)
            .send()
            .await
            .map(|_| ())
            .map_err(CallError::aws(format!("PurgeQueue {}", self.queue.url)))
    }

    /// Up to ten event bodies, waiting up to `wait` for the first; each is
    /// deleted from the queue as it is returned (a viewer shows, it does
    /// not process: a re-delivery is dropped by `event_id` upstream).
    pub async fn receive(&self, wait: std::time::Duration) -> Result<Vec<String>, CallError> {
        let out = crate::sqs::long_poll(
            self.sqs.receive_message().queue_url(&self.queue.url).max_number_of_messages(10),
            wait,
        )
        .send()
        .await
        .map_err(CallError::aws(format!("ReceiveMessage {}", self.queue.url)))?;
        let mut bodies = Vec::new();
        for m in out.messages.unwrap_or_default() {
            if let Some(handle) = &m.receipt_handle {
                let _ = self.sqs.delete_message().queue_url(&self.queue.url).receipt_handle(handle).send().await;
            }
            bodies.extend(m.body);
        }
        Ok(bodies)
    }

    /// [`SubscribedQueue::keep_lease`].
    pub async fn keep_lease(&self, lease: &ViewerLease) -> Result<(), CallError> {
        self.queue.keep_lease(&self.sqs, lease).await
    }

    /// [`SubscribedQueue::release`].
    pub async fn release(&self) -> Result<Released, CallError> {
        match self.queue.release(&self.sqs).await {
            Ok(()) => Ok(Released::Done),
            Err(aws_sdk_sqs::error::SdkError::DispatchFailure(_)) => Ok(Released::EndpointGone),
            Err(e) => Err(CallError::aws(format!("TagQueue {}", self.queue.url))(e)),
        }
    }
}
