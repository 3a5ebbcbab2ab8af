//! The coverage-guided fuzz targets' checks (`fuzz/cases/`), replayed as an
//! ordinary test: every seed the fuzzer starts from (built from `events/`,
//! as `./scripts/fuzz` builds its corpus) and every input that once failed
//! (`fuzz/regressions/<target>/`) goes through the same check the fuzzer
//! runs. The fuzzing itself, which needs an instrumented build, is a
//! separate command (`./scripts/fuzz`, docs/reliability.md).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

#[path = "../../fuzz/cases/catalog_request.rs"]
mod catalog_request;
#[path = "../../fuzz/cases/item_decoders.rs"]
mod item_decoders;
#[path = "../../fuzz/cases/requirements.rs"]
mod requirements;
#[path = "../../fuzz/cases/stream_event.rs"]
mod stream_event;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &str, ext: Option<&str>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root().join(dir)) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
        .collect();
    out.sort();
    out
}

/// The seeds `./scripts/fuzz` builds, per target.
struct Seeds {
    stream_event: Vec<Vec<u8>>,
    item_decoders: Vec<Vec<u8>>,
    requirements: BTreeSet<String>,
    catalog_request: Vec<Vec<u8>>,
}

fn seeds() -> Seeds {
    let mut s = Seeds {
        stream_event: Vec::new(),
        item_decoders: Vec::new(),
        requirements: ["orders", "payments==1.2.0", "auth^1", "a>=1.0,<2, b~2.0", "x==1.0.0-rc.1+b7", ""]
            .into_iter()
            .map(str::to_owned)
            .collect(),
        catalog_request: Vec::new(),
    };
    for path in files("events/stream", Some("json")) {
        let raw = std::fs::read(&path).unwrap();
        let event: Value = serde_json::from_slice(&raw).unwrap();
        s.stream_event.push(raw);
        for record in event["Records"].as_array().into_iter().flatten() {
            for image in ["NewImage", "OldImage", "Keys"] {
                let item = &record["dynamodb"][image];
                if item.is_null() {
                    continue;
                }
                s.item_decoders.push(serde_json::to_vec(item).unwrap());
                let needs = &item["needs"];
                for v in needs["L"].as_array().into_iter().flatten().chain(std::iter::once(needs)) {
                    if let Some(text) = v["S"].as_str() {
                        s.requirements.insert(text.to_owned());
                    }
                }
            }
        }
    }
    for path in files("events/api", Some("json")) {
        let e: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let query: Vec<String> = e["queryStringParameters"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        let mut line = format!("{} {}", e["httpMethod"].as_str().unwrap(), e["path"].as_str().unwrap());
        if !query.is_empty() {
            line = format!("{line}?{}", query.join("&"));
        }
        s.catalog_request.push(format!("{line}\n{}", e["body"].as_str().unwrap_or_default()).into_bytes());
    }
    s
}

fn regressions(target: &str) -> Vec<Vec<u8>> {
    files(&format!("fuzz/regressions/{target}"), None).iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn every_seed_and_regression_passes_its_fuzz_targets_check() {
    let s = seeds();
    // The seeds exist: an events/ folder renamed would otherwise make this
    // test pass on nothing.
    assert!(s.stream_event.len() >= 5 && s.item_decoders.len() >= 5 && s.catalog_request.len() >= 3);
    for input in s.stream_event.iter().chain(&regressions("stream_event")) {
        stream_event::check(input);
    }
    for input in s.item_decoders.iter().chain(&regressions("item_decoders")) {
        item_decoders::check(input);
    }
    let texts: Vec<Vec<u8>> = s.requirements.iter().map(|t| t.clone().into_bytes()).collect();
    let requirement_regressions = regressions("requirements");
    assert!(!requirement_regressions.is_empty(), "fuzz/regressions/requirements is read");
    for input in texts.iter().chain(&requirement_regressions) {
        requirements::check(input);
    }
    for input in s.catalog_request.iter().chain(&regressions("catalog_request")) {
        catalog_request::check(input);
    }
}
