//! Dictionary encoding: each distinct string of a column gets a `u32` code.

use std::sync::Arc;

use super::column::Chunked;
use crate::codec::{Decoder, Encoder, Malformed, Persist};
use crate::index::CowMap;

/// The code of a null value. Never handed out for a string.
pub(crate) const NULL_CODE: u32 = u32::MAX;

/// Distinct strings of one column and their codes, reference-counted by the
/// rows that hold them: a code whose last row goes away is freed and reused,
/// so a deleted value leaves no trace.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dict {
    codes: CowMap<Arc<str>, u32>,
    values: Chunked<Option<Arc<str>>>,
    refs: Chunked<u32>,
    free: Vec<u32>,
}

impl Dict {
    /// The code of `value`, if some row holds it.
    pub(crate) fn code(&self, value: &str) -> Option<u32> {
        self.codes.get(value).copied()
    }

    /// The string of a live `code`; `""` for a freed or null code.
    pub(crate) fn value(&self, code: u32) -> &str {
        self.value_opt(code).unwrap_or("")
    }

    pub(crate) fn value_opt(&self, code: u32) -> Option<&str> {
        if (code as usize) < self.values.len() {
            self.values.get(code as usize).as_deref()
        } else {
            None
        }
    }

    /// One past the highest code ever handed out.
    pub(crate) fn code_bound(&self) -> usize {
        self.values.len()
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
        self.values
            .iter()
            .enumerate()
            .filter_map(|(c, v)| v.as_deref().map(|v| (c as u32, v)))
    }

    /// Takes a reference on `value`, giving it a code if it has none;
    /// returns the code.
    pub(crate) fn acquire(&mut self, value: &str) -> u32 {
        if let Some(&code) = self.codes.get(value) {
            let r = *self.refs.get(code as usize);
            self.refs.set(code as usize, r + 1);
            return code;
        }
        let text: Arc<str> = Arc::from(value);
        let code = match self.free.pop() {
            Some(code) => {
                self.values.set(code as usize, Some(text.clone()));
                self.refs.set(code as usize, 1);
                code
            }
            None => {
                let code = self.values.len() as u32;
                self.values.push(Some(text.clone()));
                self.refs.push(1);
                code
            }
        };
        *self.codes.entry_or_insert_with(text, || code) = code;
        code
    }

    /// Drops a reference on `code`; returns the value when that was the
    /// last one and the code is now free.
    pub(crate) fn release(&mut self, code: u32) -> Option<Arc<str>> {
        if code == NULL_CODE {
            return None;
        }
        let i = code as usize;
        let r = *self.refs.get(i);
        if r > 1 {
            self.refs.set(i, r - 1);
            return None;
        }
        self.refs.set(i, 0);
        let value = self.values.get(i).clone();
        self.values.set(i, None);
        if let Some(v) = &value {
            self.codes.remove(&**v);
        }
        self.free.push(code);
        value
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.codes.heap_bytes()
            + self.values.heap_bytes()
            + self.refs.heap_bytes()
            + self.free.capacity() * 4
            + self.iter().map(|(_, v)| 16 + v.len()).sum::<usize>()
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
        assert_eq!(d.release(a), None);
        assert_eq!(d.release(a).as_deref(), Some("a"));
        assert_eq!((d.code("a"), d.len()), (None, 1));
        let c = d.acquire("c");
        assert_eq!(c, a, "freed codes are reused");
        assert_eq!((d.value(c), d.value(b)), ("c", "b"));
        assert_eq!(d.iter().count(), 2);
        assert_eq!(d.release(NULL_CODE), None);
    }
}

/// A dictionary-encoded column: one code per row, null as [`NULL_CODE`].
#[derive(Debug, Clone, Default)]
pub(crate) struct DictColumn {
    pub(crate) dict: Dict,
    codes: Chunked<u32>,
}

impl DictColumn {
    pub(crate) fn push_null(&mut self) {
        self.codes.push(NULL_CODE);
    }

    #[inline]
    pub(crate) fn code(&self, row: usize) -> u32 {
        *self.codes.get(row)
    }

    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<&str> {
        self.dict.value_opt(self.code(row))
    }

    #[inline]
    pub(crate) fn str(&self, row: usize) -> &str {
        self.get(row).unwrap_or("")
    }

    /// Sets a row that holds null to `value`.
    pub(crate) fn assign(&mut self, row: usize, value: Option<&str>) {
        let code = value.map_or(NULL_CODE, |v| self.dict.acquire(v));
        self.codes.set(row, code);
    }

    /// Sets a row to null, returning its value's code and text when the row
    /// held the value's last reference.
    pub(crate) fn clear(&mut self, row: usize) -> Option<(u32, Arc<str>)> {
        let code = self.code(row);
        self.codes.set(row, NULL_CODE);
        self.dict.release(code).map(|v| (code, v))
    }

    pub(crate) fn codes(&self) -> impl Iterator<Item = u32> + '_ {
        self.codes.iter().copied()
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
        out.len(self.values.len());
        for value in self.values.iter() {
            match value {
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
            let value = match input.u8()? {
                0 => None,
                1 => {
                    let text: Arc<str> = Arc::from(input.str()?);
                    let before = dict.codes.len();
                    dict.codes.entry_or_insert_with(text.clone(), || code);
                    if dict.codes.len() == before {
                        return Err(input.malformed(format!("the value {text:?} has two codes")));
                    }
                    Some(text)
                }
                other => return Err(input.malformed(format!("{other} is not an option tag"))),
            };
            dict.values.push(value);
        }
        dict.refs = Persist::load(input)?;
        dict.free = input.seq()?;
        if dict.refs.len() != n {
            return Err(input.malformed(format!(
                "{n} values but {} reference counts",
                dict.refs.len()
            )));
        }
        let live_mismatch = (0..n).any(|c| dict.values.get(c).is_some() != (*dict.refs.get(c) > 0));
        let bad_free = dict
            .free
            .iter()
            .any(|&c| c as usize >= n || dict.values.get(c as usize).is_some());
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
        let codes: Chunked<u32> = Persist::load(input)?;
        let bound = dict.code_bound();
        if codes.iter().any(|&c| c != NULL_CODE && c as usize >= bound) {
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
    values: indexmap::IndexMap<Box<str>, u32, rustc_hash::FxBuildHasher>,
}

impl LocalDict {
    /// The block-local code of `value`, counting one more row.
    pub(crate) fn code(&mut self, value: &str) -> u32 {
        if let Some((code, _, refs)) = self.values.get_full_mut(value) {
            *refs += 1;
            return code as u32;
        }
        let code = self.values.len() as u32;
        self.values.insert(value.into(), 1);
        code
    }
}

impl Dict {
    /// Takes a block's values, each with its rows as references; returns
    /// the block's local-to-global code map.
    pub(crate) fn merge_one(&mut self, local: &LocalDict) -> Vec<u32> {
        local
            .values
            .iter()
            .map(|(value, &refs)| self.acquire_many(value, refs))
            .collect()
    }

    /// Takes `n` references on `value`; returns its code.
    fn acquire_many(&mut self, value: &str, n: u32) -> u32 {
        let code = self.acquire(value);
        let r = *self.refs.get(code as usize);
        self.refs.set(code as usize, r + n - 1);
        code
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
            codes: Chunked::from_chunks(blocks.into_iter().map(|b| b.codes).collect()),
        }
    }
}
