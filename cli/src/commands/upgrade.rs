//! `beacon upgrade`: brings a registry from before `FANOUT#` to the current
//! layout (docs/deploy.md, "Upgrading a registry from before `FANOUT#`").

use anyhow::Result;
use clap::Args;

use crate::context::Common;

/// Rebuild the fan-out's dependency edges from every consumer's declared
/// needs (a table written before `FANOUT#`). Safe to run more than once:
/// run it before deploying the new stack, and again with `--remove-old`
/// after. Scans the whole table; needs read access to it all and write
/// access to `FANOUT#*` (and to `SERVICE#*` with `--remove-old`).
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Also delete what the layout before kept under `SERVICE#<name>`
    /// (`GENERATION`, `DEPENDENT#…`, `VIEW#…`). Only once the new fan-out
    /// runs: the old one still counts generations there.
    #[arg(long)]
    remove_old: bool,
    #[command(flatten)]
    common: Common,
}

pub async fn run(args: UpgradeArgs) -> Result<()> {
    let registry = args.common.catalog().await?;
    let report = registry.upgrade(args.remove_old).await?;
    if args.common.json {
        let value = serde_json::json!({
            "consumers": report.consumers,
            "unreadable_needs": report.unreadable_needs,
            "edges_written": report.edges_written,
            "edges_kept": report.edges_kept,
            "services_regrouped": report.services_regrouped,
            "old_items": report.old_items,
            "old_items_deleted": report.old_items_deleted,
        });
        println!("{value}");
        return Ok(());
    }
    println!(
        "{} consumers read ({} unreadable, skipped: see the log); {} edges written, {} kept as the fan-out wrote them",
        report.consumers, report.unreadable_needs, report.edges_written, report.edges_kept
    );
    if !report.services_regrouped.is_empty() {
        let names: Vec<&str> = report.services_regrouped.iter().map(String::as_str).collect();
        println!("regrouped at their next change: {}", names.join(", "));
    }
    if args.remove_old {
        println!("{} items of the layout before deleted", report.old_items_deleted);
    } else if report.old_items > 0 {
        println!(
            "{} items of the layout before remain under SERVICE#…; once the new fan-out runs, run again with --remove-old",
            report.old_items
        );
    }
    Ok(())
}
