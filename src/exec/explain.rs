//! A query's plan in words: built in one place, from the plan and the page
//! plan, shown by its `Display`.

use std::fmt;

use super::page::{deferred_selection, plan_page, Candidates, PagePlan};
use super::PagePolicy;
use crate::plan::{Check, Plan};
use crate::query::{Api, Query};
use crate::quote::Quoted;
use crate::store::Store;

/// How [`Store::explain`] says a query is answered: the sets intersected,
/// smallest first, with their sizes; the checks made row by row; how a
/// count is found; for lists, the order and how the page is found. Its
/// `Display` is the plan in words, one step a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explain {
    api: Api,
    /// `(role, what, rows)`, in intersection order.
    sets: Vec<(&'static str, String, u64)>,
    checks: Vec<String>,
    /// The checks' estimated pass fraction, in percent, as shown.
    pass: Option<String>,
    count: &'static str,
    /// `(order, access)` of a list.
    page: Option<(String, String)>,
}

impl Explain {
    pub(crate) fn new(store: &Store, plan: &Plan<'_>, q: &Query, policy: &PagePolicy) -> Explain {
        let mut sets: Vec<(&'static str, String, u64)> = plan
            .sets_in_order()
            .into_iter()
            .map(|(visible, s)| {
                let role = if visible { "visible" } else { "filter" };
                (role, s.label.clone(), s.rows.len())
            })
            .collect();
        if let Some(days) = &plan.days {
            sets.push(("filter, day by day", days.label.clone(), days.len));
        }
        let checks: Vec<String> = plan
            .checks
            .iter()
            .map(|c| match c {
                Check::ParentId(_) => "parent_id".to_owned(),
                Check::Contains(s) if s.verified => format!(
                    "{} contains {} ({} values)",
                    s.field.name(),
                    Quoted(&s.pattern),
                    s.values(store)
                ),
                Check::Contains(s) => format!(
                    "{} contains {}, each row's value tested (of {} values that may match; verified first where more rows than that are checked)",
                    s.field.name(),
                    Quoted(&s.pattern),
                    s.values(store)
                ),
            })
            .collect();
        let pass = (!checks.is_empty()).then(|| format!("{:.1}", plan.pass * 100.0));
        let count = match (plan.is_index_only(), plan.entries) {
            (true, false) => "from bitmap cardinalities, no row touched",
            (true, true) => "sharing entries from bitmap cardinalities, no row touched",
            (false, _) => "candidates checked row by row",
        };
        let page = matches!(q.api, Api::V1List | Api::V3List).then(|| {
            let need = q.page.offset.saturating_add(q.page.limit) as u64;
            let order = q.sort.effective();
            let keys: Vec<String> = order
                .iter()
                .map(|(k, d)| format!("{} {}", k.as_str(), d.as_str()))
                .collect();
            let first = order.first().map_or("", |(k, _)| k.as_str());
            let page_plan = plan_page(store, plan, &order, need, policy);
            let size = page_plan.size();
            let access = match page_plan {
                PagePlan::ByDay { candidates } => {
                    let from = if order.first().is_some_and(|k| k.1 == crate::query::Direction::Desc) { "newest" } else { "oldest" };
                    let kept = match candidates {
                        Candidates::Built(_) => format!("each day's candidates (of {size})"),
                        Candidates::Tested { .. } => format!("each day intersected with every set (about {size} candidates, not built)"),
                    };
                    format!("day by day through the {first} day index from the {from} day (or the marker's): {kept}, sorted, until {need} are found")
                }
                PagePlan::TopK { .. } => {
                    match deferred_selection(plan, size as usize, need as usize, policy) {
                        Some(k) => format!("the first {k} of {size} candidates in order, checked in that order until {need} pass (more if too few)"),
                        None => format!("top-{need} of {size} candidates, then sort those"),
                    }
                }
                PagePlan::Walk {
                    grouped,
                    candidates,
                } => {
                    let kept = match candidates {
                        Candidates::Built(_) => format!("keep candidates ({size})"),
                        Candidates::Tested { .. } => {
                            format!("keep rows in every set (about {size}, not built)")
                        }
                    };
                    if grouped {
                        format!("walk the {first} index from the marker's group, re-sort each group of equal {first}, {kept}")
                    } else {
                        format!("walk the {first} index from the marker, {kept}")
                    }
                }
            };
            (keys.join(", "), access)
        });
        Explain {
            api: q.api,
            sets,
            checks,
            pass,
            count,
            page,
        }
    }
}

impl fmt::Display for Explain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:?}: intersect smallest first, stop when empty",
            self.api
        )?;
        for (role, what, rows) in &self.sets {
            writeln!(f, "  {role}: {what} ({rows} rows)")?;
        }
        for check in &self.checks {
            writeln!(f, "  check row by row: {check}")?;
        }
        if let Some(pass) = &self.pass {
            writeln!(
                f,
                "  checks pass about {pass}% of rows (tried on a sample of the smallest set)"
            )?;
        }
        writeln!(f, "  count: {}", self.count)?;
        if let Some((order, access)) = &self.page {
            writeln!(f, "  order: {order}")?;
            writeln!(f, "  page: {access}")?;
        }
        Ok(())
    }
}
