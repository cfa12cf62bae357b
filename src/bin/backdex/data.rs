//! Reading records from a file (JSON Lines or one JSON array), with errors
//! that name the line and the record's fault; and the process's memory.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use backdex::{ChangeError, Record, Store};
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

fn read_records(path: &Path) -> Result<(Vec<Record>, Vec<usize>), Failure> {
    let shown = path.display();
    let file =
        std::fs::File::open(path).map_err(|e| Failure::new(format!("cannot read {shown}: {e}")))?;
    let mut reader = BufReader::new(file);
    let starts_with_array = loop {
        let buf = reader
            .fill_buf()
            .map_err(|e| Failure::new(format!("cannot read {shown}: {e}")))?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let first = buf[i];
                break first == b'[';
            }
            None if buf.is_empty() => return Ok((Vec::new(), Vec::new())),
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    let bad = |line: usize, what: String| Failure::new(format!("{shown}:{line}: {what}"));
    if starts_with_array {
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .map_err(|e| Failure::new(format!("cannot read {shown}: {e}")))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| bad(e.line(), format!("not valid JSON: {e}")))?;
        let records = backdex::records_from_json(&value)
            .map_err(|e| Failure::new(format!("{shown}: {e}")))?;
        let lines = vec![0; records.len()];
        return Ok((records, lines));
    }
    let (mut records, mut lines) = (Vec::new(), Vec::new());
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Failure::new(format!("cannot read {shown}: {e}")))?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Value = serde_json::from_slice(&line)
            .map_err(|e| bad(number, format!("not valid JSON: {e}")))?;
        let record = Record::from_json(&value).map_err(|e| bad(number, e.to_string()))?;
        records.push(record);
        lines.push(number);
    }
    Ok((records, lines))
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
