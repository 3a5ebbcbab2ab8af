//! `beacon list`: registrations, with time to expiry.

use anyhow::{Context, Result};
use beacon_domain::Registration;
use beacon_domain::ports::Registrations;
use clap::Args;

use crate::context::{Common, now, print_table};

/// List registrations (all, or one service's).
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this service (one Query instead of a Scan).
    #[arg(long)]
    service: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// Runs `list`.
pub async fn run(args: ListArgs) -> Result<()> {
    let catalog = args.common.catalog().await?;
    let mut registrations: Vec<Registration> = Vec::new();
    let mut invalid = 0;
    if let Some(service) = &args.service {
        beacon_domain::registration::validate_name("service", service)?;
        let found = catalog.instances(service).await?;
        registrations = found.registrations;
        invalid = found.invalid;
    } else {
        // Pages of the registration Scan; each page is at most 1 MB anyway.
        let mut start = None;
        loop {
            let page = catalog.list(1000, start).await.context("listing the table")?;
            registrations.extend(page.registrations);
            invalid += page.invalid;
            start = page.next;
            if start.is_none() {
                break;
            }
        }
    }
    registrations
        .sort_by(|a, b| (&a.service, &a.version, &a.instance_id).cmp(&(&b.service, &b.version, &b.instance_id)));
    let t = now();
    if args.common.json {
        println!("{}", serde_json::to_string(&registrations)?);
        return Ok(());
    }
    let mut rows = vec![
        vec!["SERVICE", "VERSION", "INSTANCE", "STATUS", "EXPIRES IN", "ENDPOINT"]
            .into_iter()
            .map(String::from)
            .collect(),
    ];
    for r in &registrations {
        let left = r.valid_until() - t;
        rows.push(vec![
            r.service.clone(),
            r.version.to_string(),
            r.instance_id.clone(),
            r.status.to_string(),
            if left > 0 { format!("{left} s") } else { "expired".into() },
            r.endpoint_url.clone(),
        ]);
    }
    print_table(&rows);
    if invalid > 0 {
        eprintln!("({invalid} item(s) in the table are not valid registrations; they were skipped)");
    }
    Ok(())
}
