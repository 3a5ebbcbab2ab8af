//! A stand-in for Lambda's Extensions API, written for the tests from AWS's
//! documented protocol (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html>):
//! `POST /2020-01-01/extension/register`, `GET /2020-01-01/extension/event/next`
//! (blocks until the test sends an event), `POST .../init/error` and
//! `.../exit/error` (recorded). The test plays Lambda: it waits for the
//! extension to ask for its next event (init done, or the last event
//! handled), then hands it one.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify};

#[derive(Debug, Default)]
struct State {
    registered: Option<(String, Vec<String>)>,
    next_calls: u64,
    waiting: bool,
    events: VecDeque<Value>,
    init_errors: Vec<(String, Value)>,
    exit_errors: Vec<(String, Value)>,
}

/// The stand-in; `addr` goes in `AWS_LAMBDA_RUNTIME_API`.
#[derive(Debug, Clone)]
pub struct ExtensionsApi {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
}

impl ExtensionsApi {
    /// Starts serving on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the stand-in");
        let api = Self {
            addr: listener.local_addr().expect("address").to_string(),
            state: Arc::default(),
            changed: Arc::new(Notify::new()),
        };
        let me = api.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let me = me.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let me = me.clone();
                        async move { Ok::<_, Infallible>(me.serve(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        api
    }

    async fn serve(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let name = header("lambda-extension-name");
        let error_type = header("lambda-extension-function-error-type");
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let ok = |v: Value| {
            let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
            r.headers_mut().insert("lambda-extension-identifier", hyper::header::HeaderValue::from_static("ext-1"));
            r
        };
        match path.as_str() {
            "/2020-01-01/extension/register" => {
                let events = body["events"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                self.state.lock().await.registered = Some((name, events));
                self.changed.notify_waiters();
                ok(json!({ "functionName": "orders-web", "functionVersion": "$LATEST", "handler": "bootstrap" }))
            }
            "/2020-01-01/extension/event/next" => {
                {
                    let mut s = self.state.lock().await;
                    s.next_calls += 1;
                    s.waiting = true;
                }
                self.changed.notify_waiters();
                loop {
                    let notified = self.changed.notified();
                    {
                        let mut s = self.state.lock().await;
                        if let Some(event) = s.events.pop_front() {
                            s.waiting = false;
                            return ok(event);
                        }
                    }
                    notified.await;
                }
            }
            "/2020-01-01/extension/init/error" => {
                self.state.lock().await.init_errors.push((error_type, body));
                self.changed.notify_waiters();
                ok(json!({ "status": "OK" }))
            }
            "/2020-01-01/extension/exit/error" => {
                self.state.lock().await.exit_errors.push((error_type, body));
                self.changed.notify_waiters();
                ok(json!({ "status": "OK" }))
            }
            _ => {
                let mut r = Response::new(Full::new(Bytes::from("not found")));
                *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                r
            }
        }
    }

    /// Waits until the extension has asked for its `n`th event (and so has
    /// finished with everything before it).
    pub async fn wait_for_next_call(&self, n: u64, limit: Duration) {
        let start = Instant::now();
        loop {
            let notified = self.changed.notified();
            {
                let s = self.state.lock().await;
                if s.next_calls >= n && s.waiting {
                    return;
                }
            }
            assert!(start.elapsed() < limit, "the extension did not ask for event {n} within {limit:?}");
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }

    /// Hands the extension an INVOKE and waits until it has handled it.
    pub async fn invoke(&self) {
        let n = self.state.lock().await.next_calls;
        self.send(json!({
            "eventType": "INVOKE", "deadlineMs": 0, "requestId": "r-1",
            "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:orders-web",
            "tracing": { "type": "X-Amzn-Trace-Id", "value": "Root=1-0-0" }
        }))
        .await;
        self.wait_for_next_call(n + 1, Duration::from_secs(20)).await;
    }

    /// Hands the extension a SHUTDOWN.
    pub async fn shutdown(&self) {
        self.send(json!({ "eventType": "SHUTDOWN", "shutdownReason": "SPINDOWN", "deadlineMs": 0 })).await;
    }

    async fn send(&self, event: Value) {
        self.state.lock().await.events.push_back(event);
        self.changed.notify_waiters();
    }

    /// What the extension registered: its name and events.
    pub async fn registered(&self) -> Option<(String, Vec<String>)> {
        self.state.lock().await.registered.clone()
    }

    /// Init errors reported so far: (error type header, body).
    pub async fn init_errors(&self) -> Vec<(String, Value)> {
        self.state.lock().await.init_errors.clone()
    }

    /// How many times the extension asked for an event.
    pub async fn next_calls(&self) -> u64 {
        self.state.lock().await.next_calls
    }
}
