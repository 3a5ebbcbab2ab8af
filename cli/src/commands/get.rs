//! `beacon get`: resolves a requirement now.

use anyhow::Result;
use beacon_domain::ports::Registrations;
use beacon_domain::view::Outcome;
use beacon_domain::{Requirement, resolve_for};
use clap::Args;
use serde_json::json;

use crate::context::{Common, EXIT_NOT_FOUND, Exit, now, print_table};

/// Resolve a requirement now (`orders`, `payments==1.2.0`, `users^1.2`).
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The requirement.
    requirement: String,
    /// Resolve as this consumer sees it: past 100 healthy endpoints, its
    /// slot of them, as the fan-out writes it (docs/architecture.md,
    /// "Large services").
    #[arg(long)]
    consumer: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// Runs `get`. Exit code 3 when nothing resolves.
pub async fn run(args: GetArgs) -> Result<()> {
    let req = Requirement::parse(&args.requirement)?;
    if let Some(c) = &args.consumer {
        beacon_domain::registration::validate_name("--consumer", c)?;
    }
    let instances = args.common.catalog().await?.instances(req.service()).await?;
    let outcome = resolve_for(&req, &instances.registrations, now(), args.consumer.as_deref());
    if args.common.json {
        println!(
            "{}",
            serde_json::to_string(
                &json!({ "requirement": req.to_string(), "outcome": Outcome::from(outcome.clone()) })
            )?
        );
    }
    match outcome {
        Ok(resolved) => {
            if !args.common.json {
                let mut rows = vec![vec!["VERSION".to_owned(), "INSTANCE".into(), "ENDPOINT".into(), "ARN".into()]];
                for e in &resolved.endpoints {
                    rows.push(vec![
                        resolved.version.to_string(),
                        e.instance_id.clone(),
                        e.endpoint_url.clone(),
                        e.arn.clone().unwrap_or_default(),
                    ]);
                }
                print_table(&rows);
                if let Some(subset) = &resolved.subset {
                    println!(
                        "slot {} of {}: {} endpoints ({} without --consumer)",
                        subset.slot.unwrap_or_default(),
                        subset.slots,
                        resolved.endpoints.len(),
                        beacon_domain::resolve(&req, &instances.registrations, now())
                            .map_or(0, |all| all.endpoints.len())
                    );
                }
            }
            Ok(())
        }
        Err(why) => Err(Exit { message: format!("{req}: {why}"), code: EXIT_NOT_FOUND }.into()),
    }
}
