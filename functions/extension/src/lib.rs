//! The Beacon Lambda extension (seed 2, fixed): reads `NEEDED_SERVICES`,
//! makes sure the consumer's needs item says the same, and keeps a file with
//! the consumer's resolved view current for the function.
//!
//! Lifecycle (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html>):
//! the environment is frozen between invocations, so there is no timer to
//! rely on. Instead, on each INVOKE the extension reads the resolved item's
//! `revision` — at most once per interval — and rewrites the file (write to
//! a temporary file in the same directory, then rename) only when the
//! revision moved. The file exists before the first INVOKE: Lambda invokes
//! the function only after every extension has finished init.
//!
//! What the seed got wrong and this fixes: it resolved once at cold start
//! and never refreshed; a missing service was only logged (here it is in the
//! file, with the reason); it crashed on its first event.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use beacon_aws::config::{MissingEnv, require_env, table_from_env};
use beacon_domain::ports::{NeedsDeclarations, ResolvedViews, StoreError};
use beacon_domain::requirement::{Requirement, format_needs, parse_needs};
use beacon_domain::services_file::{DEFAULT_PATH, ServicesFile};
use beacon_domain::view::{Needs, ResolvedItem};
// tokio's Instant, not std's: it follows a paused test clock, so the
// interval and init-wait rules are tested without sleeping.
use tokio::time::Instant;

pub mod endpoint;

/// The extension's configuration, read once at init.
#[derive(Debug, Clone)]
pub struct Config {
    /// What the function needs.
    pub needs: Vec<Requirement>,
    /// The consumer id (default: the function's name).
    pub consumer: String,
    /// Where the file goes.
    pub path: PathBuf,
    /// Least time between two registry checks.
    pub interval: Duration,
    /// How long init waits for the fan-out to resolve a first declaration.
    pub init_wait: Duration,
    /// The registry table.
    pub table: String,
    /// This Region, in a multi-Region registry (`BEACON_REPLICA_REGION`):
    /// the view read is the one this Region's fan-out writes.
    pub replica_region: Option<String>,
    /// The loopback port the view is served on (`None`: not served).
    pub http_port: Option<u16>,
    /// The longest a request asking for a fresh check waits on the registry.
    pub refresh_timeout: Duration,
}

/// The port the view is served on unless `BEACON_HTTP_PORT` says otherwise:
/// clear of AWS's own extensions (AppConfig 2772, Parameters and Secrets
/// 2773).
pub const DEFAULT_HTTP_PORT: u16 = 2780;

/// Pause between init's tries of a registry call that failed but may pass:
/// on top of the SDK's own backoff, so a throttled table is not hammered.
const INIT_RETRY: Duration = Duration::from_millis(200);

fn http_port() -> Result<Option<u16>, ConfigError> {
    match std::env::var("BEACON_HTTP_PORT") {
        Err(_) => Ok(Some(DEFAULT_HTTP_PORT)),
        Ok(v) if v.trim() == "off" => Ok(None),
        Ok(v) => v.trim().parse::<u16>().map(Some).map_err(|_| ConfigError::Bad {
            name: "BEACON_HTTP_PORT",
            message: format!("`{v}` is neither a port nor `off`"),
        }),
    }
}

/// A configuration error: names the variable and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `NEEDED_SERVICES` does not parse; names the offending part.
    #[error("NEEDED_SERVICES: {0}")]
    Needs(#[from] beacon_domain::requirement::RequirementError),
    /// A variable is missing.
    #[error(transparent)]
    Missing(#[from] MissingEnv),
    /// A variable has a bad value.
    #[error("{name}: {message}")]
    Bad {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn millis(name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(Duration::from_millis(default)),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| ConfigError::Bad { name, message: format!("`{v}` is not a number of milliseconds") }),
    }
}

impl Config {
    /// Reads `NEEDED_SERVICES` (required), `BEACON_CONSUMER` (default
    /// `AWS_LAMBDA_FUNCTION_NAME`), `BEACON_SERVICES_FILE` (or the seed's
    /// `SERVICES_FILE`; default `/tmp/beacon/services.json`),
    /// `BEACON_CHECK_INTERVAL_MS` (default 5000), `BEACON_INIT_WAIT_MS`
    /// (default 3000) and `BEACON_TABLE`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let needed = require_env("NEEDED_SERVICES", "list what the function needs, e.g. orders,payments==1.2.0")?;
        let needs = parse_needs(&needed)?;
        let consumer = std::env::var("BEACON_CONSUMER")
            .or_else(|_| std::env::var("AWS_LAMBDA_FUNCTION_NAME"))
            .map_err(|_| MissingEnv::Unset("BEACON_CONSUMER", "the consumer id (default: the function's name)"))?;
        beacon_domain::registration::validate_name("consumer", &consumer)
            .map_err(|e| ConfigError::Bad { name: "BEACON_CONSUMER", message: e.rule })?;
        let path = std::env::var("BEACON_SERVICES_FILE")
            .or_else(|_| std::env::var("SERVICES_FILE"))
            .unwrap_or_else(|_| DEFAULT_PATH.into());
        Ok(Self {
            needs,
            consumer,
            path: PathBuf::from(path),
            interval: millis("BEACON_CHECK_INTERVAL_MS", 5000)?,
            init_wait: millis("BEACON_INIT_WAIT_MS", 3000)?,
            table: table_from_env()?,
            replica_region: beacon_aws::config::replica_region_from_env()?,
            http_port: http_port()?,
            refresh_timeout: millis("BEACON_REFRESH_TIMEOUT_MS", 300)?,
        })
    }
}

/// The last good view, shared with the loopback endpoint: written by the
/// watcher, read by every request without waiting on the registry.
pub type SharedView = Arc<RwLock<Option<Arc<ServicesFile>>>>;

/// Keeps the file (and the shared view) current, over anything that
/// holds needs and resolved items (no registration calls: a fake of the
/// extension implements two small traits).
#[derive(Debug)]
pub struct Watcher<C> {
    catalog: C,
    config: Config,
    last_check: Option<Instant>,
    revision: Option<u64>,
    in_outage: bool,
    view: SharedView,
}

impl<C: NeedsDeclarations + ResolvedViews> Watcher<C> {
    /// A watcher over the registry.
    pub fn new(catalog: C, config: Config) -> Self {
        Self { catalog, config, last_check: None, revision: None, in_outage: false, view: SharedView::default() }
    }

    /// The last good view, for the endpoint.
    pub fn view(&self) -> SharedView {
        self.view.clone()
    }

    /// The configuration read at init.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A check now, whatever the interval (a request that just got an error
    /// from a stale endpoint asks for one).
    pub async fn check_now(&mut self) {
        self.last_check = None;
        self.on_invoke().await;
    }

    /// Init: declare the needs (only when they differ), wait briefly for the
    /// resolved item, write the file. A registry error that can pass
    /// (throttling, 5xx, a reset, a timeout: what the SDK's own retries did
    /// not ride out) is tried again until the init wait is spent, so a brief
    /// fault does not start the function without its file. A registry still
    /// failing then, or refusing, is logged, not fatal: the function starts,
    /// and the next INVOKE tries again.
    pub async fn init(&mut self) {
        let deadline = Instant::now() + self.config.init_wait;
        let wanted: Vec<String> = self.config.needs.iter().map(ToString::to_string).collect();
        loop {
            let declared = match self.catalog.needs(&self.config.consumer).await {
                Ok(current) if current.as_ref() == Some(&wanted) => Ok(()),
                Ok(_) => {
                    let needs = Needs { consumer: self.config.consumer.clone(), needs: self.config.needs.clone() };
                    let put = self.catalog.put_needs(&needs, beacon_domain::clock::now_seconds()).await;
                    if put.is_ok() {
                        tracing::info!(consumer = %self.config.consumer, needs = %format_needs(&self.config.needs), "declared needs");
                    }
                    put
                }
                Err(e) => Err(e),
            };
            match declared {
                Ok(()) => break,
                Err(e) if e.retryable && Instant::now() < deadline => {
                    tracing::debug!(error = %e, "declaring needs failed; trying again within the init wait");
                    tokio::time::sleep(INIT_RETRY).await;
                }
                Err(e) => return self.outage(&e),
            }
        }
        loop {
            match self.catalog.resolved(&self.config.consumer).await {
                Ok(Some(item)) if answers(&item, &self.config.needs) => {
                    self.write(&item);
                    self.last_check = Some(Instant::now());
                    return;
                }
                Ok(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                Ok(_) => {
                    tracing::warn!(consumer = %self.config.consumer, "no resolved view yet; the first INVOKE checks again");
                    return;
                }
                Err(e) if e.retryable && Instant::now() < deadline => {
                    tracing::debug!(error = %e, "reading the resolved view failed; trying again within the init wait");
                    tokio::time::sleep(INIT_RETRY).await;
                }
                Err(e) => return self.outage(&e),
            }
        }
    }

    /// On INVOKE: at most once per interval, read the revision; rewrite the
    /// file only if it moved. Never fails: an outage keeps the last file.
    pub async fn on_invoke(&mut self) {
        if self.last_check.is_some_and(|t| t.elapsed() < self.config.interval) {
            return;
        }
        self.last_check = Some(Instant::now());
        tracing::debug!(consumer = %self.config.consumer, "registry check");
        let revision = match self.catalog.revision(&self.config.consumer).await {
            Ok(r) => r,
            Err(e) => return self.outage(&e),
        };
        if self.in_outage {
            tracing::info!("registry reachable again");
            self.in_outage = false;
        }
        if revision.is_none() || revision == self.revision {
            return;
        }
        match self.catalog.resolved(&self.config.consumer).await {
            Ok(Some(item)) => self.write(&item),
            Ok(None) => {}
            Err(e) => self.outage(&e),
        }
    }

    fn outage(&mut self, e: &StoreError) {
        // Once per outage: an unreachable registry on every INVOKE would
        // flood the function's logs.
        if !self.in_outage {
            tracing::warn!(error = %e, "registry unreachable; keeping the last file");
            self.in_outage = true;
        }
    }

    fn write(&mut self, item: &ResolvedItem) {
        let file = ServicesFile::from_resolved(item);
        if let Ok(mut view) = self.view.write() {
            *view = Some(Arc::new(file.clone()));
        }
        match write_atomic(&self.config.path, &serde_json::to_vec_pretty(&file).unwrap_or_default()) {
            Ok(()) => {
                tracing::info!(revision = item.revision, path = %self.config.path.display(), "services file written");
                self.revision = Some(item.revision);
            }
            Err(e) => {
                tracing::warn!(path = %self.config.path.display(), error = %e, "could not write the services file")
            }
        }
    }
}

/// Whether a resolved item already answers exactly these needs: the fan-out
/// updates the needs header before it writes each service's view, so a
/// matching header alone can be a view still being filled in.
fn answers(item: &ResolvedItem, needs: &[Requirement]) -> bool {
    let needs = Needs { consumer: item.consumer.clone(), needs: needs.to_vec() };
    let wanted: Vec<String> = needs.needs.iter().map(ToString::to_string).collect();
    item.needs == wanted
        && needs.services().iter().all(|s| {
            item.services.get(s).is_some_and(|v| {
                v.requirements.iter().map(|r| r.requirement.clone()).collect::<Vec<_>>() == needs.requirements_on(s)
            })
        })
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory (same file system), then a rename, so a reader sees the old
/// file or the new one, never half of one. Mode 0600: only the function's
/// own user reads it.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("services"),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
