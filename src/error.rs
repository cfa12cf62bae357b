//! The error of the change boundary: a batch of upserts or deletes that was
//! rejected as a whole.

use std::fmt;

use crate::quote::{Named, Quoted};
use crate::record::RecordError;

/// Why a batch of changes was rejected. Nothing of a rejected batch is
/// applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeError {
    /// The record at position `index` (0-based) of the batch is invalid.
    /// A duplicate `id` inside one upsert batch is reported here too, on
    /// the later record, with `field` = `id`.
    InvalidRecord {
        /// 0-based position of the record in its batch.
        index: usize,
        /// The offending field (`members[1].status` for nested ones); empty
        /// when the record is not a JSON object.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A delete batch names an id that no record has.
    UnknownId {
        /// 0-based position of the id in the batch.
        index: usize,
        /// The id.
        id: String,
    },
    /// A delete batch names the same id twice.
    DuplicateId {
        /// 0-based position of the second mention.
        index: usize,
        /// Position of the first mention.
        first: usize,
        /// The id.
        id: String,
    },
    /// The batch text is not a JSON array (of records, or of id strings).
    MalformedBatch {
        /// What the JSON parser or the shape check said.
        reason: String,
    },
    /// Applying the batch would exceed the number of rows a store can hold.
    CapacityExceeded {
        /// The most rows a store holds.
        limit: u64,
    },
}

impl ChangeError {
    pub(crate) fn record(index: usize, e: RecordError) -> ChangeError {
        ChangeError::InvalidRecord {
            index,
            field: e.field,
            reason: e.reason,
        }
    }
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeError::InvalidRecord {
                index,
                field,
                reason,
            } if field.is_empty() => {
                write!(f, "record {index}: {reason}")
            }
            ChangeError::InvalidRecord {
                index,
                field,
                reason,
            } => {
                write!(f, "record {index}: field {}: {reason}", Named(field))
            }
            ChangeError::UnknownId { index, id } => {
                write!(f, "ids[{index}]: no record has id {}", Quoted(id))
            }
            ChangeError::DuplicateId { index, first, id } => {
                write!(
                    f,
                    "ids[{index}]: id {} is named twice in one batch (also ids[{first}])",
                    Quoted(id)
                )
            }
            ChangeError::MalformedBatch { reason } => write!(f, "malformed batch: {reason}"),
            ChangeError::CapacityExceeded { limit } => {
                write!(
                    f,
                    "the batch would exceed the store's capacity of {limit} records"
                )
            }
        }
    }
}

impl std::error::Error for ChangeError {}
