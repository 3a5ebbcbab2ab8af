//! The extension's freshness rules on a paused clock, over an in-memory
//! catalog: what happens at each INVOKE is decided by time and by what the
//! registry answers, and both are set exactly here. (The binary against the
//! real engines and an Extensions API stand-in is `tests/tests/extension.rs`.)
//!
//! The in-memory catalog is a test double: it injects what DynamoDB Local
//! cannot produce on demand (an outage at an exact moment) and counts reads.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use beacon_domain::parse_needs;
use beacon_domain::ports::{ConsumerPage, NeedsDeclarations, PageToken, ResolvedViews, StoreError};
use beacon_domain::view::{Needs, ResolvedItem};
use beacon_extension::{Config, Watcher};

#[derive(Default)]
struct Memory {
    needs: Mutex<Option<Vec<String>>>,
    item: Mutex<Option<ResolvedItem>>,
    down: AtomicBool,
    revision_reads: AtomicUsize,
    item_reads: AtomicUsize,
    needs_writes: AtomicUsize,
}

impl Memory {
    fn check(&self, what: &str) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::transient(what, "unreachable"));
        }
        Ok(())
    }

    fn set_revision(&self, revision: u64) {
        let mut item = self.item.lock().unwrap();
        item.get_or_insert_with(|| view(&["orders"], 0)).revision = revision;
    }
}

/// A resolved item answering `needs` (no service resolves: the views say
/// why, which is all the file needs).
fn view(needs: &[&str], revision: u64) -> ResolvedItem {
    let reqs = parse_needs(&needs.join(",")).unwrap();
    let n = Needs { consumer: "web".into(), needs: reqs.clone() };
    let services = n
        .services()
        .into_iter()
        .map(|s| {
            let views = n
                .requirements_on(&s)
                .into_iter()
                .map(|r| beacon_domain::view::RequirementView {
                    requirement: r,
                    outcome: beacon_domain::view::Outcome::Unresolved(beacon_domain::Unresolved::NoSuchService),
                })
                .collect();
            (s, beacon_domain::view::ServiceView::new(1, views))
        })
        .collect::<BTreeMap<_, _>>();
    ResolvedItem {
        consumer: "web".into(),
        revision,
        needs: reqs.iter().map(ToString::to_string).collect(),
        needed_services: n.services(),
        services,
        last_change_id: None,
    }
}

#[async_trait]
impl NeedsDeclarations for &Memory {
    async fn needs(&self, _: &str) -> Result<Option<Vec<String>>, StoreError> {
        self.check("needs")?;
        Ok(self.needs.lock().unwrap().clone())
    }

    async fn put_needs(&self, needs: &Needs, _: i64) -> Result<(), StoreError> {
        self.check("put_needs")?;
        self.needs_writes.fetch_add(1, Ordering::SeqCst);
        *self.needs.lock().unwrap() = Some(needs.needs.iter().map(ToString::to_string).collect());
        Ok(())
    }

    async fn delete_needs(&self, _: &str) -> Result<(), StoreError> {
        unreachable!("the extension never removes its needs")
    }
}

#[async_trait]
impl ResolvedViews for &Memory {
    async fn revision(&self, _: &str) -> Result<Option<u64>, StoreError> {
        self.check("revision")?;
        self.revision_reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.item.lock().unwrap().as_ref().map(|i| i.revision))
    }

    async fn resolved(&self, _: &str) -> Result<Option<ResolvedItem>, StoreError> {
        self.check("resolved")?;
        self.item_reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.item.lock().unwrap().clone())
    }

    async fn consumers(&self, _: u32, _: Option<PageToken>) -> Result<ConsumerPage, StoreError> {
        unreachable!("the extension reads only its own view")
    }
}

const INTERVAL: Duration = Duration::from_secs(5);

fn config(dir: &std::path::Path) -> Config {
    Config {
        needs: parse_needs("orders").unwrap(),
        consumer: "web".into(),
        path: dir.join("services.json"),
        interval: INTERVAL,
        init_wait: Duration::from_secs(3),
        table: "t".into(),
        http_port: None,
        refresh_timeout: Duration::from_millis(300),
        replica_region: None,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("beacon-watcher-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn revision_in(path: &std::path::Path) -> Option<u64> {
    beacon_client::read(path).ok().map(|f| f.revision)
}

#[tokio::test(start_paused = true)]
async fn at_most_one_registry_check_per_interval_and_a_rewrite_only_when_the_revision_moves() {
    let dir = temp_dir("interval");
    let memory = Memory::default();
    *memory.item.lock().unwrap() = Some(view(&["orders"], 1));
    let mut w = Watcher::new(&memory, config(&dir));
    w.init().await;
    let file = dir.join("services.json");
    assert_eq!(revision_in(&file), Some(1), "the file is written at init");
    assert_eq!(memory.needs_writes.load(Ordering::SeqCst), 1, "needs were absent: declared once");

    memory.set_revision(2);
    for _ in 0..5 {
        w.on_invoke().await;
    }
    assert_eq!(memory.revision_reads.load(Ordering::SeqCst), 0, "an INVOKE within the interval read the registry");
    assert_eq!(revision_in(&file), Some(1));

    tokio::time::advance(INTERVAL).await;
    for _ in 0..5 {
        w.on_invoke().await;
    }
    assert_eq!(memory.revision_reads.load(Ordering::SeqCst), 1, "one check per interval");
    assert_eq!(revision_in(&file), Some(2));

    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    let item_reads = memory.item_reads.load(Ordering::SeqCst);
    tokio::time::advance(INTERVAL).await;
    w.on_invoke().await;
    assert_eq!(memory.revision_reads.load(Ordering::SeqCst), 2);
    assert_eq!(memory.item_reads.load(Ordering::SeqCst), item_reads, "an unchanged revision read the item");
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        modified,
        "an unchanged revision rewrote the file"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn an_outage_keeps_the_last_file_and_the_next_check_recovers() {
    let dir = temp_dir("outage");
    let memory = Memory::default();
    *memory.item.lock().unwrap() = Some(view(&["orders"], 1));
    let mut w = Watcher::new(&memory, config(&dir));
    w.init().await;
    let file = dir.join("services.json");

    memory.down.store(true, Ordering::SeqCst);
    memory.set_revision(2);
    for _ in 0..3 {
        tokio::time::advance(INTERVAL).await;
        w.on_invoke().await;
    }
    assert_eq!(revision_in(&file), Some(1), "the last good file stays, whole");

    memory.down.store(false, Ordering::SeqCst);
    tokio::time::advance(INTERVAL).await;
    w.on_invoke().await;
    assert_eq!(revision_in(&file), Some(2), "the first check after the outage catches up");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn needs_already_declared_are_not_rewritten_and_init_waits_only_init_wait() {
    let dir = temp_dir("init");
    let memory = Memory::default();
    *memory.needs.lock().unwrap() = Some(vec!["orders".into()]);
    let mut w = Watcher::new(&memory, config(&dir));
    let start = tokio::time::Instant::now();
    w.init().await;
    assert_eq!(memory.needs_writes.load(Ordering::SeqCst), 0, "the same needs were written again");
    // No resolved view ever came: init gave up after init_wait, no file.
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(3) && waited < Duration::from_secs(4), "waited {waited:?}");
    let file = dir.join("services.json");
    assert_eq!(revision_in(&file), None);

    // The first INVOKE (no check has happened yet) picks the view up.
    *memory.item.lock().unwrap() = Some(view(&["orders"], 3));
    w.on_invoke().await;
    assert_eq!(revision_in(&file), Some(3));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn a_registry_failing_briefly_at_init_is_tried_again_within_init_wait() {
    // What the wire-fault test of the binary found: one failed call (after
    // the SDK's own retries) used to start the function without its file,
    // with most of the init wait unspent.
    let dir = temp_dir("init-retry");
    let memory = Memory::default();
    *memory.needs.lock().unwrap() = Some(vec!["orders".into()]);
    *memory.item.lock().unwrap() = Some(view(&["orders"], 4));
    memory.down.store(true, Ordering::SeqCst);
    let mut w = Watcher::new(&memory, config(&dir));
    let start = tokio::time::Instant::now();
    let back = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        memory.down.store(false, Ordering::SeqCst);
    };
    tokio::join!(w.init(), back);
    let waited = start.elapsed();
    assert_eq!(revision_in(&dir.join("services.json")), Some(4), "the file is there for the first INVOKE");
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_secs(2), "waited {waited:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn a_registry_down_for_all_of_init_wait_starts_the_function_without_a_file() {
    let dir = temp_dir("init-down");
    let memory = Memory::default();
    *memory.item.lock().unwrap() = Some(view(&["orders"], 4));
    memory.down.store(true, Ordering::SeqCst);
    let mut w = Watcher::new(&memory, config(&dir));
    let start = tokio::time::Instant::now();
    w.init().await;
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(3) && waited < Duration::from_secs(4), "gave up after init_wait: {waited:?}");
    assert_eq!(revision_in(&dir.join("services.json")), None);
    // The first INVOKE after it recovers catches up.
    memory.down.store(false, Ordering::SeqCst);
    w.on_invoke().await;
    assert_eq!(revision_in(&dir.join("services.json")), Some(4));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn a_view_of_other_needs_is_not_taken_for_ours() {
    let dir = temp_dir("stale-view");
    let memory = Memory::default();
    // The fan-out has not caught up with the new declaration yet.
    *memory.item.lock().unwrap() = Some(view(&["users"], 7));
    let mut w = Watcher::new(&memory, config(&dir));
    w.init().await;
    assert_eq!(revision_in(&dir.join("services.json")), None, "a view answering other needs was written");
    let _ = std::fs::remove_dir_all(dir);
}

/// The endpoint serves the watcher's last good view, the same document as
/// the file; a refresh request checks now, and a registry that hangs holds
/// it no longer than the refresh timeout.
#[tokio::test(start_paused = true)]
async fn the_endpoint_serves_the_files_view_and_refreshes_on_request_within_its_timeout() {
    use beacon_extension::endpoint::{Endpoint, REVISION_HEADER};
    use http_body_util::BodyExt;

    let dir = temp_dir("endpoint");
    let memory: &'static Memory = Box::leak(Box::new(Memory::default()));
    *memory.item.lock().unwrap() = Some(view(&["orders"], 1));
    let watcher = std::sync::Arc::new(tokio::sync::Mutex::new(Watcher::new(memory, config(&dir))));
    watcher.lock().await.init().await;
    let view_handle = watcher.lock().await.view();
    let w = watcher.clone();
    let endpoint = Endpoint {
        view: view_handle,
        refresh: std::sync::Arc::new(move || {
            let w = w.clone();
            Box::pin(async move { w.lock().await.check_now().await })
        }),
        refresh_timeout: Duration::from_millis(300),
    };
    let body = |r: hyper::Response<http_body_util::Full<hyper::body::Bytes>>| async move {
        let status = r.status().as_u16();
        let rev = r.headers().get(REVISION_HEADER).map(|v| v.to_str().unwrap().to_owned());
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        (status, rev, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default())
    };

    let (status, rev, doc) = body(endpoint.answer("GET", "/services", false).await).await;
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("services.json")).unwrap()).unwrap();
    assert_eq!((status, rev.as_deref()), (200, Some("1")));
    assert_eq!(doc, file, "the endpoint and the file show the same view");
    let (status, _, one) = body(endpoint.answer("GET", "/services/orders", false).await).await;
    assert_eq!((status, one["service"].as_str()), (200, Some("orders")));
    assert_eq!(one["entries"][0]["reason"], "no_such_service");
    let (status, _, missing) = body(endpoint.answer("GET", "/services/payments", false).await).await;
    assert_eq!(status, 404, "a service the function did not declare");
    assert!(missing["error"].as_str().unwrap().contains("payments"));

    // A change: without a refresh the view stays until the interval; with
    // one it moves now, without a read for the plain requests in between.
    memory.set_revision(2);
    let reads = memory.revision_reads.load(Ordering::SeqCst);
    assert_eq!(body(endpoint.answer("GET", "/services", false).await).await.1.as_deref(), Some("1"));
    assert_eq!(memory.revision_reads.load(Ordering::SeqCst), reads, "a plain request read the registry");
    assert_eq!(body(endpoint.answer("GET", "/services", true).await).await.1.as_deref(), Some("2"));

    // The registry hangs: a refresh gives up after its timeout and serves
    // the last good view.
    let hang = watcher.clone().lock_owned().await;
    let start = tokio::time::Instant::now();
    let (status, rev, _) = body(endpoint.answer("GET", "/services", true).await).await;
    assert_eq!((status, rev.as_deref()), (200, Some("2")));
    assert_eq!(start.elapsed(), Duration::from_millis(300), "the refresh was not bounded by its timeout");
    drop(hang);

    // Bad requests: a clear 4xx each.
    for (method, uri, want) in [
        ("POST", "/services", 405),
        ("GET", "/nope", 404),
        ("GET", "/services/a/b", 404),
        ("GET", &format!("/services/{}", "x".repeat(2000)), 414),
    ] {
        let (status, _, doc) = body(endpoint.answer(method, uri, false).await).await;
        assert_eq!(status, want, "{method} {}", &uri[..uri.len().min(40)]);
        assert!(doc["error"].is_string(), "{doc}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
