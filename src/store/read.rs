//! Reading a store from what a caller opened: a snapshot (recognised by its
//! magic), one JSON array of records, or JSON Lines (through the bulk
//! builder, a piece at a time). The caller owns the file or socket; the
//! library only reads the bytes it is handed.

use std::io::{self, BufRead, BufReader, Read};

use serde_json::Value;

use super::{LoadError, SnapshotError, Store, StoreBuilder, SNAPSHOT_MAGIC};
use crate::error::ChangeError;

/// The size of the pieces JSON Lines are read and built in: big enough to
/// keep every core busy, small next to the store.
const PIECE: usize = 32 << 20;

/// Why [`Store::read_from`] failed. Nothing is built then.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The reader failed.
    Io(io::Error),
    /// The input starts like a snapshot but is not a readable one.
    Snapshot(SnapshotError),
    /// JSON Lines with a bad line or a broken batch rule.
    Lines(LoadError),
    /// One JSON array that does not parse (`line` as serde_json counts).
    ArrayJson {
        /// The line of the fault.
        line: usize,
        /// serde_json's account.
        reason: String,
    },
    /// One JSON array with a bad record or a broken batch rule.
    Array(ChangeError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "cannot read: {e}"),
            ReadError::Snapshot(e) => write!(f, "{e}"),
            ReadError::Lines(e) => write!(f, "{e}"),
            ReadError::ArrayJson { line, reason } => {
                write!(f, "line {line}: not valid JSON: {reason}")
            }
            ReadError::Array(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// What [`Store::read_from`] read.
#[derive(Debug)]
pub struct ReadStore {
    /// The store.
    pub store: Store,
    /// The snapshot's position, when the input was a snapshot.
    pub position: Option<Vec<u8>>,
}

impl StoreBuilder {
    /// Builds a store from JSON Lines read from `input` to its end, a
    /// piece at a time (the input is never held whole).
    ///
    /// # Errors
    ///
    /// [`ReadError::Lines`] as [`StoreBuilder::finish`] says;
    /// [`ReadError::Io`] when the reader fails.
    pub fn read_lines(mut input: impl Read + Send) -> Result<Store, ReadError> {
        let mut builder = StoreBuilder::new();
        let (mut piece, mut next) = (vec![0u8; PIECE], vec![0u8; PIECE]);
        let mut filled = fill(&mut input, &mut piece)?;
        while filled > 0 {
            // The next piece is read while this one is built: a read from
            // the page cache is a tenth of a piece's build, on one core.
            let current = piece.get(..filled).unwrap_or_default();
            let (read, ()) = rayon::join(
                || fill(&mut input, &mut next),
                || builder.push_lines(current),
            );
            filled = read?;
            std::mem::swap(&mut piece, &mut next);
        }
        drop((piece, next));
        builder.finish().map_err(ReadError::Lines)
    }
}

/// Reads into `buf` until it is full or the input ends: the bytes read.
fn fill(input: &mut impl Read, buf: &mut [u8]) -> Result<usize, ReadError> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match input.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    Ok(filled)
}

impl Store {
    /// Reads a store from `input`: a snapshot when it starts with
    /// [`SNAPSHOT_MAGIC`], one JSON array of records when its first
    /// non-blank byte is `[`, JSON Lines otherwise (through
    /// [`StoreBuilder`]). The caller opens the input; the library only
    /// reads it.
    ///
    /// ```
    /// use backdex::Store;
    /// let lines = br#"{"id": "b1", "checkpoint_id": "c1", "project_id": "p1", "name": "n", "status": "available", "resource_id": "vm1", "resource_type": "OS::Nova::Server", "created_at": "2020-02-21T07:00:54", "updated_at": "2020-02-21T07:07:25"}"#;
    /// let read = Store::read_from(&lines[..])?;
    /// let mut snapshot = Vec::new();
    /// read.store.write_snapshot(&mut snapshot, b"42")?;
    /// let again = Store::read_from(&snapshot[..])?;
    /// assert_eq!(again.position.as_deref(), Some(&b"42"[..]));
    /// assert_eq!(again.store.records(), read.store.records());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ReadError`] naming what is wrong and where (the line, or the
    /// snapshot's section and offset).
    pub fn read_from(input: impl Read + Send) -> Result<ReadStore, ReadError> {
        let mut input = BufReader::with_capacity(1 << 20, input);
        let head = input.fill_buf().map_err(ReadError::Io)?;
        if head.starts_with(&SNAPSHOT_MAGIC) {
            let restored = Store::read_snapshot(input).map_err(ReadError::Snapshot)?;
            return Ok(ReadStore {
                store: restored.store,
                position: Some(restored.position),
            });
        }
        let array = head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        let store = if array {
            let value: Value =
                serde_json::from_reader(input).map_err(|e| ReadError::ArrayJson {
                    line: e.line(),
                    reason: e.to_string(),
                })?;
            let records = crate::batch::records_from_value(value).map_err(ReadError::Array)?;
            let mut store = Store::new();
            store.upsert(&records).map_err(ReadError::Array)?;
            store
        } else {
            StoreBuilder::read_lines(input)?
        };
        Ok(ReadStore {
            store,
            position: None,
        })
    }
}
