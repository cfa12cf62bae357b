//! Store benchmarks: loading, atomic batches through the engine (snapshot
//! clone included), and the access paths against the naive oracle's scans.
//!
//! Records: `BACKDEX_BENCH_RECORDS` (default 1,000,000 under `cargo bench`,
//! 10,000 when run as a test by `cargo test`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use backdex::oracle::Oracle;
use backdex::{Engine, Record, Status, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

mod common;
use common::{dataset, record_count};

/// The record's status, error and available in turn: a change each time.
fn flip_status(record: &mut Record, flip: &mut bool) {
    *flip = !*flip;
    record.status = if *flip {
        Status::Error
    } else {
        Status::Available
    };
}

fn bench_store(c: &mut Criterion) {
    let n = record_count(10_000);
    let records = dataset(n);

    let mut group = c.benchmark_group("load");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(BenchmarkId::new("store_upsert_all", n), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut store = Store::new();
                let t = Instant::now();
                store.upsert(&records).expect("synthetic records are valid");
                total += t.elapsed();
                drop(black_box(store));
            }
            total
        })
    });
    group.finish();

    let engine = Engine::new();
    engine
        .upsert(&records)
        .expect("synthetic records are valid");
    let mut oracle = Oracle::new();
    oracle
        .upsert(&records)
        .expect("synthetic records are valid");

    // 100 records re-written with a new status, as a backup service's
    // worker would: the engine clones the current version, applies, swaps.
    let mut group = c.benchmark_group("change");
    group.throughput(Throughput::Elements(100));
    let batch: Vec<Record> = records[..100]
        .iter()
        .map(|r| Record {
            status: Status::Error,
            ..r.clone()
        })
        .collect();
    group.bench_function(BenchmarkId::new("engine_upsert_100", n), |b| {
        b.iter(|| engine.upsert(black_box(&batch)).expect("valid"))
    });
    // One record a version: a replication stream's single-row transactions
    // arriving one by one, each published alone.
    let mut one = records[n / 5].clone();
    let mut flip = false;
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("engine_upsert_1_status_change", n), |b| {
        b.iter(|| {
            flip_status(&mut one, &mut flip);
            engine
                .upsert(std::slice::from_ref(black_box(&one)))
                .expect("valid")
        })
    });
    let snapshot = engine.snapshot();
    group.bench_function(BenchmarkId::new("snapshot_clone", n), |b| {
        b.iter(|| black_box(Store::clone(&snapshot)))
    });
    group.finish();

    // One record's status changed in place, every index kept exact: the
    // streaming update a backup service's worker makes.
    let mut single = Store::clone(&engine.snapshot());
    let mut record = records[n / 3].clone();
    let mut group = c.benchmark_group("change");
    let mut flip = false;
    group.bench_function(BenchmarkId::new("store_upsert_1_status_change", n), |b| {
        b.iter(|| {
            flip_status(&mut record, &mut flip);
            single
                .upsert(std::slice::from_ref(black_box(&record)))
                .expect("valid")
        })
    });
    group.finish();
    single
        .internal_validate()
        .expect("the indexes stayed exact");

    // Point lookups: the store's id index against the oracle's scan.
    let store = engine.snapshot();
    let probe = records[n / 2].id.clone();
    assert_eq!(
        store.get(&probe).as_ref(),
        oracle.get(&probe),
        "both paths agree before timing"
    );
    let mut group = c.benchmark_group("get_by_id");
    group.bench_function(BenchmarkId::new("store", n), |b| {
        b.iter(|| store.get(black_box(&probe)))
    });
    group.bench_function(BenchmarkId::new("oracle_scan", n), |b| {
        b.iter(|| oracle.get(black_box(&probe)).cloned())
    });
    group.finish();
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
