//! List pages, by one of three paths.
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
//!   those. Cost: O(|candidates| + k log k). Where the order is an ordered
//!   index's own (its key, then `created_at`, then `id`, one direction),
//!   each row is keyed once by integers and those are compared. With row
//!   checks (`parent_id`, a substring), the rows are ordered first and
//!   checked in order when few will be looked at (`top_k_checked`).
//! * **Day by day**: a top-k whose first key is a timestamp
//!   (`created_at`, `updated_at`, `protected_at`) takes the candidates of
//!   one day of that key's day index at a time, in the page's direction
//!   from the marker's day, sorts them and stops when the page is full.
//!   The candidates are built, or, over large sets, each day is
//!   intersected with the sets. Cost: about `need · days / |candidates|`
//!   days, each an intersection and a small sort: a page of a broad filter
//!   touches a few days, not every candidate, at any store size.
//!
//! With the candidates built, the planner picks the walk when it expects
//! to visit fewer rows than there are candidates (never for a first key
//! with few distinct values, `status`, whose groups would be most of the
//! store), else day by day when the days reached cost less than keying
//! every candidate, else top-k. Over large sets it compares a rough cost
//! of each path ([`Costs`]) before building anything.
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

use super::PagePolicy;
use crate::index::day_of;
use crate::plan::{passes, Plan};
use crate::query::{Direction, Query, SortKey};
use crate::store::{OrderKey, Position, Store};

/// The ordered index that serves a sort key.
pub(crate) fn order_key(key: SortKey) -> OrderKey {
    match key {
        SortKey::CreatedAt => OrderKey::CreatedAt,
        SortKey::UpdatedAt => OrderKey::UpdatedAt,
        SortKey::Name => OrderKey::Name,
        SortKey::Status => OrderKey::Status,
        SortKey::ProtectedAt => OrderKey::ProtectedAt,
        SortKey::Id => OrderKey::Id,
    }
}

/// Compares two rows by a list order (each sort key's ordered-index key,
/// in its direction).
#[inline]
fn cmp_order(store: &Store, order: &[(SortKey, Direction)], a: u32, b: u32) -> Ordering {
    for &(key, dir) in order {
        let ord = dir.apply(store.cmp_key(order_key(key), a, b));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// Compares a row with a position (the marker's) by a list order.
fn cmp_order_at(
    store: &Store,
    order: &[(SortKey, Direction)],
    row: u32,
    at: &Position,
) -> Ordering {
    for &(key, dir) in order {
        let ord = dir.apply(store.cmp_key_at(order_key(key), row, at));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// The candidates of a walk.
pub(crate) enum Candidates {
    /// Built as a bitmap (the smallest set is small).
    Built(RoaringBitmap),
    /// Tested row by row against the plan's sets as the walk visits them;
    /// about this many, estimated.
    Tested { estimate: u64 },
}

/// How a page is found.
pub(crate) enum PagePlan {
    /// Walk the first key's ordered index from the marker; `grouped` when
    /// rows of equal first key must be re-sorted.
    Walk {
        grouped: bool,
        candidates: Candidates,
    },
    /// Select the best `k` of all candidates, built.
    TopK { candidates: RoaringBitmap },
    /// The first key is a timestamp: the candidates of each day of its day
    /// index, in the page's direction, until the page is full.
    ByDay { candidates: Candidates },
}

impl PagePlan {
    /// The number of candidates: exact when built, else an estimate.
    pub(crate) fn size(&self) -> u64 {
        match self {
            PagePlan::Walk {
                candidates: Candidates::Built(c),
                ..
            }
            | PagePlan::TopK { candidates: c }
            | PagePlan::ByDay {
                candidates: Candidates::Built(c),
            } => c.len(),
            PagePlan::Walk {
                candidates: Candidates::Tested { estimate },
                ..
            }
            | PagePlan::ByDay {
                candidates: Candidates::Tested { estimate },
            } => *estimate,
        }
    }
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

/// Candidates whose smallest set is at most this large are built as a
/// bitmap before a page is found (cheap: the cost follows the smallest
/// set). Larger ones are only built for top-k; a walk tests its rows
/// against the sets instead, so that its cost does not grow with them.
const BUILD_MAX: u64 = 1 << 16;

/// Decides how a page is found. When the sets are large, from an estimate
/// of the candidates: a walk or a day-by-day top-k that tests the sets as
/// it goes, whichever is expected to cost least, or else building them.
/// With the candidates built: a walk when it visits fewer rows than
/// there are candidates, else a top-k, day by day when the days a page
/// reaches cost less than keying every candidate.
pub(crate) fn plan_page(
    store: &Store,
    plan: &Plan<'_>,
    order: &[(SortKey, Direction)],
    need: u64,
    policy: &PagePolicy,
) -> PagePlan {
    let grouped = !index_order_is_total(order);
    let days = days_of_first_key(store, order);
    if policy.test_rows || plan.smallest_len() > BUILD_MAX {
        let estimate = plan.estimate(store.len());
        let cost = Costs::unbuilt(store, plan, estimate, need, days);
        let walk = walks(store, order, estimate, need, policy)
            && (policy.force_walk == Some(true)
                || match policy.by_day {
                    Some(true) => days == 0,
                    Some(false) => true,
                    None => days == 0 || cost.walk <= cost.by_day,
                });
        if walk {
            return PagePlan::Walk {
                grouped,
                candidates: Candidates::Tested { estimate },
            };
        }
        let by_day = days > 0
            && policy.force_walk != Some(true)
            && policy.by_day.unwrap_or(cost.by_day < cost.top_k);
        if by_day {
            return PagePlan::ByDay {
                candidates: Candidates::Tested { estimate },
            };
        }
    }
    let built = plan.candidates();
    let passing = (built.len() as f64 * plan.pass).round() as u64;
    if walks(store, order, passing, need, policy) {
        PagePlan::Walk {
            grouped,
            candidates: Candidates::Built(built),
        }
    } else if days > 0 && by_day(store, days, built.len(), passing, need, policy) {
        PagePlan::ByDay {
            candidates: Candidates::Built(built),
        }
    } else {
        PagePlan::TopK { candidates: built }
    }
}

/// The number of days in the day index of the order's first key (0 when
/// it has none: names, status, ids).
fn days_of_first_key(store: &Store, order: &[(SortKey, Direction)]) -> usize {
    order
        .first()
        .map_or(0, |&(key, _)| store.days_held(order_key(key)))
}

/// What each path is expected to cost, in about nanoseconds on the
/// machine of docs/performance.md (measured at 1M and 10M records): a walk
/// visits rows and looks each up in every set (~20 ns a row and set); a
/// day-by-day top-k intersects the days it reaches with the candidates or
/// with every set (~2.5 ns a row and bitmap) and sorts what passes (~40
/// ns a row); a top-k builds the candidates (dense sets intersect at a
/// fraction of a nanosecond a row) and keys every one (~45 ns).
struct Costs {
    walk: f64,
    by_day: f64,
    top_k: f64,
}

impl Costs {
    /// `matching` rows of `n` pass, `need` are wanted, the first key's
    /// day index holds `days` days, and each row reached is intersected
    /// with `bitmaps` bitmaps (the sets, or the built candidates).
    fn new(n: usize, matching: u64, need: u64, days: usize, bitmaps: usize) -> Costs {
        let n = n.max(1) as f64;
        let matching = matching.max(1) as f64;
        let (need, days, bitmaps) = (need as f64, days.max(1) as f64, bitmaps.max(1) as f64);
        let walked = need * n / matching;
        let day_rows = walked + n / days;
        Costs {
            walk: walked * bitmaps * 20.0,
            by_day: day_rows * (bitmaps + 1.0) * 2.5 + (need + matching / days) * 40.0,
            top_k: matching * 45.0,
        }
    }

    /// Over large sets, before anything is built: building the
    /// candidates adds to the top-k.
    fn unbuilt(store: &Store, plan: &Plan<'_>, estimate: u64, need: u64, days: usize) -> Costs {
        let sets = plan.row_tests(store).len();
        let mut costs = Costs::new(store.len(), estimate, need, days, sets);
        costs.top_k += plan.smallest_len() as f64 * sets as f64 / 16.0;
        costs
    }
}

/// Whether a top-k over built candidates goes day by day: when the days
/// the page is expected to reach cost less than keying every candidate,
/// unless the policy forces it either way.
fn by_day(
    store: &Store,
    days: usize,
    candidates: u64,
    passing: u64,
    need: u64,
    policy: &PagePolicy,
) -> bool {
    if let Some(force) = policy.by_day {
        return force;
    }
    let costs = Costs::new(store.len(), passing, need, days, 1);
    costs.by_day < candidates as f64 * 45.0
}

/// Whether walking the first key's index visits fewer rows than there
/// are candidates (never for a first key with few distinct values,
/// `status`, whose groups would be most of the store), unless the policy
/// forces a path.
fn walks(
    store: &Store,
    order: &[(SortKey, Direction)],
    candidates: u64,
    need: u64,
    policy: &PagePolicy,
) -> bool {
    if let Some(walk) = policy.force_walk {
        return walk;
    }
    let first = order.first().map_or(SortKey::CreatedAt, |k| k.0);
    let walked = need.saturating_mul(store.len() as u64) / candidates.max(1);
    !(first == SortKey::Status || candidates == 0 || walked >= candidates)
}

/// The rows of a page, in order, and the number of candidates where they
/// were built (the query's count when it has no checks: v3 then counts
/// nothing again).
pub(crate) struct Page {
    pub(crate) rows: Vec<u32>,
    pub(crate) built: Option<u64>,
}

/// The rows of the requested page, in order.
pub(crate) fn page(
    store: &Store,
    plan: &Plan<'_>,
    q: &Query,
    marker: Option<&Position>,
    policy: &PagePolicy,
) -> Page {
    let order = q.sort.effective();
    let (skip, take) = (q.page.offset, q.page.limit);
    let need = skip.saturating_add(take);
    let after_marker = |row: u32| {
        marker.is_none_or(|at| cmp_order_at(store, &order, row, at) == Ordering::Greater)
    };
    let page_plan = plan_page(store, plan, &order, need as u64, policy);
    let built = match &page_plan {
        PagePlan::TopK { .. }
        | PagePlan::Walk {
            candidates: Candidates::Built(_),
            ..
        }
        | PagePlan::ByDay {
            candidates: Candidates::Built(_),
        } => Some(page_plan.size()),
        _ => None,
    };
    let rows = match page_plan {
        PagePlan::TopK { candidates } => {
            let rows: Vec<u32> = candidates.iter().filter(|&r| after_marker(r)).collect();
            top_k_checked(store, plan, &order, rows, need, policy)
        }
        PagePlan::ByDay { candidates } => {
            let Some(&(first, dir)) = order.first() else {
                return Page {
                    rows: Vec::new(),
                    built,
                };
            };
            let key = order_key(first);
            let tests = match candidates {
                Candidates::Built(_) => Vec::new(),
                Candidates::Tested { .. } => plan.row_tests(store),
            };
            // A `created_at` range bounds the days of `created_at` itself.
            let range = plan
                .days
                .as_ref()
                .filter(|_| key == OrderKey::CreatedAt)
                .map(|d| day_of(d.from)..=day_of(d.to));
            let mut out = Vec::with_capacity(need.min(1024));
            let days = store.days_in_order(key, dir == Direction::Desc, marker);
            for (day, rows) in days.into_iter().flatten() {
                if range.as_ref().is_some_and(|r| !r.contains(&day)) {
                    continue;
                }
                let rows = match &candidates {
                    Candidates::Built(built) if rows.is_disjoint(built) => continue,
                    Candidates::Built(built) => rows & built,
                    Candidates::Tested { .. } => plan.within(store, &tests, rows),
                };
                let taken: Vec<u32> = rows
                    .iter()
                    .filter(|&r| after_marker(r) && passes(&plan.checks, store, r))
                    .collect();
                out.extend(top_k(store, &order, taken, need - out.len()));
                if out.len() >= need {
                    break;
                }
            }
            out
        }
        PagePlan::Walk {
            grouped,
            candidates,
        } => {
            let tests = match candidates {
                Candidates::Built(_) => Vec::new(),
                Candidates::Tested { .. } => plan.row_tests(store),
            };
            let accept = |row: u32| {
                let candidate = match &candidates {
                    Candidates::Built(built) => built.contains(row),
                    Candidates::Tested { .. } => plan.contains(store, &tests, row),
                };
                candidate && passes(&plan.checks, store, row)
            };
            let Some(&(first, dir)) = order.first() else {
                return Page {
                    rows: Vec::new(),
                    built,
                };
            };
            let (key, desc) = (order_key(first), dir == Direction::Desc);
            if grouped {
                walk_groups(store, &order, key, desc, marker, need, accept, after_marker)
            } else {
                store
                    .walk(key, desc, marker)
                    .filter(|&r| accept(r))
                    .take(need)
                    .collect()
            }
        }
    };
    Page {
        rows: rows.into_iter().skip(skip).collect(),
        built,
    }
}

/// How many of the candidates a top-k with checks first selects in order,
/// to check them in that order, when that is cheaper than checking every
/// candidate: enough for `need` to pass at the estimated pass fraction,
/// with a margin; `None` when it would be most of them anyway (then every
/// candidate is checked first).
pub(crate) fn deferred_selection(
    plan: &Plan<'_>,
    candidates: usize,
    need: usize,
    policy: &PagePolicy,
) -> Option<usize> {
    if plan.checks.is_empty() {
        return None;
    }
    let planned = (need as f64 / plan.pass * 1.25) as usize + 16;
    match policy.defer_checks {
        Some(true) => Some(need),
        Some(false) => None,
        None => (planned < candidates / 4).then_some(planned),
    }
}

/// The first `need` of `rows` that pass the plan's checks, in the list's
/// order. Where few of them will be looked at, the first rows in order are
/// selected and checked in that order, a larger selection (four times) each
/// time too few pass; the order is total, so the rows passing in a prefix
/// of it are a prefix of the passing rows. Otherwise every row is checked
/// first.
fn top_k_checked(
    store: &Store,
    plan: &Plan<'_>,
    order: &[(SortKey, Direction)],
    rows: Vec<u32>,
    need: usize,
    policy: &PagePolicy,
) -> Vec<u32> {
    if let Some(mut k) = deferred_selection(plan, rows.len(), need, policy) {
        while k < rows.len() {
            let passed: Vec<u32> = top_k(store, order, rows.clone(), k)
                .into_iter()
                .filter(|&r| passes(&plan.checks, store, r))
                .take(need)
                .collect();
            if passed.len() >= need {
                return passed;
            }
            k = k.saturating_mul(4);
        }
    }
    let checks = plan.checks_for(store, rows.len() as u64);
    let rows = rows
        .into_iter()
        .filter(|&r| passes(&checks, store, r))
        .collect();
    top_k(store, order, rows, need)
}

/// The first `need` of `rows` in the list's order. Where the order is an
/// ordered index's own, each row's integer keys are computed once (a
/// selection and a sort of integers) instead of at every comparison.
fn top_k(
    store: &Store,
    order: &[(SortKey, Direction)],
    mut rows: Vec<u32>,
    need: usize,
) -> Vec<u32> {
    if let Some(&(first, dir)) = order.first() {
        let key = order_key(first);
        if index_order_is_total(order) && store.keys_cheaply(key) {
            return store.first_in_order(key, rows, need, dir == Direction::Desc);
        }
    }
    let cmp = |a: &u32, b: &u32| cmp_order(store, order, *a, *b);
    if need < rows.len() {
        rows.select_nth_unstable_by(need, cmp);
        rows.truncate(need);
    }
    rows.sort_unstable_by(cmp);
    rows
}

/// A walk whose order re-sorts rows of equal first key: from the start of
/// the marker's group, a group at a time, until `need` rows after the
/// marker are found.
#[allow(clippy::too_many_arguments)]
fn walk_groups(
    store: &Store,
    order: &[(SortKey, Direction)],
    key: OrderKey,
    desc: bool,
    marker: Option<&Position>,
    need: usize,
    accept: impl Fn(u32) -> bool,
    after_marker: impl Fn(u32) -> bool,
) -> Vec<u32> {
    let walk = match marker {
        Some(at) => store.walk_from_group(key, desc, at),
        None => store.walk(key, desc, None),
    };
    let mut out = Vec::new();
    let mut group: Vec<u32> = Vec::new();
    let mut last: Option<u32> = None;
    let flush = |group: &mut Vec<u32>, out: &mut Vec<u32>| {
        group.sort_unstable_by(|a, b| cmp_order(store, order, *a, *b));
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
