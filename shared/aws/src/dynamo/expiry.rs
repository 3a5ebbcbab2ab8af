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
        Ok(items.into_iter().filter_map(|item| item_key(&from_sdk(item))).map(|(pk, sk)| DueKey { pk, sk }).collect())
    }

    async fn delete_if_expired(&self, key: &DueKey, now: i64) -> Result<bool, StoreError> {
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
        self.conditional(result, || format!("DeleteItem expired {}/{}", key.pk, key.sk))
    }
}
