//! The columnar store: one column per field, the indexes over them, and the
//! atomic batch changes of SEMANTICS §7. Which column and which indexes a
//! field has is its entry in the field table (`crate::schema`); the
//! per-field code is generated from it (`table.rs`).
//!
//! # Layout
//!
//! A record lives in a row (`u32`). Low-cardinality and repeated strings
//! are dictionary-encoded (`DictColumn`); unique strings (`id`,
//! `checkpoint_id`) are kept per chunk in one buffer (`StrColumn`);
//! timestamps are `i64` microseconds, with `i64::MIN` for null so that a
//! null sorts before every timestamp. The opaque objects are kept as the
//! JSON text they serialize to, validated once at ingestion, never
//! re-parsed to answer a filter.
//!
//! # Indexes
//!
//! * a roaring bitmap of rows per value of each `bitmap` field
//!   ([`BitmapKey`]: `status`, `resource_type`, `resource_az`, `policy_id`,
//!   `project_id`, `enterprise_project_id`, `image_type`, `dec`,
//!   `vault_id`);
//! * derived (`derived.rs`): sharing (rows per destination project, per
//!   (destination, member status), and by number of members), the days of
//!   `created_at`, the addresses of `backup_data`, the v1 keys of
//!   `extend_info`;
//! * ordered indexes ([`OrderKey`]): the live rows sorted by a key, then
//!   `created_at`, then `id`, for `id`, `created_at`, `updated_at`,
//!   `protected_at`, `name`, `status` (the sort keys: a page walks one from
//!   the marker's position instead of sorting), and `resource_id`,
//!   `resource_name`, `checkpoint_id` (equality lookups are ranges);
//! * `ip`: sorted `(address, row)` pairs;
//! * substring search on `name` and `resource_name`: byte trigrams over the
//!   distinct values; a matching value's rows are a range of its ordered
//!   index.
//!
//! # Changes
//!
//! A batch is checked in full before anything is written, so a bad batch
//! changes nothing; then each replaced record is removed from every index
//! (using the old column values) and cleared, and each record written and
//! indexed. A large batch into a
//! small store skips the per-row ordered-index inserts and sorts once.
//! Every structure is copy-on-write: cloning a store is cheap, and the clone
//! shares everything until one side writes (see [`crate::Engine`]).

mod access;
mod append;
mod build;
mod column;
mod derived;
mod dict;
mod field;
mod ids;
mod packed;
mod position;
mod read;
mod sections;
mod snapshot;
mod table;
mod validate;

use std::cmp::Ordering;

use rayon::prelude::*;
use roaring::RoaringBitmap;

pub use build::{LoadError, StoreBuilder};
pub(crate) use field::RawJson;
#[cfg(test)]
pub(crate) use ids::parse_uuid;
pub(crate) use ids::{push_uuid, IdText};
pub use position::Position;
pub use read::{ReadError, ReadStore};
pub use sections::{SnapshotError, MAX_POSITION_BYTES, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
pub use snapshot::Restored;
pub(crate) use table::{BitmapKey, OrderKey, RowView, TextField};

use crate::batch::{self, Checked};
use crate::error::ChangeError;
use crate::index::{BitmapIndex, SortedSeq, TrigramIndex};
use crate::record::Record;
use dict::NULL_CODE;
use ids::IdProbe;
use table::{Columns, Derived, Kept, OrderSet, ORDERS};

/// The most rows a store holds (row ids are `u32`).
pub const MAX_RECORDS: u64 = u32::MAX as u64;

/// A batch at least this large, and at least as large as the store, builds
/// the ordered indexes by sorting once instead of inserting row by row.
pub(crate) const BULK_MIN: usize = 4096;

/// A row's code for every bitmap key, in `BitmapKey::ALL` order.
type BitmapCodes = [u32; BitmapKey::ALL.len()];

/// The codes of a row not yet written: it is in no bitmap.
const NO_CODES: BitmapCodes = [NULL_CODE; BitmapKey::ALL.len()];

/// Every index over the columns: per the field table, a bitmap index per
/// `bitmap` field, an ordered index per `order` field, a trigram index per
/// `substring` field, and the derived indexes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Indexes {
    /// One per [`BitmapKey`], in `BitmapKey::ALL` order.
    pub(crate) bitmaps: [BitmapIndex; BitmapKey::ALL.len()],
    /// One per [`OrderKey`], in `OrderKey::ALL` order.
    pub(crate) orders: [SortedSeq<u32>; ORDERS],
    /// One per [`TextField`], over its dictionary's values.
    pub(crate) substrings: [TrigramIndex; TextField::ALL.len()],
    pub(crate) derived: Derived,
}

impl Indexes {
    pub(crate) fn order(&self, key: OrderKey) -> &SortedSeq<u32> {
        &self.orders[key as usize]
    }

    pub(crate) fn bitmap(&self, key: BitmapKey) -> &BitmapIndex {
        &self.bitmaps[key as usize]
    }
}

/// An in-memory columnar store of backup records with its indexes.
///
/// `Store` is the single-threaded core: changes take `&mut self`. Cloning
/// is cheap (copy-on-write), which is how [`crate::Engine`] gives readers
/// snapshots while a writer prepares the next version.
///
/// ```
/// use backdex::{Record, Store};
/// let record = Record::from_json(&serde_json::json!({
///     "id": "b1", "checkpoint_id": "c1", "project_id": "p1", "name": "autobk_1",
///     "status": "available", "resource_id": "vm1", "resource_type": "OS::Nova::Server",
///     "created_at": "2020-02-21T07:00:54.065135", "updated_at": "2020-02-21T07:07:25"
/// })).unwrap();
/// let mut store = Store::new();
/// store.upsert(&[record])?;
/// assert_eq!(store.len(), 1);
/// assert_eq!(store.get("b1").unwrap().name, "autobk_1");
/// store.delete(&["b1"])?;
/// assert!(store.is_empty());
/// # Ok::<(), backdex::ChangeError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Store {
    pub(crate) cols: Columns,
    pub(crate) idx: Indexes,
    /// Rows that hold a record.
    pub(crate) live: RoaringBitmap,
    /// Rows freed by deletes, reused before the columns grow.
    free: RoaringBitmap,
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.live.len() as usize
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Whether a record with this id is stored.
    pub fn contains(&self, id: &str) -> bool {
        self.row_of(id).is_some()
    }

    /// The record with this id.
    pub fn get(&self, id: &str) -> Option<Record> {
        self.row_of(id).map(|row| self.cols.record(row as usize))
    }

    /// Every record, in the byte order of their ids.
    pub fn records(&self) -> Vec<Record> {
        self.idx
            .order(OrderKey::Id)
            .iter()
            .map(|&row| self.cols.record(row as usize))
            .collect()
    }

    /// The record held by a live row.
    pub(crate) fn record_at(&self, row: u32) -> Record {
        self.cols.record(row as usize)
    }

    /// The row holding `id`.
    pub(crate) fn row_of(&self, id: &str) -> Option<u32> {
        let ids = self.idx.order(OrderKey::Id);
        let probe = IdProbe::new(id);
        let cmp = |&row: &u32| self.cols.id.id(row as usize).cmp_probe(&probe);
        let pos = ids.lower_bound(cmp);
        ids.iter_from(pos)
            .next()
            .copied()
            .filter(|row| cmp(row).is_eq())
    }

    /// The row of each record's id, if a record holds it. A batch of a
    /// sixteenth of the store or more is sorted by id and walked beside
    /// the id order, in runs on all cores (a search per id costs a cache
    /// miss per step, the walk one per row passed); a large one searches
    /// on all cores; a small one, id by id.
    fn rows_of(&self, records: &[Record]) -> Vec<Option<u32>> {
        if self.live.is_empty() {
            return vec![None; records.len()];
        }
        if records.len() < BULK_MIN {
            return records.iter().map(|r| self.row_of(&r.id)).collect();
        }
        if records.len() * 16 < self.len() {
            return records.par_iter().map(|r| self.row_of(&r.id)).collect();
        }
        let mut by_id: Vec<(IdProbe<'_>, usize)> = records
            .iter()
            .enumerate()
            .map(|(i, r)| (IdProbe::new(&r.id), i))
            .collect();
        by_id.par_sort_unstable_by(|a, b| a.0.text().as_bytes().cmp(b.0.text().as_bytes()));
        // Each thread walks its own run of sorted ids from where the first
        // of them would stand: the walk is a cache miss per row passed.
        let order = self.idx.order(OrderKey::Id);
        let run = by_id
            .len()
            .div_ceil(rayon::current_num_threads() * 4)
            .max(1);
        let hits: Vec<Vec<(usize, u32)>> = by_id
            .par_chunks(run)
            .map(|probes| {
                let first = &probes[0].0;
                let from = order.lower_bound(|&row| self.cols.id.id(row as usize).cmp_probe(first));
                let mut rows = order.iter_from(from).copied().peekable();
                let mut hits = Vec::new();
                for (probe, i) in probes {
                    while let Some(&row) = rows.peek() {
                        match self.cols.id.id(row as usize).cmp_probe(probe) {
                            Ordering::Less => {
                                rows.next();
                            }
                            Ordering::Equal => {
                                hits.push((*i, row));
                                break;
                            }
                            Ordering::Greater => break,
                        }
                    }
                }
                hits
            })
            .collect();
        let mut found = vec![None; records.len()];
        for (i, row) in hits.into_iter().flatten() {
            found[i] = Some(row);
        }
        found
    }

    /// Inserts each record, or replaces the record with the same id. The
    /// batch is atomic. Returns the number of records in the batch.
    ///
    /// # Errors
    ///
    /// [`ChangeError::InvalidRecord`] for the first record (by position)
    /// that breaks a rule of SEMANTICS §1 that its type does not enforce
    /// (id length, duplicate member), repeats an id of an earlier record of
    /// the batch, or has a text longer than 4 MiB;
    /// [`ChangeError::CapacityExceeded`] past [`MAX_RECORDS`]. Either way
    /// the store is unchanged.
    pub fn upsert(&mut self, records: &[Record]) -> Result<usize, ChangeError> {
        let (checked, existing) = if records.len() >= BULK_MIN {
            // Finding the rows reads only ids, so it runs beside the
            // checks; its answer is dropped if they fail.
            let (checked, existing) =
                rayon::join(|| batch::check_upsert(records), || self.rows_of(records));
            (checked?, existing)
        } else {
            (batch::check_upsert(records)?, self.rows_of(records))
        };
        let new_rows = existing.iter().filter(|e| e.is_none()).count() as u64;
        if self.live.len() + new_rows > MAX_RECORDS {
            return Err(ChangeError::CapacityExceeded { limit: MAX_RECORDS });
        }
        // Nothing can fail from here on: a batch is all or nothing.
        let bulk = records.len() >= BULK_MIN;
        if bulk && self.cols.rows() == 0 {
            let pairs: Vec<(&Record, &Checked)> = records.iter().zip(&checked).collect();
            self.build_from(&pairs);
            return Ok(records.len());
        }
        // A large batch leaves the ordered indexes alone row by row and
        // rebuilds them at the end: by sorting everything when the batch
        // is at least the store, else by sorting the batch's rows and
        // merging them in.
        let resort = bulk && records.len() >= self.len();
        // Of a large batch's new records, most go in as column blocks
        // after the loop (`append`); the first fill free rows and the last
        // chunk row by row.
        let blocks = if bulk {
            self.appendable(new_rows as usize)
        } else {
            0
        };
        let mut to_fill = new_rows as usize - blocks;
        let mut appended = Vec::with_capacity(blocks);
        if bulk {
            self.idx.derived.begin_bulk();
        }
        let (mut written, mut replaced) = (RoaringBitmap::new(), RoaringBitmap::new());
        for ((record, checked), existing) in records.iter().zip(&checked).zip(existing) {
            let (row, orders, kept, before, replaced_row) = match existing {
                Some(row) => {
                    if bulk {
                        replaced.insert(row);
                    }
                    let orders = if bulk {
                        [false; ORDERS]
                    } else {
                        self.cols.moved_orders(row as usize, record)
                    };
                    let kept = Derived::kept(&self.cols, row as usize, record, checked);
                    let before = self.bitmap_codes(row);
                    self.unindex(row, &orders, &kept);
                    (row, orders, kept, before, true)
                }
                None if to_fill == 0 => {
                    appended.push((record, checked));
                    continue;
                }
                None => {
                    to_fill -= 1;
                    let row = self.alloc_row();
                    (row, [!bulk; ORDERS], Kept::default(), NO_CODES, false)
                }
            };
            if replaced_row {
                self.cols.rewrite(row as usize, record, checked);
            } else {
                self.cols.write(row as usize, record, checked);
            }
            self.index(row, record, &orders, &kept, &before);
            if bulk {
                written.insert(row);
            }
        }
        if bulk {
            self.end_large_batch(&appended, written, &replaced, resort);
        }
        Ok(records.len())
    }

    /// Removes the records with these ids. The batch is atomic. Returns the
    /// number of ids in the batch.
    ///
    /// # Errors
    ///
    /// [`ChangeError::UnknownId`] for an id no record has and
    /// [`ChangeError::DuplicateId`] for an id named twice; the store is then
    /// unchanged.
    pub fn delete<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<usize, ChangeError> {
        let rows = batch::check_delete(ids, |id| self.row_of(id))?;
        for row in rows {
            let before = self.bitmap_codes(row);
            for (index, &code) in self.idx.bitmaps.iter_mut().zip(&before) {
                index.remove(code, row);
            }
            self.unindex(row, &[true; ORDERS], &Kept::default());
            self.cols.clear(row as usize);
            self.live.remove(row);
            self.free.insert(row);
        }
        Ok(ids.len())
    }

    fn alloc_row(&mut self) -> u32 {
        let row = match self.free.min() {
            Some(row) => {
                self.free.remove(row);
                row
            }
            None => {
                // Bounded by MAX_RECORDS, checked in `upsert`.
                let row = self.cols.rows() as u32;
                self.cols.push_empty_row();
                row
            }
        };
        self.live.insert(row);
        row
    }

    /// The row's code for every bitmap key, in `BitmapKey::ALL` order.
    fn bitmap_codes(&self, row: u32) -> BitmapCodes {
        let mut codes = NO_CODES;
        for (code, &key) in codes.iter_mut().zip(BitmapKey::ALL) {
            *code = self.cols.code(key, row as usize);
        }
        codes
    }

    /// Adds a freshly written row to every index; of the bitmaps, moves it
    /// from its code `before` to its new one where they differ (a bitmap
    /// of a common value is large, and copying it for a change that keeps
    /// the value was most of a small version's cost); of the ordered
    /// indexes, to those flagged in `orders`; of the derived ones, to
    /// those not `kept`.
    ///
    /// A code compared is enough: a bitmap holds rows by code, so a row
    /// whose value changed but whose code was freed and given to its new
    /// value (it was that value's only row) belongs where it is.
    fn index(
        &mut self,
        row: u32,
        record: &Record,
        orders: &OrderSet,
        kept: &Kept,
        before: &BitmapCodes,
    ) {
        let (c, x, i) = (&self.cols, &mut self.idx, row as usize);
        for ((&key, index), &old) in BitmapKey::ALL.iter().zip(&mut x.bitmaps).zip(before) {
            let code = c.code(key, i);
            if code != old {
                index.remove(old, row);
                if code != NULL_CODE {
                    index.insert(code, row);
                }
            }
        }
        // A value's trigrams are indexed when its first row arrives.
        for (&field, grams) in TextField::ALL.iter().zip(&mut x.substrings) {
            let col = c.text_column(field);
            let code = col.code(i);
            if code != NULL_CODE && col.dict.refs(code) == 1 {
                grams.insert(code, col.dict.value(code));
            }
        }
        x.derived.insert(row, c, record, kept);
        for (&key, seq) in OrderKey::ALL.iter().zip(&mut x.orders) {
            if orders[key as usize] {
                seq.insert_by(row, |&a, &b| c.cmp_rows(key, a, b));
            }
        }
    }

    /// Removes a live row from every index but the bitmaps, which
    /// [`Store::index`] or the caller updates (of the ordered ones, from
    /// those flagged in `orders`; of the derived ones, from those not
    /// `kept`), reading its current column values; the caller then
    /// clears or rewrites the row.
    fn unindex(&mut self, row: u32, orders: &OrderSet, kept: &Kept) {
        let (c, x, i) = (&self.cols, &mut self.idx, row as usize);
        // First, while the comparators can still read the old keys.
        for (&key, seq) in OrderKey::ALL.iter().zip(&mut x.orders) {
            if orders[key as usize] {
                seq.remove_by(|&e| c.cmp_rows(key, e, row));
            }
        }
        // A value's trigrams go with its last row.
        for (&field, grams) in TextField::ALL.iter().zip(&mut x.substrings) {
            let col = c.text_column(field);
            let code = col.code(i);
            if code != NULL_CODE && col.dict.refs(code) == 1 {
                grams.remove(code, col.dict.value(code));
            }
        }
        x.derived.remove(row, c, kept);
    }

    /// Approximate heap bytes, by part. Chunks shared with other snapshots
    /// are counted in full.
    pub fn memory_usage(&self) -> MemoryUsage {
        let x = &self.idx;
        let (columns, payload) = self.cols.memory();
        let (derived_bitmaps, ip_index) = x.derived.memory();
        let bitmap_indexes = x.bitmaps.iter().map(BitmapIndex::heap_bytes).sum::<usize>()
            + derived_bitmaps
            + crate::index::bitmap_bytes(&self.live)
            + crate::index::bitmap_bytes(&self.free);
        MemoryUsage {
            records: self.len(),
            columns,
            payload,
            bitmap_indexes,
            ordered_indexes: x.orders.iter().map(SortedSeq::heap_bytes).sum(),
            substring_indexes: x.substrings.iter().map(TrigramIndex::heap_bytes).sum(),
            ip_index,
        }
    }
}

/// Where a store's memory goes, in approximate heap bytes
/// ([`Store::memory_usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MemoryUsage {
    /// Records held.
    pub records: usize,
    /// Columns and their dictionaries, without the opaque payload.
    pub columns: usize,
    /// The opaque objects as JSON text.
    pub payload: usize,
    /// Value bitmaps, sharing bitmaps, and the live/free row bitmaps.
    pub bitmap_indexes: usize,
    /// The ordered indexes (sort keys and equality lookups).
    pub ordered_indexes: usize,
    /// The trigram indexes of `name` and `resource_name`.
    pub substring_indexes: usize,
    /// The `ip` index.
    pub ip_index: usize,
}

impl MemoryUsage {
    /// All indexes: everything but the columns and the payload.
    pub fn indexes(&self) -> usize {
        self.bitmap_indexes + self.ordered_indexes + self.substring_indexes + self.ip_index
    }

    /// Everything.
    pub fn total(&self) -> usize {
        self.columns + self.payload + self.indexes()
    }
}
