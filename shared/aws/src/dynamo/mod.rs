//! The DynamoDB adapter: one table, one module per port it implements.
//!
//! - `registry` — the fan-out's store ([`beacon_domain::ports::FanOutStore`]):
//!   generations, consistent partition reads, view-group claims, edges, the
//!   expiry repair; `views` — its conditional view writes (docs/architecture.md,
//!   "Convergence under races");
//! - `upgrade` — `beacon upgrade`: edges rebuilt from the consumers' needs;
//! - [`catalog`] — [`beacon_domain::ports::Catalog`], the clients': registrations,
//!   heartbeats, status, needs, views;
//! - [`expiry`] — [`beacon_domain::ports::ExpiryIndex`], the sweeper's.
//!
//! This module holds what they share: the table handle, request counters,
//! SDK error mapping and the paginated Query.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use beacon_domain::keys;
use beacon_domain::ports::StoreError;
use beacon_domain::view::ResolvedItem;

use crate::item::{decode_resolved, from_sdk};

mod catalog;
mod expiry;
mod registry;
mod upgrade;
mod views;

pub use upgrade::{UPGRADE_ORIGIN, UpgradeReport};

/// Requests this adapter made, for the benchmarks' cost-per-change figures.
#[derive(Debug, Default)]
pub struct RequestCounts {
    /// Query and GetItem calls (each page counts).
    pub reads: AtomicU64,
    /// PutItem, UpdateItem and DeleteItem calls, successful or not.
    pub writes: AtomicU64,
    /// Writes refused by their condition (they still cost a write unit).
    pub conditional_failures: AtomicU64,
    /// Items returned by Queries, every page (what a read cost grows with).
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

/// The table, through the AWS SDK.
#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
    counts: Arc<RequestCounts>,
    /// In a multi-Region registry, this Region: the fan-out's bookkeeping
    /// and consumers' resolved items are kept per Region
    /// ([`keys::fanout_pk_in`], [`keys::resolved_sk_in`]).
    region: Option<Arc<str>>,
    /// In a multi-Region registry: how long another Region's expired
    /// registrations wait before this Region sweeps them.
    foreign_grace: i64,
    /// What the sweeper learnt of due keys: the `expires_at` the index
    /// showed, and which of them this Region may not sweep yet (another
    /// Region's, within the grace), so each costs one refused delete, not
    /// one a sweep.
    expiry_memo: Arc<std::sync::Mutex<ExpiryMemo>>,
}

/// See [`DynamoTable`]'s `expiry_memo`.
#[derive(Debug, Default)]
pub(crate) struct ExpiryMemo {
    pub(crate) seen: HashMap<(String, String), i64>,
    pub(crate) refused: HashMap<(String, String), i64>,
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Turns an SDK error into a [`StoreError`] that knows whether a retry helps.
pub(crate) fn store_error<E, R>(operation: String, err: SdkError<E, R>) -> StoreError
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
        Some(m) => crate::refusal::describe(&code, m),
        None => format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err)),
    };
    let bad_item = code == "ValidationException" && err.message().is_some_and(is_bad_item_message);
    StoreError { operation, message, retryable, bad_item, source: Some(Box::new(err)) }
}

/// Whether a ValidationException's message says the stored item is what
/// refuses the write: a value not of the type the expression needs (a
/// string where `ADD` wants a number, a path into something that is not a
/// map), or an item that would pass 400 KB. The same call fails the same
/// way every time, and only a write to that item fixes it. Every other
/// ValidationException (a key or expression Beacon built wrong) is a bug:
/// it is retried with its record and ends in the on-failure queue, not
/// skipped.
pub(crate) fn is_bad_item_message(message: &str) -> bool {
    const STORED_ITEM: [&str; 5] = [
        "Item size has exceeded",
        "Item size to update has exceeded",
        "document path provided in the update expression is invalid for update",
        "An operand in the update expression has an incorrect data type",
        "Type mismatch for attribute to update",
    ];
    STORED_ITEM.iter().any(|m| message.contains(m))
}

pub(crate) fn is_conditional<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

impl DynamoTable {
    /// A conditional write's outcome: `true` when written, `false` when its
    /// condition refused it (counted: a refused write is billed like one),
    /// any other failure as a [`StoreError`] for `operation`.
    pub(crate) fn conditional<T, E, R>(
        &self,
        result: Result<T, SdkError<E, R>>,
        operation: impl FnOnce() -> String,
    ) -> Result<bool, StoreError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        self.conditional_output(result, operation).map(|written| written.is_some())
    }

    /// [`Self::conditional`], keeping what the write returned: `Some` when
    /// written, `None` when its condition refused it (counted).
    pub(crate) fn conditional_output<T, E, R>(
        &self,
        result: Result<T, SdkError<E, R>>,
        operation: impl FnOnce() -> String,
    ) -> Result<Option<T>, StoreError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        match result {
            Ok(out) => Ok(Some(out)),
            Err(e) if is_conditional(&e) => {
                self.counts.conditional_failures.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
            Err(e) => Err(store_error(operation(), e)),
        }
    }

    /// One write (`item`) in a transaction with a check that the service's
    /// generation is still `generation`: `true` when written, `false` when a
    /// newer refresh has bumped it (see [`Self::transact`]).
    pub(crate) async fn transact_at(
        &self,
        fanout_pk: &str,
        generation: u64,
        item: Result<aws_sdk_dynamodb::types::TransactWriteItem, aws_sdk_dynamodb::error::BuildError>,
        what: String,
    ) -> Result<bool, StoreError> {
        let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(fanout_pk.to_owned(), keys::generation_sk())))
            .condition_expression("generation = :g")
            .expression_attribute_values(":g", n(generation))
            .build()
            .map(|c| aws_sdk_dynamodb::types::TransactWriteItem::builder().condition_check(c).build());
        let items = check.and_then(|check| Ok(vec![check, item?])).map_err(|e| internal_error(what.clone(), e))?;
        self.transact(items, format!("TransactWriteItems {what}")).await
    }

    /// A TransactWriteItems whose items are conditional: `true` when
    /// written, `false` when a condition refused it (counted), any other
    /// failure (a conflicting transaction included: retryable) as an error.
    /// Each item is billed as two writes, and counted so.
    pub(crate) async fn transact(
        &self,
        items: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
        operation: String,
    ) -> Result<bool, StoreError> {
        self.counts.writes.fetch_add(2 * items.len() as u64, Ordering::Relaxed);
        let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let reasons = match e.as_service_error() {
                    Some(
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c),
                    ) => c.cancellation_reasons().to_vec(),
                    _ => Vec::new(),
                };
                let refused = reasons.iter().any(|r| r.code() == Some("ConditionalCheckFailed"));
                if refused {
                    self.counts.conditional_failures.fetch_add(1, Ordering::Relaxed);
                    return Ok(false);
                }
                let mut error = store_error(operation, e);
                // A cancellation for a conflicting write in flight passes
                // when retried.
                error.retryable |= error.message.contains("TransactionConflict");
                // A cancellation because of what one item holds (its own
                // reason says so) is that item's, as for a single write.
                error.bad_item |= reasons
                    .iter()
                    .any(|r| r.code() == Some("ValidationError") && r.message().is_some_and(is_bad_item_message));
                Err(error)
            }
        }
    }
}

/// A value read back that is not the shape Beacon wrote (an item a
/// tenant's writer may have written).
pub(crate) fn shape_error(operation: String, e: impl std::fmt::Display) -> StoreError {
    StoreError { operation, message: e.to_string(), retryable: false, bad_item: true, source: None }
}

/// A request Beacon could not build, or an answer from its own bookkeeping
/// that is not what it writes: a bug, not an item to skip (the record is
/// retried and ends in the on-failure queue).
pub(crate) fn internal_error(operation: String, e: impl std::fmt::Display) -> StoreError {
    StoreError { operation, message: e.to_string(), retryable: false, bad_item: false, source: None }
}

impl DynamoTable {
    /// An adapter over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            counts: Arc::default(),
            region: None,
            foreign_grace: keys::FOREIGN_EXPIRY_GRACE_SECONDS,
            expiry_memo: Arc::default(),
        }
    }

    /// The same table as one Region of a multi-Region registry sees it: its
    /// bookkeeping and resolved views under this Region's keys.
    pub fn in_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(Arc::from(region.into()));
        self
    }

    /// [`Self::in_region`] when `region` is set (a multi-Region registry),
    /// else the table as one Region sees it.
    pub fn scoped_to(self, region: Option<String>) -> Self {
        match region {
            Some(region) => self.in_region(region),
            None => self,
        }
    }

    /// Another Region's expired registrations wait this long before this
    /// Region sweeps them (default [`keys::FOREIGN_EXPIRY_GRACE_SECONDS`]).
    pub fn with_foreign_grace(mut self, seconds: i64) -> Self {
        self.foreign_grace = seconds;
        self
    }

    /// The Region whose keys it uses, in a multi-Region registry.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// `FANOUT#<name>` in this Region's scope.
    pub(crate) fn fanout_pk(&self, service: &str) -> String {
        keys::fanout_pk_in(self.region(), service)
    }

    /// `RESOLVED` in this Region's scope.
    pub(crate) fn resolved_sk(&self) -> String {
        keys::resolved_sk_in(self.region())
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Requests made so far.
    pub fn counts(&self) -> &RequestCounts {
        &self.counts
    }

    pub(crate) fn read(&self) {
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn write(&self) {
        self.counts.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// A consistent GetItem, optionally projected; `what` names it in errors.
    pub(crate) async fn get_consistent(
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
    pub(crate) async fn delete_key(&self, pk: String, sk: &str, what: String) -> Result<(), StoreError> {
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

    pub(crate) fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([(keys::PK.to_owned(), s(pk)), (keys::SK.to_owned(), s(sk))])
    }

    /// Runs a Query to its last page; `what` names it in errors.
    pub(crate) async fn query_all(
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
            let page = out.items.unwrap_or_default();
            self.counts.items_read.fetch_add(page.len() as u64, Ordering::Relaxed);
            items.extend(page);
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    pub(crate) async fn query_partition(&self, pk: String) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk.clone()));
        self.query_all(query, pk).await
    }

    pub(crate) fn resolved_from(
        &self,
        consumer: &str,
        item: HashMap<String, AttributeValue>,
    ) -> Result<ResolvedItem, StoreError> {
        decode_resolved(from_sdk(item)).map_err(|e| shape_error(format!("resolved item of {consumer}"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::is_bad_item_message;

    #[test]
    fn only_messages_that_blame_the_stored_item_make_a_bad_item() {
        for blames in [
            "Item size has exceeded the maximum allowed size",
            "Item size to update has exceeded the maximum allowed size",
            "The document path provided in the update expression is invalid for update",
            "An operand in the update expression has an incorrect data type",
        ] {
            assert!(is_bad_item_message(blames), "{blames}");
        }
        // Beacon's own mistakes: retried with the record, then the
        // on-failure queue; never skipped.
        for bug in [
            "The provided key element does not match the schema",
            "Invalid UpdateExpression: Syntax error; token: \"=\"",
            "ExpressionAttributeValues contains invalid key",
        ] {
            assert!(!is_bad_item_message(bug), "{bug}");
        }
    }
}
