//! [`Catalog`] over DynamoDB: what clients (the catalog API, the registrar,
//! the extension, the CLI) write and read. Writes to an existing
//! registration are conditional on it existing, so a late heartbeat or
//! status change never resurrects a deregistered instance.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use beacon_domain::keys;
use beacon_domain::ports::{
    ConsumerPage, Created, Existing, InstanceKey, NeedsDeclarations, PageToken, RegistrationPage, Registrations,
    ResolvedViews, ServiceInstances, StoreError,
};
use beacon_domain::registration::{Registration, Status, expires_after};
use beacon_domain::view::{Needs, ResolvedItem};

use super::{DynamoTable, internal_error, n, s, store_error};
use crate::item::{decode_needs, decode_registration, encode_needs, encode_registration, from_sdk, item_key, to_sdk};

fn instance_key(key: &InstanceKey) -> HashMap<String, AttributeValue> {
    DynamoTable::key(keys::service_pk(&key.service), &keys::instance_sk(&key.version, &key.instance_id))
}

/// A page of scanned items, and where to continue.
type ScannedPage = (Vec<HashMap<String, AttributeValue>>, Option<PageToken>);

impl DynamoTable {
    /// One page of a Scan filtered to items whose `key` (`pk` or `sk`)
    /// begins with `prefix`. A page may hold fewer than `limit` items:
    /// DynamoDB applies the limit before the filter.
    async fn scan_page(
        &self,
        key: &str,
        prefix: &str,
        limit: u32,
        start: Option<PageToken>,
        what: &str,
    ) -> Result<ScannedPage, StoreError> {
        self.read();
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .filter_expression("begins_with(#k, :p)")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":p", s(prefix))
            .set_exclusive_start_key(start.map(|t| Self::key(t.pk, &t.sk)))
            .send()
            .await
            .map_err(|e| store_error(format!("Scan {what}"), e))?;
        let next = out.last_evaluated_key.and_then(|k| item_key(&from_sdk(k))).map(|(pk, sk)| PageToken { pk, sk });
        Ok((out.items.unwrap_or_default(), next))
    }

    /// Up to `limit` registration keys from the listing index, shard by
    /// shard, after `start`, and where to continue. A token's shard is its
    /// key's (`keys::expiry_shard`), which is what the index holds once the
    /// fan-out has repaired an item written with another.
    async fn listed_keys(
        &self,
        limit: u32,
        start: Option<PageToken>,
    ) -> Result<(Vec<(String, String)>, Option<PageToken>), StoreError> {
        let limit = limit as usize;
        let (mut shard, mut after) = match start {
            None => (0, None),
            Some(t) => {
                let shard = keys::expiry_shard(&t.pk, &t.sk).parse::<u32>().unwrap_or(0);
                let mut key = Self::key(t.pk, &t.sk);
                key.insert(keys::EXPIRY_SHARD.to_owned(), s(shard.to_string()));
                (shard, Some(key))
            }
        };
        let mut found = Vec::new();
        while shard < keys::EXPIRY_SHARDS && found.len() < limit {
            self.read();
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(keys::LISTING_INDEX)
                .key_condition_expression("#s = :s")
                .expression_attribute_names("#s", keys::EXPIRY_SHARD)
                .expression_attribute_values(":s", s(shard.to_string()))
                .limit(i32::try_from(limit - found.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(after.take())
                .send()
                .await
                .map_err(|e| store_error(format!("Query {} shard {shard}", keys::LISTING_INDEX), e))?;
            for item in out.items.unwrap_or_default() {
                // Only registrations: a consumer may put any attribute on
                // the items of its own partition, `expiry_shard` included,
                // and one key of another partition would make the whole
                // BatchGetItem refused (the API may read only `SERVICE#`).
                if let Some((pk, sk)) =
                    item_key(&from_sdk(item)).filter(|(pk, sk)| keys::looks_like_registration(pk, sk))
                {
                    found.push((pk, sk));
                }
            }
            match out.last_evaluated_key {
                Some(k) => after = Some(k),
                None => shard += 1,
            }
        }
        // More may follow unless the last shard is done.
        let next = (shard < keys::EXPIRY_SHARDS)
            .then(|| found.last().map(|(pk, sk)| PageToken { pk: pk.clone(), sk: sk.clone() }))
            .flatten();
        Ok((found, next))
    }

    /// The items at `keys`, in that order (those gone since are left out),
    /// 100 a BatchGetItem, unprocessed keys asked again.
    async fn batch_get(&self, wanted: &[(String, String)]) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut got: HashMap<(String, String), HashMap<String, AttributeValue>> = HashMap::new();
        for chunk in wanted.chunks(100) {
            let mut pending: Vec<HashMap<String, AttributeValue>> =
                chunk.iter().map(|(pk, sk)| Self::key(pk.clone(), sk)).collect();
            for attempt in 0.. {
                if pending.is_empty() {
                    break;
                }
                if attempt >= 8 {
                    return Err(StoreError::transient("BatchGetItem registrations", "keys left unprocessed 8 times"));
                }
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
                }
                self.read();
                let keys_and_attributes = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .build()
                    .map_err(|e| internal_error("BatchGetItem registrations".into(), e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys_and_attributes)
                    .send()
                    .await
                    .map_err(|e| store_error("BatchGetItem registrations".into(), e))?;
                for item in out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
                    self.counts.items_read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some(key) = item_key(&from_sdk(item.clone())) {
                        got.insert(key, item);
                    }
                }
                pending =
                    out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).map(|k| k.keys).unwrap_or_default();
            }
        }
        Ok(wanted.iter().filter_map(|k| got.remove(k)).collect())
    }

    /// An UpdateItem on an existing registration: `Existing::NotRegistered`
    /// when the condition finds it gone.
    async fn update_existing(
        &self,
        key: &InstanceKey,
        expression: &str,
        values: Vec<(&str, AttributeValue)>,
        what: &str,
    ) -> Result<Existing, StoreError> {
        self.write();
        // In several Regions, a write says where it was made (the sweepers'
        // rule, keys::WRITTEN_IN).
        let expression = match &self.region {
            Some(_) => format!("{expression}, {} = :in", keys::WRITTEN_IN),
            None => expression.to_owned(),
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(instance_key(key)))
            .update_expression(&expression)
            .condition_expression("attribute_exists(pk)");
        if let Some(region) = &self.region {
            update = update.expression_attribute_values(":in", s(region.to_string()));
        }
        if expression.contains("#status") {
            update = update.expression_attribute_names("#status", "status");
        }
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        let written = self.conditional(update.send().await, || format!("UpdateItem {what} {}", key.service))?;
        Ok(if written { Existing::Done } else { Existing::NotRegistered })
    }
}

impl DynamoTable {
    /// A registration as written: in several Regions, with the Region it
    /// was written in (keys::WRITTEN_IN).
    fn registration_item(&self, r: &Registration) -> HashMap<String, AttributeValue> {
        let mut item = to_sdk(encode_registration(r));
        if let Some(region) = &self.region {
            item.insert(keys::WRITTEN_IN.to_owned(), s(region.to_string()));
        }
        item
    }
}

#[async_trait]
impl Registrations for DynamoTable {
    async fn put(&self, r: &Registration) -> Result<(), StoreError> {
        self.write();
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.registration_item(r)))
            .send()
            .await
            .map_err(|e| store_error(format!("PutItem {}#{}", r.service, r.instance_id), e))?;
        Ok(())
    }

    async fn create(&self, r: &Registration) -> Result<Created, StoreError> {
        self.write();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.registration_item(r)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        let written = self.conditional(result, || format!("PutItem (create) {}#{}", r.service, r.instance_id))?;
        Ok(if written { Created::Created } else { Created::AlreadyRegistered })
    }

    async fn heartbeat(&self, key: &InstanceKey, ttl_seconds: u64, now: i64) -> Result<Existing, StoreError> {
        let values = vec![(":e", n(expires_after(now, ttl_seconds))), (":u", n(now))];
        self.update_existing(key, "SET expires_at = :e, updated_at = :u", values, "heartbeat").await
    }

    async fn set_status(&self, key: &InstanceKey, status: Status, now: i64) -> Result<Existing, StoreError> {
        let values = vec![(":s", s(status.as_str())), (":u", n(now))];
        self.update_existing(key, "SET #status = :s, updated_at = :u", values, "status").await
    }

    async fn delete(&self, key: &InstanceKey) -> Result<Existing, StoreError> {
        self.write();
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(instance_key(key)))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        let written = self.conditional(result, || format!("DeleteItem {}", key.service))?;
        Ok(if written { Existing::Done } else { Existing::NotRegistered })
    }

    async fn instances(&self, service: &str) -> Result<ServiceInstances, StoreError> {
        // Registrations only: a lookup's cost does not grow with the
        // service's dependents, whose edges live under `FANOUT#<s>`.
        let mut out = ServiceInstances::default();
        for item in self.query_instances(service).await? {
            match decode_registration(&from_sdk(item)) {
                Ok(r) => out.registrations.push(r),
                Err(_) => out.invalid += 1,
            }
        }
        Ok(out)
    }

    async fn list(&self, limit: u32, start: Option<PageToken>) -> Result<RegistrationPage, StoreError> {
        let (keys_listed, next) = self.listed_keys(limit, start).await?;
        let items = self.batch_get(&keys_listed).await?;
        let mut page = RegistrationPage { registrations: Vec::new(), invalid: 0, next };
        for item in items {
            match decode_registration(&from_sdk(item)) {
                Ok(r) => page.registrations.push(r),
                Err(_) => page.invalid += 1,
            }
        }
        Ok(page)
    }
}

#[async_trait]
impl NeedsDeclarations for DynamoTable {
    async fn needs(&self, consumer: &str) -> Result<Option<Vec<String>>, StoreError> {
        let item = self
            .get_consistent(keys::consumer_pk(consumer), keys::needs_sk(), None, format!("needs {consumer}"))
            .await?;
        Ok(item
            .and_then(|i| decode_needs(&from_sdk(i)).ok())
            .map(|n| n.needs.iter().map(ToString::to_string).collect()))
    }

    async fn put_needs(&self, needs: &Needs, now: i64) -> Result<(), StoreError> {
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

    async fn delete_needs(&self, consumer: &str) -> Result<(), StoreError> {
        self.delete_key(keys::consumer_pk(consumer), keys::needs_sk(), format!("needs {consumer}")).await
    }
}

#[async_trait]
impl ResolvedViews for DynamoTable {
    async fn revision(&self, consumer: &str) -> Result<Option<u64>, StoreError> {
        let item = self
            .get_consistent(
                keys::consumer_pk(consumer),
                &self.resolved_sk(),
                Some("revision"),
                format!("revision {consumer}"),
            )
            .await?;
        Ok(item.and_then(|i| i.get("revision").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())))
    }

    async fn resolved(&self, consumer: &str) -> Result<Option<ResolvedItem>, StoreError> {
        beacon_domain::ports::Views::get_resolved(self, consumer).await
    }

    async fn consumers(&self, limit: u32, start: Option<PageToken>) -> Result<ConsumerPage, StoreError> {
        let (items, next) = self.scan_page("pk", keys::consumer_pk_prefix(), limit, start, "consumers").await?;
        let mut page = ConsumerPage { next, ..ConsumerPage::default() };
        for item in items {
            let item = from_sdk(item);
            let Some((pk, sk)) = item_key(&item) else { continue };
            match keys::key_kind(&pk, &sk) {
                keys::KeyKind::Needs { consumer } => {
                    if let Ok(n) = decode_needs(&item) {
                        page.needs.push((consumer, n.needs.iter().map(ToString::to_string).collect()));
                    }
                }
                keys::KeyKind::Own if sk == self.resolved_sk() => {
                    if let Ok(r) = crate::item::decode_resolved(item) {
                        page.resolved.push(r);
                    }
                }
                _ => {}
            }
        }
        Ok(page)
    }
}
