//! [`Views`] over DynamoDB: consumers' resolved items, each view written
//! by one conditional `UpdateItem` (docs/architecture.md, "Convergence under
//! races": only a newer generation, only while the consumer needs it).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use beacon_domain::keys;
use beacon_domain::ports::{Conditional, StoreError, Views};
use beacon_domain::view::{ResolvedItem, ServiceView};

use super::{DynamoTable, internal_error, is_conditional, n, s, store_error};
use crate::item::to_attribute;

#[async_trait]
impl Views for DynamoTable {
    async fn put_view_if_moved(
        &self,
        consumer: &str,
        service: &str,
        view: &ServiceView,
        change_id: Option<&str>,
    ) -> Result<Conditional<ResolvedItem>, StoreError> {
        let key = Self::key(keys::consumer_pk(consumer), &self.resolved_sk());
        let view_av = to_attribute(view).map_err(|e| internal_error(format!("view of {consumer}"), e))?;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
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
        match update.send().await {
            Ok(out) => Ok(Conditional::Written(self.resolved_from(consumer, out.attributes.unwrap_or_default())?)),
            Err(e) if is_conditional(&e) => {
                self.counts.conditional_failures.fetch_add(1, Ordering::Relaxed);
                let item = e.as_service_error().and_then(|se| match se {
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => {
                        c.item().cloned()
                    }
                    _ => None,
                });
                Ok(Conditional::Refused(item.map(|i| self.resolved_from(consumer, i)).transpose()?))
            }
            Err(e) => Err(store_error(format!("UpdateItem resolved {consumer}/{service}"), e)),
        }
    }

    async fn raise_view_generation(
        &self,
        consumer: &str,
        service: &str,
        generation: u64,
    ) -> Result<Option<ResolvedItem>, StoreError> {
        self.write();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::consumer_pk(consumer), &self.resolved_sk())))
            .update_expression("SET services.#s.generation = :g")
            .condition_expression(
                "attribute_exists(pk) AND contains(needed_services, :sname) AND services.#s.generation < :g",
            )
            .expression_attribute_names("#s", service)
            .expression_attribute_values(":sname", s(service))
            .expression_attribute_values(":g", n(generation))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let raised = self.conditional_output(out, || format!("UpdateItem generation of {consumer}/{service}"))?;
        raised.map(|out| self.resolved_from(consumer, out.attributes.unwrap_or_default())).transpose()
    }

    async fn set_needs_header(
        &self,
        consumer: &str,
        needs: &[String],
        services: &[String],
        dropped: &[String],
    ) -> Result<ResolvedItem, StoreError> {
        let key = Self::key(keys::consumer_pk(consumer), &self.resolved_sk());
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
            .set_key(Some(Self::key(keys::consumer_pk(consumer), &self.resolved_sk())))
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
        self.delete_key(keys::consumer_pk(consumer), &self.resolved_sk(), format!("resolved {consumer}")).await
    }

    async fn get_resolved(&self, consumer: &str) -> Result<Option<ResolvedItem>, StoreError> {
        let item = self
            .get_consistent(keys::consumer_pk(consumer), &self.resolved_sk(), None, format!("resolved {consumer}"))
            .await?;
        item.map(|item| self.resolved_from(consumer, item)).transpose()
    }
}
