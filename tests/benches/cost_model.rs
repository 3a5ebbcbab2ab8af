//! The cost and scale model: monthly cost and staleness of Beacon's push
//! against catalog polling (seed 1's design) at 5 s, 30 s and 5 min, for
//! fleets from 10 services / 100 consumers to 10,000 services / 1,000,000
//! consumers. It uses the request counts and timings measured by the other
//! benchmarks (docs/benchmarks.md) and AWS's published us-east-1 prices
//! (dated below). No stack needed: `cargo bench -p beacon-tests --bench cost_model`.
//! Writes `docs/img/cost-vs-fleet.svg` and prints Markdown tables.

use beacon_tests::plot::{Series, line_chart};

// --- AWS us-east-1 on-demand prices, as published (2025 figures) ---------
const PRICES_DATE: &str = "2025 (AWS pricing pages, us-east-1, on-demand)";
const DDB_WRU: f64 = 0.625 / 1e6;
const DDB_RRU: f64 = 0.125 / 1e6;
const SNS_PUBLISH: f64 = 0.50 / 1e6;
const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
const LAMBDA_GB_S_ARM: f64 = 0.000_013_333_4;
const APIGW_REST_REQUEST: f64 = 3.50 / 1e6;
const SQS_FIFO_REQUEST: f64 = 0.50 / 1e6;

// --- Measured by ./scripts/bench, 2026-11-26 (docs/benchmarks.md) -----------
/// Handler time per record with no dependents (pipeline benchmark).
const HANDLER_S_PER_RECORD: f64 = 0.00874;
/// Handler time per dependent whose view moved (fan-out benchmark: a
/// refresh page of 500 took 4.9 s on the local stack; an upper bound, AWS's
/// writes are several times faster). Dependents whose view did not move
/// cost nothing (view groups, issue 17).
const HANDLER_S_PER_DEPENDENT: f64 = 0.0098;
/// Push latency, write → subscriber, p50 and p99 (pipeline benchmark).
const PUSH_P50_S: f64 = 0.148;
const PUSH_P99_S: f64 = 0.339;
/// One poll's own latency (the 1 s run's p50 minus half an interval).
const POLL_LATENCY_S: f64 = 0.039;

// --- Assumptions (stated in the docs) ---------------------------------------
/// Real changes per service per hour (deploys, scaling, health flips).
const CHANGES_PER_SERVICE_HOUR: f64 = 1.0;
/// Services each consumer needs.
const NEEDS_PER_CONSUMER: f64 = 5.0;
/// Share of a service's dependents whose view a change moves.
const VIEW_CHANGE_SHARE: f64 = 0.5;
/// View groups (distinct requirement lists) whose view a change moves.
const GROUPS_MOVED_PER_CHANGE: f64 = 2.0;
/// Dependents per refresh-queue page.
const PAGE: f64 = 500.0;
/// Records per fan-out invocation on average.
const RECORDS_PER_INVOCATION: f64 = 10.0;
/// The fan-out's memory, GB.
const LAMBDA_GB: f64 = 0.125;
/// Seconds in a 30-day month.
const MONTH_S: f64 = 30.0 * 86_400.0;

#[derive(Debug, Clone, Copy)]
struct Fleet {
    services: f64,
    consumers: f64,
}

/// Beacon's pipeline cost per month (the registry's own upkeep — client
/// writes and heartbeats — is the same for polling and left out of both).
fn push_monthly(f: Fleet) -> f64 {
    let changes = f.services * CHANGES_PER_SERVICE_HOUR * 24.0 * 30.0;
    let dependents = f.consumers * NEEDS_PER_CONSUMER / f.services;
    // Per change: bump (1 WRU) + consistent Query of the registrations and
    // view groups (1 RRU) + the change event.
    let moved = dependents * VIEW_CHANGE_SHARE;
    let groups = if moved > 0.0 { GROUPS_MOVED_PER_CHANGE } else { 0.0 };
    let pages = (moved / PAGE).ceil();
    let per_change = DDB_WRU + DDB_RRU + SNS_PUBLISH
        // Per view group that moved: its claim (a transaction of two items,
        // each billed twice) and its settle.
        + groups * 5.0 * DDB_WRU
        // Per dependent whose view moved: its view write (~2 WRU for a
        // resolved item of 1-2 KB) and its `resolved` event. Dependents whose
        // view did not move: nothing.
        + moved * (2.0 * DDB_WRU + SNS_PUBLISH)
        // Per page: its edges (about 13 RRU for 500, consistent), the group
        // re-read, and the queue's send, receive and delete.
        + pages * (14.0 * DDB_RRU + 3.0 * SQS_FIFO_REQUEST + LAMBDA_REQUEST);
    let lambda_s = HANDLER_S_PER_RECORD + moved * HANDLER_S_PER_DEPENDENT;
    let lambda = LAMBDA_REQUEST / RECORDS_PER_INVOCATION + lambda_s * LAMBDA_GB * LAMBDA_GB_S_ARM;
    changes * (per_change + lambda)
}

/// Consumers learning of changes through the extension: one revision read
/// (1 RRU) per 5 s per always-busy consumer environment — an upper bound.
fn extension_monthly(f: Fleet) -> f64 {
    f.consumers * (MONTH_S / 5.0) * DDB_RRU
}

/// Seed 1's design: every consumer polls each service it needs through the
/// catalog API (API Gateway → Lambda → one DynamoDB read) every `t` seconds.
fn polling_monthly(f: Fleet, t: f64) -> f64 {
    let polls = f.consumers * NEEDS_PER_CONSUMER * MONTH_S / t;
    let per_poll = APIGW_REST_REQUEST + LAMBDA_REQUEST + 0.010 * LAMBDA_GB * LAMBDA_GB_S_ARM + 0.5 * DDB_RRU;
    polls * per_poll
}

fn money(v: f64) -> String {
    if v >= 1e6 {
        format!("${:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("${:.1}k", v / 1e3)
    } else {
        format!("${v:.2}")
    }
}

fn main() {
    let fleets = [
        Fleet { services: 10.0, consumers: 100.0 },
        Fleet { services: 100.0, consumers: 1_000.0 },
        Fleet { services: 1_000.0, consumers: 10_000.0 },
        Fleet { services: 1_000.0, consumers: 100_000.0 },
        Fleet { services: 10_000.0, consumers: 1_000_000.0 },
    ];
    println!("## Monthly cost, push vs polling (prices: {PRICES_DATE})\n");
    println!(
        "Assumptions: {CHANGES_PER_SERVICE_HOUR} change per service per hour; each consumer needs {NEEDS_PER_CONSUMER} services; \
         a change moves {:.0}% of its dependents' views; {RECORDS_PER_INVOCATION} records per fan-out invocation.\n",
        VIEW_CHANGE_SHARE * 100.0
    );
    println!(
        "| services | consumers | push (pipeline) | + extension reads (5 s, upper bound) | polling 5 s | polling 30 s | polling 5 min |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut series: Vec<Series> =
        ["push (pipeline)", "push + extension reads", "polling 5 s", "polling 30 s", "polling 5 min"]
            .iter()
            .map(|n| Series { name: (*n).into(), points: Vec::new() })
            .collect();
    for f in fleets {
        let row = [
            push_monthly(f),
            push_monthly(f) + extension_monthly(f),
            polling_monthly(f, 5.0),
            polling_monthly(f, 30.0),
            polling_monthly(f, 300.0),
        ];
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            f.services,
            f.consumers,
            money(row[0]),
            money(row[1]),
            money(row[2]),
            money(row[3]),
            money(row[4])
        );
        for (s, v) in series.iter_mut().zip(row) {
            s.points.push((f.consumers, v));
        }
    }
    println!("\n## Staleness (time until a consumer can know of a change)\n");
    println!("| design | p50 | p99 |");
    println!("|---|---|---|");
    println!("| push (measured, local stack) | {PUSH_P50_S} s | {PUSH_P99_S} s |");
    for t in [5.0, 30.0, 300.0] {
        println!(
            "| polling every {t} s (uniform phase + poll latency) | {:.1} s | {:.1} s |",
            t / 2.0 + POLL_LATENCY_S,
            0.99 * t + POLL_LATENCY_S
        );
    }
    let svg = line_chart(
        "Monthly cost against fleet size",
        "consumers (services = consumers / 10..100)",
        "USD per month",
        &series,
        true,
        true,
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img/cost-vs-fleet.svg");
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&path, svg) {
        Ok(()) => eprintln!("wrote {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}
