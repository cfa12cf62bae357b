//! The rules of a batch (SEMANTICS §7 and §9), shared by the store and the
//! oracle: reading a batch from JSON, and checking an upsert batch as a
//! whole before anything of it is applied.

// Input reaches this module: no indexing that could panic on it.
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

pub(crate) mod wire;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use crate::error::ChangeError;
use crate::quote::Quoted;
use crate::record::{ImageType, Member, Record, Status};
use crate::timestamp::Timestamp;

/// Reads a JSON array of records, validating each (SEMANTICS §1).
///
/// # Errors
///
/// [`ChangeError::MalformedBatch`] when `batch` is not an array, or
/// [`ChangeError::InvalidRecord`] naming the first bad record's position,
/// field and reason.
///
/// ```
/// let batch = serde_json::json!([{"id": "b1"}]);
/// let err = backdex::records_from_json(&batch).unwrap_err();
/// assert_eq!(err.to_string(), "record 0: field `checkpoint_id`: missing required field");
/// ```
pub fn records_from_json(batch: &Value) -> Result<Vec<Record>, ChangeError> {
    records_from_value(batch.clone())
}

/// [`records_from_json`], consuming the batch: each record's strings and
/// opaque parts are moved out of it, not copied.
///
/// # Errors
///
/// As [`records_from_json`].
pub fn records_from_value(batch: Value) -> Result<Vec<Record>, ChangeError> {
    let Value::Array(items) = batch else {
        return Err(ChangeError::MalformedBatch {
            reason: "expected an array of records".into(),
        });
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, v)| Record::from_value(v).map_err(|e| ChangeError::record(index, e)))
        .collect()
}

/// Reads a JSON array of id strings for a delete batch.
///
/// # Errors
///
/// [`ChangeError::MalformedBatch`] when `batch` is not an array of strings.
pub fn ids_from_json(batch: &Value) -> Result<Vec<String>, ChangeError> {
    let malformed = |reason: String| ChangeError::MalformedBatch { reason };
    let Value::Array(items) = batch else {
        return Err(malformed("expected an array of id strings".into()));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(malformed(format!("ids[{i}] is not a string"))),
        })
        .collect()
}

/// The longest text a string field or an opaque part (as serialized JSON)
/// may have: the store keeps a chunk's text offsets in `u32`.
pub(crate) const MAX_TEXT_BYTES: usize = (1 << 22) - 1;

/// A batch at least this long is checked on all cores.
const PARALLEL_MIN: usize = 4096;

/// The batch rules of one field's value, by its type: strings and opaque
/// parts have a size limit, opaque parts a depth limit too; checking an
/// opaque part serializes it once, to the text the store keeps.
pub(crate) trait CheckValue {
    /// What checking produces for the store to write: the JSON text of an
    /// opaque part, nothing for the rest.
    type Checked: Send;

    /// Checks the value; the error is the reason.
    fn check(&self) -> Result<Self::Checked, String>;
}

fn check_len(len: usize) -> Result<(), String> {
    if len > MAX_TEXT_BYTES {
        return Err(format!(
            "{len} bytes is longer than the limit of {MAX_TEXT_BYTES} bytes"
        ));
    }
    Ok(())
}

impl CheckValue for String {
    type Checked = ();
    fn check(&self) -> Result<(), String> {
        check_len(self.len())
    }
}

impl CheckValue for Option<String> {
    type Checked = ();
    fn check(&self) -> Result<(), String> {
        check_len(self.as_deref().map_or(0, str::len))
    }
}

/// Values without a limit of their own.
macro_rules! unchecked {
    ($($ty:ty),*) => {
        $(impl CheckValue for $ty {
            type Checked = ();
            fn check(&self) -> Result<(), String> {
                Ok(())
            }
        })*
    };
}
unchecked!(
    u64,
    bool,
    Status,
    ImageType,
    Timestamp,
    Option<Timestamp>,
    Vec<Member>
);

/// An opaque part: within the depth limit (the part itself is level 1),
/// serialized, within the size limit.
fn check_opaque<'v>(
    value: &impl serde::Serialize,
    items: impl Iterator<Item = &'v Value>,
) -> Result<String, String> {
    let depth = 1 + items.map(json_depth).max().unwrap_or(0);
    if depth > MAX_OPAQUE_DEPTH {
        return Err(format!(
            "nested {depth} levels deep; the limit is {MAX_OPAQUE_DEPTH}"
        ));
    }
    let text = json_text(value);
    check_len(text.len())?;
    Ok(text)
}

impl CheckValue for Map<String, Value> {
    type Checked = String;
    fn check(&self) -> Result<String, String> {
        check_opaque(self, self.values())
    }
}

impl CheckValue for Vec<Value> {
    type Checked = String;
    fn check(&self) -> Result<String, String> {
        check_opaque(self, self.iter())
    }
}

/// `Checked`: what checking each field of a record produced, from the
/// field table.
macro_rules! define_checked {
    ($( { $variant:ident, $field:ident, $ty:ty, $($rest:tt)* } )*) => {
        /// What checking one record of an upsert batch produced: per field,
        /// what [`CheckValue::check`] returned (the opaque parts' JSON text,
        /// which the store keeps as it is).
        pub(crate) struct Checked {
            $( pub(crate) $field: <$ty as CheckValue>::Checked, )*
        }

        /// One record's own rules, then each field's limits in the table's
        /// order.
        pub(crate) fn check_record(index: usize, record: &Record) -> Result<Checked, ChangeError> {
            record
                .validate()
                .map_err(|e| ChangeError::record(index, e))?;
            Ok(Checked {
                $( $field: record.$field.check().map_err(|reason| ChangeError::InvalidRecord {
                    index,
                    field: stringify!($field).to_owned(),
                    reason,
                })?, )*
            })
        }
    };
}

crate::schema::record_fields!(define_checked);

/// Checks an upsert batch on its own (no store needed): each record's own
/// rules, its size and depth limits, and no id twice. The per-record work
/// runs on all cores for large batches; the first fault by position is
/// reported.
pub(crate) fn check_upsert(records: &[Record]) -> Result<Vec<Checked>, ChangeError> {
    let checked: Vec<Result<Checked, ChangeError>> = if records.len() >= PARALLEL_MIN {
        records
            .par_iter()
            .enumerate()
            .map(|(i, r)| check_record(i, r))
            .collect()
    } else {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| check_record(i, r))
            .collect()
    };
    let mut seen: FxHashMap<&str, usize> = FxHashMap::default();
    seen.reserve(records.len());
    let mut out = Vec::with_capacity(records.len());
    for (index, (record, result)) in records.iter().zip(checked).enumerate() {
        let ok = result?;
        if let Some(first) = seen.insert(&record.id, index) {
            return Err(ChangeError::InvalidRecord {
                index,
                field: "id".into(),
                reason: format!(
                    "duplicate id {} (also record {first} of this batch)",
                    Quoted(&record.id)
                ),
            });
        }
        out.push(ok);
    }
    Ok(out)
}

/// Checks a delete batch against a lookup of existing ids: no id twice,
/// every id known. Returns what `lookup` found for each id.
pub(crate) fn check_delete<S: AsRef<str>, T>(
    ids: &[S],
    mut lookup: impl FnMut(&str) -> Option<T>,
) -> Result<Vec<T>, ChangeError> {
    let mut seen: FxHashMap<&str, usize> = FxHashMap::default();
    let mut found = Vec::with_capacity(ids.len());
    for (index, id) in ids.iter().enumerate() {
        let id = id.as_ref();
        if let Some(first) = seen.insert(id, index) {
            return Err(ChangeError::DuplicateId {
                index,
                first,
                id: id.to_owned(),
            });
        }
        found.push(lookup(id).ok_or_else(|| ChangeError::UnknownId {
            index,
            id: id.to_owned(),
        })?);
    }
    Ok(found)
}

/// The deepest nesting an opaque part may have (the part itself is level
/// 1). The store keeps opaque parts as JSON text and parses them back when
/// a record is read; serde_json refuses to parse past 128 levels, so deeper
/// parts are refused up front rather than lost later.
pub const MAX_OPAQUE_DEPTH: usize = 100;

/// The nesting depth of a JSON value (a scalar is 1), without recursion.
pub(crate) fn json_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    deepest
}

/// Serializes an opaque part. A `serde_json::Value` tree always serializes,
/// so the fallback is unreachable in practice.
fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
