//! `beacon needs`: declares (or removes) a consumer's needs.

use anyhow::Result;
use beacon_domain::parse_needs;
use beacon_domain::ports::NeedsDeclarations;
use beacon_domain::view::Needs;
use clap::Args;

use crate::context::{Common, now};

/// Declare what a consumer needs; the fan-out keeps its resolved item
/// current from then on (`beacon resolve <consumer>` reads it).
#[derive(Debug, Args)]
pub struct NeedsArgs {
    /// Consumer id (same rules as a service name).
    consumer: String,
    /// Requirements, separate or comma-separated (`orders payments==1.2.0`).
    #[arg(required_unless_present = "remove")]
    requirements: Vec<String>,
    /// Remove the consumer's needs (and so its resolved item).
    #[arg(long, conflicts_with = "requirements")]
    remove: bool,
    #[command(flatten)]
    common: Common,
}

/// Runs `needs`.
pub async fn run(args: NeedsArgs) -> Result<()> {
    beacon_domain::registration::validate_name("consumer", &args.consumer)?;
    let catalog = args.common.catalog().await?;
    if args.remove {
        catalog.delete_needs(&args.consumer).await?;
        println!("removed the needs of {}", args.consumer);
        return Ok(());
    }
    let needs = parse_needs(&args.requirements.join(","))?;
    let text = beacon_domain::requirement::format_needs(&needs);
    catalog.put_needs(&Needs { consumer: args.consumer.clone(), needs }, now()).await?;
    println!("{} needs {text}", args.consumer);
    Ok(())
}
