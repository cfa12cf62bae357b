//! Access paths: what the indexes answer, as row sets and ordered walks.
//! The query layer composes these; the property tests check each against a
//! scan of the oracle.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::net::IpAddr;
use std::sync::LazyLock;

use roaring::RoaringBitmap;

use super::{DictColumn, OrderKey, Store};
use crate::api::View;
use crate::index::{BitmapIndex, SortedSeq, TrigramIndex};
use crate::query::{Direction, SortKey};
use crate::record::{ImageType, MemberStatus, Status};
use crate::timestamp::Timestamp;

/// A string field with a bitmap per value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EqField {
    Project,
    EnterpriseProject,
    ResourceType,
    ResourceAz,
    Policy,
    Vault,
}

/// A field searched by substring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextField {
    Name,
    ResourceName,
}

/// The values of a text field that contain a pattern.
pub(crate) struct TextMatch {
    /// Their dictionary codes.
    pub(crate) codes: RoaringBitmap,
    /// How many rows hold them.
    pub(crate) rows: u64,
}

static EMPTY: LazyLock<RoaringBitmap> = LazyLock::new(RoaringBitmap::new);

impl Store {
    fn eq_parts(&self, field: EqField) -> (&DictColumn, &BitmapIndex) {
        let (c, x) = (&self.cols, &self.idx);
        match field {
            EqField::Project => (&c.project, &x.project),
            EqField::EnterpriseProject => (&c.ep, &x.ep),
            EqField::ResourceType => (&c.resource_type, &x.resource_type),
            EqField::ResourceAz => (&c.resource_az, &x.resource_az),
            EqField::Policy => (&c.policy, &x.policy),
            EqField::Vault => (&c.vault, &x.vault),
        }
    }

    /// Every live row.
    pub(crate) fn live_rows(&self) -> &RoaringBitmap {
        &self.live
    }

    /// `created_at` of a row, in microseconds.
    #[inline]
    pub(crate) fn created_at_of(&self, row: u32) -> i64 {
        *self.cols.created_at.get(row as usize)
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

    /// Rows whose `field` equals `value` (a null never equals).
    pub(crate) fn eq_rows(&self, field: EqField, value: &str) -> &RoaringBitmap {
        let (col, index) = self.eq_parts(field);
        col.dict
            .code(value)
            .and_then(|code| index.get(code))
            .unwrap_or(&*EMPTY)
    }

    /// Every value of `field` with its rows, for facets.
    pub(crate) fn eq_values(
        &self,
        field: EqField,
    ) -> impl Iterator<Item = (&str, &RoaringBitmap)> + '_ {
        let (col, index) = self.eq_parts(field);
        index
            .iter()
            .map(|(code, rows)| (col.dict.value(code), rows))
    }

    pub(crate) fn status_rows(&self, status: Status) -> &RoaringBitmap {
        self.idx.status.get(status as u32).unwrap_or(&*EMPTY)
    }

    pub(crate) fn image_type_rows(&self, image_type: ImageType) -> &RoaringBitmap {
        self.idx
            .image_type
            .get(image_type as u32)
            .unwrap_or(&*EMPTY)
    }

    pub(crate) fn dec_rows(&self, dec: bool) -> &RoaringBitmap {
        self.idx.dec.get(u32::from(dec)).unwrap_or(&*EMPTY)
    }

    /// Rows shared to project `dest`, with that member status when given.
    pub(crate) fn shared_rows(&self, dest: &str, status: Option<MemberStatus>) -> &RoaringBitmap {
        let sharing = &self.idx.sharing;
        let index = status.map_or(&sharing.to, |s| &sharing.to_status[s as usize]);
        self.cols
            .dests
            .code(dest)
            .and_then(|code| index.get(code))
            .unwrap_or(&*EMPTY)
    }

    /// The number of sharing entries (members) of `rows`: one per backup
    /// and destination, counted from bitmap cardinalities alone.
    pub(crate) fn sharing_entries(&self, rows: &RoaringBitmap) -> u64 {
        self.idx
            .sharing
            .at_least
            .iter()
            .map(|b| b.intersection_len(rows))
            .sum()
    }

    /// Rows holding `ip` in `backup_data.private_ip` or `eip`.
    pub(crate) fn ip_rows(&self, ip: IpAddr) -> RoaringBitmap {
        self.idx.ips.rows(ip)
    }

    /// The ordered index of `key` and the dictionary column behind it, if
    /// the key is dictionary-encoded.
    fn keyed(&self, key: OrderKey) -> (&SortedSeq<u32>, Option<&DictColumn>) {
        let c = &self.cols;
        let dict = match key {
            OrderKey::Name => Some(&c.name),
            OrderKey::ResourceId => Some(&c.resource_id),
            OrderKey::ResourceName => Some(&c.resource_name),
            _ => None,
        };
        (self.idx.order(key), dict)
    }

    /// The text of a string key at `row`.
    fn key_text(&self, key: OrderKey, row: u32) -> &str {
        let (c, i) = (&self.cols, row as usize);
        match key {
            OrderKey::Id => c.id.str(i),
            OrderKey::CheckpointId => c.checkpoint_id.str(i),
            OrderKey::Name => c.name.str(i),
            OrderKey::ResourceId => c.resource_id.str(i),
            OrderKey::ResourceName => c.resource_name.str(i),
            // Not string keys; no caller asks for them.
            _ => "",
        }
    }

    /// Rows whose string `key` (`Id`, `CheckpointId`, `Name`, `ResourceId`
    /// or `ResourceName`) equals `value`: a range of its ordered index.
    pub(crate) fn key_rows(&self, key: OrderKey, value: &str) -> RoaringBitmap {
        let (seq, dict) = self.keyed(key);
        if dict.is_some_and(|d| d.dict.code(value).is_none()) {
            return RoaringBitmap::new();
        }
        let probe = |&row: &u32| self.key_text(key, row).as_bytes().cmp(value.as_bytes());
        let start = seq.lower_bound(probe);
        seq.iter_from(start)
            .take_while(|&&row| self.key_text(key, row) == value)
            .copied()
            .collect()
    }

    fn text_parts(&self, field: TextField) -> (&DictColumn, &TrigramIndex, OrderKey) {
        match field {
            TextField::Name => (&self.cols.name, &self.idx.name_grams, OrderKey::Name),
            TextField::ResourceName => (
                &self.cols.resource_name,
                &self.idx.resource_name_grams,
                OrderKey::ResourceName,
            ),
        }
    }

    /// The distinct values of `field` that contain `pattern` (bytes,
    /// case-sensitive): the trigram index narrows the values (all of them
    /// for patterns under three bytes) and each candidate is verified. Also
    /// counts their rows exactly, from the dictionary's reference counts.
    pub(crate) fn text_match(&self, field: TextField, pattern: &str) -> TextMatch {
        let (col, grams, _) = self.text_parts(field);
        let codes: RoaringBitmap = match grams.candidates(pattern) {
            Some(codes) => codes
                .iter()
                .filter(|&c| col.dict.value(c).contains(pattern))
                .collect(),
            None => col
                .dict
                .iter()
                .filter(|(_, v)| v.contains(pattern))
                .map(|(c, _)| c)
                .collect(),
        };
        let rows = codes.iter().map(|c| u64::from(col.dict.refs(c))).sum();
        TextMatch { codes, rows }
    }

    /// The rows holding any of these value codes: each value's rows are a
    /// range of the field's ordered index.
    pub(crate) fn text_rows(&self, field: TextField, codes: &RoaringBitmap) -> RoaringBitmap {
        let (col, _, key) = self.text_parts(field);
        let mut rows = RoaringBitmap::new();
        for code in codes {
            rows |= self.key_rows(key, col.dict.value(code));
        }
        rows
    }

    /// The value code of `field` at a row.
    #[inline]
    pub(crate) fn text_code(&self, field: TextField, row: u32) -> u32 {
        self.text_parts(field).0.code(row as usize)
    }

    /// Rows whose `field` contains `pattern`.
    pub(crate) fn contains_rows(&self, field: TextField, pattern: &str) -> RoaringBitmap {
        self.text_rows(field, &self.text_match(field, pattern).codes)
    }

    /// The live rows with `created_at` in `[from, to]`, as disjoint parts:
    /// the whole days between the edges straight from the day index, and
    /// the two edge days checked row by row. Kept apart so that a count
    /// can sum per-day intersections instead of building the union.
    /// Visits at most as many days as the index holds.
    pub(crate) fn created_in<'a>(&'a self, from: i64, to: i64) -> Vec<Cow<'a, RoaringBitmap>> {
        let mut parts = Vec::new();
        if from > to {
            return parts;
        }
        let (first, last) = (super::day_of(from), super::day_of(to));
        let days = &self.idx.days;
        let mut take = |day: i64, bitmap: &'a RoaringBitmap| {
            if day > first && day < last {
                parts.push(Cow::Borrowed(bitmap));
            } else {
                let edge: RoaringBitmap = bitmap
                    .iter()
                    .filter(|&r| (from..=to).contains(&self.created_at_of(r)))
                    .collect();
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
                if let Some(bitmap) = days.get(&day) {
                    take(day, bitmap);
                }
            }
        } else {
            for (&day, bitmap) in days.iter().filter(|(d, _)| (first..=last).contains(*d)) {
                take(day, bitmap);
            }
        }
        parts
    }

    /// The live rows in the order of `key` then `created_at` then `id`, all
    /// ascending, or all descending when `desc`; starting strictly after
    /// the live row `after` when given (the marker).
    pub(crate) fn walk(
        &self,
        key: OrderKey,
        desc: bool,
        after: Option<u32>,
    ) -> Box<dyn Iterator<Item = u32> + '_> {
        let seq = self.idx.order(key);
        let c = &self.cols;
        match (desc, after) {
            (false, None) => Box::new(seq.iter().copied()),
            (true, None) => Box::new(seq.iter_rev_before(seq.end()).copied()),
            (false, Some(m)) => Box::new(
                seq.iter_from(seq.upper_bound(|&e| c.cmp_rows(key, e, m)))
                    .copied(),
            ),
            (true, Some(m)) => Box::new(
                seq.iter_rev_before(seq.lower_bound(|&e| c.cmp_rows(key, e, m)))
                    .copied(),
            ),
        }
    }

    /// Compares two rows by a list order (`order_key` of each sort key,
    /// with its direction).
    #[inline]
    pub(crate) fn cmp_order(&self, order: &[(SortKey, Direction)], a: u32, b: u32) -> Ordering {
        for &(key, dir) in order {
            let ord = dir.apply(self.cols.cmp_key(order_key(key), a as usize, b as usize));
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }

    /// Compares two rows by one ordered-index key alone.
    #[inline]
    pub(crate) fn cmp_key(&self, key: OrderKey, a: u32, b: u32) -> Ordering {
        self.cols.cmp_key(key, a as usize, b as usize)
    }

    /// Like [`Store::walk`] after the marker `m`, but starting at the first
    /// row (in the walk's direction) whose `key` equals `m`'s: the start of
    /// the marker's group, for orders that re-sort within groups.
    pub(crate) fn walk_from_group(
        &self,
        key: OrderKey,
        desc: bool,
        m: u32,
    ) -> Box<dyn Iterator<Item = u32> + '_> {
        let seq = self.idx.order(key);
        let c = &self.cols;
        let probe = |&e: &u32| c.cmp_key(key, e as usize, m as usize);
        if desc {
            Box::new(seq.iter_rev_before(seq.upper_bound(probe)).copied())
        } else {
            Box::new(seq.iter_from(seq.lower_bound(probe)).copied())
        }
    }

    /// The fields of a live row, borrowed, for rendering.
    pub(crate) fn view(&self, row: u32) -> View<'_> {
        let (c, i) = (&self.cols, row as usize);
        let time = |col: &super::Chunked<i64>| Timestamp::from_micros(*col.get(i));
        View {
            id: c.id.str(i),
            checkpoint_id: c.checkpoint_id.str(i),
            project_id: c.project.str(i),
            enterprise_project_id: c.ep.str(i),
            name: c.name.str(i),
            description: c.description.str(i),
            status: *c.status.get(i),
            resource_id: c.resource_id.str(i),
            resource_name: c.resource_name.str(i),
            resource_type: c.resource_type.str(i),
            resource_az: c.resource_az.str(i),
            resource_size: *c.resource_size.get(i),
            image_type: *c.image_type.get(i),
            vault_id: c.vault.get(i),
            provider_id: c.provider_id.get(i),
            parent_id: c.parent_id.get(i),
            dec: *c.dec.get(i),
            created_at: time(&c.created_at).unwrap_or(Timestamp::MIN),
            updated_at: time(&c.updated_at).unwrap_or(Timestamp::MIN),
            protected_at: time(&c.protected_at),
            expired_at: time(&c.expired_at),
            extend_info: Cow::Borrowed(c.extend_info.str(i)),
            backup_data: Cow::Borrowed(c.backup_data.str(i)),
            replication_records: Cow::Borrowed(c.replication_records.str(i)),
            children: Cow::Borrowed(c.children.str(i)),
            extend_overlaps: self.idx.extend_overlap.contains(row),
        }
    }

    /// The id of a live row.
    pub(crate) fn id_of(&self, row: u32) -> &str {
        self.cols.id.str(row as usize)
    }
}

/// The ordered index that serves a sort key.
pub(crate) fn order_key(key: SortKey) -> OrderKey {
    match key {
        SortKey::CreatedAt => OrderKey::CreatedAt,
        SortKey::UpdatedAt => OrderKey::UpdatedAt,
        SortKey::Name => OrderKey::Name,
        SortKey::Status => OrderKey::Status,
        SortKey::ProtectedAt => OrderKey::ProtectedAt,
        SortKey::Id => OrderKey::Id,
    }
}
