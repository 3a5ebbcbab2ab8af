//! What every registry command needs: the AWS config (standard chain, so
//! `AWS_ENDPOINT_URL_*` reach the local stack and profiles reach AWS), the
//! table and topic, and the output mode.

use anyhow::{Result, anyhow};
use beacon_aws::DynamoTable;
use clap::Args;

/// Options shared by the registry commands.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// The registry table: its name, or its ARN for a registry in another
    /// account of the Organization (or BEACON_TABLE).
    #[arg(long, env = "BEACON_TABLE", global = true, hide_env_values = true)]
    pub table: Option<String>,
    /// The change topic's ARN (or BEACON_TOPIC_ARN); only `watch` needs it.
    #[arg(long, env = "BEACON_TOPIC_ARN", global = true, hide_env_values = true)]
    pub topic_arn: Option<String>,
    /// Print JSON instead of a table, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Common {
    /// The table (a name, or an ARN for a registry in another account), or
    /// an error that says how to name it.
    pub fn table(&self) -> Result<&str> {
        let table = self.table.as_deref().ok_or_else(|| {
            anyhow!(
                "no table: pass --table NAME (or ARN) or set BEACON_TABLE (for the local stack: `source .beacon/dev.env`)"
            )
        })?;
        beacon_aws::table_ref::TableRef::parse(table)?;
        Ok(table)
    }

    /// The topic ARN, or an error that says how to name it.
    pub fn topic_arn(&self) -> Result<&str> {
        self.topic_arn.as_deref().ok_or_else(|| {
            anyhow!(
                "no topic: pass --topic-arn ARN or set BEACON_TOPIC_ARN (for the local stack: `source .beacon/dev.env`)"
            )
        })
    }

    /// The catalog port over the table (the DynamoDB adapter). In a
    /// registry of several Regions (`BEACON_REPLICA_REGION`), as that
    /// Region sees it: its writes say where they were made.
    pub async fn catalog(&self) -> Result<DynamoTable> {
        let table = beacon_aws::dynamo_table(&beacon_aws::config::sdk_config().await, self.table()?.to_owned());
        Ok(table.scoped_to(beacon_aws::config::replica_region_from_env()?))
    }
}

/// Epoch seconds now.
pub fn now() -> i64 {
    beacon_domain::clock::now_seconds()
}

/// Prints rows as an aligned table (the first row is the header).
pub fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row.iter().enumerate().map(|(i, cell)| format!("{cell:<w$}", w = widths[i])).collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// Exit code when a lookup found nothing (a service, a resolved item).
pub const EXIT_NOT_FOUND: u8 = 3;

/// An error that carries its own exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// What to print.
    pub message: String,
    /// The process exit code.
    pub code: u8,
}
