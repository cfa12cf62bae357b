//! Reading a store from a file — a snapshot (recognised by its magic),
//! JSON Lines or one JSON array — with errors that name the line and the
//! record's fault; and the process's memory.

use std::path::Path;
use std::time::{Duration, Instant};

use backdex::{ReadError, Store};

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

/// Loads a data file into a new store (`Store::read_from`: a snapshot by
/// its magic, one JSON array, or JSON Lines), with errors as
/// `FILE:LINE: reason` where there is a line.
pub(crate) fn load(path: &Path) -> Result<Loaded, Failure> {
    let before = resident_bytes();
    let t = Instant::now();
    let shown = path.display();
    let file =
        std::fs::File::open(path).map_err(|e| Failure::new(format!("cannot read {shown}: {e}")))?;
    let read = Store::read_from(file).map_err(|e| {
        Failure::new(match &e {
            ReadError::Io(io) => format!("cannot read {shown}: {io}"),
            ReadError::Lines(lines) => match lines.line() {
                Some(line) => format!("{shown}:{line}: {}", lines.reason()),
                None => format!("{shown}: {}", lines.reason()),
            },
            ReadError::ArrayJson { line, reason } => {
                format!("{shown}:{line}: not valid JSON: {reason}")
            }
            _ => format!("{shown}: {e}"),
        })
    })?;
    let store = read.store;
    // The load's transient buffers leave free pages between the store's
    // allocations: 1M slim records held 211-218 resident bytes a record
    // for 186 accounted, 200-202 once they are handed back (no cost seen
    // in the load's time).
    crate::malloc::release_free_pages();
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
        from_snapshot: read.position.is_some(),
    })
}

/// Splits `PATH?QUERY`.
pub(crate) fn split_request(target: &str) -> (&str, &str) {
    target.split_once('?').unwrap_or((target, ""))
}
