//! Derived indexes: one per field that needs more than a bitmap or an
//! ordered index (the days of the three timestamps a list sorts by, the addresses in
//! `backup_data`, the v1 keys in `extend_info`, the sharing of `members`),
//! kept in step with their column through one trait. The field table names
//! each (`index I`); `internal_validate` rebuilds each from its column and
//! compares.

use roaring::RoaringBitmap;
use serde_json::{Map, Value};

use super::field::{
    FieldColumn, JsonColumn, MembersColumn, MembersOf, RawJson, TimeColumn, NULL_TIME,
};
use crate::batch::CheckValue;
use crate::index::{day_of, AscendingRows, DayIndex, ExtendOverlap, IpIndex, SharingIndex};
use crate::record::{ip_addresses, v1_keys_overlap, Member};
use crate::timestamp::Timestamp;

/// An object column's text at a row.
fn object_text(column: &JsonColumn, row: usize) -> &str {
    <JsonColumn as FieldColumn<Map<String, Value>>>::view(column, row).0
}

/// An object column's object at a row (parsed).
fn object(column: &JsonColumn, row: usize) -> Map<String, Value> {
    <JsonColumn as FieldColumn<Map<String, Value>>>::read(column, row)
}

/// Where an index's memory is accounted in [`crate::MemoryUsage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexMemory {
    /// `bitmap_indexes`
    Bitmaps,
    /// `ip_index`
    Ip,
}

/// An index derived from one field of type `V` kept in a column `C`.
pub(crate) trait RowIndex<V: CheckValue, C: FieldColumn<V>>: Default {
    /// Where its memory is accounted.
    const MEMORY: IndexMemory = IndexMemory::Bitmaps;

    /// Whether the index is keyed by the field's value alone (not by
    /// dictionary codes, which a replacement may hand out anew): then a
    /// replacement that keeps the value leaves the index as it is.
    const BY_VALUE: bool = true;

    /// Adds a freshly written row: its value as ingested, and as the column
    /// now holds it.
    fn insert(&mut self, row: u32, value: &V, view: C::View<'_>);
    /// Removes a live row, from the value its column still holds.
    fn remove(&mut self, row: u32, view: C::View<'_>);
    /// Whether both hold the same rows for the same keys.
    fn same(&self, other: &Self) -> bool;
    /// Approximate heap bytes.
    fn heap_bytes(&self) -> usize;
    /// The index of a column's live rows.
    fn build(column: &C, live: &RoaringBitmap) -> Self {
        let mut index = Self::default();
        index.begin_bulk();
        for row in live.iter() {
            let i = row as usize;
            index.insert(row, &column.read(i), column.view(i));
        }
        index.end_bulk();
        index
    }
    /// A bulk load starts: inserts may be gathered until [`RowIndex::end_bulk`].
    fn begin_bulk(&mut self) {}
    /// A bulk load ends.
    fn end_bulk(&mut self) {}
}

impl RowIndex<Timestamp, TimeColumn> for DayIndex {
    fn insert(&mut self, row: u32, _: &Timestamp, created: Timestamp) {
        DayIndex::insert(self, day_of(created.as_micros()), row);
    }
    fn remove(&mut self, row: u32, created: Timestamp) {
        DayIndex::remove(self, day_of(created.as_micros()), row);
    }
    fn same(&self, other: &DayIndex) -> bool {
        self == other
    }
    /// Rows grouped by day first (appending: rows come in order), then
    /// one map entry per day.
    fn build(column: &TimeColumn, live: &RoaringBitmap) -> DayIndex {
        let mut days: rustc_hash::FxHashMap<i64, AscendingRows> = Default::default();
        for row in live.iter() {
            days.entry(day_of(column.micros(row as usize)))
                .or_default()
                .push(row);
        }
        DayIndex::from_days(days.into_iter().map(|(day, rows)| (day, rows.finish())))
    }
    fn heap_bytes(&self) -> usize {
        DayIndex::heap_bytes(self)
    }
}

/// `protected_at`: a null is kept in the day of [`NULL_TIME`], before
/// every other day, as null sorts before every timestamp.
impl RowIndex<Option<Timestamp>, TimeColumn> for DayIndex {
    fn insert(&mut self, row: u32, _: &Option<Timestamp>, at: Option<Timestamp>) {
        DayIndex::insert(
            self,
            day_of(at.map_or(NULL_TIME, Timestamp::as_micros)),
            row,
        );
    }
    fn remove(&mut self, row: u32, at: Option<Timestamp>) {
        DayIndex::remove(
            self,
            day_of(at.map_or(NULL_TIME, Timestamp::as_micros)),
            row,
        );
    }
    fn same(&self, other: &DayIndex) -> bool {
        self == other
    }
    fn build(column: &TimeColumn, live: &RoaringBitmap) -> DayIndex {
        <DayIndex as RowIndex<Timestamp, TimeColumn>>::build(column, live)
    }
    fn heap_bytes(&self) -> usize {
        DayIndex::heap_bytes(self)
    }
}

impl RowIndex<Map<String, Value>, JsonColumn> for ExtendOverlap {
    fn insert(&mut self, row: u32, extend_info: &Map<String, Value>, _: RawJson<'_>) {
        if v1_keys_overlap(extend_info) {
            self.rows.insert(row);
        }
    }
    fn remove(&mut self, row: u32, _: RawJson<'_>) {
        self.rows.remove(row);
    }
    fn same(&self, other: &ExtendOverlap) -> bool {
        self.rows == other.rows
    }
    /// Only a text that names one of v1's keys is parsed.
    fn build(column: &JsonColumn, live: &RoaringBitmap) -> ExtendOverlap {
        let mut index = ExtendOverlap::default();
        for row in live.iter() {
            let text = object_text(column, row as usize);
            if crate::schema::V1_EXTEND_INFO
                .iter()
                .any(|(key, _)| text.contains(key))
                && v1_keys_overlap(&object(column, row as usize))
            {
                index.rows.insert(row);
            }
        }
        index
    }
    fn heap_bytes(&self) -> usize {
        crate::index::bitmap_bytes(&self.rows)
    }
}

impl RowIndex<Map<String, Value>, JsonColumn> for IpIndex {
    const MEMORY: IndexMemory = IndexMemory::Ip;

    fn insert(&mut self, row: u32, backup_data: &Map<String, Value>, _: RawJson<'_>) {
        for ip in ip_addresses(backup_data) {
            IpIndex::insert(self, ip, row);
        }
    }
    /// The stored text is parsed again: removals are rare next to reads.
    fn remove(&mut self, row: u32, text: RawJson<'_>) {
        let stored: Map<String, Value> = serde_json::from_str(text.0).unwrap_or_default();
        for ip in ip_addresses(&stored) {
            IpIndex::remove(self, ip, row);
        }
    }
    fn same(&self, other: &IpIndex) -> bool {
        let (mut a, mut b) = (self.pairs(), other.pairs());
        a.sort();
        b.sort();
        a == b && self.check().is_ok()
    }
    fn heap_bytes(&self) -> usize {
        IpIndex::heap_bytes(self)
    }
    /// Only a text that names an address key is parsed.
    fn build(column: &JsonColumn, live: &RoaringBitmap) -> IpIndex {
        let mut index = IpIndex::default();
        index.gather();
        for row in live.iter() {
            let text = object_text(column, row as usize);
            if text.contains("private_ip") || text.contains("eip") {
                for ip in ip_addresses(&object(column, row as usize)) {
                    IpIndex::insert(&mut index, ip, row);
                }
            }
        }
        index.build_gathered();
        index
    }
    fn begin_bulk(&mut self) {
        self.gather();
    }
    fn end_bulk(&mut self) {
        self.build_gathered();
    }
}

impl RowIndex<Vec<Member>, MembersColumn> for SharingIndex {
    /// Keyed by destination codes, which a replacement releases and takes
    /// again.
    const BY_VALUE: bool = false;

    fn insert(&mut self, row: u32, _: &Vec<Member>, members: MembersOf<'_>) {
        SharingIndex::insert(self, row, members.codes());
    }
    fn remove(&mut self, row: u32, members: MembersOf<'_>) {
        SharingIndex::remove(self, row, members.codes());
    }
    fn same(&self, other: &SharingIndex) -> bool {
        self == other
    }
    /// From the rows with members only, by their codes.
    fn build(column: &MembersColumn, live: &RoaringBitmap) -> SharingIndex {
        let mut index = SharingIndex::default();
        for (row, members) in column.rows_with_members() {
            if live.contains(row) {
                SharingIndex::insert(&mut index, row, members);
            }
        }
        index
    }
    fn heap_bytes(&self) -> usize {
        SharingIndex::heap_bytes(self)
    }
}
