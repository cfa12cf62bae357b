//! Reading a store from a file — a snapshot (recognised by its magic),
//! JSON Lines or one JSON array — with errors that name the line and the
//! record's fault; and the process's memory.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use backdex::{Store, StoreBuilder};
use serde_json::Value;

use crate::Failure;

/// A store read from a file.
pub(crate) struct Loaded {
    pub(crate) store: Store,
    pub(crate) records: usize,
    /// From opening the file to a ready store.
    pub(crate) took: Duration,
    /// Resident bytes the load added, per record, once its input is freed
    /// (`None` off Linux).
    pub(crate) resident_per_record: Option<f64>,
    /// Whether the file was a snapshot.
    pub(crate) from_snapshot: bool,
}

/// Resident set size in bytes, from /proc (Linux); `None` elsewhere.
pub(crate) fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The size of the pieces a JSON Lines file is read and built in: big
/// enough to keep every core busy, small next to the store.
const PIECE: usize = 32 << 20;

/// Reads JSON Lines into a store through the library's bulk builder, a
/// piece at a time (the file is never held whole).
fn load_lines(mut reader: impl Read, shown: &str) -> Result<Store, Failure> {
    let mut builder = StoreBuilder::new();
    let mut piece = vec![0u8; PIECE];
    loop {
        let n = reader
            .read(&mut piece)
            .map_err(|e| Failure::new(format!("cannot read {shown}: {e}")))?;
        if n == 0 {
            break;
        }
        builder.push_lines(&piece[..n]);
    }
    drop(piece);
    builder.finish().map_err(|e| match e.line() {
        // As `FILE:LINE: reason`, the way compilers point at a line.
        Some(line) => {
            let full = e.to_string();
            let reason = full.split_once(": ").map_or(full.as_str(), |(_, r)| r);
            Failure::new(format!("{shown}:{line}: {reason}"))
        }
        None => Failure::new(format!("{shown}: {e}")),
    })
}

/// Reads one JSON array of records into a store.
fn load_array(path: &Path) -> Result<Store, Failure> {
    let shown = path.display();
    let bytes =
        std::fs::read(path).map_err(|e| Failure::new(format!("cannot read {shown}: {e}")))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::new(format!("{shown}:{}: not valid JSON: {e}", e.line())))?;
    drop(bytes);
    let records =
        backdex::records_from_value(value).map_err(|e| Failure::new(format!("{shown}: {e}")))?;
    let mut store = Store::new();
    store
        .upsert(&records)
        .map_err(|e| Failure::new(format!("{shown}: {e}")))?;
    Ok(store)
}

/// Loads a data file into a new store: a snapshot when the file starts
/// with its magic, records otherwise.
pub(crate) fn load(path: &Path) -> Result<Loaded, Failure> {
    let before = resident_bytes();
    let t = Instant::now();
    let shown = path.display();
    let file =
        std::fs::File::open(path).map_err(|e| Failure::new(format!("cannot read {shown}: {e}")))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let head = reader
        .fill_buf()
        .map_err(|e| Failure::new(format!("cannot read {shown}: {e}")))?;
    let from_snapshot = head.starts_with(&backdex::SNAPSHOT_MAGIC);
    let array = head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let store = if from_snapshot {
        Store::read_snapshot(reader)
            .map_err(|e| Failure::new(format!("{shown}: {e}")))?
            .store
    } else if array {
        drop(reader);
        load_array(path)?
    } else {
        load_lines(reader, &shown.to_string())?
    };
    let took = t.elapsed();
    let n = store.len();
    let resident_per_record = match (before, resident_bytes()) {
        (Some(b), Some(a)) if n > 0 => Some(a.saturating_sub(b) as f64 / n as f64),
        _ => None,
    };
    Ok(Loaded {
        store,
        records: n,
        took,
        resident_per_record,
        from_snapshot,
    })
}

/// Splits `PATH?QUERY`.
pub(crate) fn split_request(target: &str) -> (&str, &str) {
    target.split_once('?').unwrap_or((target, ""))
}
