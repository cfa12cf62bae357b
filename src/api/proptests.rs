//! The four APIs against the oracle: random stores with ties and nulls
//! everywhere, random requests over every parameter (valid and not), full
//! pagination walks, counts against walks, and tenant isolation.

use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use crate::oracle::Oracle;
use crate::query::Scope;
use crate::record::Record;
use crate::store::proptests::{record, EPS, IDS, PATTERNS, PROJECTS};
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

fn encode(params: &[(String, String)]) -> String {
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
fn request() -> impl Strategy<Value = (Scope, String, String)> {
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
/// so that stores are large enough for pages and ties.
fn records(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Record>> {
    proptest::collection::vec(record(), n).prop_map(|mut records| {
        for (i, r) in records.iter_mut().enumerate() {
            let (base, round) = (IDS[i % IDS.len()], i / IDS.len());
            r.id = if round == 0 {
                base.to_owned()
            } else {
                format!("{base}~{round}")
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
            for force in [None, Some(true), Some(false)] {
                crate::exec::FORCE_WALK.with(|f| f.set(force));
                let got = store.handle(&path, &query, &scope);
                crate::exec::FORCE_WALK.with(|f| f.set(None));
                prop_assert_eq!(&got, &want, "{} ? {} as {:?}, forced walk: {:?}", path, query, scope, force);
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
    crate::exec::FORCE_WALK.with(|f| f.set(Some(true)));
    let got = store.handle("/v1/p1/checkpoint_items", q, &scope);
    crate::exec::FORCE_WALK.with(|f| f.set(None));
    assert!(want.json()["checkpoint_items"]
        .as_array()
        .is_some_and(|a| a.len() > 5));
    assert_eq!(got, want);
}
