//! Unique strings — backup and checkpoint ids — with UUIDs kept as their
//! 16 bytes.
//!
//! Nearly every id a cloud service hands out is a UUID in its canonical
//! text (`8-4-4-4-12` lowercase hex digits): 36 bytes of text that hold 16
//! bytes of information. A chunk whose rows all are such UUIDs (or null)
//! keeps the 16 bytes; the first row of any other text turns the chunk into
//! plain text (see [`StrChunk`]), so every id still reads back exactly as
//! it was sent. Canonical lowercase hex sorts by its bytes exactly as the
//! 16 bytes do (the digits `0-9a-f` are in byte order, the hyphens at the
//! same places), so two UUID rows compare without being formatted.

use std::cmp::Ordering;
use std::fmt;
use std::mem::size_of;

use super::column::{StrBlock, StrChunk, CHUNK};
use crate::codec::{Decoder, Encoder, Malformed, Persist};
use crate::index::FlatSpine;

const CHUNK_BITS: u32 = CHUNK.trailing_zeros();

/// Where the canonical text has its hyphens.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Every byte's two hex digits, back to back: the digits of byte `b` are
/// `HEX_PAIRS[2 * b..2 * b + 2]`, already text.
const HEX_PAIRS: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\
202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f\
404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f\
606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f\
808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f\
a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\
c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf\
e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

/// Appends the canonical text of a UUID's 16 bytes (the hot path of
/// rendering ids: no buffer to check as UTF-8).
#[inline]
pub(crate) fn push_uuid(out: &mut String, raw: &[u8; 16]) {
    for (i, &byte) in raw.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let at = 2 * byte as usize;
        out.push_str(&HEX_PAIRS[at..at + 2]);
    }
}

/// The 16 bytes of a UUID in canonical lowercase text, `None` for any
/// other text (uppercase included: it would not read back the same).
pub(crate) fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let t = text.as_bytes();
    if t.len() != 36 || HYPHENS.iter().any(|&i| t[i] != b'-') {
        return None;
    }
    // A table lookup per digit, one test for the whole text at the end:
    // ids are parsed once per row of every load.
    let mut out = [0u8; 16];
    let mut invalid = 0u8;
    for (byte, at) in out.iter_mut().zip(DIGIT_PAIRS) {
        let (hi, lo) = (NIBBLE[t[at] as usize], NIBBLE[t[at + 1] as usize]);
        invalid |= hi | lo;
        *byte = (hi << 4) | (lo & 15);
    }
    (invalid & NOT_HEX == 0).then_some(out)
}

/// Where each pair of hex digits of a canonical UUID starts.
const DIGIT_PAIRS: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/// A byte's value as a lowercase hex digit, or [`NOT_HEX`].
const NIBBLE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 16 {
        table[HEX[i] as usize] = i as u8;
        i += 1;
    }
    table
};
const NOT_HEX: u8 = 0x10;

/// The canonical text of a UUID's 16 bytes.
pub(crate) fn format_uuid(raw: &[u8; 16]) -> [u8; 36] {
    let mut out = [b'-'; 36];
    let mut at = 0;
    for (i, &byte) in raw.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        out[at] = HEX[(byte >> 4) as usize];
        out[at + 1] = HEX[(byte & 15) as usize];
        at += 2;
    }
    out
}

/// An id looked for, parsed once for the comparisons of a search: its text
/// and, when it is a canonical UUID, its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdProbe<'a> {
    text: &'a str,
    uuid: Option<[u8; 16]>,
}

impl<'a> IdProbe<'a> {
    pub(crate) fn new(text: &'a str) -> IdProbe<'a> {
        IdProbe {
            text,
            uuid: parse_uuid(text),
        }
    }

    /// The id looked for.
    pub(crate) fn text(&self) -> &'a str {
        self.text
    }
}

/// An id as a row holds it: its text, or the 16 bytes of a UUID.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IdText<'a> {
    Text(&'a str),
    Uuid(&'a [u8; 16]),
}

impl IdText<'_> {
    /// Calls `f` with the text (a UUID formatted on the stack).
    #[inline]
    pub(crate) fn with_str<R>(self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            IdText::Text(text) => f(text),
            IdText::Uuid(raw) => {
                let text = format_uuid(raw);
                f(std::str::from_utf8(&text).unwrap_or_default())
            }
        }
    }

    /// Compares with `value` by bytes, as the texts would.
    #[inline]
    pub(crate) fn cmp_str(self, value: &str) -> Ordering {
        self.cmp_probe(&IdProbe::new(value))
    }

    /// Compares with a probe by bytes, as the texts would.
    #[inline]
    pub(crate) fn cmp_probe(self, probe: &IdProbe<'_>) -> Ordering {
        match (self, &probe.uuid) {
            (IdText::Uuid(raw), Some(other)) => raw.cmp(other),
            _ => self.with_str(|text| text.as_bytes().cmp(probe.text.as_bytes())),
        }
    }

    #[inline]
    pub(crate) fn eq_str(self, value: &str) -> bool {
        self.cmp_str(value) == Ordering::Equal
    }

    /// The first eight bytes of the text as a big-endian integer (zeros
    /// past its end): the same order as the texts, for most pairs.
    #[inline]
    pub(crate) fn prefix(self) -> u64 {
        match self {
            // Eight hex digits before the first hyphen: four bytes.
            IdText::Uuid(raw) => {
                u64::from_be_bytes(format_uuid(raw)[..8].try_into().unwrap_or_default())
            }
            IdText::Text(text) => {
                let mut first = [0u8; 8];
                let n = text.len().min(8);
                first[..n].copy_from_slice(&text.as_bytes()[..n]);
                u64::from_be_bytes(first)
            }
        }
    }
}

impl Ord for IdText<'_> {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        match (*self, *other) {
            (IdText::Uuid(a), IdText::Uuid(b)) => a.cmp(b),
            (a, IdText::Text(b)) => a.cmp_str(b),
            (IdText::Text(a), b) => b.cmp_str(a).reverse(),
        }
    }
}

impl PartialOrd for IdText<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for IdText<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for IdText<'_> {}

impl fmt::Display for IdText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_str(|text| f.write_str(text))
    }
}

/// One chunk of an [`IdColumn`].
#[derive(Debug, Clone)]
enum IdChunk {
    /// Every row a UUID or null: the 16 bytes (zeros for null).
    Uuids {
        raw: Vec<[u8; 16]>,
        /// Bit `j` set: row `j` is null.
        nulls: Vec<u64>,
    },
    Texts(StrChunk),
}

impl Default for IdChunk {
    fn default() -> Self {
        IdChunk::Uuids {
            raw: Vec::new(),
            nulls: Vec::new(),
        }
    }
}

fn bit(words: &[u64], j: usize) -> bool {
    words.get(j / 64).is_some_and(|w| w >> (j % 64) & 1 == 1)
}

fn set_bit(words: &mut Vec<u64>, j: usize, on: bool) {
    if words.len() <= j / 64 {
        if !on {
            return;
        }
        words.resize(j / 64 + 1, 0);
    }
    if on {
        words[j / 64] |= 1 << (j % 64);
    } else {
        words[j / 64] &= !(1 << (j % 64));
    }
}

impl IdChunk {
    fn len(&self) -> usize {
        match self {
            IdChunk::Uuids { raw, .. } => raw.len(),
            IdChunk::Texts(chunk) => chunk.len(),
        }
    }

    #[inline]
    fn get(&self, j: usize) -> Option<IdText<'_>> {
        match self {
            IdChunk::Uuids { raw, nulls } => (!bit(nulls, j)).then(|| IdText::Uuid(&raw[j])),
            IdChunk::Texts(chunk) => chunk.get(j).map(IdText::Text),
        }
    }

    /// Turns a chunk of UUIDs into plain text, before a row that is no
    /// UUID comes.
    fn make_texts(&mut self) {
        if let IdChunk::Uuids { raw, nulls } = self {
            let mut chunk = StrChunk::default();
            for (j, uuid) in raw.iter().enumerate() {
                let text = format_uuid(uuid);
                let text = std::str::from_utf8(&text).unwrap_or_default();
                chunk.push((!bit(nulls, j)).then_some(text));
            }
            *self = IdChunk::Texts(chunk);
        }
    }

    fn push(&mut self, value: Option<&str>) {
        if let IdChunk::Uuids { raw, nulls } = self {
            match value.map(parse_uuid) {
                None => {
                    raw.push([0; 16]);
                    set_bit(nulls, raw.len() - 1, true);
                    return;
                }
                Some(Some(uuid)) => {
                    if raw.capacity() == 0 {
                        raw.reserve_exact(CHUNK);
                    }
                    raw.push(uuid);
                    return;
                }
                Some(None) => self.make_texts(),
            }
        }
        if let IdChunk::Texts(chunk) = self {
            chunk.push(value);
        }
    }

    fn set(&mut self, j: usize, value: Option<&str>) {
        if let IdChunk::Uuids { raw, nulls } = self {
            match value.map(parse_uuid) {
                None => {
                    raw[j] = [0; 16];
                    set_bit(nulls, j, true);
                    return;
                }
                Some(Some(uuid)) => {
                    raw[j] = uuid;
                    set_bit(nulls, j, false);
                    return;
                }
                Some(None) => self.make_texts(),
            }
        }
        if let IdChunk::Texts(chunk) = self {
            chunk.set(j, value);
        }
    }

    fn heap_bytes(&self) -> usize {
        16 + size_of::<IdChunk>()
            + match self {
                IdChunk::Uuids { raw, nulls } => raw.capacity() * 16 + nulls.capacity() * 8,
                IdChunk::Texts(chunk) => chunk.heap_bytes() - 16 - size_of::<StrChunk>(),
            }
    }
}

/// A column of unique nullable strings, UUIDs kept as 16 bytes (see the
/// module's documentation). A clone shares the chunks; a write copies the
/// one it touches.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdColumn {
    chunks: FlatSpine<IdChunk>,
    len: usize,
}

impl IdColumn {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The id at `row`, `None` for null.
    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<IdText<'_>> {
        self.chunks[row >> CHUNK_BITS].get(row & (CHUNK - 1))
    }

    /// The id at `row`, null read as the empty string.
    #[inline]
    pub(crate) fn id(&self, row: usize) -> IdText<'_> {
        self.get(row).unwrap_or(IdText::Text(""))
    }

    pub(crate) fn push(&mut self, value: Option<&str>) {
        if self.len & (CHUNK - 1) == 0 {
            self.chunks.push(IdChunk::default());
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

    /// A column of whole blocks (every one but the last full).
    pub(crate) fn from_blocks(blocks: Vec<IdBlock>) -> IdColumn {
        let len = blocks.iter().map(|b| b.chunk.len()).sum();
        debug_assert!(blocks.iter().rev().skip(1).all(|b| b.chunk.len() == CHUNK));
        IdColumn {
            chunks: blocks.into_iter().map(|b| b.chunk).collect(),
            len,
        }
    }

    /// Appends the chunks of `other` after the last row, which ends a
    /// chunk (a large upsert's new rows, built as blocks).
    pub(crate) fn append_aligned(&mut self, other: IdColumn) {
        debug_assert_eq!(self.len % CHUNK, 0);
        self.chunks.extend(other.chunks);
        self.len += other.len;
    }
}

/// The rows of one chunk of an [`IdColumn`] being built, allocated once:
/// 16 bytes a row while they are UUIDs, the exact text otherwise.
#[derive(Debug, Default)]
pub(crate) struct IdBlock {
    chunk: IdChunk,
    rows: usize,
    text: usize,
}

impl IdBlock {
    /// Room for exactly `rows` rows holding `text` bytes of text.
    pub(crate) fn with_room(rows: usize, text: usize) -> IdBlock {
        IdBlock {
            chunk: IdChunk::Uuids {
                raw: Vec::with_capacity(rows),
                nulls: Vec::new(),
            },
            rows,
            text,
        }
    }

    pub(crate) fn push(&mut self, value: &str) {
        if let IdChunk::Uuids { raw, .. } = &mut self.chunk {
            if let Some(uuid) = parse_uuid(value) {
                raw.push(uuid);
                return;
            }
            // Not all UUIDs: the block's exact text, as a text block.
            let mut block = StrBlock::with_room(self.rows, self.text);
            for uuid in raw.iter() {
                block.push(std::str::from_utf8(&format_uuid(uuid)).ok());
            }
            block.push(Some(value));
            self.chunk = IdChunk::Texts(block.into_chunk());
            return;
        }
        if let IdChunk::Texts(chunk) = &mut self.chunk {
            chunk.push(Some(value));
        }
    }
}

/// Tag of a chunk of UUIDs in a snapshot (then of plain text).
const UUIDS: u8 = 0;
const TEXTS: u8 = 1;

/// Each chunk as a tag, then its 16-byte UUIDs and null bits, or its text
/// as [`StrChunk`] stores it.
impl Persist for IdColumn {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        out.len(self.len);
        for chunk in self.chunks.iter() {
            match chunk {
                IdChunk::Uuids { raw, nulls } => {
                    out.u8(UUIDS);
                    out.bytes(raw.as_flattened());
                    out.seq(nulls.iter());
                }
                IdChunk::Texts(chunk) => {
                    out.u8(TEXTS);
                    chunk.save(out);
                }
            }
        }
    }
    fn load(input: &mut Decoder<'_>) -> Result<IdColumn, Malformed> {
        let n = input.count(1)?;
        let mut chunks = Vec::new();
        let mut left = n;
        while left > 0 {
            let size = left.min(CHUNK);
            let chunk = match input.u8()? {
                UUIDS => {
                    let bytes = input.bytes()?;
                    if bytes.len() != size * 16 {
                        return Err(input.malformed(format!(
                            "a chunk of {size} UUIDs holds {} bytes",
                            bytes.len()
                        )));
                    }
                    let mut raw = Vec::with_capacity(size);
                    raw.extend(bytes.chunks_exact(16).map(|b| {
                        let mut uuid = [0u8; 16];
                        uuid.copy_from_slice(b);
                        uuid
                    }));
                    let nulls: Vec<u64> = input.seq()?;
                    if nulls.len() > size.div_ceil(64) {
                        return Err(input.malformed(format!(
                            "a chunk of {size} rows has {} words of null bits",
                            nulls.len()
                        )));
                    }
                    IdChunk::Uuids { raw, nulls }
                }
                TEXTS => IdChunk::Texts(StrChunk::load(input, size)?),
                other => return Err(input.malformed(format!("{other} is not an id chunk tag"))),
            };
            chunks.push(chunk);
            left -= size;
        }
        Ok(IdColumn {
            chunks: chunks.into_iter().collect(),
            len: n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "8172f6f2-3c7a-47ba-848e-de1b71b1f075";
    const B: &str = "ad3ea31a-b46b-4dd6-b795-df9ad83ccee7";

    #[test]
    fn only_canonical_lowercase_uuids_are_kept_as_bytes() {
        let raw = parse_uuid(A).unwrap();
        assert_eq!(&format_uuid(&raw), A.as_bytes());
        for raw in [
            raw,
            [0; 16],
            [255; 16],
            std::array::from_fn(|i| i as u8 * 17),
        ] {
            let mut pushed = String::from("x");
            push_uuid(&mut pushed, &raw);
            assert_eq!(pushed.as_bytes()[1..], format_uuid(&raw));
            assert_eq!(parse_uuid(&pushed[1..]), Some(raw));
        }
        for other in [
            "8172F6F2-3C7A-47BA-848E-DE1B71B1F075",
            "8172f6f23c7a47ba848ede1b71b1f075",
            "8172f6f2-3c7a-47ba-848e-de1b71b1f07",
            "8172f6f2-3c7a-47ba-848e_de1b71b1f075",
            "8172f6f2-3c7a-47ba-848e-de1b71b1f07g",
            "é172f6f-3c7a-47ba-848e-de1b71b1f075",
        ] {
            assert_eq!(parse_uuid(other), None, "{other}");
        }
    }

    #[test]
    fn a_uuid_with_any_one_byte_changed_parses_iff_it_is_still_canonical() {
        for at in 0..A.len() {
            for byte in 0..=255u8 {
                let mut text = A.as_bytes().to_vec();
                text[at] = byte;
                let Ok(text) = String::from_utf8(text) else {
                    continue;
                };
                let canonical = if HYPHENS.contains(&at) {
                    byte == b'-'
                } else {
                    HEX.contains(&byte)
                };
                let parsed = parse_uuid(&text);
                assert_eq!(parsed.is_some(), canonical, "{text:?}");
                if let Some(raw) = parsed {
                    assert_eq!(&format_uuid(&raw), text.as_bytes());
                }
            }
        }
    }

    #[test]
    fn uuid_and_text_rows_compare_as_their_texts() {
        let (a, b) = (parse_uuid(A).unwrap(), parse_uuid(B).unwrap());
        let texts = ["", "8", "8172f6f2", A, "8172f6f2-zz", B, "b", "~"];
        for x in texts {
            for y in texts {
                let want = x.as_bytes().cmp(y.as_bytes());
                let as_id = |t: &'static str| match t {
                    A => IdText::Uuid(&a),
                    B => IdText::Uuid(&b),
                    t => IdText::Text(t),
                };
                assert_eq!(as_id(x).cmp(&as_id(y)), want, "{x} {y}");
                assert_eq!(as_id(x).cmp_str(y), want, "{x} {y}");
                assert_eq!(as_id(x).prefix().cmp(&IdText::Text(y).prefix()), {
                    let p = |t: &str| t.as_bytes()[..t.len().min(8)].to_vec();
                    p(x).cmp(&p(y))
                });
            }
        }
    }

    fn texts(col: &IdColumn) -> Vec<Option<String>> {
        (0..col.len())
            .map(|r| col.get(r).map(|t| t.to_string()))
            .collect()
    }

    #[test]
    fn a_row_of_other_text_turns_the_chunk_to_text_and_back_reads_the_same() {
        let mut col = IdColumn::default();
        let mut want = Vec::new();
        for i in 0..2500 {
            let v = match i % 500 {
                7 => None,
                _ => Some(format!("{:08x}-3c7a-47ba-848e-de1b71b1f075", i)),
            };
            col.push(v.as_deref());
            want.push(v);
        }
        assert!(col
            .chunks
            .iter()
            .all(|c| matches!(c, IdChunk::Uuids { .. })));
        let shared = col.clone();
        col.set(1030, Some("b-not-a-uuid"));
        want[1030] = Some("b-not-a-uuid".into());
        col.set(3, None);
        want[3] = None;
        col.set(7, Some(A));
        want[7] = Some(A.into());
        assert!(matches!(col.chunks[1], IdChunk::Texts(_)));
        assert!(matches!(col.chunks[0], IdChunk::Uuids { .. }));
        assert_eq!(texts(&col), want);
        assert_eq!(
            shared.get(1030).map(|t| t.to_string()),
            Some("00000406-3c7a-47ba-848e-de1b71b1f075".into())
        );
        let mut out = Encoder::default();
        col.save(&mut out);
        let back = IdColumn::load(&mut Decoder::new(&out.bytes)).unwrap();
        assert_eq!(texts(&back), want);
        for cut in 0..out.bytes.len().min(3000) {
            assert!(IdColumn::load(&mut Decoder::new(&out.bytes[..cut])).is_err());
        }
    }

    #[test]
    fn a_block_turns_to_text_with_its_exact_room() {
        let rows = [A, B, "x", A];
        let mut block = IdBlock::with_room(4, rows.iter().map(|r| r.len()).sum());
        for r in rows {
            block.push(r);
        }
        let col = IdColumn::from_blocks(vec![block]);
        let got: Vec<_> = (0..4).map(|r| col.id(r).to_string()).collect();
        assert_eq!(got, rows);
    }
}
