//! The soak's writers: each owns its slots, writes at random, and records
//! the event each write must produce.

use beacon_domain::ports::{InstanceKey, NeedsDeclarations, Registrations};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue as Av;
use beacon_aws::DynamoTable;
use beacon_aws::item::{encode_registration, to_sdk};
use beacon_domain::ports::ServiceState as _;
use beacon_domain::view::Needs;
use beacon_domain::{Registration, Status, parse_needs};
use beacon_tests::faults::{Rng, random_needs};
use beacon_tests::now;

pub(crate) const WRITERS: u64 = 4;
const SERVICES: usize = 6;
const SLOTS: usize = 12;
const CONSUMERS: usize = 3;
const REQUIREMENTS: &[&str] = &["", "^1", "==1.1.0", ">=1.0,<2", "~2.0", "^2"];

/// One instance a writer owns; only its owner writes it, so the writer
/// knows exactly which event each of its writes must produce.
#[derive(Debug, Clone)]
enum Slot {
    Absent,
    Live(Registration),
    /// Written already expired; the sweeper will delete it. Not touched
    /// again until it is gone, so the sweep's delete is the only one.
    Expiring,
}

/// What one writer did and what it expects to see.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// `(kind, op id)` of every event a write must produce; deletions are
    /// keyed by the op id of the write they removed.
    pub(crate) changes: Vec<(String, String)>,
    /// Keys (sort keys) of malformed items written directly.
    pub(crate) junk: Vec<String>,
    /// Each consumer's last needs (`None`: removed).
    pub(crate) needs: BTreeMap<String, Option<Needs>>,
    /// Operations by name.
    pub(crate) ops: BTreeMap<&'static str, u64>,
}

impl Written {
    /// What all the writers did, once they are done.
    pub(crate) async fn gather(writers: Vec<tokio::task::JoinHandle<Written>>) -> Self {
        let mut written = Self::default();
        for w in writers {
            written.absorb(w.await.unwrap());
        }
        written
    }

    /// Adds what another writer did.
    fn absorb(&mut self, part: Written) {
        self.changes.extend(part.changes);
        self.junk.extend(part.junk);
        self.needs.extend(part.needs);
        for (k, v) in part.ops {
            *self.ops.entry(k).or_default() += v;
        }
    }
}

fn slot_key(w: u64, slot: usize) -> (String, &'static str, String) {
    let versions = ["1.0.0", "1.1.0", "2.0.0"];
    (format!("s{}", (w as usize + slot) % SERVICES), versions[slot % versions.len()], format!("w{w}-i{slot}"))
}

fn registration(w: u64, slot: usize, op: &str, status: Status, expired: bool) -> Registration {
    let (service, version, id) = slot_key(w, slot);
    let (ttl, at) = if expired { (10, now() - 120) } else { (600, now()) };
    let mut r =
        Registration::new_at(&service, version, &id, &format!("https://{id}.{service}.example/{op}"), status, ttl, at)
            .unwrap();
    r.attributes.insert("op".into(), op.into());
    r
}

/// `raw` is the SDK client and table for malformed items, written as any
/// SDK user could. `elsewhere` are the other Regions' replicas, in a
/// multi-Region soak: an expiring slot is reused only once it is gone from
/// every replica, so a re-registration never races another Region's sweep
/// of its expired predecessor (that race is `tests/tests/regions.rs`'s).
pub(crate) async fn writer(
    w: u64,
    seed: u64,
    registry: DynamoTable,
    raw: (aws_sdk_dynamodb::Client, String),
    elsewhere: Vec<DynamoTable>,
    ops: u64,
    deadline: Instant,
) -> Written {
    let mut rng = Rng::new(seed ^ (w + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut slots = vec![Slot::Absent; SLOTS];
    let mut out = Written::default();
    let statuses = [Status::Healthy, Status::Unhealthy, Status::Draining];
    for n in 0..ops {
        if Instant::now() > deadline {
            break;
        }
        let op = format!("w{w}-{n}");
        let i = rng.below(SLOTS);
        let roll = rng.below(100);
        let name: &'static str = match slots[i].clone() {
            _ if roll == 99 => {
                // A malformed item written directly (a status no one knows).
                let (service, version, _) = slot_key(w, i);
                let id = format!("w{w}-junk{n}");
                let mut item = to_sdk(encode_registration(
                    &Registration::new_at(&service, version, &id, "https://j.example", Status::Healthy, 600, now())
                        .unwrap(),
                ));
                item.insert("status".into(), Av::S("sideways".into()));
                let sk = item["sk"].as_s().unwrap().clone();
                raw.0.put_item().table_name(&raw.1).set_item(Some(item)).send().await.unwrap();
                out.junk.push(sk);
                "malformed"
            }
            _ if roll >= 90 => {
                let consumer = format!("c{w}-{}", rng.below(CONSUMERS));
                if rng.below(10) == 0 {
                    registry.delete_needs(&consumer).await.unwrap();
                    out.needs.insert(consumer, None);
                    "needs removed"
                } else {
                    let needs = Needs {
                        consumer: consumer.clone(),
                        needs: parse_needs(&random_needs(&mut rng, SERVICES, REQUIREMENTS)).unwrap(),
                    };
                    registry.put_needs(&needs, now()).await.unwrap();
                    out.needs.insert(consumer, Some(needs));
                    "needs changed"
                }
            }
            Slot::Expiring => {
                let (service, version, id) = slot_key(w, i);
                let mut gone = true;
                for replica in std::iter::once(&registry).chain(&elsewhere) {
                    let partition = replica.read_service(&service).await.unwrap();
                    gone &=
                        !partition.instances.iter().any(|r| r.instance_id == id && r.version.to_string() == version);
                }
                if gone {
                    slots[i] = Slot::Absent;
                }
                "waited for the sweeper"
            }
            Slot::Absent if roll < 85 => {
                let written = registration(w, i, &op, Status::Healthy, false);
                registry.put(&written).await.unwrap();
                out.changes.push(("registered".into(), op.clone()));
                slots[i] = Slot::Live(written);
                "registered"
            }
            Slot::Absent => {
                registry.put(&registration(w, i, &op, Status::Healthy, true)).await.unwrap();
                out.changes.push(("registered".into(), op.clone()));
                out.changes.push(("expired".into(), op.clone()));
                slots[i] = Slot::Expiring;
                "registered expired"
            }
            Slot::Live(r) => match roll {
                0..30 => {
                    registry.heartbeat(&InstanceKey::of(&r), r.ttl_seconds, now()).await.unwrap();
                    "heartbeat"
                }
                30..50 => {
                    let written = registration(w, i, &op, r.status, false);
                    registry.put(&written).await.unwrap();
                    out.changes.push(("updated".into(), op.clone()));
                    slots[i] = Slot::Live(written);
                    "endpoint changed"
                }
                50..70 => {
                    let status = statuses.iter().copied().filter(|s| *s != r.status).nth(rng.below(2)).unwrap();
                    let written = registration(w, i, &op, status, false);
                    registry.put(&written).await.unwrap();
                    out.changes.push(("status_changed".into(), op.clone()));
                    slots[i] = Slot::Live(written);
                    "status changed"
                }
                70..83 => {
                    registry.delete(&InstanceKey::of(&r)).await.unwrap();
                    out.changes.push(("deregistered".into(), r.attributes["op"].clone()));
                    slots[i] = Slot::Absent;
                    "deregistered"
                }
                _ => {
                    registry.put(&registration(w, i, &op, r.status, true)).await.unwrap();
                    out.changes.push(("updated".into(), op.clone()));
                    out.changes.push(("expired".into(), op.clone()));
                    slots[i] = Slot::Expiring;
                    "expired"
                }
            },
        };
        *out.ops.entry(name).or_default() += 1;
        // Paced, so the pipeline faults land while writes are still coming.
        tokio::time::sleep(Duration::from_millis(rng.below(30) as u64)).await;
    }
    out
}
