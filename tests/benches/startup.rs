//! Start-up and extension overhead (./scripts/bench):
//!
//! - each function binary's time from process start to its first Runtime
//!   API request (`GET /2018-06-01/runtime/invocation/next`), against a
//!   stand-in Runtime API on loopback: the cold-start work Beacon adds on top
//!   of Lambda's own;
//! - the extension's overhead per INVOKE, with and without a registry check,
//!   against the Extensions API stand-in and DynamoDB Local;
//! - the extension's loopback endpoint: latency per request beside reading
//!   and parsing the file, and the extension's memory with it on and off.
//!
//! The binaries are the benchmark profile's x86-64 builds of the same code
//! that `./scripts/package` builds for arm64.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use beacon_tests::extensions_api::ExtensionsApi;
use beacon_tests::{TestPipeline, unique};
use tokio::io::AsyncReadExt;

fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("bench path");
    exe.parent().and_then(|p| p.parent()).expect("target dir").join(name)
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn time_to_first_request(name: &str) -> Option<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok()?;
    let addr = listener.local_addr().ok()?.to_string();
    let start = Instant::now();
    let mut child = Command::new(binary(name))
        .env("AWS_LAMBDA_RUNTIME_API", &addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("BEACON_TABLE", "startup")
        .env("BEACON_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:startup")
        .env("REGISTRAR_SERVICE_NAME", "svc")
        .env("REGISTRAR_SERVICE_VERSION", "1.0.0")
        .env("REGISTRAR_ENDPOINT_URL", "https://svc.example")
        .env("REGISTRAR_PROPERTIES", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await;
    let mut result = None;
    if let Ok(Ok((mut stream, _))) = accepted {
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            let line = String::from_utf8_lossy(&buf[..n]);
            if line.contains("/runtime/invocation/next") {
                result = Some(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    result
}

#[tokio::main]
async fn main() {
    println!("## Start-up: process start → first Runtime API request (20 starts each)\n");
    println!("| function | p50 ms | max ms |");
    println!("|---|---|---|");
    for name in ["fanout", "sweeper", "catalog-api", "registrar"] {
        let mut times = Vec::new();
        for _ in 0..20 {
            if let Some(t) = time_to_first_request(name).await {
                times.push(t);
            }
        }
        if times.is_empty() {
            println!("| {name} | (did not start: build it with cargo build --profile bench --bins) | |");
            continue;
        }
        let max = times.iter().copied().fold(0.0, f64::max);
        println!("| {name} | {:.1} | {max:.1} |", p50(times));
    }

    println!("\n## Extension overhead per INVOKE (INVOKE handed over → extension asks for the next event)\n");
    let p = TestPipeline::start("ext-bench").await;
    let dir = std::env::temp_dir().join(unique("ext-bench"));
    std::fs::create_dir_all(&dir).expect("dir");
    println!("| case | n | p50 ms |");
    println!("|---|---|---|");
    for (case, interval) in
        [("within the interval (no registry read)", "3600000"), ("with a revision check every INVOKE", "0")]
    {
        let api = ExtensionsApi::start().await;
        let mut child = Command::new(binary("beacon-extension"))
            .env("AWS_LAMBDA_RUNTIME_API", &api.addr)
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench-fn")
            .env("NEEDED_SERVICES", "orders")
            .env("BEACON_TABLE", &p.table)
            .env("BEACON_SERVICES_FILE", dir.join("services.json"))
            .env("BEACON_CHECK_INTERVAL_MS", interval)
            .env("BEACON_INIT_WAIT_MS", "5000")
            .env("BEACON_HTTP_PORT", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("extension");
        api.wait_for_next_call(1, Duration::from_secs(30)).await;
        let mut times = Vec::new();
        for _ in 0..200 {
            let start = Instant::now();
            api.invoke().await;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        println!("| {case} | {} | {:.2} |", times.len(), p50(times));
        let _ = child.kill();
        let _ = child.wait();
    }
    endpoint(&p, &dir).await;
    let _ = std::fs::remove_dir_all(dir);
    p.stop().await;
}

/// The extension's resident memory (VmRSS), in MB.
fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn p99(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// One GET on a new connection, as a function's HTTP client would make it.
fn get_services(port: u16) -> usize {
    let addr = format!("127.0.0.1:{port}");
    let reply = beacon_tests::api::exchange(&addr, "GET", "/services", &[("host".into(), addr.clone())], b"");
    reply.expect("the endpoint").body.len()
}

async fn endpoint(p: &TestPipeline, dir: &std::path::Path) {
    println!("\n## The extension's loopback endpoint (1,000 requests each)\n");
    println!("| read | p50 ms | p99 ms |");
    println!("|---|---|---|");
    let mut rss = Vec::new();
    for on in [false, true] {
        let api = ExtensionsApi::start().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port").port();
        let file = dir.join(format!("endpoint-{on}.json"));
        let mut child = Command::new(binary("beacon-extension"))
            .env("AWS_LAMBDA_RUNTIME_API", &api.addr)
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench-endpoint")
            .env("NEEDED_SERVICES", "orders")
            .env("BEACON_TABLE", &p.table)
            .env("BEACON_SERVICES_FILE", &file)
            .env("BEACON_CHECK_INTERVAL_MS", "3600000")
            .env("BEACON_INIT_WAIT_MS", "5000")
            .env("BEACON_HTTP_PORT", if on { port.to_string() } else { "off".to_owned() })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("extension");
        api.wait_for_next_call(1, Duration::from_secs(30)).await;
        if on {
            let mut times = Vec::new();
            for _ in 0..1000 {
                let start = Instant::now();
                assert!(get_services(port) > 0);
                times.push(start.elapsed().as_secs_f64() * 1000.0);
            }
            println!(
                "| `GET /services` on loopback (new connection each) | {:.3} | {:.3} |",
                p50(times.clone()),
                p99(times)
            );
            let mut times = Vec::new();
            for _ in 0..1000 {
                let start = Instant::now();
                let f = beacon_client::read(&file).expect("the file");
                assert!(!f.services.is_empty());
                times.push(start.elapsed().as_secs_f64() * 1000.0);
            }
            println!("| the file, read and parsed | {:.3} | {:.3} |", p50(times.clone()), p99(times));
        }
        rss.push(rss_mb(child.id()));
        let _ = child.kill();
        let _ = child.wait();
    }
    println!("\n| extension memory (VmRSS) | endpoint off | endpoint on, after 1,000 requests |");
    println!("|---|---|---|");
    println!("| MB | {:.1} | {:.1} |", rss[0], rss[1]);
}
