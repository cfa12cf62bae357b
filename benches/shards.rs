//! The cost of answering from many stores: the same requests answered by
//! one store (`Store::handle`) and by 4 and 16 in-process shards
//! (`Shards::handle`: route, locate the marker, one partial answer per
//! visited store, merge), on the same records; for the pages M2 and M4
//! also every store's rendered part (`Store::partial`) merged by `merge`,
//! the shape a network needs. Before anything is timed, each class is
//! checked to give the same body on every path.
//!
//! Records: `BACKDEX_BENCH_RECORDS` (default 1,000,000 under `cargo bench`,
//! 20,000 when run as a test). `python3 benches/summarize.py` reads the
//! medians; docs/scale.md has the table.

use std::hint::black_box;
use std::time::Duration;

use backdex::{merge, Scope, Shards, Status, Store};
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
            assert_eq!(
                rendered_parts(shards, path, query, scope),
                want,
                "{name} from {k} rendered parts"
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
        // The pages again in the shape a network needs: every store's
        // part rendered where it is (`Store::partial`), then `merge`.
        if matches!(class, "M2" | "M4") {
            for (k, shards) in &sharded {
                let id = BenchmarkId::new(class, format!("{k} shards, rendered parts"));
                group.bench_function(id, |b| {
                    b.iter(|| black_box(rendered_parts(shards, path, query, scope)))
                });
            }
        }
    }
    group.finish();
}

/// A request answered from every store's rendered part and [`merge`].
fn rendered_parts(shards: &Shards, path: &str, query: &str, scope: &Scope) -> backdex::Response {
    let stores = shards.stores();
    let at = stores
        .iter()
        .find_map(|s| s.locate_marker(path, query, scope));
    let parts = stores
        .iter()
        .map(|s| s.partial(path, query, scope, at.as_ref()));
    merge(path, query, scope, parts)
}

criterion_group!(benches, bench_shards);
criterion_main!(benches);
