//! An ordered sequence in copy-on-write leaves: the ordered indexes.
//!
//! Two levels are enough at this scale: 1,000,000 entries make about 2,000
//! leaves of up to 512 entries. Finding a position is a binary search over
//! the leaves' last entries and then inside one leaf; inserting moves at
//! most 512 entries; a store clone copies only the leaf pointers.

use std::cmp::Ordering;
use std::mem::size_of;
use std::sync::Arc;

use crate::codec::{Decoder, Encoder, Malformed, Persist};

const LEAF_MAX: usize = 512;
/// A leaf this small is merged into its neighbour, so deletes do not leave
/// the index full of near-empty leaves.
const LEAF_MIN: usize = LEAF_MAX / 8;

/// A sorted sequence. The order is whatever comparator the caller passes
/// to `insert_by`; the caller must always pass the same one.
#[derive(Debug, Clone)]
pub(crate) struct SortedSeq<T> {
    leaves: Vec<Arc<Vec<T>>>,
    len: usize,
}

impl<T> Default for SortedSeq<T> {
    fn default() -> Self {
        SortedSeq {
            leaves: Vec::new(),
            len: 0,
        }
    }
}

/// A position in a [`SortedSeq`]: before the entry at `(leaf, offset)`, or
/// at the end when `leaf` is the number of leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    leaf: usize,
    offset: usize,
}

impl<T: Clone> SortedSeq<T> {
    /// Builds from entries already in order, with full leaves.
    pub(crate) fn from_sorted(items: Vec<T>) -> Self {
        let len = items.len();
        let leaves = items
            .chunks(LEAF_MAX)
            .map(|c| Arc::new(c.to_vec()))
            .collect();
        SortedSeq { leaves, len }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The position of the first entry not below the target, where
    /// `probe(entry)` compares an entry with the target.
    pub(crate) fn lower_bound(&self, mut probe: impl FnMut(&T) -> Ordering) -> Pos {
        self.seek(|e| probe(e) == Ordering::Less)
    }

    /// The position of the first entry above the target.
    pub(crate) fn upper_bound(&self, mut probe: impl FnMut(&T) -> Ordering) -> Pos {
        self.seek(|e| probe(e) != Ordering::Greater)
    }

    /// The first position whose entry fails `before` (entries that satisfy
    /// `before` must all come first).
    fn seek(&self, mut before: impl FnMut(&T) -> bool) -> Pos {
        let leaf = self
            .leaves
            .partition_point(|l| l.last().is_some_and(&mut before));
        match self.leaves.get(leaf) {
            None => self.end(),
            Some(l) => Pos {
                leaf,
                offset: l.partition_point(before),
            },
        }
    }

    pub(crate) fn start(&self) -> Pos {
        Pos { leaf: 0, offset: 0 }
    }

    pub(crate) fn end(&self) -> Pos {
        Pos {
            leaf: self.leaves.len(),
            offset: 0,
        }
    }

    /// Entries from `pos` on, in order.
    pub(crate) fn iter_from(&self, pos: Pos) -> impl Iterator<Item = &T> + '_ {
        let first = self
            .leaves
            .get(pos.leaf)
            .map(|l| &l[pos.offset.min(l.len())..]);
        first
            .into_iter()
            .chain(self.leaves.iter().skip(pos.leaf + 1).map(|l| &l[..]))
            .flatten()
    }

    /// Entries before `pos`, in reverse order.
    pub(crate) fn iter_rev_before(&self, pos: Pos) -> impl Iterator<Item = &T> + '_ {
        let partial = self
            .leaves
            .get(pos.leaf)
            .map(|l| &l[..pos.offset.min(l.len())]);
        partial
            .into_iter()
            .chain(
                self.leaves[..pos.leaf.min(self.leaves.len())]
                    .iter()
                    .rev()
                    .map(|l| &l[..]),
            )
            .flat_map(|s| s.iter().rev())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.iter_from(self.start())
    }

    /// Inserts `item` after every entry that `cmp(entry, item)` puts at or
    /// below it.
    pub(crate) fn insert_by(&mut self, item: T, mut cmp: impl FnMut(&T, &T) -> Ordering) {
        self.len += 1;
        if self.leaves.is_empty() {
            self.leaves.push(Arc::new(vec![item]));
            return;
        }
        let last = self.leaves.len() - 1;
        let li = self
            .leaves
            .partition_point(|l| l.last().is_some_and(|e| cmp(e, &item) == Ordering::Less))
            .min(last);
        let leaf = Arc::make_mut(&mut self.leaves[li]);
        let at = leaf.partition_point(|e| cmp(e, &item) != Ordering::Greater);
        leaf.insert(at, item);
        if leaf.len() > LEAF_MAX {
            let tail = leaf.split_off(leaf.len() / 2);
            self.leaves.insert(li + 1, Arc::new(tail));
        }
    }

    /// Removes the entry for which `probe` answers `Equal`, if any.
    pub(crate) fn remove_by(&mut self, mut probe: impl FnMut(&T) -> Ordering) -> Option<T> {
        let pos = self.lower_bound(&mut probe);
        let entry = self.leaves.get(pos.leaf)?.get(pos.offset)?;
        if probe(entry) != Ordering::Equal {
            return None;
        }
        let leaf = Arc::make_mut(&mut self.leaves[pos.leaf]);
        let removed = leaf.remove(pos.offset);
        self.len -= 1;
        if leaf.len() < LEAF_MIN {
            self.merge_small(pos.leaf);
        }
        Some(removed)
    }

    /// Merges a small leaf into a neighbour that has room, or drops it when
    /// empty.
    fn merge_small(&mut self, li: usize) {
        let small = self.leaves[li].len();
        if small == 0 {
            self.leaves.remove(li);
            return;
        }
        let next_fits = self
            .leaves
            .get(li + 1)
            .is_some_and(|n| n.len() + small <= LEAF_MAX);
        let prev_fits = li > 0 && self.leaves[li - 1].len() + small <= LEAF_MAX;
        if next_fits {
            let next = self.leaves.remove(li + 1);
            Arc::make_mut(&mut self.leaves[li]).extend_from_slice(&next);
        } else if prev_fits {
            let this = self.leaves.remove(li);
            Arc::make_mut(&mut self.leaves[li - 1]).extend_from_slice(&this);
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.leaves.capacity() * size_of::<Arc<Vec<T>>>()
            + self
                .leaves
                .iter()
                .map(|l| 32 + l.capacity() * size_of::<T>())
                .sum::<usize>()
    }

    /// Checks the leaf structure: sizes, the cached length and the order.
    pub(crate) fn check(&self, mut cmp: impl FnMut(&T, &T) -> Ordering) -> Result<(), String> {
        if self
            .leaves
            .iter()
            .any(|l| l.is_empty() || l.len() > LEAF_MAX)
        {
            return Err("a leaf is empty or over-full".into());
        }
        let counted: usize = self.leaves.iter().map(|l| l.len()).sum();
        if counted != self.len {
            return Err(format!("cached length {} but {counted} entries", self.len));
        }
        let mut prev: Option<&T> = None;
        for e in self.iter() {
            if prev.is_some_and(|p| cmp(p, e) != Ordering::Less) {
                return Err("entries out of order or repeated".into());
            }
            prev = Some(e);
        }
        Ok(())
    }
}

/// Stored as its entries in order; read back with full leaves.
impl<T: Clone + Persist> Persist for SortedSeq<T> {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        out.len(self.len);
        for item in self.iter() {
            item.save(out);
        }
    }
    fn load(input: &mut Decoder<'_>) -> Result<SortedSeq<T>, Malformed> {
        input.seq().map(SortedSeq::from_sorted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn behaves_like_a_btreeset(ops in proptest::collection::vec((any::<bool>(), 0u16..3000), 1..4000)) {
            let mut seq = SortedSeq::default();
            let mut model = BTreeSet::new();
            let snapshot = seq.clone();
            for (insert, v) in ops {
                if insert {
                    if model.insert(v) {
                        seq.insert_by(v, |a, b| a.cmp(b));
                    }
                } else {
                    prop_assert_eq!(seq.remove_by(|e| e.cmp(&v)), model.take(&v));
                }
            }
            prop_assert!(seq.check(|a, b| a.cmp(b)).is_ok());
            prop_assert_eq!(seq.iter().copied().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(snapshot.len(), 0);
            for probe in [0u16, 1, 500, 1499, 2999, 3000] {
                let from: Vec<u16> = seq.iter_from(seq.lower_bound(|e| e.cmp(&probe))).copied().collect();
                let expected: Vec<u16> = model.range(probe..).copied().collect();
                prop_assert_eq!(from, expected);
                let after: Vec<u16> = seq.iter_from(seq.upper_bound(|e| e.cmp(&probe))).copied().collect();
                let expected: Vec<u16> = model.range(probe + 1..).copied().collect();
                prop_assert_eq!(after, expected);
                let back: Vec<u16> = seq.iter_rev_before(seq.lower_bound(|e| e.cmp(&probe))).copied().collect();
                let expected: Vec<u16> = model.range(..probe).rev().copied().collect();
                prop_assert_eq!(back, expected);
            }
        }
    }

    #[test]
    fn bulk_build_and_ends() {
        let seq = SortedSeq::from_sorted((0..2000u32).collect());
        assert!(seq.check(|a, b| a.cmp(b)).is_ok());
        assert_eq!(seq.iter_from(seq.end()).count(), 0);
        assert_eq!(seq.iter_rev_before(seq.end()).next(), Some(&1999));
        assert_eq!(seq.iter_rev_before(seq.start()).count(), 0);
        assert_eq!(seq.lower_bound(|e| e.cmp(&5000)), seq.end());
    }
}
