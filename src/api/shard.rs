//! Answers from many stores: a request answered by each store that may
//! hold part of it (a *partial* answer), then the partial answers merged
//! into exactly the answer one store holding every record would give.
//!
//! Tenants are placed by their virtual shard, [`vshard_of`]; [`route`]
//! says which virtual shards a request must visit. Requests about sharing
//! across tenants (v3 `own_type=shared`/`all_granted`, `share.count` with
//! `share_to_me=true`) and admin `all_tenants=true` requests visit every
//! shard: sharing is answered by fanning out, so no record is kept twice.
//!
//! A request with a marker is answered in two steps: every visited store
//! is asked where the marker is ([`Store::locate_marker`]: only the store
//! holding it, and only where the caller may see it, answers), then each
//! answers its part after that position ([`Store::partial`]). A page's
//! part is at most `offset + limit` entries, each with its sort position;
//! [`merge`] takes them in the list's total order (§4), then applies
//! `offset` and `limit`. Counts, v3's `count` included, are sums.
//!
//! ```
//! use backdex::{answer_from, route, vshard_of, Record, Route, Scope, Store};
//! let batch: serde_json::Value = serde_json::from_str(r#"[
//!   {"id": "b1", "checkpoint_id": "c1", "project_id": "p1", "name": "n", "status": "available",
//!    "resource_id": "r1", "resource_type": "OS::Nova::Server",
//!    "created_at": "2026-01-01T00:00:00", "updated_at": "2026-01-01T00:00:00"},
//!   {"id": "b2", "checkpoint_id": "c2", "project_id": "p2", "name": "n", "status": "error",
//!    "resource_id": "r2", "resource_type": "OS::Nova::Server",
//!    "created_at": "2026-01-02T00:00:00", "updated_at": "2026-01-02T00:00:00"},
//!   {"id": "b3", "checkpoint_id": "c3", "project_id": "p3", "name": "n", "status": "error",
//!    "resource_id": "r3", "resource_type": "OS::Nova::Server",
//!    "created_at": "2026-01-03T00:00:00", "updated_at": "2026-01-03T00:00:00"}
//! ]"#).unwrap();
//! let records: Vec<Record> = backdex::records_from_json(&batch).unwrap();
//! // Three stores, each record on the store of its tenant's virtual shard.
//! let mut shards = vec![Store::new(), Store::new(), Store::new()];
//! let mut whole = Store::new();
//! for r in &records {
//!     let shard = vshard_of(&r.project_id) as usize % shards.len();
//!     shards[shard].upsert(std::slice::from_ref(r)).unwrap();
//! }
//! whole.upsert(&records).unwrap();
//!
//! let admin = Scope { admin: true, ..Scope::project("p1") };
//! let (path, query) = ("/v1/p1/checkpoint_items", "all_tenants=true&limit=2&marker=b3");
//! assert_eq!(route(path, query, &admin), Route::Every);
//! let all: Vec<&Store> = shards.iter().collect();
//! let merged = answer_from(&all, path, query, &admin);
//! assert_eq!(merged, whole.handle(path, query, &admin));
//! ```

// Input reaches this module: no indexing that could panic on it.
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{parse, render, Response};
use crate::exec::{self, PagePolicy};
use crate::plan::Plan;
use crate::query::{Api, Direction, OwnType, Query, QueryError, Scope, SortKey, DEFAULT_MAX_LIMIT};
use crate::record::Status;
use crate::store::{Position, Store};
use crate::timestamp::Timestamp;

/// The number of virtual shards.
pub const VSHARDS: u32 = 256;

/// The virtual shard of a tenant: the 64-bit FNV-1a hash of the
/// project id's UTF-8 bytes (offset basis `0xcbf29ce484222325`, prime
/// `0x100000001b3`), modulo [`VSHARDS`]. Stable and portable: another
/// implementation computes the same number from the same bytes.
///
/// ```
/// assert_eq!(backdex::vshard_of(""), (0xcbf29ce484222325u64 % 256) as u32);
/// ```
pub fn vshard_of(project_id: &str) -> u32 {
    let hash = project_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % u64::from(VSHARDS)) as u32
}

/// Which virtual shards a request must visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Only this virtual shard: the caller's own tenant. An invalid
    /// request goes here too (any store words its error the same).
    Shard(u32),
    /// Every shard: admin `all_tenants=true`, and sharing across tenants
    /// (v3 `own_type=shared` or `all_granted`, `share.count` with
    /// `share_to_me=true`).
    Every,
}

/// The routing rule: the shards whose stores [`Store::partial`] must be
/// asked for a request to be answered exactly.
pub fn route(path: &str, query: &str, scope: &Scope) -> Route {
    let own = Route::Shard(vshard_of(&scope.project_id));
    let Ok(q) = parse::parse(path, query, scope, DEFAULT_MAX_LIMIT) else {
        return own;
    };
    let every = match q.api {
        Api::V1List | Api::V1Count => q.all_tenants,
        Api::V3List => q.all_tenants || q.own_type != OwnType::Private,
        Api::ShareCount => q.share_to_me,
    };
    if every {
        Route::Every
    } else {
        own
    }
}

impl Position {
    /// Compares by a list's total order (§4: strings by their bytes,
    /// `status` by its name, a null `protected_at` smallest).
    fn cmp_in(&self, other: &Position, order: &[(SortKey, Direction)]) -> Ordering {
        for &(key, dir) in order {
            let ord = match key {
                SortKey::CreatedAt => self.created_at.cmp(&other.created_at),
                SortKey::UpdatedAt => self.updated_at.cmp(&other.updated_at),
                SortKey::Name => self.name.as_bytes().cmp(other.name.as_bytes()),
                SortKey::Status => self.status.as_str().cmp(other.status.as_str()),
                SortKey::ProtectedAt => self.protected_at.cmp(&other.protected_at),
                SortKey::Id => self.id.as_bytes().cmp(other.id.as_bytes()),
            };
            let ord = dir.apply(ord);
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }
}

/// One store's part of an answer, for [`merge`].
#[derive(Debug, Clone, PartialEq)]
pub struct Partial(Part);

#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// The request is invalid (the same on every store), or its marker was
    /// found nowhere: the answer, rendered.
    Error(Response),
    /// A count, or a list's count with its first entries after the
    /// marker's position, in order, each rendered alone.
    Answer { count: u64, entries: Vec<Entry> },
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    position: Position,
    json: String,
}

impl Store {
    /// Where the request's marker is, if this store holds it and the
    /// caller may see it here (§4: the visible set before filters);
    /// `None` otherwise, and for a request without a marker or an invalid
    /// one. The position goes to every store's [`Store::partial`].
    pub fn locate_marker(&self, path: &str, query: &str, scope: &Scope) -> Option<Position> {
        let q = parse::parse(path, query, scope, DEFAULT_MAX_LIMIT).ok()?;
        self.locate(scope, &q)
    }

    fn locate(&self, scope: &Scope, q: &Query) -> Option<Position> {
        let marker = q.page.marker.as_deref()?;
        let plan = Plan::new(self, scope, q);
        let row = self.row_of(marker).filter(|&r| plan.is_visible(r))?;
        Some(self.position(row))
    }

    /// This store's part of the answer to a request: a count, or for a
    /// list its count and its first `offset + limit` entries after `at`
    /// (the marker's position from [`Store::locate_marker`]; a request
    /// with a marker and no position is the marker's 404).
    pub fn partial(
        &self,
        path: &str,
        query: &str,
        scope: &Scope,
        at: Option<&Position>,
    ) -> Partial {
        let part = parse::parse(path, query, scope, DEFAULT_MAX_LIMIT).and_then(|q| {
            let (count, rows) = self.part_rows(scope, &q, at, &PagePolicy::default())?;
            let entries = rows
                .iter()
                .zip(self.items(&rows))
                .map(|(&row, item)| Entry {
                    position: self.position(row),
                    json: render::entry(q.api, &item),
                })
                .collect();
            Ok(Part::Answer { count, entries })
        });
        Partial(part.unwrap_or_else(|e| Part::Error(Response::error(&e))))
    }

    /// The unrendered part: the count (a list's only for v3) and the
    /// rows of the first `offset + limit` entries after `at`, in order,
    /// found by this store's own access paths from that position.
    fn part_rows(
        &self,
        scope: &Scope,
        q: &Query,
        at: Option<&Position>,
        policy: &PagePolicy,
    ) -> Result<(u64, Vec<u32>), QueryError> {
        let plan = Plan::new(self, scope, q);
        if matches!(q.api, Api::V1Count | Api::ShareCount) {
            return Ok((plan.count(self), Vec::new()));
        }
        if let (Some(marker), None) = (&q.page.marker, at) {
            return Err(QueryError::MarkerNotFound {
                marker: marker.clone(),
            });
        }
        let mut first = q.clone();
        first.page.offset = 0;
        first.page.limit = q.page.offset.saturating_add(q.page.limit);
        Ok(if q.api == Api::V3List {
            let (rows, count) = exec::page_after_and_count(self, &plan, &first, at, policy);
            (count, rows)
        } else {
            (0, exec::page_after(self, &plan, &first, at, policy))
        })
    }
}

/// The entries of the merged page, out of every store's first entries:
/// in the list's total order, after `offset`, at most `limit`.
/// Each store's entries come in order: the sort is a merge of runs.
fn select<E>(mut entries: Vec<E>, cmp: impl Fn(&E, &E) -> Ordering, q: &Query) -> Vec<E> {
    entries.sort_by(cmp);
    entries
        .into_iter()
        .skip(q.page.offset)
        .take(q.page.limit)
        .collect()
}

/// The answer one store holding every record would give, from the partial
/// answers of the stores [`route`] names (at least one), byte for byte:
/// an error if the request is invalid (or its marker was found nowhere),
/// counts summed, pages merged in the list's order, then `offset` and
/// `limit` applied.
pub fn merge(
    path: &str,
    query: &str,
    scope: &Scope,
    partials: impl IntoIterator<Item = Partial>,
) -> Response {
    let q = match parse::parse(path, query, scope, DEFAULT_MAX_LIMIT) {
        Ok(q) => q,
        Err(e) => return Response::error(&e),
    };
    let (mut count, mut entries, mut answered) = (0u64, Vec::new(), false);
    for Partial(part) in partials {
        match part {
            Part::Error(answer) => return answer,
            Part::Answer {
                count: c,
                entries: e,
            } => {
                count = count.saturating_add(c);
                entries.extend(e);
                answered = true;
            }
        }
    }
    if let (Some(marker), false) = (&q.page.marker, answered) {
        return Response::error(&QueryError::MarkerNotFound {
            marker: marker.clone(),
        });
    }
    let order = q.sort.effective();
    let page = select(
        entries,
        |a: &Entry, b: &Entry| a.position.cmp_in(&b.position, &order),
        &q,
    );
    let page: Vec<&str> = page.iter().map(|e| e.json.as_str()).collect();
    let body = match q.api {
        Api::V1Count | Api::ShareCount => render::count(count),
        Api::V1List => render::v1_list_of(&page),
        Api::V3List => render::v3_list_of(&page, count),
    };
    Response { status: 200, body }
}

/// Answers a request from the stores that hold its shards, as [`merge`]
/// would from their [`Store::partial`]s (a single store answers by
/// itself). `shards` are the stores [`route`] names; a store holding
/// nothing answers nothing. In one process the stores' parts stay
/// unrendered: only the entries the merged page keeps are rendered.
pub fn answer_from(shards: &[&Store], path: &str, query: &str, scope: &Scope) -> Response {
    // One store holds all the request can see: its own answer is the
    // merged one (the property tests hold both paths to it).
    if let [only] = shards {
        return only.handle(path, query, scope);
    }
    merge_rows(shards, path, query, scope, &PagePolicy::default())
}

/// [`answer_from`] over several stores, each finding its part by the
/// page paths `policy` allows (the property tests force each).
pub(crate) fn merge_rows(
    shards: &[&Store],
    path: &str,
    query: &str,
    scope: &Scope,
    policy: &PagePolicy,
) -> Response {
    let q = match parse::parse(path, query, scope, DEFAULT_MAX_LIMIT) {
        Ok(q) => q,
        Err(e) => return Response::error(&e),
    };
    let at = shards.iter().find_map(|s| s.locate(scope, &q));
    let (mut count, mut entries) = (0u64, Vec::<(&Store, u32)>::new());
    for &store in shards {
        match store.part_rows(scope, &q, at.as_ref(), policy) {
            Err(e) => return Response::error(&e),
            Ok((c, rows)) => {
                count = count.saturating_add(c);
                entries.extend(rows.into_iter().map(|row| (store, row)));
            }
        }
    }
    if let (Some(marker), []) = (&q.page.marker, shards) {
        return Response::error(&QueryError::MarkerNotFound {
            marker: marker.clone(),
        });
    }
    let order = q.sort.effective();
    let cmp = |&(a, ra): &(&Store, u32), &(b, rb): &(&Store, u32)| {
        for &(key, dir) in &order {
            let ord = dir.apply(a.cmp_key_across(exec::order_key(key), ra, b, rb));
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    };
    let page: Vec<render::Item<'_>> = select(entries, cmp, &q)
        .into_iter()
        .map(|(store, row)| store.item(row))
        .collect();
    let body = match q.api {
        Api::V1Count | Api::ShareCount => render::count(count),
        Api::V1List => render::v1_list(&page),
        Api::V3List => render::v3_list(&page, count),
    };
    Response { status: 200, body }
}

/// Why a [`Partial`] or a [`Position`] sent between processes (their
/// `to_json` text) was refused: what was being read, and what is wrong
/// with it, at which line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    what: &'static str,
    message: String,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.message)
    }
}

impl std::error::Error for WireError {}

/// A position as it travels: timestamps in microseconds since the epoch,
/// the status by its name.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PositionWire {
    created_at: i64,
    updated_at: i64,
    name: String,
    status: String,
    protected_at: Option<i64>,
    id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryWire {
    position: PositionWire,
    /// The entry's JSON object, embedded as it is rendered.
    json: Box<RawValue>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum PartialWire {
    Error { status: u16, body: String },
    Answer { count: u64, entries: Vec<EntryWire> },
}

impl PositionWire {
    fn of(p: &Position) -> PositionWire {
        PositionWire {
            created_at: p.created_at.as_micros(),
            updated_at: p.updated_at.as_micros(),
            name: p.name.clone(),
            status: p.status.as_str().to_owned(),
            protected_at: p.protected_at.map(Timestamp::as_micros),
            id: p.id.clone(),
        }
    }

    fn position(self) -> Result<Position, String> {
        let time = |field: &str, us: i64| {
            Timestamp::from_micros(us)
                .ok_or_else(|| format!("field {field}: {us} microseconds is out of range"))
        };
        Ok(Position {
            created_at: time("created_at", self.created_at)?,
            updated_at: time("updated_at", self.updated_at)?,
            name: self.name,
            status: Status::parse(&self.status)
                .ok_or_else(|| format!("field status: {:?} is not a status", self.status))?,
            protected_at: self
                .protected_at
                .map(|us| time("protected_at", us))
                .transpose()?,
            id: self.id,
        })
    }
}

impl Position {
    /// The position as JSON text, for [`Position::from_json`] in another
    /// process (a marker located on one node bounds every node's part).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&PositionWire::of(self)).unwrap_or_default()
    }

    /// A position from [`Position::to_json`]'s text.
    ///
    /// # Errors
    ///
    /// Text that is not such a position: bad JSON (line and column), a
    /// missing or unknown field, a timestamp out of range, an unknown
    /// status.
    pub fn from_json(text: &str) -> Result<Position, WireError> {
        let error = |message| WireError {
            what: "position",
            message,
        };
        let wire: PositionWire = serde_json::from_str(text).map_err(|e| error(e.to_string()))?;
        wire.position().map_err(error)
    }
}

impl Partial {
    /// The partial answer as JSON text, for [`Partial::from_json`] in the
    /// process that merges: every entry with its position and its JSON
    /// object as rendered.
    pub fn to_json(&self) -> String {
        let wire = match &self.0 {
            Part::Error(answer) => PartialWire::Error {
                status: answer.status,
                body: answer.body.clone(),
            },
            Part::Answer { count, entries } => PartialWire::Answer {
                count: *count,
                entries: entries
                    .iter()
                    .filter_map(|e| {
                        // An entry's JSON is rendered by this library: it
                        // is always a JSON object.
                        Some(EntryWire {
                            position: PositionWire::of(&e.position),
                            json: RawValue::from_string(e.json.clone()).ok()?,
                        })
                    })
                    .collect(),
            },
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// A partial answer from [`Partial::to_json`]'s text.
    ///
    /// # Errors
    ///
    /// Text that is not such an answer: bad JSON (line and column), a
    /// missing or unknown field, an entry whose position is not one
    /// (named by its index).
    pub fn from_json(text: &str) -> Result<Partial, WireError> {
        let error = |message| WireError {
            what: "partial answer",
            message,
        };
        let wire: PartialWire = serde_json::from_str(text).map_err(|e| error(e.to_string()))?;
        Ok(Partial(match wire {
            PartialWire::Error { status, body } => Part::Error(Response { status, body }),
            PartialWire::Answer { count, entries } => Part::Answer {
                count,
                entries: entries
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| {
                        Ok(Entry {
                            position: e
                                .position
                                .position()
                                .map_err(|m| error(format!("entry {i}: {m}")))?,
                            json: e.json.get().to_owned(),
                        })
                    })
                    .collect::<Result<_, WireError>>()?,
            },
        }))
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    #[test]
    fn bad_wire_text_is_refused_with_its_place() {
        let e = Partial::from_json("{\"answer\": {\"count\": 1}}").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("partial answer: missing field `entries`"),
            "{e}"
        );
        let e = Position::from_json("[1,").unwrap_err();
        assert!(e.to_string().contains("line 1 column 3"), "{e}");
        let p = r#"{"created_at":0,"updated_at":0,"name":"n","status":"lost","protected_at":null,"id":"b"}"#;
        let e = Position::from_json(p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "position: field status: \"lost\" is not a status"
        );
        let p = p
            .replace("lost", "error")
            .replace("\"created_at\":0", "\"created_at\":9223372036854775807");
        let e = Position::from_json(&p).unwrap_err();
        assert!(e.to_string().contains("field created_at"), "{e}");
        let e = Partial::from_json(&format!(
            r#"{{"answer":{{"count":1,"entries":[{{"position":{},"json":{{}}}}]}}}}"#,
            p
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("partial answer: entry 0: field created_at"),
            "{e}"
        );
        let ok = Partial::from_json(r#"{"error":{"status":404,"body":"{}"}}"#).unwrap();
        assert_eq!(Partial::from_json(&ok.to_json()).unwrap(), ok);
    }
}
