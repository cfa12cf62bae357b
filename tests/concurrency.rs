//! Several readers and one writer on an `Engine` of 100,000 records. The
//! writer applies random batches (status changes, inserts, deletes,
//! sharing changes) while the readers run counts and full marker walks;
//! every reader's answers taken from one snapshot must agree with each
//! other, and when the writer stops, the engine must equal an oracle that
//! received the same batches. docs/concurrency.md states the guarantees.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use backdex::oracle::Oracle;
use backdex::synth::{generate, Rng, SynthConfig};
use backdex::{Engine, Member, MemberStatus, Record, Scope, Status, Store};
use serde_json::Value;

/// A random index below `len`, from the library's one generator (seeded,
/// so that a failure replays).
fn pick(rng: &mut Rng, len: usize) -> usize {
    rng.below(len as u64) as usize
}

const STATUSES: [Status; 4] = [
    Status::Available,
    Status::Error,
    Status::Deleted,
    Status::Protecting,
];

/// One random batch over the live records: status changes, inserts,
/// deletes and sharing changes. Returns the upserts and the deletes.
fn random_batch(
    rng: &mut Rng,
    live: &mut Vec<Record>,
    projects: &[String],
    fresh: &mut usize,
) -> (Vec<Record>, Vec<String>) {
    let mut upserts: Vec<Record> = Vec::new();
    let mut deletes = Vec::new();
    let mut touched = HashSet::new();
    for _ in 0..1 + pick(rng, 40) {
        let k = pick(rng, live.len());
        if !touched.insert(live[k].id.clone()) {
            continue;
        }
        match pick(rng, 10) {
            0..=4 => {
                live[k].status = STATUSES[pick(rng, STATUSES.len())];
                upserts.push(live[k].clone());
            }
            5 | 6 => {
                let mut r = live[k].clone();
                *fresh += 1;
                r.id = format!("fresh-{fresh}");
                r.project_id = projects[pick(rng, projects.len())].clone();
                touched.insert(r.id.clone());
                live.push(r.clone());
                upserts.push(r);
            }
            7 => {
                let r = live.swap_remove(k);
                deletes.push(r.id);
            }
            _ => {
                let to = projects[pick(rng, projects.len())].clone();
                live[k].members = if live[k].members.is_empty() {
                    vec![Member {
                        dest_project_id: to,
                        status: MemberStatus::Pending,
                    }]
                } else {
                    Vec::new()
                };
                upserts.push(live[k].clone());
            }
        }
    }
    (upserts, deletes)
}

/// The ids of a list body.
fn ids(body: &Value) -> Vec<String> {
    body.get("backups")
        .or_else(|| body.get("checkpoint_items"))
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A full marker walk on one snapshot; checks it has no duplicate and
/// returns its length.
fn walk(store: &Store, path: &str, query: &str, scope: &Scope) -> usize {
    let mut seen = HashSet::new();
    let mut marker: Option<String> = None;
    loop {
        let q = match &marker {
            Some(m) => format!("{query}&limit=700&marker={m}"),
            None => format!("{query}&limit=700"),
        };
        let response = store.handle(path, &q, scope);
        assert_eq!(response.status, 200, "{path}?{q}: {}", response.body);
        let page = ids(&response.json());
        let Some(last) = page.last().cloned() else {
            return seen.len();
        };
        for id in page {
            assert!(seen.insert(id.clone()), "{path}?{q}: {id} twice in a walk");
        }
        marker = Some(last);
    }
}

fn count(store: &Store, path: &str, query: &str, scope: &Scope) -> usize {
    let response = store.handle(path, query, scope);
    assert_eq!(response.status, 200, "{path}?{query}: {}", response.body);
    response.json()["count"].as_u64().expect("a count") as usize
}

#[test]
fn readers_stay_consistent_while_a_writer_changes_the_store() {
    let records: Vec<Record> = generate(&SynthConfig {
        records: 100_000,
        projects: 200,
        slim: true,
        ..SynthConfig::default()
    })
    .collect();
    let mut projects: Vec<String> = records.iter().map(|r| r.project_id.clone()).collect();
    projects.sort();
    projects.dedup();
    let engine = Arc::new(Engine::new());
    engine.upsert(&records).expect("loads");
    let mut oracle = Oracle::new();
    oracle.upsert(&records).expect("loads");

    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..3)
        .map(|k| {
            let (engine, done, reads) = (engine.clone(), done.clone(), reads.clone());
            let projects = projects.clone();
            std::thread::spawn(move || {
                let mut rng = Rng::new(k);
                // At least a few rounds even if the writer is quick.
                let mut rounds = 0;
                while rounds < 4 || !done.load(Ordering::Relaxed) {
                    rounds += 1;
                    let snapshot = engine.snapshot();
                    let p = &projects[pick(&mut rng, projects.len())];
                    let scope = Scope::project(p.clone());
                    let v1 = format!("/v1/{p}/checkpoint_items");
                    let v3 = format!("/v3/{p}/backups");
                    for query in ["", "status=available", "sort=name:asc,created_at:desc"] {
                        let counted = count(&snapshot, &format!("{v1}/count"), query, &scope);
                        assert_eq!(walk(&snapshot, &v1, query, &scope), counted, "{v1}?{query}");
                    }
                    let all = "own_type=all_granted&sort=status:asc";
                    let v3_count = count(&snapshot, &v3, &format!("{all}&limit=1"), &scope);
                    assert_eq!(walk(&snapshot, &v3, all, &scope), v3_count, "{v3}?{all}");
                    // The same snapshot answers the same twice, whatever
                    // the writer did meanwhile.
                    let again = count(&snapshot, &format!("{v1}/count"), "", &scope);
                    assert_eq!(again, count(&snapshot, &format!("{v1}/count"), "", &scope));
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let mut rng = Rng::new(99);
    let mut live = records;
    let mut fresh = 0;
    for _ in 0..300 {
        let (upserts, deletes) = random_batch(&mut rng, &mut live, &projects, &mut fresh);
        if !upserts.is_empty() {
            let got = engine.upsert(&upserts);
            assert_eq!(got, oracle.upsert(&upserts));
            assert!(got.is_ok(), "{got:?}");
        }
        if !deletes.is_empty() {
            let got = engine.delete(&deletes);
            assert_eq!(got, oracle.delete(&deletes));
            assert!(got.is_ok(), "{got:?}");
        }
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().expect("a reader found an inconsistency");
    }
    assert!(reads.load(Ordering::Relaxed) >= 12);

    let store = engine.snapshot();
    store.internal_validate().expect("indexes exact");
    let mut got = store.records();
    let mut want = oracle.records().to_vec();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the engine equals the oracle after the writer");
    for p in projects.iter().take(20) {
        let scope = Scope::project(p.clone());
        for (path, query) in [
            (format!("/v1/{p}/checkpoint_items/count"), "status=error"),
            (format!("/v3/{p}/backups"), "own_type=all_granted&limit=50"),
            (format!("/v2/{p}/os-vendor-backup-sharing/count"), ""),
        ] {
            assert_eq!(
                store.handle(&path, query, &scope),
                oracle.handle(&path, query, &scope),
                "{path}?{query}"
            );
        }
    }
}
