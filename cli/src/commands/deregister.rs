//! `beacon deregister`: removes a registration (`deregistered`).

use anyhow::Result;
use beacon_domain::ports::Registrations;

use super::InstanceArgs;

/// Deregister a service instance (publishes `deregistered`).
pub async fn run(args: InstanceArgs) -> Result<()> {
    let key = args.key()?;
    // Deregistering what is already gone succeeds, as it always has: the
    // caller wanted it gone.
    args.common.catalog().await?.delete(&key).await?;
    println!("deregistered {key}");
    Ok(())
}
