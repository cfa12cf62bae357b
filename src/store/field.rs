//! The column kinds of the field table (`Text`, `Dict`, `Fixed`, `Time`,
//! `Json`, `Members`) and what each does for one field: write a value into
//! a row, clear it, view it borrowed, read it back as the record's type,
//! tell whether a replacement changes it, account its memory and check
//! itself. The store's generated code calls these with static dispatch
//! (`<Column as FieldColumn<Type>>::…`), one call per field.

use std::cmp::Ordering;
use std::fmt;

use roaring::RoaringBitmap;
use serde_json::{Map, Value};

use super::column::{Chunked, Sparse, StrBlock, StrColumn, CHUNK};
use super::dict::{Dict, DictBlock, DictColumn, LocalDict, NULL_CODE};
use super::ids::{IdBlock, IdColumn, IdText};
use super::packed::Packed;
use crate::batch::wire::Wire;
use crate::batch::CheckValue;
use crate::codec::{Decoder, Encoder, Malformed, Persist};
use crate::record::{ImageType, Member, MemberStatus, Status};
use crate::timestamp::Timestamp;

/// `protected_at`/`expired_at` null: below every real timestamp.
pub(crate) const NULL_TIME: i64 = i64::MIN;

/// How a column keeps the values of one record field of type `V`.
pub(crate) trait FieldColumn<V: CheckValue>: Clone + Default + fmt::Debug {
    /// A value as a row view borrows it.
    type View<'a>: Copy
    where
        Self: 'a;

    /// Whether the column holds an opaque part (memory is accounted apart).
    const PAYLOAD: bool = false;

    /// Appends an empty row.
    fn push_empty(&mut self);
    /// Writes a value into an empty (cleared or new) row; `checked` is what
    /// the batch check made of it.
    fn write(&mut self, row: usize, value: &V, checked: &V::Checked);
    /// Empties a row, releasing what it referenced.
    fn clear(&mut self, row: usize);
    /// The value of a live row, borrowed.
    fn view(&self, row: usize) -> Self::View<'_>;
    /// What a row view holds for a field no response shows (never read).
    fn unseen(&self) -> Self::View<'_>;
    /// The value of a live row, as the record holds it.
    fn read(&self, row: usize) -> V;
    /// Whether `value` differs from the live row's.
    fn differs(&self, row: usize, value: &V) -> bool;
    /// Whether the live row already holds `value` as checked (the cheap
    /// way where there is one: an opaque part compares its text).
    fn holds(&self, row: usize, value: &V, _checked: &V::Checked) -> bool {
        !self.differs(row, value)
    }
    /// Approximate heap bytes, counting shared chunks in full.
    fn heap_bytes(&self) -> usize;
    /// Whether the column has exactly `rows` rows (checked when a snapshot
    /// is read, so that no later access can fall outside a column).
    fn fits(&self, rows: usize) -> bool;
    /// Checks the column's own invariants against the live rows.
    ///
    /// # Errors
    ///
    /// The first disagreement, in words.
    fn check(&self, _live: &RoaringBitmap) -> Result<(), String> {
        Ok(())
    }
}

/// How a column is built in blocks of one chunk from the fast path's
/// parts of a field of type `V`.
pub(crate) trait Build<V: Wire>: Sized {
    /// One chunk of rows being built.
    type Block: Default + Send;
    /// The text bytes a part takes in its block (for exact allocation).
    fn text_len(_part: &V::Part<'_>) -> usize {
        0
    }
    /// An empty block with room for exactly `rows` rows holding `text`
    /// bytes of text: every block is allocated once, so building leaves
    /// no freed growth steps behind (the process's memory stays what the
    /// store accounts).
    fn block(rows: usize, text: usize) -> Self::Block;
    fn push(block: &mut Self::Block, part: &V::Part<'_>);
    /// What the blocks of a column share once built (a dictionary).
    type Shared: Default + Send;
    /// Hands a built block's local state over to what the column shares
    /// (its values to the dictionary, its codes made global), in row
    /// order, as soon as the block is built: local state does not pile up.
    fn seal(_block: &mut Self::Block, _shared: &mut Self::Shared) {}
    /// The column from its sealed blocks in row order, every one but the
    /// last a full chunk.
    fn assemble(blocks: Vec<Self::Block>, shared: Self::Shared) -> Self;
    /// Appends built blocks (every one but the last a full chunk) as the
    /// rows from `start` on, the column's end, which ends a chunk: the
    /// blocks are sealed into what the column already shares.
    fn append(&mut self, start: usize, blocks: Vec<Self::Block>);
}

/// A column with a bitmap of rows per value: each value has a code.
pub(crate) trait Coded {
    /// The code of a live row's value ([`NULL_CODE`] for null).
    fn code(&self, row: usize) -> u32;
    /// The code of a value, if some row may hold it.
    fn code_of(&self, value: &str) -> Option<u32>;
    /// The value of a code some row holds.
    fn value_of(&self, code: u32) -> &str;
}

/// A column with an ordered index.
pub(crate) trait Ordered {
    /// Compares two live rows' values.
    fn cmp_rows(&self, a: usize, b: usize) -> Ordering;
    /// The values as integers of the same order, for sorting a whole
    /// column at once, where there is such a mapping.
    fn ranker(&self) -> Option<impl Fn(usize) -> u64 + Sync + '_>;
    /// Whether [`Ordered::ranker`] costs nothing next to a page (it ranks
    /// no dictionary).
    const RANKS_WITHOUT_DICTIONARY: bool = true;
    /// Compares a string key's text at a live row with `value`, by bytes
    /// (other keys compare as the empty string).
    #[inline]
    fn cmp_text(&self, _row: usize, value: &str) -> Ordering {
        "".cmp(value)
    }
    /// The first eight bytes of a string key's text at a live row, as a
    /// big-endian integer (zeros past its end; 0 for other keys).
    #[inline]
    fn prefix(&self, _row: usize) -> u64 {
        0
    }
    /// Whether some row may hold `value` (a dictionary knows for sure).
    #[inline]
    fn may_hold(&self, _value: &str) -> bool {
        true
    }
}

// ---- Text: unique strings ---------------------------------------------

impl FieldColumn<String> for IdColumn {
    type View<'a> = IdText<'a>;

    fn push_empty(&mut self) {
        self.push(None);
    }
    fn write(&mut self, row: usize, value: &String, _: &()) {
        self.set(row, Some(value));
    }
    fn clear(&mut self, row: usize) {
        self.set(row, None);
    }
    #[inline]
    fn view(&self, row: usize) -> IdText<'_> {
        self.id(row)
    }
    fn unseen(&self) -> IdText<'_> {
        IdText::Text("")
    }
    #[inline]
    fn read(&self, row: usize) -> String {
        self.id(row).to_string()
    }
    #[inline]
    fn differs(&self, row: usize, value: &String) -> bool {
        !self.id(row).eq_str(value)
    }
    fn heap_bytes(&self) -> usize {
        IdColumn::heap_bytes(self)
    }
    fn fits(&self, rows: usize) -> bool {
        self.len() == rows
    }
    fn check(&self, live: &RoaringBitmap) -> Result<(), String> {
        check_nulls(self.len(), |row| self.get(row).is_some(), live)
    }
}

/// A text column holds a value exactly in its live rows.
fn check_nulls(
    rows: usize,
    holds: impl Fn(usize) -> bool,
    live: &RoaringBitmap,
) -> Result<(), String> {
    for row in 0..rows {
        let is_live = live.contains(row as u32);
        if holds(row) != is_live {
            return Err(if is_live {
                format!("live row {row} holds no text")
            } else {
                format!("freed row {row} still holds text")
            });
        }
    }
    Ok(())
}

impl Ordered for IdColumn {
    #[inline]
    fn cmp_rows(&self, a: usize, b: usize) -> Ordering {
        self.id(a).cmp(&self.id(b))
    }
    fn ranker(&self) -> Option<impl Fn(usize) -> u64 + Sync + '_> {
        None::<fn(usize) -> u64>
    }
    #[inline]
    fn cmp_text(&self, row: usize, value: &str) -> Ordering {
        self.id(row).cmp_str(value)
    }
    #[inline]
    fn prefix(&self, row: usize) -> u64 {
        self.id(row).prefix()
    }
}

// ---- Dict: dictionary codes ---------------------------------------------

impl FieldColumn<String> for DictColumn {
    type View<'a> = &'a str;

    fn push_empty(&mut self) {
        self.push_null();
    }
    fn write(&mut self, row: usize, value: &String, _: &()) {
        self.assign(row, Some(value));
    }
    fn clear(&mut self, row: usize) {
        DictColumn::clear(self, row);
    }
    #[inline]
    fn view(&self, row: usize) -> &str {
        self.str(row)
    }
    fn unseen(&self) -> &str {
        ""
    }
    #[inline]
    fn read(&self, row: usize) -> String {
        self.str(row).to_owned()
    }
    #[inline]
    fn differs(&self, row: usize, value: &String) -> bool {
        self.str(row) != value
    }
    fn heap_bytes(&self) -> usize {
        DictColumn::heap_bytes(self)
    }
    fn fits(&self, rows: usize) -> bool {
        self.len() == rows
    }
    fn check(&self, live: &RoaringBitmap) -> Result<(), String> {
        self.check_refs(live)
    }
}

impl FieldColumn<Option<String>> for DictColumn {
    type View<'a> = Option<&'a str>;

    fn push_empty(&mut self) {
        self.push_null();
    }
    fn write(&mut self, row: usize, value: &Option<String>, _: &()) {
        self.assign(row, value.as_deref());
    }
    fn clear(&mut self, row: usize) {
        DictColumn::clear(self, row);
    }
    #[inline]
    fn view(&self, row: usize) -> Option<&str> {
        self.get(row)
    }
    fn unseen(&self) -> Option<&str> {
        None
    }
    #[inline]
    fn read(&self, row: usize) -> Option<String> {
        self.get(row).map(str::to_owned)
    }
    #[inline]
    fn differs(&self, row: usize, value: &Option<String>) -> bool {
        self.get(row) != value.as_deref()
    }
    fn heap_bytes(&self) -> usize {
        DictColumn::heap_bytes(self)
    }
    fn fits(&self, rows: usize) -> bool {
        self.len() == rows
    }
    fn check(&self, live: &RoaringBitmap) -> Result<(), String> {
        self.check_refs(live)
    }
}

impl Coded for DictColumn {
    #[inline]
    fn code(&self, row: usize) -> u32 {
        DictColumn::code(self, row)
    }
    fn code_of(&self, value: &str) -> Option<u32> {
        self.dict.code(value)
    }
    fn value_of(&self, code: u32) -> &str {
        self.dict.value(code)
    }
}

impl Ordered for DictColumn {
    const RANKS_WITHOUT_DICTIONARY: bool = false;
    #[inline]
    fn cmp_rows(&self, a: usize, b: usize) -> Ordering {
        if DictColumn::code(self, a) == DictColumn::code(self, b) {
            Ordering::Equal
        } else {
            self.str(a).as_bytes().cmp(self.str(b).as_bytes())
        }
    }
    /// The rank of each code in the byte order of the values.
    fn ranker(&self) -> Option<impl Fn(usize) -> u64 + Sync + '_> {
        let mut values: Vec<(u32, &str)> = self.dict.iter().collect();
        values.sort_unstable_by(|a, b| a.1.as_bytes().cmp(b.1.as_bytes()));
        let mut ranks = vec![0; self.dict.code_bound()];
        for (rank, (code, _)) in values.into_iter().enumerate() {
            if let Some(slot) = ranks.get_mut(code as usize) {
                *slot = rank as u64;
            }
        }
        Some(move |row: usize| {
            ranks
                .get(DictColumn::code(self, row) as usize)
                .copied()
                .unwrap_or(0)
        })
    }
    #[inline]
    fn cmp_text(&self, row: usize, value: &str) -> Ordering {
        self.str(row).as_bytes().cmp(value.as_bytes())
    }
    #[inline]
    fn prefix(&self, row: usize) -> u64 {
        IdText::Text(self.str(row)).prefix()
    }
    #[inline]
    fn may_hold(&self, value: &str) -> bool {
        self.dict.code(value).is_some()
    }
}

// ---- Fixed: enums, integers, booleans -----------------------------------

/// A fixed-size value kept as it is.
pub(crate) trait Fixed: Copy + PartialEq + fmt::Debug + Send + Sync + 'static {
    /// What an empty row holds (never read: the row is not live).
    const EMPTY: Self;
}

/// A fixed value with a few named values: a bitmap per value, the code is
/// the discriminant.
pub(crate) trait Enumerated: Fixed {
    fn code(self) -> u32;
    fn parse_name(name: &str) -> Option<Self>;
    fn name_of(code: u32) -> &'static str;
}

impl Fixed for u64 {
    const EMPTY: u64 = 0;
}
impl Fixed for bool {
    const EMPTY: bool = false;
}
impl Fixed for Status {
    const EMPTY: Status = Status::Available;
}
impl Fixed for ImageType {
    const EMPTY: ImageType = ImageType::Backup;
}

impl Enumerated for bool {
    #[inline]
    fn code(self) -> u32 {
        u32::from(self)
    }
    fn parse_name(name: &str) -> Option<bool> {
        name.parse().ok()
    }
    fn name_of(code: u32) -> &'static str {
        if code == 0 {
            "false"
        } else {
            "true"
        }
    }
}

/// The string enums of the record model.
macro_rules! enumerated {
    ($($ty:ty),*) => {
        $(impl Enumerated for $ty {
            #[inline]
            fn code(self) -> u32 {
                self as u32
            }
            fn parse_name(name: &str) -> Option<$ty> {
                <$ty>::parse(name)
            }
            fn name_of(code: u32) -> &'static str {
                <$ty>::ALL.get(code as usize).map_or("", |v| v.as_str())
            }
        })*
    };
}
enumerated!(Status, ImageType);

impl<T: Fixed + CheckValue<Checked = ()>> FieldColumn<T> for Chunked<T> {
    type View<'a> = T;

    fn push_empty(&mut self) {
        self.push(T::EMPTY);
    }
    fn write(&mut self, row: usize, value: &T, _: &()) {
        self.set(row, *value);
    }
    fn clear(&mut self, _row: usize) {}
    #[inline]
    fn view(&self, row: usize) -> T {
        *self.get(row)
    }
    fn unseen(&self) -> T {
        T::EMPTY
    }
    #[inline]
    fn read(&self, row: usize) -> T {
        *self.get(row)
    }
    #[inline]
    fn differs(&self, row: usize, value: &T) -> bool {
        self.get(row) != value
    }
    fn heap_bytes(&self) -> usize {
        Chunked::heap_bytes(self)
    }
    fn fits(&self, rows: usize) -> bool {
        self.len() == rows
    }
}

impl<T: Enumerated> Coded for Chunked<T> {
    #[inline]
    fn code(&self, row: usize) -> u32 {
        self.get(row).code()
    }
    fn code_of(&self, value: &str) -> Option<u32> {
        T::parse_name(value).map(T::code)
    }
    fn value_of(&self, code: u32) -> &str {
        T::name_of(code)
    }
}

/// Enums order by their codes: the variants are declared in the byte
/// order of their names.
impl<T: Enumerated> Ordered for Chunked<T> {
    #[inline]
    fn cmp_rows(&self, a: usize, b: usize) -> Ordering {
        self.get(a).code().cmp(&self.get(b).code())
    }
    fn ranker(&self) -> Option<impl Fn(usize) -> u64 + Sync + '_> {
        Some(|row: usize| u64::from(self.get(row).code()))
    }
}

// ---- Int: integers, packed ---------------------------------------------

/// Integers packed per chunk: sizes in GB repeat and stay small, 1 or 2
/// bytes a row instead of 8. `u64::MAX` is the value set apart (it still
/// reads back as itself, see [`Packed`]).
pub(crate) type IntColumn = Packed<{ u64::MAX }>;

impl FieldColumn<u64> for IntColumn {
    type View<'a> = u64;

    fn push_empty(&mut self) {
        self.push(u64::EMPTY);
    }
    fn write(&mut self, row: usize, value: &u64, _: &()) {
        self.set(row, *value);
    }
    fn clear(&mut self, _row: usize) {}
    #[inline]
    fn view(&self, row: usize) -> u64 {
        self.get(row)
    }
    fn unseen(&self) -> u64 {
        u64::EMPTY
    }
    #[inline]
    fn read(&self, row: usize) -> u64 {
        self.get(row)
    }
    #[inline]
    fn differs(&self, row: usize, value: &u64) -> bool {
        self.get(row) != *value
    }
    fn heap_bytes(&self) -> usize {
        Packed::heap_bytes(self)
    }
    fn fits(&self, rows: usize) -> bool {
        self.len() == rows
    }
}

impl Build<u64> for IntColumn {
    type Block = Vec<u64>;
    fn block(rows: usize, _: usize) -> Vec<u64> {
        Vec::with_capacity(rows)
    }
    fn push(block: &mut Vec<u64>, part: &u64) {
        block.push(*part);
    }
    type Shared = ();
    fn assemble(blocks: Vec<Vec<u64>>, _: ()) -> IntColumn {
        Packed::from_chunks(&blocks)
    }
    fn append(&mut self, _: usize, blocks: Vec<Vec<u64>>) {
        self.append_aligned(Packed::from_chunks(&blocks));
    }
}

// ---- Time: microseconds -------------------------------------------------

/// Timestamps as `i64` microseconds, null as [`NULL_TIME`] (so that a null
/// sorts before every timestamp), kept as their [`time_rank`]s packed per
/// chunk: rows loaded in time order span hours in a chunk, 5 bytes a row.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimeColumn(Packed<NULL_RANK>);

/// The rank of [`NULL_TIME`].
const NULL_RANK: u64 = 0;

impl TimeColumn {
    /// A live row's microseconds ([`NULL_TIME`] for null).
    #[inline]
    pub(crate) fn micros(&self, row: usize) -> i64 {
        micros_of_rank(self.0.get(row))
    }

    fn set(&mut self, row: usize, micros: i64) {
        self.0.set(row, time_rank(micros));
    }

    fn push(&mut self, micros: i64) {
        self.0.push(time_rank(micros));
    }
}

/// A timestamp as an unsigned integer with the same order.
#[inline]
pub(crate) fn time_rank(micros: i64) -> u64 {
    (micros as u64) ^ (1 << 63)
}

/// The microseconds of a [`time_rank`].
#[inline]
fn micros_of_rank(rank: u64) -> i64 {
    (rank ^ (1 << 63)) as i64
}

impl FieldColumn<Timestamp> for TimeColumn {
    type View<'a> = Timestamp;

    fn push_empty(&mut self) {
        self.push(NULL_TIME);
    }
    fn write(&mut self, row: usize, value: &Timestamp, _: &()) {
        self.set(row, value.as_micros());
    }
    fn clear(&mut self, _row: usize) {}
    #[inline]
    fn view(&self, row: usize) -> Timestamp {
        Timestamp::from_micros(self.micros(row)).unwrap_or(Timestamp::MIN)
    }
    fn unseen(&self) -> Timestamp {
        Timestamp::MIN
    }
    #[inline]
    fn read(&self, row: usize) -> Timestamp {
        <TimeColumn as FieldColumn<Timestamp>>::view(self, row)
    }
    #[inline]
    fn differs(&self, row: usize, value: &Timestamp) -> bool {
        self.micros(row) != value.as_micros()
    }
    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }
    fn fits(&self, rows: usize) -> bool {
        self.0.len() == rows
    }
}

impl FieldColumn<Option<Timestamp>> for TimeColumn {
    type View<'a> = Option<Timestamp>;

    fn push_empty(&mut self) {
        self.push(NULL_TIME);
    }
    fn write(&mut self, row: usize, value: &Option<Timestamp>, _: &()) {
        self.set(row, value.map_or(NULL_TIME, Timestamp::as_micros));
    }
    fn clear(&mut self, _row: usize) {}
    #[inline]
    fn view(&self, row: usize) -> Option<Timestamp> {
        Timestamp::from_micros(self.micros(row))
    }
    fn unseen(&self) -> Option<Timestamp> {
        None
    }
    #[inline]
    fn read(&self, row: usize) -> Option<Timestamp> {
        <TimeColumn as FieldColumn<Option<Timestamp>>>::view(self, row)
    }
    #[inline]
    fn differs(&self, row: usize, value: &Option<Timestamp>) -> bool {
        self.micros(row) != value.map_or(NULL_TIME, Timestamp::as_micros)
    }
    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }
    fn fits(&self, rows: usize) -> bool {
        self.0.len() == rows
    }
}

impl Ordered for TimeColumn {
    #[inline]
    fn cmp_rows(&self, a: usize, b: usize) -> Ordering {
        self.micros(a).cmp(&self.micros(b))
    }
    fn ranker(&self) -> Option<impl Fn(usize) -> u64 + Sync + '_> {
        Some(|row: usize| time_rank(self.micros(row)))
    }
}

// ---- Json: opaque parts as text -----------------------------------------

/// An opaque part as the JSON text it serialized to, validated once at
/// ingestion and never parsed to answer a filter.
#[derive(Debug, Clone, Default)]
pub(crate) struct JsonColumn(StrColumn);

/// The JSON text of an opaque part, to be copied into a body as it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawJson<'a>(pub(crate) &'a str);

impl JsonColumn {
    fn parsed<T: serde::de::DeserializeOwned + Default>(&self, row: usize) -> T {
        serde_json::from_str(self.0.str(row)).unwrap_or_default()
    }
}

/// The text kept for an opaque part: its empty shape (`{}` or `[]`, which
/// most records have) as no text at all, a part's text never being empty.
#[inline]
fn kept<'a>(text: &'a str, empty: &str) -> &'a str {
    if text == empty {
        ""
    } else {
        text
    }
}

/// A kept text back as the part's JSON text.
#[inline]
fn shown<'a>(kept: &'a str, empty: &'static str) -> &'a str {
    if kept.is_empty() {
        empty
    } else {
        kept
    }
}

/// Both opaque shapes (objects and arrays) are kept the same way; `$empty`
/// is the shape's empty text.
macro_rules! json_column {
    ($($ty:ty => $empty:literal),*) => {
        $(impl FieldColumn<$ty> for JsonColumn {
            type View<'a> = RawJson<'a>;
            const PAYLOAD: bool = true;

            fn push_empty(&mut self) {
                self.0.push(None);
            }
            fn write(&mut self, row: usize, _: &$ty, text: &String) {
                self.0.set(row, Some(kept(text, $empty)));
            }
            fn clear(&mut self, row: usize) {
                self.0.set(row, None);
            }
            #[inline]
            fn view(&self, row: usize) -> RawJson<'_> {
                RawJson(shown(self.0.str(row), $empty))
            }
            fn unseen(&self) -> RawJson<'_> {
                RawJson("")
            }
            #[inline]
            fn read(&self, row: usize) -> $ty {
                self.parsed(row)
            }
            #[inline]
            fn differs(&self, row: usize, value: &$ty) -> bool {
                &self.parsed::<$ty>(row) != value
            }
            fn holds(&self, row: usize, _: &$ty, text: &String) -> bool {
                self.0.get(row) == Some(kept(text, $empty))
            }
            fn heap_bytes(&self) -> usize {
                self.0.heap_bytes()
            }
            fn fits(&self, rows: usize) -> bool {
                self.0.len() == rows
            }
            fn check(&self, live: &RoaringBitmap) -> Result<(), String> {
                check_nulls(self.0.len(), |row| self.0.get(row).is_some(), live)
            }
        })*
    };
}
json_column!(Map<String, Value> => "{}", Vec<Value> => "[]");

// ---- Members: the sparse sharing list -----------------------------------

/// A backup's members: only the rows with members (about 3% of backups
/// are shared) hold their `(destination code, status)` pairs; the
/// destination projects are a dictionary, one reference per member.
#[derive(Debug, Clone, Default)]
pub(crate) struct MembersColumn {
    rows: Sparse<Box<[(u32, MemberStatus)]>>,
    pub(crate) dests: Dict,
}

impl MembersColumn {
    /// A row's members: `(destination code, status)`.
    #[inline]
    pub(crate) fn of(&self, row: usize) -> &[(u32, MemberStatus)] {
        self.rows.get(row).map_or(&[], |m| m)
    }
}

impl MembersColumn {
    /// Every row with members, in no order.
    pub(crate) fn rows_with_members(
        &self,
    ) -> impl Iterator<Item = (u32, &[(u32, MemberStatus)])> + '_ {
        self.rows.iter().map(|(row, m)| (row, &**m))
    }
}

/// A row's members, looked up only when read (rendering never does).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MembersOf<'a> {
    column: &'a MembersColumn,
    row: usize,
}

impl<'a> MembersOf<'a> {
    /// `(destination code, status)` per member.
    pub(crate) fn codes(self) -> &'a [(u32, MemberStatus)] {
        self.column.of(self.row)
    }
}

impl FieldColumn<Vec<Member>> for MembersColumn {
    type View<'a> = MembersOf<'a>;

    fn push_empty(&mut self) {}
    fn write(&mut self, row: usize, value: &Vec<Member>, _: &()) {
        let members: Box<[(u32, MemberStatus)]> = value
            .iter()
            .map(|m| (self.dests.acquire(&m.dest_project_id), m.status))
            .collect();
        self.rows.set(row, (!members.is_empty()).then_some(members));
    }
    fn clear(&mut self, row: usize) {
        if let Some(members) = self.rows.take(row) {
            for &(dest, _) in members.iter() {
                self.dests.release(dest);
            }
        }
    }
    #[inline]
    fn view(&self, row: usize) -> MembersOf<'_> {
        MembersOf { column: self, row }
    }
    /// No row: reading it gives no member.
    fn unseen(&self) -> MembersOf<'_> {
        MembersOf {
            column: self,
            row: usize::MAX,
        }
    }
    #[inline]
    fn read(&self, row: usize) -> Vec<Member> {
        self.of(row)
            .iter()
            .map(|&(dest, status)| Member {
                dest_project_id: self.dests.value(dest).to_owned(),
                status,
            })
            .collect()
    }
    #[inline]
    fn differs(&self, row: usize, value: &Vec<Member>) -> bool {
        let held = self.of(row);
        held.len() != value.len()
            || held.iter().zip(value).any(|(&(dest, status), m)| {
                status != m.status || self.dests.value(dest) != m.dest_project_id
            })
    }
    fn heap_bytes(&self) -> usize {
        self.rows.heap_bytes()
            + self.rows.iter().map(|(_, m)| m.len() * 8).sum::<usize>()
            + self.dests.heap_bytes()
    }
    /// Rows past the end hold no members, and every destination is a
    /// code of the dictionary.
    fn fits(&self, rows: usize) -> bool {
        let bound = self.dests.code_bound();
        self.rows.max_row().is_none_or(|r| (r as usize) < rows)
            && self
                .rows
                .iter()
                .all(|(_, m)| m.iter().all(|&(dest, _)| (dest as usize) < bound))
    }
    fn check(&self, live: &RoaringBitmap) -> Result<(), String> {
        let mut refs = std::collections::BTreeMap::new();
        for (row, members) in self.rows.iter() {
            if !live.contains(row) {
                return Err(format!("freed row {row} still holds members"));
            }
            for &(dest, _) in members.iter() {
                *refs.entry(dest).or_insert(0u32) += 1;
            }
        }
        self.dests
            .check_refs(&refs)
            .map_err(|e| format!("destinations: {e}"))
    }
}

impl Dict {
    /// Checks that each code's reference count is what the rows hold and
    /// that values and codes map to each other.
    ///
    /// # Errors
    ///
    /// The first disagreement, in words.
    pub(crate) fn check_refs(
        &self,
        refs: &std::collections::BTreeMap<u32, u32>,
    ) -> Result<(), String> {
        for code in 0..self.code_bound() as u32 {
            let expected = refs.get(&code).copied().unwrap_or(0);
            if self.refs(code) != expected {
                return Err(format!(
                    "dictionary code {code} has {} references, rows hold {expected}",
                    self.refs(code)
                ));
            }
            if let Some(v) = self.value_opt(code) {
                if self.code(v) != Some(code) {
                    return Err(format!(
                        "dictionary value {v:?} does not map back to {code}"
                    ));
                }
            }
        }
        if self.len() != refs.len() || refs.keys().any(|&c| self.value_opt(c).is_none()) {
            return Err("dictionary: live values and referenced codes differ".into());
        }
        Ok(())
    }
}

impl DictColumn {
    /// Dead rows hold the null code; live values' references are the rows
    /// holding them.
    fn check_refs(&self, live: &RoaringBitmap) -> Result<(), String> {
        let mut refs = std::collections::BTreeMap::new();
        for (row, code) in self.codes().enumerate() {
            if !live.contains(row as u32) && code != NULL_CODE {
                return Err(format!("dead row {row} holds code {code}"));
            }
            if code != NULL_CODE {
                *refs.entry(code).or_insert(0u32) += 1;
            }
        }
        self.dict.check_refs(&refs)
    }
}

// ---- Snapshots -----------------------------------------------------------

/// Enums are stored as their codes (discriminants), checked on reading.
macro_rules! persist_enum {
    ($($ty:ty),*) => {
        $(impl Persist for $ty {
            fn save(&self, out: &mut Encoder) {
                out.u8(*self as u8);
            }
            fn load(input: &mut Decoder<'_>) -> Result<$ty, Malformed> {
                let code = input.u8()?;
                <$ty>::ALL.get(code as usize).copied().ok_or_else(|| {
                    input.malformed(format!("{code} is not a code of {}", stringify!($ty)))
                })
            }
        })*
    };
}
persist_enum!(Status, ImageType, MemberStatus);

impl Persist for TimeColumn {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        self.0.save(out);
    }
    fn load(input: &mut Decoder<'_>) -> Result<TimeColumn, Malformed> {
        Persist::load(input).map(TimeColumn)
    }
}

impl Persist for JsonColumn {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        self.0.save(out);
    }
    fn load(input: &mut Decoder<'_>) -> Result<JsonColumn, Malformed> {
        Persist::load(input).map(JsonColumn)
    }
}

impl Persist for Box<[(u32, MemberStatus)]> {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        out.seq(self.iter());
    }
    fn load(input: &mut Decoder<'_>) -> Result<Self, Malformed> {
        input.seq().map(Vec::into_boxed_slice)
    }
}

impl Persist for MembersColumn {
    const MIN_BYTES: usize = 32;
    fn save(&self, out: &mut Encoder) {
        self.rows.save(out);
        self.dests.save(out);
    }
    fn load(input: &mut Decoder<'_>) -> Result<MembersColumn, Malformed> {
        Ok(MembersColumn {
            rows: Persist::load(input)?,
            dests: Persist::load(input)?,
        })
    }
}

// ---- Bulk building -------------------------------------------------------

impl Build<String> for IdColumn {
    type Block = IdBlock;
    fn text_len(part: &&str) -> usize {
        part.len()
    }
    fn block(rows: usize, text: usize) -> IdBlock {
        IdBlock::with_room(rows, text)
    }
    fn push(block: &mut IdBlock, part: &&str) {
        block.push(part);
    }
    type Shared = ();
    fn assemble(blocks: Vec<IdBlock>, _: ()) -> IdColumn {
        IdColumn::from_blocks(blocks)
    }
    fn append(&mut self, _: usize, blocks: Vec<IdBlock>) {
        self.append_aligned(IdColumn::from_blocks(blocks));
    }
}

impl Build<String> for DictColumn {
    type Block = DictBlock;
    fn block(rows: usize, _: usize) -> DictBlock {
        DictBlock::with_room(rows)
    }
    fn push(block: &mut DictBlock, part: &&str) {
        block.push(Some(part));
    }
    type Shared = Dict;
    fn seal(block: &mut DictBlock, dict: &mut Dict) {
        block.seal(dict);
    }
    fn assemble(blocks: Vec<DictBlock>, dict: Dict) -> DictColumn {
        DictColumn::from_blocks(blocks, dict)
    }
    fn append(&mut self, _: usize, blocks: Vec<DictBlock>) {
        self.append_blocks(blocks);
    }
}

impl Build<Option<String>> for DictColumn {
    type Block = DictBlock;
    fn block(rows: usize, _: usize) -> DictBlock {
        DictBlock::with_room(rows)
    }
    fn push(block: &mut DictBlock, part: &Option<&str>) {
        block.push(*part);
    }
    type Shared = Dict;
    fn seal(block: &mut DictBlock, dict: &mut Dict) {
        block.seal(dict);
    }
    fn assemble(blocks: Vec<DictBlock>, dict: Dict) -> DictColumn {
        DictColumn::from_blocks(blocks, dict)
    }
    fn append(&mut self, _: usize, blocks: Vec<DictBlock>) {
        self.append_blocks(blocks);
    }
}

/// Fixed values are kept as sent.
macro_rules! build_fixed {
    ($($ty:ty),*) => {
        $(impl Build<$ty> for Chunked<$ty> {
            type Block = Vec<$ty>;
            fn block(rows: usize, _: usize) -> Vec<$ty> {
                Vec::with_capacity(rows)
            }
            fn push(block: &mut Vec<$ty>, part: &$ty) {
                block.push(*part);
            }
            type Shared = ();
            fn assemble(blocks: Vec<Vec<$ty>>, _: ()) -> Chunked<$ty> {
                Chunked::from_chunks(blocks)
            }
            fn append(&mut self, _: usize, blocks: Vec<Vec<$ty>>) {
                self.append_aligned(Chunked::from_chunks(blocks));
            }
        })*
    };
}
build_fixed!(bool, Status, ImageType);

/// Blocks hold ranks, packed when the column is assembled.
impl Build<Timestamp> for TimeColumn {
    type Block = Vec<u64>;
    fn block(rows: usize, _: usize) -> Vec<u64> {
        Vec::with_capacity(rows)
    }
    fn push(block: &mut Vec<u64>, part: &Timestamp) {
        block.push(time_rank(part.as_micros()));
    }
    type Shared = ();
    fn assemble(blocks: Vec<Vec<u64>>, _: ()) -> TimeColumn {
        TimeColumn(Packed::from_chunks(&blocks))
    }
    fn append(&mut self, _: usize, blocks: Vec<Vec<u64>>) {
        self.0.append_aligned(Packed::from_chunks(&blocks));
    }
}

impl Build<Option<Timestamp>> for TimeColumn {
    type Block = Vec<u64>;
    fn block(rows: usize, _: usize) -> Vec<u64> {
        Vec::with_capacity(rows)
    }
    fn push(block: &mut Vec<u64>, part: &Option<Timestamp>) {
        block.push(time_rank(part.map_or(NULL_TIME, Timestamp::as_micros)));
    }
    type Shared = ();
    fn assemble(blocks: Vec<Vec<u64>>, _: ()) -> TimeColumn {
        TimeColumn(Packed::from_chunks(&blocks))
    }
    fn append(&mut self, _: usize, blocks: Vec<Vec<u64>>) {
        self.0.append_aligned(Packed::from_chunks(&blocks));
    }
}

/// Both opaque shapes keep their checked text.
macro_rules! build_json {
    ($($ty:ty => $empty:literal),*) => {
        $(impl Build<$ty> for JsonColumn {
            type Block = StrBlock;
            fn text_len(part: &std::borrow::Cow<'_, str>) -> usize {
                kept(part, $empty).len()
            }
            fn block(rows: usize, text: usize) -> StrBlock {
                StrBlock::with_room(rows, text)
            }
            fn push(block: &mut StrBlock, part: &std::borrow::Cow<'_, str>) {
                block.push(Some(kept(part, $empty)));
            }
            type Shared = ();
            fn assemble(blocks: Vec<StrBlock>, _: ()) -> JsonColumn {
                JsonColumn(StrColumn::from_blocks(blocks))
            }
            fn append(&mut self, _: usize, blocks: Vec<StrBlock>) {
                self.0.append_aligned(StrColumn::from_blocks(blocks));
            }
        })*
    };
}
build_json!(Map<String, Value> => "{}", Vec<Value> => "[]");

/// A row's members: `(destination code, status)`.
type RowMembers = Box<[(u32, MemberStatus)]>;

/// One block of the members column: the rows with members, by offset in
/// the block, with block-local destination codes.
#[derive(Debug, Default)]
pub(crate) struct MembersBlock {
    rows: Vec<(u32, RowMembers)>,
    dests: LocalDict,
    len: u32,
}

impl Build<Vec<Member>> for MembersColumn {
    type Block = MembersBlock;
    fn block(_: usize, _: usize) -> MembersBlock {
        MembersBlock::default()
    }
    fn push(block: &mut MembersBlock, part: &Vec<(&str, MemberStatus)>) {
        if !part.is_empty() {
            let members = part
                .iter()
                .map(|&(dest, status)| (block.dests.code(dest), status))
                .collect();
            block.rows.push((block.len, members));
        }
        block.len += 1;
    }
    type Shared = Dict;
    /// The destinations go to the column's dictionary; codes made global.
    fn seal(block: &mut MembersBlock, dests: &mut Dict) {
        let map = dests.merge_one(&std::mem::take(&mut block.dests));
        for (_, members) in &mut block.rows {
            for (dest, _) in members.iter_mut() {
                *dest = map.get(*dest as usize).copied().unwrap_or(NULL_CODE);
            }
        }
    }
    fn assemble(blocks: Vec<MembersBlock>, dests: Dict) -> MembersColumn {
        let pairs = blocks.into_iter().enumerate().flat_map(|(i, block)| {
            block
                .rows
                .into_iter()
                .map(move |(offset, members)| ((i * CHUNK) as u32 + offset, members))
        });
        MembersColumn {
            rows: Sparse::from_pairs(pairs),
            dests,
        }
    }
    fn append(&mut self, start: usize, blocks: Vec<MembersBlock>) {
        for (i, mut block) in blocks.into_iter().enumerate() {
            <MembersColumn as Build<Vec<Member>>>::seal(&mut block, &mut self.dests);
            for (offset, members) in block.rows {
                self.rows
                    .set(start + i * CHUNK + offset as usize, Some(members));
            }
        }
    }
}
