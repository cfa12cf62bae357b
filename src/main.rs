//! The `backdex` command line. Today it has `demo`, which builds a
//! synthetic store and reports how long loading took and where the memory
//! goes; the query, gen, oracle and bench commands arrive with the query
//! layer.

use std::process::ExitCode;
use std::time::Instant;

use backdex::synth::{generate, SynthConfig};
use backdex::Store;

const USAGE: &str = "usage: backdex demo [--records N] [--slim]";

/// Resident set size in bytes, from /proc (Linux); `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn demo(records: usize, slim: bool) -> ExitCode {
    println!(
        "backdex demo: {records} synthetic backup records{}",
        if slim { " (slim payloads)" } else { "" }
    );
    let config = SynthConfig {
        records,
        slim,
        ..SynthConfig::default()
    };
    let t = Instant::now();
    let batch: Vec<_> = generate(&config).collect();
    println!("  generated in {:.2?}", t.elapsed());

    let before = resident_bytes();
    let t = Instant::now();
    let mut store = Store::new();
    if let Err(e) = store.upsert(&batch) {
        eprintln!("backdex: loading failed: {e}");
        return ExitCode::FAILURE;
    }
    let took = t.elapsed();
    drop(batch);
    println!(
        "  loaded in {:.2?} ({:.0} records/s)",
        took,
        records as f64 / took.as_secs_f64()
    );

    let m = store.memory_usage();
    let per = |bytes: usize| bytes as f64 / records.max(1) as f64;
    println!("  memory per record (the store's own accounting):");
    for (part, bytes) in [
        ("columns", m.columns),
        ("opaque payload", m.payload),
        ("bitmap indexes", m.bitmap_indexes),
        ("ordered indexes", m.ordered_indexes),
        ("substring indexes", m.substring_indexes),
        ("ip index", m.ip_index),
    ] {
        println!("    {part:<18} {:>8.1} B", per(bytes));
    }
    println!(
        "    {:<18} {:>8.1} B  (all indexes {:.1} B)",
        "total",
        per(m.total()),
        per(m.indexes())
    );
    if let (Some(before), Some(after)) = (before, resident_bytes()) {
        println!(
            "  resident memory grew by {:.1} B per record while loading (process RSS {} MB)",
            after.saturating_sub(before) as f64 / records.max(1) as f64,
            after / 1_000_000
        );
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if command != "demo" {
        eprintln!("backdex: unknown command {command:?}\n{USAGE}");
        return ExitCode::from(2);
    }
    let (mut records, mut slim) = (100_000usize, false);
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--slim" => slim = true,
            "--records" => match rest.next().map(|n| n.parse()) {
                Some(Ok(n)) => records = n,
                _ => {
                    eprintln!("backdex: --records takes a whole number\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            other => {
                eprintln!("backdex: unknown flag {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    demo(records, slim)
}
