//! Large upserts. Into a store without rows, a batch is built as the bulk
//! builder builds a store. Into a store that holds records, the batch's new records
//! are built into column blocks on the pool, as the bulk builder builds
//! them, appended after the last row in whole chunks, and indexed a
//! column at a time: no row-by-row writes, no dictionary probe per value
//! and row.

use std::ops::Range;

use rayon::prelude::*;
use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;

use super::column::CHUNK;
use super::dict::NULL_CODE;
use super::table::{Columns, Derived, Kept, RowBlock, Shared, ORDERS};
use super::{BitmapKey, Indexes, OrderKey, Store, TextField};
use crate::batch::wire::Parts;
use crate::batch::Checked;
use crate::index::{BitmapIndex, SortedSeq, TrigramIndex};
use crate::record::Record;

/// Checked records built into blocks of a chunk each, on the pool.
fn blocks_of(records: &[(&Record, &Checked)]) -> Vec<RowBlock> {
    records
        .par_chunks(CHUNK)
        .map(|chunk| {
            let parts: Vec<Parts<'_>> = chunk.iter().map(|&(r, c)| Parts::of(r, c)).collect();
            let refs: Vec<&Parts<'_>> = parts.iter().collect();
            let mut block = RowBlock::with_room(&refs);
            for part in &parts {
                block.push(part);
            }
            block
        })
        .collect()
}

impl Store {
    /// How many of a large batch's `fresh` new records go in as blocks:
    /// those left once the free rows and the rest of the last chunk are
    /// filled row by row, when they make at least a chunk.
    pub(crate) fn appendable(&self, fresh: usize) -> usize {
        let rows = self.cols.rows();
        let room = self.free.len() as usize + (CHUNK - rows % CHUNK) % CHUNK;
        match fresh.checked_sub(room) {
            Some(rest) if rest >= CHUNK => rest,
            _ => 0,
        }
    }

    /// Fills a store without rows with checked records (ids distinct) as
    /// the bulk builder would: blocks on the pool, the columns assembled
    /// from them, every index built from the columns in one scope.
    pub(super) fn build_from(&mut self, records: &[(&Record, &Checked)]) {
        debug_assert_eq!(self.cols.rows(), 0);
        let mut blocks = blocks_of(records);
        let mut shared = Shared::default();
        RowBlock::seal(&mut blocks, &mut shared);
        self.cols = Columns::from_blocks(blocks, shared);
        self.live = RoaringBitmap::new();
        // Bounded by MAX_RECORDS, checked in `upsert`.
        self.live.insert_range(0..records.len() as u32);
        self.free = RoaringBitmap::new();
        // The batch checks found no repeated id.
        let _ = self.index_all();
    }

    /// Ends a large batch whose loop wrote `written` (rows whose old
    /// entries the ordered indexes still hold among them: `replaced`) and
    /// left `appended` to go in as blocks. The blocks are appended, then
    /// indexed beside the ordered indexes' update, which reads only
    /// columns: by sorting every live row (`resort`: the batch is at least
    /// the store) or by merging the batch's rows into the kept entries.
    pub(super) fn end_large_batch(
        &mut self,
        appended: &[(&Record, &Checked)],
        mut written: RoaringBitmap,
        replaced: &RoaringBitmap,
        resort: bool,
    ) {
        let fresh = (!appended.is_empty()).then(|| {
            let start = self.cols.rows();
            debug_assert_eq!(start % CHUNK, 0);
            self.cols.append_blocks(start, blocks_of(appended));
            // Bounded by MAX_RECORDS, checked in `upsert`.
            let rows = start as u32..(start + appended.len()) as u32;
            self.live.insert_range(rows.clone());
            written.insert_range(rows.clone());
            rows
        });
        let (cols, live) = (&self.cols, &self.live);
        let Indexes {
            bitmaps,
            orders,
            substrings,
            derived,
        } = &mut self.idx;
        let kept_orders = &*orders;
        let (_, updated) = rayon::join(
            || {
                if let Some(rows) = fresh {
                    index_appended(cols, bitmaps, substrings, derived, rows, appended);
                }
                derived.end_bulk();
            },
            || {
                if resort {
                    sorted_orders(cols, live)
                } else {
                    merged_orders(cols, kept_orders, &written, replaced)
                }
            },
        );
        for (slot, seq) in orders.iter_mut().zip(updated) {
            *slot = seq;
        }
    }
}

/// Every ordered index built by sorting the live rows, on all cores (rayon
/// gives each thread one index at a time, which bounds the scratch memory).
fn sorted_orders(cols: &Columns, live: &RoaringBitmap) -> Vec<SortedSeq<u32>> {
    OrderKey::ALL
        .par_iter()
        .map(|&key| SortedSeq::from_sorted(cols.sorted(key, live)))
        .collect()
}

/// Every ordered index with the rows `written` (sorted, one index a
/// thread) merged into its other entries, kept in their order (their keys
/// did not change); the `replaced` rows' old entries dropped.
fn merged_orders(
    cols: &Columns,
    orders: &[SortedSeq<u32>; ORDERS],
    written: &RoaringBitmap,
    replaced: &RoaringBitmap,
) -> Vec<SortedSeq<u32>> {
    OrderKey::ALL
        .par_iter()
        .zip(orders.par_iter())
        .map(|(&key, seq)| {
            let kept: Vec<u32> = if replaced.is_empty() {
                seq.iter().copied().collect()
            } else {
                seq.iter()
                    .copied()
                    .filter(|&row| !replaced.contains(row))
                    .collect()
            };
            SortedSeq::from_sorted(cols.merged(key, &kept, written))
        })
        .collect()
}

/// Adds freshly appended rows to the bitmaps (a key a task, each value's
/// rows appended at once), the trigrams (a value's, when all its rows are
/// among these) and, beside them, the derived indexes.
fn index_appended(
    cols: &Columns,
    bitmaps: &mut [BitmapIndex],
    substrings: &mut [TrigramIndex],
    derived: &mut Derived,
    rows: Range<u32>,
    records: &[(&Record, &Checked)],
) {
    let by_value = || {
        bitmaps
            .par_iter_mut()
            .zip(BitmapKey::ALL)
            .for_each(|(index, &key)| {
                for (code, appended) in cols.rows_by_code(key, rows.clone()).into_iter().enumerate()
                {
                    index.append(code as u32, appended);
                }
            });
        substrings
            .par_iter_mut()
            .zip(TextField::ALL)
            .for_each(|(grams, &field)| {
                let col = cols.text_column(field);
                let mut counts: FxHashMap<u32, u32> = FxHashMap::default();
                for row in rows.clone() {
                    let code = col.code(row as usize);
                    if code != NULL_CODE {
                        *counts.entry(code).or_default() += 1;
                    }
                }
                // A value new to the store has no rows but these.
                for (code, n) in counts {
                    if col.dict.refs(code) == n {
                        grams.insert(code, col.dict.value(code));
                    }
                }
            });
    };
    let derived_rows = || {
        for (row, (record, _)) in rows.clone().zip(records) {
            derived.insert(row, cols, record, &Kept::default());
        }
    };
    rayon::join(by_value, derived_rows);
}
