//! Every 400, 403 and 404 case SEMANTICS.md names, and the documented
//! shapes of the four APIs' answers, through the public API.

use backdex::{records_from_json, Api, FacetField, Query, Scope, Store};
use serde_json::{json, Value};

mod common;
use common::{granted, p1, record, SHARE, V1, V1C, V3};

fn store() -> Store {
    let batch = json!([
        record(
            "a1",
            "p1",
            json!({"status": "error", "enterprise_project_id": "ep1"})
        ),
        record(
            "a2",
            "p1",
            json!({"created_at": "2020-02-22T00:00:00", "members": [{"dest_project_id": "p2", "status": "accept"}]})
        ),
        record(
            "a3",
            "p1",
            json!({"created_at": "2020-02-23T00:00:00", "members": [{"dest_project_id": "p1", "status": "pending"}]})
        ),
        record(
            "b1",
            "p2",
            json!({"members": [{"dest_project_id": "p1", "status": "pending"}]})
        ),
        record("b2", "p2", json!({"enterprise_project_id": "ep2"})),
    ]);
    let mut store = Store::new();
    store.upsert(&records_from_json(&batch).unwrap()).unwrap();
    store
}

fn admin() -> Scope {
    Scope {
        admin: true,
        ..p1()
    }
}

#[test]
fn every_error_case_of_the_spec() {
    let store = store();
    let long_sort = vec!["name"; 64].join(",");
    let long_sort_query = format!("sort={long_sort}");
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Scope, u16, &str, &str)> = vec![
        // route, query, scope, status, code, what the message must name
        ("/v1/p1/checkpoint_items/", "", p1(), 404, "NotFound", "/v1/p1/checkpoint_items/"),
        ("/v1//checkpoint_items", "", p1(), 404, "NotFound", "/v1//checkpoint_items"),
        ("/V1/p1/checkpoint_items", "", p1(), 404, "NotFound", "/V1/p1"),
        ("/v1/p1/checkpoint_items/count/", "", p1(), 404, "NotFound", "count/"),
        ("/v2/p1/os-vendor-backup-sharing", "", p1(), 404, "NotFound", "sharing"),
        ("//v1/p1/checkpoint_items", "", p1(), 404, "NotFound", "//v1"),
        ("/v1/p2/checkpoint_items", "", p1(), 403, "Forbidden", "`project_id` = \"p2\""),
        ("/v1/p%31/checkpoint_items", "", p1(), 403, "Forbidden", "p%31"),
        (V1, "colour=red", p1(), 400, "InvalidParameter", "`colour`"),
        (V1, "Status=error", p1(), 400, "InvalidParameter", "`Status`"),
        (V1, "vault_id=v", p1(), 400, "InvalidParameter", "`vault_id`"),
        (V3, "policy_id=x", p1(), 400, "InvalidParameter", "`policy_id`"),
        (V3, "az=az1", p1(), 400, "InvalidParameter", "`az`"),
        (V1, "name=", p1(), 400, "InvalidParameter", "`name` = \"\": must not be empty"),
        (V1, "name", p1(), 400, "InvalidParameter", "`name`"),
        (V1, "status=bogus", p1(), 400, "InvalidParameter", "\"bogus\""),
        (V1, "status=Error", p1(), 400, "InvalidParameter", "\"Error\""),
        (V1, "status=error&status=available", p1(), 400, "InvalidParameter", "given more than once"),
        (V1C, "name=a&name=b", p1(), 400, "InvalidParameter", "given more than once"),
        (SHARE, "availability_zone=az1&avalilability_zone=az1", p1(), 400, "InvalidParameter", "given more than once"),
        (V1, "image_type=snapshot", p1(), 400, "InvalidParameter", "`image_type`"),
        (V1, "image_type=Backup", p1(), 400, "InvalidParameter", "`image_type`"),
        (V1, "dec=yes", p1(), 400, "InvalidParameter", "`dec` = \"yes\""),
        (V1, "ip=fe80::1%25eth0", p1(), 400, "InvalidParameter", "`ip`"),
        (V1, "ip=10.0.0.256", p1(), 400, "InvalidParameter", "`ip`"),
        (V1, "start_time=2020-01-01t00:00:00", p1(), 400, "InvalidParameter", "`start_time`"),
        (V1, "end_time=2020-01-01+00:00:00", p1(), 400, "InvalidParameter", "`end_time`"),
        (V1, "start_time=2020-01-01T00:00:00.1234567890", p1(), 400, "InvalidParameter", "`start_time`"),
        (V1, "start_time=2020-01-02T00:00:00&end_time=2020-01-01T00:00:00", p1(), 400, "InvalidParameter", "end_time"),
        (V1, "limit=0", p1(), 400, "InvalidParameter", "`limit` = \"0\""),
        (V1, "limit=-0", p1(), 400, "InvalidParameter", "`limit`"),
        (V1, "limit=-1", p1(), 400, "InvalidParameter", "`limit`"),
        (V1, "limit=abc", p1(), 400, "InvalidParameter", "`limit`"),
        (V1, "limit=%2B1", p1(), 400, "InvalidParameter", "`limit`"),
        (V1, "limit=1.5", p1(), 400, "InvalidParameter", "`limit`"),
        (V1, "limit=1e3", p1(), 400, "InvalidParameter", "`limit`"),
        (V1, "limit=+1", p1(), 400, "InvalidParameter", "`limit`"),
        (V1, "offset=-1", p1(), 400, "InvalidParameter", "`offset`"),
        (V1, "offset=2147483648", p1(), 400, "InvalidParameter", "`offset`"),
        (V1, "offset=0x10", p1(), 400, "InvalidParameter", "`offset`"),
        (V1, "sort=bogus", p1(), 400, "InvalidParameter", "`sort`"),
        (V1, "sort=Name", p1(), 400, "InvalidParameter", "`sort`"),
        (V1, "sort=name:up", p1(), 400, "InvalidParameter", "`sort`"),
        (V1, "sort=name:", p1(), 400, "InvalidParameter", "`sort`"),
        (V1, "sort=name,", p1(), 400, "InvalidParameter", "empty item"),
        (V1, "sort=,name", p1(), 400, "InvalidParameter", "empty item"),
        (V1, "sort=name,name:asc", p1(), 400, "InvalidParameter", "given twice"),
        (V1, "sort=name,%20id", p1(), 400, "InvalidParameter", "`sort`"),
        (V1, "sort=name:%20asc", p1(), 400, "InvalidParameter", "`sort`"),
        (V1, &long_sort_query, p1(), 400, "InvalidParameter", "255"),
        (V3, "own_type=mine", p1(), 400, "InvalidParameter", "`own_type`"),
        (V3, "own_type=Shared", p1(), 400, "InvalidParameter", "`own_type`"),
        (V3, "member_status=accept", p1(), 400, "InvalidParameter", "`member_status`"),
        (V3, "own_type=private&member_status=accept", p1(), 400, "InvalidParameter", "`member_status`"),
        (V3, "own_type=shared&member_status=bogus", p1(), 400, "InvalidParameter", "`member_status`"),
        (V3, "all_tenants=true&own_type=mine", admin(), 400, "InvalidParameter", "`own_type`"),
        (V3, "used_percent=10", p1(), 400, "InvalidParameter", "not supported"),
        (V3, "show_replication=true", p1(), 400, "InvalidParameter", "not supported"),
        (V3, "incremental=true", p1(), 400, "InvalidParameter", "not supported"),
        (SHARE, "limit=1", p1(), 400, "InvalidParameter", "`limit`"),
        (SHARE, "sort=name", p1(), 400, "InvalidParameter", "`sort`"),
        (SHARE, "share_to_me=maybe", p1(), 400, "InvalidParameter", "`share_to_me`"),
        (SHARE, "all_tenants=true", admin(), 400, "InvalidParameter", "`all_tenants`"),
        (V1, "all_tenants=true", p1(), 403, "Forbidden", "`all_tenants`"),
        (V3, "all_tenants=TRUE", p1(), 403, "Forbidden", "`all_tenants`"),
        (V1C, "all_tenants=true", p1(), 403, "Forbidden", "`all_tenants`"),
        (V3, "enterprise_project_id=ep2", granted(&["ep1"]), 403, "Forbidden", "`enterprise_project_id` = \"ep2\""),
        (V3, "enterprise_project_id=ep1", granted(&[]), 403, "Forbidden", "`enterprise_project_id`"),
        (V1, "marker=zzz", p1(), 404, "MarkerNotFound", "\"zzz\""),
        (V1, "marker=b2", p1(), 404, "MarkerNotFound", "\"b2\""),
        (V3, "marker=b1", p1(), 404, "MarkerNotFound", "\"b1\""),
        (V3, "own_type=shared&marker=a1", p1(), 404, "MarkerNotFound", "\"a1\""),
        (V3, "own_type=shared&marker=a3", p1(), 404, "MarkerNotFound", "\"a3\""),
        (V1, "marker=a1", granted(&["ep2"]), 404, "MarkerNotFound", "\"a1\""),
    ];
    assert!(cases.len() >= 60);
    for (path, query, scope, status, code, names) in cases {
        let r = store.handle(path, query, &scope);
        let body = r.json();
        assert_eq!(r.status, status, "{path}?{query}: {}", r.body);
        assert_eq!(body["error"]["code"], code, "{path}?{query}: {}", r.body);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(names),
            "{path}?{query}: {message:?} should name {names:?}"
        );
    }
}

#[test]
fn what_the_spec_accepts() {
    let store = store();
    let count = |path: &str, query: &str, scope: &Scope| {
        let r = store.handle(path, query, scope);
        assert_eq!(r.status, 200, "{path}?{query}: {}", r.body);
        let body = r.json();
        body["count"]
            .as_u64()
            .or_else(|| body["checkpoint_items"].as_array().map(|a| a.len() as u64))
            .unwrap()
    };
    // v1.count ignores the paging parameters entirely, whatever their values.
    assert_eq!(
        count(V1C, "sort=&marker=zzz&limit=x&limit=y&offset=-5", &p1()),
        3
    );
    assert_eq!(count(V1C, "status=error", &p1()), 1);
    // v3 takes status several times.
    assert_eq!(
        count(V3, "status=error&status=available&status=error", &p1()),
        3
    );
    // Booleans and directions ignore ASCII case; huge limits are cut.
    assert_eq!(
        count(
            V1,
            "dec=FALSE&sort=name:ASC&limit=99999999999999999999",
            &p1()
        ),
        3
    );
    assert_eq!(count(V1, "offset=-0&limit=007", &p1()), 3);
    assert_eq!(count(V1, "offset=2147483647", &p1()), 0);
    // Query-string decoding: `+` is a space, a lone `%` stays, empty pieces skip.
    assert_eq!(
        count(
            V1C,
            "name=autobk%5Fa&&resource_type=OS%3A%3ANova%3A%3AServer&",
            &p1()
        ),
        3
    );
    assert_eq!(count(V1C, "name=%zz", &p1()), 0);
    assert_eq!(count(V1C, "ip=10.0.0.1", &p1()), 3);
    assert_eq!(count(V1C, "ip=::ffff:10.0.0.1", &p1()), 0);
    // Sharing: own_type, member_status and its aliases.
    assert_eq!(
        count(V3, "own_type=shared", &p1()),
        1,
        "b1 only; a3's self-share is not 'shared'"
    );
    assert_eq!(count(V3, "own_type=all_granted", &p1()), 4);
    assert_eq!(
        count(V3, "own_type=shared&member_status=accepted", &p1()),
        0
    );
    assert_eq!(
        count(V3, "own_type=all_granted&member_status=pending", &p1()),
        4
    );
    assert_eq!(
        count(V3, "all_tenants=true&member_status=accept", &admin()),
        5
    );
    // share.count counts entries, the self-share included.
    assert_eq!(count(SHARE, "", &p1()), 2);
    assert_eq!(count(SHARE, "share_to_me=true", &p1()), 2);
    assert_eq!(count(SHARE, "share_to_me=true&to_project_id=p2", &p1()), 0);
    assert_eq!(count(SHARE, "to_project_id=p2", &p1()), 1);
    assert_eq!(
        count(SHARE, "share_to_me=true&from_project_id=p2", &p1()),
        1
    );
    // granted_eps restricts everything; all_granted_eps narrows to it.
    assert_eq!(count(V1C, "", &granted(&["ep1"])), 1);
    assert_eq!(
        count(V3, "enterprise_project_id=all_granted_eps", &granted(&[])),
        0
    );
    assert_eq!(count(V3, "enterprise_project_id=all_granted_eps", &p1()), 3);
    assert_eq!(
        count(V3, "enterprise_project_id=ep1", &granted(&["ep1"])),
        1
    );
    // An admin's all_tenants still calls its own route.
    assert_eq!(count(V1C, "all_tenants=true", &admin()), 5);
}

#[test]
fn a_marker_of_another_tenant_is_worded_as_a_missing_one() {
    let with = store();
    let mut without = store();
    without.delete(&["b2"]).unwrap();
    let a = with.handle(V1, "marker=b2", &p1());
    let b = without.handle(V1, "marker=b2", &p1());
    assert_eq!(a, b);
    assert_eq!(a.status, 404);
}

#[test]
fn response_shapes_follow_the_seeds() {
    let store = store();
    let v1 = store.handle(V1, "limit=1", &p1()).json();
    let item = &v1["checkpoint_items"][0];
    let keys: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "checkpoint_id",
            "name",
            "description",
            "status",
            "resource_id",
            "resource_type",
            "created_at",
            "updated_at",
            "protected_at",
            "backup_data",
            "replication_records",
            "extend_info"
        ]
    );
    assert_eq!(item["id"], "a3", "created_at:desc by default");
    assert_eq!(item["created_at"], "2020-02-23T00:00:00.000000");
    assert_eq!(item["protected_at"], Value::Null);
    assert_eq!(
        item["extend_info"],
        json!({"resource_az": "az1", "resource_name": "", "resource_type": "OS::Nova::Server",
               "image_type": "backup", "dec": false, "size": 0})
    );
    let v3 = store.handle(V3, "limit=1&sort=id:asc", &p1()).json();
    let keys: Vec<&str> = v3.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["backups", "count"]);
    assert_eq!(v3["count"], 3);
    let b = &v3["backups"][0];
    let keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "checkpoint_id",
            "name",
            "description",
            "status",
            "project_id",
            "enterprise_project_id",
            "resource_id",
            "resource_name",
            "resource_type",
            "resource_az",
            "resource_size",
            "image_type",
            "vault_id",
            "provider_id",
            "parent_id",
            "created_at",
            "updated_at",
            "protected_at",
            "expired_at",
            "extend_info",
            "replication_records",
            "children"
        ]
    );
    assert_eq!(b["id"], "a1");
    assert_eq!(
        b["extend_info"],
        json!({}),
        "v3 echoes extend_info as stored"
    );
    assert_eq!(store.handle(V1C, "", &p1()).body, r#"{"count":3}"#);
    let err = store.handle(V1, "limit=0", &p1());
    let keys: Vec<String> = err.json()["error"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["code", "message"]);
}

#[test]
fn typed_queries_explain_and_facets() {
    let store = store();
    let mut q = Query::new(Api::V1Count);
    q.filter.status = vec![backdex::Status::Available];
    q.filter.resource_az = Some("az1".into());
    assert_eq!(store.count(&p1(), &q), Ok(2));
    assert_eq!(
        store.explain(&p1(), &q).unwrap().to_string(),
        "V1Count: intersect smallest first, stop when empty
  visible: project_id = p1 (3 rows)
  filter: status in [\"available\"] (4 rows)
  filter: resource_az = az1 (5 rows)
  count: from bitmap cardinalities, no row touched
"
    );

    let mut list = Query::new(Api::V3List);
    list.page.limit = 2;
    let page = store.list(&p1(), &list).unwrap();
    assert_eq!(page.count, 3);
    assert_eq!(
        page.records
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        ["a3", "a2"]
    );
    assert_eq!(
        store.explain(&p1(), &list).unwrap().to_string(),
        "V3List: intersect smallest first, stop when empty
  visible: project_id = p1 (3 rows)
  count: from bitmap cardinalities, no row touched
  order: created_at desc, id desc
  page: top-2 of 3 candidates, then sort those
"
    );
    list.all_tenants = true;
    assert_eq!(store.list(&p1(), &list).unwrap_err().status(), 403);

    let all = Query::new(Api::V1Count);
    assert_eq!(
        store.facets(&p1(), &all, FacetField::Status).unwrap(),
        [("available".to_owned(), 2), ("error".to_owned(), 1)]
    );
    let mut everyone = all;
    everyone.all_tenants = true;
    assert_eq!(
        store
            .facets(&admin(), &everyone, FacetField::ResourceAz)
            .unwrap(),
        [("az1".to_owned(), 5)]
    );
}

#[test]
fn plans_of_typical_requests() {
    use backdex::synth::{generate, SynthConfig};
    use backdex::{parse_request, DEFAULT_MAX_LIMIT};
    let records: Vec<_> = generate(&SynthConfig {
        records: 20_000,
        projects: 300,
        seed: 9,
        slim: true,
    })
    .collect();
    let mut sizes: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for r in &records {
        *sizes.entry(r.project_id.as_str()).or_default() += 1;
    }
    let big = sizes
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(p, _)| p.to_string())
        .unwrap();
    let small = sizes
        .iter()
        .filter(|(_, n)| **n >= 5)
        .min_by_key(|(_, n)| **n)
        .map(|(p, _)| p.to_string())
        .unwrap();
    let mut store = Store::new();
    store.upsert(&records).unwrap();
    let explain = |project: &str, route: &str, query: &str| {
        let scope = Scope::project(project);
        let path = format!(
            "/{}/{project}/{route}",
            if route == "backups" {
                "v3"
            } else if route.contains("sharing") {
                "v2"
            } else {
                "v1"
            }
        );
        let q = parse_request(&path, query, &scope, DEFAULT_MAX_LIMIT).unwrap();
        store.explain(&scope, &q).unwrap().to_string()
    };

    // A selective substring is a set of rows from the ordered index; a broad
    // one is checked by value code on the other sets' candidates.
    let selective = explain(
        &big,
        "checkpoint_items/count",
        "status=error&name=autobk_1a&resource_type=OS::Nova::Server",
    );
    assert_eq!(
        selective,
        "V1Count: intersect smallest first, stop when empty
  filter: name contains \"autobk_1a\" (36 values) (47 rows)
  filter: status in [\"error\"] (648 rows)
  visible: project_id = 5762be5b1b3949408c80ed158d4ad0ee (4005 rows)
  filter: resource_type = OS::Nova::Server (13908 rows)
  count: from bitmap cardinalities, no row touched
"
    );
    let broad = explain(&big, "checkpoint_items/count", "status=error&name=autobk_1");
    assert_eq!(
        broad,
        "V1Count: intersect smallest first, stop when empty
  filter: status in [\"error\"] (648 rows)
  visible: project_id = 5762be5b1b3949408c80ed158d4ad0ee (4005 rows)
  check row by row: name contains \"autobk_1\", each row's value tested (of 758 values that may match; verified first where more rows than that are checked)
  checks pass about 5.4% of rows (tried on a sample of the smallest set)
  count: candidates checked row by row
"
    );
    // A broad substring on a page: no value is verified up front; the rows
    // a walk meets, or the top-k's candidates, are tested.
    let page = explain(
        &big,
        "checkpoint_items",
        "name=autobk&status=error&limit=100",
    );
    assert_eq!(page, "V1List: intersect smallest first, stop when empty
  filter: status in [\"error\"] (648 rows)
  visible: project_id = 5762be5b1b3949408c80ed158d4ad0ee (4005 rows)
  check row by row: name contains \"autobk\", each row's value tested (of 12196 values that may match; verified first where more rows than that are checked)
  checks pass about 66.9% of rows (tried on a sample of the smallest set)
  count: candidates checked row by row
  order: created_at desc, id desc
  page: top-100 of 111 candidates, then sort those
");
    let walk = explain(&big, "checkpoint_items", "name=autobk&limit=10");
    assert_eq!(walk, "V1List: intersect smallest first, stop when empty
  visible: project_id = 5762be5b1b3949408c80ed158d4ad0ee (4005 rows)
  check row by row: name contains \"autobk\", each row's value tested (of 12196 values that may match; verified first where more rows than that are checked)
  checks pass about 68.5% of rows (tried on a sample of the smallest set)
  count: candidates checked row by row
  order: created_at desc, id desc
  page: walk the created_at index from the marker, keep candidates (4005)
");

    // Time ranges, wide or narrow, are days of the day index, intersected
    // one by one, never unioned for a count.
    let wide = explain(
        &big,
        "checkpoint_items/count",
        "start_time=2025-01-01T00:00:00&end_time=2027-01-01T00:00:00&status=available",
    );
    assert_eq!(wide, "V1Count: intersect smallest first, stop when empty
  visible: project_id = 5762be5b1b3949408c80ed158d4ad0ee (4005 rows)
  filter: status in [\"available\"] (18009 rows)
  filter, day by day: created_at in [2025-01-01T00:00:00.000000, 2027-01-01T00:00:00.000000] (365 days) (20000 rows)
  count: from bitmap cardinalities, no row touched
");
    let narrow = explain(
        &big,
        "checkpoint_items/count",
        "start_time=2026-03-01T00:00:00&end_time=2026-03-01T01:00:00",
    );
    assert_eq!(narrow, "V1Count: intersect smallest first, stop when empty
  visible: project_id = 5762be5b1b3949408c80ed158d4ad0ee (4005 rows)
  filter, day by day: created_at in [2026-03-01T00:00:00.000000, 2026-03-01T01:00:00.000000] (1 days) (2 rows)
  count: from bitmap cardinalities, no row touched
");

    let share = explain(&big, "os-vendor-backup-sharing/count", "");
    assert_eq!(
        share,
        "ShareCount: intersect smallest first, stop when empty
  visible: project_id = 5762be5b1b3949408c80ed158d4ad0ee (4005 rows)
  count: sharing entries from bitmap cardinalities, no row touched
"
    );

    // A large candidate set walks the index; a small one selects the top k.
    let page = explain(&big, "checkpoint_items", "limit=100");
    assert_eq!(
        page,
        "V1List: intersect smallest first, stop when empty
  visible: project_id = 5762be5b1b3949408c80ed158d4ad0ee (4005 rows)
  count: from bitmap cardinalities, no row touched
  order: created_at desc, id desc
  page: walk the created_at index from the marker, keep candidates (4005)
"
    );
    let mixed = explain(&big, "backups", "sort=name:asc,created_at:desc&limit=100");
    assert_eq!(mixed, "V3List: intersect smallest first, stop when empty
  visible: project_id = 5762be5b1b3949408c80ed158d4ad0ee (4005 rows)
  count: from bitmap cardinalities, no row touched
  order: name asc, created_at desc, id asc
  page: walk the name index from the marker's group, re-sort each group of equal name, keep candidates (4005)
");
    let tiny = explain(&small, "checkpoint_items", "limit=100");
    assert_eq!(
        tiny,
        "V1List: intersect smallest first, stop when empty
  visible: project_id = 62b0c0c6017e4d82b75ffc1a80443752 (5 rows)
  count: from bitmap cardinalities, no row touched
  order: created_at desc, id desc
  page: top-100 of 5 candidates, then sort those
"
    );
    let by_status = explain(&big, "backups", "sort=status&limit=10");
    assert_eq!(
        by_status,
        "V3List: intersect smallest first, stop when empty
  visible: project_id = 5762be5b1b3949408c80ed158d4ad0ee (4005 rows)
  count: from bitmap cardinalities, no row touched
  order: status desc, created_at desc, id desc
  page: top-10 of 4005 candidates, then sort those
"
    );
}
