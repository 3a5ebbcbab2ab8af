//! `beacon drain`: marks an instance draining (`status_changed`).

use anyhow::Result;
use beacon_domain::Status;
use beacon_domain::ports::{Existing, Registrations};

use super::InstanceArgs;
use crate::context::{EXIT_NOT_FOUND, Exit, now};

/// Mark an instance draining: never chosen again, but its service is not
/// reported missing while it drains (publishes `status_changed`).
pub async fn run(args: InstanceArgs) -> Result<()> {
    let key = args.key()?;
    match args.common.catalog().await?.set_status(&key, Status::Draining, now()).await? {
        Existing::Done => {
            println!("draining {key}");
            Ok(())
        }
        Existing::NotRegistered => {
            Err(Exit { message: format!("{key} is not registered"), code: EXIT_NOT_FOUND }.into())
        }
    }
}
