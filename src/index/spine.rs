//! A vector of copy-on-write parts in copy-on-write groups: the spine of
//! every chunked column and per-value index.
//!
//! A store is cloned for every published version. With one flat vector of
//! `Arc`ed chunks, a clone costs one reference count per chunk: about a
//! thousand per column at 1M rows, 0.8 ms for a whole store, paid by every
//! version however small its change. Here the chunks sit in groups of
//! [`GROUP`], each group `Arc`ed too: a clone copies one pointer per group
//! (16 per column at 1M rows), and a write copies the one group and the
//! one chunk it touches, and only while an older version still shares
//! them.

use std::mem::size_of;
use std::ops::Index;
use std::sync::Arc;

/// (Tests use groups of two parts, so that their columns of a few thousand
/// rows span many groups.)
const GROUP_BITS: usize = if cfg!(test) { 1 } else { 6 };
/// Parts per group.
pub(crate) const GROUP: usize = 1 << GROUP_BITS;

/// Parts `T`, each `Arc`ed, in `Arc`ed groups of [`GROUP`]; every group
/// but the last is full, so part `i` is a shift and a mask away.
#[derive(Debug, Clone)]
pub(crate) struct Spine<T> {
    groups: Vec<Arc<Vec<Arc<T>>>>,
    len: usize,
}

impl<T> Default for Spine<T> {
    fn default() -> Self {
        Spine {
            groups: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Index<usize> for Spine<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        &self.groups[i >> GROUP_BITS][i & (GROUP - 1)]
    }
}

impl<T> Spine<T> {
    /// The number of parts.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Part `i`, if there is one.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        self.groups
            .get(i >> GROUP_BITS)
            .and_then(|g| g.get(i & (GROUP - 1)))
            .map(|p| &**p)
    }

    pub(crate) fn last(&self) -> Option<&T> {
        self.len.checked_sub(1).map(|i| &self[i])
    }

    /// Appends a part already shared (another spine's, say).
    pub(crate) fn push_arc(&mut self, part: Arc<T>) {
        if self.len & (GROUP - 1) == 0 {
            self.groups.push(Arc::new(Vec::with_capacity(GROUP)));
        }
        if let Some(group) = self.groups.last_mut() {
            arc_mut_group(group).push(part);
        }
        self.len += 1;
    }

    pub(crate) fn push(&mut self, part: T) {
        self.push_arc(Arc::new(part));
    }

    /// Appends every part of `other`, sharing them.
    pub(crate) fn extend(&mut self, other: Spine<T>) {
        for group in other.groups {
            for part in Arc::unwrap_or_clone(group) {
                self.push_arc(part);
            }
        }
    }

    /// The parts in order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator + '_ {
        (0..self.len).map(|i| &self[i])
    }

    /// Bytes of the spine itself (group vectors and part pointers); the
    /// parts' own bytes are the caller's to add.
    pub(crate) fn spine_bytes(&self) -> usize {
        self.groups.capacity() * size_of::<Arc<Vec<Arc<T>>>>()
            + self
                .groups
                .iter()
                .map(|g| 32 + g.capacity() * size_of::<Arc<T>>())
                .sum::<usize>()
    }
}

/// A group to change: copied first if an older version shares it. (A
/// group's copy clones its part pointers, not the parts.)
fn arc_mut_group<T>(group: &mut Arc<Vec<Arc<T>>>) -> &mut Vec<Arc<T>> {
    Arc::make_mut(group)
}

impl<T: Clone> Spine<T> {
    /// Part `i` to change (`i` below `len()`), copied first if an older
    /// version shares it.
    #[inline]
    pub(crate) fn make_mut(&mut self, i: usize) -> &mut T {
        let group = arc_mut_group(&mut self.groups[i >> GROUP_BITS]);
        Arc::make_mut(&mut group[i & (GROUP - 1)])
    }

    /// The last part to change.
    pub(crate) fn last_mut(&mut self) -> Option<&mut T> {
        let i = self.len.checked_sub(1)?;
        Some(self.make_mut(i))
    }

    /// Grows to `len` parts made by `make`; never shrinks.
    pub(crate) fn grow_to(&mut self, len: usize, mut make: impl FnMut() -> T) {
        while self.len < len {
            self.push(make());
        }
    }

    /// Drops the last part.
    pub(crate) fn pop(&mut self) {
        if self.len == 0 {
            return;
        }
        self.len -= 1;
        if let Some(group) = self.groups.last_mut() {
            arc_mut_group(group).pop();
            if group.is_empty() {
                self.groups.pop();
            }
        }
    }
}

/// The same parts in the same order.
impl<T: PartialEq> PartialEq for Spine<T> {
    fn eq(&self, other: &Spine<T>) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T> FromIterator<T> for Spine<T> {
    fn from_iter<I: IntoIterator<Item = T>>(parts: I) -> Spine<T> {
        let mut spine = Spine::default();
        for part in parts {
            spine.push_arc(Arc::new(part));
        }
        spine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_in_order_across_groups() {
        let mut s: Spine<u32> = (0..200).collect();
        assert_eq!(s.len(), 200);
        assert_eq!(s[0], 0);
        assert_eq!(s[GROUP], GROUP as u32);
        assert_eq!(s.get(199), Some(&199));
        assert_eq!(s.get(200), None);
        assert_eq!(s.iter().next_back(), Some(&199));
        *s.make_mut(70) = 7000;
        assert_eq!(s[70], 7000);
        let mut other: Spine<u32> = (200..300).collect();
        *other.make_mut(0) = 200;
        s.extend(other);
        assert_eq!(s.iter().copied().collect::<Vec<_>>().len(), 300);
        assert_eq!(s[299], 299);
        s.pop();
        assert_eq!((s.len(), s.last()), (299, Some(&298)));
        while s.len() > 0 {
            s.pop();
        }
        assert_eq!(s.last(), None);
    }

    #[test]
    fn a_clone_shares_until_written() {
        let mut s: Spine<Vec<u8>> = (0..(3 * GROUP) as u8).map(|i| vec![i]).collect();
        let snapshot = s.clone();
        s.make_mut(GROUP + 1).push(9);
        assert_eq!(snapshot[GROUP + 1], vec![GROUP as u8 + 1]);
        assert_eq!(s[GROUP + 1], vec![GROUP as u8 + 1, 9]);
        // Untouched groups are still the snapshot's own.
        assert!(Arc::ptr_eq(&s.groups[0], &snapshot.groups[0]));
        assert!(!Arc::ptr_eq(&s.groups[1], &snapshot.groups[1]));
        // In the copied group, only the written part is new.
        assert!(Arc::ptr_eq(&s.groups[1][0], &snapshot.groups[1][0]));
        s.grow_to(3 * GROUP + 2, Vec::new);
        assert_eq!(s.len(), 3 * GROUP + 2);
        assert_eq!(snapshot.len(), 3 * GROUP);
    }
}
