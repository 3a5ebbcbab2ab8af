//! One module per registry command. Each owns its arguments (their doc
//! comments are the help text), validates with the same domain rules as
//! every other write path, and goes through the [`beacon_domain::ports::Catalog`]
//! port, never a raw client.

use anyhow::Result;
use beacon_domain::ports::InstanceKey;
use beacon_domain::registration::DEFAULT_INSTANCE_ID;
use clap::Args;

use crate::context::Common;

pub mod deregister;
pub mod drain;
pub mod get;
pub mod list;
pub mod needs;
pub mod openapi;
pub mod register;
pub mod resolve;
pub mod upgrade;
pub mod watch;

/// Identifies one instance.
#[derive(Debug, Args)]
pub struct InstanceArgs {
    /// Service name.
    service: String,
    /// Version (`1.0` is read as `1.0.0`).
    version: String,
    /// Instance id.
    #[arg(long, default_value = DEFAULT_INSTANCE_ID)]
    instance: String,
    #[command(flatten)]
    pub common: Common,
}

impl InstanceArgs {
    /// The instance, after the same rules every write path checks.
    pub fn key(&self) -> Result<InstanceKey> {
        beacon_domain::registration::validate_name("service", &self.service)?;
        beacon_domain::registration::validate_instance_id(&self.instance)?;
        let version = beacon_domain::version::parse_version(&self.version)?;
        Ok(InstanceKey {
            service: self.service.clone(),
            version: version.to_string(),
            instance_id: self.instance.clone(),
        })
    }
}
