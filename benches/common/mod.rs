//! What the benchmarks share: the record count, the data set, and the
//! largest project. Each bench uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;

use backdex::synth::{generate, SynthConfig};
use backdex::Record;

/// `BACKDEX_BENCH_RECORDS`, else 1,000,000 under `cargo bench` and
/// `as_test` when `cargo test` runs the bench once as a smoke test.
pub fn record_count(as_test: usize) -> usize {
    let benching = std::env::args().any(|a| a == "--bench");
    std::env::var("BACKDEX_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 1_000_000 } else { as_test })
}

/// `n` synthetic records with slim payloads, seed 42.
pub fn dataset(n: usize) -> Vec<Record> {
    generate(&SynthConfig {
        records: n,
        slim: true,
        ..SynthConfig::default()
    })
    .collect()
}

/// Records per project.
pub fn per_project(records: &[Record]) -> HashMap<&str, usize> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in records {
        *counts.entry(&r.project_id).or_default() += 1;
    }
    counts
}

/// The project with the most records, and how many it has.
pub fn largest_project(records: &[Record]) -> (String, usize) {
    per_project(records)
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(p, n)| (p.to_owned(), n))
        .expect("records")
}
