//! Reading records from a file (JSON Lines or one JSON array), with errors
//! that name the line and the record's fault; and the process's memory.

use std::path::Path;
use std::time::{Duration, Instant};

use backdex::{ChangeError, Record, Store};
use rayon::prelude::*;
use serde_json::Value;

use crate::Failure;

/// Records read from a file, each with the line it started on.
pub(crate) struct Loaded {
    pub(crate) store: Store,
    pub(crate) records: usize,
    pub(crate) took: Duration,
    /// Resident bytes the store added, per record (`None` off Linux).
    pub(crate) resident_per_record: Option<f64>,
}

/// Resident set size in bytes, from /proc (Linux); `None` elsewhere.
pub(crate) fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Parses JSON Lines: each non-blank line one record, on all cores; the
/// first bad line (by number) is reported.
fn parse_lines(bytes: &[u8], shown: &str) -> Result<(Vec<Record>, Vec<usize>), Failure> {
    let lines: Vec<(usize, &[u8])> = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .collect();
    let parse = |&(number, line): &(usize, &[u8])| -> Result<Record, Failure> {
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| Failure::new(format!("{shown}:{number}: not valid JSON: {e}")))?;
        Record::from_value(value).map_err(|e| Failure::new(format!("{shown}:{number}: {e}")))
    };
    let records = match lines
        .par_iter()
        .map(parse)
        .collect::<Result<Vec<Record>, _>>()
    {
        Ok(records) => records,
        // Some bad line stopped the parse; report the first one by number
        // (the slow way: bad input is rare).
        Err(some) => return Err(lines.iter().find_map(|l| parse(l).err()).unwrap_or(some)),
    };
    Ok((records, lines.iter().map(|(number, _)| *number).collect()))
}

fn read_records(path: &Path) -> Result<(Vec<Record>, Vec<usize>), Failure> {
    let shown = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| Failure::new(format!("cannot read {shown}: {e}")))?;
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Ok((Vec::new(), Vec::new())),
        Some(b'[') => {
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| Failure::new(format!("{shown}:{}: not valid JSON: {e}", e.line())))?;
            let records = backdex::records_from_value(value)
                .map_err(|e| Failure::new(format!("{shown}: {e}")))?;
            let lines = vec![0; records.len()];
            Ok((records, lines))
        }
        Some(_) => parse_lines(&bytes, &shown),
    }
}

/// Loads a data file into a new store.
pub(crate) fn load(path: &Path) -> Result<Loaded, Failure> {
    let (records, lines) = read_records(path)?;
    let before = resident_bytes();
    let t = Instant::now();
    let mut store = Store::new();
    store.upsert(&records).map_err(|e| {
        let shown = path.display();
        match &e {
            ChangeError::InvalidRecord { index, .. }
                if lines.get(*index).is_some_and(|&l| l > 0) =>
            {
                Failure::new(format!("{shown}:{}: {e}", lines[*index]))
            }
            _ => Failure::new(format!("{shown}: {e}")),
        }
    })?;
    let took = t.elapsed();
    let n = records.len();
    drop(records);
    let resident_per_record = match (before, resident_bytes()) {
        (Some(b), Some(a)) if n > 0 => Some(a.saturating_sub(b) as f64 / n as f64),
        _ => None,
    };
    Ok(Loaded {
        store,
        records: n,
        took,
        resident_per_record,
    })
}

/// Splits `PATH?QUERY`.
pub(crate) fn split_request(target: &str) -> (&str, &str) {
    target.split_once('?').unwrap_or((target, ""))
}
