//! The oracle: a deliberately naive reference store.
//!
//! A `Vec` of records, changed by linear scans, with no index at all. It
//! follows the same batch rules as [`crate::Store`] (they are shared, in
//! `batch`), so any difference between the two in what a query answers is a
//! bug in an index, a plan or an executor. Other implementations can use it
//! as their property-test oracle too.

use std::collections::{HashMap, HashSet};

use crate::batch;
use crate::error::ChangeError;
use crate::record::Record;

/// A reference store: records in insertion order, nothing else.
///
/// ```
/// use backdex::oracle::Oracle;
/// let mut oracle = Oracle::new();
/// assert_eq!(oracle.delete(&["nope"]).unwrap_err().to_string(), "ids[0]: no record has id \"nope\"");
/// assert!(oracle.records().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Oracle {
    records: Vec<Record>,
}

impl Oracle {
    /// An empty oracle.
    pub fn new() -> Oracle {
        Oracle::default()
    }

    /// Every record, in insertion order (a replaced record keeps its place).
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The record with this id.
    pub fn get(&self, id: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.id == id)
    }

    /// Inserts or replaces by id, atomically.
    ///
    /// # Errors
    ///
    /// As [`crate::Store::upsert`].
    pub fn upsert(&mut self, records: &[Record]) -> Result<usize, ChangeError> {
        batch::check_upsert(records)?;
        // Positions of the ids, found afresh per batch so that loading a
        // large batch is not quadratic; the oracle keeps no index.
        let mut at: HashMap<String, usize> = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        for record in records {
            match at.get(&record.id) {
                Some(&i) => self.records[i] = record.clone(),
                None => {
                    at.insert(record.id.clone(), self.records.len());
                    self.records.push(record.clone());
                }
            }
        }
        Ok(records.len())
    }

    /// Removes by id, atomically.
    ///
    /// # Errors
    ///
    /// As [`crate::Store::delete`].
    pub fn delete<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<usize, ChangeError> {
        let present: HashSet<&str> = self.records.iter().map(|r| r.id.as_str()).collect();
        batch::check_delete(ids, |id| present.contains(id).then_some(()))?;
        let gone: HashSet<&str> = ids.iter().map(AsRef::as_ref).collect();
        self.records.retain(|r| !gone.contains(r.id.as_str()));
        Ok(ids.len())
    }
}
