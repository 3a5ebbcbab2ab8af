//! The fan-out's store over DynamoDB ([`beacon_domain::ports::FanOutStore`]):
//! generations, service state, view groups, edges and the expiry repair;
//! the views are in `views`. Every read it relies on is consistent; every
//! write to a resolved item is conditional (docs/architecture.md,
//! "Convergence under races").

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, ReturnValue, TransactWriteItem, Update};
use beacon_domain::change::ShardRepair;
use beacon_domain::keys;
use beacon_domain::ports::{
    Dependent, DependentsPage, Edges, ExpiryRepair, Generation, Generations, ServicePartition, ServiceState,
    StoreError, ViewGroups,
};
use beacon_domain::view::ViewGroup;

use super::{DynamoTable, internal_error, n, s, store_error};
use crate::item::{decode_registration, from_sdk, item_key, to_attribute};

/// The attribute on `GENERATION` that says the service's dependents are in
/// view groups.
pub(crate) const GROUPED: &str = "grouped";

use beacon_domain::keys::{LAYOUT, LAYOUT_FANOUT_PARTITION};
/// The generation a service starts from in this layout: above any count an
/// honest service reaches in the layout before (a thousand changes a second
/// for 34 years), so every view stored under the old count is older.
pub(crate) const UNREADABLE_LEGACY_FLOOR: u64 = 1 << 40;

/// The generation and `grouped` mark from a `GENERATION` item's attributes.
fn generation_of(service: &str, attributes: &HashMap<String, AttributeValue>) -> Result<Generation, StoreError> {
    let value = attributes
        .get("generation")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| internal_error(format!("generation of {service}"), "no generation returned"))?;
    let grouped = attributes.get(GROUPED).and_then(|v| v.as_bool().ok()).copied().unwrap_or(false);
    Ok(Generation { value, grouped })
}

/// Reads one item of a service's partition into `partition`.
fn add_to_partition(partition: &mut ServicePartition, item: HashMap<String, AttributeValue>) {
    let item = from_sdk(item);
    let Some((_, sk)) = item_key(&item) else { return };
    if keys::is_instance_sk(&sk) {
        match decode_registration(&item) {
            Ok(r) => partition.instances.push(r),
            Err(_) => partition.invalid += 1,
        }
    } else if let Some(consumer) = keys::dependent_of(&sk) {
        partition
            .dependents
            .push(Dependent { consumer: consumer.to_owned(), requirements: strings(&item, "requirements") });
    } else if let Some(id) = sk.strip_prefix(keys::view_sk_prefix()) {
        let view = item.inner().get("view").cloned().and_then(|v| serde_dynamo::from_attribute_value(v).ok());
        // A group item that does not decode is treated as absent: the next
        // refresh claims the group again.
        if let Some(view) = view {
            let pending = matches!(item.inner().get("pending"), Some(serde_dynamo::AttributeValue::Bool(true)));
            partition.groups.push(ViewGroup {
                id: id.to_owned(),
                requirements: strings(&item, "requirements"),
                view,
                pending,
            });
        }
    }
}

/// The dependency edge `service → consumer` as an item (the fan-out's, and
/// `beacon upgrade`'s).
pub(crate) fn edge_item(fanout_pk: String, consumer: &str, requirements: &[String]) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (keys::PK.to_owned(), s(fanout_pk)),
        (keys::SK.to_owned(), s(keys::dependent_sk(consumer))),
        ("consumer".to_owned(), s(consumer)),
        ("requirements".to_owned(), AttributeValue::L(requirements.iter().map(s).collect())),
    ])
}

/// A list-of-strings attribute (other members skipped).
fn strings(item: &serde_dynamo::Item, name: &str) -> Vec<String> {
    match item.inner().get(name) {
        Some(serde_dynamo::AttributeValue::L(l)) => l
            .iter()
            .filter_map(|v| match v {
                serde_dynamo::AttributeValue::S(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[async_trait]
impl Generations for DynamoTable {
    async fn bump_generation(&self, service: &str) -> Result<Generation, StoreError> {
        let attributes = self.bump(service).await?;
        if attributes.contains_key(LAYOUT) {
            return generation_of(service, &attributes);
        }
        // The service's first refresh in this layout.
        if let Some(marked) = self.mark_layout(service).await? {
            return generation_of(service, &marked);
        }
        // Another refresh marked it first: bump after its mark.
        generation_of(service, &self.bump(service).await?)
    }

    async fn mark_grouped(&self, service: &str, generation: u64) -> Result<bool, StoreError> {
        self.write();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(self.fanout_pk(service), keys::generation_sk())))
            .update_expression("SET #grouped = :yes")
            .condition_expression("generation = :g")
            .expression_attribute_names("#grouped", GROUPED)
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":g", n(generation))
            .send()
            .await;
        self.conditional(result, || format!("UpdateItem grouped {service}"))
    }

    async fn current_generation(&self, service: &str) -> Result<u64, StoreError> {
        let what = format!("generation {service}");
        let item =
            self.get_consistent(self.fanout_pk(service), keys::generation_sk(), Some("generation"), what).await?;
        match item {
            None => Ok(0),
            Some(item) => generation_of(service, &item).map(|g| g.value),
        }
    }
}

#[async_trait]
impl ServiceState for DynamoTable {
    async fn read_service(&self, service: &str) -> Result<ServicePartition, StoreError> {
        let mut partition = ServicePartition::default();
        for item in self.query_instances(service).await? {
            add_to_partition(&mut partition, item);
        }
        for item in self.query_partition(self.fanout_pk(service)).await? {
            add_to_partition(&mut partition, item);
        }
        Ok(partition)
    }

    async fn read_state(&self, service: &str) -> Result<ServicePartition, StoreError> {
        let pk = self.fanout_pk(service);
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND sk >= :from")
            .expression_attribute_values(":pk", s(pk.clone()))
            .expression_attribute_values(":from", s(keys::state_sk_from()));
        let mut partition = ServicePartition::default();
        for item in self.query_instances(service).await? {
            add_to_partition(&mut partition, item);
        }
        for item in self.query_all(query, format!("{pk} state")).await? {
            add_to_partition(&mut partition, item);
        }
        Ok(partition)
    }
}

#[async_trait]
impl ViewGroups for DynamoTable {
    async fn claim_group(&self, service: &str, group: &ViewGroup) -> Result<bool, StoreError> {
        let pk = self.fanout_pk(service);
        let view = to_attribute(&group.view).map_err(|e| internal_error(format!("view group of {service}"), e))?;
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk.clone(), &keys::view_sk(&group.id))))
            .update_expression("SET requirements = :r, #v = :v, generation = :g, pending = :p")
            .expression_attribute_names("#v", "view")
            .expression_attribute_values(":r", AttributeValue::L(group.requirements.iter().map(s).collect()))
            .expression_attribute_values(":v", view.into())
            .expression_attribute_values(":g", n(group.view.generation))
            .expression_attribute_values(":p", AttributeValue::Bool(true))
            .build()
            .map(|u| TransactWriteItem::builder().update(u).build());
        self.transact_at(&pk, group.view.generation, update, format!("claim {service}/{}", group.id)).await
    }

    async fn settle_group(&self, service: &str, group: &str, generation: u64) -> Result<bool, StoreError> {
        self.write();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(self.fanout_pk(service), &keys::view_sk(group))))
            .update_expression("SET pending = :no")
            .condition_expression("generation = :g")
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":g", n(generation))
            .send()
            .await;
        self.conditional(result, || format!("UpdateItem settle {service}/{group}"))
    }

    async fn drop_group(&self, service: &str, group: &str, generation: u64) -> Result<bool, StoreError> {
        let pk = self.fanout_pk(service);
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk.clone(), &keys::view_sk(group))))
            .build()
            .map(|d| TransactWriteItem::builder().delete(d).build());
        self.transact_at(&pk, generation, delete, format!("drop {service}/{group}")).await
    }
}

#[async_trait]
impl Edges for DynamoTable {
    async fn dependents(&self, service: &str, after: Option<&str>, limit: usize) -> Result<DependentsPage, StoreError> {
        let pk = self.fanout_pk(service);
        let start = after.map(|consumer| Self::key(pk.clone(), &keys::dependent_sk(consumer)));
        self.read();
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :edge)")
            .expression_attribute_values(":pk", s(pk.clone()))
            .expression_attribute_values(":edge", s(keys::dependent_sk_prefix()))
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error(format!("Query {pk} edges"), e))?;
        let mut partition = ServicePartition::default();
        for item in out.items.unwrap_or_default() {
            add_to_partition(&mut partition, item);
        }
        // DynamoDB may return a last key with a full page that happens to
        // be the end; the next Query then returns nothing, which is fine.
        let next = out
            .last_evaluated_key
            .as_ref()
            .and_then(|k| k.get(keys::SK))
            .and_then(|v| v.as_s().ok())
            .and_then(|sk| keys::dependent_of(sk))
            .map(str::to_owned);
        Ok(DependentsPage { dependents: partition.dependents, next })
    }

    async fn put_edge(&self, service: &str, consumer: &str, requirements: &[String]) -> Result<(), StoreError> {
        self.write();
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(edge_item(self.fanout_pk(service), consumer, requirements)))
            .send()
            .await
            .map_err(|e| store_error(format!("PutItem edge {service}->{consumer}"), e))?;
        Ok(())
    }

    async fn delete_edge(&self, service: &str, consumer: &str) -> Result<(), StoreError> {
        self.delete_key(self.fanout_pk(service), &keys::dependent_sk(consumer), format!("edge {service}->{consumer}"))
            .await
    }
}

#[async_trait]
impl ExpiryRepair for DynamoTable {
    async fn repair_expiry_shard(&self, repair: &ShardRepair) -> Result<bool, StoreError> {
        self.write();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(repair.pk.clone(), &repair.sk)))
            .update_expression("SET #shard = :shard, #exp = :until")
            .condition_expression("attribute_exists(pk) AND #exp = :exp")
            .expression_attribute_names("#shard", keys::EXPIRY_SHARD)
            .expression_attribute_names("#exp", keys::EXPIRES_AT)
            .expression_attribute_values(":shard", s(repair.shard.clone()))
            .expression_attribute_values(":exp", n(repair.expires_at))
            .expression_attribute_values(":until", n(repair.valid_until))
            .send()
            .await;
        self.conditional(result, || format!("UpdateItem expiry shard {}/{}", repair.pk, repair.sk))
    }
}

impl DynamoTable {
    /// `ADD 1` to the service's generation; the item after.
    async fn bump(&self, service: &str) -> Result<HashMap<String, AttributeValue>, StoreError> {
        self.write();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(self.fanout_pk(service), keys::generation_sk())))
            .update_expression("ADD generation :one")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| store_error(format!("UpdateItem generation {service}"), e))?;
        Ok(out.attributes.unwrap_or_default())
    }

    /// A service's registrations only (`SERVICE#<s>`, `INSTANCE#…`), read
    /// consistently: whatever else a writer put in its partition is never
    /// read.
    pub(crate) async fn query_instances(
        &self,
        service: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let pk = keys::service_pk(service);
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :instance)")
            .expression_attribute_values(":pk", s(pk.clone()))
            .expression_attribute_values(":instance", s(keys::instance_sk_prefix()));
        self.query_all(query, format!("{pk} registrations")).await
    }

    /// Marks a service's `GENERATION` as of this layout, once, and raises
    /// its count to [`UNREADABLE_LEGACY_FLOOR`]: a view a consumer holds
    /// from the layout before carries that layout's count, which was kept
    /// where the service's writer could set it to anything, so the new
    /// count starts above any honest one. Nothing under `SERVICE#<s>` is
    /// read. Returns the item after, or `None` when another refresh marked
    /// it first. Without a `grouped` mark, the calling refresh regroups the
    /// service from the edges under `FANOUT#<s>` (`beacon upgrade` rebuilds
    /// them from the consumers' needs).
    async fn mark_layout(&self, service: &str) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        self.write();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(self.fanout_pk(service), keys::generation_sk())))
            .update_expression("SET #layout = :layout ADD generation :floor")
            .condition_expression("attribute_not_exists(#layout)")
            .expression_attribute_names("#layout", LAYOUT)
            .expression_attribute_values(":layout", n(LAYOUT_FANOUT_PARTITION))
            .expression_attribute_values(":floor", n(UNREADABLE_LEGACY_FLOOR))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let marked = self.conditional_output(result, || format!("UpdateItem layout {service}"))?;
        Ok(marked.map(|out| out.attributes.unwrap_or_default()))
    }
}
