//! Executing a plan: counts, and list pages by one of two paths.
//!
//! * **Walk**: follow the ordered index of the first sort key from the
//!   marker's position (or the start), keep rows that are candidates, stop
//!   after `offset + limit`. When the rest of the order is the index's own
//!   tie-break (`created_at`, `id` in the first key's direction) the index
//!   order *is* the page order; otherwise rows of equal first key are
//!   gathered and sorted by the full order, a group at a time. Cost:
//!   O(log n) to seek, then about `(offset + limit) · n / |candidates|`
//!   rows walked (plus the groups' sorts): independent of how deep the
//!   marker is.
//! * **Top-k**: scan the candidates, keep those after the marker, select
//!   the first `offset + limit` (`select_nth_unstable`) and sort only
//!   those. Cost: O(|candidates| + k log k).
//!
//! The planner picks the walk when it expects to visit fewer rows than
//! there are candidates, and never for a first key with few distinct values
//! (`status`), whose groups would be most of the store.
//!
//! Candidates are built as a bitmap (the intersection of the plan's sets)
//! only when that is cheap (the smallest set is small) or for top-k. A walk
//! over large sets tests each row it visits against the sets instead (a
//! bitmap lookup per set), choosing the path from an estimate of the
//! candidates: so a walk's cost does not grow with the sets (the big
//! tenant's first page: 124 µs at 10M records, 1.3× its 1M time).

// Input reaches this module: no indexing that could panic on it.
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

use std::cmp::Ordering;

use roaring::RoaringBitmap;

use crate::api::QueryError;
use crate::plan::Plan;
use crate::query::{Direction, Query, SortKey};
use crate::store::{order_key, Store};

/// How a page is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Walk the first key's ordered index; `grouped` when rows of equal
    /// first key must be re-sorted.
    Walk { grouped: bool },
    /// Select the best `k` of all candidates.
    TopK,
}

/// Whether the index of the first key, walked in its direction, already
/// yields the full order.
fn index_order_is_total(order: &[(SortKey, Direction)]) -> bool {
    let Some((&(first, dir), rest)) = order.split_first() else {
        return true;
    };
    let expected: &[(SortKey, Direction)] = match first {
        SortKey::Id => &[],
        SortKey::CreatedAt => &[(SortKey::Id, dir)],
        _ => &[(SortKey::CreatedAt, dir), (SortKey::Id, dir)],
    };
    rest == expected
}

#[cfg(test)]
thread_local! {
    /// Tests force a path (`Some(true)`: walk, `Some(false)`: top-k) to
    /// check both against the oracle on small stores, where the planner
    /// would always pick top-k.
    pub(crate) static FORCE_WALK: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
thread_local! {
    /// Tests make pages test candidates row by row, however small the
    /// sets, to check that path against the oracle on small stores.
    pub(crate) static FORCE_UNBUILT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Candidates whose smallest set is at most this large are built as a
/// bitmap before a page is found (cheap: the cost follows the smallest
/// set). Larger ones are only built for top-k; a walk tests its rows
/// against the sets instead, so that its cost does not grow with them.
const BUILD_MAX: u64 = 1 << 16;

/// How a page will be found, and the candidates if they were built.
pub(crate) struct PagePlan {
    pub(crate) access: Access,
    /// `None`: tested row by row during the walk.
    pub(crate) built: Option<RoaringBitmap>,
    /// The number of candidates: exact when built, else an estimate.
    pub(crate) size: u64,
}

/// Decides how a page is found: from an estimate of the candidates when
/// the sets are large (building them only if top-k wins), else from the
/// built candidates.
pub(crate) fn plan_page(
    store: &Store,
    plan: &Plan<'_>,
    order: &[(SortKey, Direction)],
    need: u64,
) -> PagePlan {
    #[cfg(test)]
    let unbuilt = FORCE_UNBUILT.with(|f| f.get()) || plan.smallest_len() > BUILD_MAX;
    #[cfg(not(test))]
    let unbuilt = plan.smallest_len() > BUILD_MAX;
    if unbuilt {
        let size = plan.estimate(store.len());
        let access = choose_access(store, order, size, need);
        if access != Access::TopK {
            return PagePlan {
                access,
                built: None,
                size,
            };
        }
    }
    let built = plan.candidates();
    let size = built.len();
    PagePlan {
        access: choose_access(store, order, size, need),
        built: Some(built),
        size,
    }
}

pub(crate) fn choose_access(
    store: &Store,
    order: &[(SortKey, Direction)],
    candidates: u64,
    need: u64,
) -> Access {
    #[cfg(test)]
    if let Some(walk) = FORCE_WALK.with(|f| f.get()) {
        return if walk {
            Access::Walk {
                grouped: !index_order_is_total(order),
            }
        } else {
            Access::TopK
        };
    }
    let first = order.first().map_or(SortKey::CreatedAt, |k| k.0);
    let walked = need.saturating_mul(store.len() as u64) / candidates.max(1);
    if first == SortKey::Status || candidates == 0 || walked >= candidates {
        Access::TopK
    } else {
        Access::Walk {
            grouped: !index_order_is_total(order),
        }
    }
}

/// The marker's row, if it names a record in the visible set.
pub(crate) fn resolve_marker(
    store: &Store,
    plan: &Plan<'_>,
    q: &Query,
) -> Result<Option<u32>, QueryError> {
    let Some(marker) = &q.page.marker else {
        return Ok(None);
    };
    store
        .row_of(marker)
        .filter(|&row| plan.is_visible(row))
        .map(Some)
        .ok_or_else(|| QueryError::MarkerNotFound {
            marker: marker.clone(),
        })
}

/// The rows of the requested page, in order.
pub(crate) fn page(store: &Store, plan: &Plan<'_>, q: &Query, marker: Option<u32>) -> Vec<u32> {
    let order = q.sort.effective();
    let (skip, take) = (q.page.offset, q.page.limit);
    let need = skip.saturating_add(take);
    let page_plan = plan_page(store, plan, &order, need as u64);
    let tests = match page_plan.built {
        Some(_) => Vec::new(),
        None => plan.row_tests(store),
    };
    let candidate = |row: u32| match &page_plan.built {
        Some(built) => built.contains(row),
        None => plan.contains(store, &tests, row),
    };
    let accept = |row: u32| candidate(row) && plan.passes_checks(store, row);
    let after_marker =
        |row: u32| marker.is_none_or(|m| store.cmp_order(&order, row, m) == Ordering::Greater);
    let rows = match page_plan.access {
        Access::TopK => {
            // `plan_page` builds the candidates whenever it picks top-k.
            let built;
            let candidates = match &page_plan.built {
                Some(c) => c,
                None => {
                    built = plan.candidates();
                    &built
                }
            };
            let mut rows: Vec<u32> = candidates
                .iter()
                .filter(|&r| plan.passes_checks(store, r) && after_marker(r))
                .collect();
            let cmp = |a: &u32, b: &u32| store.cmp_order(&order, *a, *b);
            if need < rows.len() {
                rows.select_nth_unstable_by(need, cmp);
                rows.truncate(need);
            }
            rows.sort_unstable_by(cmp);
            rows
        }
        Access::Walk { grouped: false } => {
            let Some(&(first, dir)) = order.first() else {
                return Vec::new();
            };
            store
                .walk(order_key(first), dir == Direction::Desc, marker)
                .filter(|&r| accept(r))
                .take(need)
                .collect()
        }
        Access::Walk { grouped: true } => {
            let Some(&(first, dir)) = order.first() else {
                return Vec::new();
            };
            let key = order_key(first);
            let desc = dir == Direction::Desc;
            let walk = match marker {
                Some(m) => store.walk_from_group(key, desc, m),
                None => store.walk(key, desc, None),
            };
            let mut out = Vec::new();
            let mut group: Vec<u32> = Vec::new();
            let mut last: Option<u32> = None;
            let flush = |group: &mut Vec<u32>, out: &mut Vec<u32>| {
                group.sort_unstable_by(|a, b| store.cmp_order(&order, *a, *b));
                out.extend(group.drain(..).filter(|&r| after_marker(r)));
            };
            for row in walk {
                if last.is_some_and(|l| store.cmp_key(key, l, row) != Ordering::Equal) {
                    flush(&mut group, &mut out);
                    if out.len() >= need {
                        break;
                    }
                }
                last = Some(row);
                if accept(row) {
                    group.push(row);
                }
            }
            flush(&mut group, &mut out);
            out.truncate(need);
            out
        }
    };
    rows.into_iter().skip(skip).collect()
}
