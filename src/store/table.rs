//! The store's part of the field table ([`crate::schema`]): the columns,
//! the keys of the bitmap, ordered and substring indexes, the derived
//! indexes, and every per-field operation on them — writing and clearing a
//! row, keeping the derived indexes in step, accounting memory,
//! validating, viewing a row and reading a record back. All generated from
//! the one table, so that no field can be forgotten in one of them.

use std::cmp::Ordering;

use roaring::RoaringBitmap;
use serde_json::{Map, Value};

use super::column::Chunked;
use super::derived::{IndexMemory, RowIndex};
use super::dict::DictColumn;
use super::dict::NULL_CODE;
use super::field::{
    time_rank, Build, Coded, FieldColumn, IntColumn, JsonColumn, MembersColumn, Ordered, TimeColumn,
};
use super::ids::IdColumn;
use crate::batch::Checked;
use crate::index::{
    AscendingRows, BitmapIndex, DayIndex, ExtendOverlap, IpIndex, SharingIndex, TrigramIndex,
};
use crate::record::{ImageType, Member, Record, Status};
use crate::schema::Field;
use crate::timestamp::Timestamp;

use super::sections::{
    decode_column, decode_index, take_part, Decoded, Part, Sections, SnapshotError,
};
use crate::batch::wire::Parts;

/// The store type of a column kind of the table.
macro_rules! column {
    (Text, $ty:ty) => { IdColumn };
    (Dict, $ty:ty) => { DictColumn };
    (Fixed, $ty:ty) => { Chunked<$ty> };
    (Int, $ty:ty) => { IntColumn };
    (Time, $ty:ty) => { TimeColumn };
    (Json, $ty:ty) => { JsonColumn };
    (Members, $ty:ty) => { MembersColumn };
}

/// A flag per derived index (the index type only selects the field).
macro_rules! flag {
    ($index:ident) => {
        bool
    };
}

/// The snapshot section of a derived index (the index type only selects
/// the field).
macro_rules! derived_section {
    ($index:ident, $field:ident) => {
        concat!("derived.", stringify!($field))
    };
}

macro_rules! store_table {
    ($( {
        $variant:ident, $field:ident, $ty:ty, $presence:tt, $column:ident,
        [$($bitmap:ident)?], [$($order:ident)?], [$($substring:ident)?], [$($index:ident)?],
        [$($v1:literal)?], [$($v3:literal)?], [$($doc:literal)*]
    } )*) => {
        /// A field with a roaring bitmap of rows per value.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum BitmapKey {
            $( $( $bitmap, )? )*
        }

        impl BitmapKey {
            /// Every bitmap-indexed field, in the table's order.
            pub(crate) const ALL: &'static [BitmapKey] = &[$( $( BitmapKey::$bitmap, )? )*];

            /// The field's wire name.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $( $( BitmapKey::$bitmap => stringify!($field), )? )*
                }
            }

            /// Its snapshot section.
            pub(crate) fn section(self) -> &'static str {
                match self {
                    $( $( BitmapKey::$bitmap => concat!("bitmap.", stringify!($field)), )? )*
                }
            }
        }

        /// The keys of the ordered indexes. Each orders the live rows by
        /// the key, then `created_at`, then `id` (bytes), all ascending;
        /// `id` alone is already total.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum OrderKey {
            $( $( $order, )? )*
        }

        impl OrderKey {
            /// Every ordered index, in the table's order.
            pub(crate) const ALL: &'static [OrderKey] = &[$( $( OrderKey::$order, )? )*];

            /// The field's wire name.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $( $( OrderKey::$order => stringify!($field), )? )*
                }
            }

            /// Its snapshot section.
            pub(crate) fn section(self) -> &'static str {
                match self {
                    $( $( OrderKey::$order => concat!("order.", stringify!($field)), )? )*
                }
            }
        }

        /// A field searched by substring.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum TextField {
            $( $( $substring, )? )*
        }

        impl TextField {
            /// Every substring-indexed field.
            pub(crate) const ALL: &'static [TextField] = &[$( $( TextField::$substring, )? )*];

            /// The field's wire name.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $( $( TextField::$substring => stringify!($field), )? )*
                }
            }

            /// Its snapshot section.
            pub(crate) fn section(self) -> &'static str {
                match self {
                    $( $( TextField::$substring => concat!("substring.", stringify!($field)), )? )*
                }
            }

            /// The ordered index whose ranges hold a value's rows.
            pub(crate) fn order_key(self) -> OrderKey {
                match self {
                    $( $( TextField::$substring => OrderKey::$substring, )? )*
                }
            }
        }

        /// Every column, one per field of the table.
        #[derive(Debug, Clone, Default)]
        pub(crate) struct Columns {
            $( pub(crate) $field: column!($column, $ty), )*
        }

        /// The derived indexes, each named after the field it is derived
        /// from.
        #[derive(Debug, Clone, Default)]
        pub(crate) struct Derived {
            $( $( pub(crate) $field: $index, )? )*
        }

        /// A live row's fields, borrowed from the columns: what the
        /// renderer reads. The fields no response shows (`policy_id`,
        /// `members`) hold a placeholder.
        #[derive(Clone, Copy)]
        #[allow(dead_code)]
        pub(crate) struct RowView<'a> {
            $( pub(crate) $field: <column!($column, $ty) as FieldColumn<$ty>>::View<'a>, )*
        }

        /// Up to one chunk of rows being built, a block per column.
        #[derive(Default)]
        pub(crate) struct RowBlock {
            $( $field: <column!($column, $ty) as Build<$ty>>::Block, )*
            /// Rows pushed.
            pub(crate) len: usize,
        }

        impl RowBlock {
            /// An empty block with room for exactly these records.
            pub(crate) fn with_room(rows: &[&Parts<'_>]) -> RowBlock {
                RowBlock {
                    $( $field: <column!($column, $ty) as Build<$ty>>::block(
                        rows.len(),
                        rows.iter().map(|p| <column!($column, $ty) as Build<$ty>>::text_len(&p.$field)).sum(),
                    ), )*
                    len: 0,
                }
            }

            /// Appends a record's checked parts.
            pub(crate) fn push(&mut self, parts: &Parts<'_>) {
                $( <column!($column, $ty) as Build<$ty>>::push(&mut self.$field, &parts.$field); )*
                self.len += 1;
            }
        }

        /// What each column's built blocks share (its dictionary).
        #[derive(Default)]
        pub(crate) struct Shared {
            $( $field: <column!($column, $ty) as Build<$ty>>::Shared, )*
        }

        impl RowBlock {
            /// Seals freshly built blocks, in row order, each column on the
            /// pool.
            pub(crate) fn seal(blocks: &mut [RowBlock], shared: &mut Shared) {
                // Each column's blocks, borrowed apart, for its own task.
                struct Columnwise<'a> {
                    $( $field: Vec<&'a mut <column!($column, $ty) as Build<$ty>>::Block>, )*
                }
                let mut columnwise = Columnwise { $( $field: Vec::with_capacity(blocks.len()), )* };
                for block in blocks.iter_mut() {
                    let RowBlock { $( $field, )* len: _ } = block;
                    $( columnwise.$field.push($field); )*
                }
                rayon::scope(|scope| {
                    $( {
                        let state = &mut shared.$field;
                        let parts = std::mem::take(&mut columnwise.$field);
                        scope.spawn(move |_| {
                            for part in parts {
                                <column!($column, $ty) as Build<$ty>>::seal(part, state);
                            }
                        });
                    } )*
                });
            }
        }

        impl Columns {
            /// Appends built blocks (every one but the last a full chunk)
            /// as the rows from `start` on, the end of the columns, which
            /// ends a chunk; each column on the pool.
            pub(crate) fn append_blocks(&mut self, start: usize, mut blocks: Vec<RowBlock>) {
                rayon::scope(|scope| {
                    $( {
                        let column = &mut self.$field;
                        let parts: Vec<_> = blocks.iter_mut().map(|b| std::mem::take(&mut b.$field)).collect();
                        scope.spawn(move |_| <column!($column, $ty) as Build<$ty>>::append(column, start, parts));
                    } )*
                });
            }

            /// The columns from their sealed blocks in row order (every one
            /// but the last a full chunk), each column assembled on the
            /// pool.
            pub(crate) fn from_blocks(mut blocks: Vec<RowBlock>, shared: Shared) -> Columns {
                let mut cols = Columns::default();
                rayon::scope(|scope| {
                    $( {
                        let slot = &mut cols.$field;
                        let state = shared.$field;
                        let parts: Vec<_> = blocks.iter_mut().map(|b| std::mem::take(&mut b.$field)).collect();
                        scope.spawn(move |_| *slot = <column!($column, $ty) as Build<$ty>>::assemble(parts, state));
                    } )*
                });
                cols
            }

            /// Appends an empty row to every column.
            pub(crate) fn push_empty_row(&mut self) {
                $( <column!($column, $ty) as FieldColumn<$ty>>::push_empty(&mut self.$field); )*
            }

            /// Writes a checked record into an empty row.
            pub(crate) fn write(&mut self, row: usize, r: &Record, checked: &Checked) {
                $( <column!($column, $ty) as FieldColumn<$ty>>::write(
                    &mut self.$field, row, &r.$field, &checked.$field); )*
            }

            /// Replaces a live row's values with `r`'s, clearing and
            /// writing only the columns whose value changes: a write copies
            /// the column's chunk while an older version shares it, and a
            /// replacement that changes a status needs one such copy, not
            /// one per column.
            pub(crate) fn rewrite(&mut self, row: usize, r: &Record, checked: &Checked) {
                $( if !<column!($column, $ty) as FieldColumn<$ty>>::holds(
                        &self.$field, row, &r.$field, &checked.$field) {
                    <column!($column, $ty) as FieldColumn<$ty>>::clear(&mut self.$field, row);
                    <column!($column, $ty) as FieldColumn<$ty>>::write(
                        &mut self.$field, row, &r.$field, &checked.$field);
                } )*
            }

            /// Empties a row of every column, releasing what it referenced.
            pub(crate) fn clear(&mut self, row: usize) {
                $( <column!($column, $ty) as FieldColumn<$ty>>::clear(&mut self.$field, row); )*
            }

            /// A live row's fields, borrowed: those a response shows
            /// (`Field::shown`, a constant); the rest are not gathered.
            #[inline]
            pub(crate) fn view(&self, row: usize) -> RowView<'_> {
                RowView {
                    $( $field: if const { Field::$variant.shown() } {
                        <column!($column, $ty) as FieldColumn<$ty>>::view(&self.$field, row)
                    } else {
                        <column!($column, $ty) as FieldColumn<$ty>>::unseen(&self.$field)
                    }, )*
                }
            }

            /// The record held by a live row.
            pub(crate) fn record(&self, row: usize) -> Record {
                Record {
                    $( $field: <column!($column, $ty) as FieldColumn<$ty>>::read(&self.$field, row), )*
                }
            }

            /// Heap bytes of the columns: `(columns, opaque payload)`.
            pub(crate) fn memory(&self) -> (usize, usize) {
                let (mut columns, mut payload) = (0, 0);
                $(
                    let bytes = <column!($column, $ty) as FieldColumn<$ty>>::heap_bytes(&self.$field);
                    if <column!($column, $ty) as FieldColumn<$ty>>::PAYLOAD {
                        payload += bytes;
                    } else {
                        columns += bytes;
                    }
                )*
                (columns, payload)
            }

            /// Each column, as a snapshot section named `column.<field>`.
            pub(crate) fn save_sections(&self, out: &mut Sections<'_>) -> Result<(), SnapshotError> {
                $( out.put(concat!("column.", stringify!($field)), &self.$field)?; )*
                Ok(())
            }

            /// Each column's snapshot section and its decoder, which checks
            /// that the column has the store's number of rows.
            pub(crate) const PARTS: &'static [Part] = &[$( Part {
                name: concat!("column.", stringify!($field)),
                decode: decode_column::<column!($column, $ty), $ty>,
            }, )*];

            /// The columns from their decoded sections, in `PARTS` order.
            pub(crate) fn assemble(parts: &mut impl Iterator<Item = Decoded>) -> Result<Columns, SnapshotError> {
                Ok(Columns { $( $field: take_part(parts)?, )* })
            }

            /// Every column's own invariants.
            pub(crate) fn check(&self, live: &RoaringBitmap) -> Result<(), String> {
                $( <column!($column, $ty) as FieldColumn<$ty>>::check(&self.$field, live)
                    .map_err(|e| format!("column `{}`: {e}", stringify!($field)))?; )*
                Ok(())
            }

            /// The value code of a bitmap-indexed field at a live row.
            #[inline]
            pub(crate) fn code(&self, key: BitmapKey, row: usize) -> u32 {
                match key {
                    $( $( BitmapKey::$bitmap => Coded::code(&self.$field, row), )? )*
                }
            }

            /// The code of a value of a bitmap-indexed field, if some row
            /// may hold it.
            pub(crate) fn code_of(&self, key: BitmapKey, value: &str) -> Option<u32> {
                match key {
                    $( $( BitmapKey::$bitmap => Coded::code_of(&self.$field, value), )? )*
                }
            }

            /// The value of a code of a bitmap-indexed field.
            pub(crate) fn value_of(&self, key: BitmapKey, code: u32) -> &str {
                match key {
                    $( $( BitmapKey::$bitmap => Coded::value_of(&self.$field, code), )? )*
                }
            }

            /// Compares two live rows by `key` alone.
            #[inline]
            pub(crate) fn cmp_key(&self, key: OrderKey, a: usize, b: usize) -> Ordering {
                match key {
                    $( $( OrderKey::$order => Ordered::cmp_rows(&self.$field, a, b), )? )*
                }
            }

            /// Compares a string key's text at a live row with `value`.
            #[inline]
            pub(crate) fn cmp_key_text(&self, key: OrderKey, row: usize, value: &str) -> Ordering {
                match key {
                    $( $( OrderKey::$order => Ordered::cmp_text(&self.$field, row, value), )? )*
                }
            }

            /// Whether some row may hold `value` as `key`.
            pub(crate) fn may_hold(&self, key: OrderKey, value: &str) -> bool {
                match key {
                    $( $( OrderKey::$order => Ordered::may_hold(&self.$field, value), )? )*
                }
            }

            /// Whether replacing a live row by `r` changes its `key`.
            pub(crate) fn key_differs(&self, key: OrderKey, row: usize, r: &Record) -> bool {
                match key {
                    $( $( OrderKey::$order =>
                        <column!($column, $ty) as FieldColumn<$ty>>::differs(&self.$field, row, &r.$field), )? )*
                }
            }

            /// The live rows in the order of `key`'s ordered index, by one
            /// sort.
            pub(crate) fn sorted(&self, key: OrderKey, live: &RoaringBitmap) -> Vec<u32> {
                self.merged(key, &[], live)
            }

            /// `fresh` merged into `kept`, rows already in the order of
            /// `key`'s ordered index and disjoint from `fresh`.
            pub(crate) fn merged(&self, key: OrderKey, kept: &[u32], fresh: &RoaringBitmap) -> Vec<u32> {
                let job = KeyedJob::Merge { kept, fresh };
                match key {
                    $( $( OrderKey::$order => keyed_by(self, &self.$field, key, job), )? )*
                }
            }

            /// The first `k` of `rows` (distinct live rows) in the order
            /// of `key`'s ordered index, or its reverse (`desc`), in that
            /// order. Only cheap where [`Columns::ranks_cheaply`].
            pub(crate) fn first_k(&self, key: OrderKey, rows: Vec<u32>, k: usize, desc: bool) -> Vec<u32> {
                let job = KeyedJob::FirstK { rows, k, desc };
                match key {
                    $( $( OrderKey::$order => keyed_by(self, &self.$field, key, job), )? )*
                }
            }

            /// Whether `key`'s integer keys cost nothing next to a page:
            /// not a dictionary column, whose ranks need every value
            /// sorted.
            pub(crate) fn ranks_cheaply(&self, key: OrderKey) -> bool {
                match key {
                    $( $( OrderKey::$order => <column!($column, $ty) as Ordered>::RANKS_WITHOUT_DICTIONARY, )? )*
                }
            }

            /// The dictionary column of a substring-indexed field.
            pub(crate) fn text_column(&self, field: TextField) -> &DictColumn {
                match field {
                    $( $( TextField::$substring => &self.$field, )? )*
                }
            }
        }

        /// Which derived indexes a replacement leaves as they are: those
        /// keyed by their field's value whose value it keeps (a status
        /// change does not parse `backup_data` again for the ip index).
        #[derive(Debug, Clone, Copy, Default)]
        pub(crate) struct Kept {
            $( $( pub(crate) $field: flag!($index), )? )*
        }

        impl Derived {
            /// What replacing a live row by `r` leaves as it is.
            pub(crate) fn kept(cols: &Columns, row: usize, r: &Record, checked: &Checked) -> Kept {
                Kept {
                    $( $( $field: <$index as RowIndex<$ty, column!($column, $ty)>>::BY_VALUE
                        && <column!($column, $ty) as FieldColumn<$ty>>::holds(
                            &cols.$field, row, &r.$field, &checked.$field), )? )*
                }
            }

            /// Adds a freshly written row to the indexes not `kept`.
            pub(crate) fn insert(&mut self, row: u32, cols: &Columns, r: &Record, kept: &Kept) {
                $( $( if !kept.$field {
                    <$index as RowIndex<$ty, column!($column, $ty)>>::insert(
                        &mut self.$field, row, &r.$field,
                        <column!($column, $ty) as FieldColumn<$ty>>::view(&cols.$field, row as usize));
                } )? )*
            }

            /// Removes a live row from the indexes not `kept`, reading its
            /// current values.
            pub(crate) fn remove(&mut self, row: u32, cols: &Columns, kept: &Kept) {
                $( $( if !kept.$field {
                    <$index as RowIndex<$ty, column!($column, $ty)>>::remove(
                        &mut self.$field, row,
                        <column!($column, $ty) as FieldColumn<$ty>>::view(&cols.$field, row as usize));
                } )? )*
            }

            /// Before a bulk load: inserts may be gathered.
            pub(crate) fn begin_bulk(&mut self) {
                $( $( <$index as RowIndex<$ty, column!($column, $ty)>>::begin_bulk(&mut self.$field); )? )*
            }

            /// After a bulk load: gathered inserts are built in.
            pub(crate) fn end_bulk(&mut self) {
                $( $( <$index as RowIndex<$ty, column!($column, $ty)>>::end_bulk(&mut self.$field); )? )*
            }

            /// Each derived index, as a snapshot section named
            /// `derived.<field>`.
            pub(crate) fn save_sections(&self, out: &mut Sections<'_>) -> Result<(), SnapshotError> {
                $( $( out.put(derived_section!($index, $field), &self.$field)?; )? )*
                Ok(())
            }

            /// Each derived index's snapshot section and its decoder, which
            /// checks that it names only rows the store has.
            pub(crate) const PARTS: &'static [Part] = &[$( $( Part {
                name: derived_section!($index, $field),
                decode: decode_index::<$index>,
            }, )? )*];

            /// The derived indexes from their decoded sections, in `PARTS`
            /// order.
            pub(crate) fn assemble(parts: &mut impl Iterator<Item = Decoded>) -> Result<Derived, SnapshotError> {
                Ok(Derived { $( $( $field: take_part::<$index>(parts)?, )? )* })
            }

            /// Heap bytes: `(bitmap-like, ip)`.
            pub(crate) fn memory(&self) -> (usize, usize) {
                let (mut bitmaps, mut ips) = (0, 0);
                $( $(
                    let bytes = <$index as RowIndex<$ty, column!($column, $ty)>>::heap_bytes(&self.$field);
                    match <$index as RowIndex<$ty, column!($column, $ty)>>::MEMORY {
                        IndexMemory::Bitmaps => bitmaps += bytes,
                        IndexMemory::Ip => ips += bytes,
                    }
                )? )*
                (bitmaps, ips)
            }

            /// Every derived index built from its column's live rows, each
            /// on the pool.
            pub(crate) fn build(cols: &Columns, live: &RoaringBitmap) -> Derived {
                let mut built = Derived::default();
                rayon::scope(|scope| {
                    $( $( {
                        let slot = &mut built.$field;
                        scope.spawn(move |_| {
                            *slot = <$index as RowIndex<$ty, column!($column, $ty)>>::build(&cols.$field, live);
                        });
                    } )? )*
                });
                built
            }

            /// Each derived index equals the one built afresh from its
            /// column's live rows.
            pub(crate) fn check(&self, cols: &Columns, live: &RoaringBitmap) -> Result<(), String> {
                $( $( {
                    let fresh = <$index as RowIndex<$ty, column!($column, $ty)>>::build(&cols.$field, live);
                    if !<$index as RowIndex<$ty, column!($column, $ty)>>::same(&fresh, &self.$field) {
                        return Err(format!(
                            "the {} index of `{}` disagrees with its column",
                            stringify!($index), stringify!($field)
                        ));
                    }
                } )? )*
                Ok(())
            }
        }
    };
}

crate::schema::record_fields!(store_table);

/// The number of ordered indexes.
pub(crate) const ORDERS: usize = OrderKey::ALL.len();

/// A flag per ordered index (in `OrderKey::ALL` order).
pub(crate) type OrderSet = [bool; ORDERS];

impl Columns {
    /// The number of rows, live or free.
    pub(crate) fn rows(&self) -> usize {
        self.id.len()
    }

    /// The total order of an ordered index: `key`, then `created_at`, then
    /// `id` (SEMANTICS §4's tie-break).
    #[inline]
    pub(crate) fn cmp_rows(&self, key: OrderKey, a: u32, b: u32) -> Ordering {
        let (a, b) = (a as usize, b as usize);
        let ord = self.cmp_key(key, a, b);
        if ord != Ordering::Equal || key == OrderKey::Id {
            return ord;
        }
        Ordered::cmp_rows(&self.created_at, a, b).then_with(|| Ordered::cmp_rows(&self.id, a, b))
    }

    /// The bitmap index of `key`, built from the live rows.
    pub(crate) fn bitmap_index(&self, key: BitmapKey, live: &RoaringBitmap) -> BitmapIndex {
        BitmapIndex::from_bitmaps(self.rows_by_code(key, live.iter()))
    }

    /// The rows given (in increasing order) by their code of `key`: owned
    /// bitmaps, appended to in row order, indexed by code.
    pub(crate) fn rows_by_code(
        &self,
        key: BitmapKey,
        rows: impl Iterator<Item = u32>,
    ) -> Vec<RoaringBitmap> {
        let mut by_code: Vec<AscendingRows> = Vec::new();
        for row in rows {
            let code = self.code(key, row as usize);
            if code == NULL_CODE {
                continue;
            }
            let i = code as usize;
            if i >= by_code.len() {
                by_code.resize_with(i + 1, AscendingRows::default);
            }
            by_code[i].push(row);
        }
        by_code.into_iter().map(AscendingRows::finish).collect()
    }

    /// The trigram index of `field`, built from its dictionary's values.
    pub(crate) fn trigram_index(&self, field: TextField) -> TrigramIndex {
        TrigramIndex::of_values(self.text_column(field).dict.iter())
    }

    /// Which ordered indexes a replacement moves a row in: those whose key,
    /// or the `created_at` every index breaks ties on, changes. A status
    /// change touches one ordered index instead of nine.
    pub(crate) fn moved_orders(&self, row: usize, r: &Record) -> OrderSet {
        let created_moves = self.key_differs(OrderKey::CreatedAt, row, r);
        let mut moved = [false; ORDERS];
        for (slot, &key) in moved.iter_mut().zip(OrderKey::ALL) {
            *slot = created_moves || self.key_differs(key, row, r);
        }
        moved
    }
}

/// What to do with rows in the order of an ordered index, once they have
/// integer keys.
enum KeyedJob<'a> {
    /// `fresh` merged into `kept` (rows already in the order of the index,
    /// none of them in `fresh`); with an empty `kept`, the one sort of a
    /// bulk build.
    Merge {
        kept: &'a [u32],
        fresh: &'a RoaringBitmap,
    },
    /// The first `k` of `rows` in the index's order, or its reverse.
    FirstK {
        rows: Vec<u32>,
        k: usize,
        desc: bool,
    },
}

impl KeyedJob<'_> {
    fn run(
        self,
        sort_key: impl Fn(u32) -> (u64, u64),
        tie: impl Fn(u32, u32) -> Ordering,
    ) -> Vec<u32> {
        match self {
            KeyedJob::Merge { kept, fresh } => merge_keyed(kept, fresh, sort_key, tie),
            KeyedJob::FirstK { rows, k, desc } => first_k_keyed(rows, k, desc, sort_key, tie),
        }
    }
}

/// Runs `job` with rows keyed in the order of `key`'s ordered index: `key`,
/// then `created_at`, then `id`, as integers where the column has them
/// (timestamps, enum codes, dictionary ranks) and by comparing rows on
/// equal integers.
fn keyed_by<C: Ordered>(cols: &Columns, col: &C, key: OrderKey, job: KeyedJob<'_>) -> Vec<u32> {
    match col.ranker() {
        // Strings without ranks (unique ids): their first eight bytes as
        // an integer order most pairs without reading the strings.
        None => job.run(
            |row| (col.prefix(row as usize), 0),
            |a, b| cols.cmp_rows(key, a, b),
        ),
        Some(rank) => job.run(
            |row| {
                let i = row as usize;
                (rank(i), time_rank(cols.created_at.micros(i)))
            },
            |a, b| cols.id.id(a as usize).cmp(&cols.id.id(b as usize)),
        ),
    }
}

/// The first `k` of `rows` by `(sort_key(row), tie)`, or its reverse
/// (`desc`), in that order: the keys computed once a row, a selection,
/// then a sort of the `k`.
fn first_k_keyed(
    rows: Vec<u32>,
    k: usize,
    desc: bool,
    sort_key: impl Fn(u32) -> (u64, u64),
    tie: impl Fn(u32, u32) -> Ordering,
) -> Vec<u32> {
    let mut keyed: Vec<((u64, u64), u32)> =
        rows.into_iter().map(|row| (sort_key(row), row)).collect();
    let cmp = |a: &((u64, u64), u32), b: &((u64, u64), u32)| {
        let ord = a.0.cmp(&b.0).then_with(|| tie(a.1, b.1));
        if desc {
            ord.reverse()
        } else {
            ord
        }
    };
    if k < keyed.len() {
        keyed.select_nth_unstable_by(k, cmp);
        keyed.truncate(k);
    }
    keyed.sort_unstable_by(cmp);
    keyed.into_iter().map(|(_, row)| row).collect()
}

/// Sorts `fresh` by `(sort_key(row), tie)` and merges it into `kept`
/// (sorted the same way), finding each fresh row's place by galloping from
/// the last one's. A kept row's integer key is computed only where the
/// search probes it: a batch of 100,000 into 900,000 rows reads a few
/// kept keys per fresh row and compares strings only on equal keys.
fn merge_keyed(
    kept: &[u32],
    fresh: &RoaringBitmap,
    sort_key: impl Fn(u32) -> (u64, u64),
    tie: impl Fn(u32, u32) -> Ordering,
) -> Vec<u32> {
    let mut keyed: Vec<((u64, u64), u32)> = fresh.iter().map(|row| (sort_key(row), row)).collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| tie(a.1, b.1)));
    if kept.is_empty() {
        return keyed.into_iter().map(|(_, row)| row).collect();
    }
    let before = |old: u32, new: &((u64, u64), u32)| {
        sort_key(old)
            .cmp(&new.0)
            .then_with(|| tie(old, new.1))
            .is_lt()
    };
    let mut out = Vec::with_capacity(kept.len() + keyed.len());
    let mut rest = kept;
    for new in &keyed {
        let mut bound = 1;
        while bound <= rest.len() && before(rest[bound - 1], new) {
            bound *= 2;
        }
        let (lo, hi) = (bound / 2, bound.min(rest.len()));
        let at = lo + rest[lo..hi].partition_point(|&old| before(old, new));
        out.extend_from_slice(&rest[..at]);
        out.push(new.1);
        rest = &rest[at..];
    }
    out.extend_from_slice(rest);
    out
}
