//! The rules of a batch (SEMANTICS §7 and §9), shared by the store and the
//! oracle: reading a batch from JSON, and checking an upsert batch as a
//! whole before anything of it is applied.

// Input reaches this module: no indexing that could panic on it.
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::IpAddr;

use serde_json::Value;

use crate::error::ChangeError;
use crate::index::FxHasher;
use crate::parallel;
use crate::record::Record;
use crate::store::MAX_TEXT_BYTES;

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
    let Value::Array(items) = batch else {
        return Err(ChangeError::MalformedBatch {
            reason: "expected an array of records".into(),
        });
    };
    items
        .iter()
        .enumerate()
        .map(|(index, v)| Record::from_json(v).map_err(|e| ChangeError::record(index, e)))
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

/// What checking one record of an upsert batch produced: its opaque parts
/// serialized (`extend_info`, `backup_data`, `replication_records`,
/// `children`), which the store keeps as they are, and its addresses.
pub(crate) struct Checked {
    pub(crate) payload: [String; 4],
    pub(crate) ips: Vec<IpAddr>,
}

/// Checks an upsert batch on its own (no store needed): each record's own
/// rules, its size and depth limits, and no id twice. The per-record work
/// runs on all cores for large batches; the first fault by position is
/// reported.
pub(crate) fn check_upsert(records: &[Record]) -> Result<Vec<Checked>, ChangeError> {
    let checked = parallel::map(records, check_record);
    let mut seen: HashMap<&str, usize, BuildHasherDefault<FxHasher>> = HashMap::default();
    seen.reserve(records.len());
    let mut out = Vec::with_capacity(records.len());
    for (index, (record, result)) in records.iter().zip(checked).enumerate() {
        let ok = result?;
        if let Some(first) = seen.insert(&record.id, index) {
            return Err(ChangeError::InvalidRecord {
                index,
                field: "id".into(),
                reason: format!(
                    "duplicate id {:?} (also record {first} of this batch)",
                    record.id
                ),
            });
        }
        out.push(ok);
    }
    Ok(out)
}

fn check_record(index: usize, record: &Record) -> Result<Checked, ChangeError> {
    let fail = |field: &str, reason: String| ChangeError::InvalidRecord {
        index,
        field: field.to_owned(),
        reason,
    };
    record
        .validate()
        .map_err(|e| ChangeError::record(index, e))?;
    for (field, depth) in [
        (
            "extend_info",
            1 + record
                .extend_info
                .values()
                .map(json_depth)
                .max()
                .unwrap_or(0),
        ),
        (
            "backup_data",
            1 + record
                .backup_data
                .values()
                .map(json_depth)
                .max()
                .unwrap_or(0),
        ),
        (
            "replication_records",
            1 + record
                .replication_records
                .iter()
                .map(json_depth)
                .max()
                .unwrap_or(0),
        ),
        (
            "children",
            1 + record.children.iter().map(json_depth).max().unwrap_or(0),
        ),
    ] {
        if depth > MAX_OPAQUE_DEPTH {
            return Err(fail(
                field,
                format!("nested {depth} levels deep; the limit is {MAX_OPAQUE_DEPTH}"),
            ));
        }
    }
    let payload = [
        json_text(&record.extend_info),
        json_text(&record.backup_data),
        json_text(&record.replication_records),
        json_text(&record.children),
    ];
    let optional = |v: &Option<String>| v.as_deref().unwrap_or("").len();
    let sizes = [
        ("checkpoint_id", record.checkpoint_id.len()),
        ("project_id", record.project_id.len()),
        ("enterprise_project_id", record.enterprise_project_id.len()),
        ("name", record.name.len()),
        ("description", record.description.len()),
        ("resource_id", record.resource_id.len()),
        ("resource_name", record.resource_name.len()),
        ("resource_type", record.resource_type.len()),
        ("resource_az", record.resource_az.len()),
        ("policy_id", optional(&record.policy_id)),
        ("vault_id", optional(&record.vault_id)),
        ("provider_id", optional(&record.provider_id)),
        ("parent_id", optional(&record.parent_id)),
        ("extend_info", payload[0].len()),
        ("backup_data", payload[1].len()),
        ("replication_records", payload[2].len()),
        ("children", payload[3].len()),
    ];
    if let Some((field, size)) = sizes.iter().find(|(_, size)| *size > MAX_TEXT_BYTES) {
        return Err(fail(
            field,
            format!("{size} bytes is longer than the limit of {MAX_TEXT_BYTES} bytes"),
        ));
    }
    Ok(Checked {
        payload,
        ips: record.ip_addresses(),
    })
}

/// Checks a delete batch against a lookup of existing ids: no id twice,
/// every id known. Returns what `lookup` found for each id.
pub(crate) fn check_delete<S: AsRef<str>, T>(
    ids: &[S],
    mut lookup: impl FnMut(&str) -> Option<T>,
) -> Result<Vec<T>, ChangeError> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
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
fn json_depth(value: &Value) -> usize {
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
