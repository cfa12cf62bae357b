//! The bulk builder: JSON Lines handed over in pieces, parsed on all cores
//! straight into column blocks of one chunk each (no `serde_json::Value`
//! per record, no [`crate::Record`]), merged once (each dictionary takes
//! every block's values in one pass), then every index built from the
//! columns: bitmaps, trigrams and derived indexes on the pool, ordered
//! indexes by parallel sorts.
//!
//! Validation is the reference path's, exactly: a line the fast path
//! (`batch::wire`) does not accept is decoded again by `Record::from_value`
//! and checked by the batch rules, and their verdict stands. As today, the
//! first line that does not decode is reported before any batch rule (size
//! limits, repeated ids), which is reported by the first record breaking
//! one.

use rayon::prelude::*;
use roaring::RoaringBitmap;
use serde_json::Value;

use super::column::CHUNK;
use super::ids::IdColumn;
use super::table::{Columns, Derived, RowBlock, Shared};
use super::{BitmapKey, Indexes, OrderKey, Store, TextField, MAX_RECORDS, ORDERS};
use crate::batch::check_record;
use crate::batch::wire::raw_record;
use crate::error::ChangeError;
use crate::index::SortedSeq;
use crate::quote::Quoted;
use crate::record::{Record, RecordError};

/// Why a bulk load failed: the first line that does not decode, else the
/// first record (by position) that breaks a batch rule. Nothing is built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadError {
    /// A line is not JSON.
    Json {
        /// The line (1-based).
        line: usize,
        /// serde_json's account.
        reason: String,
    },
    /// A record breaks a rule of SEMANTICS §1.
    Record {
        /// The line (1-based).
        line: usize,
        /// The field and the reason.
        error: RecordError,
    },
    /// A record breaks a rule of the batch (a size or depth limit, an id
    /// repeated): [`ChangeError::InvalidRecord`] with the record's
    /// position among the records.
    Batch {
        /// The line (1-based).
        line: usize,
        /// The rule broken.
        error: ChangeError,
    },
    /// More records than a store holds.
    Capacity(ChangeError),
}

impl LoadError {
    /// The line at fault, if one is.
    pub fn line(&self) -> Option<usize> {
        match self {
            LoadError::Json { line, .. }
            | LoadError::Record { line, .. }
            | LoadError::Batch { line, .. } => Some(*line),
            LoadError::Capacity(_) => None,
        }
    }
}

impl LoadError {
    /// What is wrong, without the line: what [`crate::records_from_json`]
    /// or [`Store::upsert`] would say.
    pub fn reason(&self) -> String {
        match self {
            LoadError::Json { reason, .. } => format!("not valid JSON: {reason}"),
            LoadError::Record { error, .. } => error.to_string(),
            LoadError::Batch { error, .. } | LoadError::Capacity(error) => error.to_string(),
        }
    }
}

impl std::fmt::Display for LoadError {
    /// `line N: ` and the reason.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line() {
            Some(line) => write!(f, "line {line}: {}", self.reason()),
            None => f.write_str(&self.reason()),
        }
    }
}

impl std::error::Error for LoadError {}

/// What building one block found.
struct Built {
    block: RowBlock,
    /// The first line of the block that does not decode.
    undecodable: Option<LoadError>,
    /// The first record of the block that breaks a batch rule, by position.
    rule_broken: Option<(usize, LoadError)>,
}

/// A line of input: its number and bytes.
type Line<'a> = (usize, &'a [u8]);

/// Builds one block from up to a chunk of lines; `first` is the position
/// of its first record. Every line is decoded first, so that the block is
/// allocated at its exact size.
fn build_block(lines: &[Line<'_>], first: usize) -> Built {
    let mut built = Built {
        block: RowBlock::default(),
        undecodable: None,
        rule_broken: None,
    };
    let raws: Vec<_> = lines.iter().map(|&(_, bytes)| raw_record(bytes)).collect();
    let parts: Vec<_> = raws
        .iter()
        .map(|raw| raw.as_ref().map_err(|&r| r).and_then(|raw| raw.parts()))
        .collect();
    // The reference path decides on every line the fast path refused.
    let mut plains: Vec<(usize, Vec<u8>)> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if part.is_ok() {
            continue;
        }
        let (index, (line, bytes)) = (first + i, lines[i]);
        let value: Value = match serde_json::from_slice(bytes) {
            Ok(value) => value,
            Err(e) => {
                built.undecodable = Some(LoadError::Json {
                    line,
                    reason: e.to_string(),
                });
                return built;
            }
        };
        let record = match Record::from_value(value) {
            Ok(record) => record,
            Err(error) => {
                built.undecodable = Some(LoadError::Record { line, error });
                return built;
            }
        };
        if let Err(error) = check_record(index, &record) {
            built
                .rule_broken
                .get_or_insert((index, LoadError::Batch { line, error }));
            continue;
        }
        // Accepted (a repeated key, say): the record written out plainly is
        // what the fast path takes.
        plains.push((i, serde_json::to_vec(&record).unwrap_or_default()));
    }
    let plain_raws: Vec<_> = plains
        .iter()
        .map(|(i, bytes)| (*i, raw_record(bytes)))
        .collect();
    let plain_parts: Vec<_> = plain_raws
        .iter()
        .map(|(i, raw)| (*i, raw.as_ref().map_err(|&r| r).and_then(|raw| raw.parts())))
        .collect();
    let mut rows = Vec::with_capacity(lines.len());
    let mut plain = plain_parts.iter().peekable();
    for (i, part) in parts.iter().enumerate() {
        match part {
            Ok(part) => rows.push(part),
            Err(_) => match plain.next_if(|(j, _)| *j == i) {
                Some((_, Ok(part))) => rows.push(part),
                Some((_, Err(_))) => {
                    let index = first + i;
                    built.rule_broken.get_or_insert((
                        index,
                        LoadError::Batch {
                            line: lines[i].0,
                            error: ChangeError::InvalidRecord {
                                index,
                                field: String::new(),
                                reason: "the bulk builder cannot take this record (a bug)".into(),
                            },
                        },
                    ));
                }
                // A record that breaks a batch rule: not built.
                None => {}
            },
        }
    }
    built.block = RowBlock::with_room(&rows);
    for part in rows {
        built.block.push(part);
    }
    built
}

/// Builds a [`Store`] from JSON Lines handed over in pieces of any size
/// (a piece may end inside a line). The library does no I/O: the caller
/// reads the file and passes its bytes.
///
/// ```
/// use backdex::StoreBuilder;
/// let mut builder = StoreBuilder::new();
/// builder.push_lines(br#"{"id": "b1", "checkpoint_id": "c1", "project_id": "p1", "name": "n", "#);
/// builder.push_lines(br#""status": "available", "resource_id": "vm1", "resource_type": "OS::Nova::Server", "#);
/// builder.push_lines(b"\"created_at\": \"2020-02-21T07:00:54\", \"updated_at\": \"2020-02-21T07:07:25\"}\n\n");
/// let store = builder.finish()?;
/// assert_eq!(store.get("b1").unwrap().name, "n");
///
/// let mut bad = StoreBuilder::new();
/// bad.push_lines(b"{\"id\": \"b2\"}\n");
/// assert_eq!(bad.finish().unwrap_err().to_string(),
///            "line 1: field `checkpoint_id`: missing required field");
/// # Ok::<(), backdex::LoadError>(())
/// ```
pub struct StoreBuilder {
    /// Whole lines not yet built (fewer than a block), with their numbers.
    pending: Vec<(usize, Vec<u8>)>,
    /// The line the last piece ended inside, and its number.
    tail: Vec<u8>,
    tail_line: usize,
    blocks: Vec<RowBlock>,
    /// Where the blocks not yet sealed into the dictionaries start.
    sealed: usize,
    /// What the built blocks' columns share (their dictionaries).
    shared: Shared,
    /// The line of each record built, by position (for the errors found
    /// at the end).
    lines: Vec<usize>,
    undecodable: Option<LoadError>,
    rule_broken: Option<(usize, LoadError)>,
}

impl std::fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("records", &self.lines.len())
            .field("pending_lines", &self.pending.len())
            .field("failed", &self.undecodable.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for StoreBuilder {
    fn default() -> Self {
        StoreBuilder::new()
    }
}

/// Whether a line holds nothing but whitespace (it is skipped).
#[inline]
fn blank(line: &[u8]) -> bool {
    // A record line starts with `{` (or spaces): most lines decide at once.
    line.first().is_none_or(u8::is_ascii_whitespace) && line.iter().all(u8::is_ascii_whitespace)
}

impl StoreBuilder {
    /// A builder with no input yet.
    pub fn new() -> StoreBuilder {
        StoreBuilder {
            pending: Vec::new(),
            tail: Vec::new(),
            tail_line: 1,
            blocks: Vec::new(),
            sealed: 0,
            shared: Shared::default(),
            lines: Vec::new(),
            undecodable: None,
            rule_broken: None,
        }
    }

    /// Hands over the next piece of JSON Lines input (a piece may end
    /// inside a line; blank lines are skipped). Whole blocks of lines are
    /// parsed and built right away, on all cores; the rest waits for the
    /// next piece or [`StoreBuilder::finish`].
    pub fn push_lines(&mut self, piece: &[u8]) {
        let (Some(first_newline), Some(last_newline)) =
            (memchr::memchr(b'\n', piece), memchr::memrchr(b'\n', piece))
        else {
            self.tail.extend_from_slice(piece);
            return;
        };
        self.tail.extend_from_slice(&piece[..first_newline]);
        let tail = std::mem::take(&mut self.tail);
        if !blank(&tail) {
            self.pending.push((self.tail_line, tail));
        }
        let pending = std::mem::take(&mut self.pending);
        let mut lines: Vec<Line<'_>> = pending.iter().map(|(n, l)| (*n, l.as_slice())).collect();
        let mut next = self.tail_line + 1;
        if first_newline < last_newline {
            let body = &piece[first_newline + 1..=last_newline];
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', body) {
                let line = &body[start..end];
                if !blank(line) {
                    lines.push((next, line));
                }
                next += 1;
                start = end + 1;
            }
        }
        let whole = lines.len() / CHUNK * CHUNK;
        self.build(&lines[..whole]);
        self.pending = lines[whole..]
            .iter()
            .map(|&(n, l)| (n, l.to_vec()))
            .collect();
        self.tail = piece[last_newline + 1..].to_vec();
        self.tail_line = next;
    }

    /// Builds whole blocks of lines (the last may be short only at the
    /// end), on all cores.
    fn build(&mut self, lines: &[Line<'_>]) {
        if lines.is_empty() || self.undecodable.is_some() {
            return;
        }
        let first = self.lines.len();
        // The blocks of the piece before are sealed into the dictionaries
        // while this piece is parsed: sealing runs a column a task, and a
        // few columns hold most of the values, so on its own it would
        // leave cores idle.
        let (blocks, shared) = (&mut self.blocks, &mut self.shared);
        let unsealed = blocks.get_mut(self.sealed..).unwrap_or_default();
        let (built, ()) = rayon::join(
            || {
                lines
                    .par_chunks(CHUNK)
                    .enumerate()
                    .map(|(i, chunk)| build_block(chunk, first + i * CHUNK))
                    .collect::<Vec<Built>>()
            },
            || RowBlock::seal(unsealed, shared),
        );
        self.sealed = self.blocks.len();
        self.lines.extend(lines.iter().map(|&(n, _)| n));
        for b in built {
            if let Some(e) = b.undecodable {
                // Nothing will be built: the first such line is the answer.
                self.undecodable = Some(e);
                self.blocks.clear();
                self.sealed = 0;
                return;
            }
            if let Some((index, e)) = b.rule_broken {
                if self.rule_broken.as_ref().is_none_or(|(i, _)| index < *i) {
                    self.rule_broken = Some((index, e));
                }
            }
            self.blocks.push(b.block);
        }
    }

    /// Builds the store from everything handed over.
    ///
    /// # Errors
    ///
    /// The first line that does not decode ([`LoadError::Json`],
    /// [`LoadError::Record`]); else the first record by position that
    /// breaks a batch rule or repeats an earlier record's id
    /// ([`LoadError::Batch`]); [`LoadError::Capacity`] past
    /// [`MAX_RECORDS`]. Nothing is built then.
    pub fn finish(mut self) -> Result<Store, LoadError> {
        let tail = std::mem::take(&mut self.tail);
        if !blank(&tail) {
            self.pending.push((self.tail_line, tail));
        }
        let pending = std::mem::take(&mut self.pending);
        let lines: Vec<Line<'_>> = pending.iter().map(|(n, l)| (*n, l.as_slice())).collect();
        self.build(&lines);
        drop(lines);
        if let Some(e) = self.undecodable {
            return Err(e);
        }
        let unsealed = self.blocks.get_mut(self.sealed..).unwrap_or_default();
        RowBlock::seal(unsealed, &mut self.shared);
        let n: usize = self.blocks.iter().map(|b| b.len).sum();
        if self.lines.len() as u64 > MAX_RECORDS {
            return Err(LoadError::Capacity(ChangeError::CapacityExceeded {
                limit: MAX_RECORDS,
            }));
        }
        // Rows are positions up to the first record that breaks a rule
        // (it is not built); only repeats before it can be reported.
        let cols = Columns::from_blocks(
            std::mem::take(&mut self.blocks),
            std::mem::take(&mut self.shared),
        );
        let mut live = RoaringBitmap::new();
        live.insert_range(0..n as u32);
        let mut store = Store {
            cols,
            idx: Indexes::default(),
            live,
            free: RoaringBitmap::new(),
        };
        let repeated = store.index_all();
        let broken = match (self.rule_broken, repeated) {
            (Some((i, e)), Some((j, _))) if i <= j => Some(e),
            (_, Some((j, first))) => Some(LoadError::Batch {
                line: self.lines.get(j).copied().unwrap_or(0),
                error: ChangeError::InvalidRecord {
                    index: j,
                    field: "id".into(),
                    reason: format!(
                        "duplicate id {} (also record {first} of this batch)",
                        Quoted(&store.cols.id.id(j).to_string())
                    ),
                },
            }),
            (Some((_, e)), None) => Some(e),
            (None, None) => None,
        };
        if let Some(e) = broken {
            return Err(e);
        }
        Ok(store)
    }
}

/// The first record (by position) whose id an earlier record holds, with
/// that earlier record: `(position, earlier position)`. Repeated ids sit
/// side by side in the id order, `ids`.
fn first_repeat(ids: &[u32], column: &IdColumn) -> Option<(usize, usize)> {
    let id = |row: u32| column.id(row as usize);
    let mut best: Option<(usize, usize)> = None;
    let mut group: Option<(u32, u32)> = None; // (smallest, second smallest) of the run
    let mut prev: Option<u32> = None;
    let close = |group: Option<(u32, u32)>, best: &mut Option<(usize, usize)>| {
        if let Some((a, b)) = group {
            if b != u32::MAX && best.is_none_or(|(j, _)| (b as usize) < j) {
                *best = Some((b as usize, a as usize));
            }
        }
    };
    for &row in ids.iter() {
        match prev {
            Some(p) if id(p) == id(row) => {
                if let Some((a, b)) = &mut group {
                    if row < *a {
                        *b = *a;
                        *a = row;
                    } else if row < *b {
                        *b = row;
                    }
                }
            }
            _ => {
                close(group, &mut best);
                group = Some((row, u32::MAX));
            }
        }
        prev = Some(row);
    }
    close(group, &mut best);
    best
}

impl Store {
    /// Builds every index from the columns, in one scope on the pool
    /// (sorts, bitmaps, trigrams, derived indexes: a core that finishes
    /// its task takes the next, whatever its kind), and finds the first
    /// repeated id on the way.
    pub(super) fn index_all(&mut self) -> Option<(usize, usize)> {
        let (cols, live) = (&self.cols, &self.live);
        let mut orders: [SortedSeq<u32>; ORDERS] = Default::default();
        let repeated = std::sync::OnceLock::new();
        let mut bitmaps: [_; BitmapKey::ALL.len()] = Default::default();
        let mut substrings: [_; TextField::ALL.len()] = Default::default();
        let mut derived = Derived::default();
        rayon::scope(|scope| {
            for (&key, slot) in OrderKey::ALL.iter().zip(&mut orders) {
                let repeated = &repeated;
                scope.spawn(move |_| {
                    let sorted = cols.sorted(key, live);
                    if key == OrderKey::Id {
                        let _ = repeated.set(first_repeat(&sorted, &cols.id));
                    }
                    // Into leaves at once: a sorted vector (4 MB at 1M,
                    // below the mmap threshold) kept until the end would
                    // leave its hole in the heap under longer-lived pieces.
                    *slot = SortedSeq::from_sorted(sorted);
                });
            }
            for (&key, slot) in BitmapKey::ALL.iter().zip(&mut bitmaps) {
                scope.spawn(move |_| *slot = cols.bitmap_index(key, live));
            }
            for (&field, slot) in TextField::ALL.iter().zip(&mut substrings) {
                scope.spawn(move |_| *slot = cols.trigram_index(field));
            }
            let slot = &mut derived;
            scope.spawn(move |_| *slot = Derived::build(cols, live));
        });
        self.idx.orders = orders;
        self.idx.bitmaps = bitmaps;
        self.idx.substrings = substrings;
        self.idx.derived = derived;
        repeated.into_inner().flatten()
    }
}
