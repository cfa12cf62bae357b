//! The property tests that check the whole crate against the oracle: the
//! store's access paths after random changes (`store`), and the four APIs
//! over random stores and requests (`api`). They sit above every module,
//! as test code, so that no module below depends on the oracle.

mod api;
mod append;
mod build;
mod shards;
mod snapshot;
mod store;
