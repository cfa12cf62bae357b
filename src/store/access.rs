//! Access paths: what the indexes answer, as row sets and ordered walks.
//! The query layer composes these; the property tests check each against a
//! scan of the oracle.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::net::IpAddr;
use std::sync::LazyLock;

use memchr::memmem;
use roaring::RoaringBitmap;

use super::field::{TimeColumn, NULL_TIME};
use super::{BitmapKey, OrderKey, Position, RowView, Store, TextField};
use crate::index::{day_of, AscendingRows, DayIndex, DAY_MICROS};
use crate::record::MemberStatus;

/// The values of a text field that contain a pattern.
pub(crate) struct TextMatch {
    /// Their dictionary codes.
    pub(crate) codes: RoaringBitmap,
    /// How many rows hold them.
    pub(crate) rows: u64,
}

static EMPTY: LazyLock<RoaringBitmap> = LazyLock::new(RoaringBitmap::new);

impl Store {
    /// Every live row.
    pub(crate) fn live_rows(&self) -> &RoaringBitmap {
        &self.live
    }

    /// `created_at` of a row, in microseconds.
    #[inline]
    pub(crate) fn created_at_of(&self, row: u32) -> i64 {
        self.cols.created_at.micros(row as usize)
    }

    /// The dictionary code of a `parent_id` value, if some row holds it.
    pub(crate) fn parent_code(&self, value: &str) -> Option<u32> {
        self.cols.parent_id.dict.code(value)
    }

    /// The `parent_id` code of a row (`NULL_CODE` for null).
    #[inline]
    pub(crate) fn parent_code_of(&self, row: u32) -> u32 {
        self.cols.parent_id.code(row as usize)
    }

    /// Rows whose bitmap-indexed `key` field has the value code `code`.
    pub(crate) fn code_rows(&self, key: BitmapKey, code: u32) -> &RoaringBitmap {
        self.idx.bitmap(key).get(code).unwrap_or(&*EMPTY)
    }

    /// Rows whose bitmap-indexed `key` field equals `value` (a null never
    /// equals).
    pub(crate) fn eq_rows(&self, key: BitmapKey, value: &str) -> &RoaringBitmap {
        self.cols
            .code_of(key, value)
            .map_or(&*EMPTY, |code| self.code_rows(key, code))
    }

    /// Every value of a bitmap-indexed field with its rows, for facets.
    pub(crate) fn values(
        &self,
        key: BitmapKey,
    ) -> impl Iterator<Item = (&str, &RoaringBitmap)> + '_ {
        self.idx
            .bitmap(key)
            .iter()
            .map(move |(code, rows)| (self.cols.value_of(key, code), rows))
    }

    /// Rows shared to project `dest`, with that member status when given.
    pub(crate) fn shared_rows(&self, dest: &str, status: Option<MemberStatus>) -> &RoaringBitmap {
        let sharing = &self.idx.derived.members;
        let index = status.map_or(&sharing.to, |s| &sharing.to_status[s as usize]);
        self.cols
            .members
            .dests
            .code(dest)
            .and_then(|code| index.get(code))
            .unwrap_or(&*EMPTY)
    }

    /// The number of sharing entries (members) of `rows`: one per backup
    /// and destination, counted from bitmap cardinalities alone.
    pub(crate) fn sharing_entries(&self, rows: &RoaringBitmap) -> u64 {
        self.idx
            .derived
            .members
            .at_least
            .iter()
            .map(|b| b.intersection_len(rows))
            .sum()
    }

    /// Rows holding `ip` in `backup_data.private_ip` or `eip`.
    pub(crate) fn ip_rows(&self, ip: IpAddr) -> RoaringBitmap {
        self.idx.derived.backup_data.rows(ip)
    }

    /// Rows whose string `key` (`Id`, `CheckpointId`, `Name`, `ResourceId`
    /// or `ResourceName`) equals `value`: a range of its ordered index.
    pub(crate) fn key_rows(&self, key: OrderKey, value: &str) -> RoaringBitmap {
        if !self.cols.may_hold(key, value) {
            return RoaringBitmap::new();
        }
        let cmp = |row: u32| self.cols.cmp_key_text(key, row as usize, value);
        let seq = self.idx.order(key);
        let start = seq.lower_bound(|&row| cmp(row));
        seq.iter_from(start)
            .take_while(|&&row| cmp(row) == Ordering::Equal)
            .copied()
            .collect()
    }

    /// The value codes of `field` whose value may contain `pattern`:
    /// those holding every trigram of it, a superset to be verified; `None`
    /// when the pattern is shorter than three bytes and every value may.
    /// Cheap: an intersection of the trigrams' code sets.
    pub(crate) fn text_superset(&self, field: TextField, pattern: &str) -> Option<RoaringBitmap> {
        self.idx.substrings[field as usize].candidates(pattern)
    }

    /// The number of distinct values of `field`: what a superset of `None`
    /// stands for.
    pub(crate) fn text_values(&self, field: TextField) -> u64 {
        self.cols.text_column(field).dict.len() as u64
    }

    /// The value of `field` with dictionary code `code`; `None` for null.
    #[inline]
    pub(crate) fn text_value(&self, field: TextField, code: u32) -> Option<&str> {
        self.cols.text_column(field).dict.value_opt(code)
    }

    /// The codes of `superset` (every value for `None`) whose value
    /// `finder` finds its pattern in.
    pub(crate) fn text_verify(
        &self,
        field: TextField,
        finder: &memmem::Finder<'_>,
        superset: Option<&RoaringBitmap>,
    ) -> RoaringBitmap {
        let dict = &self.cols.text_column(field).dict;
        let holds = |v: &str| finder.find(v.as_bytes()).is_some();
        // Both walk the codes in ascending order.
        match superset {
            Some(codes) => RoaringBitmap::from_sorted_iter(
                codes
                    .iter()
                    .filter(|&c| dict.value_opt(c).is_some_and(holds)),
            ),
            None => RoaringBitmap::from_sorted_iter(
                dict.iter().filter(|(_, v)| holds(v)).map(|(c, _)| c),
            ),
        }
        .unwrap_or_default()
    }

    /// The distinct values of `field` that contain `pattern` (bytes,
    /// case-sensitive): the trigram index narrows the values (all of them
    /// for patterns under three bytes) and each candidate is verified. Also
    /// counts their rows exactly, from the dictionary's reference counts.
    #[cfg(test)]
    pub(crate) fn text_match(&self, field: TextField, pattern: &str) -> TextMatch {
        let superset = self.text_superset(field, pattern);
        self.text_match_in(field, &memmem::Finder::new(pattern), superset.as_ref())
    }

    /// [`Store::text_match`] from the pattern's finder and its superset
    /// ([`Store::text_superset`]).
    pub(crate) fn text_match_in(
        &self,
        field: TextField,
        finder: &memmem::Finder<'_>,
        superset: Option<&RoaringBitmap>,
    ) -> TextMatch {
        let codes = self.text_verify(field, finder, superset);
        let dict = &self.cols.text_column(field).dict;
        let rows = codes.iter().map(|c| u64::from(dict.refs(c))).sum();
        TextMatch { codes, rows }
    }

    /// The rows holding any of these value codes: each value's rows are a
    /// range of the field's ordered index.
    pub(crate) fn text_rows(&self, field: TextField, codes: &RoaringBitmap) -> RoaringBitmap {
        let col = self.cols.text_column(field);
        let mut rows = RoaringBitmap::new();
        for code in codes {
            rows |= self.key_rows(field.order_key(), col.dict.value(code));
        }
        rows
    }

    /// The value code of `field` at a row.
    #[inline]
    pub(crate) fn text_code(&self, field: TextField, row: u32) -> u32 {
        self.cols.text_column(field).code(row as usize)
    }

    /// Rows whose `field` contains `pattern`.
    #[cfg(test)]
    pub(crate) fn contains_rows(&self, field: TextField, pattern: &str) -> RoaringBitmap {
        self.text_rows(field, &self.text_match(field, pattern).codes)
    }

    /// The live rows with `created_at` in `[from, to]`, as disjoint parts:
    /// the days it covers whole straight from the day index, and the edge
    /// days it covers in part checked row by row. Kept apart so that a count
    /// can sum per-day intersections instead of building the union.
    /// Visits at most as many days as the index holds.
    pub(crate) fn created_in<'a>(&'a self, from: i64, to: i64) -> Vec<Cow<'a, RoaringBitmap>> {
        let mut parts = Vec::new();
        if from > to {
            return parts;
        }
        let (first, last) = (day_of(from), day_of(to));
        let days = &self.idx.derived.created_at;
        let mut take = |day: i64, bitmap: &'a RoaringBitmap| {
            // A day the range covers whole (the days between the edges,
            // and an edge the range starts or ends exactly with) is the
            // index's bitmap as it is.
            let (starts, ends) = (
                day.saturating_mul(DAY_MICROS),
                (day + 1).saturating_mul(DAY_MICROS),
            );
            if from <= starts && ends.saturating_sub(1) <= to {
                parts.push(Cow::Borrowed(bitmap));
            } else {
                let mut edge = AscendingRows::default();
                for row in bitmap
                    .iter()
                    .filter(|&r| (from..=to).contains(&self.created_at_of(r)))
                {
                    edge.push(row);
                }
                let edge = edge.finish();
                if !edge.is_empty() {
                    parts.push(Cow::Owned(edge));
                }
            }
        };
        let span = u64::try_from(last - first)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        if span <= days.len() as u64 {
            for day in first..=last {
                if let Some(bitmap) = days.get(day) {
                    take(day, bitmap);
                }
            }
        } else {
            for (day, bitmap) in days.iter().filter(|(d, _)| (first..=last).contains(d)) {
                take(day, bitmap);
            }
        }
        parts
    }

    /// The live rows in the order of `key` then `created_at` then `id`, all
    /// ascending, or all descending when `desc`; starting strictly after
    /// the position `after` when given (the marker's, from this store or
    /// another).
    pub(crate) fn walk(
        &self,
        key: OrderKey,
        desc: bool,
        after: Option<&Position>,
    ) -> Box<dyn Iterator<Item = u32> + '_> {
        let seq = self.idx.order(key);
        let c = &self.cols;
        match (desc, after) {
            (false, None) => Box::new(seq.iter().copied()),
            (true, None) => Box::new(seq.iter_rev_before(seq.end()).copied()),
            (false, Some(at)) => Box::new(
                seq.iter_from(seq.upper_bound(|&e| c.cmp_rows_at(key, e as usize, at)))
                    .copied(),
            ),
            (true, Some(at)) => Box::new(
                seq.iter_rev_before(seq.lower_bound(|&e| c.cmp_rows_at(key, e as usize, at)))
                    .copied(),
            ),
        }
    }

    /// The day index of an ordered key and the column it is derived from:
    /// the three timestamps a list sorts by have one.
    fn day_index(&self, key: OrderKey) -> Option<(&DayIndex, &TimeColumn)> {
        let (i, c) = (&self.idx.derived, &self.cols);
        match key {
            OrderKey::CreatedAt => Some((&i.created_at, &c.created_at)),
            OrderKey::UpdatedAt => Some((&i.updated_at, &c.updated_at)),
            OrderKey::ProtectedAt => Some((&i.protected_at, &c.protected_at)),
            _ => None,
        }
    }

    /// The number of days holding live rows in `key`'s day index (0 for a
    /// key without one).
    pub(crate) fn days_held(&self, key: OrderKey) -> usize {
        self.day_index(key).map_or(0, |(index, _)| index.len())
    }

    /// The days of `key`'s day index (UTC days of its timestamp; a null
    /// `protected_at` in a day of its own before every other) with their
    /// rows, in the order of a walk of `key`'s ordered index (newest first
    /// when `desc`), from `from`'s day on when given (the marker's); `None`
    /// for a key without a day index. Days partition that order: every row
    /// of a day comes before every row of the next, and rows of equal key
    /// share a day, so a page is the concatenation of its days' first
    /// rows and only the days it reaches are touched.
    pub(crate) fn days_in_order(
        &self,
        key: OrderKey,
        desc: bool,
        from: Option<&Position>,
    ) -> Option<impl Iterator<Item = (i64, &RoaringBitmap)> + '_> {
        let (index, column) = self.day_index(key)?;
        let seq = self.idx.order(key);
        let day_at = |row: &u32| day_of(column.micros(*row as usize));
        let null_day = day_of(NULL_TIME);
        // The span of the dated rows (after the nulls, which come first).
        let dated = seq.upper_bound(|&e| column.micros(e as usize).cmp(&NULL_TIME));
        let oldest = seq.iter_from(dated).next().map(day_at);
        let newest = seq.iter_rev_before(seq.end()).next().map(day_at);
        let start = from.and_then(|at| at.micros(key)).map(day_of);
        let after_start = move |d: i64| start.is_none_or(|s| if desc { d <= s } else { d >= s });
        // Dated days stepped through where they are dense, sorted where
        // the span between the oldest and the newest is mostly empty.
        let dated_days: Box<dyn Iterator<Item = i64>> = match (oldest, newest) {
            (Some(oldest), Some(newest)) if oldest <= newest => {
                let span = u64::try_from(newest - oldest).unwrap_or(u64::MAX);
                if span <= 2 * index.len() as u64 {
                    if desc {
                        Box::new((oldest..=newest).rev().filter(move |&d| after_start(d)))
                    } else {
                        Box::new((oldest..=newest).filter(move |&d| after_start(d)))
                    }
                } else {
                    let mut held: Vec<i64> = index
                        .iter()
                        .map(|(d, _)| d)
                        .filter(|&d| d != null_day && after_start(d))
                        .collect();
                    held.sort_unstable();
                    if desc {
                        held.reverse();
                    }
                    Box::new(held.into_iter())
                }
            }
            _ => Box::new(std::iter::empty()),
        };
        let nulls = std::iter::once(null_day).filter(move |&d| after_start(d));
        let days: Box<dyn Iterator<Item = i64>> = if desc {
            Box::new(dated_days.filter(move |&d| d != null_day).chain(nulls))
        } else {
            Box::new(nulls.chain(dated_days.filter(move |&d| d != null_day)))
        };
        Some(days.filter_map(move |d| index.get(d).map(|rows| (d, rows))))
    }

    /// Whether `key`'s rows can be keyed by integers for the cost of a page
    /// (every key but names, whose ranks need the dictionary sorted).
    pub(crate) fn keys_cheaply(&self, key: OrderKey) -> bool {
        self.cols.ranks_cheaply(key)
    }

    /// The first `k` of `rows` (distinct live rows) in the order of `key`'s
    /// ordered index (`key`, `created_at`, `id`), or its reverse, in that
    /// order, by integer keys computed once a row. Cheap where
    /// [`Store::keys_cheaply`].
    pub(crate) fn first_in_order(
        &self,
        key: OrderKey,
        rows: Vec<u32>,
        k: usize,
        desc: bool,
    ) -> Vec<u32> {
        self.cols.first_k(key, rows, k, desc)
    }

    /// Compares two rows by one ordered-index key alone.
    #[inline]
    pub(crate) fn cmp_key(&self, key: OrderKey, a: u32, b: u32) -> Ordering {
        self.cols.cmp_key(key, a as usize, b as usize)
    }

    /// Compares a row with a position by one ordered-index key alone.
    #[inline]
    pub(crate) fn cmp_key_at(&self, key: OrderKey, row: u32, at: &Position) -> Ordering {
        self.cols.cmp_key_at(key, row as usize, at)
    }

    /// Like [`Store::walk`] after the position `at`, but starting at the
    /// first row (in the walk's direction) whose `key` equals `at`'s: the
    /// start of the marker's group, for orders that re-sort within groups.
    pub(crate) fn walk_from_group(
        &self,
        key: OrderKey,
        desc: bool,
        at: &Position,
    ) -> Box<dyn Iterator<Item = u32> + '_> {
        let seq = self.idx.order(key);
        let c = &self.cols;
        let probe = |&e: &u32| c.cmp_key_at(key, e as usize, at);
        if desc {
            Box::new(seq.iter_rev_before(seq.upper_bound(probe)).copied())
        } else {
            Box::new(seq.iter_from(seq.lower_bound(probe)).copied())
        }
    }

    /// The fields of a live row, borrowed, for rendering.
    #[inline]
    pub(crate) fn view(&self, row: u32) -> RowView<'_> {
        self.cols.view(row as usize)
    }

    /// Whether a live row's stored `extend_info` has one of the keys v1
    /// sets itself.
    #[inline]
    pub(crate) fn v1_keys_overlap(&self, row: u32) -> bool {
        self.idx.derived.extend_info.rows.contains(row)
    }

    /// The id of a live row.
    #[cfg(test)]
    pub(crate) fn id_of(&self, row: u32) -> String {
        self.cols.id.id(row as usize).to_string()
    }
}
