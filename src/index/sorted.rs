//! An ordered sequence in copy-on-write leaves and groups: the ordered
//! indexes.
//!
//! Three levels are enough at this scale: 1,000,000 entries make about
//! 2,000 leaves of up to 512 entries, in about 40 groups of up to 64
//! leaves. Finding a position is a binary search over the groups' last
//! entries, then over one group's leaves, then inside one leaf; inserting
//! moves at most 512 entries and 64 leaf pointers. A store clone copies
//! only the group pointers (a store is cloned for every published
//! version), and a write copies the one group and leaf it touches.

use std::cmp::Ordering;
use std::mem::size_of;
use std::sync::Arc;

use crate::codec::{Decoder, Encoder, Malformed, Persist};

/// Entries per leaf, at most. (Tests use small leaves and groups, so that
/// their stores of a few thousand records span many of each.)
const LEAF_MAX: usize = if cfg!(test) { 8 } else { 512 };
/// A leaf this small is merged into its neighbour, so deletes do not leave
/// the index full of near-empty leaves.
const LEAF_MIN: usize = LEAF_MAX / 8;
/// Leaves per group, at most; a group this much smaller is merged, as a
/// leaf is.
const GROUP_MAX: usize = if cfg!(test) { 8 } else { 64 };
const GROUP_MIN: usize = GROUP_MAX / 8;

type Leaf<T> = Arc<Vec<T>>;
type Group<T> = Arc<Vec<Leaf<T>>>;

/// A sorted sequence. The order is whatever comparator the caller passes
/// to `insert_by`; the caller must always pass the same one. No group and
/// no leaf is empty.
#[derive(Debug, Clone)]
pub(crate) struct SortedSeq<T> {
    groups: Vec<Group<T>>,
    len: usize,
}

impl<T> Default for SortedSeq<T> {
    fn default() -> Self {
        SortedSeq {
            groups: Vec::new(),
            len: 0,
        }
    }
}

/// A position in a [`SortedSeq`]: before the entry at `(group, leaf,
/// offset)`, or at the end when `group` is the number of groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    group: usize,
    leaf: usize,
    offset: usize,
}

/// Merges the small part at `i` into a neighbour that has room, or drops
/// it when empty: the same rule for leaves in a group and for groups.
fn merge_small<P: Clone>(parts: &mut Vec<Arc<Vec<P>>>, i: usize, max: usize) {
    let small = parts[i].len();
    if small == 0 {
        parts.remove(i);
        return;
    }
    let next_fits = parts.get(i + 1).is_some_and(|n| n.len() + small <= max);
    let prev_fits = i > 0 && parts[i - 1].len() + small <= max;
    if next_fits {
        let next = parts.remove(i + 1);
        Arc::make_mut(&mut parts[i]).extend_from_slice(&next);
    } else if prev_fits {
        let this = parts.remove(i);
        Arc::make_mut(&mut parts[i - 1]).extend_from_slice(&this);
    }
}

impl<T: Clone> SortedSeq<T> {
    /// Builds from entries already in order, with full leaves and groups.
    pub(crate) fn from_sorted(items: Vec<T>) -> Self {
        let len = items.len();
        let leaves: Vec<Leaf<T>> = items
            .chunks(LEAF_MAX)
            .map(|c| Arc::new(c.to_vec()))
            .collect();
        let groups = leaves
            .chunks(GROUP_MAX)
            .map(|g| Arc::new(g.to_vec()))
            .collect();
        SortedSeq { groups, len }
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
        let group = self
            .groups
            .partition_point(|g| g.last().and_then(|l| l.last()).is_some_and(&mut before));
        match self.groups.get(group) {
            None => self.end(),
            Some(g) => {
                // The group's last entry fails `before`, so some leaf's does.
                let leaf = g.partition_point(|l| l.last().is_some_and(&mut before));
                Pos {
                    group,
                    leaf,
                    offset: g.get(leaf).map_or(0, |l| l.partition_point(before)),
                }
            }
        }
    }

    pub(crate) fn start(&self) -> Pos {
        Pos {
            group: 0,
            leaf: 0,
            offset: 0,
        }
    }

    pub(crate) fn end(&self) -> Pos {
        Pos {
            group: self.groups.len(),
            leaf: 0,
            offset: 0,
        }
    }

    /// Entries from `pos` on, in order.
    pub(crate) fn iter_from(&self, pos: Pos) -> impl Iterator<Item = &T> + '_ {
        let this = self.groups.get(pos.group);
        let first = this
            .and_then(|g| g.get(pos.leaf))
            .map(|l| &l[pos.offset.min(l.len())..]);
        let rest_of_group = this
            .map(|g| &g[(pos.leaf + 1).min(g.len())..])
            .unwrap_or_default();
        let later_groups = self.groups.get(pos.group + 1..).unwrap_or_default();
        first
            .into_iter()
            .chain(rest_of_group.iter().map(|l| &l[..]))
            .chain(later_groups.iter().flat_map(|g| g.iter().map(|l| &l[..])))
            .flatten()
    }

    /// Entries before `pos`, in reverse order.
    pub(crate) fn iter_rev_before(&self, pos: Pos) -> impl Iterator<Item = &T> + '_ {
        let this = self.groups.get(pos.group);
        let partial = this
            .and_then(|g| g.get(pos.leaf))
            .map(|l| &l[..pos.offset.min(l.len())]);
        let start_of_group = this
            .map(|g| &g[..pos.leaf.min(g.len())])
            .unwrap_or_default();
        let earlier_groups = &self.groups[..pos.group.min(self.groups.len())];
        partial
            .into_iter()
            .chain(start_of_group.iter().rev().map(|l| &l[..]))
            .chain(
                earlier_groups
                    .iter()
                    .rev()
                    .flat_map(|g| g.iter().rev().map(|l| &l[..])),
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
        let mut below = |e: &T| cmp(e, &item) == Ordering::Less;
        let gi = self
            .groups
            .partition_point(|g| g.last().and_then(|l| l.last()).is_some_and(&mut below))
            .min(self.groups.len().saturating_sub(1));
        let Some(group) = self.groups.get_mut(gi) else {
            self.groups.push(Arc::new(vec![Arc::new(vec![item])]));
            return;
        };
        let group = Arc::make_mut(group);
        let li = group
            .partition_point(|l| l.last().is_some_and(&mut below))
            .min(group.len().saturating_sub(1));
        let Some(leaf) = group.get_mut(li) else {
            group.push(Arc::new(vec![item]));
            return;
        };
        let leaf = Arc::make_mut(leaf);
        let at = leaf.partition_point(|e| cmp(e, &item) != Ordering::Greater);
        leaf.insert(at, item);
        if leaf.len() > LEAF_MAX {
            let tail = leaf.split_off(leaf.len() / 2);
            group.insert(li + 1, Arc::new(tail));
        }
        if group.len() > GROUP_MAX {
            let tail = group.split_off(group.len() / 2);
            self.groups.insert(gi + 1, Arc::new(tail));
        }
    }

    /// Removes the entry for which `probe` answers `Equal`, if any.
    pub(crate) fn remove_by(&mut self, mut probe: impl FnMut(&T) -> Ordering) -> Option<T> {
        let pos = self.lower_bound(&mut probe);
        let entry = self.groups.get(pos.group)?.get(pos.leaf)?.get(pos.offset)?;
        if probe(entry) != Ordering::Equal {
            return None;
        }
        let group = Arc::make_mut(&mut self.groups[pos.group]);
        let leaf = Arc::make_mut(&mut group[pos.leaf]);
        let removed = leaf.remove(pos.offset);
        self.len -= 1;
        if leaf.len() < LEAF_MIN {
            merge_small(group, pos.leaf, LEAF_MAX);
        }
        if group.len() < GROUP_MIN {
            merge_small(&mut self.groups, pos.group, GROUP_MAX);
        }
        Some(removed)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.groups.capacity() * size_of::<Group<T>>()
            + self
                .groups
                .iter()
                .map(|g| {
                    32 + g.capacity() * size_of::<Leaf<T>>()
                        + g.iter()
                            .map(|l| 32 + l.capacity() * size_of::<T>())
                            .sum::<usize>()
                })
                .sum::<usize>()
    }

    /// Checks the structure: sizes, the cached length and the order.
    pub(crate) fn check(&self, mut cmp: impl FnMut(&T, &T) -> Ordering) -> Result<(), String> {
        if self
            .groups
            .iter()
            .any(|g| g.is_empty() || g.len() > GROUP_MAX)
        {
            return Err("a group is empty or over-full".into());
        }
        if self
            .groups
            .iter()
            .flat_map(|g| g.iter())
            .any(|l| l.is_empty() || l.len() > LEAF_MAX)
        {
            return Err("a leaf is empty or over-full".into());
        }
        let counted: usize = self
            .groups
            .iter()
            .flat_map(|g| g.iter())
            .map(|l| l.len())
            .sum();
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
