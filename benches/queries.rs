//! The four APIs at scale: backdex's `Store::handle` against the naive
//! oracle on the same requests, in one process. Every request is checked
//! to give the same response on both before anything is timed.
//!
//! Records: `BACKDEX_BENCH_RECORDS` (default 1,000,000 under `cargo bench`,
//! 20,000 when run as a test by `cargo test`).

use std::hint::black_box;
use std::time::Duration;

use backdex::oracle::Oracle;
use backdex::{Scope, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

mod common;
use common::{dataset, largest_project, record_count};

/// The id `depth` rows into a list, found by following markers.
fn id_at_depth(store: &Store, path: &str, query: &str, scope: &Scope, depth: usize) -> String {
    let mut marker: Option<String> = None;
    let mut seen = 0;
    loop {
        let take = (depth - seen).min(1000);
        let q = match &marker {
            Some(m) => format!("{query}&limit={take}&marker={m}"),
            None => format!("{query}&limit={take}"),
        };
        let body = store.handle(path, &q, scope).json();
        let items = body["backups"]
            .as_array()
            .or(body["checkpoint_items"].as_array())
            .cloned()
            .unwrap_or_default();
        let last = items
            .last()
            .and_then(|i| i["id"].as_str())
            .map(str::to_owned);
        seen += items.len();
        if seen >= depth || items.is_empty() {
            return last.or(marker).expect("the list is deep enough");
        }
        marker = last;
    }
}

fn bench_queries(c: &mut Criterion) {
    let n = record_count(20_000);
    let records = dataset(n);
    let (big, big_len) = largest_project(&records);
    let az = records
        .iter()
        .find(|r| r.project_id == big)
        .map(|r| r.resource_az.clone())
        .expect("a big-tenant record");
    let mut store = Store::new();
    store.upsert(&records).expect("valid");
    let mut oracle = Oracle::new();
    oracle.upsert(&records).expect("valid");
    drop(records);

    let scope = Scope::project(big.clone());
    let v1 = format!("/v1/{big}/checkpoint_items");
    let v3 = format!("/v3/{big}/backups");
    let l2_query = "status=available&sort=name:asc,created_at:desc";
    let depth = (big_len / 2).min(5000);
    let marker = id_at_depth(&store, &v3, l2_query, &scope, depth);
    let requests: Vec<(&str, String, String)> = vec![
        (
            "count_three_filters",
            format!("{v1}/count"),
            format!("status=available&az={az}&resource_type=OS::Nova::Server"),
        ),
        ("count_no_filter", format!("{v1}/count"), String::new()),
        ("list_first_page_100", v1.clone(), "limit=100".into()),
        (
            "list_100_at_depth_5000",
            v3.clone(),
            format!("{l2_query}&limit=100&marker={marker}"),
        ),
        (
            "list_100_name_sorted_first_page",
            v3.clone(),
            format!("{l2_query}&limit=100"),
        ),
    ];

    for (name, path, query) in &requests {
        let got = store.handle(path, query, &scope);
        assert_eq!(got.status, 200, "{name}: {}", got.body);
        assert_eq!(
            got,
            oracle.handle(path, query, &scope),
            "{name}: backdex and the oracle agree"
        );
        let mut group = c.benchmark_group(*name);
        group.bench_function(BenchmarkId::new("backdex", n), |b| {
            b.iter(|| store.handle(black_box(path), black_box(query), &scope))
        });
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(10));
        group.bench_function(BenchmarkId::new("oracle", n), |b| {
            b.iter(|| oracle.handle(black_box(path), black_box(query), &scope))
        });
        group.finish();
    }
}

criterion_group!(benches, bench_queries);
criterion_main!(benches);
