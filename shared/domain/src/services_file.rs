//! The file the Lambda extension keeps current for its function, and a small
//! reader for Rust functions. Schema: `events/schema/services-file.schema.json`.
//!
//! ```no_run
//! let file = beacon::services_file::ServicesFile::read_default().expect("services file");
//! if let Some(url) = file.endpoint_url("orders") {
//!     println!("calling {url}");
//! }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::resolution::Endpoint;
use crate::view::{Outcome, RequirementView, ResolvedItem};

/// Where the extension writes unless told otherwise (`BEACON_SERVICES_FILE`,
/// or the seed's `SERVICES_FILE`).
pub const DEFAULT_PATH: &str = "/tmp/beacon/services.json";

/// The file's document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicesFile {
    /// Always 1 for this shape.
    pub schema_version: u32,
    /// The consumer whose view this is.
    pub consumer: String,
    /// The resolved item's revision this file shows.
    pub revision: u64,
    /// What the function needs (`NEEDED_SERVICES`, normalised).
    pub needs: Vec<String>,
    /// Per needed service, each requirement's outcome.
    pub services: BTreeMap<String, Vec<ServiceEntry>>,
}

/// One requirement's outcome, flattened for readers in any language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// The requirement as declared (`payments==1.2.0`).
    pub requirement: String,
    /// `resolved` or `unresolved`.
    pub status: String,
    /// The chosen version, when resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Healthy endpoints of that version (each with its ARN, if registered).
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Why it did not resolve: `no_such_service`, `no_version_matches`,
    /// `none_healthy`, `only_draining`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The same, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// I/O.
    #[error("reading {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not the documented shape.
    #[error("{path} is not a Beacon services file: {source}")]
    Parse {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl From<&RequirementView> for ServiceEntry {
    fn from(v: &RequirementView) -> Self {
        match &v.outcome {
            Outcome::Resolved(r) => ServiceEntry {
                requirement: v.requirement.clone(),
                status: "resolved".into(),
                version: Some(r.version.to_string()),
                endpoints: r.endpoints.clone(),
                reason: None,
                message: None,
            },
            Outcome::Unresolved(why) => {
                let reason = serde_json::to_value(why)
                    .ok()
                    .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned));
                ServiceEntry {
                    requirement: v.requirement.clone(),
                    status: "unresolved".into(),
                    version: None,
                    endpoints: Vec::new(),
                    reason,
                    message: Some(why.to_string()),
                }
            }
        }
    }
}

impl ServicesFile {
    /// The file for a resolved item.
    pub fn from_resolved(item: &ResolvedItem) -> Self {
        Self {
            schema_version: 1,
            consumer: item.consumer.clone(),
            revision: item.revision,
            needs: item.needs.clone(),
            services: item
                .view()
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().map(ServiceEntry::from).collect()))
                .collect(),
        }
    }

    /// Reads a file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, ReadError> {
        let path = path.as_ref();
        let text = std::fs::read(path).map_err(|source| ReadError::Io { path: path.display().to_string(), source })?;
        serde_json::from_slice(&text).map_err(|source| ReadError::Parse { path: path.display().to_string(), source })
    }

    /// Reads the file where the extension writes it (`BEACON_SERVICES_FILE`,
    /// `SERVICES_FILE`, or [`DEFAULT_PATH`]).
    pub fn read_default() -> Result<Self, ReadError> {
        let path = std::env::var("BEACON_SERVICES_FILE")
            .or_else(|_| std::env::var("SERVICES_FILE"))
            .unwrap_or_else(|_| DEFAULT_PATH.into());
        Self::read(path)
    }

    /// Asks the extension's loopback endpoint for the view
    /// (`http://127.0.0.1:<BEACON_HTTP_PORT or 2780>/services`), with
    /// `refresh` asking it to check the registry first (bounded on its side).
    /// No HTTP library: one request over `std::net`, so a function adds no
    /// dependency for it.
    pub fn fetch(refresh: bool) -> Result<Self, ReadError> {
        use std::io::{Read as _, Write as _};
        let port = std::env::var("BEACON_HTTP_PORT").ok().and_then(|p| p.parse::<u16>().ok()).unwrap_or(2780);
        let what = format!("http://127.0.0.1:{port}/services");
        let io = |source| ReadError::Io { path: what.clone(), source };
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(io)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).map_err(io)?;
        let refresh = if refresh { "x-beacon-refresh: now\r\n" } else { "" };
        write!(stream, "GET /services HTTP/1.0\r\nhost: 127.0.0.1:{port}\r\n{refresh}\r\n").map_err(io)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).map_err(io)?;
        let start = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |i| i + 4);
        serde_json::from_slice(&response[start..]).map_err(|source| ReadError::Parse { path: what.clone(), source })
    }

    /// The first resolved entry for a service.
    pub fn resolved(&self, service: &str) -> Option<&ServiceEntry> {
        self.services.get(service)?.iter().find(|e| e.status == "resolved")
    }

    /// The first healthy endpoint URL of a service (endpoints are in a stable
    /// order; pick another index to spread load).
    pub fn endpoint_url(&self, service: &str) -> Option<&str> {
        self.resolved(service)?.endpoints.first().map(|e| e.endpoint_url.as_str())
    }

    /// The first ARN registered for a service.
    pub fn arn(&self, service: &str) -> Option<&str> {
        self.resolved(service)?.endpoints.iter().find_map(|e| e.arn.as_deref())
    }
}
