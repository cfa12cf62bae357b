//! What a node holds: the virtual shards in its store, each with the
//! epoch it serves it under, published together with the store so that a
//! request is answered from one store version and the vshards that
//! version holds; and the gate through which a loaded vshard joins the
//! followed store at exactly the position its copy was taken.
//!
//! A copy of vshards taken from a replication slot's exported snapshot at
//! LSN `C` holds every transaction that committed before `C` and none
//! after (PostgreSQL decodes a transaction for a slot exactly when its
//! commit record is at or after the slot's consistent point). The
//! follower drops changes of vshards it does not hold, so the copy must
//! join the store after every transaction before `C` and before any at or
//! after it: the follower stops at the first `BEGIN` whose commit position
//! is at or after `C` (or a heartbeat past it), merges the copy, and goes
//! on with the vshards held. While the slot is being created `C` is not
//! known yet, and the follower waits at the next `BEGIN`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use backdex::{vshard_of, ChangeError, Engine, Record, Store};

use crate::status::Lsn;

/// The vshards held, each with the epoch it is served under (`None`:
/// loaded, not taken over yet).
pub type Held = BTreeMap<u32, Option<u64>>;

/// One store version and the vshards it holds.
#[derive(Debug, Clone)]
pub struct View {
    pub store: Arc<Store>,
    pub held: Held,
}

/// Records of vshards copied at a position, waiting to join the store.
#[derive(Debug)]
pub struct Loaded {
    pub vshards: Vec<u32>,
    pub records: Vec<Record>,
}

#[derive(Debug)]
enum Gate {
    /// No load under way.
    Open,
    /// A slot is being created: its position is not known yet.
    Preparing,
    /// The copy is at this position and under way.
    Barrier(Lsn),
    /// The copy is done and joins the store at its position.
    Ready(Lsn, Loaded),
}

/// A node's holdings (see the module's documentation).
#[derive(Debug)]
pub struct Holdings {
    /// Taken by every writer of the store (the follower's batches, loads
    /// and drops) around its change and the view's publication.
    held: Mutex<Held>,
    view: RwLock<Arc<View>>,
    gate: Mutex<Gate>,
    /// Loads merged so far.
    merged: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Holdings {
    /// Holdings of `engine`'s store: the vshards of its records, not taken
    /// over (a snapshot's load: the node confirms them against the map).
    pub fn of(engine: &Engine) -> Holdings {
        let store = engine.snapshot();
        let held: Held = store
            .records()
            .iter()
            .map(|r| (vshard_of(&r.project_id), None))
            .collect();
        Holdings {
            view: RwLock::new(Arc::new(View {
                store,
                held: held.clone(),
            })),
            held: Mutex::new(held),
            gate: Mutex::new(Gate::Open),
            merged: Mutex::new(0),
        }
    }

    /// The current store version and the vshards it holds.
    pub fn view(&self) -> Arc<View> {
        self.view
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Changes the store and the holdings as one version (at `position`,
    /// or keeping the engine's), then publishes both.
    ///
    /// # Errors
    ///
    /// The change's: nothing is then changed.
    pub fn change<R>(
        &self,
        engine: &Engine,
        position: Option<&[u8]>,
        f: impl FnOnce(&mut Store, &mut Held) -> Result<R, ChangeError>,
    ) -> Result<R, ChangeError> {
        let mut held = lock(&self.held);
        let mut next = held.clone();
        let result = match position {
            Some(p) => engine.change_at(p, |store| f(store, &mut next)),
            None => engine.change(|store| f(store, &mut next)),
        };
        if result.is_ok() {
            *held = next;
        }
        *self
            .view
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(View {
            store: engine.snapshot(),
            held: held.clone(),
        });
        result
    }

    /// Starts a load: the follower stops at its next `BEGIN` until the
    /// slot's position is known. `false` while another load is under way.
    pub fn begin_load(&self) -> bool {
        let mut gate = lock(&self.gate);
        if matches!(*gate, Gate::Open) {
            *gate = Gate::Preparing;
            true
        } else {
            false
        }
    }

    /// The copy is at `at`: transactions committed before it go on.
    pub fn set_barrier(&self, at: Lsn) {
        *lock(&self.gate) = Gate::Barrier(at);
    }

    /// The copy is done: it joins the store at its position.
    pub fn ready(&self, at: Lsn, loaded: Loaded) {
        *lock(&self.gate) = Gate::Ready(at, loaded);
    }

    /// Gives the load up (a failed copy, a follower that never came to its
    /// position): the follower goes on without it.
    pub fn abort(&self) {
        *lock(&self.gate) = Gate::Open;
    }

    fn merged(&self) -> u64 {
        *lock(&self.merged)
    }

    /// Waits until the load made ready is merged; `false` (and the load
    /// given up) if that took longer than `patience`.
    pub async fn await_merged(&self, patience: Duration) -> bool {
        let before = self.merged();
        let started = std::time::Instant::now();
        loop {
            if self.merged() > before {
                return true;
            }
            if started.elapsed() >= patience {
                let mut gate = lock(&self.gate);
                if self.merged() > before {
                    return true;
                }
                *gate = Gate::Open;
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Whether the follower must stop before this event (a `BEGIN` of a
    /// transaction committing at `lsn`, or a heartbeat at `lsn`) and call
    /// [`Holdings::settle`].
    pub fn must_stop(&self, lsn: Lsn, begin: bool) -> bool {
        match &*lock(&self.gate) {
            Gate::Open => false,
            Gate::Preparing => begin,
            Gate::Barrier(at) => begin && lsn >= *at,
            Gate::Ready(at, _) => lsn >= *at,
        }
    }

    /// Called by the follower where [`Holdings::must_stop`] said so, with
    /// every earlier transaction published: waits while the copy is not
    /// done, merges it once it is (its vshards held from then on), and
    /// returns when the event may be folded.
    pub async fn settle(&self, engine: &Engine, lsn: Lsn, begin: bool) {
        loop {
            let loaded = {
                let mut gate = lock(&self.gate);
                match &*gate {
                    Gate::Open => return,
                    Gate::Preparing if begin => None,
                    Gate::Barrier(at) if begin && lsn >= *at => None,
                    Gate::Ready(at, _) if lsn >= *at => {
                        match std::mem::replace(&mut *gate, Gate::Open) {
                            Gate::Ready(_, loaded) => Some(loaded),
                            _ => None,
                        }
                    }
                    _ => return,
                }
            };
            if let Some(loaded) = loaded {
                let count = loaded.records.len();
                let merged = tokio::task::block_in_place(|| {
                    self.change(engine, None, |store, held| {
                        for &v in &loaded.vshards {
                            held.insert(v, None);
                        }
                        store.upsert(&loaded.records)
                    })
                });
                match merged {
                    Ok(_) => {
                        tracing::info!(vshards = ?loaded.vshards, records = count, "vshards loaded");
                        *lock(&self.merged) += 1;
                    }
                    Err(e) => tracing::error!(error = %e, "a load was refused by the store"),
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Serves `vshard` under `epoch` (its take-over is in the map), or no
    /// longer (`None`: the take-over failed).
    pub fn take_over(&self, engine: &Engine, vshard: u32, epoch: Option<u64>) {
        let _ = self.change(engine, None, |_, held| {
            if let Some(e) = held.get_mut(&vshard) {
                *e = epoch;
            }
            Ok(())
        });
    }

    /// Drops these vshards and their records (another node owns them now).
    pub fn drop_vshards(&self, engine: &Engine, vshards: &[u32]) {
        let result = tokio::task::block_in_place(|| {
            self.change(engine, None, |store, held| {
                for v in vshards {
                    held.remove(v);
                }
                let ids: Vec<String> = store
                    .records()
                    .into_iter()
                    .filter(|r| vshards.contains(&vshard_of(&r.project_id)))
                    .map(|r| r.id)
                    .collect();
                store.delete(&ids)
            })
        });
        match result {
            Ok(n) => tracing::info!(?vshards, records = n, "vshards dropped"),
            Err(e) => tracing::error!(error = %e, "dropping vshards failed"),
        }
    }
}
