//! The filter planner: a request becomes a conjunction of row sets taken
//! from the indexes (visibility first, then every filter), intersected
//! smallest first and stopping as soon as the result is empty, plus the
//! few checks that are cheaper row by row. `Store::explain` shows it.

// Input reaches this module: no indexing that could panic on it.
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

use std::borrow::Cow;

use roaring::RoaringBitmap;

use crate::query::{Api, EnterpriseProject, Filter, OwnType, Query, Scope};
use crate::quote::Quoted;
use crate::record::Status;
use crate::store::{BitmapKey, OrderKey, Store, TextField};

/// A set of rows from an index, with what it stands for.
pub(crate) struct RowSet<'s> {
    pub(crate) label: String,
    pub(crate) rows: Cow<'s, RoaringBitmap>,
}

/// A condition checked row by row on the candidates, where building its
/// row set would cost more than checking.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    /// `parent_id` has this dictionary code (`None`: no row has the value).
    ParentId(Option<u32>),
    /// The text field's value is one of these codes (they contain the
    /// pattern).
    Contains(TextField, String, RoaringBitmap),
}

/// A filter that is a union of disjoint row sets: the days of a time
/// range.
pub(crate) struct Days<'s> {
    pub(crate) label: String,
    /// The range, in microseconds, both ends included.
    pub(crate) from: i64,
    pub(crate) to: i64,
    pub(crate) parts: Vec<Cow<'s, RoaringBitmap>>,
    /// The rows of all parts.
    pub(crate) len: u64,
    /// The store's live rows, for the cost of intersecting dense sets.
    pub(crate) live: u64,
}

/// What to intersect and check for one request.
pub(crate) struct Plan<'s> {
    /// The caller's visible set before filters (the marker must be in
    /// every one of these).
    pub(crate) visible: Vec<RowSet<'s>>,
    /// The filters answered by indexes.
    pub(crate) filters: Vec<RowSet<'s>>,
    /// A `created_at` range: disjoint parts (days), never unioned up
    /// front; see [`Plan::candidates`] and [`Plan::count_rows`].
    pub(crate) days: Option<Days<'s>>,
    /// The filters answered row by row.
    pub(crate) checks: Vec<Check>,
    /// share.count: count sharing entries, not rows.
    pub(crate) entries: bool,
}

fn union<'s>(sets: impl IntoIterator<Item = &'s RoaringBitmap>) -> RoaringBitmap {
    let mut acc = RoaringBitmap::new();
    for s in sets {
        acc |= s;
    }
    acc
}

fn borrowed<'s>(label: String, rows: &'s RoaringBitmap) -> RowSet<'s> {
    RowSet {
        label,
        rows: Cow::Borrowed(rows),
    }
}

fn owned<'s>(label: String, rows: RoaringBitmap) -> RowSet<'s> {
    RowSet {
        label,
        rows: Cow::Owned(rows),
    }
}

impl<'s> Plan<'s> {
    /// Plans `q` for `scope` over `store`. The query has been validated.
    pub(crate) fn new(store: &'s Store, scope: &Scope, q: &Query) -> Plan<'s> {
        let f = &q.filter;
        let mut plan = Plan {
            visible: visibility(store, scope, q),
            filters: filter_sets(store, scope, q),
            days: time_range(store, f),
            checks: Vec::new(),
            entries: q.api == Api::ShareCount && !q.share_to_me && f.to_project_id.is_none(),
        };
        if let Some(parent) = &f.parent_id {
            plan.checks.push(Check::ParentId(store.parent_code(parent)));
        }
        for (pattern, field) in [
            (&f.name, TextField::Name),
            (&f.resource_name, TextField::ResourceName),
        ] {
            if let Some(pattern) = pattern {
                plan.add_substring(store, field, pattern);
            }
        }
        plan
    }

    /// A substring filter: the matching values are known exactly. Few
    /// values (or rows) are collected through the ordered index; many are
    /// checked on the candidates by value code.
    fn add_substring(&mut self, store: &'s Store, field: TextField, pattern: &str) {
        let found = store.text_match(field, pattern);
        let collect = found
            .codes
            .len()
            .saturating_mul(32)
            .saturating_add(found.rows);
        if collect < self.smallest_len().saturating_mul(2) {
            self.filters.push(owned(
                format!(
                    "{} contains {} ({} values)",
                    field.name(),
                    Quoted(pattern),
                    found.codes.len()
                ),
                store.text_rows(field, &found.codes),
            ));
        } else {
            self.checks
                .push(Check::Contains(field, pattern.to_owned(), found.codes));
        }
    }

    /// Whether `row` is in the caller's visible set (before filters).
    pub(crate) fn is_visible(&self, row: u32) -> bool {
        self.visible.iter().all(|s| s.rows.contains(row))
    }

    /// All sets, smallest first.
    fn ordered_sets(&self) -> Vec<&RowSet<'s>> {
        let mut sets: Vec<&RowSet<'s>> = self.visible.iter().chain(&self.filters).collect();
        sets.sort_by_key(|s| s.rows.len());
        sets
    }

    /// The rows passing every set (not the checks), intersected smallest
    /// first, stopping as soon as the result is empty. A time range is
    /// intersected day by day when its days hold fewer rows than the
    /// smallest other set, and last otherwise.
    pub(crate) fn candidates(&self) -> RoaringBitmap {
        let sets = self.ordered_sets();
        match &self.days {
            None => intersect(&sets),
            Some(days) if days_first(days, &sets) => {
                let mut acc = RoaringBitmap::new();
                for part in &days.parts {
                    acc |= intersect_from(part, &sets);
                }
                acc
            }
            Some(days) => {
                let base = intersect(&sets);
                let mut acc = RoaringBitmap::new();
                for part in &days.parts {
                    if !base.is_disjoint(part) {
                        acc |= &base & part.as_ref();
                    }
                }
                acc
            }
        }
    }

    /// What a walk over large sets tests each live row against instead of
    /// building their intersection: the sets, smallest (most likely to
    /// refuse) first, without those that hold every live row.
    pub(crate) fn row_tests(&self, store: &Store) -> Vec<&RoaringBitmap> {
        let live = store.len() as u64;
        self.ordered_sets()
            .into_iter()
            .map(|s| s.rows.as_ref())
            .filter(|rows| rows.len() < live)
            .collect()
    }

    /// Whether the live `row` passes every set (not the checks), given the
    /// plan's `row_tests`.
    #[inline]
    pub(crate) fn contains(&self, store: &Store, tests: &[&RoaringBitmap], row: u32) -> bool {
        tests.iter().all(|rows| rows.contains(row))
            && self
                .days
                .as_ref()
                .is_none_or(|d| (d.from..=d.to).contains(&store.created_at_of(row)))
    }

    /// The size of the smallest set: what building the candidates costs.
    pub(crate) fn smallest_len(&self) -> u64 {
        self.visible
            .iter()
            .chain(&self.filters)
            .map(|s| s.rows.len())
            .chain(self.days.as_ref().map(|d| d.len))
            .min()
            .unwrap_or(0)
    }

    /// The number of candidates if the sets were independent, out of `n`
    /// live rows: enough to choose between a walk and top-k.
    pub(crate) fn estimate(&self, n: usize) -> u64 {
        let n = n.max(1) as f64;
        let fraction: f64 = self
            .visible
            .iter()
            .chain(&self.filters)
            .map(|s| s.rows.len())
            .chain(self.days.as_ref().map(|d| d.len))
            .map(|len| len as f64 / n)
            .product();
        ((n * fraction).round() as u64).min(self.smallest_len())
    }

    /// Whether the plan needs no row-level work to count.
    pub(crate) fn is_index_only(&self) -> bool {
        self.checks.is_empty()
    }

    /// The number of rows passing, from cardinalities alone when there are
    /// no checks: one set is its length, two an `intersection_len`, more
    /// intersect all but the largest first. A time range adds up its
    /// days' counts, so its union is never built.
    pub(crate) fn count_rows(&self, store: &Store) -> u64 {
        if !self.is_index_only() {
            let candidates = self.candidates();
            return candidates
                .iter()
                .filter(|&r| self.passes_checks(store, r))
                .count() as u64;
        }
        let sets = self.ordered_sets();
        match &self.days {
            None => match sets.split_first() {
                None => 0,
                Some((first, rest)) => count_from(&first.rows, rest),
            },
            Some(days) if days_first(days, &sets) => {
                days.parts.iter().map(|part| count_from(part, &sets)).sum()
            }
            Some(days) => {
                let base = intersect(&sets);
                days.parts
                    .iter()
                    .map(|part| base.intersection_len(part))
                    .sum()
            }
        }
    }

    /// share.count without `to_project_id` and `share_to_me`: the sharing
    /// entries of the passing rows, `Σ_k |rows ∧ at_least[k]|`.
    pub(crate) fn count(&self, store: &Store) -> u64 {
        if !self.entries {
            return self.count_rows(store);
        }
        let mut candidates = self.candidates();
        if !self.is_index_only() {
            candidates = candidates
                .iter()
                .filter(|&r| self.passes_checks(store, r))
                .collect();
        }
        store.sharing_entries(&candidates)
    }

    /// Whether `row` passes the row-level checks.
    #[inline]
    pub(crate) fn passes_checks(&self, store: &Store, row: u32) -> bool {
        self.checks.iter().all(|c| match c {
            Check::ParentId(code) => code.is_some_and(|c| store.parent_code_of(row) == c),
            Check::Contains(field, _, codes) => codes.contains(store.text_code(*field, row)),
        })
    }

    /// The sets in the order they are intersected, each with whether it
    /// is part of the visible set, for `explain`.
    pub(crate) fn sets_in_order(&self) -> Vec<(bool, &RowSet<'s>)> {
        self.ordered_sets()
            .into_iter()
            .map(|s| (self.visible.iter().any(|v| std::ptr::eq(v, s)), s))
            .collect()
    }
}

/// The caller's visible set (§2), before filters: the route's project or
/// every record, v3's `own_type`, share.count's direction, and
/// `granted_eps`.
fn visibility<'s>(store: &'s Store, scope: &Scope, q: &Query) -> Vec<RowSet<'s>> {
    let me = scope.project_id.as_str();
    let own = || store.eq_rows(BitmapKey::Project, me);
    let mine = || borrowed(format!("project_id = {me}"), own());
    let mut visible = vec![match q.api {
        Api::V1List | Api::V1Count | Api::V3List if q.all_tenants => {
            borrowed("all records".into(), store.live_rows())
        }
        Api::V1List | Api::V1Count => mine(),
        Api::V3List => {
            let shared = || store.shared_rows(me, None) - own();
            match q.own_type {
                OwnType::Private => mine(),
                OwnType::Shared => owned(format!("shared to {me} by other projects"), shared()),
                OwnType::AllGranted => owned(
                    format!("project_id = {me} or shared to it"),
                    shared() | own(),
                ),
            }
        }
        Api::ShareCount if q.share_to_me => {
            borrowed(format!("shared to {me}"), store.shared_rows(me, None))
        }
        Api::ShareCount => mine(),
    }];
    if let Some(granted) = &scope.granted_eps {
        let rows = union(
            granted
                .iter()
                .map(|ep| store.eq_rows(BitmapKey::EnterpriseProject, ep)),
        );
        let names: Vec<String> = granted.iter().map(|ep| Quoted(ep).to_string()).collect();
        visible.push(owned(
            format!("enterprise_project_id in granted [{}]", names.join(", ")),
            rows,
        ));
    }
    visible
}

/// The filters answered by an index as a set of rows (§3): equality on
/// bitmap-indexed fields, ranges of ordered indexes, addresses, sharing,
/// v3's `member_status` and `enterprise_project_id`.
fn filter_sets<'s>(store: &'s Store, scope: &Scope, q: &Query) -> Vec<RowSet<'s>> {
    let me = scope.project_id.as_str();
    let f = &q.filter;
    let mut filters = Vec::new();
    if !f.status.is_empty() {
        let names: Vec<String> = f
            .status
            .iter()
            .map(|s| Quoted(s.as_str()).to_string())
            .collect();
        let label = format!("status in [{}]", names.join(", "));
        let rows = |s: &Status| store.code_rows(BitmapKey::Status, *s as u32);
        filters.push(match f.status.as_slice() {
            [one] => borrowed(label, rows(one)),
            many => owned(label, union(many.iter().map(rows))),
        });
    }
    let mut equal = |value: &Option<String>, key: BitmapKey| {
        if let Some(v) = value {
            filters.push(borrowed(
                format!("{} = {v}", key.name()),
                store.eq_rows(key, v),
            ));
        }
    };
    equal(&f.resource_az, BitmapKey::ResourceAz);
    equal(&f.resource_type, BitmapKey::ResourceType);
    equal(&f.policy_id, BitmapKey::Policy);
    equal(&f.vault_id, BitmapKey::Vault);
    let keyed: [(&Option<String>, OrderKey); 3] = [
        (&f.resource_id, OrderKey::ResourceId),
        (&f.checkpoint_id, OrderKey::CheckpointId),
        (&f.backup_id, OrderKey::Id),
    ];
    for (value, key) in keyed {
        if let Some(v) = value {
            filters.push(owned(
                format!("{} = {v}", key.name()),
                store.key_rows(key, v),
            ));
        }
    }
    if let Some(v) = &f.from_project_id {
        filters.push(borrowed(
            format!("project_id = {v}"),
            store.eq_rows(BitmapKey::Project, v),
        ));
    }
    if let Some(t) = f.image_type {
        filters.push(borrowed(
            format!("image_type = {t}"),
            store.code_rows(BitmapKey::ImageType, t as u32),
        ));
    }
    if let Some(d) = f.dec {
        filters.push(borrowed(
            format!("dec = {d}"),
            store.code_rows(BitmapKey::Dec, u32::from(d)),
        ));
    }
    if let Some(ip) = f.ip {
        filters.push(owned(format!("ip = {ip}"), store.ip_rows(ip)));
    }
    if let Some(v) = &f.to_project_id {
        filters.push(if q.share_to_me && v != me {
            // Entries shared to me cannot have another destination.
            owned(
                format!("shared to {v} (never, with share_to_me)"),
                RoaringBitmap::new(),
            )
        } else {
            borrowed(format!("shared to {v}"), store.shared_rows(v, None))
        });
    }
    if let (Some(status), Api::V3List, false) = (f.member_status, q.api, q.all_tenants) {
        let own = store.eq_rows(BitmapKey::Project, me);
        let shared = store.shared_rows(me, Some(status)) - own;
        let rows = if q.own_type == OwnType::AllGranted {
            shared | own
        } else {
            shared
        };
        filters.push(owned(
            format!("own, or shared to {me} with member status {status}"),
            rows,
        ));
    }
    // `all_granted_eps` narrows to `granted_eps`, which visibility applies.
    if let Some(EnterpriseProject::Id(ep)) = &f.enterprise_project {
        filters.push(borrowed(
            format!("enterprise_project_id = {ep}"),
            store.eq_rows(BitmapKey::EnterpriseProject, ep),
        ));
    }
    filters
}

/// A `start_time`/`end_time` range as its days: whole days are bitmaps of
/// the day index; only the two edge days are checked row by row.
fn time_range<'s>(store: &'s Store, f: &Filter) -> Option<Days<'s>> {
    if f.start_time.is_none() && f.end_time.is_none() {
        return None;
    }
    let from = f.start_time.map_or(i64::MIN, |t| t.as_micros());
    let to = f.end_time.map_or(i64::MAX, |t| t.as_micros());
    let parts = store.created_in(from, to);
    Some(Days {
        label: format!(
            "created_at in [{}, {}] ({} days)",
            show_time(from),
            show_time(to),
            parts.len()
        ),
        len: parts.iter().map(|p| p.len()).sum(),
        live: store.len() as u64,
        parts,
        from,
        to,
    })
}

/// Whether a time range goes first, day by day, or last, after the other
/// sets are intersected. Day by day costs about a probe per day row and
/// set; the sets first cost about a probe per row of the smallest set
/// and set — or, where the sets are dense (bitmap containers), a word per
/// 64 live rows — then a probe per day row. So the days go first when
/// they hold no more rows than the smallest set and there is at most one
/// set, or the sets are sparse next to the days (the big tenant's 30 days
/// and a status: 2 × 127,000 probes day by day, against 2 × 15,600 words
/// and 127,000 probes).
fn days_first(days: &Days<'_>, sets: &[&RowSet<'_>]) -> bool {
    let Some(smallest) = sets.first() else {
        return true;
    };
    let k = sets.len() as u64;
    let per_set = smallest.rows.len().min(days.live / 64);
    days.len <= smallest.rows.len() && days.len.saturating_mul(k - 1) <= per_set.saturating_mul(k)
}

/// The intersection of sets sorted smallest first.
fn intersect(sets: &[&RowSet<'_>]) -> RoaringBitmap {
    match sets.split_first() {
        None => RoaringBitmap::new(),
        Some((first, rest)) => intersect_from(&first.rows, rest),
    }
}

/// `first ∧ rest…`, stopping as soon as it is empty.
fn intersect_from(first: &RoaringBitmap, rest: &[&RowSet<'_>]) -> RoaringBitmap {
    let mut acc = first.clone();
    for s in rest {
        if acc.is_empty() {
            break;
        }
        acc &= s.rows.as_ref();
    }
    acc
}

/// `|first ∧ rest…|` (`rest` smallest first): the last set only through
/// `intersection_len`, so that nothing is built for two sets.
fn count_from(first: &RoaringBitmap, rest: &[&RowSet<'_>]) -> u64 {
    match rest.split_last() {
        None => first.len(),
        Some((largest, [])) => first.intersection_len(&largest.rows),
        Some((largest, middle)) => {
            let acc = intersect_from(first, middle);
            if acc.is_empty() {
                0
            } else {
                acc.intersection_len(&largest.rows)
            }
        }
    }
}

fn show_time(micros: i64) -> String {
    crate::timestamp::Timestamp::from_micros(micros)
        .map_or_else(|| "open".to_owned(), |t| t.to_string())
}
