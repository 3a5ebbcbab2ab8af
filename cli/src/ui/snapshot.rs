//! One read of the registry for a page: every registration, every
//! consumer's needs and resolved view. Read on page load and on reconnect
//! only; after it, the page follows the events.

use std::collections::BTreeMap;

use beacon_domain::ports::{Catalog, StoreError};
use serde_json::{Value, json};

/// Most pages read for one snapshot (of up to 1,000 items each): a bound,
/// so a huge table cannot hold a request forever.
const MAX_PAGES: usize = 200;

/// The snapshot document the page renders.
pub async fn read(catalog: &impl Catalog, now: i64) -> Result<Value, StoreError> {
    let mut registrations = Vec::new();
    let mut invalid = 0;
    let mut start = None;
    for _ in 0..MAX_PAGES {
        let page = catalog.list(1000, start).await?;
        registrations.extend(page.registrations);
        invalid += page.invalid;
        start = page.next;
        if start.is_none() {
            break;
        }
    }
    let mut needs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut views: BTreeMap<String, Value> = BTreeMap::new();
    let mut start = None;
    for _ in 0..MAX_PAGES {
        let page = catalog.consumers(1000, start).await?;
        needs.extend(page.needs);
        for r in page.resolved {
            views.insert(r.consumer.clone(), json!({ "revision": r.revision, "services": r.view() }));
        }
        start = page.next;
        if start.is_none() {
            break;
        }
    }
    let consumers: Vec<Value> = needs
        .into_iter()
        .map(|(consumer, needs)| {
            let view = views.remove(&consumer).unwrap_or_else(|| json!({ "revision": 0, "services": {} }));
            json!({ "consumer": consumer, "needs": needs, "revision": view["revision"], "services": view["services"] })
        })
        .collect();
    Ok(json!({ "now": now, "registrations": registrations, "invalid": invalid, "consumers": consumers }))
}

#[cfg(test)]
mod tests {
    use beacon_domain::memory::MemoryCatalog;
    use beacon_domain::ports::{NeedsDeclarations, Registrations};
    use beacon_domain::view::{Needs, Outcome, RequirementView, ResolvedItem, ServiceView};
    use beacon_domain::{Registration, Status, parse_needs};

    use super::*;

    #[tokio::test]
    async fn the_snapshot_holds_registrations_and_each_consumers_needs_and_view() {
        let catalog = MemoryCatalog::new();
        let r = Registration::new_at("orders", "1.0", "i-1", "https://o.example", Status::Healthy, 60, 100).unwrap();
        catalog.put(&r).await.unwrap();
        let needs = Needs { consumer: "web".into(), needs: parse_needs("orders,payments").unwrap() };
        catalog.put_needs(&needs, 100).await.unwrap();
        let view = RequirementView {
            requirement: "payments".into(),
            outcome: Outcome::Unresolved(beacon_domain::Unresolved::NoSuchService),
        };
        catalog.set_resolved(ResolvedItem {
            consumer: "web".into(),
            revision: 3,
            needs: vec!["orders".into(), "payments".into()],
            needed_services: vec!["orders".into(), "payments".into()],
            services: [("payments".to_string(), ServiceView::new(1, vec![view]))].into(),
            last_change_id: None,
        });
        // A consumer whose view the fan-out has not written yet.
        catalog.put_needs(&Needs { consumer: "new".into(), needs: parse_needs("orders").unwrap() }, 100).await.unwrap();
        let s = read(&catalog, 150).await.unwrap();
        assert_eq!(s["registrations"][0]["instance_id"], "i-1");
        assert_eq!(s["consumers"][0]["consumer"], "new");
        assert_eq!(s["consumers"][0]["revision"], 0);
        assert_eq!(s["consumers"][1]["needs"], json!(["orders", "payments"]));
        assert_eq!(s["consumers"][1]["services"]["payments"][0]["unresolved"]["reason"], "no_such_service");
        assert_eq!(s["now"], 150);
    }
}
