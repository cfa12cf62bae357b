//! Answers from many stores against one store's: random stores (ties,
//! null `protected_at`, sharing across projects, enterprise projects)
//! split over 1-8 shards, random requests valid and invalid, full marker
//! walks with random limits and offsets, and changes that move records
//! between shards. Every answer must equal the single store's, byte for
//! byte.

use proptest::prelude::*;

use super::api::{encode, ids, list_request, records, request};
use crate::api::{merge, merge_rows, Partial};
use crate::exec::PagePolicy;
use crate::plan::SubstringPolicy;
use crate::query::Scope;
use crate::record::Record;
use crate::shards::Shards;
use crate::store::{Position, Store};

fn split(records: &[Record], n: usize) -> (Store, Shards) {
    let (mut store, mut shards) = (Store::new(), Shards::new(n));
    for r in records {
        let one = store.upsert(std::slice::from_ref(r));
        let many = shards.upsert(std::slice::from_ref(r));
        assert_eq!(one, many);
    }
    (store, shards)
}

/// Page policies forcing each page path: walk (tested rows or built),
/// top-k (checks deferred or not), day by day.
fn policies() -> Vec<PagePolicy> {
    let policy = |force_walk, test_rows, defer_checks, by_day| PagePolicy {
        force_walk,
        test_rows,
        substrings: SubstringPolicy::Planned,
        defer_checks,
        by_day,
    };
    vec![
        policy(Some(true), false, None, Some(false)),
        policy(Some(true), true, None, Some(false)),
        policy(Some(false), false, Some(true), Some(false)),
        policy(Some(false), false, Some(false), Some(false)),
        policy(None, false, None, Some(true)),
        policy(None, true, None, Some(true)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every request, valid or not, answered through partials and merge.
    #[test]
    fn sharded_answers_equal_one_stores(
        records in records(0..80),
        n in 1usize..=8,
        requests in proptest::collection::vec(request(), 1..12),
    ) {
        let (store, shards) = split(&records, n);
        prop_assert_eq!(shards.len(), store.len());
        for (scope, path, query) in requests {
            let want = store.handle(&path, &query, &scope);
            let got = shards.handle(&path, &query, &scope);
            prop_assert_eq!(&got, &want, "{} ? {} as {:?} on {} shards", path, query, scope, n);
            // Partials and merge even where one store would answer alone.
            let every: Vec<&Store> = shards.stores().iter().collect();
            let at = every.iter().find_map(|s| s.locate_marker(&path, &query, &scope));
            let merged = merge(&path, &query, &scope, every.iter().map(|s| s.partial(&path, &query, &scope, at.as_ref())));
            prop_assert_eq!(&merged, &want, "merged from all {} stores", n);
            // The same parts and marker position sent as text between
            // processes.
            let at_sent = at.as_ref().map(|p| Position::from_json(&p.to_json()));
            let at_sent = at_sent.transpose().map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&at_sent, &at);
            let sent: Result<Vec<Partial>, _> = every
                .iter()
                .map(|s| Partial::from_json(&s.partial(&path, &query, &scope, at_sent.as_ref()).to_json()))
                .collect();
            let sent = sent.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&merge(&path, &query, &scope, sent), &want, "merged from parts sent as text");
        }
    }

    /// Following markers page by page over shards yields each page of one
    /// store, byte for byte, including the marker's 404 for a marker the
    /// caller cannot see.
    #[test]
    fn sharded_marker_walks_equal_one_stores(
        records in records(0..80),
        n in 1usize..=8,
        (scope, path, filters) in list_request(),
        limits in proptest::collection::vec(1usize..7, 1..40),
        offset in 0usize..3,
        foreign in 0usize..80,
    ) {
        let (store, shards) = split(&records, n);
        let mut marker: Option<String> = None;
        for (step, limit) in limits.iter().cycle().enumerate().take(200) {
            let mut params = filters.clone();
            params.push(("limit".into(), limit.to_string()));
            if offset > 0 {
                params.push(("offset".into(), offset.to_string()));
            }
            if let Some(m) = &marker {
                params.push(("marker".into(), m.clone()));
            }
            let query = encode(&params);
            let want = store.handle(&path, &query, &scope);
            prop_assert_eq!(&shards.handle(&path, &query, &scope), &want, "{} ? {} step {}", path, query, step);
            // Every store's page paths, seeked by a position that may come
            // from another store.
            let every: Vec<&Store> = shards.stores().iter().collect();
            for policy in policies() {
                prop_assert_eq!(&merge_rows(&every, &path, &query, &scope, &policy), &want, "{} ? {} step {} {:?}", path, query, step, policy);
            }
            let got = if want.status == 200 { ids(&want) } else { Vec::new() };
            if got.is_empty() {
                break;
            }
            marker = got.last().cloned();
        }
        // Any record as a marker: visible or not, the same answer.
        if let Some(r) = records.get(foreign % records.len().max(1)) {
            let mut params = filters.clone();
            params.push(("marker".into(), r.id.clone()));
            let query = encode(&params);
            prop_assert_eq!(shards.handle(&path, &query, &scope), store.handle(&path, &query, &scope));
        }
    }

    /// Upserts that move records between tenants (so between shards) and
    /// deletes, valid or not, change both alike.
    #[test]
    fn sharded_changes_equal_one_stores(
        records in records(0..60),
        n in 2usize..=8,
        moves in proptest::collection::vec((0usize..60, 0usize..6), 0..20),
        deletes in proptest::collection::vec(proptest::collection::vec(0usize..70, 0..4), 0..6),
        requests in proptest::collection::vec(request(), 1..8),
    ) {
        let (mut store, mut shards) = split(&records, n);
        const TENANTS: [&str; 6] = ["p0", "p1", "p2", "p3", "p5", "p9"];
        for (i, t) in moves {
            if let Some(r) = records.get(i) {
                let moved = Record { project_id: TENANTS[t].to_owned(), ..r.clone() };
                prop_assert_eq!(store.upsert(std::slice::from_ref(&moved)), shards.upsert(std::slice::from_ref(&moved)));
            }
        }
        for batch in deletes {
            // Ids past the records are unknown; repeats are duplicates.
            let ids: Vec<String> = batch
                .iter()
                .map(|&i| records.get(i).map_or_else(|| format!("missing{i}"), |r| r.id.clone()))
                .collect();
            prop_assert_eq!(store.delete(&ids), shards.delete(&ids));
        }
        prop_assert_eq!(shards.len(), store.len());
        for (scope, path, query) in requests {
            prop_assert_eq!(shards.handle(&path, &query, &scope), store.handle(&path, &query, &scope));
        }
        // Every tenant's records live on its shard alone.
        for (i, s) in shards.stores().iter().enumerate() {
            for tenant in TENANTS {
                let scope = Scope::project(tenant);
                let count = s.handle(&format!("/v1/{tenant}/checkpoint_items/count"), "", &scope).json()["count"].as_u64().unwrap_or(0);
                if count > 0 {
                    prop_assert_eq!(shards.store_of_vshard(crate::api::vshard_of(tenant)), i);
                }
            }
        }
    }
}
