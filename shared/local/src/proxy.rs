//! A fault proxy on loopback: it stands between Beacon's AWS clients and the
//! local engines (DynamoDB Local, the SNS/SQS server) and, request by
//! request, passes the request through or fails it the way AWS's own
//! services fail at the wire:
//!
//! - a throttling error in the service's real wire format: a 400 with an
//!   `application/x-amz-json-1.0` body naming `ThrottlingException` or
//!   `ProvisionedThroughputExceededException` (DynamoDB, DynamoDB Streams),
//!   `RequestThrottled` (SQS's JSON protocol), or the query protocol's XML
//!   `ErrorResponse` with code `Throttling` (SNS); for EventBridge's
//!   PutEvents, the form its throttles take: a 200 in which some entries
//!   failed with `ThrottlingException` (`FailedEntryCount`; the others
//!   forwarded), which the SDK does not retry;
//! - a 500 or 503 in the same formats;
//! - a connection reset before the request is forwarded (nothing happened);
//! - a connection reset after the engine answered, part-way through the
//!   response (the request happened; the client cannot know it did);
//! - a hang longer than the clients' attempt timeout, after which the
//!   request is still forwarded (it lands late, after the client retried);
//! - a slow answer, shorter than the timeout;
//! - a non-retryable refusal (`AccessDeniedException`, `AuthorizationError`).
//!
//! Faults come from a [`FaultPlan`]: scripted ("the next two `PutItem`s are
//! throttled") and/or random by a seeded schedule, so a failing run can be
//! replayed. Every request is logged with the fault it got and the SDK's
//! `amz-sdk-request` header (`attempt=2; max=4`), which is how a test tells
//! the SDK's own retries from Beacon's.
//!
//! The clients under test are unchanged: only their endpoint variables
//! (`AWS_ENDPOINT_URL_DYNAMODB`, ...) point at the proxy.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, warn};

mod plan;

pub use plan::{Fault, FaultPlan, Matcher, Mix, Seen, Service};
/// A running proxy in front of one engine.
#[derive(Debug)]
pub struct FaultProxy {
    /// Its address: what the clients' endpoint variable is set to.
    pub url: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:port` (0: any free port) forwarding to
    /// `upstream` (`http://127.0.0.1:8000`).
    pub async fn start(upstream: &str, port: u16, plan: Arc<FaultPlan>) -> std::io::Result<Self> {
        let upstream = upstream_addr(upstream)?;
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, upstream, plan, stopped));
        Ok(Self { url, stop, task })
    }

    /// Stops accepting; connections in flight end with it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn upstream_addr(url: &str) -> std::io::Result<SocketAddr> {
    let bad =
        || std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("upstream {url:?} is not http://host:port"));
    let parsed = url::Url::parse(url).map_err(|_| bad())?;
    let host = parsed.host_str().ok_or_else(bad)?;
    let port = parsed.port_or_known_default().ok_or_else(bad)?;
    use std::net::ToSocketAddrs as _;
    (host, port).to_socket_addrs()?.next().ok_or_else(bad)
}

async fn serve(listener: TcpListener, upstream: SocketAddr, plan: Arc<FaultPlan>, mut stopped: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        // A zero linger makes every close the proxy starts a reset (RST),
        // which is what a reset fault must look like on the wire. The proxy
        // only closes first when it injects one.
        if let Err(e) = stream.set_zero_linger() {
            warn!(error = %e, "proxy: could not set SO_LINGER");
        }
        let plan = plan.clone();
        connections.spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper::service::service_fn(move |req| handle(req, upstream, plan.clone()));
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                debug!(error = %e, "proxy: connection ended");
            }
        });
    }
    connections.shutdown().await;
}

/// Why the proxy drops a connection (hyper resets it).
#[derive(Debug, thiserror::Error)]
enum Dropped {
    #[error("fault: connection reset")]
    Reset,
    #[error("upstream: {0}")]
    Upstream(String),
}

type ProxyBody = http_body_util::combinators::BoxBody<Bytes, Dropped>;

fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into()).map_err(|never: Infallible| match never {}).boxed()
}

async fn handle(
    req: Request<Incoming>,
    upstream: SocketAddr,
    plan: Arc<FaultPlan>,
) -> Result<Response<ProxyBody>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|e| Dropped::Upstream(format!("reading the request: {e}")))?.to_bytes();
    let (service, operation) = classify(&parts.headers, &body);
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let attempt = attempt_of(&header("amz-sdk-request"));
    let fault = plan.decide(service, &operation, attempt, header("amz-sdk-invocation-id"));
    if fault != Fault::Pass {
        debug!(?service, operation, fault = fault.name(), attempt, "proxy: injecting");
    }
    let forward = || forward(upstream, Request::from_parts(parts.clone(), Full::new(body.clone())));
    match fault {
        Fault::Pass => forward().await,
        Fault::Throttle if service == Service::Events && operation == "PutEvents" => {
            partly_throttled(upstream, &parts, &body).await
        }
        Fault::Throttle | Fault::ServerError | Fault::Unavailable | Fault::Denied => {
            Ok(error_response(service, &operation, fault, &resource_of(service, &body)))
        }
        Fault::ResetBefore => Err(Dropped::Reset),
        Fault::ResetAfter => {
            let answered = forward().await?;
            let (parts, body) = answered.into_parts();
            let bytes = body.collect().await.map_err(|e| Dropped::Upstream(e.to_string()))?.to_bytes();
            // Half the body (at least none of it), then the reset.
            let half = bytes.slice(..bytes.len() / 2);
            let frames = futures::stream::iter(vec![Ok(Frame::data(half)), Err(Dropped::Reset)]);
            Ok(Response::from_parts(parts, StreamBody::new(frames).boxed()))
        }
        Fault::Hang => {
            tokio::time::sleep(plan.hang).await;
            forward().await
        }
        Fault::Slow => {
            tokio::time::sleep(plan.slow).await;
            forward().await
        }
    }
}

/// Sends one request to the engine on a connection of its own (loopback
/// connects are cheap, and no pool can hide a reset from the next request).
async fn forward(upstream: SocketAddr, req: Request<Full<Bytes>>) -> Result<Response<ProxyBody>, Dropped> {
    let err = |what: &str, e: &dyn std::fmt::Display| Dropped::Upstream(format!("{what}: {e}"));
    let stream = TcpStream::connect(upstream).await.map_err(|e| err("connecting", &e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| err("handshake", &e))?;
    tokio::spawn(conn);
    let response = sender.send_request(req).await.map_err(|e| err("sending", &e))?;
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.map_err(|e| err("reading the answer", &e))?.to_bytes();
    Ok(Response::from_parts(parts, full(bytes)))
}

/// The service and operation of a request, from its wire protocol.
fn classify(headers: &hyper::HeaderMap, body: &[u8]) -> (Service, String) {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok())
        && let Some((prefix, op)) = target.split_once('.')
    {
        let service = match prefix {
            "DynamoDB_20120810" => Service::DynamoDb,
            "DynamoDBStreams_20120810" => Service::Streams,
            "AmazonSQS" => Service::Sqs,
            "AWSEvents" => Service::Events,
            _ => Service::Other,
        };
        return (service, op.to_owned());
    }
    let action = url::form_urlencoded::parse(body).find(|(k, _)| k == "Action").map(|(_, v)| v.into_owned());
    match action {
        Some(a) => (Service::Sns, a),
        None => (Service::Other, String::new()),
    }
}

/// `attempt=2; max=4` → 2 (1 when absent: a client that does not say).
fn attempt_of(header: &str) -> u32 {
    header.split(';').find_map(|part| part.trim().strip_prefix("attempt=")).and_then(|n| n.parse().ok()).unwrap_or(1)
}

/// The resource a request names (its table, topic or queue), as the
/// request names it: AWS's refusals quote it.
fn resource_of(service: Service, body: &[u8]) -> String {
    let field = match service {
        Service::DynamoDb | Service::Streams => "TableName",
        Service::Sqs => "QueueUrl",
        Service::Sns => "TopicArn",
        Service::Events => {
            return serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["Entries"][0]["EventBusName"].as_str().map(str::to_owned))
                .unwrap_or_default();
        }
        Service::Other => return String::new(),
    };
    if service == Service::Sns {
        return url::form_urlencoded::parse(body)
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v[field].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// PutEvents throttled entry by entry, as EventBridge does when a
/// throughput quota is hit: the call succeeds, and some entries fail with
/// `ThrottlingException` (`FailedEntryCount`). Here every other entry (all
/// of a one-entry call) is refused, and the rest is forwarded; the answer
/// merges both, in the request's order.
async fn partly_throttled(
    upstream: SocketAddr,
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Result<Response<ProxyBody>, Dropped> {
    let mut request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    let refused = |n: usize| entries.len() == 1 || n % 2 == 1;
    let kept: Vec<serde_json::Value> =
        entries.iter().enumerate().filter(|(n, _)| !refused(*n)).map(|(_, e)| e.clone()).collect();
    let mut answered: Vec<serde_json::Value> = Vec::new();
    let mut failed = 0;
    if !kept.is_empty() {
        request["Entries"] = serde_json::Value::Array(kept);
        let forwarded = Bytes::from(request.to_string());
        let mut parts = parts.clone();
        parts.headers.insert(hyper::header::CONTENT_LENGTH, forwarded.len().into());
        let response = forward(upstream, Request::from_parts(parts, Full::new(forwarded))).await?;
        let bytes = response.into_body().collect().await.map_err(|e| Dropped::Upstream(e.to_string()))?.to_bytes();
        let out: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        answered = out["Entries"].as_array().cloned().unwrap_or_default();
        failed = out["FailedEntryCount"].as_u64().unwrap_or(0);
    }
    let mut answered = answered.into_iter();
    let merged: Vec<serde_json::Value> = (0..entries.len())
        .map(|n| match refused(n) {
            true => {
                failed += 1;
                serde_json::json!({
                    "ErrorCode": "ThrottlingException",
                    "ErrorMessage": "Request rate exceeded (injected by the fault proxy)."
                })
            }
            false => answered.next().unwrap_or_default(),
        })
        .collect();
    let answer = serde_json::json!({ "FailedEntryCount": failed, "Entries": merged });
    let mut response = Response::new(full(Bytes::from(answer.to_string())));
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"));
    Ok(response)
}

/// The error AWS's own service would send, in its wire format. A refusal
/// is worded as AWS words one (`User: … is not authorized to perform: …
/// on resource: …`), with the resource the request named, so callers'
/// handling of real refusals is what the tests exercise.
fn error_response(service: Service, operation: &str, fault: Fault, resource: &str) -> Response<ProxyBody> {
    let prefix = match service {
        Service::DynamoDb | Service::Streams => "dynamodb",
        Service::Sqs => "sqs",
        Service::Sns => "SNS",
        Service::Events => "events",
        Service::Other => "",
    };
    let denied = format!(
        "User: arn:aws:sts::000000000000:assumed-role/beacon-fault-proxy/local is not authorized to perform: \
         {prefix}:{operation} on resource: {resource} because no resource-based policy allows the \
         {prefix}:{operation} action (injected by the fault proxy)"
    );
    let (status, code, message) = match fault {
        Fault::Throttle => (400, "", "Rate of requests exceeds the allowed throughput.".to_owned()),
        Fault::ServerError => (500, "", "Internal server error (injected by the fault proxy).".to_owned()),
        Fault::Unavailable => {
            (503, "ServiceUnavailable", "Service unavailable (injected by the fault proxy).".to_owned())
        }
        _ => (400, "", denied),
    };
    let (status, code) = match (service, fault) {
        // DynamoDB names provisioned-capacity throttles on data calls
        // differently from control-plane throttles; both are seen.
        (Service::DynamoDb, Fault::Throttle) if operation.ends_with("Item") || operation == "Query" => {
            (status, "ProvisionedThroughputExceededException")
        }
        (Service::DynamoDb | Service::Streams, Fault::Throttle) => (status, "ThrottlingException"),
        (Service::Sqs, Fault::Throttle) => (status, "RequestThrottled"),
        (Service::Sns, Fault::Throttle) => (status, "Throttling"),
        (Service::Events, Fault::Throttle) => (status, "ThrottlingException"),
        (Service::Events, Fault::ServerError) => (status, "InternalException"),
        (Service::DynamoDb | Service::Streams, Fault::ServerError) => (status, "InternalServerError"),
        (_, Fault::ServerError) => (status, "InternalError"),
        (Service::Sns, Fault::Denied) => (403, "AuthorizationError"),
        (_, Fault::Denied) => (status, "AccessDeniedException"),
        _ => (status, code),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let request_id = "beacon-fault-proxy";
    let (content_type, body) = match service {
        Service::Sns | Service::Other => (
            "text/xml",
            format!(
                "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>{}</Type>\
                 <Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId>\
                 </ErrorResponse>",
                if status.is_server_error() { "Receiver" } else { "Sender" }
            ),
        ),
        Service::DynamoDb | Service::Streams => (
            "application/x-amz-json-1.0",
            serde_json::json!({ "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"), "message": message })
                .to_string(),
        ),
        Service::Sqs => (
            "application/x-amz-json-1.0",
            serde_json::json!({ "__type": format!("com.amazonaws.sqs#{code}"), "message": message }).to_string(),
        ),
        Service::Events => {
            ("application/x-amz-json-1.1", serde_json::json!({ "__type": code, "message": message }).to_string())
        }
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    headers.insert("x-amzn-requestid", hyper::header::HeaderValue::from_static(request_id));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let run = |seed| {
            let plan = FaultPlan::default();
            plan.set_mix(Some(Mix::retryable(seed, 0.1, Matcher::default())));
            (0..200).map(|_| plan.decide(Service::DynamoDb, "PutItem", 1, String::new())).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let faults = run(7).into_iter().filter(|f| *f != Fault::Pass).count();
        // 7 kinds at 10 % each: about 70 % of 200.
        assert!((100..180).contains(&faults), "{faults} faults of 200");
    }

    #[test]
    fn scripted_faults_go_first_and_only_to_their_match() {
        let plan = FaultPlan::default();
        plan.script(Matcher::op(Service::Sns, "Publish"), [Fault::Throttle, Fault::ResetAfter]);
        assert_eq!(plan.decide(Service::DynamoDb, "PutItem", 1, String::new()), Fault::Pass);
        assert_eq!(plan.decide(Service::Sns, "Publish", 1, String::new()), Fault::Throttle);
        assert_eq!(plan.decide(Service::Sns, "Publish", 2, String::new()), Fault::ResetAfter);
        assert_eq!(plan.decide(Service::Sns, "Publish", 3, String::new()), Fault::Pass);
        assert_eq!(plan.counts()[&Fault::Pass], 2);
    }

    #[test]
    fn requests_are_classified_by_their_protocol() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("x-amz-target", "DynamoDB_20120810.PutItem".parse().unwrap());
        assert_eq!(classify(&headers, b"{}"), (Service::DynamoDb, "PutItem".into()));
        headers.insert("x-amz-target", "AmazonSQS.ReceiveMessage".parse().unwrap());
        assert_eq!(classify(&headers, b"{}"), (Service::Sqs, "ReceiveMessage".into()));
        let none = hyper::HeaderMap::new();
        assert_eq!(classify(&none, b"Action=PublishBatch&Version=2010-03-31"), (Service::Sns, "PublishBatch".into()));
        assert_eq!(classify(&none, b"\xff\xfe"), (Service::Other, String::new()));
        assert_eq!(attempt_of("attempt=3; max=4"), 3);
        assert_eq!(attempt_of(""), 1);
    }

    #[test]
    fn errors_use_each_services_wire_format() {
        let topic = "arn:aws:sns:us-east-1:000000000000:beacon-changes";
        let r = error_response(Service::Sns, "Publish", Fault::Throttle, topic);
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["content-type"], "text/xml");
        let r = error_response(Service::DynamoDb, "UpdateItem", Fault::Throttle, "beacon");
        assert_eq!(r.headers()["content-type"], "application/x-amz-json-1.0");
        assert_eq!(error_response(Service::Streams, "GetRecords", Fault::Unavailable, "").status(), 503);
        assert_eq!(error_response(Service::Sns, "Publish", Fault::Denied, topic).status(), 403);
    }

    #[tokio::test]
    async fn a_refusal_names_the_operation_and_the_resource_as_aws_does() {
        use http_body_util::BodyExt;
        let r = error_response(Service::DynamoDb, "PutItem", Fault::Denied, "beacon-registry");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("AccessDeniedException"), "{body}");
        assert!(body.contains("is not authorized to perform: dynamodb:PutItem on resource: beacon-registry"), "{body}");
    }
}
