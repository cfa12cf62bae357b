//! The workload of the performance issue: fourteen query classes (C1-C7
//! counts, L1-L6 lists, S1 a broad substring page) on the same synthetic data, answered by backdex
//! (`Store::handle`: decoding, planning, executing, rendering), by SQLite
//! in memory with the indexes a careful DBA would add, and by the naive
//! oracle, in one process. Before anything is timed, each class is checked
//! to give the same answer on all three (the count, or the ids in order).
//!
//! Records: `BACKDEX_BENCH_RECORDS` (default 1,000,000 under `cargo bench`,
//! 20,000 when run as a test). `benches/summarize.py` turns criterion's
//! medians into the ratio table of docs/performance.md.
//! `BACKDEX_BENCH_REQUESTS=<file>` also writes the classes as requests for
//! `backdex bench --requests` (one JSON object a line), to time or profile
//! the same requests on a snapshot of the same records (`backdex gen
//! --slim --records N` writes them).

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::Duration;

use backdex::oracle::Oracle;
use backdex::{Record, Scope, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rusqlite::{params, Connection};

mod common;
use backdex::synth::{generate, SynthConfig};
use common::{dataset, record_count};

const COLUMNS: &str = "id, checkpoint_id, project_id, enterprise_project_id, name, description, status, \
    resource_id, resource_name, resource_type, resource_az, resource_size, image_type, policy_id, vault_id, \
    provider_id, parent_id, dec, created_at, updated_at, protected_at, expired_at, extend_info, backup_data, \
    replication_records, children";

fn sqlite(records: &[Record]) -> Connection {
    let db = Connection::open_in_memory().expect("sqlite in memory");
    db.execute_batch(&format!(
        "CREATE TABLE backups ({COLUMNS}, PRIMARY KEY (id)) WITHOUT ROWID;
         CREATE TABLE members (backup_id TEXT, dest_project_id TEXT, status TEXT);"
    ))
    .expect("schema");
    let tx = db.unchecked_transaction().expect("transaction");
    {
        let mut insert = tx
            .prepare(&format!(
                "INSERT INTO backups ({COLUMNS}) VALUES ({})",
                vec!["?"; 26].join(",")
            ))
            .expect("insert");
        let mut member = tx
            .prepare("INSERT INTO members VALUES (?, ?, ?)")
            .expect("insert member");
        for r in records {
            insert
                .execute(params![
                    r.id,
                    r.checkpoint_id,
                    r.project_id,
                    r.enterprise_project_id,
                    r.name,
                    r.description,
                    r.status.as_str(),
                    r.resource_id,
                    r.resource_name,
                    r.resource_type,
                    r.resource_az,
                    r.resource_size as i64,
                    r.image_type.as_str(),
                    r.policy_id,
                    r.vault_id,
                    r.provider_id,
                    r.parent_id,
                    r.dec,
                    r.created_at.to_string(),
                    r.updated_at.to_string(),
                    r.protected_at.map(|t| t.to_string()),
                    r.expired_at.map(|t| t.to_string()),
                    text(&r.extend_info),
                    text(&r.backup_data),
                    text(&r.replication_records),
                    text(&r.children),
                ])
                .expect("insert a record");
            for m in &r.members {
                member
                    .execute(params![r.id, m.dest_project_id, m.status.as_str()])
                    .expect("insert a member");
            }
        }
    }
    tx.commit().expect("commit");
    // One index per filtered column, and the composite ones tenants need.
    db.execute_batch(
        "CREATE INDEX b_project_created ON backups (project_id, created_at);
         CREATE INDEX b_project_status ON backups (project_id, status);
         CREATE INDEX b_status ON backups (status);
         CREATE INDEX b_az ON backups (resource_az);
         CREATE INDEX b_resource ON backups (resource_id);
         CREATE INDEX b_checkpoint ON backups (checkpoint_id);
         CREATE INDEX b_type ON backups (resource_type);
         CREATE INDEX b_image ON backups (image_type);
         CREATE INDEX b_policy ON backups (policy_id);
         CREATE INDEX b_vault ON backups (vault_id);
         CREATE INDEX b_updated ON backups (updated_at);
         CREATE INDEX b_name ON backups (name);
         CREATE INDEX b_protected ON backups (protected_at);
         CREATE INDEX m_dest ON members (dest_project_id);
         CREATE INDEX m_backup ON members (backup_id);
         ANALYZE;",
    )
    .expect("indexes");
    db
}

/// An opaque part as JSON text.
fn text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// One query class, as a request and as SQL.
struct Class {
    name: &'static str,
    path: String,
    query: String,
    scope: Scope,
    sql: String,
    args: Vec<String>,
    /// Lists return rows (all columns); counts one number.
    list: bool,
}

/// The answer to compare: a count, or the ids of a page in order.
fn answer_of_response(body: &serde_json::Value) -> Vec<String> {
    if let Some(n) = body.get("count").filter(|_| body.get("backups").is_none()) {
        return vec![n.to_string()];
    }
    let items = body
        .get("backups")
        .or_else(|| body.get("checkpoint_items"))
        .and_then(|v| v.as_array());
    items
        .into_iter()
        .flatten()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect()
}

/// Runs a class on SQLite as an application would: every column of every
/// row of a list read into Rust values, or the one count.
fn run_sql(db: &Connection, class: &Class) -> Vec<String> {
    let mut stmt = db.prepare_cached(&class.sql).expect("sql");
    let args = rusqlite::params_from_iter(class.args.iter());
    if class.list {
        let rows = stmt
            .query_map(args, |row| {
                let mut values = Vec::with_capacity(26);
                for i in 0..26 {
                    values.push(row.get::<_, rusqlite::types::Value>(i)?);
                }
                Ok(values)
            })
            .expect("query");
        rows.map(|r| match r.expect("row").swap_remove(0) {
            rusqlite::types::Value::Text(id) => id,
            other => format!("{other:?}"),
        })
        .collect()
    } else {
        vec![stmt
            .query_row(args, |row| row.get::<_, i64>(0))
            .expect("count")
            .to_string()]
    }
}

/// What the classes need to know of the data, gathered chunk by chunk.
/// Ordered maps, so that ties pick the same value in every run.
#[derive(Default)]
struct Stats {
    per_project: BTreeMap<String, usize>,
    receivers: BTreeMap<String, usize>,
    policies: BTreeMap<String, usize>,
    /// Per project, its first `autobk_` record's (az, resource_id, name).
    samples: HashMap<String, (String, String, String)>,
}

impl Stats {
    fn add(&mut self, records: &[Record]) {
        for r in records {
            *self.per_project.entry(r.project_id.clone()).or_default() += 1;
            for m in &r.members {
                *self.receivers.entry(m.dest_project_id.clone()).or_default() += 1;
            }
            if let Some(p) = &r.policy_id {
                *self.policies.entry(p.clone()).or_default() += 1;
            }
            if r.name.starts_with("autobk_") && !self.samples.contains_key(&r.project_id) {
                let sample = (r.resource_az.clone(), r.resource_id.clone(), r.name.clone());
                self.samples.insert(r.project_id.clone(), sample);
            }
        }
    }

    /// The most frequent key (the first of equals).
    fn top(counts: &BTreeMap<String, usize>) -> (String, usize) {
        counts
            .iter()
            .rev()
            .max_by_key(|(_, n)| **n)
            .map(|(k, n)| (k.clone(), *n))
            .expect("some data")
    }
}

fn bench_peers(c: &mut Criterion) {
    let n = record_count(20_000);
    // `BACKDEX_BENCH_PEERS=backdex` times backdex alone: the 10M run, where
    // the oracle's copy and SQLite would not fit beside the store, nor the
    // 10M records at once (they are generated and loaded in parts).
    // The answers are checked against both peers at the smaller sizes.
    let peers = std::env::var("BACKDEX_BENCH_PEERS").map_or(true, |v| v != "backdex");
    let mut store = Store::new();
    let mut stats = Stats::default();
    let (db, oracle) = if peers {
        let records = dataset(n);
        stats.add(&records);
        store.upsert(&records).expect("valid records");
        let mut oracle = Oracle::new();
        oracle.upsert(&records).expect("valid records");
        (Some(sqlite(&records)), Some(oracle))
    } else {
        let mut all = generate(&SynthConfig {
            records: n,
            slim: true,
            ..SynthConfig::default()
        });
        // Chunks of n/8, n/8, n/4, n/2: each at least as large as the
        // store, so that each load takes the bulk path (one sort per
        // ordered index) instead of inserting row by row.
        for part in [8, 8, 4, 2] {
            let size = (n / part).max(1);
            let chunk: Vec<Record> = all.by_ref().take(size).collect();
            stats.add(&chunk);
            store.upsert(&chunk).expect("valid records");
        }
        let rest: Vec<Record> = all.collect();
        stats.add(&rest);
        store.upsert(&rest).expect("valid records");
        (None, None)
    };

    // Concrete values from the data, so that each class answers something.
    let (big, big_len) = Stats::top(&stats.per_project);
    let (receiver, _) = Stats::top(&stats.receivers);
    let (policy, _) = Stats::top(&stats.policies);
    let small = stats
        .per_project
        .iter()
        .min_by_key(|(_, n)| (**n as i64 - 75).abs())
        .map(|(p, _)| p.clone())
        .expect("records");
    let (az, resource, name) = stats.samples.get(&big).cloned().expect("a record");
    let pattern = name[6..10].to_owned();
    let (from, to) = ("2026-03-01T00:00:00", "2026-03-31T00:00:00");

    let me = Scope::project(big.clone());
    let admin = Scope {
        admin: true,
        ..me.clone()
    };
    let v1 = format!("/v1/{big}/checkpoint_items");
    let v3 = format!("/v3/{big}/backups");
    // Markers: ~5,000 rows deep for L2, the end of the first page for L5.
    let deep = |path: &str, query: &str, depth: usize| -> String {
        let body = store
            .handle(path, &format!("{query}&limit={depth}"), &me)
            .json();
        answer_of_response(&body)
            .last()
            .cloned()
            .expect("a deep enough list")
    };
    let l2_query = "status=available&sort=name:asc,created_at:desc";
    let l2_depth = (big_len / 4).clamp(1, 5000);
    let l2_marker = deep(&v3, l2_query, l2_depth);
    let l5_query = format!("resource_az={az}&image_type=replication&sort=protected_at:asc");
    // The first rows of protected_at:asc are the null ones; start after a
    // protected one, so that the keyset SQL stays simple.
    let l5_page = answer_of_response(
        &store
            .handle(&v3, &format!("{l5_query}&limit=1000"), &me)
            .json(),
    );
    let l5_marker = l5_page
        .iter()
        .skip(5)
        .find(|id| store.get(id).is_some_and(|r| r.protected_at.is_some()))
        .cloned()
        .expect("a protected replica");
    let get = |id: &str| store.get(id).expect("marker record");
    let m2 = get(&l2_marker);
    let m5 = get(&l5_marker);
    let time = |t: backdex::Timestamp| t.to_string();

    let select = format!("SELECT {COLUMNS} FROM backups");
    // 1,000 at 1M records; proportionally less on the small test store.
    let l3_offset = (n / 1000).min(1000);
    let classes = vec![
        Class { name: "C1", path: format!("{v1}/count"), query: String::new(), scope: me.clone(),
            sql: "SELECT count(*) FROM backups WHERE project_id = ?1".into(), args: vec![big.clone()], list: false },
        Class { name: "C2", path: format!("{v1}/count"), query: "status=error".into(), scope: me.clone(),
            sql: "SELECT count(*) FROM backups WHERE project_id = ?1 AND status = 'error'".into(), args: vec![big.clone()], list: false },
        Class { name: "C3", path: format!("{v1}/count"), query: format!("status=available&az={az}&resource_type=OS::Nova::Server"), scope: me.clone(),
            sql: "SELECT count(*) FROM backups WHERE project_id = ?1 AND status = 'available' AND resource_az = ?2 AND resource_type = 'OS::Nova::Server'".into(),
            args: vec![big.clone(), az.clone()], list: false },
        Class { name: "C4", path: format!("{v1}/count"), query: format!("all_tenants=true&status=available&policy_id={policy}"), scope: admin.clone(),
            sql: "SELECT count(*) FROM backups WHERE status = 'available' AND policy_id = ?1".into(), args: vec![policy.clone()], list: false },
        Class { name: "C5", path: format!("{v1}/count"), query: format!("start_time={from}&end_time={to}&status=available"), scope: me.clone(),
            sql: "SELECT count(*) FROM backups WHERE project_id = ?1 AND created_at BETWEEN ?2 AND ?3 AND status = 'available'".into(),
            args: vec![big.clone(), format!("{from}.000000"), format!("{to}.000000")], list: false },
        Class { name: "C6", path: format!("{v1}/count"), query: format!("name={pattern}"), scope: me.clone(),
            sql: "SELECT count(*) FROM backups WHERE project_id = ?1 AND instr(name, ?2) > 0".into(), args: vec![big.clone(), pattern.clone()], list: false },
        Class { name: "C7", path: format!("/v2/{receiver}/os-vendor-backup-sharing/count"), query: "share_to_me=true".into(), scope: Scope::project(receiver.clone()),
            sql: "SELECT count(*) FROM members WHERE dest_project_id = ?1".into(), args: vec![receiver.clone()], list: false },
        Class { name: "L1", path: v1.clone(), query: "limit=100".into(), scope: me.clone(),
            sql: format!("{select} WHERE project_id = ?1 ORDER BY created_at DESC, id DESC LIMIT 100"), args: vec![big.clone()], list: true },
        Class { name: "L2", path: v3.clone(), query: format!("{l2_query}&limit=100&marker={l2_marker}"), scope: me.clone(),
            sql: format!("{select} WHERE project_id = ?1 AND status = 'available' AND (name > ?2 OR (name = ?2 AND (created_at < ?3 OR (created_at = ?3 AND id > ?4)))) ORDER BY name ASC, created_at DESC, id ASC LIMIT 100"),
            args: vec![big.clone(), m2.name.clone(), time(m2.created_at), m2.id.clone()], list: true },
        Class { name: "L3", path: v1.clone(), query: format!("all_tenants=true&status=error&resource_type=OS::Cinder::Volume&sort=updated_at:desc&limit=100&offset={l3_offset}"), scope: admin.clone(),
            sql: format!("{select} WHERE status = 'error' AND resource_type = 'OS::Cinder::Volume' ORDER BY updated_at DESC, created_at DESC, id DESC LIMIT 100 OFFSET {l3_offset}"), args: vec![], list: true },
        Class { name: "L4", path: v1.clone(), query: format!("resource_id={resource}&limit=10"), scope: me.clone(),
            sql: format!("{select} WHERE project_id = ?1 AND resource_id = ?2 ORDER BY created_at DESC, id DESC LIMIT 10"), args: vec![big.clone(), resource.clone()], list: true },
        Class { name: "L5", path: v3.clone(), query: format!("{l5_query}&limit=100&marker={l5_marker}"), scope: me.clone(),
            sql: format!("{select} WHERE project_id = ?1 AND resource_az = ?2 AND image_type = 'replication' AND (protected_at > ?3 OR (protected_at = ?3 AND (created_at > ?4 OR (created_at = ?4 AND id > ?5)))) ORDER BY protected_at ASC, created_at ASC, id ASC LIMIT 100"),
            args: vec![big.clone(), az.clone(), m5.protected_at.map(time).expect("protected"), time(m5.created_at), m5.id.clone()], list: true },
        Class { name: "L6", path: format!("/v1/{small}/checkpoint_items"), query: "limit=100".into(), scope: Scope::project(small.clone()),
            sql: format!("{select} WHERE project_id = ?1 ORDER BY created_at DESC, id DESC LIMIT 100"), args: vec![small.clone()], list: true },
        // A broad substring (most names hold it) with a status: the walk or
        // the day-by-day top-k tests names on the rows it meets.
        Class { name: "S1", path: v1.clone(), query: "name=autobk&status=error&limit=100".into(), scope: me.clone(),
            sql: format!("{select} WHERE project_id = ?1 AND status = 'error' AND instr(name, 'autobk') > 0 ORDER BY created_at DESC, id DESC LIMIT 100"), args: vec![big.clone()], list: true },
    ];

    if let Ok(file) = std::env::var("BACKDEX_BENCH_REQUESTS") {
        let lines: String = classes
            .iter()
            .map(|class| {
                let request = serde_json::json!({
                    "class": class.name,
                    "path": if class.query.is_empty() {
                        class.path.clone()
                    } else {
                        format!("{}?{}", class.path, class.query)
                    },
                    "scope": class.scope,
                });
                format!("{request}\n")
            })
            .collect();
        std::fs::write(&file, lines).expect("the requests file is writable");
    }

    for class in &classes {
        let response = store.handle(&class.path, &class.query, &class.scope);
        assert_eq!(response.status, 200, "{}: {}", class.name, response.body);
        let ours = answer_of_response(&response.json());
        assert!(
            ours.first().is_some_and(|a| a != "0"),
            "{}: a realistic, non-empty answer",
            class.name
        );
        if let (Some(db), Some(oracle)) = (&db, &oracle) {
            assert_eq!(
                ours,
                run_sql(db, class),
                "{}: backdex and SQLite agree",
                class.name
            );
            let naive = oracle.handle(&class.path, &class.query, &class.scope);
            assert_eq!(
                response, naive,
                "{}: backdex and the oracle agree",
                class.name
            );
        }

        let mut group = c.benchmark_group(class.name);
        group.bench_function(BenchmarkId::new("backdex", n), |b| {
            b.iter(|| {
                store.handle(
                    black_box(&class.path),
                    black_box(&class.query),
                    &class.scope,
                )
            })
        });
        if let (Some(db), Some(oracle)) = (&db, &oracle) {
            group.bench_function(BenchmarkId::new("sqlite", n), |b| {
                b.iter(|| run_sql(db, black_box(class)))
            });
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(5));
            group.bench_function(BenchmarkId::new("oracle", n), |b| {
                b.iter(|| {
                    oracle.handle(
                        black_box(&class.path),
                        black_box(&class.query),
                        &class.scope,
                    )
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_peers);
criterion_main!(benches);
