//! `backdex demo`: a synthetic store in memory, how long it took and what
//! it costs, then the seeds' example requests with their answers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use backdex::synth::{generate, SynthConfig};
use backdex::{Scope, Store};

use crate::data::resident_bytes;
use crate::{say, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How many synthetic records.
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Keep the opaque objects nearly empty (for very large N).
    #[arg(long)]
    slim: bool,
}

/// The median time of a few runs of `f`, and its last result.
fn timed<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::new();
    let mut out = f();
    for _ in 0..5 {
        let t = Instant::now();
        out = f();
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], out)
}

fn show(store: &Store, scope: &Scope, what: &str, target: &str) -> Result<(), Failure> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (took, response) = timed(|| store.handle(path, query, scope));
    say(format!(
        "\n## {what}\nGET {target}\n-> {} in {took:.2?}",
        response.status
    ))?;
    let pretty = serde_json::to_string_pretty(&response.json()).unwrap_or(response.body);
    let lines: Vec<&str> = pretty.lines().collect();
    for line in lines.iter().take(40) {
        say(format!("   {line}"))?;
    }
    if lines.len() > 40 {
        say(format!("   ... ({} more lines)", lines.len() - 40))?;
    }
    Ok(())
}

pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let records = args.records;
    say(format!(
        "# backdex demo: {records} synthetic backup records{}",
        if args.slim { " (slim payloads)" } else { "" }
    ))?;
    let config = SynthConfig {
        records,
        slim: args.slim,
        ..SynthConfig::default()
    };
    let t = Instant::now();
    let batch: Vec<_> = generate(&config).collect();
    say(format!("generated in {:.2?}", t.elapsed()))?;

    let before = resident_bytes();
    let t = Instant::now();
    let mut store = Store::new();
    store
        .upsert(&batch)
        .map_err(|e| Failure::new(format!("loading failed: {e}")))?;
    let took = t.elapsed();
    say(format!(
        "loaded in {took:.2?} ({:.0} records/s)",
        records as f64 / took.as_secs_f64().max(1e-9)
    ))?;

    let mut sizes: HashMap<&str, usize> = HashMap::new();
    let mut receivers: HashMap<&str, usize> = HashMap::new();
    for r in &batch {
        *sizes.entry(&r.project_id).or_default() += 1;
        for m in &r.members {
            *receivers.entry(&m.dest_project_id).or_default() += 1;
        }
    }
    let big = sizes
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(p, n)| (p.to_string(), *n));
    let receiver = receivers
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(p, _)| p.to_string());
    let az = batch
        .first()
        .map(|r| r.resource_az.clone())
        .unwrap_or_default();
    drop(batch);

    let m = store.memory_usage();
    let per = |bytes: usize| bytes as f64 / records.max(1) as f64;
    say("memory per record (the store's own accounting):")?;
    for (part, bytes) in [
        ("columns", m.columns),
        ("opaque payload", m.payload),
        ("bitmap indexes", m.bitmap_indexes),
        ("ordered indexes", m.ordered_indexes),
        ("substring indexes", m.substring_indexes),
        ("ip index", m.ip_index),
    ] {
        say(format!("  {part:<18} {:>8.1} B", per(bytes)))?;
    }
    say(format!(
        "  {:<18} {:>8.1} B  (all indexes {:.1} B)",
        "total",
        per(m.total()),
        per(m.indexes())
    ))?;
    if let (Some(before), Some(after)) = (before, resident_bytes()) {
        say(format!(
            "resident memory grew by {:.1} B per record while loading (process RSS {} MB)",
            after.saturating_sub(before) as f64 / records.max(1) as f64,
            after / 1_000_000
        ))?;
    }

    let Some((p, size)) = big else {
        say("\n(no records, so no requests to show)")?;
        return Ok(());
    };
    say(format!(
        "\nThe requests below ask as project {p}, the largest ({size} records)."
    ))?;
    let me = Scope::project(p.clone());
    show(
        &store,
        &me,
        "Seed 004: list with filters",
        &format!("/v1/{p}/checkpoint_items?name=backup&status=error&limit=2"),
    )?;
    show(
        &store,
        &me,
        "The same, with a name this data has",
        &format!("/v1/{p}/checkpoint_items?name=autobk&status=error&limit=2"),
    )?;
    show(
        &store,
        &me,
        "Seed 000/001: count with a condition",
        &format!("/v1/{p}/checkpoint_items/count?status=error"),
    )?;
    show(
        &store,
        &me,
        "A count with three filters",
        &format!("/v1/{p}/checkpoint_items/count?status=available&az={az}&resource_type=OS::Nova::Server"),
    )?;
    let first = store.handle(
        &format!("/v3/{p}/backups"),
        "sort=name:asc,created_at:desc&limit=1000&status=available",
        &me,
    );
    let marker = first.json()["backups"]
        .as_array()
        .and_then(|b| b.last())
        .and_then(|b| b["id"].as_str())
        .map(str::to_owned);
    if let Some(marker) = marker {
        show(
            &store,
            &me,
            "Seed 002: a v3 page sorted by name, after a marker 1,000 rows deep",
            &format!("/v3/{p}/backups?status=available&sort=name:asc,created_at:desc&limit=2&marker={marker}"),
        )?;
    }
    if let Some(r) = receiver {
        let them = Scope::project(r.clone());
        show(
            &store,
            &them,
            "Seed 003: backups shared to a project",
            &format!("/v2/{r}/os-vendor-backup-sharing/count?share_to_me=true"),
        )?;
    }
    show(
        &store,
        &me,
        "A bad request names its parameter",
        &format!("/v1/{p}/checkpoint_items?limit=0"),
    )?;
    Ok(())
}
