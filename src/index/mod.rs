//! The indexes: which rows hold a value. Values themselves live in the
//! store's columns; every structure here is copy-on-write so that a store
//! clone (one per batch of changes) is cheap.

mod cow_map;
mod persist;
mod sorted;
mod spine;

use std::net::IpAddr;

use roaring::RoaringBitmap;

use crate::record::MemberStatus;

pub(crate) use cow_map::{text_hash, CowMap, CowTable};
pub(crate) use persist::RowBound;
pub(crate) use sorted::SortedSeq;
pub(crate) use spine::{FlatSpine, Spine};

/// Approximate heap bytes of a bitmap: its serialized size (each
/// container's values and a short header), each container's 32-byte entry
/// (key and store) in the bitmap's vector, and the bitmap's own header and
/// `Arc`. Within a few per cent of what the allocator holds (the growth
/// slack of array containers is not visible).
pub(crate) fn bitmap_bytes(b: &RoaringBitmap) -> usize {
    b.serialized_size() + 48 + b.statistics().n_containers as usize * 32
}

/// A copy of a bitmap grown by appends at its exact size: a clone copies
/// each container at its length, leaving the growth slack (up to half of
/// an array container) behind.
fn tight(b: &RoaringBitmap) -> RoaringBitmap {
    b.clone()
}

/// Rows handed over in increasing order, gathered into a bitmap a batch
/// at a time. Roaring's `append` sets each bit in constant time, where
/// `push` first finds the container's greatest value, which in a bitmap
/// container is a scan of up to 1,024 words: that scan was a fifth of a
/// bulk load's instructions.
#[derive(Debug, Default)]
pub(crate) struct AscendingRows {
    rows: RoaringBitmap,
    pending: Vec<u32>,
}

impl AscendingRows {
    /// How many rows wait before they are appended.
    const BATCH: usize = 256;

    /// Adds `row`, greater than every row added before (else it is
    /// inserted all the same, only slower).
    #[inline]
    pub(crate) fn push(&mut self, row: u32) {
        self.pending.push(row);
        if self.pending.len() == Self::BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.rows.append(self.pending.iter().copied()).is_err() {
            // Out of order: whatever `append` stopped at goes in one by one.
            self.rows.extend(self.pending.iter().copied());
        }
        self.pending.clear();
    }

    /// The rows added.
    pub(crate) fn finish(mut self) -> RoaringBitmap {
        self.flush();
        self.rows
    }
}

/// A roaring bitmap of rows per value code (a dictionary code, or an enum's
/// discriminant). Each bitmap is `Arc`ed on its own in a [`Spine`], so a
/// clone copies a pointer per 64 codes and a write copies just the bitmap
/// it touches.
#[derive(Debug, Clone, Default)]
pub(crate) struct BitmapIndex {
    by_code: Spine<RoaringBitmap>,
}

impl BitmapIndex {
    /// From each code's rows (by code).
    pub(crate) fn from_bitmaps(by_code: Vec<RoaringBitmap>) -> BitmapIndex {
        BitmapIndex {
            by_code: by_code.iter().map(tight).collect(),
        }
    }

    pub(crate) fn insert(&mut self, code: u32, row: u32) {
        let i = code as usize;
        self.by_code.grow_to(i + 1, RoaringBitmap::new);
        // Not `try_push`: finding a bitmap container's greatest value
        // costs more than setting the bit (see `AscendingRows`).
        self.by_code.make_mut(i).insert(row);
    }

    /// Adds rows, each greater than every row the index holds (rows
    /// appended at the store's end).
    pub(crate) fn append(&mut self, code: u32, rows: RoaringBitmap) {
        if rows.is_empty() {
            return;
        }
        let i = code as usize;
        self.by_code.grow_to(i + 1, RoaringBitmap::new);
        *self.by_code.make_mut(i) |= rows;
    }

    pub(crate) fn remove(&mut self, code: u32, row: u32) {
        let i = code as usize;
        if self.by_code.get(i).is_some_and(|b| b.contains(row)) {
            self.by_code.make_mut(i).remove(row);
        }
    }

    /// The rows holding `code`; `None` when there are none.
    pub(crate) fn get(&self, code: u32) -> Option<&RoaringBitmap> {
        self.by_code.get(code as usize).filter(|b| !b.is_empty())
    }

    /// Every code with at least one row.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &RoaringBitmap)> + '_ {
        self.by_code
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(c, b)| (c as u32, b))
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.by_code.spine_bytes() + self.by_code.iter().map(bitmap_bytes).sum::<usize>()
    }
}

/// The same codes with the same rows (freed codes' empty bitmaps aside).
impl PartialEq for BitmapIndex {
    fn eq(&self, other: &BitmapIndex) -> bool {
        self.iter().eq(other.iter())
    }
}

/// The distinct byte trigrams of `text`.
fn trigrams(text: &[u8]) -> Vec<u32> {
    let mut grams: Vec<u32> = text
        .windows(3)
        .map(|w| u32::from(w[0]) << 16 | u32::from(w[1]) << 8 | u32::from(w[2]))
        .collect();
    grams.sort_unstable();
    grams.dedup();
    grams
}

/// Substring search over the distinct values of a dictionary-encoded text
/// column: a bitmap of value codes per byte trigram. Indexing values rather
/// than rows keeps it small (names repeat), and the rows of a value are a
/// range of the column's ordered index.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrigramIndex {
    grams: CowMap<u32, RoaringBitmap>,
}

impl TrigramIndex {
    /// The index of every `(code, text)`, its bitmaps at their exact size.
    pub(crate) fn of_values<'a>(values: impl Iterator<Item = (u32, &'a str)>) -> TrigramIndex {
        let mut grown = TrigramIndex::default();
        for (code, text) in values {
            grown.insert(code, text);
        }
        let mut index = TrigramIndex::default();
        for (gram, codes) in grown.grams.iter() {
            index.grams.entry_or_insert_with(*gram, || tight(codes));
        }
        index
    }

    pub(crate) fn insert(&mut self, code: u32, text: &str) {
        for g in trigrams(text.as_bytes()) {
            self.grams
                .entry_or_insert_with(g, RoaringBitmap::new)
                .insert(code);
        }
    }

    pub(crate) fn remove(&mut self, code: u32, text: &str) {
        for g in trigrams(text.as_bytes()) {
            if let Some(codes) = self.grams.get_mut(&g) {
                codes.remove(code);
                if codes.is_empty() {
                    self.grams.remove(&g);
                }
            }
        }
    }

    /// The codes whose value holds every trigram of `pattern` (a superset
    /// of those containing it, to be verified), or `None` when the pattern
    /// is shorter than three bytes and the index cannot narrow.
    pub(crate) fn candidates(&self, pattern: &str) -> Option<RoaringBitmap> {
        let grams = trigrams(pattern.as_bytes());
        if grams.is_empty() {
            return None;
        }
        let mut sets = Vec::with_capacity(grams.len());
        for g in grams {
            match self.grams.get(&g) {
                Some(codes) => sets.push(codes),
                None => return Some(RoaringBitmap::new()),
            }
        }
        // Smallest first: the intersection can only shrink, and stops early.
        sets.sort_by_key(|s| s.len());
        let mut acc = sets[0].clone();
        for s in &sets[1..] {
            if acc.is_empty() {
                break;
            }
            acc &= *s;
        }
        Some(acc)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.grams.heap_bytes()
            + self
                .grams
                .iter()
                .map(|(_, b)| bitmap_bytes(b))
                .sum::<usize>()
    }
}

impl PartialEq for TrigramIndex {
    fn eq(&self, other: &TrigramIndex) -> bool {
        same_map(&self.grams, &other.grams)
    }
}

/// Two copy-on-write maps with the same entries.
fn same_map<K: std::hash::Hash + Eq + Clone, V: Clone + PartialEq>(
    a: &CowMap<K, V>,
    b: &CowMap<K, V>,
) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k) == Some(v))
}

/// Microseconds in a day.
pub(crate) const DAY_MICROS: i64 = 86_400_000_000;

/// The UTC day (since 1970-01-01) of a timestamp in microseconds.
#[inline]
pub(crate) fn day_of(micros: i64) -> i64 {
    micros.div_euclid(DAY_MICROS)
}

/// Rows by the UTC day of `created_at`, for time ranges: a range is a
/// union of whole days plus two edge days.
#[derive(Debug, Clone, Default)]
pub(crate) struct DayIndex {
    days: CowMap<i64, RoaringBitmap>,
}

impl DayIndex {
    pub(crate) fn insert(&mut self, day: i64, row: u32) {
        self.days
            .entry_or_insert_with(day, RoaringBitmap::new)
            .insert(row);
    }

    pub(crate) fn remove(&mut self, day: i64, row: u32) {
        if let Some(rows) = self.days.get_mut(&day) {
            rows.remove(row);
            if rows.is_empty() {
                self.days.remove(&day);
            }
        }
    }

    /// From each day's rows.
    pub(crate) fn from_days(days: impl IntoIterator<Item = (i64, RoaringBitmap)>) -> DayIndex {
        let mut index = DayIndex::default();
        for (day, rows) in days {
            *index.days.entry_or_insert_with(day, RoaringBitmap::new) = tight(&rows);
        }
        index
    }

    /// The rows created on `day`.
    pub(crate) fn get(&self, day: i64) -> Option<&RoaringBitmap> {
        self.days.get(&day)
    }

    /// The number of days holding rows.
    pub(crate) fn len(&self) -> usize {
        self.days.len()
    }

    /// Every day with its rows, in no order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i64, &RoaringBitmap)> + '_ {
        self.days.iter().map(|(d, b)| (*d, b))
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.days.heap_bytes()
            + self
                .days
                .iter()
                .map(|(_, b)| bitmap_bytes(b))
                .sum::<usize>()
    }
}

impl PartialEq for DayIndex {
    fn eq(&self, other: &DayIndex) -> bool {
        same_map(&self.days, &other.days)
    }
}

/// The rows whose stored `extend_info` has one of the keys v1 sets itself
/// (so v1 must rewrite it rather than append to its text).
#[derive(Debug, Clone, Default)]
pub(crate) struct ExtendOverlap {
    pub(crate) rows: RoaringBitmap,
}

/// Rows by IP address. IPv4 and IPv6 are kept apart (an IPv4 address and
/// its IPv4-mapped IPv6 form are different addresses here), each as sorted
/// `(address, row)` pairs.
#[derive(Debug, Clone, Default)]
pub(crate) struct IpIndex {
    v4: SortedSeq<(u32, u32)>,
    v6: SortedSeq<([u8; 16], u32)>,
    /// During a bulk load: inserted pairs, built in by one sort at its end.
    gathered: Option<Vec<(IpAddr, u32)>>,
}

impl IpIndex {
    pub(crate) fn insert(&mut self, ip: IpAddr, row: u32) {
        if let Some(pairs) = &mut self.gathered {
            pairs.push((ip, row));
            return;
        }
        match ip {
            IpAddr::V4(a) => self.v4.insert_by((a.to_bits(), row), Ord::cmp),
            IpAddr::V6(a) => self.v6.insert_by((a.octets(), row), Ord::cmp),
        }
    }

    pub(crate) fn remove(&mut self, ip: IpAddr, row: u32) {
        match ip {
            IpAddr::V4(a) => {
                self.v4.remove_by(|e| e.cmp(&(a.to_bits(), row)));
            }
            IpAddr::V6(a) => {
                self.v6.remove_by(|e| e.cmp(&(a.octets(), row)));
            }
        }
    }

    /// From now on, inserts are gathered (a bulk load).
    pub(crate) fn gather(&mut self) {
        self.gathered.get_or_insert_with(Vec::new);
    }

    /// Builds the gathered inserts in: sorted, then merged with the pairs
    /// already held.
    pub(crate) fn build_gathered(&mut self) {
        if let Some(pairs) = self.gathered.take() {
            let fresh = IpIndex::from_pairs(pairs);
            self.v4 = merge_seqs(&self.v4, &fresh.v4);
            self.v6 = merge_seqs(&self.v6, &fresh.v6);
        }
    }

    /// Builds from every `(address, row)` pair at once, with full leaves.
    fn from_pairs(pairs: impl IntoIterator<Item = (IpAddr, u32)>) -> IpIndex {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (ip, row) in pairs {
            match ip {
                IpAddr::V4(a) => v4.push((a.to_bits(), row)),
                IpAddr::V6(a) => v6.push((a.octets(), row)),
            }
        }
        v4.sort_unstable();
        v6.sort_unstable();
        IpIndex {
            v4: SortedSeq::from_sorted(v4),
            v6: SortedSeq::from_sorted(v6),
            gathered: None,
        }
    }

    /// The rows holding `ip`.
    pub(crate) fn rows(&self, ip: IpAddr) -> RoaringBitmap {
        fn collect<K: Ord + Copy>(seq: &SortedSeq<(K, u32)>, key: K) -> RoaringBitmap {
            let start = seq.lower_bound(|e| e.0.cmp(&key));
            seq.iter_from(start)
                .take_while(|e| e.0 == key)
                .map(|e| e.1)
                .collect()
        }
        match ip {
            IpAddr::V4(a) => collect(&self.v4, a.to_bits()),
            IpAddr::V6(a) => collect(&self.v6, a.octets()),
        }
    }

    /// Every `(address, row)` pair, for `internal_validate`.
    pub(crate) fn pairs(&self) -> Vec<(IpAddr, u32)> {
        let v4 = self
            .v4
            .iter()
            .map(|&(a, r)| (IpAddr::from(std::net::Ipv4Addr::from_bits(a)), r));
        let v6 = self.v6.iter().map(|&(a, r)| (IpAddr::from(a), r));
        v4.chain(v6).collect()
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        self.v4.check(Ord::cmp)?;
        self.v6.check(Ord::cmp)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.v4.heap_bytes() + self.v6.heap_bytes()
    }
}

/// Two sorted sequences merged into one, with full leaves.
fn merge_seqs<T: Ord + Copy>(a: &SortedSeq<T>, b: &SortedSeq<T>) -> SortedSeq<T> {
    if b.len() == 0 {
        return a.clone();
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut b = b.iter().copied().peekable();
    for &x in a.iter() {
        while let Some(y) = b.next_if(|&y| y < x) {
            out.push(y);
        }
        out.push(x);
    }
    out.extend(b);
    SortedSeq::from_sorted(out)
}

/// The sharing indexes: rows shared to each destination project, split by
/// member status, and rows by number of members (so that counting sharing
/// entries, not backups, is a sum of bitmap cardinalities).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SharingIndex {
    /// Destination project code -> rows shared to it.
    pub(crate) to: BitmapIndex,
    /// Per member status (its discriminant): destination code -> rows.
    pub(crate) to_status: [BitmapIndex; 3],
    /// `at_least[k]`: rows with more than `k` members.
    pub(crate) at_least: Spine<RoaringBitmap>,
}

impl SharingIndex {
    pub(crate) fn insert(&mut self, row: u32, members: &[(u32, MemberStatus)]) {
        for &(dest, status) in members {
            self.to.insert(dest, row);
            self.to_status[status as usize].insert(dest, row);
        }
        self.at_least.grow_to(members.len(), RoaringBitmap::new);
        for k in 0..members.len() {
            self.at_least.make_mut(k).insert(row);
        }
    }

    pub(crate) fn remove(&mut self, row: u32, members: &[(u32, MemberStatus)]) {
        for &(dest, status) in members {
            self.to.remove(dest, row);
            self.to_status[status as usize].remove(dest, row);
        }
        for k in 0..members.len().min(self.at_least.len()) {
            self.at_least.make_mut(k).remove(row);
        }
        while self.at_least.last().is_some_and(RoaringBitmap::is_empty) {
            self.at_least.pop();
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.to.heap_bytes()
            + self
                .to_status
                .iter()
                .map(BitmapIndex::heap_bytes)
                .sum::<usize>()
            + self.at_least.iter().map(bitmap_bytes).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigram_candidates_narrow_and_verify_nothing() {
        let mut t = TrigramIndex::default();
        t.insert(0, "autobk_b629");
        t.insert(1, "manualbk_47222");
        t.insert(2, "bk");
        let hits =
            |t: &TrigramIndex, p: &str| t.candidates(p).map(|b| b.iter().collect::<Vec<_>>());
        assert_eq!(hits(&t, "bk_"), Some(vec![0, 1]));
        assert_eq!(hits(&t, "autobk"), Some(vec![0]));
        assert_eq!(hits(&t, "zzz"), Some(vec![]));
        assert_eq!(hits(&t, "bk"), None);
        t.remove(0, "autobk_b629");
        assert_eq!(hits(&t, "bk_"), Some(vec![1]));
        assert_eq!(hits(&t, "aut"), Some(vec![]));
    }

    #[test]
    fn ip_index_keeps_families_apart() {
        let mut ips = IpIndex::default();
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        ips.insert(v4, 3);
        ips.insert(v4, 1);
        ips.insert(mapped, 2);
        assert_eq!(ips.rows(v4).iter().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(ips.rows(mapped).iter().collect::<Vec<_>>(), vec![2]);
        ips.remove(v4, 1);
        assert_eq!(ips.rows(v4).len(), 1);
        assert!(ips.check().is_ok());
    }
}
