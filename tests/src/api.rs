//! The catalog API as `beacon dev` serves it (loopback, SigV4-checked), with
//! a minimal HTTP client that signs with the AWS SDK's own SigV4 signer.

use std::io::{Read, Write};
use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use beacon_aws::DynamoTable;
use beacon_local::api_server::{LocalCredentials, serve};
use beacon_local::setup::LOCAL_ACCESS_KEY;
use serde_json::Value;
use tokio::sync::watch;

/// A running local catalog API.
#[derive(Debug)]
pub struct LocalApi {
    /// `host:port` on loopback.
    pub addr: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl LocalApi {
    /// Serves `registry`, accepting writes signed with `secret`.
    pub async fn start(registry: DynamoTable, secret: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the API");
        let addr = listener.local_addr().expect("the API's address").to_string();
        let (stop, rx) = watch::channel(false);
        let credentials = LocalCredentials::local(secret, beacon_local::setup::DEFAULT_SCOPED_SERVICE);
        let task = tokio::spawn(serve(listener, registry, credentials, beacon_catalog_api::ApiConfig::default(), rx));
        Self { addr, stop, task }
    }

    /// Sends one request, signed with `secret` when given, plus `extra`
    /// headers; returns the status and the JSON body (`Null` if not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        secret: Option<&str>,
        extra: &[(&str, &str)],
    ) -> (u16, Value) {
        self.call_as(LOCAL_ACCESS_KEY, method, path, body, secret, extra).await
    }

    /// As [`LocalApi::call`], signed with `access_key`.
    pub async fn call_as(
        &self,
        access_key: &str,
        method: &str,
        path: &str,
        body: Vec<u8>,
        secret: Option<&str>,
        extra: &[(&str, &str)],
    ) -> (u16, Value) {
        let (addr, method, path) = (self.addr.clone(), method.to_owned(), path.to_owned());
        let access_key = access_key.to_owned();
        let secret = secret.map(str::to_owned);
        let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        tokio::task::spawn_blocking(move || {
            let mut headers = match &secret {
                Some(s) => signed_as(&access_key, &addr, &method, &path, &body, s),
                None => vec![("host".into(), addr.clone()), ("content-type".into(), "application/json".into())],
            };
            headers.extend(extra);
            http(&addr, &method, &path, &headers, &body)
        })
        .await
        .expect("the HTTP call")
    }

    /// Stops the server.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A response as [`exchange`] reads it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code (0 if the server answered nothing readable).
    pub status: u16,
    /// The headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl Reply {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// One HTTP/1.1 request over loopback on a new connection (`connection:
/// close`, `content-length` set); an error only when nothing could connect.
pub fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    // The server may answer (413, 400) and close before reading it all.
    let _ = stream.write_all(req.as_bytes()).and_then(|()| stream.write_all(body));
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Reply { status, headers, body: body.to_owned() })
}

/// A minimal HTTP/1.1 client over loopback; returns (status, JSON body).
pub fn http(addr: &str, method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> (u16, Value) {
    let reply = exchange(addr, method, path, headers, body).expect("connecting to the API");
    (reply.status, reply.json())
}

/// Headers for a SigV4-signed request, signed by the AWS SDK's signer.
pub fn signed(addr: &str, method: &str, path: &str, body: &[u8], secret: &str) -> Vec<(String, String)> {
    signed_as(LOCAL_ACCESS_KEY, addr, method, path, body, secret)
}

/// As [`signed`], with `access_key`.
pub fn signed_as(
    access_key: &str,
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    secret: &str,
) -> Vec<(String, String)> {
    let identity = aws_credential_types::Credentials::new(access_key, secret, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("execute-api")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing parameters")
        .into();
    let base =
        vec![("host".to_string(), addr.to_string()), ("content-type".to_string(), "application/json".to_string())];
    let url = format!("http://{addr}{path}");
    let signable = SignableRequest::new(
        method,
        url,
        base.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .expect("a signable request");
    let (instructions, _) = sign(signable, &params).expect("signing").into_parts();
    let mut headers = base;
    for h in instructions.headers() {
        headers.push((h.0.to_string(), h.1.to_string()));
    }
    headers
}
