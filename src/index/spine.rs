//! Copy-on-write spines: vectors of `Arc`ed parts that a store clone
//! shares, for every published version.
//!
//! With one flat vector of `Arc`ed chunks, a clone costs one reference
//! count per chunk: about a thousand per column at 1M rows, 0.8 ms for a
//! whole store, paid by every version however small its change.
//!
//! * [`Spine`]: the parts in `Arc`ed groups of [`GROUP`]. A clone copies a
//!   pointer per group, and a write copies the one group (its pointers)
//!   and the one part it touches, while an older version shares them. For
//!   the per-value bitmaps and the sharded maps, read a part at a time.
//! * [`FlatSpine`]: the parts in one `Arc`ed slice. A clone is one count, a
//!   read as direct as from a plain vector; a write to a shared spine
//!   copies every pointer. For the columns, read on every rendered row.

use std::mem::size_of;
use std::ops::Index;
use std::sync::Arc;

/// (Tests use groups of two parts, so that their bitmap indexes and maps
/// span many groups.)
const GROUP_BITS: usize = if cfg!(test) { 1 } else { 6 };
/// Parts per group.
pub(crate) const GROUP: usize = 1 << GROUP_BITS;

/// A group's parts, the pointers inline behind the group's own count (an
/// `Arc<Vec<_>>` would put one more load on every read).
type Group<T> = Arc<[Arc<T>]>;

/// Parts `T`, each `Arc`ed, in `Arc`ed groups of [`GROUP`]; every group
/// but the last is full, so part `i` is a shift and a mask away.
#[derive(Debug, Clone)]
pub(crate) struct Spine<T> {
    groups: Vec<Group<T>>,
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

    /// Appends a part already shared (another spine's, say). The last
    /// group is rebuilt one part longer: at most [`GROUP`] pointers, and
    /// parts are appended a chunk of rows (or a new value) at a time.
    pub(crate) fn push_arc(&mut self, part: Arc<T>) {
        match self.groups.last_mut() {
            Some(group) if self.len & (GROUP - 1) != 0 => {
                let mut parts = Vec::with_capacity(group.len() + 1);
                parts.extend(group.iter().cloned());
                parts.push(part);
                *group = parts.into();
            }
            _ => self.groups.push(Arc::from([part])),
        }
        self.len += 1;
    }

    /// A spine of these parts, a group at a time.
    fn from_arcs(parts: Vec<Arc<T>>) -> Spine<T> {
        let len = parts.len();
        let groups = parts.chunks(GROUP).map(Group::from).collect();
        Spine { groups, len }
    }

    pub(crate) fn push(&mut self, part: T) {
        self.push_arc(Arc::new(part));
    }

    /// The parts in order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator + '_ {
        (0..self.len).map(|i| &self[i])
    }

    /// Bytes of the spine itself (group vectors and part pointers); the
    /// parts' own bytes are the caller's to add.
    pub(crate) fn spine_bytes(&self) -> usize {
        self.groups.capacity() * size_of::<Group<T>>()
            + self
                .groups
                .iter()
                .map(|g| 16 + g.len() * size_of::<Arc<T>>())
                .sum::<usize>()
    }
}

impl<T: Clone> Spine<T> {
    /// Part `i` to change (`i` below `len()`), copied first if an older
    /// version shares it.
    #[inline]
    pub(crate) fn make_mut(&mut self, i: usize) -> &mut T {
        // A group shared with an older version is copied first: its part
        // pointers, not the parts.
        let group = Arc::make_mut(&mut self.groups[i >> GROUP_BITS]);
        Arc::make_mut(&mut group[i & (GROUP - 1)])
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
            if group.len() > 1 {
                *group = group[..group.len() - 1].into();
            } else {
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
        Spine::from_arcs(parts.into_iter().map(Arc::new).collect())
    }
}

/// Parts `T`, each `Arc`ed, in one `Arc`ed slice: a clone is one reference
/// count, and a read is as direct as from a plain vector of `Arc`s (the
/// slice's pointer is inline, its parts follow the counts). A write to a
/// shared spine copies every part pointer, and appending rebuilds it, so
/// this suits the columns: read on every rendered row, written a few at a
/// time (a replacement writes only the columns it changes), appended a
/// chunk of rows at a time. [`Spine`]'s groups would put a load on every
/// read, which cost lists 10-25%.
#[derive(Debug, Clone)]
pub(crate) struct FlatSpine<T> {
    parts: Arc<[Arc<T>]>,
}

impl<T> Default for FlatSpine<T> {
    fn default() -> Self {
        FlatSpine {
            parts: Arc::from([]),
        }
    }
}

impl<T> Index<usize> for FlatSpine<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        &self.parts[i]
    }
}

impl<T> FlatSpine<T> {
    /// The number of parts.
    pub(crate) fn len(&self) -> usize {
        self.parts.len()
    }

    /// Appends a part, rebuilding the slice.
    pub(crate) fn push(&mut self, part: T) {
        let mut parts = Vec::with_capacity(self.parts.len() + 1);
        parts.extend(self.parts.iter().cloned());
        parts.push(Arc::new(part));
        self.parts = parts.into();
    }

    /// Appends every part of `other`, sharing them.
    pub(crate) fn extend(&mut self, other: FlatSpine<T>) {
        let mut parts = Vec::with_capacity(self.parts.len() + other.parts.len());
        parts.extend(self.parts.iter().cloned());
        parts.extend(other.parts.iter().cloned());
        self.parts = parts.into();
    }

    /// The parts in order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator + '_ {
        self.parts.iter().map(|p| &**p)
    }

    /// Bytes of the spine itself (the slice of part pointers).
    pub(crate) fn spine_bytes(&self) -> usize {
        16 + self.parts.len() * size_of::<Arc<T>>()
    }
}

impl<T: Clone> FlatSpine<T> {
    /// Part `i` to change (`i` below `len()`), copied first if an older
    /// version shares it (and the slice of pointers, if it is shared).
    #[inline]
    pub(crate) fn make_mut(&mut self, i: usize) -> &mut T {
        Arc::make_mut(&mut Arc::make_mut(&mut self.parts)[i])
    }

    /// The last part to change.
    pub(crate) fn last_mut(&mut self) -> Option<&mut T> {
        let i = self.len().checked_sub(1)?;
        Some(self.make_mut(i))
    }
}

impl<T> FromIterator<T> for FlatSpine<T> {
    fn from_iter<I: IntoIterator<Item = T>>(parts: I) -> FlatSpine<T> {
        FlatSpine {
            parts: parts.into_iter().map(Arc::new).collect(),
        }
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
        for i in 200..300 {
            s.push(i);
        }
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

    #[test]
    fn a_flat_spine_shares_until_written() {
        let mut s: FlatSpine<Vec<u8>> = (0..5u8).map(|i| vec![i]).collect();
        let snapshot = s.clone();
        s.make_mut(3).push(9);
        s.push(vec![5]);
        let mut tail: FlatSpine<Vec<u8>> = (6..8u8).map(|i| vec![i]).collect();
        if let Some(last) = tail.last_mut() {
            last.push(1);
        }
        s.extend(tail);
        assert_eq!(
            snapshot.iter().cloned().collect::<Vec<_>>(),
            (0..5u8).map(|i| vec![i]).collect::<Vec<_>>()
        );
        assert_eq!(s.len(), 8);
        assert_eq!((&s[3], &s[5], &s[7]), (&vec![3, 9], &vec![5], &vec![7, 1]));
        assert!(Arc::ptr_eq(&s.parts[0], &snapshot.parts[0]));
        assert!(!Arc::ptr_eq(&s.parts[3], &snapshot.parts[3]));
    }
}
