//! Columns: per-row values in copy-on-write chunks.
//!
//! A store is cloned for every batch of changes (that is how readers keep
//! their snapshot while a writer goes on, see `engine`), so every column is
//! a vector of `Arc`ed chunks: a clone copies only the chunk pointers, and a
//! write copies only the chunk it touches, and only when a snapshot still
//! shares it.

use std::mem::size_of;

use crate::codec::{Decoder, Encoder, Malformed, Persist};
use crate::index::FlatSpine;

/// Rows per chunk. A power of two so that a row's chunk is a shift away.
const CHUNK_BITS: usize = 10;
pub(crate) const CHUNK: usize = 1 << CHUNK_BITS;

/// A vector of fixed-size values in copy-on-write chunks.
#[derive(Debug, Clone)]
pub(crate) struct Chunked<T> {
    chunks: FlatSpine<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: FlatSpine::default(),
            len: 0,
        }
    }
}

impl<T: Clone> Chunked<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The value at `i`; `i` must be below `len()`.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> &T {
        &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }

    pub(crate) fn set(&mut self, i: usize, value: T) {
        self.chunks.make_mut(i >> CHUNK_BITS)[i & (CHUNK - 1)] = value;
    }

    pub(crate) fn push(&mut self, value: T) {
        if self.len & (CHUNK - 1) == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(last) = self.chunks.last_mut() {
            last.push(value);
        }
        self.len += 1;
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// Heap bytes held, counting shared chunks in full.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.chunks.spine_bytes()
            + self
                .chunks
                .iter()
                .map(|c| 32 + c.capacity() * size_of::<T>())
                .sum::<usize>()
    }
}

/// A column that most rows leave empty (a backup's members: about 3% of
/// backups are shared): only the rows that hold something take room.
#[derive(Debug, Clone)]
pub(crate) struct Sparse<T> {
    values: crate::index::CowMap<u32, T>,
}

impl<T> Default for Sparse<T> {
    fn default() -> Self {
        Sparse {
            values: crate::index::CowMap::default(),
        }
    }
}

impl<T: Clone> Sparse<T> {
    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<&T> {
        self.values.get(&(row as u32))
    }

    /// Sets a row's value; `None` leaves the row empty.
    pub(crate) fn set(&mut self, row: usize, value: Option<T>) {
        match value {
            Some(v) => match self.values.get_mut(&(row as u32)) {
                Some(slot) => *slot = v,
                None => {
                    self.values.entry_or_insert_with(row as u32, || v);
                }
            },
            None => {
                self.values.remove(&(row as u32));
            }
        }
    }

    /// Empties a row, returning what it held.
    pub(crate) fn take(&mut self, row: usize) -> Option<T> {
        self.values.remove(&(row as u32))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &T)> + '_ {
        self.values.iter().map(|(r, v)| (*r, v))
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.values.heap_bytes()
    }
}

/// Marks a null in a stored length (snapshots).
const NULL_LEN: u32 = u32::MAX;

/// One chunk of a [`StrColumn`]: the rows' texts back to back in row
/// order, where each ends, and which are null. A change rewrites the
/// chunk's tail in place (a write copies the chunk anyway when a snapshot
/// shares it), so the buffer holds no garbage.
///
/// While every row of the chunk has the same length — ids of one shape,
/// UUIDs say, or a JSON column whose rows are all `{}` kept as `""` — the
/// ends are implied by that `width` and not stored, so a row costs only
/// its text; the first row of another length writes the ends out, and a
/// row then costs 4 bytes plus its text.
#[derive(Debug, Clone, Default)]
pub(super) struct StrChunk {
    bytes: String,
    /// `ends[j]`: where row `j`'s text ends; it starts where row `j - 1`'s
    /// ends. Empty while the rows have one length (`width`). The batch
    /// rules bound every text by `batch::MAX_TEXT_BYTES`, and
    /// `MAX_TEXT_BYTES * CHUNK < u32::MAX`.
    ends: Vec<u32>,
    /// Every row's length, while `ends` is empty.
    width: u32,
    /// Rows held.
    rows: u32,
    /// Bit `j` set: row `j` is null (its text is empty).
    nulls: Vec<u64>,
}

impl StrChunk {
    pub(super) fn len(&self) -> usize {
        self.rows as usize
    }

    #[inline]
    fn span(&self, j: usize) -> (usize, usize) {
        if self.ends.is_empty() {
            let w = self.width as usize;
            return (j * w, (j + 1) * w);
        }
        let start = if j == 0 { 0 } else { self.ends[j - 1] as usize };
        (start, self.ends[j] as usize)
    }

    /// Writes out the ends the width implied, before a row of another
    /// length comes.
    fn write_ends(&mut self) {
        if self.ends.is_empty() && self.rows > 0 {
            self.ends.reserve_exact(CHUNK);
            self.ends.extend((1..=self.rows).map(|j| j * self.width));
        }
    }

    #[inline]
    pub(super) fn is_null(&self, j: usize) -> bool {
        self.nulls
            .get(j / 64)
            .is_some_and(|w| w >> (j % 64) & 1 == 1)
    }

    fn set_null(&mut self, j: usize, null: bool) {
        if self.nulls.len() <= j / 64 {
            if !null {
                return;
            }
            self.nulls.resize(j / 64 + 1, 0);
        }
        let bit = 1u64 << (j % 64);
        if null {
            self.nulls[j / 64] |= bit;
        } else {
            self.nulls[j / 64] &= !bit;
        }
    }

    #[inline]
    pub(super) fn get(&self, j: usize) -> Option<&str> {
        if self.is_null(j) {
            return None;
        }
        let (start, end) = self.span(j);
        self.bytes.get(start..end)
    }

    pub(super) fn push(&mut self, value: Option<&str>) {
        let text = value.unwrap_or("");
        if self.rows == 0 {
            self.width = text.len() as u32;
        } else if self.ends.is_empty() && text.len() != self.width as usize {
            self.write_ends();
        }
        self.bytes.push_str(text);
        if !self.ends.is_empty() || text.len() != self.width as usize {
            self.ends.push(self.bytes.len() as u32);
        }
        self.rows += 1;
        if value.is_none() {
            self.set_null(self.len() - 1, true);
        }
    }

    /// Replaces row `j`'s text, moving the texts after it.
    pub(super) fn set(&mut self, j: usize, value: Option<&str>) {
        let text = value.unwrap_or("");
        if self.ends.is_empty() && text.len() != self.width as usize {
            self.write_ends();
        }
        let (start, end) = self.span(j);
        self.bytes.replace_range(start..end, text);
        let delta = text.len() as i64 - (end - start) as i64;
        if delta != 0 {
            for e in &mut self.ends[j..] {
                *e = (i64::from(*e) + delta) as u32;
            }
        }
        self.set_null(j, value.is_none());
    }

    pub(super) fn heap_bytes(&self) -> usize {
        16 + size_of::<StrChunk>()
            + self.bytes.capacity()
            + self.ends.capacity() * 4
            + self.nulls.capacity() * 8
    }
}

/// A column of nullable strings: each chunk keeps its rows' text in one
/// buffer, so a row costs 4 bytes plus its text, not an allocation.
#[derive(Debug, Clone, Default)]
pub(crate) struct StrColumn {
    chunks: FlatSpine<StrChunk>,
    len: usize,
}

impl StrColumn {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The text at `row`, `None` for null.
    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<&str> {
        self.chunks[row >> CHUNK_BITS].get(row & (CHUNK - 1))
    }

    /// The text at `row`, with null read as the empty string.
    #[inline]
    pub(crate) fn str(&self, row: usize) -> &str {
        self.get(row).unwrap_or("")
    }

    /// The text at `row`, a null's being empty: without reading the null
    /// bits (a dictionary's codes that rows hold are never null).
    #[inline]
    pub(crate) fn text(&self, row: usize) -> &str {
        let chunk = &self.chunks[row >> CHUNK_BITS];
        let (start, end) = chunk.span(row & (CHUNK - 1));
        chunk.bytes.get(start..end).unwrap_or_default()
    }

    pub(crate) fn push(&mut self, value: Option<&str>) {
        if self.len & (CHUNK - 1) == 0 {
            self.chunks.push(StrChunk::default());
        }
        if let Some(last) = self.chunks.last_mut() {
            last.push(value);
        }
        self.len += 1;
    }

    pub(crate) fn set(&mut self, row: usize, value: Option<&str>) {
        self.chunks
            .make_mut(row >> CHUNK_BITS)
            .set(row & (CHUNK - 1), value);
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.chunks.spine_bytes() + self.chunks.iter().map(|c| c.heap_bytes()).sum::<usize>()
    }
}

/// Stored as its values in row order; read back in full chunks.
impl<T: Clone + Persist> Persist for Chunked<T> {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        out.len(self.len);
        for value in self.iter() {
            value.save(out);
        }
    }
    fn load(input: &mut Decoder<'_>) -> Result<Chunked<T>, Malformed> {
        let n = input.count(T::MIN_BYTES)?;
        let mut chunks = Vec::new();
        let mut left = n;
        while left > 0 {
            let size = left.min(CHUNK);
            let mut chunk = Vec::with_capacity(CHUNK);
            T::load_many(input, size, &mut chunk)?;
            chunks.push(chunk);
            left -= size;
        }
        Ok(Chunked {
            chunks: chunks.into_iter().collect(),
            len: n,
        })
    }
}

impl<T: Clone + Persist> Persist for Sparse<T> {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        self.values.save(out);
    }
    fn load(input: &mut Decoder<'_>) -> Result<Sparse<T>, Malformed> {
        Ok(Sparse {
            values: Persist::load(input)?,
        })
    }
}

impl<T: Clone> Sparse<T> {
    /// The highest row holding a value.
    pub(crate) fn max_row(&self) -> Option<u32> {
        self.values.iter().map(|(r, _)| *r).max()
    }
}

impl StrChunk {
    /// Stores the chunk as its rows' lengths (null as `u32::MAX`), then
    /// its text.
    pub(super) fn save(&self, out: &mut Encoder) {
        for j in 0..self.len() {
            let (start, end) = self.span(j);
            out.u32(if self.is_null(j) {
                NULL_LEN
            } else {
                (end - start) as u32
            });
        }
        out.str(&self.bytes);
    }

    /// Reads back a chunk of `size` rows that [`StrChunk::save`] stored.
    pub(super) fn load(input: &mut Decoder<'_>, size: usize) -> Result<StrChunk, Malformed> {
        let mut lens = Vec::with_capacity(size);
        u32::load_many(input, size, &mut lens)?;
        let mut chunk = StrChunk {
            rows: size as u32,
            ..StrChunk::default()
        };
        let text_len = |len: u32| if len == NULL_LEN { 0 } else { len };
        let uniform = lens.windows(2).all(|w| text_len(w[0]) == text_len(w[1]));
        if uniform {
            chunk.width = lens.first().map_or(0, |&len| text_len(len));
        } else {
            chunk.ends.reserve_exact(size);
        }
        let mut end = 0u64;
        for (j, len) in lens.into_iter().enumerate() {
            if len == NULL_LEN {
                chunk.set_null(j, true);
            }
            end += u64::from(text_len(len));
            if !uniform {
                chunk.ends.push(end.min(u64::from(u32::MAX)) as u32);
            }
        }
        let text = input.str()?;
        if text.len() as u64 != end {
            return Err(input.malformed(format!(
                "a chunk's lengths add up to {end} bytes, its text has {}",
                text.len()
            )));
        }
        // Each row's text must fall on character boundaries.
        if (0..size).any(|j| {
            let (start, end) = chunk.span(j);
            text.get(start..end).is_none()
        }) {
            return Err(input.malformed("a row's text splits a character"));
        }
        chunk.bytes = text.to_owned();
        Ok(chunk)
    }
}

/// Each chunk as [`StrChunk::save`] stores it.
impl Persist for StrColumn {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        out.len(self.len);
        for chunk in self.chunks.iter() {
            chunk.save(out);
        }
    }
    fn load(input: &mut Decoder<'_>) -> Result<StrColumn, Malformed> {
        let n = input.count(4)?;
        let mut chunks = Vec::new();
        let mut left = n;
        while left > 0 {
            let size = left.min(CHUNK);
            chunks.push(StrChunk::load(input, size)?);
            left -= size;
        }
        Ok(StrColumn {
            chunks: chunks.into_iter().collect(),
            len: n,
        })
    }
}

/// The rows of one chunk of a [`StrColumn`] being built.
#[derive(Debug, Default)]
pub(crate) struct StrBlock {
    chunk: StrChunk,
    /// The rows it will hold: room for the ends, should they be needed.
    room: usize,
}

impl StrBlock {
    /// Room for exactly `rows` rows and `text` bytes.
    pub(crate) fn with_room(rows: usize, text: usize) -> StrBlock {
        StrBlock {
            chunk: StrChunk {
                bytes: String::with_capacity(text),
                ..StrChunk::default()
            },
            room: rows,
        }
    }

    /// The chunk built.
    pub(super) fn into_chunk(self) -> StrChunk {
        self.chunk
    }

    pub(crate) fn push(&mut self, value: Option<&str>) {
        let chunk = &mut self.chunk;
        if chunk.ends.is_empty() && chunk.rows > 0 {
            if value.unwrap_or("").len() == chunk.width as usize {
                chunk.push(value);
                return;
            }
            // Exactly the room the block will need, not a chunk's.
            chunk.ends.reserve_exact(self.room);
            chunk.ends.extend((1..=chunk.rows).map(|j| j * chunk.width));
        }
        chunk.push(value);
    }
}

impl StrColumn {
    /// A column of whole chunks (every one but the last full).
    pub(crate) fn from_blocks(blocks: Vec<StrBlock>) -> StrColumn {
        let len = blocks.iter().map(|b| b.chunk.len()).sum();
        debug_assert!(blocks.iter().rev().skip(1).all(|b| b.chunk.len() == CHUNK));
        StrColumn {
            chunks: blocks.into_iter().map(|b| b.chunk).collect(),
            len,
        }
    }

    /// Appends the chunks of `other` after the last row, which ends a
    /// chunk (a large upsert's new rows, built as blocks).
    pub(crate) fn append_aligned(&mut self, other: StrColumn) {
        debug_assert_eq!(self.len % CHUNK, 0);
        self.chunks.extend(other.chunks);
        self.len += other.len;
    }
}

impl<T: Clone> Chunked<T> {
    /// A column of whole chunks (every one but the last full).
    pub(crate) fn from_chunks(chunks: Vec<Vec<T>>) -> Chunked<T> {
        let len = chunks.iter().map(Vec::len).sum();
        debug_assert!(chunks.iter().rev().skip(1).all(|c| c.len() == CHUNK));
        Chunked {
            chunks: chunks.into_iter().collect(),
            len,
        }
    }

    /// Appends the chunks of `other` after the last row, which ends a
    /// chunk (a large upsert's new rows, built as blocks).
    pub(crate) fn append_aligned(&mut self, other: Chunked<T>) {
        debug_assert_eq!(self.len % CHUNK, 0);
        self.chunks.extend(other.chunks);
        self.len += other.len;
    }
}

impl<T: Clone> Sparse<T> {
    /// From `(row, value)` pairs, rows distinct.
    pub(crate) fn from_pairs(pairs: impl IntoIterator<Item = (u32, T)>) -> Sparse<T> {
        let mut values = crate::index::CowMap::default();
        for (row, value) in pairs {
            values.entry_or_insert_with(row, || value);
        }
        Sparse { values }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_clone_is_copy_on_write() {
        let mut a = Chunked::default();
        for i in 0..3000u32 {
            a.push(i);
        }
        let b = a.clone();
        a.set(2500, 7);
        assert_eq!((*a.get(2500), *b.get(2500)), (7, 2500));
        assert_eq!(a.len(), 3000);
        assert_eq!(a.iter().copied().max(), Some(2999));
    }

    #[test]
    fn str_column_overwrites_compact_and_keep_nulls() {
        let mut c = StrColumn::default();
        for i in 0..2000 {
            c.push(if i % 7 == 0 { None } else { Some("seed") });
        }
        let snapshot = c.clone();
        for round in 0..50 {
            for row in (0..2000).step_by(3) {
                let text = format!("row{row}-round{round}-{}", "x".repeat(row % 50));
                c.set(row, Some(&text));
            }
        }
        for row in 0..2000 {
            if row % 3 == 0 {
                assert_eq!(
                    c.get(row),
                    Some(format!("row{row}-round49-{}", "x".repeat(row % 50)).as_str())
                );
            } else {
                assert_eq!(c.get(row), if row % 7 == 0 { None } else { Some("seed") });
            }
            assert_eq!(
                snapshot.get(row),
                if row % 7 == 0 { None } else { Some("seed") }
            );
        }
        c.set(1, None);
        assert_eq!((c.get(1), c.str(1)), (None, ""));
        c.set(1, Some(""));
        assert_eq!(c.get(1), Some(""));
        // Compaction keeps the buffer near the live text, not the history.
        assert!(c.heap_bytes() < 200_000, "{}", c.heap_bytes());
    }
}
