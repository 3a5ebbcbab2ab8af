//! The DynamoDB adapter for [`Registry`], plus the registration and needs
//! writes that clients make. Every read the fan-out relies on is consistent;
//! every write to a resolved item is conditional (DESIGN.md, convergence).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use crate::item::{
    ResolvedItem, ServiceView, decode_registration, decode_resolved, encode_needs, encode_registration, from_sdk,
    to_attribute, to_sdk,
};
use crate::keys;
use crate::registration::Registration;
use crate::store::{Dependent, Registry, ServicePartition, StoreError, ViewWrite};

/// Requests this adapter made, for the benchmarks' cost-per-change figures.
#[derive(Debug, Default)]
pub struct RequestCounts {
    /// Query and GetItem calls (each page counts).
    pub reads: AtomicU64,
    /// PutItem, UpdateItem and DeleteItem calls, successful or not.
    pub writes: AtomicU64,
    /// Writes refused by their condition (they still cost a write unit).
    pub conditional_failures: AtomicU64,
    /// Items returned by index queries (what the sweeper read).
    pub items_read: AtomicU64,
}

impl RequestCounts {
    /// (reads, writes, conditional failures) so far.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.reads.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
            self.conditional_failures.load(Ordering::Relaxed),
        )
    }
}

/// The outcome of a conditional client write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written.
    Done,
    /// The condition failed: the item exists (create) or does not (delete).
    Conflict,
}

/// One page of [`DynamoRegistry::list_registrations`].
#[derive(Debug, Clone, Default)]
pub struct RegistrationPage {
    /// The valid registrations on the page.
    pub registrations: Vec<Registration>,
    /// Registration items on the page that did not decode.
    pub invalid: usize,
    /// The key to continue from; `None` on the last page.
    pub next: Option<(String, String)>,
}

/// The table, through the AWS SDK.
#[derive(Debug, Clone)]
pub struct DynamoRegistry {
    client: Client,
    table: String,
    counts: Arc<RequestCounts>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Turns an SDK error into a [`StoreError`] that knows whether a retry helps.
fn store_error<E, R>(operation: String, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err.code().unwrap_or_default().to_owned();
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) => matches!(
            code.as_str(),
            "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflictException"
        ),
        _ => false,
    };
    let message = match err.message() {
        Some(m) => format!("{code}: {m}"),
        None => format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err)),
    };
    StoreError { operation, message, retryable, source: Some(Box::new(err)) }
}

fn is_conditional<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

fn shape_error(operation: String, e: impl std::fmt::Display) -> StoreError {
    StoreError { operation, message: e.to_string(), retryable: false, source: None }
}

impl DynamoRegistry {
    /// An adapter over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), counts: Arc::default() }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The SDK client (for tools that need calls this port does not offer).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Requests made so far.
    pub fn counts(&self) -> &RequestCounts {
        &self.counts
    }

    fn read(&self) {
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
    }

    fn write(&self) {
        self.counts.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// A consistent GetItem, optionally projected; `what` names it in errors.
    async fn get_consistent(
        &self,
        pk: String,
        sk: &str,
        projection: Option<&str>,
        what: String,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        self.read();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .set_key(Some(Self::key(pk, sk)))
            .set_projection_expression(projection.map(str::to_owned))
            .send()
            .await
            .map_err(|e| store_error(format!("GetItem {what}"), e))?;
        Ok(out.item)
    }

    /// An unconditional DeleteItem; `what` names it in errors.
    async fn delete_key(&self, pk: String, sk: &str, what: String) -> Result<(), StoreError> {
        self.write();
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk, sk)))
            .send()
            .await
            .map_err(|e| store_error(format!("DeleteItem {what}"), e))?;
        Ok(())
    }

    fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([(keys::PK.to_owned(), s(pk)), (keys::SK.to_owned(), s(sk))])
    }

    /// Writes (creates or replaces) a registration.
    pub async fn put_registration(&self, r: &Registration) -> Result<(), StoreError> {
        self.write();
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_sdk(encode_registration(r))))
            .send()
            .await
            .map_err(|e| store_error(format!("PutItem {}#{}", r.service, r.instance_id), e))?;
        Ok(())
    }

    /// Creates a registration only if that instance is not registered.
    pub async fn create_registration(&self, r: &Registration) -> Result<WriteOutcome, StoreError> {
        self.write();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_sdk(encode_registration(r))))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(WriteOutcome::Done),
            Err(e) if is_conditional(&e) => Ok(WriteOutcome::Conflict),
            Err(e) => Err(store_error(format!("PutItem (create) {}#{}", r.service, r.instance_id), e)),
        }
    }

    /// Deletes a registration only if it exists.
    pub async fn delete_existing_registration(
        &self,
        service: &str,
        version: &str,
        instance_id: &str,
    ) -> Result<WriteOutcome, StoreError> {
        self.write();
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::service_pk(service), &keys::instance_sk(version, instance_id))))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(WriteOutcome::Done),
            Err(e) if is_conditional(&e) => Ok(WriteOutcome::Conflict),
            Err(e) => Err(store_error(format!("DeleteItem {service}"), e)),
        }
    }

    /// One page of registrations (a Scan filtered to registration keys), and
    /// the key to continue from. A page may hold fewer than `limit` items:
    /// DynamoDB applies the limit before the filter.
    pub async fn list_registrations(
        &self,
        limit: i32,
        start: Option<(String, String)>,
    ) -> Result<RegistrationPage, StoreError> {
        self.read();
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(limit)
            .filter_expression("begins_with(sk, :p)")
            .expression_attribute_values(":p", s(keys::instance_sk_prefix()))
            .set_exclusive_start_key(start.map(|(pk, sk)| Self::key(pk, &sk)))
            .send()
            .await
            .map_err(|e| store_error("Scan registrations".into(), e))?;
        let mut page = RegistrationPage {
            registrations: Vec::new(),
            invalid: 0,
            next: out.last_evaluated_key.and_then(|k| crate::item::item_key(&from_sdk(k))),
        };
        for item in out.items.unwrap_or_default() {
            match decode_registration(&from_sdk(item)) {
                Ok(r) => page.registrations.push(r),
                Err(_) => page.invalid += 1,
            }
        }
        Ok(page)
    }

    /// Moves only the heartbeat fields of an existing registration. Fails
    /// (not retryable) when the registration is gone, so a heartbeat never
    /// resurrects a deregistered instance.
    pub async fn heartbeat(&self, r: &Registration, now: i64) -> Result<bool, StoreError> {
        self.write();
        let expires_at = now.saturating_add(i64::try_from(r.ttl_seconds).unwrap_or(i64::MAX));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                keys::service_pk(&r.service),
                &keys::instance_sk(&r.version.to_string(), &r.instance_id),
            )))
            .update_expression("SET expires_at = :e, updated_at = :u")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":e", n(expires_at))
            .expression_attribute_values(":u", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(store_error(format!("UpdateItem heartbeat {}", r.service), e)),
        }
    }

    /// Deletes a registration.
    pub async fn delete_registration(&self, service: &str, version: &str, instance_id: &str) -> Result<(), StoreError> {
        self.delete_key(
            keys::service_pk(service),
            &keys::instance_sk(version, instance_id),
            format!("registration {service}"),
        )
        .await
    }

    /// Reads only a consumer's resolved `revision` (a projection, consistent):
    /// the extension's cheap "did anything change?".
    pub async fn resolved_revision(&self, consumer: &str) -> Result<Option<u64>, StoreError> {
        let item = self
            .get_consistent(
                keys::consumer_pk(consumer),
                keys::resolved_sk(),
                Some("revision"),
                format!("revision {consumer}"),
            )
            .await?;
        Ok(item.and_then(|i| i.get("revision").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())))
    }

    /// Reads a consumer's declared needs, as text.
    pub async fn get_needs(&self, consumer: &str) -> Result<Option<Vec<String>>, StoreError> {
        let item = self
            .get_consistent(keys::consumer_pk(consumer), keys::needs_sk(), None, format!("needs {consumer}"))
            .await?;
        Ok(item
            .and_then(|i| crate::item::decode_needs(&from_sdk(i)).ok())
            .map(|n| n.needs.iter().map(ToString::to_string).collect()))
    }

    /// Declares a consumer's needs.
    pub async fn put_needs(&self, needs: &crate::item::Needs, now: i64) -> Result<(), StoreError> {
        self.write();
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_sdk(encode_needs(needs, now))))
            .send()
            .await
            .map_err(|e| store_error(format!("PutItem needs {}", needs.consumer), e))?;
        Ok(())
    }

    /// Removes a consumer's needs.
    pub async fn delete_needs(&self, consumer: &str) -> Result<(), StoreError> {
        self.delete_key(keys::consumer_pk(consumer), keys::needs_sk(), format!("needs {consumer}")).await
    }

    /// Runs a Query to its last page; `what` names it in errors.
    async fn query_all(
        &self,
        query: QueryFluentBuilder,
        what: String,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            self.read();
            let out = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error(format!("Query {what}"), e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    async fn query_partition(&self, pk: String) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk.clone()));
        self.query_all(query, pk).await
    }

    fn resolved_from(&self, consumer: &str, item: HashMap<String, AttributeValue>) -> Result<ResolvedItem, StoreError> {
        decode_resolved(from_sdk(item)).map_err(|e| shape_error(format!("resolved item of {consumer}"), e))
    }
}

#[async_trait]
impl Registry for DynamoRegistry {
    async fn bump_generation(&self, service: &str) -> Result<u64, StoreError> {
        self.write();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::service_pk(service), keys::generation_sk())))
            .update_expression("ADD generation :one")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| store_error(format!("UpdateItem generation {service}"), e))?;
        out.attributes
            .as_ref()
            .and_then(|a| a.get("generation"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| shape_error(format!("generation of {service}"), "no generation returned"))
    }

    async fn read_service(&self, service: &str) -> Result<ServicePartition, StoreError> {
        let mut partition = ServicePartition::default();
        for item in self.query_partition(keys::service_pk(service)).await? {
            let item = from_sdk(item);
            let Some((_, sk)) = crate::item::item_key(&item) else { continue };
            if sk.starts_with(keys::instance_sk_prefix()) {
                match decode_registration(&item) {
                    Ok(r) => partition.instances.push(r),
                    Err(_) => partition.invalid += 1,
                }
            } else if let Some(consumer) = sk.strip_prefix("DEPENDENT#") {
                let requirements = match item.inner().get("requirements") {
                    Some(serde_dynamo::AttributeValue::L(l)) => l
                        .iter()
                        .filter_map(|v| match v {
                            serde_dynamo::AttributeValue::S(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                partition.dependents.push(Dependent { consumer: consumer.to_owned(), requirements });
            }
        }
        Ok(partition)
    }

    async fn write_view(
        &self,
        consumer: &str,
        service: &str,
        view: &ServiceView,
        change_id: Option<&str>,
    ) -> Result<ViewWrite, StoreError> {
        let key = Self::key(keys::consumer_pk(consumer), keys::resolved_sk());
        let view_av = to_attribute(view).map_err(|e| shape_error(format!("view of {consumer}"), e))?;
        let op = format!("UpdateItem resolved {consumer}/{service}");
        // The write that records a changed view. Its condition: the consumer
        // still needs the service, and the stored view is older and
        // different (or absent).
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key.clone()))
            .condition_expression(
                "attribute_exists(pk) AND contains(needed_services, :sname) AND \
                 (attribute_not_exists(services.#s) OR (services.#s.generation < :g AND services.#s.digest <> :d))",
            )
            .expression_attribute_names("#s", service)
            .expression_attribute_values(":sname", s(service))
            .expression_attribute_values(":g", n(view.generation))
            .expression_attribute_values(":d", s(view.digest.clone()))
            .expression_attribute_values(":v", view_av.into())
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        update = match change_id {
            Some(id) => update
                .update_expression("SET services.#s = :v, last_change_id = :id ADD revision :one")
                .expression_attribute_values(":id", s(id))
                .expression_attribute_values(":one", n(1)),
            None => update.update_expression("SET services.#s = :v"),
        };
        self.write();
        let old = match update.send().await {
            Ok(out) => {
                return Ok(ViewWrite::Changed(Box::new(
                    self.resolved_from(consumer, out.attributes.unwrap_or_default())?,
                )));
            }
            Err(e) if is_conditional(&e) => {
                self.counts.conditional_failures.fetch_add(1, Ordering::Relaxed);
                let item = e.as_service_error().and_then(|se| match se {
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => {
                        c.item().cloned()
                    }
                    _ => None,
                });
                match item {
                    Some(item) => self.resolved_from(consumer, item)?,
                    None => return Ok(ViewWrite::NotNeeded),
                }
            }
            Err(e) => return Err(store_error(op, e)),
        };
        // Why did the condition fail? Decide from the item as it was.
        let stored = old.services.get(service).filter(|_| old.needed_services.iter().any(|n| n == service));
        let Some(stored) = stored else {
            return Ok(ViewWrite::NotNeeded);
        };
        if stored.generation >= view.generation {
            return Ok(ViewWrite::Stale);
        }
        // Same view, older generation: record the generation so a slower
        // writer holding an older read cannot overwrite this view later.
        self.write();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression("SET services.#s.generation = :g")
            .condition_expression(
                "attribute_exists(pk) AND contains(needed_services, :sname) AND services.#s.generation < :g",
            )
            .expression_attribute_names("#s", service)
            .expression_attribute_values(":sname", s(service))
            .expression_attribute_values(":g", n(view.generation))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => {
                Ok(ViewWrite::Unchanged(Box::new(self.resolved_from(consumer, out.attributes.unwrap_or_default())?)))
            }
            Err(e) if is_conditional(&e) => {
                self.counts.conditional_failures.fetch_add(1, Ordering::Relaxed);
                Ok(ViewWrite::Stale)
            }
            Err(e) => Err(store_error(op, e)),
        }
    }

    async fn set_needs_header(
        &self,
        consumer: &str,
        needs: &[String],
        services: &[String],
        dropped: &[String],
    ) -> Result<ResolvedItem, StoreError> {
        let key = Self::key(keys::consumer_pk(consumer), keys::resolved_sk());
        self.write();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key.clone()))
            .update_expression(
                "SET consumer = :c, needs = :needs, needed_services = :svcs, \
                 revision = if_not_exists(revision, :zero), services = if_not_exists(services, :empty)",
            )
            .expression_attribute_values(":c", s(consumer))
            .expression_attribute_values(":needs", AttributeValue::L(needs.iter().map(s).collect()))
            .expression_attribute_values(":svcs", AttributeValue::L(services.iter().map(s).collect()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| store_error(format!("UpdateItem resolved header {consumer}"), e))?;
        let item = self.resolved_from(consumer, out.attributes.unwrap_or_default())?;
        // A second update: DynamoDB refuses SET services and REMOVE
        // services.x in one expression (overlapping paths).
        let present: Vec<&String> = dropped.iter().filter(|d| item.services.contains_key(*d)).collect();
        if present.is_empty() {
            return Ok(item);
        }
        let names: Vec<String> = (0..present.len()).map(|i| format!("services.#d{i}")).collect();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(format!("REMOVE {}", names.join(", ")))
            .return_values(ReturnValue::AllNew);
        for (i, d) in present.iter().enumerate() {
            update = update.expression_attribute_names(format!("#d{i}"), d.as_str());
        }
        self.write();
        let out = update.send().await.map_err(|e| store_error(format!("UpdateItem drop views {consumer}"), e))?;
        self.resolved_from(consumer, out.attributes.unwrap_or_default())
    }

    async fn bump_revision(&self, consumer: &str, change_id: &str) -> Result<ResolvedItem, StoreError> {
        self.write();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::consumer_pk(consumer), keys::resolved_sk())))
            .update_expression("SET last_change_id = :id ADD revision :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":id", s(change_id))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| store_error(format!("UpdateItem revision {consumer}"), e))?;
        self.resolved_from(consumer, out.attributes.unwrap_or_default())
    }

    async fn delete_resolved(&self, consumer: &str) -> Result<(), StoreError> {
        self.delete_key(keys::consumer_pk(consumer), keys::resolved_sk(), format!("resolved {consumer}")).await
    }

    async fn get_resolved(&self, consumer: &str) -> Result<Option<ResolvedItem>, StoreError> {
        let item = self
            .get_consistent(keys::consumer_pk(consumer), keys::resolved_sk(), None, format!("resolved {consumer}"))
            .await?;
        item.map(|item| self.resolved_from(consumer, item)).transpose()
    }

    async fn put_edge(&self, service: &str, consumer: &str, requirements: &[String]) -> Result<(), StoreError> {
        self.write();
        self.client
            .put_item()
            .table_name(&self.table)
            .item(keys::PK, s(keys::service_pk(service)))
            .item(keys::SK, s(keys::dependent_sk(consumer)))
            .item("consumer", s(consumer))
            .item("requirements", AttributeValue::L(requirements.iter().map(s).collect()))
            .send()
            .await
            .map_err(|e| store_error(format!("PutItem edge {service}->{consumer}"), e))?;
        Ok(())
    }

    async fn delete_edge(&self, service: &str, consumer: &str) -> Result<(), StoreError> {
        self.delete_key(keys::service_pk(service), &keys::dependent_sk(consumer), format!("edge {service}->{consumer}"))
            .await
    }
}

#[async_trait]
impl crate::sweep::ExpiryIndex for DynamoRegistry {
    async fn due(&self, shard: u32, now: i64) -> Result<Vec<crate::sweep::DueKey>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::EXPIRY_INDEX)
            .key_condition_expression("#shard = :shard AND #exp <= :now")
            .expression_attribute_names("#shard", keys::EXPIRY_SHARD)
            .expression_attribute_names("#exp", keys::EXPIRES_AT)
            .expression_attribute_values(":shard", s(shard.to_string()))
            .expression_attribute_values(":now", n(now));
        let items = self.query_all(query, format!("{} shard {shard}", keys::EXPIRY_INDEX)).await?;
        self.counts.items_read.fetch_add(items.len() as u64, Ordering::Relaxed);
        Ok(items
            .into_iter()
            .filter_map(|item| crate::item::item_key(&from_sdk(item)))
            .map(|(pk, sk)| crate::sweep::DueKey { pk, sk })
            .collect())
    }

    async fn delete_if_expired(&self, key: &crate::sweep::DueKey, now: i64) -> Result<bool, StoreError> {
        self.write();
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key.pk.clone(), &key.sk)))
            .condition_expression("#exp <= :now")
            .expression_attribute_names("#exp", keys::EXPIRES_AT)
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => {
                self.counts.conditional_failures.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(store_error(format!("DeleteItem expired {}/{}", key.pk, key.sk), e)),
        }
    }
}
