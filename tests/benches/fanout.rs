//! What one change costs by number of dependents, with view groups and the
//! refresh queue (issue 17; docs/benchmarks.md, "A change costs what it
//! changes"). For each size, a fresh table, topic and queues; the
//! dependents are loaded directly (BatchWriteItem: edges, resolved items,
//! their view group and the service's generation, exactly as the fan-out
//! would have left them), then two changes: one that moves no view (an
//! attribute edit) and one that moves every view (healthy → unhealthy).
//!
//! Reported per change: the fan-out's DynamoDB reads, writes and refused
//! writes (stream path and pages together), events published, refresh pages,
//! the longest single invocation of each function, the time until every view
//! has converged (the fan-out's own count of written views, checked on a
//! sample of resolved items), and the delay the refresh adds to an unrelated
//! service's change on the same stream. The raw write ceiling (16 concurrent
//! PutItems) is measured in the same run, on a fresh table at the start and
//! again on the same engine just before each size's moving change.
//!
//! `BENCH_FANOUT_SIZES` (default `0,10,1000,10000,100000`) picks the sizes;
//! `BENCH_REFRESH_POLLERS` the refresh queue mapping's concurrency (default
//! 4: the template lets AWS run up to `RefreshConcurrency` = 10 pages at
//! once; 4 is what this machine's two cores bear, the local stack's own
//! default of 2 leaves DynamoDB Local idle between pages); `BENCH_PAUSE_STREAM=1` stops the stream poller while
//! a refresh's pages run (an experiment on what slows them locally).

// The rig (a table, topic and queues with the dependents loaded, and the
// two handlers feeding counters) is fanout/rig.rs; the measuring is here.
#[path = "fanout/rig.rs"]
mod rig;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue as Av;
use beacon_aws::item::to_attribute;
use beacon_domain::ports::{Registrations, Views};
use beacon_domain::view::ViewCache;
use beacon_domain::{Registration, Status, keys};
use beacon_fanout::Limits;
use beacon_tests::{now, sdk_config};
use futures::StreamExt;

use rig::{REQUIREMENT, auth, load, raw_rate_now, rig, s, sample_converged, seed_items, start, switch_stream, wait};

#[tokio::main]
async fn main() {
    let config = sdk_config().await;
    let sizes: Vec<usize> = std::env::var("BENCH_FANOUT_SIZES")
        .unwrap_or_else(|_| "0,10,1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();

    // The raw write ceiling, measured on this run's own fresh table.
    let ceiling = rig(&config).await;
    let n = 2000;
    let started = Instant::now();
    beacon_tests::put_instances(&ceiling.writer, n, 50).await;
    let raw = n as f64 / started.elapsed().as_secs_f64();
    // The same for the write a refresh makes: an UpdateItem setting one
    // service's view in a resolved item and returning the item.
    let instance = auth(Status::Unhealthy, "z");
    let view = ViewCache::new(std::slice::from_ref(&instance), 2, now()).view(&[REQUIREMENT.to_owned()]);
    load(&ceiling, seed_items(n, &view, true)).await;
    let view_av: Av = to_attribute(&view).expect("view").into();
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|c| {
            let (client, table, view_av) =
                (ceiling.clients.dynamodb.clone(), ceiling.resources.table.clone(), view_av.clone());
            async move {
                client
                    .update_item()
                    .table_name(table)
                    .key(keys::PK, s(keys::consumer_pk(&format!("c{c:06}"))))
                    .key(keys::SK, s(keys::resolved_sk()))
                    .update_expression("SET services.#s = :v")
                    .expression_attribute_names("#s", "auth")
                    .expression_attribute_values(":v", view_av)
                    .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                    .send()
                    .await
                    .expect("UpdateItem");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let raw_views = n as f64 / started.elapsed().as_secs_f64();
    // And the refresh's own write, through the port: conditional on the
    // generation and the digest, bumping the revision, returning the item.
    let moved = auth(Status::Healthy, "z");
    let moved_view = ViewCache::new(std::slice::from_ref(&moved), 3, now()).view(&[REQUIREMENT.to_owned()]);
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|c| {
            let (writer, view) = (&ceiling.writer, &moved_view);
            async move {
                let w =
                    writer.write_view(&format!("c{c:06}"), "auth", view, Some("ceiling")).await.expect("write_view");
                assert!(matches!(w, beacon_domain::ports::ViewWrite::Changed(_)), "the ceiling's views must change");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let raw_conditional = n as f64 / started.elapsed().as_secs_f64();

    let mut costs = Vec::new();
    let mut delays = Vec::new();
    let mut lookups = Vec::new();
    // Changes are measured up to this size; larger sizes measure lookups only.
    let change_max: usize =
        std::env::var("BENCH_FANOUT_CHANGE_MAX").ok().and_then(|v| v.parse().ok()).unwrap_or(usize::MAX);
    // Each size under today's design (a service with at most
    // `Limits::direct` dependents refreshed directly) and, where that
    // differs, under view groups alone (the design before, `direct: 0`).
    let mut runs = Vec::new();
    for &dependents in &sizes {
        let direct = dependents <= Limits::default().direct;
        runs.push((dependents, Limits::default(), if direct { "direct" } else { "view groups" }));
        if direct && dependents > 0 {
            runs.push((dependents, Limits { direct: 0, ..Limits::default() }, "view groups (before)"));
        }
    }
    for (dependents, limits, design) in runs {
        let mut rig = rig(&config).await;
        let instance = auth(Status::Healthy, "a");
        let view = ViewCache::new(std::slice::from_ref(&instance), 1, now()).view(&[REQUIREMENT.to_owned()]);
        let items = seed_items(dependents, &view, limits.direct < dependents);
        let seeded = items.len() as u64;
        let load_started = Instant::now();
        switch_stream(&mut rig, false).await;
        load(&rig, items).await;
        switch_stream(&mut rig, true).await;
        eprintln!(
            "bench: {dependents} dependents loaded ({seeded} items in {:.1} s)",
            load_started.elapsed().as_secs_f64()
        );
        rig.writer.put(&instance).await.expect("write");
        if design != "view groups (before)" {
            lookups.push(lookup_row(&rig, dependents).await);
        }
        if dependents > change_max {
            continue;
        }
        let (mut mapping, queue) = start(&rig, limits);
        let pause_stream = std::env::var("BENCH_PAUSE_STREAM").is_ok_and(|v| v == "1");
        wait("the service's first registration", Duration::from_secs(60), || {
            rig.seen.records.load(Ordering::Relaxed) >= 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (what, change, moves) in [
            ("moves none (attribute)", auth(Status::Healthy, "b"), false),
            ("moves all (→ unhealthy)", auth(Status::Unhealthy, "b"), true),
        ] {
            let raw_now = if moves { Some(raw_rate_now(&rig.clients).await) } else { None };
            let seen = &rig.seen;
            let before = rig.fan.counts().snapshot();
            let (published, pages, views, records) = (
                seen.published.load(Ordering::Relaxed),
                seen.pages.load(Ordering::Relaxed),
                seen.views.load(Ordering::Relaxed),
                seen.records.load(Ordering::Relaxed),
            );
            seen.reset_longest();
            let started = Instant::now();
            rig.writer.put(&change).await.expect("write");
            let target = if moves { views + dependents as u64 } else { views };
            if pause_stream && moves {
                // An experiment: is the local stream poller what slows the
                // pages? Stop it once the change's batch is handled.
                wait("the change's batch", Duration::from_secs(600), || seen.records.load(Ordering::Relaxed) > records)
                    .await;
                mapping.pause().await;
            }
            wait("the views", Duration::from_secs(3600), || {
                seen.records.load(Ordering::Relaxed) > records && seen.views.load(Ordering::Relaxed) >= target
            })
            .await;
            let converged = started.elapsed().as_secs_f64();
            if pause_stream && moves {
                mapping.resume();
            }
            // Let the queue go quiet (a last, empty page may follow) before
            // the requests are counted.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert!(sample_converged(&rig, dependents, !moves).await, "bench: a sampled view did not converge");
            let after = rig.fan.counts().snapshot();
            let written = seen.views.load(Ordering::Relaxed) - views;
            costs.push(format!(
                "| {dependents} | {design} | {what} | {} | {} ({}) | {} | {} | {:.0} ms / {:.0} ms | {:.2} s | {} | {} |",
                after.0 - before.0,
                after.1 - before.1,
                after.2 - before.2,
                seen.published.load(Ordering::Relaxed) - published,
                seen.pages.load(Ordering::Relaxed) - pages,
                seen.longest_stream.load(Ordering::Relaxed) as f64 / 1000.0,
                seen.longest_page.load(Ordering::Relaxed) as f64 / 1000.0,
                converged,
                if written > 0 { format!("{:.0}", written as f64 / converged) } else { "–".into() },
                match raw_now {
                    Some(raw) if written > 0 => format!("{raw:.0} ({:.2})", written as f64 / converged / raw),
                    Some(raw) => format!("{raw:.0}"),
                    None => "–".into(),
                },
            ));
        }
        // The delay a refresh adds to an unrelated service's change just
        // behind it on the stream (a third change, back to healthy).
        let seen = &rig.seen;
        let (views, registered) = (seen.views.load(Ordering::Relaxed), seen.registered.load(Ordering::Relaxed));
        rig.writer.put(&auth(Status::Healthy, "c")).await.expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let unrelated_at = Instant::now();
        let other = Registration::new_at("other", "1.0.0", "o-1", "https://o.example", Status::Healthy, 600, now())
            .expect("valid");
        rig.writer.put(&other).await.expect("write");
        wait("the unrelated change", Duration::from_secs(600), || seen.registered.load(Ordering::Relaxed) > registered)
            .await;
        let delay = unrelated_at.elapsed().as_secs_f64() * 1000.0;
        let behind = seen.views.load(Ordering::Relaxed) - views;
        // The rest of this refresh is not waited for: the table is dropped.
        delays.push(format!("| {dependents} | {delay:.0} ms | {behind} of {dependents} |"));
        mapping.stop().await;
        queue.stop().await;
    }
    println!("## A change costs what it changes (`benches/fanout.rs`)\n");
    println!(
        "Raw write ceilings on a fresh table, 16 requests in flight: {raw:.0} PutItems/s ({n} registrations); \
         {raw_views:.0} view writes/s ({n} UpdateItems setting a view in a resolved item and returning it, \
         unconditionally); {raw_conditional:.0} refresh writes/s (the same through `Views::write_view`: \
         conditional on generation and digest, bumping the revision).\n"
    );
    println!(
        "| dependents | design | change | DynamoDB reads | DynamoDB writes (refused) | events published | refresh pages | longest invocation: stream / page | converged in | view writes/s | raw PutItems/s just before (ratio) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in costs {
        println!("{row}");
    }
    println!("\n### Lookups by number of dependents\n");
    println!(
        "| dependents | `GET /catalog/auth` (resolve): median, p90 | its DynamoDB reads, items read | `GET /catalog/auth/1.4.0` (lookup): median, p90 | its reads, items read | `GET /catalog?limit=50` (list): median, p90 | its reads, items read |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in lookups {
        println!("{row}");
    }
    println!("\n### An unrelated change behind a refresh\n");
    println!("| dependents refreshed | unrelated change's event out after | views written by then |");
    println!("|---|---|---|");
    for row in delays {
        println!("{row}");
    }
}

/// 50 resolves and 50 lookups of `auth`, and 50 first pages of the list,
/// through the local catalog API, over an adapter of their own: latency
/// (median, p90) and the DynamoDB reads and items read per request (a
/// listing's index Query reads keys only; its items are those BatchGetItem
/// returned).
async fn lookup_row(rig: &rig::Rig, dependents: usize) -> String {
    let table = beacon_aws::DynamoTable::new(rig.clients.dynamodb.clone(), &rig.table);
    let api = beacon_tests::api::LocalApi::start(table.clone(), "unused").await;
    let mut cells = Vec::new();
    for path in ["/catalog/auth", "/catalog/auth/1.4.0", "/catalog?limit=50"] {
        let before = table.counts().snapshot();
        let items_before = table.counts().items_read.load(Ordering::Relaxed);
        let mut ms = Vec::new();
        for _ in 0..50 {
            let started = Instant::now();
            let (status, _) = api.call("GET", path, Vec::new(), None, &[]).await;
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "bench: {path} at {dependents} dependents");
        }
        ms.sort_by(f64::total_cmp);
        let reads = (table.counts().snapshot().0 - before.0) as f64 / 50.0;
        let items = (table.counts().items_read.load(Ordering::Relaxed) - items_before) as f64 / 50.0;
        cells.push(format!("{:.1} ms, {:.1} ms | {reads:.1}, {items:.1}", ms[24], ms[44]));
    }
    api.stop().await;
    format!("| {dependents} | {} | {} | {} |", cells[0], cells[1], cells[2])
}
