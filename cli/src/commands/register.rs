//! `beacon register`: writes one registration; `--heartbeat` keeps it alive.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use beacon_domain::ports::{Existing, InstanceKey, Registrations};
use beacon_domain::registration::DEFAULT_INSTANCE_ID;
use beacon_domain::{Registration, Status};
use clap::Args;

use crate::context::{Common, now};

/// Register (or re-register) a service instance.
///
/// Writes one registration item; the fan-out publishes `registered` (or
/// `updated` / `status_changed` when the instance existed).
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Service name (a letter, then letters, digits, `-`, `_`).
    service: String,
    /// Version (semver; `1.0` is read as `1.0.0`).
    version: String,
    /// The URL clients call (http or https).
    #[arg(long)]
    endpoint: String,
    /// Instance id, to register several instances of one version.
    #[arg(long, default_value = DEFAULT_INSTANCE_ID)]
    instance: String,
    /// An ARN clients can invoke instead of calling the URL.
    #[arg(long)]
    arn: Option<String>,
    /// healthy, unhealthy or draining.
    #[arg(long, default_value = "healthy")]
    status: Status,
    /// Seconds the registration lives without a heartbeat (10 to 86400).
    #[arg(long, default_value_t = 300)]
    ttl: u64,
    /// Metadata as KEY=VALUE (repeatable).
    #[arg(long = "attr", value_parser = parse_attr)]
    attributes: Vec<(String, String)>,
    /// Keep the registration alive: heartbeat every ttl/3 until Ctrl-C, then
    /// deregister.
    #[arg(long)]
    heartbeat: bool,
    #[command(flatten)]
    common: Common,
}

fn parse_attr(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

/// Runs `register`.
pub async fn run(args: RegisterArgs) -> Result<()> {
    let mut r = Registration::new_at(
        &args.service,
        &args.version,
        &args.instance,
        &args.endpoint,
        args.status,
        args.ttl,
        now(),
    )?;
    r.arn = args.arn.clone();
    r.attributes = args.attributes.iter().cloned().collect();
    r.validate()?;
    let catalog = args.common.catalog().await?;
    catalog.put(&r).await.context("writing the registration")?;
    if args.common.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "registered {} {} {} at {} ({}, ttl {} s)",
            r.service, r.version, r.instance_id, r.endpoint_url, r.status, r.ttl_seconds
        );
    }
    if !args.heartbeat {
        return Ok(());
    }
    let key = InstanceKey::of(&r);
    let every = Duration::from_secs((r.ttl_seconds / 3).max(1));
    eprintln!("heartbeating every {} s; Ctrl-C deregisters", every.as_secs());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tokio::time::sleep(every) => {
                match catalog.heartbeat(&key, r.ttl_seconds, now()).await {
                    Ok(Existing::Done) => {}
                    Ok(Existing::NotRegistered) => {
                        bail!("the registration is gone (deregistered or expired); not resurrecting it")
                    }
                    Err(e) => eprintln!("heartbeat failed, retrying next time: {e}"),
                }
            }
        }
    }
    catalog.delete(&key).await?;
    eprintln!("deregistered {} {} {}", r.service, r.version, r.instance_id);
    Ok(())
}
