//! Access paths: what the indexes answer, as row sets and ordered walks.
//! The query layer composes these; the property tests check each against a
//! scan of the oracle.

use std::net::IpAddr;
use std::sync::LazyLock;

use roaring::RoaringBitmap;

use super::{DictColumn, OrderKey, Store};
use crate::index::{BitmapIndex, SortedSeq, TrigramIndex};
use crate::record::{ImageType, MemberStatus, Status};

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

    /// Rows whose `field` contains `pattern` (bytes, case-sensitive): the
    /// trigram index narrows the distinct values (all of them for patterns
    /// under three bytes), each candidate value is verified, and a matching
    /// value's rows come from its ordered index.
    pub(crate) fn contains_rows(&self, field: TextField, pattern: &str) -> RoaringBitmap {
        let (col, grams, key): (&DictColumn, &TrigramIndex, OrderKey) = match field {
            TextField::Name => (&self.cols.name, &self.idx.name_grams, OrderKey::Name),
            TextField::ResourceName => (
                &self.cols.resource_name,
                &self.idx.resource_name_grams,
                OrderKey::ResourceName,
            ),
        };
        let values: Vec<&str> = match grams.candidates(pattern) {
            Some(codes) => codes
                .iter()
                .map(|c| col.dict.value(c))
                .filter(|v| v.contains(pattern))
                .collect(),
            None => col
                .dict
                .iter()
                .map(|(_, v)| v)
                .filter(|v| v.contains(pattern))
                .collect(),
        };
        let mut rows = RoaringBitmap::new();
        for v in values {
            rows |= self.key_rows(key, v);
        }
        rows
    }

    /// Rows whose `created_at` lies in `[from, to]` (microseconds, both
    /// inclusive): a range of the `created_at` index.
    pub(crate) fn created_between(&self, from: i64, to: i64) -> RoaringBitmap {
        let seq = self.idx.order(OrderKey::CreatedAt);
        let at = |row: u32| *self.cols.created_at.get(row as usize);
        let start = seq.lower_bound(|&row| at(row).cmp(&from));
        seq.iter_from(start)
            .take_while(|&&row| at(row) <= to)
            .copied()
            .collect()
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

    /// The id of a live row.
    pub(crate) fn id_of(&self, row: u32) -> &str {
        self.cols.id.str(row as usize)
    }
}
