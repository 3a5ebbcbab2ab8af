//! `beacon upgrade`: brings a table written by a version before `FANOUT#`
//! to the current layout (docs/deploy.md, "Upgrading a registry from before
//! `FANOUT#`").
//!
//! The dependency edges are rebuilt from what consumers declared (each
//! `CONSUMER#c / NEEDS` item), never copied from `SERVICE#<s>`: that
//! partition is its service's writer's to write, so an edge or a count found
//! there may be forged. Nothing the fan-out runs reads the old items; this
//! command is the only code that looks at them, and only to delete them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use beacon_domain::keys::{self, KeyKind};
use beacon_domain::ports::StoreError;

use super::{DynamoTable, n, s, store_error};
use crate::item::{decode_needs, from_sdk};

/// The attribute that marks an edge this command wrote: a later run may
/// rewrite such an edge from the consumer's current needs, but never one
/// the fan-out wrote (that one follows a needs change the scan may not
/// have seen yet).
pub const UPGRADE_ORIGIN: &str = "origin";
const UPGRADE_ORIGIN_VALUE: &str = "upgrade";

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpgradeReport {
    /// Consumers whose needs were read.
    pub consumers: usize,
    /// `NEEDS` items that do not decode (each named in the log), skipped.
    pub unreadable_needs: usize,
    /// Edges written under `FANOUT#<s>` (new, or rewritten from a run before).
    pub edges_written: usize,
    /// Edges already there (the fan-out's, or this command's saying the
    /// same), left as they are.
    pub edges_kept: usize,
    /// Services whose dependents are regrouped at their next change.
    pub services_regrouped: BTreeSet<String>,
    /// Items of the layout before found under `SERVICE#<s>`.
    pub old_items: usize,
    /// Of those, deleted (only with `remove_old`).
    pub old_items_deleted: usize,
}

impl DynamoTable {
    /// Rebuilds every dependency edge under `FANOUT#<s>` from the consumers'
    /// `NEEDS` items, marks each service that gained an edge for a regroup
    /// at its next change, and with `remove_old` deletes what the layout
    /// before kept under `SERVICE#<s>` (`GENERATION`, `DEPENDENT#…`,
    /// `VIEW#…`). Safe to run at any time and more than once; run it before
    /// the deploy (the old fan-out ignores `FANOUT#`) and again, with
    /// `remove_old`, after it.
    pub async fn upgrade(&self, remove_old: bool) -> Result<UpgradeReport, StoreError> {
        let mut report = UpgradeReport::default();
        let mut edges: BTreeMap<String, Vec<(String, Vec<String>)>> = BTreeMap::new();
        let mut old: Vec<(String, String)> = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        // One pass over the table, a page (1 MB) at a time: only the NEEDS
        // items and the old bookkeeping's keys are kept.
        loop {
            self.read();
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error("Scan for upgrade".into(), e))?;
            for item in page.items.unwrap_or_default() {
                let item = from_sdk(item);
                let Some((pk, sk)) = crate::item::item_key(&item) else { continue };
                match keys::key_kind(&pk, &sk) {
                    KeyKind::Needs { .. } => {
                        report.consumers += 1;
                        match decode_needs(&item) {
                            Ok(needs) => {
                                for service in needs.services() {
                                    let requirements = needs.requirements_on(&service);
                                    edges.entry(service).or_default().push((needs.consumer.clone(), requirements));
                                }
                            }
                            Err(e) => {
                                tracing::warn!(%pk, error = %e, "needs item does not decode: no edges for it");
                                report.unreadable_needs += 1;
                            }
                        }
                    }
                    _ if keys::service_of(&pk).is_some()
                        && (sk == keys::generation_sk()
                            || sk.starts_with(keys::dependent_sk_prefix())
                            || sk.starts_with(keys::view_sk_prefix())) =>
                    {
                        old.push((pk, sk));
                    }
                    _ => {}
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        for (service, dependents) in &edges {
            let mut gained = false;
            for (consumer, requirements) in dependents {
                if self.put_upgrade_edge(service, consumer, requirements).await? {
                    report.edges_written += 1;
                    gained = true;
                } else {
                    report.edges_kept += 1;
                }
            }
            if gained && self.unmark_grouped(service).await? {
                report.services_regrouped.insert(service.clone());
            }
        }
        report.old_items = old.len();
        if remove_old {
            for (pk, sk) in &old {
                self.delete_key(pk.clone(), sk, format!("old bookkeeping {pk} {sk}")).await?;
                report.old_items_deleted += 1;
            }
        }
        Ok(report)
    }

    /// Writes one edge unless the fan-out wrote it or it already says
    /// this (an edge of this command's with other requirements is
    /// rewritten: the consumer's needs moved since the run before).
    /// `true` when written.
    async fn put_upgrade_edge(
        &self,
        service: &str,
        consumer: &str,
        requirements: &[String],
    ) -> Result<bool, StoreError> {
        let pk = self.fanout_pk(service);
        let sk = keys::dependent_sk(consumer);
        if let Some(edge) = self.get_consistent(pk.clone(), &sk, None, format!("edge {service}->{consumer}")).await? {
            let ours = edge.get(UPGRADE_ORIGIN).and_then(|v| v.as_s().ok()).is_some_and(|v| v == UPGRADE_ORIGIN_VALUE);
            let same = edge.get("requirements").and_then(|v| v.as_l().ok()).is_some_and(|l| {
                l.len() == requirements.len() && l.iter().zip(requirements).all(|(a, b)| a.as_s().ok() == Some(b))
            });
            if !ours || same {
                return Ok(false);
            }
        }
        let mut item = super::registry::edge_item(self.fanout_pk(service), consumer, requirements);
        item.insert(UPGRADE_ORIGIN.to_owned(), s(UPGRADE_ORIGIN_VALUE));
        self.write();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #origin = :upgrade")
            .expression_attribute_names("#origin", UPGRADE_ORIGIN)
            .expression_attribute_values(":upgrade", s(UPGRADE_ORIGIN_VALUE))
            .send()
            .await;
        self.conditional(result, || format!("PutItem upgrade edge {service}->{consumer}"))
    }

    /// Clears the service's `grouped` mark, and bumps its generation so a
    /// refresh regrouping from an older read of the edges cannot set the
    /// mark again: its next change reads every edge and writes every
    /// dependent. Nothing to do for a service the fan-out has not seen (its
    /// first change regroups anyway). `true` when cleared.
    async fn unmark_grouped(&self, service: &str) -> Result<bool, StoreError> {
        self.write();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(self.fanout_pk(service), keys::generation_sk())))
            .update_expression("ADD generation :one REMOVE #grouped")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#grouped", super::registry::GROUPED)
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        self.conditional(result, || format!("UpdateItem regroup {service}"))
    }
}
