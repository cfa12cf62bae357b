//! Integers in copy-on-write chunks, each chunk kept as offsets from its
//! least value in the fewest whole bytes that hold them (frame of
//! reference).
//!
//! Dictionary codes and timestamps take 4 and 8 bytes as plain integers,
//! but within one chunk of 1,024 rows they rarely need that much: a
//! column of 2,000 projects needs 2 bytes a row, a column with one value
//! (or none) in a chunk needs none, and the timestamps of rows loaded in
//! time order span hours, 5 bytes. Whole bytes rather than bits keep a
//! read to one unaligned load, a mask and an add.
//!
//! One value, `NULL`, is set apart: in a chunk it is the all-ones offset of
//! the chunk's width, which the width is chosen never to need for a value.

use std::mem::size_of;

use super::column::CHUNK;
use crate::codec::{Decoder, Encoder, Malformed, Persist};
use crate::index::FlatSpine;

const CHUNK_BITS: u32 = CHUNK.trailing_zeros();

/// Zero bytes after a chunk's offsets, so that reading any row is one
/// 8-byte load within the buffer.
const PAD: usize = 8;

/// One chunk: its least value and each row's offset from it, `width`
/// bytes little-endian. Width 0: every row holds `base`.
#[derive(Debug, Clone, Default)]
struct PackedChunk {
    base: u64,
    width: u8,
    rows: u16,
    /// `rows * width` bytes of offsets, then [`PAD`] zero bytes (empty
    /// for width 0).
    bytes: Vec<u8>,
}

/// The all-ones offset of `width` bytes (1 to 8): a null.
#[inline]
fn mask(width: usize) -> u64 {
    u64::MAX >> (64 - 8 * width)
}

impl PackedChunk {
    /// The chunk of `values` (at most a chunk's worth).
    fn encode<const NULL: u64>(values: &[u64]) -> PackedChunk {
        let (mut lo, mut hi, mut nulls) = (u64::MAX, 0, 0usize);
        for &v in values {
            if v == NULL {
                nulls += 1;
            } else {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        let rows = values.len() as u16;
        if nulls == values.len() || (nulls == 0 && lo == hi) {
            let base = values.first().copied().unwrap_or(NULL);
            return PackedChunk {
                base,
                width: 0,
                rows,
                bytes: Vec::new(),
            };
        }
        // The offsets run to `hi - lo`; one more stays free for null.
        let span = (hi - lo).saturating_add(1);
        let width = (64 - span.leading_zeros()).div_ceil(8) as usize;
        let mut bytes = Vec::with_capacity(values.len() * width + PAD);
        for &v in values {
            let offset = if v == NULL { mask(width) } else { v - lo };
            bytes.extend_from_slice(&offset.to_le_bytes()[..width]);
        }
        bytes.resize(values.len() * width + PAD, 0);
        PackedChunk {
            base: lo,
            width: width as u8,
            rows,
            bytes,
        }
    }

    #[inline]
    fn get<const NULL: u64>(&self, j: usize) -> u64 {
        let width = self.width as usize;
        if width == 0 {
            return self.base;
        }
        let at = j * width;
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.bytes[at..at + 8]);
        let offset = u64::from_le_bytes(word) & mask(width);
        if offset == mask(width) {
            NULL
        } else {
            self.base + offset
        }
    }

    fn values<const NULL: u64>(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.rows as usize).map(|j| self.get::<NULL>(j))
    }

    /// The offset of `value` if it fits the chunk as it is.
    #[inline]
    fn offset<const NULL: u64>(&self, value: u64) -> Option<u64> {
        let width = self.width as usize;
        if width == 0 {
            return None;
        }
        if value == NULL {
            return Some(mask(width));
        }
        value
            .checked_sub(self.base)
            .filter(|&offset| offset < mask(width))
    }

    fn set<const NULL: u64>(&mut self, j: usize, value: u64) {
        if self.width == 0 && value == self.base {
            return;
        }
        match self.offset::<NULL>(value) {
            Some(offset) => {
                let width = self.width as usize;
                self.bytes[j * width..(j + 1) * width]
                    .copy_from_slice(&offset.to_le_bytes()[..width]);
            }
            None => {
                let mut values: Vec<u64> = self.values::<NULL>().collect();
                values[j] = value;
                *self = PackedChunk::encode::<NULL>(&values);
            }
        }
    }

    fn push<const NULL: u64>(&mut self, value: u64) {
        let j = self.rows as usize;
        if j == 0 {
            *self = PackedChunk::encode::<NULL>(&[value]);
            return;
        }
        if self.width == 0 && value == self.base {
            self.rows += 1;
            return;
        }
        match self.offset::<NULL>(value) {
            Some(offset) => {
                let width = self.width as usize;
                self.bytes.truncate(j * width);
                self.bytes.extend_from_slice(&offset.to_le_bytes()[..width]);
                self.bytes.resize((j + 1) * width + PAD, 0);
                self.rows += 1;
            }
            None => {
                let mut values: Vec<u64> = self.values::<NULL>().collect();
                values.push(value);
                *self = PackedChunk::encode::<NULL>(&values);
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        16 + size_of::<PackedChunk>() + self.bytes.capacity()
    }
}

/// A column of integers in frame-of-reference chunks, `NULL` set apart
/// (see the module's documentation). A clone shares the chunks; a write
/// copies the one it touches.
#[derive(Debug, Clone, Default)]
pub(crate) struct Packed<const NULL: u64> {
    chunks: FlatSpine<PackedChunk>,
    len: usize,
}

impl<const NULL: u64> Packed<NULL> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The value at `i`; `i` must be below `len()`.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.chunks[i >> CHUNK_BITS].get::<NULL>(i & (CHUNK - 1))
    }

    pub(crate) fn set(&mut self, i: usize, value: u64) {
        self.chunks
            .make_mut(i >> CHUNK_BITS)
            .set::<NULL>(i & (CHUNK - 1), value);
    }

    pub(crate) fn push(&mut self, value: u64) {
        if self.len & (CHUNK - 1) == 0 {
            self.chunks.push(PackedChunk::default());
        }
        if let Some(last) = self.chunks.last_mut() {
            last.push::<NULL>(value);
        }
        self.len += 1;
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.chunks.iter().flat_map(|c| c.values::<NULL>())
    }

    /// A column of whole chunks (every one but the last full).
    pub(crate) fn from_chunks<T: Copy + Into<u64>>(chunks: &[Vec<T>]) -> Packed<NULL> {
        debug_assert!(chunks.iter().rev().skip(1).all(|c| c.len() == CHUNK));
        let mut values = Vec::with_capacity(CHUNK);
        let chunks: FlatSpine<_> = chunks
            .iter()
            .map(|chunk| {
                values.clear();
                values.extend(chunk.iter().map(|&v| v.into()));
                PackedChunk::encode::<NULL>(&values)
            })
            .collect();
        let len = chunks.iter().map(|c| c.rows as usize).sum();
        Packed { chunks, len }
    }

    /// Appends the chunks of `other` after the last row, which ends a
    /// chunk (a large upsert's new rows, built as blocks).
    pub(crate) fn append_aligned(&mut self, other: Packed<NULL>) {
        debug_assert_eq!(self.len % CHUNK, 0);
        self.chunks.extend(other.chunks);
        self.len += other.len;
    }

    /// Heap bytes held, counting shared chunks in full.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.chunks.spine_bytes() + self.chunks.iter().map(|c| c.heap_bytes()).sum::<usize>()
    }
}

/// Stored as each chunk is held: base, width, row count, offsets (without
/// the padding).
impl<const NULL: u64> Persist for Packed<NULL> {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        out.len(self.chunks.len());
        for chunk in self.chunks.iter() {
            out.u64(chunk.base);
            out.u8(chunk.width);
            out.u32(u32::from(chunk.rows));
            let width = chunk.width as usize;
            out.bytes(&chunk.bytes[..chunk.rows as usize * width]);
        }
    }
    fn load(input: &mut Decoder<'_>) -> Result<Packed<NULL>, Malformed> {
        let n = input.count(21)?;
        let mut chunks = Vec::new();
        let mut len = 0usize;
        for i in 0..n {
            let base = input.u64()?;
            let width = input.u8()?;
            let rows = input.u32()? as usize;
            let last = i + 1 == n;
            if rows == 0 || rows > CHUNK || (!last && rows != CHUNK) {
                return Err(input.malformed(format!(
                    "chunk {i} of {n} holds {rows} rows (every chunk but the last holds {CHUNK})"
                )));
            }
            if width > 8 {
                return Err(input.malformed(format!(
                    "chunk {i} has offsets of {width} bytes (at most 8)"
                )));
            }
            let offsets = input.bytes()?;
            let w = width as usize;
            if offsets.len() != rows * w {
                return Err(input.malformed(format!(
                    "chunk {i} has {} bytes of offsets for {rows} rows of {width} bytes",
                    offsets.len()
                )));
            }
            // Every offset below the null one must give a value that fits.
            if w > 0 && base.checked_add(mask(w) - 1).is_none() {
                return Err(input.malformed(format!(
                    "chunk {i}'s base {base} overflows with offsets of {width} bytes"
                )));
            }
            let mut bytes = Vec::new();
            if w > 0 {
                bytes.reserve_exact(offsets.len() + PAD);
                bytes.extend_from_slice(offsets);
                bytes.resize(offsets.len() + PAD, 0);
            }
            chunks.push(PackedChunk {
                base,
                width,
                rows: rows as u16,
                bytes,
            });
            len += rows;
        }
        Ok(Packed {
            chunks: chunks.into_iter().collect(),
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NULL: u64 = u32::MAX as u64;

    fn check(p: &Packed<NULL>, want: &[u64]) {
        assert_eq!(p.len(), want.len());
        for (i, &v) in want.iter().enumerate() {
            assert_eq!(p.get(i), v, "row {i}");
        }
        assert_eq!(p.iter().collect::<Vec<_>>(), want);
        let mut out = Encoder::default();
        p.save(&mut out);
        let bytes = out.bytes;
        let back = Packed::<NULL>::load(&mut Decoder::new(&bytes)).unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), want);
    }

    #[test]
    fn widths_follow_the_spread_and_nulls_stay_apart() {
        for (values, width) in [
            (vec![7u64; 5], 0),
            (vec![NULL; 5], 0),
            (vec![7, NULL, 7], 1),
            (vec![300, 554], 1),
            (vec![300, 555], 2),
            (vec![0, 1 << 40, NULL], 6),
            (vec![NULL - 1, 0], 4),
        ] {
            let p = Packed::<NULL>::from_chunks(std::slice::from_ref(&values));
            assert_eq!(p.chunks[0].width, width, "{values:?}");
            check(&p, &values);
        }
    }

    #[test]
    fn pushes_and_sets_rewiden_the_chunk_and_clones_stay() {
        let mut p = Packed::<NULL>::default();
        let mut want = Vec::new();
        for i in 0..3000u64 {
            let v = match i % 7 {
                0 => NULL,
                1 => i * 1000,
                _ => 5,
            };
            p.push(v);
            want.push(v);
        }
        check(&p, &want);
        let before = p.clone();
        for (i, v) in [(0, 1), (5, NULL), (1500, 0), (2999, NULL - 1), (2999, 3)] {
            p.set(i, v);
            want[i] = v;
        }
        check(&p, &want);
        assert_eq!(before.get(0), NULL, "a clone keeps its values");
        assert!(p.heap_bytes() < 3000 * 4 + 1000);
    }

    #[test]
    fn malformed_chunks_are_refused() {
        let p = Packed::<NULL>::from_chunks(&[vec![1u64, 2, 3]]);
        let mut out = Encoder::default();
        p.save(&mut out);
        let good = out.bytes;
        assert!(Packed::<NULL>::load(&mut Decoder::new(&good)).is_ok());
        // The width byte sits after the count (8) and the base (8).
        let mut wide = good.clone();
        wide[16] = 9;
        assert!(Packed::<NULL>::load(&mut Decoder::new(&wide)).is_err());
        let mut overflow = good.clone();
        overflow[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Packed::<NULL>::load(&mut Decoder::new(&overflow)).is_err());
        for cut in 0..good.len() {
            assert!(Packed::<NULL>::load(&mut Decoder::new(&good[..cut])).is_err());
        }
    }
}
