//! Executing typed queries: counts from bitmap cardinalities, pages by a
//! walk or a top-k (`page`), the plan in words (`explain`), and the
//! typed-query methods of [`Store`]: [`Store::count`], [`Store::list`],
//! [`Store::explain`] and [`Store::facets`]. The API layer answers routes
//! and query strings through the same functions.

mod explain;
mod page;
pub(crate) use page::order_key;

pub use explain::Explain;

use crate::plan::{Plan, SubstringPolicy};
use crate::query::{validate, Query, QueryError, Scope};
use crate::record::Record;
use crate::store::{BitmapKey, Position, Store};

/// Why executing a query failed: what only the data can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExecError {
    /// The marker names no record in the caller's visible set.
    MarkerNotFound {
        /// The marker as given.
        marker: String,
    },
}

/// The query boundary words it, the same for typed and parsed requests.
impl From<ExecError> for QueryError {
    fn from(e: ExecError) -> QueryError {
        match e {
            ExecError::MarkerNotFound { marker } => QueryError::MarkerNotFound { marker },
        }
    }
}

/// How pages are found, beyond what the planner chooses: tests force each
/// path on small stores (where the planner would always pick top-k) and
/// check it against the oracle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PagePolicy {
    /// `Some(true)`: always walk; `Some(false)`: always top-k.
    pub(crate) force_walk: Option<bool>,
    /// Test candidates row by row during walks, however small the sets.
    pub(crate) test_rows: bool,
    /// How the planner answers substring filters.
    pub(crate) substrings: SubstringPolicy,
    /// `Some(true)`: a top-k with checks orders before it checks (and
    /// starts from the smallest selection); `Some(false)`: it checks every
    /// candidate first.
    pub(crate) defer_checks: Option<bool>,
    /// `Some(true)`: a page whose first key is a timestamp goes day by day
    /// (unless a walk is forced); `Some(false)`: never.
    pub(crate) by_day: Option<bool>,
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
#[non_exhaustive]
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

impl FacetField {
    fn bitmap_key(self) -> BitmapKey {
        match self {
            FacetField::Status => BitmapKey::Status,
            FacetField::ResourceType => BitmapKey::ResourceType,
            FacetField::ResourceAz => BitmapKey::ResourceAz,
            FacetField::ImageType => BitmapKey::ImageType,
        }
    }
}

/// The marker's position, if it names a record in the visible set.
fn resolve_marker(
    store: &Store,
    plan: &Plan<'_>,
    q: &Query,
) -> Result<Option<Position>, ExecError> {
    let Some(marker) = &q.page.marker else {
        return Ok(None);
    };
    store
        .row_of(marker)
        .filter(|&row| plan.is_visible(row))
        .map(|row| Some(store.position(row)))
        .ok_or_else(|| ExecError::MarkerNotFound {
            marker: marker.clone(),
        })
}

/// The rows of a list query's page, in order.
pub(crate) fn page_rows(
    store: &Store,
    plan: &Plan<'_>,
    q: &Query,
    policy: &PagePolicy,
) -> Result<Vec<u32>, ExecError> {
    let marker = resolve_marker(store, plan, q)?;
    Ok(page_after(store, plan, q, marker.as_ref(), policy))
}

/// The rows of a list query's page, in order, and the number of records
/// the query matches (v3's `count`).
pub(crate) fn page_and_count(
    store: &Store,
    plan: &Plan<'_>,
    q: &Query,
    policy: &PagePolicy,
) -> Result<(Vec<u32>, u64), ExecError> {
    let marker = resolve_marker(store, plan, q)?;
    Ok(page_after_and_count(
        store,
        plan,
        q,
        marker.as_ref(),
        policy,
    ))
}

/// The rows of a list query's page after a position (`None`: from the
/// start), in order; the query's own marker is not looked at. The
/// position may come from another store: a marker resolved where it is.
pub(crate) fn page_after(
    store: &Store,
    plan: &Plan<'_>,
    q: &Query,
    after: Option<&Position>,
    policy: &PagePolicy,
) -> Vec<u32> {
    page::page(store, plan, q, after, policy).rows
}

/// [`page_after`], and the number of records the query matches: the
/// page's candidates where it built them and nothing is checked row by
/// row, else counted.
pub(crate) fn page_after_and_count(
    store: &Store,
    plan: &Plan<'_>,
    q: &Query,
    after: Option<&Position>,
    policy: &PagePolicy,
) -> (Vec<u32>, u64) {
    let page = page::page(store, plan, q, after, policy);
    let count = match page.built {
        Some(built) if plan.is_index_only() => built,
        _ => plan.count_rows(store),
    };
    (page.rows, count)
}

impl Store {
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
        let (rows, count) = page_and_count(self, &plan, q, &PagePolicy::default())?;
        Ok(ListPage {
            records: rows.iter().map(|&r| self.record_at(r)).collect(),
            count,
        })
    }

    /// The plan of a query: the sets intersected (smallest first) with
    /// their sizes, the row-level checks, how a count is answered and how a
    /// page is found. Its `Display` is the plan in words.
    ///
    /// # Errors
    ///
    /// As [`Store::count`].
    pub fn explain(&self, scope: &Scope, q: &Query) -> Result<Explain, QueryError> {
        validate(q, scope)?;
        let plan = Plan::new(self, scope, q);
        Ok(Explain::new(self, &plan, q, &PagePolicy::default()))
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
        let candidates = plan.passing(self);
        let mut out: Vec<(String, u64)> = self
            .values(field.bitmap_key())
            .map(|(v, rows)| (v.to_owned(), rows.intersection_len(&candidates)))
            .filter(|(_, n)| *n > 0)
            .collect();
        out.sort();
        Ok(out)
    }
}
