//! Read latency with and without a concurrent writer: a count and a
//! 100-row first page of the big tenant, read from `Engine` snapshots,
//! first alone, then while another thread applies batches of 100 status
//! changes back to back (the worst case: on this 2-core machine the writer
//! owns a core and shares the memory bus and the allocator).
//!
//! Records: `BACKDEX_BENCH_RECORDS` (default 1,000,000 under `cargo bench`,
//! 10,000 when run as a test). docs/concurrency.md reports the ratio.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use backdex::{Engine, Record, Scope, Status};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

mod common;
use common::{dataset, largest_project, record_count};

fn bench_concurrency(c: &mut Criterion) {
    let n = record_count(10_000);
    let records = dataset(n);
    let (big, _) = largest_project(&records);
    let engine = Arc::new(Engine::new());
    engine.upsert(&records).expect("valid records");
    let scope = Scope::project(big.clone());
    let reads = [
        ("count", format!("/v1/{big}/checkpoint_items/count"), ""),
        ("page", format!("/v1/{big}/checkpoint_items"), "limit=100"),
    ];
    for (_, path, query) in &reads {
        let r = engine.snapshot().handle(path, query, &scope);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }

    let mut group = c.benchmark_group("read");
    for (name, path, query) in &reads {
        group.bench_function(BenchmarkId::new(format!("{name}_alone"), n), |b| {
            b.iter(|| engine.snapshot().handle(black_box(path), query, &scope))
        });
    }

    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (engine, stop, batches) = (engine.clone(), stop.clone(), batches.clone());
        let mut batch: Vec<Record> = records[..100].to_vec();
        std::thread::spawn(move || {
            let mut flip = false;
            while !stop.load(Ordering::Relaxed) {
                flip = !flip;
                for r in &mut batch {
                    r.status = if flip {
                        Status::Error
                    } else {
                        Status::Available
                    };
                }
                engine.upsert(&batch).expect("valid batch");
                batches.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    drop(records);
    for (name, path, query) in &reads {
        group.bench_function(BenchmarkId::new(format!("{name}_with_writer"), n), |b| {
            b.iter(|| engine.snapshot().handle(black_box(path), query, &scope))
        });
    }
    group.finish();
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("the writer ran");
    assert!(
        batches.load(Ordering::Relaxed) > 0,
        "the writer applied batches while readers were timed"
    );
}

criterion_group!(benches, bench_concurrency);
criterion_main!(benches);
