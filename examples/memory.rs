//! Loads N synthetic records (default 1,000,000, `--slim` for nearly empty
//! opaque objects) and reports load time and bytes per record: the store's
//! own accounting by part, and the process's resident memory.
//!
//! `cargo run --release --example memory -- 1000000 --slim`

use std::time::Instant;

use backdex::synth::{generate, SynthConfig};
use backdex::Store;

/// Resident set size in bytes, from /proc (Linux); 0 elsewhere.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let records = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let slim = args.iter().any(|a| a == "--slim");
    let config = SynthConfig {
        records,
        slim,
        ..SynthConfig::default()
    };

    let t = Instant::now();
    let batch: Vec<_> = generate(&config).collect();
    let generated = t.elapsed();
    let rss_before = rss();
    let t = Instant::now();
    let mut store = Store::new();
    if let Err(e) = store.upsert(&batch) {
        eprintln!("load failed: {e}");
        std::process::exit(1);
    }
    let loaded = t.elapsed();
    drop(batch);
    let rss_after = rss();

    let m = store.memory_usage();
    let per = |bytes: usize| bytes as f64 / records as f64;
    println!("records            {records} (slim: {slim})");
    println!("generated in       {:.2?}", generated);
    println!(
        "loaded in          {:.2?} ({:.0} records/s)",
        loaded,
        records as f64 / loaded.as_secs_f64()
    );
    println!("bytes per record, by the store's accounting:");
    println!("  columns          {:8.1}", per(m.columns));
    println!("  opaque payload   {:8.1}", per(m.payload));
    println!("  bitmap indexes   {:8.1}", per(m.bitmap_indexes));
    println!("  ordered indexes  {:8.1}", per(m.ordered_indexes));
    println!("  substring index  {:8.1}", per(m.substring_indexes));
    println!("  ip index         {:8.1}", per(m.ip_index));
    println!("  all indexes      {:8.1}", per(m.indexes()));
    println!("  total            {:8.1}", per(m.total()));
    println!(
        "resident growth while loading, after dropping the input: {:.1} bytes per record (RSS {} MB)",
        rss_after.saturating_sub(rss_before) as f64 / records as f64,
        rss_after / 1_000_000
    );
}
