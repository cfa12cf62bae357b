//! backdex: an embeddable, in-process query engine for cloud backup records.
//!
//! Cloud backup services (Huawei Cloud CSBS and CBR, and their OpenStack
//! ancestors Karbor and Cinder) answer four read APIs over their backup
//! records: list backups, count backups, list backups with sharing and
//! enterprise projects, and count backup sharings. backdex answers them from
//! memory, from a columnar [`Store`] with roaring bitmap and ordered indexes.
//! The library does no I/O.
//!
//! The parts: the strictly validated [`Record`] model; the [`Store`] with
//! its indexes and atomic batch changes; [`Store::handle`], which answers a
//! route, a raw query string and a [`Scope`] with a [`Response`] exactly as
//! `SEMANTICS.md` says (with typed [`Query`]s, [`Store::explain`] and
//! [`Store::facets`] beside it); the thread-safe [`Engine`] with snapshots;
//! and the naive [`oracle`] every answer is tested against.
//!
//! ```
//! use backdex::{records_from_json, Engine, Scope};
//!
//! let batch = serde_json::json!([{
//!     "id": "b1", "checkpoint_id": "c1", "project_id": "p1", "name": "autobk_b629",
//!     "status": "available", "resource_id": "vm1", "resource_type": "OS::Nova::Server",
//!     "created_at": "2020-02-21T07:00:54.065135+08:00", "updated_at": "2020-02-21T07:07:25",
//!     "members": [{"dest_project_id": "p2", "status": "accept"}]
//! }]);
//! let engine = Engine::new();
//! engine.upsert(&records_from_json(&batch)?)?;
//!
//! let snapshot = engine.snapshot();
//! let record = snapshot.get("b1").expect("just inserted");
//! assert_eq!(record.created_at.to_string(), "2020-02-20T23:00:54.065135");
//!
//! // A bad batch names the record, the field and the reason, and changes nothing.
//! let bad = serde_json::json!([{"id": "b2"}, {"id": "b3", "status": "lost"}]);
//! let err = records_from_json(&bad).unwrap_err();
//! assert_eq!(err.to_string(), "record 0: field `checkpoint_id`: missing required field");
//! assert_eq!(engine.snapshot().len(), 1);
//!
//! // The four APIs, as a server calls them.
//! let me = Scope::project("p1");
//! let count = engine.handle("/v1/p1/checkpoint_items/count", "status=available", &me);
//! assert_eq!((count.status, count.body.as_str()), (200, r#"{"count":1}"#));
//! let page = engine.handle("/v3/p1/backups", "sort=name:asc&limit=10", &me);
//! assert_eq!(page.json()["backups"][0]["created_at"], "2020-02-20T23:00:54.065135");
//! let shared = engine.handle("/v2/p2/os-vendor-backup-sharing/count", "share_to_me=true", &Scope::project("p2"));
//! assert_eq!(shared.body, r#"{"count":1}"#);
//! # Ok::<(), backdex::ChangeError>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![warn(missing_docs)]

mod api;
mod batch;
mod codec;
mod engine;
mod error;
mod exec;
mod index;
pub mod oracle;
mod plan;
#[cfg(test)]
mod proptests;
mod query;
pub mod quote;
mod record;
mod schema;
mod shards;
mod store;
pub mod synth;
mod timestamp;

pub use api::{
    answer_from, merge, parse_request, route, vshard_of, Partial, Response, Route, WireError,
    VSHARDS,
};
pub use batch::{ids_from_json, records_from_json, records_from_value, MAX_OPAQUE_DEPTH};
pub use engine::Engine;
pub use error::ChangeError;
pub use exec::{Explain, FacetField, ListPage};
pub use query::{
    Api, Direction, EnterpriseProject, Filter, OwnType, Page, Query, QueryError, Scope, Sort,
    SortKey, DEFAULT_MAX_LIMIT,
};
pub use record::{ImageType, Member, MemberStatus, Record, RecordError, Status, MAX_ID_BYTES};
pub use shards::Shards;
pub use store::{
    LoadError, MemoryUsage, Position, ReadError, ReadStore, Restored, SnapshotError, Store,
    StoreBuilder, MAX_POSITION_BYTES, MAX_RECORDS, SNAPSHOT_MAGIC, SNAPSHOT_VERSION,
};
pub use timestamp::{Timestamp, TimestampError};

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
