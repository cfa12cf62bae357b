//! The shared, thread-safe face of a store: snapshots for readers, atomic
//! batches for writers.
//!
//! # Concurrency model
//!
//! An [`Engine`] holds the current version of the store as an
//! `Arc<Store>`. A reader takes [`Engine::snapshot`], which clones that
//! `Arc` under a read lock held for a pointer copy, and then answers any
//! number of requests from it without further locking: the snapshot never
//! changes. A writer (one at a time, behind a mutex) clones the current
//! store, which is cheap because every column and index is copy-on-write,
//! applies the whole batch to the clone, and only then swaps the `Arc`.
//! So readers never see half a batch, a rejected batch is simply dropped,
//! and a reader holding an old snapshot keeps its answers while writers go
//! on. A write copies the chunks, leaves and bitmaps it touches (the rest
//! stays shared) and the old version's memory is freed when its last
//! snapshot is dropped.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::error::ChangeError;
use crate::record::Record;
use crate::store::Store;

/// A store shared between threads: readers get consistent snapshots,
/// writers apply atomic batches (see the module docs).
///
/// ```
/// use backdex::{Engine, Record};
/// let engine = Engine::new();
/// let before = engine.snapshot();
/// let record = Record::from_json(&serde_json::json!({
///     "id": "b1", "checkpoint_id": "c1", "project_id": "p1", "name": "n",
///     "status": "available", "resource_id": "r1", "resource_type": "OS::Nova::Server",
///     "created_at": "2020-01-01T00:00:00", "updated_at": "2020-01-01T00:00:00"
/// })).unwrap();
/// engine.upsert(&[record])?;
/// assert_eq!(before.len(), 0, "an old snapshot does not change");
/// assert_eq!(engine.snapshot().len(), 1);
/// # Ok::<(), backdex::ChangeError>(())
/// ```
#[derive(Debug, Default)]
pub struct Engine {
    current: RwLock<Arc<Store>>,
    writer: Mutex<()>,
}

impl Engine {
    /// An engine over an empty store.
    pub fn new() -> Engine {
        Engine::default()
    }

    /// An engine over `store`.
    pub fn from_store(store: Store) -> Engine {
        Engine {
            current: RwLock::new(Arc::new(store)),
            writer: Mutex::new(()),
        }
    }

    /// The current version of the store; it never changes, whatever writers
    /// do after.
    pub fn snapshot(&self) -> Arc<Store> {
        // The lock only guards an `Arc` swap, which cannot be left half
        // done, so a poisoned lock still holds a consistent store.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// [`Store::upsert`] as one atomic version change.
    ///
    /// # Errors
    ///
    /// As [`Store::upsert`]; nothing is published then.
    pub fn upsert(&self, records: &[Record]) -> Result<usize, ChangeError> {
        self.apply(|store| store.upsert(records))
    }

    /// [`Store::delete`] as one atomic version change.
    ///
    /// # Errors
    ///
    /// As [`Store::delete`]; nothing is published then.
    pub fn delete<S: AsRef<str>>(&self, ids: &[S]) -> Result<usize, ChangeError> {
        self.apply(|store| store.delete(ids))
    }

    /// Removes every record.
    pub fn reset(&self) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Store::new());
    }

    fn apply(
        &self,
        change: impl FnOnce(&mut Store) -> Result<usize, ChangeError>,
    ) -> Result<usize, ChangeError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Store::clone(&self.snapshot());
        let n = change(&mut next)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn store_and_engine_are_send_and_sync() {
        assert_send_sync::<Store>();
        assert_send_sync::<Engine>();
        assert_send_sync::<Arc<Store>>();
    }
}
