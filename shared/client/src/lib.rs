//! For a consumer function written in Rust: the view Beacon's Lambda
//! extension keeps current, read from its file or its loopback endpoint.
//! No AWS SDK and no HTTP library: the function adds nothing heavy for it.
//!
//! ```no_run
//! let view = beacon_client::read_default().expect("services file");
//! if let Some(url) = view.endpoint_url("orders") {
//!     println!("calling {url}");
//! }
//! ```

use std::path::Path;

pub use beacon_domain::services_file::{DEFAULT_PATH, ServiceEntry, ServicesFile};

/// The view could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// I/O.
    #[error("reading {path}: {source}")]
    Io {
        /// The path (or the endpoint's URL).
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not the documented shape.
    #[error("{path} is not a Beacon services file: {source}")]
    Parse {
        /// The path (or the endpoint's URL).
        path: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// Reads a services file.
pub fn read(path: impl AsRef<Path>) -> Result<ServicesFile, ReadError> {
    let path = path.as_ref();
    let text = std::fs::read(path).map_err(|source| ReadError::Io { path: path.display().to_string(), source })?;
    serde_json::from_slice(&text).map_err(|source| ReadError::Parse { path: path.display().to_string(), source })
}

/// Where the extension writes: `BEACON_SERVICES_FILE`, the seed's
/// `SERVICES_FILE`, or [`DEFAULT_PATH`].
pub fn default_path() -> String {
    std::env::var("BEACON_SERVICES_FILE")
        .or_else(|_| std::env::var("SERVICES_FILE"))
        .unwrap_or_else(|_| DEFAULT_PATH.into())
}

/// Reads the file where the extension writes it ([`default_path`]).
pub fn read_default() -> Result<ServicesFile, ReadError> {
    read(default_path())
}

/// The extension's loopback port: `BEACON_HTTP_PORT`, or 2780.
pub fn endpoint_port() -> u16 {
    std::env::var("BEACON_HTTP_PORT").ok().and_then(|p| p.parse::<u16>().ok()).unwrap_or(2780)
}

/// Asks the extension's loopback endpoint for the view
/// (`http://127.0.0.1:<`[`endpoint_port`]`>/services`), with `refresh`
/// asking it to check the registry first (bounded on its side). One request
/// over `std::net`.
pub fn fetch(refresh: bool) -> Result<ServicesFile, ReadError> {
    fetch_from(endpoint_port(), refresh)
}

/// [`fetch`] from `port`.
pub fn fetch_from(port: u16, refresh: bool) -> Result<ServicesFile, ReadError> {
    use std::io::{Read as _, Write as _};
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_foreign_file_says_which_and_why() {
        let dir = std::env::temp_dir().join(format!("beacon-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.json");
        let err = read(&missing).unwrap_err();
        assert!(matches!(err, ReadError::Io { .. }) && err.to_string().contains("missing.json"), "{err}");
        let foreign = dir.join("foreign.json");
        std::fs::write(&foreign, br#"{"hello": 1}"#).unwrap();
        let err = read(&foreign).unwrap_err();
        assert!(err.to_string().contains("is not a Beacon services file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nothing_listening_is_an_io_error_naming_the_endpoint() {
        // Port 1 on loopback: nothing listens there unprivileged.
        let err = fetch_from(1, false).unwrap_err();
        assert!(err.to_string().contains("http://127.0.0.1:1/services"), "{err}");
    }
}
