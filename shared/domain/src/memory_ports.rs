//! The other ports in memory (feature `memory`), beside [`MemoryCatalog`]:
//! the change topic, the refresh queue, a service's parts (the registrar's
//! `Components`) and the topic's subscribers (the janitor's). Each records
//! what it was asked, so a handler's test reads back what it did.
//!
//! [`MemoryCatalog`]: crate::memory::MemoryCatalog

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::event::Event;
use crate::memory::lock;
use crate::ports::{
    CheckError, Components, PublishError, Publisher, RefreshPage, RefreshQueue, StoreError, Subscribers,
    TopicSubscription, ViewerQueue,
};

/// The change topic: every event published, in order.
#[derive(Debug, Default)]
pub struct MemoryBus {
    events: Mutex<Vec<Event>>,
}

impl MemoryBus {
    /// Every event published so far.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }
}

#[async_trait]
impl Publisher for MemoryBus {
    async fn publish(&self, events: &[Event]) -> Vec<Result<(), PublishError>> {
        lock(&self.events).extend(events.iter().cloned());
        events.iter().map(|_| Ok(())).collect()
    }
}

/// The refresh queue: pages in the order sent.
#[derive(Debug, Default)]
pub struct MemoryRefreshQueue {
    pages: Mutex<VecDeque<RefreshPage>>,
}

impl MemoryRefreshQueue {
    /// The oldest page waiting, taken off the queue.
    pub fn pop(&self) -> Option<RefreshPage> {
        lock(&self.pages).pop_front()
    }

    /// A page taken by [`Self::pop`] and not done, back at the end (a
    /// redelivery).
    pub fn push_back(&self, page: RefreshPage) {
        lock(&self.pages).push_back(page);
    }

    /// How many pages wait.
    pub fn len(&self) -> usize {
        lock(&self.pages).len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl RefreshQueue for MemoryRefreshQueue {
    async fn send(&self, page: &RefreshPage) -> Result<(), StoreError> {
        lock(&self.pages).push_back(page.clone());
        Ok(())
    }
}

/// A service's parts as the registrar checks them: the names that exist
/// (functions and APIs alike), what it removed, and a part whose check
/// cannot decide (an API answering 5xx: not "gone").
#[derive(Debug, Default)]
pub struct MemoryComponents {
    present: Mutex<BTreeSet<String>>,
    removed: Mutex<Vec<String>>,
    failing: Mutex<Option<String>>,
}

impl MemoryComponents {
    /// Parts named `names` exist.
    pub fn with(names: &[&str]) -> Self {
        let parts = Self::default();
        lock(&parts.present).extend(names.iter().map(|n| (*n).to_owned()));
        parts
    }

    /// `name` exists from now on.
    pub fn add(&self, name: &str) {
        lock(&self.present).insert(name.to_owned());
    }

    /// Every part is gone.
    pub fn remove_all(&self) {
        lock(&self.present).clear();
    }

    /// Checks of `name` fail from now on (`None`: none does).
    pub fn fail(&self, name: Option<&str>) {
        *lock(&self.failing) = name.map(str::to_owned);
    }

    /// What the registrar removed, in order (`schedule <rule>`,
    /// `function <name>`).
    pub fn removed(&self) -> Vec<String> {
        lock(&self.removed).clone()
    }

    fn exists(&self, name: &str) -> Result<bool, CheckError> {
        if lock(&self.failing).as_deref() == Some(name) {
            return Err(CheckError { part: name.to_owned(), source: "503 Service Unavailable".into() });
        }
        Ok(lock(&self.present).contains(name))
    }
}

#[async_trait]
impl Components for MemoryComponents {
    async fn lambda_exists(&self, name: &str) -> Result<bool, CheckError> {
        self.exists(name)
    }
    async fn rest_api_exists(&self, id: &str) -> Result<bool, CheckError> {
        self.exists(id)
    }
    async fn http_api_exists(&self, id: &str) -> Result<bool, CheckError> {
        self.exists(id)
    }
    async fn remove_schedule(&self, rule: &str) -> Result<(), CheckError> {
        lock(&self.removed).push(format!("schedule {rule}"));
        Ok(())
    }
    async fn delete_function(&self, name: &str) -> Result<(), CheckError> {
        lock(&self.removed).push(format!("function {name}"));
        Ok(())
    }
}

/// The topic's subscriptions and the viewers' queues, for the janitor.
#[derive(Debug, Default)]
pub struct MemorySubscribers {
    /// The topic's subscriptions.
    pub subscriptions: Mutex<Vec<TopicSubscription>>,
    /// The viewer queues the listing shows.
    pub queues: Mutex<Vec<ViewerQueue>>,
    /// Queues that exist but are missing from the listing (it lags).
    pub unlisted: Vec<String>,
    /// Subscriptions whose Unsubscribe fails.
    pub refuse: Vec<String>,
}

#[async_trait]
impl Subscribers for MemorySubscribers {
    async fn subscriptions(&self) -> Result<Vec<TopicSubscription>, StoreError> {
        Ok(lock(&self.subscriptions).clone())
    }
    async fn viewer_queues(&self) -> Result<Vec<ViewerQueue>, StoreError> {
        Ok(lock(&self.queues).clone())
    }
    async fn queue_exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.unlisted.iter().any(|n| n == name) || lock(&self.queues).iter().any(|q| q.name == name))
    }
    async fn unsubscribe(&self, arn: &str) -> Result<(), StoreError> {
        if self.refuse.iter().any(|r| r == arn) {
            return Err(StoreError::shape("Unsubscribe", std::io::Error::other("refused")));
        }
        lock(&self.subscriptions).retain(|s| s.arn != arn);
        Ok(())
    }
    async fn delete_queue(&self, url: &str) -> Result<(), StoreError> {
        lock(&self.queues).retain(|q| q.url != url);
        Ok(())
    }
}
