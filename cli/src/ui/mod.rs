//! `beacon ui`: a live registry page on 127.0.0.1, for any Beacon deployment
//! the standard credentials chain reaches (the local stack or AWS).
//!
//! - [`feed`]: the server subscribes a temporary SQS queue to the change
//!   topic, as any subscriber does (with the queue policy AWS requires),
//!   de-duplicates on `event_id`, and fans events out to the pages; on exit
//!   it ends the queue's lease, and the sweeper's janitor removes it.
//! - [`server`]: the page and its assets (compiled in: nothing from the
//!   internet), one snapshot (`/api/snapshot`), and the events as
//!   server-sent events (`/events`). Read-only: GET only.
//! - [`snapshot`]: registrations and consumers, read once per page load or
//!   reconnect; nothing reads the table in a loop.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::context::Common;

pub mod feed;
pub mod server;
pub mod snapshot;

/// Serve a live page of the registry: services, consumers, the dependency
/// graph and changes as they happen (read-only; 127.0.0.1 only).
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Loopback port (0 picks a free one); the address is printed on start.
    #[arg(long, default_value_t = 8788, env = "BEACON_UI_PORT")]
    port: u16,
    #[command(flatten)]
    common: Common,
}

/// Runs `beacon ui` until Ctrl-C or SIGTERM.
pub async fn run(args: UiArgs) -> Result<()> {
    let table = args.common.table()?.to_owned();
    let topic = args.common.topic_arn()?.to_owned();
    let config = beacon_aws::config::sdk_config().await;
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("port {} on 127.0.0.1 is busy: pick another with --port, or 0 for any", args.port))?;
    let addr = listener.local_addr()?;
    let owner =
        beacon_aws::janitor::caller_user_id(&config).await.context("asking STS who this is (GetCallerIdentity)")?;
    let clients = feed::Clients { aws: beacon_aws::viewer::Clients::for_topic(&config, &topic), owner };
    let (stop, stop_rx) = watch::channel(false);
    let running = start(listener, beacon_aws::dynamo_table(&config, table), clients, &topic, stop_rx).await?;
    eprintln!("beacon ui: http://{addr}/ (Ctrl-C stops)");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let _ = stop.send(true);
    running.finish().await;
    Ok(())
}

/// A running page server and its feed.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    feed: feed::Feed,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits for the server to stop, then ends the feed queue's lease.
    pub async fn finish(self) {
        let _ = self.server.await;
        self.feed.remove().await;
    }
}

/// Subscribes the feed and serves the page on `listener` until `stop`.
pub async fn start<C: beacon_domain::ports::Catalog + 'static>(
    listener: TcpListener,
    catalog: C,
    clients: feed::Clients,
    topic_arn: &str,
    stop: watch::Receiver<bool>,
) -> Result<Running> {
    let addr = listener.local_addr()?;
    let feed = feed::Feed::subscribe(clients, topic_arn, stop.clone()).await.context("subscribing the page's queue")?;
    let server = tokio::spawn(server::serve(listener, catalog, feed.sender(), stop));
    Ok(Running { addr, feed, server })
}
