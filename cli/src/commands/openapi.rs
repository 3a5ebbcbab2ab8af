//! `beacon openapi`: the catalog API's OpenAPI document (infra/openapi.yaml),
//! as written, as one stack deploys it, or as the template deploys it.

use anyhow::{Result, anyhow};
use beacon_catalog_api::openapi::{self, Stack};
use clap::{Args, ValueEnum};

/// Print the catalog API's OpenAPI 3.0 document, for a client generator,
/// a validator or a viewer. With no option: the document as written, every
/// operation, with the stack-dependent ones marked (`x-beacon-deployed-when`,
/// `x-beacon-signed-when`). With `--unscoped-write-routes` or
/// `--signed-reads`: the document of a stack deployed that way (the other
/// takes the template's default).
#[derive(Debug, Args)]
pub struct OpenapiArgs {
    /// The stack's UnscopedWriteRoutes parameter (template default: on).
    #[arg(long, value_name = "on|off")]
    unscoped_write_routes: Option<Switch>,
    /// The stack's SignedReads parameter (template default: off).
    #[arg(long, value_name = "on|off")]
    signed_reads: Option<Switch>,
    /// Print JSON instead of YAML.
    #[arg(long)]
    json: bool,
    /// Print the definition infra/template.yaml deploys
    /// (infra/api-gateway.json: a CloudFormation fragment, not plain
    /// OpenAPI). Maintainers regenerate that file with
    /// `beacon openapi --api-gateway > infra/api-gateway.json`.
    #[arg(long, conflicts_with_all = ["unscoped_write_routes", "signed_reads", "json"])]
    api_gateway: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Switch {
    On,
    Off,
}

impl Switch {
    fn on(self) -> bool {
        matches!(self, Switch::On)
    }
}

pub fn run(args: OpenapiArgs) -> Result<()> {
    if args.api_gateway {
        print!("{}", openapi::api_gateway_file().map_err(|e| anyhow!(e))?);
        return Ok(());
    }
    let document = if args.unscoped_write_routes.is_none() && args.signed_reads.is_none() {
        if !args.json {
            print!("{}", openapi::OPENAPI_YAML);
            return Ok(());
        }
        openapi::document()
    } else {
        let default = Stack::default();
        openapi::for_stack(Stack {
            unscoped_write_routes: args.unscoped_write_routes.map_or(default.unscoped_write_routes, Switch::on),
            signed_reads: args.signed_reads.map_or(default.signed_reads, Switch::on),
        })
        .map_err(|e| anyhow!(e))?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print!("{}", serde_yaml::to_string(&document)?);
    }
    Ok(())
}
