//! The registry commands: register, deregister, drain, list, get, needs,
//! resolve. Each validates with the same domain rules as every other path.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use beacon::item::{Needs, Outcome, ResolvedItem};
use beacon::store::Registry;
use beacon::{Registration, Requirement, Status, parse_needs, resolve};
use clap::Args;
use serde_json::json;

use crate::context::{Common, EXIT_NOT_FOUND, Exit, now, print_table};

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
    #[arg(long, default_value = "default")]
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
pub async fn register(args: RegisterArgs) -> Result<()> {
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
    let registry = args.common.registry().await?;
    registry.put_registration(&r).await.context("writing the registration")?;
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
    let every = Duration::from_secs((r.ttl_seconds / 3).max(1));
    eprintln!("heartbeating every {} s; Ctrl-C deregisters", every.as_secs());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tokio::time::sleep(every) => {
                match registry.heartbeat(&r, now()).await {
                    Ok(true) => {}
                    Ok(false) => bail!("the registration is gone (deregistered or expired); not resurrecting it"),
                    Err(e) => eprintln!("heartbeat failed, retrying next time: {e}"),
                }
            }
        }
    }
    registry.delete_registration(&r.service, &r.version.to_string(), &r.instance_id).await?;
    eprintln!("deregistered {} {} {}", r.service, r.version, r.instance_id);
    Ok(())
}

/// Identifies one instance.
#[derive(Debug, Args)]
pub struct InstanceArgs {
    /// Service name.
    service: String,
    /// Version (`1.0` is read as `1.0.0`).
    version: String,
    /// Instance id.
    #[arg(long, default_value = "default")]
    instance: String,
    #[command(flatten)]
    common: Common,
}

impl InstanceArgs {
    fn checked(&self) -> Result<(String, String)> {
        beacon::registration::validate_name("service", &self.service)?;
        beacon::registration::validate_instance_id(&self.instance)?;
        let version = beacon::version::parse_version(&self.version)?;
        Ok((self.service.clone(), version.to_string()))
    }
}

/// Deregister a service instance (publishes `deregistered`).
pub async fn deregister(args: InstanceArgs) -> Result<()> {
    let (service, version) = args.checked()?;
    let registry = args.common.registry().await?;
    registry.delete_registration(&service, &version, &args.instance).await?;
    println!("deregistered {service} {version} {}", args.instance);
    Ok(())
}

/// Mark an instance draining: never chosen again, but its service is not
/// reported missing while it drains (publishes `status_changed`).
pub async fn drain(args: InstanceArgs) -> Result<()> {
    let (service, version) = args.checked()?;
    let registry = args.common.registry().await?;
    let client = registry.client();
    let result = client
        .update_item()
        .table_name(args.common.table()?)
        .key("pk", AttributeValue::S(beacon::keys::service_pk(&service)))
        .key("sk", AttributeValue::S(beacon::keys::instance_sk(&version, &args.instance)))
        .update_expression("SET #s = :d, updated_at = :u")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":d", AttributeValue::S("draining".into()))
        .expression_attribute_values(":u", AttributeValue::N(now().to_string()))
        .send()
        .await;
    match result {
        Ok(_) => {
            println!("draining {service} {version} {}", args.instance);
            Ok(())
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Err(Exit {
            message: format!("{service} {version} {} is not registered", args.instance),
            code: EXIT_NOT_FOUND,
        }
        .into()),
        Err(e) => Err(anyhow::Error::new(e).context("marking the instance draining")),
    }
}

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
pub async fn list(args: ListArgs) -> Result<()> {
    let registry = args.common.registry().await?;
    let mut registrations: Vec<Registration> = Vec::new();
    let mut invalid = 0;
    if let Some(service) = &args.service {
        beacon::registration::validate_name("service", service)?;
        let p = registry.read_service(service).await?;
        registrations = p.instances;
        invalid = p.invalid;
    } else {
        // Pages of the registration Scan; each page is at most 1 MB anyway.
        let mut start = None;
        loop {
            let page = registry.list_registrations(1000, start).await.context("listing the table")?;
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
        let left = r.expires_at - t;
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

/// Resolve a requirement now (`orders`, `payments==1.2.0`, `users^1.2`).
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The requirement.
    requirement: String,
    #[command(flatten)]
    common: Common,
}

/// Runs `get`. Exit code 3 when nothing resolves.
pub async fn get(args: GetArgs) -> Result<()> {
    let req = Requirement::parse(&args.requirement)?;
    let registry = args.common.registry().await?;
    let partition = registry.read_service(req.service()).await?;
    let outcome = resolve(&req, &partition.instances, now());
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
            }
            Ok(())
        }
        Err(why) => Err(Exit { message: format!("{req}: {why}"), code: EXIT_NOT_FOUND }.into()),
    }
}

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
pub async fn needs(args: NeedsArgs) -> Result<()> {
    beacon::registration::validate_name("consumer", &args.consumer)?;
    let registry = args.common.registry().await?;
    if args.remove {
        registry.delete_needs(&args.consumer).await?;
        println!("removed the needs of {}", args.consumer);
        return Ok(());
    }
    let needs = parse_needs(&args.requirements.join(","))?;
    let text = beacon::requirement::format_needs(&needs);
    registry.put_needs(&Needs { consumer: args.consumer.clone(), needs }, now()).await?;
    println!("{} needs {text}", args.consumer);
    Ok(())
}

/// Read a consumer's resolved item (kept current by the fan-out).
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// Consumer id.
    consumer: String,
    #[command(flatten)]
    common: Common,
}

/// Runs `resolve`. Exit code 3 when the consumer has no resolved item.
pub async fn resolve_consumer(args: ResolveArgs) -> Result<()> {
    let registry = args.common.registry().await?;
    let Some(item) = registry.get_resolved(&args.consumer).await? else {
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
