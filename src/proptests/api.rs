//! The four APIs against the oracle: random stores with ties and nulls
//! everywhere, random requests over every parameter (valid and not), full
//! pagination walks, counts against walks, and tenant isolation.

use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use super::store::{id_variant, record, EPS, IDS, PATTERNS, PROJECTS};
use crate::exec::PagePolicy;
use crate::plan::SubstringPolicy;

/// Every way a substring filter can be answered, forced in turn.
const SUBSTRINGS: [SubstringPolicy; 4] = [
    SubstringPolicy::Planned,
    SubstringPolicy::Collect,
    SubstringPolicy::Verify,
    SubstringPolicy::Test,
];
use crate::oracle::Oracle;
use crate::query::{Scope, DEFAULT_MAX_LIMIT};
use crate::record::Record;
use crate::store::Store;

fn pick(pool: &'static [&'static str]) -> BoxedStrategy<String> {
    select(pool).prop_map(str::to_owned).boxed()
}

/// Mostly a valid value, now and then an invalid one.
fn vals(valid: &'static [&'static str], invalid: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![8 => select(valid), 1 => select(invalid)]
        .prop_map(str::to_owned)
        .boxed()
}

const TIMES: &[&str] = &[
    "2020-09-13T12:26:40",
    "2020-09-13T12:26:41.000001",
    "2020-09-13T12:26:43.000003Z",
    "2020-09-13T13:26:44+01:00",
    "2020-09-13T12:26:42.0000019",
    "2020-09-13T23:33:20.000001",
    "2020-09-14T10:40:00",
    "2020-09-15T00:00:00Z",
    "2020-09-15T08:53:20.000004",
    "2020-09-16T00:00:00+05:00",
    // A range that starts or ends exactly with a day covers it whole.
    "2020-09-13T00:00:00",
    "2020-09-14T23:59:59.999999",
];
const BAD_TIMES: &[&str] = &[
    "2020-09-13 12:26:40",
    "2020-09-13T12:26:40.1234567890",
    "2020-02-30T00:00:00",
];
const BOOLS: &[&str] = &["true", "false", "TRUE", "False"];
const BAD_BOOLS: &[&str] = &["yes", "1", "t"];
const STATUSES: &[&str] = &[
    "available",
    "error",
    "deleted",
    "protecting",
    "waiting_delete",
];
const BAD_STATUSES: &[&str] = &["Available", "bogus"];
const LIMITS: &[&str] = &[
    "1",
    "2",
    "3",
    "5",
    "7",
    "1000",
    "99999999999999999999",
    "007",
];
const BAD_LIMITS: &[&str] = &["0", "-1", "-0", "abc", "+3", "2.5", " 3"];
const OFFSETS: &[&str] = &["0", "1", "2", "5", "-0", "2147483647"];
const BAD_OFFSETS: &[&str] = &["-1", "2147483648", "x"];
const SORT_KEYS: &[&str] = &[
    "created_at",
    "updated_at",
    "name",
    "status",
    "protected_at",
    "id",
];
const SORT_DIRS: &[&str] = &["", ":asc", ":desc", ":ASC", ":Desc"];

fn sort_value() -> BoxedStrategy<String> {
    prop_oneof![
        8 => subsequence(SORT_KEYS, 1..4)
            .prop_shuffle()
            .prop_flat_map(|keys| {
                let n = keys.len();
                (Just(keys), proptest::collection::vec(select(SORT_DIRS), n))
            })
            .prop_map(|(keys, dirs)| {
                keys.iter().zip(dirs).map(|(k, d)| format!("{k}{d}")).collect::<Vec<_>>().join(",")
            }),
        1 => select(&["name,", "bogus", "name, id", "name: asc", "id,id", "name:up", "name:"][..]).prop_map(str::to_owned),
    ]
    .boxed()
}

/// A parameter for an API: mostly its own, sometimes another API's, an
/// unknown one, or a malformed value.
fn param(api: usize) -> BoxedStrategy<(String, String)> {
    let names: &'static [&'static str] = match api {
        0 | 1 => &[
            "status",
            "name",
            "resource_name",
            "az",
            "resource_id",
            "checkpoint_id",
            "resource_type",
            "image_type",
            "policy_id",
            "dec",
            "ip",
            "start_time",
            "end_time",
            "all_tenants",
            "sort",
            "marker",
            "limit",
            "offset",
        ],
        2 => &[
            "status",
            "status",
            "name",
            "resource_name",
            "resource_az",
            "resource_id",
            "checkpoint_id",
            "resource_type",
            "image_type",
            "vault_id",
            "parent_id",
            "enterprise_project_id",
            "dec",
            "start_time",
            "end_time",
            "all_tenants",
            "own_type",
            "own_type",
            "member_status",
            "sort",
            "marker",
            "limit",
            "offset",
            "used_percent",
        ],
        _ => &[
            "status",
            "name",
            "availability_zone",
            "avalilability_zone",
            "volume_id",
            "backup_id",
            "from_project_id",
            "to_project_id",
            "share_to_me",
            "share_to_me",
            "limit",
        ],
    };
    let unknown = select(&["colour", "Status", "az ", "policy", "ip"][..])
        .prop_map(|n| (n.to_owned(), "x".to_owned()));
    let known = select(names).prop_flat_map(|name| {
        let value: BoxedStrategy<String> = match name {
            "status" => vals(STATUSES, BAD_STATUSES),
            "name" | "resource_name" => pick(PATTERNS),
            "az" | "resource_az" | "availability_zone" | "avalilability_zone" => {
                pick(&["az1", "az2", "", "az3"])
            }
            "resource_id" | "volume_id" => pick(&["vm1", "vm2", "vol1", "none"]),
            "checkpoint_id" | "backup_id" | "marker" => pick(IDS),
            "resource_type" => pick(&["OS::Nova::Server", "OS::Cinder::Volume", "x", "y"]),
            "image_type" => vals(&["backup", "replication"], &["Backup"]),
            "policy_id" | "vault_id" | "parent_id" => pick(&["r1", "r2", "r3"]),
            "dec" | "all_tenants" | "share_to_me" => vals(BOOLS, BAD_BOOLS),
            "ip" => vals(
                &["10.0.0.1", "10.0.0.2", "2001:DB8::1", "::ffff:10.0.0.1"],
                &["fe80::1%eth0", "10.0.0.256"],
            ),
            "start_time" | "end_time" => vals(TIMES, BAD_TIMES),
            "sort" => sort_value(),
            "limit" => vals(LIMITS, BAD_LIMITS),
            "offset" => vals(OFFSETS, BAD_OFFSETS),
            "own_type" => vals(&["private", "shared", "all_granted"], &["mine"]),
            "member_status" => vals(
                &["pending", "accept", "reject", "accepted", "rejected"],
                &["Accept"],
            ),
            "enterprise_project_id" => pick(&["0", "ep1", "ep2", "ep9", "all_granted_eps"]),
            "from_project_id" | "to_project_id" => pick(PROJECTS),
            _ => pick(&["x"]),
        };
        (Just(name.to_owned()), value)
    });
    prop_oneof![30 => known, 1 => unknown].boxed()
}

pub(super) fn encode(params: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

fn scope() -> impl Strategy<Value = Scope> {
    let granted = prop_oneof![
        3 => Just(None),
        1 => subsequence(EPS, 0..=2).prop_map(|eps| Some(eps.iter().map(|e| e.to_string()).collect())),
    ];
    (select(PROJECTS), proptest::bool::weighted(0.3), granted).prop_map(
        |(p, admin, granted_eps)| Scope {
            project_id: p.to_owned(),
            admin,
            granted_eps,
        },
    )
}

/// A request: a path (mostly the scope's own project) and a query string.
pub(super) fn request() -> impl Strategy<Value = (Scope, String, String)> {
    (scope(), 0usize..4, proptest::bool::weighted(0.05)).prop_flat_map(|(scope, api, foreign)| {
        let project = if foreign {
            "p9".to_owned()
        } else {
            scope.project_id.clone()
        };
        let path = match api {
            0 => format!("/v1/{project}/checkpoint_items"),
            1 => format!("/v1/{project}/checkpoint_items/count"),
            2 => format!("/v3/{project}/backups"),
            _ => format!("/v2/{project}/os-vendor-backup-sharing/count"),
        };
        (
            Just(scope),
            Just(path),
            proptest::collection::vec(param(api), 0..5).prop_map(|p| encode(&p)),
        )
    })
}

/// Random records with distinct ids (still of odd shapes and byte orders),
/// so that stores are large enough for pages and ties; in half the stores
/// every id is a UUID (sharing their first digits), as services send them.
pub(super) fn records(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Record>> {
    (proptest::collection::vec(record(), n), any::<bool>()).prop_map(|(mut records, uuids)| {
        for (i, r) in records.iter_mut().enumerate() {
            let (base, round) = (IDS[i % IDS.len()], i / IDS.len());
            r.id = if uuids {
                format!(
                    "{:08x}-3c7a-47ba-848e-{:012x}",
                    (i % 3) * 0x1111_1111,
                    i * 7919 % 1000
                )
            } else {
                id_variant(base, round)
            };
        }
        records
    })
}

fn load(records: &[Record]) -> (Store, Oracle) {
    let (mut store, mut oracle) = (Store::new(), Oracle::new());
    // Apply one at a time so that repeated ids in the random pool are
    // replacements rather than a rejected batch.
    for r in records {
        let _ = store.upsert(std::slice::from_ref(r));
        let _ = oracle.upsert(std::slice::from_ref(r));
    }
    (store, oracle)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_answer_equals_the_oracles(
        records in records(0..80),
        requests in proptest::collection::vec(request(), 1..12),
    ) {
        let (store, oracle) = load(&records);
        for (scope, path, query) in requests {
            let want = oracle.handle(&path, &query, &scope);
            let paths = [(None, false), (Some(true), false), (Some(true), true), (Some(false), false), (Some(false), true)];
            for (i, (force_walk, test_rows)) in paths.into_iter().enumerate() {
                for (j, substrings) in SUBSTRINGS.into_iter().enumerate() {
                    let defer_checks = [None, Some(true), Some(false)][(i + j) % 3];
                    let by_day = [None, Some(true), Some(false)][(i + 2 * j) % 3];
                    let policy = PagePolicy { force_walk, test_rows, substrings, defer_checks, by_day };
                    let got = store.handle_with_policy(&path, &query, &scope, DEFAULT_MAX_LIMIT, &policy);
                    prop_assert_eq!(&got, &want, "{} ? {} as {:?}, {:?}", path, query, scope, policy);
                }
            }
        }
    }
}

#[test]
fn request_mix_is_meaningful() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut statuses = std::collections::BTreeMap::new();
    let mut nonempty = 0;
    for _ in 0..300 {
        let records = records(40..80).new_tree(&mut runner).unwrap().current();
        let (store, _) = load(&records);
        let (scope, path, query) = request().new_tree(&mut runner).unwrap().current();
        let r = store.handle(&path, &query, &scope);
        *statuses.entry(r.status).or_insert(0) += 1;
        let body = r.json();
        let n = body["count"].as_u64().unwrap_or(0)
            + body["checkpoint_items"]
                .as_array()
                .map_or(0, |a| a.len() as u64)
            + body["backups"].as_array().map_or(0, |a| a.len() as u64);
        if r.status == 200 && n > 0 {
            nonempty += 1;
        }
    }
    // The random requests must reach answers, not only errors.
    assert!(
        nonempty >= 50,
        "only {nonempty} non-empty answers: {statuses:?}"
    );
    for status in [200, 400, 403] {
        assert!(
            statuses.get(&status).copied().unwrap_or(0) >= 10,
            "{status} is rare: {statuses:?}"
        );
    }
}

/// Mixed directions force the walk to re-sort groups of equal names.
#[test]
fn walk_with_mixed_directions_regroups_ties() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let records = records(60..61).new_tree(&mut runner).unwrap().current();
    let (store, oracle) = load(&records);
    let scope = Scope::project("p1");
    let q = "sort=name:asc,created_at:desc&limit=50";
    let want = oracle.handle("/v1/p1/checkpoint_items", q, &scope);
    let walk = PagePolicy {
        force_walk: Some(true),
        ..PagePolicy::default()
    };
    let got = store.handle_with_policy(
        "/v1/p1/checkpoint_items",
        q,
        &scope,
        DEFAULT_MAX_LIMIT,
        &walk,
    );
    assert!(want.json()["checkpoint_items"]
        .as_array()
        .is_some_and(|a| a.len() > 5));
    assert_eq!(got, want);
}

/// The deepest offset allocates nothing by it on any page path (a page
/// reserves room for what it can hold, not for `offset + limit`).
#[test]
fn the_deepest_offset_is_an_empty_page_on_every_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let records = records(60..61).new_tree(&mut runner).unwrap().current();
    let (store, oracle) = load(&records);
    let scope = Scope::project("p1");
    for sort in [
        "created_at:desc",
        "updated_at:asc",
        "protected_at:asc",
        "name:asc",
    ] {
        let q = format!("sort={sort}&offset=2147483647&limit=1000");
        let want = oracle.handle("/v1/p1/checkpoint_items", &q, &scope);
        assert_eq!(want.body, r#"{"checkpoint_items":[]}"#);
        for force_walk in [None, Some(true), Some(false)] {
            for by_day in [None, Some(true)] {
                for test_rows in [false, true] {
                    let policy = PagePolicy {
                        force_walk,
                        by_day,
                        test_rows,
                        ..PagePolicy::default()
                    };
                    let got = store.handle_with_policy(
                        "/v1/p1/checkpoint_items",
                        &q,
                        &scope,
                        DEFAULT_MAX_LIMIT,
                        &policy,
                    );
                    assert_eq!(got, want, "{q} {policy:?}");
                }
            }
        }
    }
}

/// A list request whose pages are followed by markers.
pub(super) fn list_request() -> impl Strategy<Value = (Scope, String, Vec<(String, String)>)> {
    (scope(), proptest::bool::ANY).prop_flat_map(|(scope, v3)| {
        let api = if v3 { 2 } else { 0 };
        let path = if v3 {
            format!("/v3/{}/backups", scope.project_id)
        } else {
            format!("/v1/{}/checkpoint_items", scope.project_id)
        };
        let filters = proptest::collection::vec(param(api), 0..3).prop_map(|ps| {
            ps.into_iter()
                .filter(|(k, _)| !matches!(k.as_str(), "marker" | "limit" | "offset" | "sort"))
                .collect::<Vec<_>>()
        });
        (
            Just(scope),
            Just(path),
            filters,
            proptest::option::weighted(0.85, sort_value()),
        )
            .prop_map(|(scope, path, mut filters, sort)| {
                filters.extend(sort.map(|s| ("sort".to_owned(), s)));
                (scope, path, filters)
            })
    })
}

pub(super) fn ids(response: &crate::api::Response) -> Vec<String> {
    let body = response.json();
    let items = body
        .get("backups")
        .or_else(|| body.get("checkpoint_items"))
        .and_then(|v| v.as_array())
        .cloned();
    items
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Following markers page by page (random limits and offsets) yields
    /// the unpaged order with no gap or duplicate, even when records that
    /// the filter excludes change between pages; v1.count and v3's count
    /// equal the length of the walk.
    #[test]
    fn marker_walks_cover_the_whole_order(
        records in records(0..80),
        noise in records(0..20),
        (scope, path, filters) in list_request(),
        limits in proptest::collection::vec(1usize..7, 1..40),
        offset in 0usize..3,
        force in proptest::option::of(proptest::bool::ANY),
        unbuilt in proptest::bool::ANY,
        substrings in proptest::sample::select(SUBSTRINGS.to_vec()),
        defer_checks in proptest::option::of(proptest::bool::ANY),
        by_day in proptest::option::of(proptest::bool::ANY),
    ) {
        let (mut store, mut oracle) = load(&records);
        let policy = PagePolicy { force_walk: force, test_rows: unbuilt, substrings, defer_checks, by_day };
        let full = store.handle_with_policy(&path, &encode(&filters), &scope, DEFAULT_MAX_LIMIT, &policy);
        if full.status != 200 {
            return Ok(());
        }
        let everything = ids(&full);
        // Records outside the caller's project, not shared to it: invisible
        // to a non-admin, so they may change between pages.
        let noise: Vec<Record> = noise
            .into_iter()
            .enumerate()
            .map(|(i, r)| Record { id: format!("noise{i}"), project_id: "p9".into(), members: vec![], ..r })
            .collect();
        let mut walked: Vec<String> = Vec::new();
        let mut marker: Option<String> = None;
        for (step, limit) in limits.iter().cycle().enumerate().take(200) {
            let mut params = filters.clone();
            params.push(("limit".into(), limit.to_string()));
            if step == 0 && offset > 0 {
                params.push(("offset".into(), offset.to_string()));
            }
            if let Some(m) = &marker {
                params.push(("marker".into(), m.clone()));
            }
            let page = store.handle_with_policy(&path, &encode(&params), &scope, DEFAULT_MAX_LIMIT, &policy);
            prop_assert_eq!(&page, &oracle.handle(&path, &encode(&params), &scope));
            prop_assert_eq!(page.status, 200);
            let got = ids(&page);
            if got.is_empty() {
                break;
            }
            prop_assert!(got.len() <= *limit);
            walked.extend(got.iter().cloned());
            marker = got.last().cloned();
            if !scope.admin && step % 2 == 0 {
                if let Some(r) = noise.get(step / 2) {
                    let _ = store.upsert(std::slice::from_ref(r));
                    let _ = oracle.upsert(std::slice::from_ref(r));
                }
            }
        }
        let expected: Vec<String> = everything.iter().skip(offset).cloned().collect();
        prop_assert_eq!(&walked, &expected);
        if path.starts_with("/v1/") && !scope.admin {
            let count_path = format!("{path}/count");
            let count = store.handle(&count_path, &encode(&filters), &scope).json()["count"].as_u64();
            prop_assert_eq!(count, Some(everything.len() as u64));
        } else if path.starts_with("/v3/") {
            prop_assert_eq!(full.json()["count"].as_u64(), Some(everything.len() as u64));
        }
    }

    /// Other tenants' records, not shared with the caller, change no answer
    /// of a non-admin scope, byte for byte.
    #[test]
    fn other_tenants_change_nothing(
        records in records(0..60),
        others in records(0..60),
        requests in proptest::collection::vec(request(), 1..10),
    ) {
        let (mut store, _) = load(&records);
        let before: Vec<_> = requests.iter().map(|(s, p, q)| store.handle(p, q, s)).collect();
        let others: Vec<Record> = others
            .into_iter()
            .enumerate()
            .map(|(i, r)| Record {
                id: format!("other{i}"),
                project_id: format!("tenant{}", i % 3),
                members: r.members.into_iter().filter(|m| !PROJECTS.contains(&m.dest_project_id.as_str())).collect(),
                ..r
            })
            .collect();
        store.upsert(&others).unwrap();
        for ((scope, path, query), answer) in requests.iter().zip(before) {
            if scope.admin {
                continue;
            }
            prop_assert_eq!(store.handle(path, query, scope), answer, "{} ? {}", path, query);
        }
    }
}
