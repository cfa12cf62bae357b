//! The columnar store: one column per field, the indexes over them, and the
//! atomic batch changes of SEMANTICS §7.
//!
//! # Layout
//!
//! A record lives in a row (`u32`). Low-cardinality and repeated strings
//! are dictionary-encoded ([`DictColumn`]); unique strings (`id`,
//! `checkpoint_id`, ...) are kept per chunk in one buffer ([`StrColumn`]);
//! timestamps are `i64` microseconds, with `i64::MIN` for null so that a
//! null sorts before every timestamp. The opaque objects are kept as the
//! JSON text they serialize to, validated once at ingestion, never
//! re-parsed to answer a filter.
//!
//! # Indexes
//!
//! * a roaring bitmap of rows per value of `status`, `resource_type`,
//!   `resource_az`, `policy_id`, `project_id`, `enterprise_project_id`,
//!   `image_type`, `dec` and `vault_id`;
//! * sharing: rows per destination project, per (destination, member
//!   status), and by number of members;
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
//! changes nothing; then each record is removed from every index (using the
//! old column values), written, and indexed again. A large batch into a
//! small store skips the per-row ordered-index inserts and sorts once.
//! Every structure is copy-on-write: cloning a store is cheap, and the clone
//! shares everything until one side writes (see [`crate::Engine`]).

// The access paths are the query layer's building blocks; until it lands
// they are exercised by the property tests alone.
#[cfg_attr(not(test), allow(dead_code))]
mod access;
mod column;
mod dict;
#[cfg(test)]
pub(crate) mod proptests;
mod validate;

use std::cmp::Ordering;
use std::net::IpAddr;

use roaring::RoaringBitmap;
use serde_json::{Map, Value};

#[cfg_attr(not(test), allow(unused_imports))]
pub(crate) use access::{order_key, EqField, TextField};
pub(crate) use column::{Chunked, Sparse, StrColumn, MAX_TEXT_BYTES};
pub(crate) use dict::{Dict, DictColumn, NULL_CODE};

use crate::error::ChangeError;
use crate::index::{BitmapIndex, CowMap, IpIndex, SharingIndex, SortedSeq, TrigramIndex};
use crate::record::{ImageType, Member, MemberStatus, Record, Status};
use crate::timestamp::Timestamp;
use crate::{batch, parallel};

/// `protected_at`/`expired_at` null: below every real timestamp.
pub(crate) const NULL_TIME: i64 = i64::MIN;

/// The most rows a store holds (row ids are `u32`).
pub const MAX_RECORDS: u64 = u32::MAX as u64;

/// A batch at least this large, and at least as large as the store, builds
/// the ordered indexes by sorting once instead of inserting row by row.
const BULK_MIN: usize = 4096;

/// The keys of the ordered indexes. Each orders the live rows by the key,
/// then `created_at`, then `id` (bytes), all ascending; `id` alone is
/// already total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderKey {
    Id,
    CreatedAt,
    UpdatedAt,
    ProtectedAt,
    Name,
    Status,
    ResourceId,
    ResourceName,
    CheckpointId,
}

impl OrderKey {
    pub(crate) const ALL: [OrderKey; 9] = [
        OrderKey::Id,
        OrderKey::CreatedAt,
        OrderKey::UpdatedAt,
        OrderKey::ProtectedAt,
        OrderKey::Name,
        OrderKey::Status,
        OrderKey::ResourceId,
        OrderKey::ResourceName,
        OrderKey::CheckpointId,
    ];
}

/// Every column, and the dictionaries they are encoded with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Columns {
    pub(crate) id: StrColumn,
    pub(crate) checkpoint_id: StrColumn,
    pub(crate) project: DictColumn,
    pub(crate) ep: DictColumn,
    pub(crate) name: DictColumn,
    pub(crate) description: DictColumn,
    pub(crate) status: Chunked<Status>,
    pub(crate) resource_id: DictColumn,
    pub(crate) resource_name: DictColumn,
    pub(crate) resource_type: DictColumn,
    pub(crate) resource_az: DictColumn,
    pub(crate) resource_size: Chunked<u64>,
    pub(crate) image_type: Chunked<ImageType>,
    pub(crate) policy: DictColumn,
    pub(crate) vault: DictColumn,
    pub(crate) provider_id: DictColumn,
    pub(crate) parent_id: DictColumn,
    pub(crate) dec: Chunked<bool>,
    pub(crate) created_at: Chunked<i64>,
    pub(crate) updated_at: Chunked<i64>,
    pub(crate) protected_at: Chunked<i64>,
    pub(crate) expired_at: Chunked<i64>,
    /// `(code in `dests`, status)` per member.
    pub(crate) members: Sparse<Box<[(u32, MemberStatus)]>>,
    /// The destination projects of `members`, one reference per member.
    pub(crate) dests: Dict,
    pub(crate) extend_info: StrColumn,
    pub(crate) backup_data: StrColumn,
    pub(crate) replication_records: StrColumn,
    pub(crate) children: StrColumn,
}

impl Columns {
    fn rows(&self) -> usize {
        self.created_at.len()
    }

    fn push_empty_row(&mut self) {
        for c in [
            &mut self.id,
            &mut self.checkpoint_id,
            &mut self.extend_info,
            &mut self.backup_data,
            &mut self.replication_records,
            &mut self.children,
        ] {
            c.push(None);
        }
        for c in [
            &mut self.project,
            &mut self.ep,
            &mut self.name,
            &mut self.resource_id,
            &mut self.resource_name,
            &mut self.resource_type,
            &mut self.resource_az,
            &mut self.policy,
            &mut self.vault,
            &mut self.description,
            &mut self.provider_id,
            &mut self.parent_id,
        ] {
            c.push_null();
        }
        self.status.push(Status::Available);
        self.resource_size.push(0);
        self.image_type.push(ImageType::Backup);
        self.dec.push(false);
        for c in [
            &mut self.created_at,
            &mut self.updated_at,
            &mut self.protected_at,
            &mut self.expired_at,
        ] {
            c.push(NULL_TIME);
        }
    }

    /// A row's members: `(destination code, status)`.
    #[inline]
    pub(crate) fn members_of(&self, row: usize) -> &[(u32, MemberStatus)] {
        self.members.get(row).map_or(&[], |m| m)
    }

    /// Compares two rows by `key` alone.
    #[inline]
    pub(crate) fn cmp_key(&self, key: OrderKey, a: usize, b: usize) -> Ordering {
        fn by_dict(c: &DictColumn, a: usize, b: usize) -> Ordering {
            let (ca, cb) = (c.code(a), c.code(b));
            if ca == cb {
                Ordering::Equal
            } else {
                c.str(a).as_bytes().cmp(c.str(b).as_bytes())
            }
        }
        match key {
            OrderKey::Id => self.id.str(a).as_bytes().cmp(self.id.str(b).as_bytes()),
            OrderKey::CreatedAt => self.created_at.get(a).cmp(self.created_at.get(b)),
            OrderKey::UpdatedAt => self.updated_at.get(a).cmp(self.updated_at.get(b)),
            OrderKey::ProtectedAt => self.protected_at.get(a).cmp(self.protected_at.get(b)),
            OrderKey::Name => by_dict(&self.name, a, b),
            OrderKey::Status => self.status.get(a).cmp(self.status.get(b)),
            OrderKey::ResourceId => by_dict(&self.resource_id, a, b),
            OrderKey::ResourceName => by_dict(&self.resource_name, a, b),
            OrderKey::CheckpointId => self
                .checkpoint_id
                .str(a)
                .as_bytes()
                .cmp(self.checkpoint_id.str(b).as_bytes()),
        }
    }

    /// The total order of an ordered index: `key`, then `created_at`, then
    /// `id`.
    #[inline]
    pub(crate) fn cmp_rows(&self, key: OrderKey, a: u32, b: u32) -> Ordering {
        let (a, b) = (a as usize, b as usize);
        let mut ord = self.cmp_key(key, a, b);
        for tie in [OrderKey::CreatedAt, OrderKey::Id] {
            if ord != Ordering::Equal || key == OrderKey::Id {
                break;
            }
            ord = self.cmp_key(tie, a, b);
        }
        ord
    }

    /// The record held by a live row.
    pub(crate) fn record(&self, row: usize) -> Record {
        fn opaque<T: serde::de::DeserializeOwned + Default>(c: &StrColumn, row: usize) -> T {
            serde_json::from_str(c.str(row)).unwrap_or_default()
        }
        let time = |c: &Chunked<i64>| Timestamp::from_micros(*c.get(row));
        let owned = |s: Option<&str>| s.map(str::to_owned);
        Record {
            id: self.id.str(row).to_owned(),
            checkpoint_id: self.checkpoint_id.str(row).to_owned(),
            project_id: self.project.str(row).to_owned(),
            enterprise_project_id: self.ep.str(row).to_owned(),
            name: self.name.str(row).to_owned(),
            description: self.description.str(row).to_owned(),
            status: *self.status.get(row),
            resource_id: self.resource_id.str(row).to_owned(),
            resource_name: self.resource_name.str(row).to_owned(),
            resource_type: self.resource_type.str(row).to_owned(),
            resource_az: self.resource_az.str(row).to_owned(),
            resource_size: *self.resource_size.get(row),
            image_type: *self.image_type.get(row),
            policy_id: owned(self.policy.get(row)),
            vault_id: owned(self.vault.get(row)),
            provider_id: owned(self.provider_id.get(row)),
            parent_id: owned(self.parent_id.get(row)),
            dec: *self.dec.get(row),
            created_at: time(&self.created_at).unwrap_or(Timestamp::MIN),
            updated_at: time(&self.updated_at).unwrap_or(Timestamp::MIN),
            protected_at: time(&self.protected_at),
            expired_at: time(&self.expired_at),
            extend_info: opaque::<Map<String, Value>>(&self.extend_info, row),
            backup_data: opaque::<Map<String, Value>>(&self.backup_data, row),
            replication_records: opaque::<Vec<Value>>(&self.replication_records, row),
            children: opaque::<Vec<Value>>(&self.children, row),
            members: self
                .members_of(row)
                .iter()
                .map(|&(dest, status)| Member {
                    dest_project_id: self.dests.value(dest).to_owned(),
                    status,
                })
                .collect(),
        }
    }

    /// The addresses the `ip` filter matches for a row.
    fn ips(&self, row: usize) -> Vec<IpAddr> {
        serde_json::from_str::<Map<String, Value>>(self.backup_data.str(row))
            .map(|m| crate::record::ip_addresses(&m))
            .unwrap_or_default()
    }
}

/// Every index over the columns.
#[derive(Debug, Clone, Default)]
pub(crate) struct Indexes {
    pub(crate) status: BitmapIndex,
    pub(crate) image_type: BitmapIndex,
    pub(crate) dec: BitmapIndex,
    pub(crate) project: BitmapIndex,
    pub(crate) ep: BitmapIndex,
    pub(crate) resource_type: BitmapIndex,
    pub(crate) resource_az: BitmapIndex,
    pub(crate) policy: BitmapIndex,
    pub(crate) vault: BitmapIndex,
    pub(crate) sharing: SharingIndex,
    /// One per [`OrderKey`], in `OrderKey::ALL` order.
    pub(crate) orders: [SortedSeq<u32>; OrderKey::ALL.len()],
    pub(crate) name_grams: TrigramIndex,
    pub(crate) resource_name_grams: TrigramIndex,
    pub(crate) ips: IpIndex,
    /// Rows whose stored `extend_info` has one of the keys v1 sets itself
    /// (so v1 must rewrite it rather than append to its text).
    pub(crate) extend_overlap: RoaringBitmap,
    /// Rows by the UTC day of `created_at`, for time ranges.
    pub(crate) days: CowMap<i64, RoaringBitmap>,
}

impl Indexes {
    pub(crate) fn order(&self, key: OrderKey) -> &SortedSeq<u32> {
        &self.orders[key as usize]
    }
}

/// Microseconds in a day.
pub(crate) const DAY_MICROS: i64 = 86_400_000_000;

/// The UTC day (since 1970-01-01) of a timestamp in microseconds.
#[inline]
pub(crate) fn day_of(micros: i64) -> i64 {
    micros.div_euclid(DAY_MICROS)
}

/// A timestamp as an unsigned integer with the same order.
#[inline]
fn time_rank(micros: i64) -> u64 {
    (micros as u64) ^ (1 << 63)
}

/// The rank of each code of a dictionary column in the byte order of the
/// values, so that a sort compares integers instead of strings.
fn dict_ranks(col: &DictColumn) -> Vec<u64> {
    let mut values: Vec<(u32, &str)> = col.dict.iter().collect();
    values.sort_unstable_by(|a, b| a.1.as_bytes().cmp(b.1.as_bytes()));
    let mut ranks = vec![0; col.dict.code_bound()];
    for (rank, (code, _)) in values.into_iter().enumerate() {
        ranks[code as usize] = rank as u64;
    }
    ranks
}

/// The live rows in the order of the ordered index of `key`.
fn sorted_rows(cols: &Columns, live: &RoaringBitmap, key: OrderKey) -> Vec<u32> {
    let c = cols;
    let id = |row: u32| c.id.str(row as usize).as_bytes();
    let primary: Box<dyn Fn(usize) -> u64 + '_> = match key {
        OrderKey::Id | OrderKey::CheckpointId => {
            let mut rows: Vec<u32> = live.iter().collect();
            rows.sort_unstable_by(|&a, &b| c.cmp_rows(key, a, b));
            return rows;
        }
        OrderKey::CreatedAt => Box::new(|_| 0),
        OrderKey::UpdatedAt => Box::new(|i| time_rank(*c.updated_at.get(i))),
        OrderKey::ProtectedAt => Box::new(|i| time_rank(*c.protected_at.get(i))),
        OrderKey::Status => Box::new(|i| *c.status.get(i) as u64),
        OrderKey::Name | OrderKey::ResourceId | OrderKey::ResourceName => {
            let col = match key {
                OrderKey::Name => &c.name,
                OrderKey::ResourceId => &c.resource_id,
                _ => &c.resource_name,
            };
            let ranks = dict_ranks(col);
            Box::new(move |i| ranks.get(col.code(i) as usize).copied().unwrap_or(0))
        }
    };
    let mut keyed: Vec<(u64, u64, u32)> = live
        .iter()
        .map(|row| {
            (
                primary(row as usize),
                time_rank(*c.created_at.get(row as usize)),
                row,
            )
        })
        .collect();
    keyed.sort_unstable_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| id(a.2).cmp(id(b.2)))
    });
    keyed.into_iter().map(|(_, _, row)| row).collect()
}

/// A record checked and serialized, ready to be written.
struct Prepared<'a> {
    record: &'a Record,
    /// `extend_info`, `backup_data`, `replication_records`, `children` as
    /// JSON text.
    payload: [String; 4],
    ips: Vec<IpAddr>,
    /// The row holding this id before the batch, if any.
    existing: Option<u32>,
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

    /// The row holding `id`.
    pub(crate) fn row_of(&self, id: &str) -> Option<u32> {
        let ids = self.idx.order(OrderKey::Id);
        let probe = |&row: &u32| self.cols.id.str(row as usize).as_bytes().cmp(id.as_bytes());
        let pos = ids.lower_bound(probe);
        ids.iter_from(pos)
            .next()
            .copied()
            .filter(|&row| self.cols.id.str(row as usize) == id)
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
        let prepared = self.prepare(records)?;
        let bulk = records.len() >= BULK_MIN && records.len() >= self.len();
        let mut batch_ips = Vec::new();
        let no_orders = [false; OrderKey::ALL.len()];
        let all_orders = [true; OrderKey::ALL.len()];
        for p in &prepared {
            let (row, orders) = match p.existing {
                Some(row) => {
                    let orders = if bulk {
                        no_orders
                    } else {
                        self.moved_orders(row, p.record)
                    };
                    self.unindex(row, orders);
                    (row, orders)
                }
                None => (self.alloc_row(), if bulk { no_orders } else { all_orders }),
            };
            self.write(row, p);
            self.index(row, orders);
            if bulk {
                batch_ips.extend(p.ips.iter().map(|&ip| (ip, row)));
            } else {
                for &ip in &p.ips {
                    self.idx.ips.insert(ip, row);
                }
            }
        }
        if bulk {
            // Rows the batch did not touch keep their addresses.
            let mut touched: RoaringBitmap = batch_ips.iter().map(|&(_, row)| row).collect();
            touched.extend(prepared.iter().filter_map(|p| p.existing));
            for row in (&self.live - &touched).iter() {
                batch_ips.extend(self.cols.ips(row as usize).into_iter().map(|ip| (ip, row)));
            }
            self.idx.ips = IpIndex::from_pairs(batch_ips);
            self.rebuild_orders();
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
            self.unindex(row, [true; OrderKey::ALL.len()]);
            self.clear_row(row as usize);
            self.live.remove(row);
            self.free.insert(row);
        }
        Ok(ids.len())
    }

    /// Checks the whole batch and serializes its payloads; writes nothing.
    fn prepare<'a>(&self, records: &'a [Record]) -> Result<Vec<Prepared<'a>>, ChangeError> {
        let checked = batch::check_upsert(records)?;
        let prepared: Vec<Prepared<'a>> = records
            .iter()
            .zip(checked)
            .map(|(record, c)| Prepared {
                record,
                ips: c.ips,
                payload: c.payload,
                existing: self.row_of(&record.id),
            })
            .collect();
        let new_rows = prepared.iter().filter(|p| p.existing.is_none()).count() as u64;
        if self.live.len() + new_rows > MAX_RECORDS {
            return Err(ChangeError::CapacityExceeded { limit: MAX_RECORDS });
        }
        Ok(prepared)
    }

    fn alloc_row(&mut self) -> u32 {
        let row = match self.free.min() {
            Some(row) => {
                self.free.remove(row);
                row
            }
            None => {
                // Bounded by MAX_RECORDS, checked in `prepare`.
                let row = self.cols.rows() as u32;
                self.cols.push_empty_row();
                row
            }
        };
        self.live.insert(row);
        row
    }

    /// Writes a prepared record into a row whose dictionary codes are null.
    fn write(&mut self, row: u32, p: &Prepared<'_>) {
        let (r, i, c) = (p.record, row as usize, &mut self.cols);
        c.id.set(i, Some(&r.id));
        c.checkpoint_id.set(i, Some(&r.checkpoint_id));
        c.description.assign(i, Some(&r.description));
        c.provider_id.assign(i, r.provider_id.as_deref());
        c.parent_id.assign(i, r.parent_id.as_deref());
        for (col, text) in [
            (&mut c.extend_info, &p.payload[0]),
            (&mut c.backup_data, &p.payload[1]),
            (&mut c.replication_records, &p.payload[2]),
            (&mut c.children, &p.payload[3]),
        ] {
            col.set(i, Some(text));
        }
        c.project.assign(i, Some(&r.project_id));
        c.ep.assign(i, Some(&r.enterprise_project_id));
        c.resource_id.assign(i, Some(&r.resource_id));
        c.resource_type.assign(i, Some(&r.resource_type));
        c.resource_az.assign(i, Some(&r.resource_az));
        c.policy.assign(i, r.policy_id.as_deref());
        c.vault.assign(i, r.vault_id.as_deref());
        if let Some(a) = c.name.assign(i, Some(&r.name)).filter(|a| a.is_new) {
            self.idx.name_grams.insert(a.code, &r.name);
        }
        if let Some(a) = c
            .resource_name
            .assign(i, Some(&r.resource_name))
            .filter(|a| a.is_new)
        {
            self.idx
                .resource_name_grams
                .insert(a.code, &r.resource_name);
        }
        c.status.set(i, r.status);
        c.resource_size.set(i, r.resource_size);
        c.image_type.set(i, r.image_type);
        c.dec.set(i, r.dec);
        c.created_at.set(i, r.created_at.as_micros());
        c.updated_at.set(i, r.updated_at.as_micros());
        c.protected_at
            .set(i, r.protected_at.map_or(NULL_TIME, Timestamp::as_micros));
        c.expired_at
            .set(i, r.expired_at.map_or(NULL_TIME, Timestamp::as_micros));
        let members: Box<[(u32, MemberStatus)]> = r
            .members
            .iter()
            .map(|m| (c.dests.acquire(&m.dest_project_id).code, m.status))
            .collect();
        c.members.set(i, (!members.is_empty()).then_some(members));
        if crate::api::render::v1_keys_overlap(&r.extend_info) {
            self.idx.extend_overlap.insert(row);
        }
    }

    /// Adds a freshly written row to every index but the ip index (the
    /// caller feeds it from the prepared addresses); of the ordered
    /// indexes, to those flagged in `orders`.
    fn index(&mut self, row: u32, orders: [bool; OrderKey::ALL.len()]) {
        let (c, x, i) = (&self.cols, &mut self.idx, row as usize);
        x.status.insert(*c.status.get(i) as u32, row);
        x.image_type.insert(*c.image_type.get(i) as u32, row);
        x.dec.insert(u32::from(*c.dec.get(i)), row);
        for (index, col) in [
            (&mut x.project, &c.project),
            (&mut x.ep, &c.ep),
            (&mut x.resource_type, &c.resource_type),
            (&mut x.resource_az, &c.resource_az),
            (&mut x.policy, &c.policy),
            (&mut x.vault, &c.vault),
        ] {
            let code = col.code(i);
            if code != NULL_CODE {
                index.insert(code, row);
            }
        }
        x.sharing.insert(row, c.members_of(i));
        x.days
            .entry_or_insert_with(day_of(*c.created_at.get(i)), RoaringBitmap::new)
            .insert(row);
        for key in OrderKey::ALL.into_iter().filter(|k| orders[*k as usize]) {
            x.orders[key as usize].insert_by(row, |&a, &b| c.cmp_rows(key, a, b));
        }
    }

    /// Removes a row from every index (of the ordered ones, those flagged
    /// in `orders`), reading its current column values; releases its
    /// dictionary codes (the columns hold null codes after).
    fn unindex(&mut self, row: u32, orders: [bool; OrderKey::ALL.len()]) {
        let i = row as usize;
        let (c, x) = (&self.cols, &mut self.idx);
        for key in OrderKey::ALL.into_iter().filter(|k| orders[*k as usize]) {
            x.orders[key as usize].remove_by(|&e| c.cmp_rows(key, e, row));
        }
        for ip in self.cols.ips(i) {
            self.idx.ips.remove(ip, row);
        }
        let (c, x) = (&mut self.cols, &mut self.idx);
        x.status.remove(*c.status.get(i) as u32, row);
        x.image_type.remove(*c.image_type.get(i) as u32, row);
        x.dec.remove(u32::from(*c.dec.get(i)), row);
        x.sharing.remove(row, c.members_of(i));
        x.extend_overlap.remove(row);
        let day = day_of(*c.created_at.get(i));
        if let Some(rows) = x.days.get_mut(&day) {
            rows.remove(row);
            if rows.is_empty() {
                x.days.remove(&day);
            }
        }
        for &(dest, _) in c.members.get(i).map_or(&[][..], |m| &m[..]) {
            c.dests.release(dest);
        }
        c.members.set(i, None);
        for (index, col) in [
            (&mut x.project, &mut c.project),
            (&mut x.ep, &mut c.ep),
            (&mut x.resource_type, &mut c.resource_type),
            (&mut x.resource_az, &mut c.resource_az),
            (&mut x.policy, &mut c.policy),
            (&mut x.vault, &mut c.vault),
        ] {
            index.remove(col.code(i), row);
            col.clear(i);
        }
        for col in [
            &mut c.resource_id,
            &mut c.description,
            &mut c.provider_id,
            &mut c.parent_id,
        ] {
            col.clear(i);
        }
        if let Some((code, text)) = c.name.clear(i) {
            x.name_grams.remove(code, &text);
        }
        if let Some((code, text)) = c.resource_name.clear(i) {
            x.resource_name_grams.remove(code, &text);
        }
    }

    /// Which ordered indexes a replacement moves the row in: those whose
    /// key, or the `created_at` every index breaks ties on, changes. A
    /// status change touches one ordered index instead of nine.
    fn moved_orders(&self, row: u32, r: &Record) -> [bool; OrderKey::ALL.len()] {
        let (c, i) = (&self.cols, row as usize);
        let created_moves = *c.created_at.get(i) != r.created_at.as_micros();
        OrderKey::ALL.map(|key| {
            created_moves
                || match key {
                    // Same id: a replacement keeps it.
                    OrderKey::Id | OrderKey::CreatedAt => false,
                    OrderKey::UpdatedAt => *c.updated_at.get(i) != r.updated_at.as_micros(),
                    OrderKey::ProtectedAt => {
                        *c.protected_at.get(i)
                            != r.protected_at.map_or(NULL_TIME, Timestamp::as_micros)
                    }
                    OrderKey::Name => c.name.str(i) != r.name,
                    OrderKey::Status => *c.status.get(i) != r.status,
                    OrderKey::ResourceId => c.resource_id.str(i) != r.resource_id,
                    OrderKey::ResourceName => c.resource_name.str(i) != r.resource_name,
                    OrderKey::CheckpointId => c.checkpoint_id.str(i) != r.checkpoint_id,
                }
        })
    }

    /// Frees the text of a deleted row.
    fn clear_row(&mut self, i: usize) {
        let c = &mut self.cols;
        for col in [
            &mut c.id,
            &mut c.checkpoint_id,
            &mut c.extend_info,
            &mut c.backup_data,
            &mut c.replication_records,
            &mut c.children,
        ] {
            col.set(i, None);
        }
    }

    /// Builds every ordered index by sorting the live rows, on all cores
    /// (one index at a time per thread, to bound the scratch memory).
    fn rebuild_orders(&mut self) {
        let (cols, live) = (&self.cols, &self.live);
        let built = parallel::jobs(OrderKey::ALL.len(), |k| {
            SortedSeq::from_sorted(sorted_rows(cols, live, OrderKey::ALL[k]))
        });
        for (key, seq) in OrderKey::ALL.into_iter().zip(built) {
            self.idx.orders[key as usize] = seq;
        }
    }

    /// Approximate heap bytes, by part. Chunks shared with other snapshots
    /// are counted in full.
    pub fn memory_usage(&self) -> MemoryUsage {
        let c = &self.cols;
        let x = &self.idx;
        let columns = c.id.heap_bytes()
            + c.checkpoint_id.heap_bytes()
            + [
                &c.project,
                &c.ep,
                &c.name,
                &c.resource_id,
                &c.resource_name,
                &c.resource_type,
                &c.resource_az,
                &c.policy,
                &c.vault,
                &c.description,
                &c.provider_id,
                &c.parent_id,
            ]
            .iter()
            .map(|d| d.heap_bytes())
            .sum::<usize>()
            + c.status.heap_bytes()
            + c.resource_size.heap_bytes()
            + c.image_type.heap_bytes()
            + c.dec.heap_bytes()
            + [&c.created_at, &c.updated_at, &c.protected_at, &c.expired_at]
                .iter()
                .map(|t| t.heap_bytes())
                .sum::<usize>()
            + c.members.heap_bytes()
            + c.members.iter().map(|(_, m)| m.len() * 8).sum::<usize>()
            + c.dests.heap_bytes();
        let payload = [
            &c.extend_info,
            &c.backup_data,
            &c.replication_records,
            &c.children,
        ]
        .iter()
        .map(|s| s.heap_bytes())
        .sum();
        let bitmap_indexes = [
            &x.status,
            &x.image_type,
            &x.dec,
            &x.project,
            &x.ep,
            &x.resource_type,
            &x.resource_az,
            &x.policy,
            &x.vault,
        ]
        .iter()
        .map(|b| b.heap_bytes())
        .sum::<usize>()
            + x.sharing.heap_bytes()
            + crate::index::bitmap_bytes(&self.live)
            + crate::index::bitmap_bytes(&self.free)
            + x.days.heap_bytes()
            + x.days
                .iter()
                .map(|(_, b)| crate::index::bitmap_bytes(b))
                .sum::<usize>();
        let ordered_indexes = x.orders.iter().map(SortedSeq::heap_bytes).sum::<usize>();
        let substring_indexes = x.name_grams.heap_bytes() + x.resource_name_grams.heap_bytes();
        MemoryUsage {
            records: self.len(),
            columns,
            payload,
            bitmap_indexes,
            ordered_indexes,
            substring_indexes,
            ip_index: x.ips.heap_bytes(),
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
