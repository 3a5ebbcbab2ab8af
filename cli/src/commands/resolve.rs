//! `beacon resolve`: reads a consumer's resolved item.

use std::collections::BTreeMap;

use anyhow::Result;
use beacon_domain::ports::ResolvedViews;
use beacon_domain::view::{Outcome, ResolvedItem};
use clap::Args;
use serde_json::json;

use crate::context::{Common, EXIT_NOT_FOUND, Exit, print_table};

/// Read a consumer's resolved item (kept current by the fan-out).
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// Consumer id.
    consumer: String,
    #[command(flatten)]
    common: Common,
}

/// Runs `resolve`. Exit code 3 when the consumer has no resolved item.
pub async fn run(args: ResolveArgs) -> Result<()> {
    let Some(item) = args.common.catalog().await?.resolved(&args.consumer).await? else {
        return Err(Exit {
            message: format!(
                "{} has no resolved item: declare its needs with `beacon needs {} ...`",
                args.consumer, args.consumer
            ),
            code: EXIT_NOT_FOUND,
        }
        .into());
    };
    if args.common.json {
        println!("{}", serde_json::to_string(&resolved_json(&item))?);
        return Ok(());
    }
    println!("{} (revision {}) needs {}", item.consumer, item.revision, item.needs.join(","));
    let mut rows = vec![vec!["REQUIREMENT".to_owned(), "VERSION".into(), "ENDPOINTS".into()]];
    for views in item.view().values() {
        for v in views {
            let (version, endpoints) = match &v.outcome {
                Outcome::Resolved(r) => (
                    r.version.to_string(),
                    r.endpoints.iter().map(|e| e.endpoint_url.as_str()).collect::<Vec<_>>().join(" "),
                ),
                Outcome::Unresolved(why) => ("-".into(), format!("({why})")),
            };
            rows.push(vec![v.requirement.clone(), version, endpoints]);
        }
    }
    print_table(&rows);
    Ok(())
}

fn resolved_json(item: &ResolvedItem) -> serde_json::Value {
    let services: BTreeMap<_, _> = item.view();
    json!({ "consumer": item.consumer, "revision": item.revision, "needs": item.needs, "services": services })
}
