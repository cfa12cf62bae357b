//! Several stores as one: records placed on the store of their tenant's
//! virtual shard ([`vshard_of`] modulo the number of stores), every change
//! routed there, every request answered through partial answers and their
//! merge ([`answer_from`]). Its answers and its change results equal one
//! [`Store`]'s holding every record, byte for byte: `backdex oracle
//! --shards N` is this, and the property tests hold it to that.

use std::collections::HashMap;

use crate::api::{answer_from, route, vshard_of, Response, Route};
use crate::batch::{check_delete, check_upsert};
use crate::error::ChangeError;
use crate::query::Scope;
use crate::record::Record;
use crate::store::{Store, MAX_RECORDS};

/// `n` stores holding records by their tenant's virtual shard.
#[derive(Debug, Clone)]
pub struct Shards {
    stores: Vec<Store>,
    /// The store holding each record, by id.
    home: HashMap<String, usize>,
}

impl Shards {
    /// `n` empty stores (at least one).
    pub fn new(n: usize) -> Shards {
        Shards {
            stores: (0..n.max(1)).map(|_| Store::new()).collect(),
            home: HashMap::new(),
        }
    }

    /// The stores, by shard number.
    pub fn stores(&self) -> &[Store] {
        &self.stores
    }

    /// The store a virtual shard lives on.
    pub fn store_of_vshard(&self, vshard: u32) -> usize {
        vshard as usize % self.stores.len()
    }

    /// The number of records held.
    pub fn len(&self) -> usize {
        self.home.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.home.is_empty()
    }

    /// Inserts or replaces records by id, each on its tenant's store; a
    /// record whose `project_id` changed moves to its new store. Atomic,
    /// like [`Store::upsert`].
    ///
    /// # Errors
    ///
    /// As [`Store::upsert`], worded the same; nothing is then changed.
    pub fn upsert(&mut self, records: &[Record]) -> Result<usize, ChangeError> {
        check_upsert(records)?;
        let new = records
            .iter()
            .filter(|r| !self.home.contains_key(&r.id))
            .count() as u64;
        if self.home.len() as u64 + new > MAX_RECORDS {
            return Err(ChangeError::CapacityExceeded { limit: MAX_RECORDS });
        }
        let mut batches: Vec<Vec<Record>> = vec![Vec::new(); self.stores.len()];
        let mut moved: Vec<Vec<&str>> = vec![Vec::new(); self.stores.len()];
        for r in records {
            let to = self.store_of_vshard(vshard_of(&r.project_id));
            if let Some(&from) = self.home.get(&r.id) {
                if from != to {
                    if let Some(ids) = moved.get_mut(from) {
                        ids.push(&r.id);
                    }
                }
            }
            if let Some(batch) = batches.get_mut(to) {
                batch.push(r.clone());
            }
        }
        // The whole batch was checked above (records, ids, capacity), so
        // no store refuses its part: `?` cannot leave half of it applied.
        for (store, ids) in self.stores.iter_mut().zip(&moved) {
            if !ids.is_empty() {
                store.delete(ids)?;
            }
        }
        for (store, batch) in self.stores.iter_mut().zip(&batches) {
            if !batch.is_empty() {
                store.upsert(batch)?;
            }
        }
        for r in records {
            let to = self.store_of_vshard(vshard_of(&r.project_id));
            self.home.insert(r.id.clone(), to);
        }
        Ok(records.len())
    }

    /// Removes the records with these ids from their stores. Atomic.
    ///
    /// # Errors
    ///
    /// As [`Store::delete`], worded the same; nothing is then changed.
    pub fn delete<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<usize, ChangeError> {
        let homes = check_delete(ids, |id| self.home.get(id).copied())?;
        // Every id is known and named once: no store refuses its part.
        let mut batches: Vec<Vec<&str>> = vec![Vec::new(); self.stores.len()];
        for (id, home) in ids.iter().zip(homes) {
            if let Some(batch) = batches.get_mut(home) {
                batch.push(id.as_ref());
            }
        }
        for (store, batch) in self.stores.iter_mut().zip(&batches) {
            if !batch.is_empty() {
                store.delete(batch)?;
            }
        }
        for id in ids {
            self.home.remove(id.as_ref());
        }
        Ok(ids.len())
    }

    /// Answers a request as [`Store::handle`] would on one store holding
    /// every record: the stores [`route`] names answer their parts, which
    /// are merged.
    pub fn handle(&self, path: &str, query: &str, scope: &Scope) -> Response {
        let visited: Vec<&Store> = match route(path, query, scope) {
            Route::Every => self.stores.iter().collect(),
            Route::Shard(vshard) => self
                .stores
                .get(self.store_of_vshard(vshard))
                .into_iter()
                .collect(),
        };
        answer_from(&visited, path, query, scope)
    }
}
