//! Dictionary encoding: each distinct string of a column gets a `u32` code.

use super::column::{Chunked, StrColumn};
use super::packed::Packed;
use crate::codec::{Decoder, Encoder, Malformed, Persist};
use crate::index::{text_hash, CowTable};

/// The code of a null value. Never handed out for a string.
pub(crate) const NULL_CODE: u32 = u32::MAX;

/// Distinct strings of one column and their codes, reference-counted by the
/// rows that hold them: a code whose last row goes away is freed and reused,
/// so a deleted value leaves no trace.
///
/// The texts live once, by code, in a chunked text column (a dictionary of
/// 100,000 resource ids is a hundred buffers, not 100,000 allocations);
/// the lookup table holds only codes, found by the texts' hashes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dict {
    /// Each code's text; null for a freed code.
    texts: StrColumn,
    /// The live codes, by their texts' hashes.
    codes: CowTable,
    refs: Chunked<u32>,
    free: Vec<u32>,
}

impl Dict {
    /// The code of `value`, if some row holds it.
    pub(crate) fn code(&self, value: &str) -> Option<u32> {
        let texts = &self.texts;
        self.codes.find(text_hash(value), |code| {
            texts.get(code as usize) == Some(value)
        })
    }

    /// The string of a live `code`; `""` for a freed or null code.
    pub(crate) fn value(&self, code: u32) -> &str {
        self.value_opt(code).unwrap_or("")
    }

    #[inline]
    pub(crate) fn value_opt(&self, code: u32) -> Option<&str> {
        if (code as usize) < self.texts.len() {
            self.texts.get(code as usize)
        } else {
            None
        }
    }

    /// One past the highest code ever handed out.
    pub(crate) fn code_bound(&self) -> usize {
        self.texts.len()
    }

    /// The number of distinct live values.
    pub(crate) fn len(&self) -> usize {
        self.codes.len()
    }

    /// References held on `code`.
    pub(crate) fn refs(&self, code: u32) -> u32 {
        if (code as usize) < self.refs.len() {
            *self.refs.get(code as usize)
        } else {
            0
        }
    }

    /// Every live `(code, value)`.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &str)> + '_ {
        (0..self.texts.len()).filter_map(|c| self.texts.get(c).map(|v| (c as u32, v)))
    }

    /// Takes a reference on `value`, giving it a code if it has none;
    /// returns the code.
    pub(crate) fn acquire(&mut self, value: &str) -> u32 {
        self.acquire_many(value, 1)
    }

    /// Takes `n` references on `value`; returns its code.
    fn acquire_many(&mut self, value: &str, n: u32) -> u32 {
        self.acquire_hashed(value, text_hash(value), n)
    }

    /// [`Dict::acquire_many`] with the value's [`text_hash`] at hand.
    fn acquire_hashed(&mut self, value: &str, hash: u64, n: u32) -> u32 {
        let texts = &self.texts;
        if let Some(code) = self
            .codes
            .find(hash, |code| texts.get(code as usize) == Some(value))
        {
            let r = *self.refs.get(code as usize);
            self.refs.set(code as usize, r + n);
            return code;
        }
        let code = match self.free.pop() {
            Some(code) => {
                self.texts.set(code as usize, Some(value));
                self.refs.set(code as usize, n);
                code
            }
            None => {
                let code = self.texts.len() as u32;
                self.texts.push(Some(value));
                self.refs.push(n);
                code
            }
        };
        let texts = &self.texts;
        self.codes.insert(hash, code, |c| {
            text_hash(texts.get(c as usize).unwrap_or_default())
        });
        code
    }

    /// Drops a reference on `code`; returns whether that was the last one
    /// and the code is now free.
    pub(crate) fn release(&mut self, code: u32) -> bool {
        if code == NULL_CODE {
            return false;
        }
        let i = code as usize;
        let r = *self.refs.get(i);
        if r > 1 {
            self.refs.set(i, r - 1);
            return false;
        }
        self.refs.set(i, 0);
        if let Some(value) = self.texts.get(i) {
            self.codes.remove(text_hash(value), code);
        }
        self.texts.set(i, None);
        self.free.push(code);
        true
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.codes.heap_bytes()
            + self.texts.heap_bytes()
            + self.refs.heap_bytes()
            + self.free.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_refcounted_and_reused() {
        let mut d = Dict::default();
        let a = d.acquire("a");
        assert_eq!(d.refs(a), 1);
        assert_eq!(d.acquire("a"), a);
        assert_eq!(d.refs(a), 2);
        let b = d.acquire("b");
        assert!(!d.release(a));
        assert!(d.release(a));
        assert_eq!((d.code("a"), d.len()), (None, 1));
        let c = d.acquire("c");
        assert_eq!(c, a, "freed codes are reused");
        assert_eq!((d.value(c), d.value(b)), ("c", "b"));
        assert_eq!(d.iter().count(), 2);
        assert!(!d.release(NULL_CODE));
    }
}

/// A dictionary-encoded column: one code per row, null as [`NULL_CODE`],
/// packed per chunk (a chunk needs only the bytes its codes' spread does).
#[derive(Debug, Clone, Default)]
pub(crate) struct DictColumn {
    pub(crate) dict: Dict,
    codes: Packed<{ NULL_CODE as u64 }>,
}

impl DictColumn {
    pub(crate) fn push_null(&mut self) {
        self.codes.push(NULL_CODE.into());
    }

    /// Every code is a `u32`: the column only ever stores those.
    #[inline]
    pub(crate) fn code(&self, row: usize) -> u32 {
        self.codes.get(row) as u32
    }

    /// A row's value; `None` for null. A code a row holds is live, so its
    /// text is read without the dictionary's null bits.
    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<&str> {
        let code = self.code(row) as usize;
        (code < self.dict.texts.len()).then(|| self.dict.texts.text(code))
    }

    #[inline]
    pub(crate) fn str(&self, row: usize) -> &str {
        self.get(row).unwrap_or("")
    }

    /// Sets a row that holds null to `value`.
    pub(crate) fn assign(&mut self, row: usize, value: Option<&str>) {
        let code = value.map_or(NULL_CODE, |v| self.dict.acquire(v));
        self.codes.set(row, code.into());
    }

    /// Sets a row to null, releasing its value.
    pub(crate) fn clear(&mut self, row: usize) {
        let code = self.code(row);
        self.codes.set(row, NULL_CODE.into());
        self.dict.release(code);
    }

    pub(crate) fn codes(&self) -> impl Iterator<Item = u32> + '_ {
        self.codes.iter().map(|c| c as u32)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.dict.heap_bytes() + self.codes.heap_bytes()
    }
}

/// Stored as its values by code (freed codes as null), their reference
/// counts and the free codes; the value-to-code map is rebuilt, checking
/// that no value has two codes.
impl Persist for Dict {
    const MIN_BYTES: usize = 24;
    fn save(&self, out: &mut Encoder) {
        out.len(self.texts.len());
        for code in 0..self.texts.len() {
            match self.texts.get(code) {
                None => out.u8(0),
                Some(v) => {
                    out.u8(1);
                    out.str(v);
                }
            }
        }
        self.refs.save(out);
        out.seq(self.free.iter());
    }
    fn load(input: &mut Decoder<'_>) -> Result<Dict, Malformed> {
        let n = input.count(1)?;
        let mut dict = Dict::default();
        for code in 0..n as u32 {
            match input.u8()? {
                0 => dict.texts.push(None),
                1 => {
                    let text = input.str()?;
                    if dict.code(text).is_some() {
                        return Err(input.malformed(format!("the value {text:?} has two codes")));
                    }
                    dict.texts.push(Some(text));
                    let texts = &dict.texts;
                    dict.codes.insert(text_hash(text), code, |c| {
                        text_hash(texts.get(c as usize).unwrap_or_default())
                    });
                }
                other => return Err(input.malformed(format!("{other} is not an option tag"))),
            }
        }
        dict.refs = Persist::load(input)?;
        dict.free = input.seq()?;
        if dict.refs.len() != n {
            return Err(input.malformed(format!(
                "{n} values but {} reference counts",
                dict.refs.len()
            )));
        }
        let live_mismatch = (0..n).any(|c| dict.texts.get(c).is_some() != (*dict.refs.get(c) > 0));
        // A free code is a freed one, listed once (handed out twice, it
        // would stand for two values).
        let mut listed = roaring::RoaringBitmap::new();
        let bad_free = dict
            .free
            .iter()
            .any(|&c| c as usize >= n || dict.texts.get(c as usize).is_some() || !listed.insert(c));
        if live_mismatch || bad_free {
            return Err(input.malformed("reference counts, values and free codes disagree"));
        }
        Ok(dict)
    }
}

/// The dictionary, then one code per row; every code is null or one the
/// dictionary has.
impl Persist for DictColumn {
    const MIN_BYTES: usize = 32;
    fn save(&self, out: &mut Encoder) {
        self.dict.save(out);
        self.codes.save(out);
    }
    fn load(input: &mut Decoder<'_>) -> Result<DictColumn, Malformed> {
        let dict = Dict::load(input)?;
        let codes: Packed<{ NULL_CODE as u64 }> = Persist::load(input)?;
        let bound = dict.code_bound() as u64;
        if codes
            .iter()
            .any(|c| c != u64::from(NULL_CODE) && c >= bound)
        {
            return Err(input.malformed(format!(
                "a row holds a code the dictionary of {bound} codes lacks"
            )));
        }
        Ok(DictColumn { dict, codes })
    }
}

impl DictColumn {
    /// The number of rows.
    pub(crate) fn len(&self) -> usize {
        self.codes.len()
    }
}

/// The distinct values of one block of rows, in first-seen order, with how
/// many rows hold each: merged into the column's dictionary once.
#[derive(Debug, Default)]
pub(crate) struct LocalDict {
    /// The values back to back, in first-seen order: no allocation per
    /// value, so building leaves no small holes behind.
    text: String,
    /// Where each value ends in `text`, its hash and its rows.
    values: Vec<(u32, u64, u32)>,
    /// The local codes, by hash.
    table: hashbrown::HashTable<u32>,
}

impl LocalDict {
    fn value(&self, code: usize) -> &str {
        let start = match code {
            0 => 0,
            _ => self.values[code - 1].0 as usize,
        };
        &self.text[start..self.values[code].0 as usize]
    }

    /// The block-local code of `value`, counting one more row.
    pub(crate) fn code(&mut self, value: &str) -> u32 {
        let hash = text_hash(value);
        if let Some(&code) = self.table.find(hash, |&c| self.value(c as usize) == value) {
            self.values[code as usize].2 += 1;
            return code;
        }
        let code = self.values.len() as u32;
        self.text.push_str(value);
        self.values.push((self.text.len() as u32, hash, 1));
        let values = &self.values;
        self.table
            .insert_unique(hash, code, |&c| values[c as usize].1);
        code
    }
}

impl Dict {
    /// Takes a block's values, each with its rows as references; returns
    /// the block's local-to-global code map.
    pub(crate) fn merge_one(&mut self, local: &LocalDict) -> Vec<u32> {
        (0..local.values.len())
            .map(|c| {
                let (_, hash, refs) = local.values[c];
                self.acquire_hashed(local.value(c), hash, refs)
            })
            .collect()
    }
}

/// One block of a [`DictColumn`] being built: local codes and values.
#[derive(Debug, Default)]
pub(crate) struct DictBlock {
    codes: Vec<u32>,
    local: LocalDict,
}

impl DictBlock {
    /// Room for exactly `rows` rows.
    pub(crate) fn with_room(rows: usize) -> DictBlock {
        DictBlock {
            codes: Vec::with_capacity(rows),
            local: LocalDict::default(),
        }
    }

    pub(crate) fn push(&mut self, value: Option<&str>) {
        let code = value.map_or(NULL_CODE, |v| self.local.code(v));
        self.codes.push(code);
    }
}

impl DictBlock {
    /// Hands the block's values to the column's dictionary and makes its
    /// codes global.
    pub(crate) fn seal(&mut self, dict: &mut Dict) {
        let map = dict.merge_one(&std::mem::take(&mut self.local));
        for code in &mut self.codes {
            if *code != NULL_CODE {
                *code = map.get(*code as usize).copied().unwrap_or(NULL_CODE);
            }
        }
    }
}

impl DictColumn {
    /// A column from its sealed blocks, in row order (every one but the
    /// last a full chunk), and the dictionary they were sealed into.
    pub(crate) fn from_blocks(blocks: Vec<DictBlock>, dict: Dict) -> DictColumn {
        DictColumn {
            dict,
            codes: Packed::from_chunks(&blocks.into_iter().map(|b| b.codes).collect::<Vec<_>>()),
        }
    }

    /// Appends built blocks after the last row, which ends a chunk, their
    /// values sealed into this column's dictionary.
    pub(crate) fn append_blocks(&mut self, mut blocks: Vec<DictBlock>) {
        for block in &mut blocks {
            block.seal(&mut self.dict);
        }
        let codes = blocks.into_iter().map(|b| b.codes).collect::<Vec<_>>();
        self.codes.append_aligned(Packed::from_chunks(&codes));
    }
}
