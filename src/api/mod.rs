//! The request boundary: what a server calls with a route, a raw query
//! string and the caller's [`Scope`], and what it gets back.

// Input reaches this module: no indexing that could panic on it.
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

mod error;
mod parse;
#[cfg(test)]
mod proptests;
pub(crate) mod render;

pub use error::QueryError;
pub(crate) use render::View;

use roaring::RoaringBitmap;

use crate::engine::Engine;
use crate::exec;
use crate::plan::Plan;
use crate::query::{Api, Query, Scope, DEFAULT_MAX_LIMIT};
use crate::record::{ImageType, Record, Status};
use crate::store::{EqField, Store};

/// An HTTP status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// 200, 400, 403 or 404.
    pub status: u16,
    /// The JSON text of the body.
    pub body: String,
}

impl Response {
    /// The response to a body or an error.
    pub(crate) fn from_result(result: Result<String, QueryError>) -> Response {
        match result {
            Ok(body) => Response { status: 200, body },
            Err(e) => Response {
                status: e.status(),
                body: render::error(&e),
            },
        }
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One page of a list, for library callers.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// The page's records, in order.
    pub records: Vec<Record>,
    /// The number of records passing visibility and filters (v3's `count`),
    /// ignoring marker, offset and limit.
    pub count: u64,
}

/// A field whose values [`Store::facets`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FacetField {
    /// `status`
    Status,
    /// `resource_type`
    ResourceType,
    /// `resource_az`
    ResourceAz,
    /// `image_type`
    ImageType,
}

/// Parses a request as [`Store::handle`] does, without answering it.
///
/// # Errors
///
/// As [`Store::handle`], except `MarkerNotFound`, which needs the data.
pub fn parse_request(
    path: &str,
    query: &str,
    scope: &Scope,
    max_limit: usize,
) -> Result<Query, QueryError> {
    parse::parse(path, query, scope, max_limit)
}

pub(crate) fn validate(q: &Query, scope: &Scope) -> Result<(), QueryError> {
    parse::validate(q, scope)
}

impl Store {
    /// Answers one request of the four APIs (SEMANTICS §2-§6): `path` is
    /// the raw route (`/v1/p1/checkpoint_items`), `query` the raw query
    /// string without `?`. Never panics; every error is a response.
    ///
    /// ```
    /// use backdex::{Scope, Store};
    /// let store = Store::new();
    /// let r = store.handle("/v1/p1/checkpoint_items/count", "status=error", &Scope::project("p1"));
    /// assert_eq!((r.status, r.body.as_str()), (200, r#"{"count":0}"#));
    /// let r = store.handle("/v1/p1/checkpoint_items", "limit=0", &Scope::project("p1"));
    /// assert_eq!(r.status, 400);
    /// ```
    pub fn handle(&self, path: &str, query: &str, scope: &Scope) -> Response {
        self.handle_with_max_limit(path, query, scope, DEFAULT_MAX_LIMIT)
    }

    /// [`Store::handle`] with another cap on `limit`.
    pub fn handle_with_max_limit(
        &self,
        path: &str,
        query: &str,
        scope: &Scope,
        max_limit: usize,
    ) -> Response {
        Response::from_result(
            parse::parse(path, query, scope, max_limit.max(1)).and_then(|q| self.answer(scope, &q)),
        )
    }

    /// The JSON body answering a validated query.
    fn answer(&self, scope: &Scope, q: &Query) -> Result<String, QueryError> {
        let plan = Plan::new(self, scope, q);
        match q.api {
            Api::V1Count | Api::ShareCount => Ok(render::count(plan.count(self))),
            Api::V1List => {
                let rows = self.page_rows(&plan, q)?;
                Ok(render::v1_list(self.views(&rows).into_iter()))
            }
            Api::V3List => {
                let rows = self.page_rows(&plan, q)?;
                let count = plan.count_rows(self);
                Ok(render::v3_list(self.views(&rows).into_iter(), count))
            }
        }
    }

    /// The fields of a page's rows, all gathered before any is written:
    /// the rows are scattered over the columns, and gathering in one tight
    /// loop lets the CPU overlap their cache misses (L6 at 1M records:
    /// 69 → 62 µs).
    fn views(&self, rows: &[u32]) -> Vec<View<'_>> {
        rows.iter().map(|&r| View::of_row(self, r)).collect()
    }

    fn page_rows(&self, plan: &Plan<'_>, q: &Query) -> Result<Vec<u32>, QueryError> {
        let marker = exec::resolve_marker(self, plan, q)?;
        Ok(exec::page(self, plan, q, marker))
    }

    /// The count a query answers: `v1.count`, `share.count`, or a list's
    /// number of matching records.
    ///
    /// # Errors
    ///
    /// The 400/403 faults of SEMANTICS §2-§4 that a typed query can still
    /// have (a non-admin `all_tenants`, `member_status` with private
    /// records, an ungranted enterprise project, `start_time` after
    /// `end_time`, `limit` 0).
    pub fn count(&self, scope: &Scope, q: &Query) -> Result<u64, QueryError> {
        validate(q, scope)?;
        Ok(Plan::new(self, scope, q).count(self))
    }

    /// One page of a list query, as records.
    ///
    /// # Errors
    ///
    /// As [`Store::count`], and `MarkerNotFound`.
    pub fn list(&self, scope: &Scope, q: &Query) -> Result<ListPage, QueryError> {
        validate(q, scope)?;
        let plan = Plan::new(self, scope, q);
        let rows = self.page_rows(&plan, q)?;
        Ok(ListPage {
            records: rows.iter().map(|&r| self.cols.record(r as usize)).collect(),
            count: plan.count_rows(self),
        })
    }

    /// The plan of a query, in words: the sets intersected (smallest
    /// first) with their sizes, the row-level checks, how a count is
    /// answered and how a page is found.
    ///
    /// # Errors
    ///
    /// As [`Store::count`].
    pub fn explain(&self, scope: &Scope, q: &Query) -> Result<String, QueryError> {
        validate(q, scope)?;
        let plan = Plan::new(self, scope, q);
        let mut text = plan.explain();
        if matches!(q.api, Api::V1List | Api::V3List) {
            let need = q.page.offset.saturating_add(q.page.limit) as u64;
            let order = q.sort.effective();
            let page_plan = exec::plan_page(self, &plan, &order, need);
            let candidates = page_plan.size;
            let keys: Vec<String> = order
                .iter()
                .map(|(k, d)| format!("{} {:?}", k.as_str(), d).to_lowercase())
                .collect();
            let first = order.first().map_or("", |(k, _)| k.as_str());
            let kept = if page_plan.built.is_some() {
                format!("keep candidates ({candidates})")
            } else {
                format!("keep rows in every set (about {candidates}, not built)")
            };
            let access = match page_plan.access {
                exec::Access::Walk { grouped: false } => {
                    format!("walk the {first} index from the marker, {kept}")
                }
                exec::Access::Walk { grouped: true } => format!(
                    "walk the {first} index from the marker's group, re-sort each group of equal {first}, {kept}"
                ),
                exec::Access::TopK => {
                    format!("top-{need} of {candidates} candidates, then sort those")
                }
            };
            text.push_str(&format!("  order: {}\n  page: {access}\n", keys.join(", ")));
        }
        Ok(text)
    }

    /// For a query's visibility and filters (its page is ignored), the
    /// number of records per value of `field`, from bitmap cardinalities;
    /// values with no record are left out. Sorted by value.
    ///
    /// # Errors
    ///
    /// As [`Store::count`].
    pub fn facets(
        &self,
        scope: &Scope,
        q: &Query,
        field: FacetField,
    ) -> Result<Vec<(String, u64)>, QueryError> {
        validate(q, scope)?;
        let plan = Plan::new(self, scope, q);
        let mut candidates = plan.candidates();
        if !plan.is_index_only() {
            candidates = candidates
                .iter()
                .filter(|&r| plan.passes_checks(self, r))
                .collect::<RoaringBitmap>();
        }
        let count = |rows: &RoaringBitmap| rows.intersection_len(&candidates);
        let mut out: Vec<(String, u64)> = match field {
            FacetField::Status => Status::ALL
                .iter()
                .map(|&s| (s.as_str().to_owned(), count(self.status_rows(s))))
                .collect(),
            FacetField::ImageType => ImageType::ALL
                .iter()
                .map(|&t| (t.as_str().to_owned(), count(self.image_type_rows(t))))
                .collect(),
            FacetField::ResourceType => self
                .eq_values(EqField::ResourceType)
                .map(|(v, rows)| (v.to_owned(), count(rows)))
                .collect(),
            FacetField::ResourceAz => self
                .eq_values(EqField::ResourceAz)
                .map(|(v, rows)| (v.to_owned(), count(rows)))
                .collect(),
        };
        out.retain(|(_, n)| *n > 0);
        out.sort();
        Ok(out)
    }
}

impl Engine {
    /// [`Store::handle`] on the current snapshot.
    pub fn handle(&self, path: &str, query: &str, scope: &Scope) -> Response {
        self.snapshot().handle(path, query, scope)
    }
}
