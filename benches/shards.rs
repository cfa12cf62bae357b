//! The cost of answering from many stores: the same requests answered by
//! one store (`Store::handle`) and by 4 and 16 in-process shards
//! (`Shards::handle`: route, locate the marker, one partial answer per
//! visited store, merge), on the same records. Before anything is timed,
//! each class is checked to give the same body on all three.
//!
//! Records: `BACKDEX_BENCH_RECORDS` (default 1,000,000 under `cargo bench`,
//! 20,000 when run as a test). `python3 benches/summarize.py` reads the
//! medians; docs/scale.md has the table.

use std::hint::black_box;
use std::time::Duration;

use backdex::{Scope, Shards, Status, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

mod common;
use common::{dataset, largest_project, record_count};

fn bench_shards(c: &mut Criterion) {
    let n = record_count(20_000);
    let records = dataset(n);
    let (big, _) = largest_project(&records);
    let mut store = Store::new();
    store.upsert(&records).expect("synthetic records are valid");
    let sharded: Vec<(usize, Shards)> = [4, 16]
        .into_iter()
        .map(|k| {
            let mut shards = Shards::new(k);
            shards
                .upsert(&records)
                .expect("synthetic records are valid");
            (k, shards)
        })
        .collect();
    // A marker in the middle of the admin's error records: found on one
    // shard, every other shard answers after its position.
    let errors: Vec<_> = records
        .iter()
        .filter(|r| r.status == Status::Error)
        .collect();
    let marker = errors
        .get(errors.len() / 2)
        .map_or("none".to_owned(), |r| r.id.clone());
    let admin = Scope {
        admin: true,
        ..Scope::project(big.clone())
    };
    let me = Scope::project(big.clone());
    let v1 = format!("/v1/{big}/checkpoint_items");
    let classes: Vec<(&str, String, String, &Scope)> = vec![
        ("M1 admin count", format!("{v1}/count"), "all_tenants=true&status=available".into(), &admin),
        ("M2 admin page offset 1000", v1.clone(),
            "all_tenants=true&status=error&resource_type=OS::Cinder::Volume&sort=updated_at:desc&limit=100&offset=1000".into(), &admin),
        ("M3 share_to_me count", format!("/v2/{big}/os-vendor-backup-sharing/count"), "share_to_me=true".into(), &me),
        ("M4 admin page after a marker", v1.clone(), format!("all_tenants=true&status=error&limit=100&marker={marker}"), &admin),
        ("M5 tenant page (one shard)", v1.clone(), "limit=100".into(), &me),
    ];
    for (name, path, query, scope) in &classes {
        let want = store.handle(path, query, scope);
        assert_eq!(want.status, 200, "{name}: {}", want.body);
        for (k, shards) in &sharded {
            assert_eq!(
                shards.handle(path, query, scope),
                want,
                "{name} on {k} shards"
            );
        }
    }

    let mut group = c.benchmark_group("shards");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    for (name, path, query, scope) in &classes {
        let class = name.split(' ').next().unwrap_or(name);
        group.bench_function(BenchmarkId::new(class, "one store"), |b| {
            b.iter(|| black_box(store.handle(path, query, scope)))
        });
        for (k, shards) in &sharded {
            group.bench_function(BenchmarkId::new(class, format!("{k} shards")), |b| {
                b.iter(|| black_box(shards.handle(path, query, scope)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_shards);
criterion_main!(benches);
