//! [`ExpiryIndex`] over DynamoDB: the sparse expiry index, and a delete
//! conditional on the item still being expired (a heartbeat wins).

use async_trait::async_trait;
use beacon_domain::keys;
use beacon_domain::ports::{DueKey, ExpiryIndex, StoreError};

use super::{DynamoTable, n, s};
use crate::item::{from_sdk, item_key};

#[async_trait]
impl ExpiryIndex for DynamoTable {
    async fn due(&self, shard: u32, now: i64) -> Result<Vec<DueKey>, StoreError> {
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
        let keys = items.into_iter().filter_map(|item| {
            let expires_at = item.get(keys::EXPIRES_AT).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok());
            item_key(&from_sdk(item)).map(|key| (key, expires_at))
        });
        if self.region.is_none() {
            return Ok(keys.map(|((pk, sk), _)| DueKey { pk, sk }).collect());
        }
        let mut memo = self.expiry_memo.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Refusals whose grace has passed are tried again (and forgotten).
        let grace = self.foreign_grace;
        memo.refused.retain(|_, at| now < *at + grace);
        let mut out = Vec::new();
        for (key, expires_at) in keys {
            if let Some(at) = expires_at {
                // Another Region's, refused at this same expiry: not again
                // within its grace (a heartbeat moves the expiry).
                if memo.refused.get(&key) == Some(&at) {
                    continue;
                }
                memo.seen.insert(key.clone(), at);
            }
            out.push(DueKey { pk: key.0, sk: key.1 });
        }
        Ok(out)
    }

    async fn delete_if_expired(&self, key: &DueKey, now: i64) -> Result<bool, StoreError> {
        self.write();
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key.pk.clone(), &key.sk)))
            .expression_attribute_names("#exp", keys::EXPIRES_AT)
            .expression_attribute_values(":now", n(now));
        let delete = match &self.region {
            // In several Regions: at once only what was last written here
            // (or not through Beacon), another Region's after the grace.
            Some(region) => delete
                .condition_expression("#exp <= :now AND (attribute_not_exists(#in) OR #in = :me OR #exp <= :grace)")
                .expression_attribute_names("#in", keys::WRITTEN_IN)
                .expression_attribute_values(":me", s(region.to_string()))
                .expression_attribute_values(":grace", n(now - self.foreign_grace)),
            None => delete.condition_expression("#exp <= :now"),
        };
        let gone = self.conditional(delete.send().await, || format!("DeleteItem expired {}/{}", key.pk, key.sk))?;
        if self.region.is_some() {
            // What due() saw of this key is settled either way: gone, or
            // refused at that expiry.
            let mut memo = self.expiry_memo.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let k = (key.pk.clone(), key.sk.clone());
            if let Some(at) = memo.seen.remove(&k)
                && !gone
            {
                memo.refused.insert(k, at);
            }
        }
        Ok(gone)
    }
}
