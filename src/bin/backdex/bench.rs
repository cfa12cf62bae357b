//! `backdex bench`: time requests in process, as a server pays them
//! (decoding, planning, executing, rendering), for a benchmark harness.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

use backdex::{Response, Scope};
use serde_json::{json, Value};

use crate::data::{load, split_request};
use crate::{say, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Records: JSON Lines, one JSON array, or a snapshot.
    #[arg(long)]
    data: PathBuf,
    /// Requests, one JSON object per line: {"path": "/v1/p1/...?...", "scope": {...}}.
    #[arg(long)]
    requests: PathBuf,
    /// Timed runs per request, after a warm-up.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
}

struct Request {
    target: String,
    scope: Scope,
}

fn read_requests(path: &PathBuf) -> Result<Vec<Request>, Failure> {
    let shown = path.display();
    let file =
        std::fs::File::open(path).map_err(|e| Failure::new(format!("cannot read {shown}: {e}")))?;
    let mut requests = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Failure::new(format!("cannot read {shown}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: String| Failure::new(format!("{shown}:{}: {what}", i + 1));
        let value: Value =
            serde_json::from_str(&line).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let target = value
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("needs \"path\"".into()))?;
        let scope = value
            .get("scope")
            .cloned()
            .ok_or_else(|| bad("needs \"scope\"".into()))?;
        let scope: Scope =
            serde_json::from_value(scope).map_err(|e| bad(format!("bad \"scope\": {e}")))?;
        requests.push(Request {
            target: target.to_owned(),
            scope,
        });
    }
    Ok(requests)
}

/// Entries of a list, or the count.
fn rows(response: &Response) -> u64 {
    let body = response.json();
    for list in ["checkpoint_items", "backups"] {
        if let Some(items) = body.get(list).and_then(Value::as_array) {
            return items.len() as u64;
        }
    }
    body.get("count").and_then(Value::as_u64).unwrap_or(0)
}

/// The value at quantile `q` of sorted samples (nearest rank).
fn quantile(sorted: &[u128], q: f64) -> u128 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or(0)
}

pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let requests = read_requests(&args.requests)?;
    let loaded = load(&args.data)?;
    eprintln!(
        "{}",
        json!({
            "records": loaded.records,
            "load_ms": loaded.took.as_secs_f64() * 1e3,
            "from_snapshot": loaded.from_snapshot,
            "resident_bytes_per_record": loaded.resident_per_record,
            "accounted_bytes_per_record": loaded.store.memory_usage().total() as f64 / loaded.records.max(1) as f64,
            "memory": loaded.store.memory_usage(),
        })
    );
    let store = &loaded.store;
    for r in &requests {
        let (path, query) = split_request(&r.target);
        // Warm up: at least ten runs and 20 ms, so that what loading left
        // behind (freed memory, cold caches) is not timed.
        let warm = Instant::now();
        let mut last = store.handle(path, query, &r.scope);
        let mut runs = 1;
        while runs < 10 || warm.elapsed().as_millis() < 20 {
            last = store.handle(path, query, &r.scope);
            runs += 1;
        }
        let mut samples: Vec<u128> = (0..args.repeat)
            .map(|_| {
                let t = Instant::now();
                let response = store.handle(path, query, &r.scope);
                let ns = t.elapsed().as_nanos();
                last = response;
                ns
            })
            .collect();
        samples.sort_unstable();
        say(json!({
                "path": r.target,
                "status": last.status,
                "rows": rows(&last),
                "median_ns": quantile(&samples, 0.5),
                "p90_ns": quantile(&samples, 0.9),
        }))?;
    }
    Ok(())
}
