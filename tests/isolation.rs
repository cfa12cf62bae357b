//! Tenant isolation under attack: every door through which project p1
//! could learn something about another project's backups. The rule
//! (SEMANTICS §2): nothing outside the visible set influences a response,
//! not an entry, a count, a marker's position or an error's wording.
//! Timing is out of scope.

use backdex::{records_from_json, Response, Scope, Store};
use serde_json::{json, Value};

mod common;
use common::{granted, p1, record, SHARE, V1, V1C, V3};

fn load(store: &mut Store, batch: Value) {
    store
        .upsert(&records_from_json(&batch).expect("valid records"))
        .expect("loads");
}

/// p1's own records: one in ep1, one shared to p3.
fn p1_only() -> Store {
    let mut store = Store::new();
    load(
        &mut store,
        json!([
            record("a1", "p1", json!({"enterprise_project_id": "ep1"})),
            record(
                "a2",
                "p1",
                json!({"created_at": "2020-02-22T00:00:00", "members": [{"dest_project_id": "p3", "status": "accept"}]})
            ),
            record(
                "a3",
                "p1",
                json!({"status": "error", "created_at": "2020-02-23T00:00:00"})
            ),
        ]),
    );
    store
}

/// Other tenants' records that p1 must never see: the same names, times
/// and statuses as p1's (so they would sort between p1's rows), a record in
/// an enterprise project p1 is not granted, and shares to projects other
/// than p1 (nothing is shared to p1).
fn others() -> Value {
    let mut batch = Vec::new();
    for (i, project) in ["p2", "p3"].iter().enumerate() {
        for k in 0..20 {
            let status = ["available", "error"][k % 2];
            let ep = ["0", "ep1", "ep2"][k % 3];
            let to = if *project == "p2" { "p3" } else { "p2" };
            let members = if k % 4 == 0 {
                json!([{"dest_project_id": to, "status": "pending"}])
            } else {
                json!([])
            };
            batch.push(record(
                &format!("{project}-{k}"),
                project,
                json!({
                    "name": format!("autobk_a{}", k % 3 + 1),
                    "status": status,
                    "enterprise_project_id": ep,
                    "created_at": format!("2020-02-2{}T00:00:00", 1 + (k + i) % 3),
                    "members": members,
                }),
            ));
        }
    }
    Value::Array(batch)
}

/// Requests p1 may make, over every API and parameter family.
fn p1_requests() -> Vec<(&'static str, String)> {
    let mut requests = Vec::new();
    for query in [
        "",
        "status=error",
        "name=autobk",
        "sort=name:asc",
        "limit=1",
        "limit=1&offset=1",
        "marker=a2",
        "marker=a2&sort=created_at:asc",
        "start_time=2020-02-21T00:00:00&end_time=2020-02-22T12:00:00",
        "resource_az=az1",
        "ip=10.0.0.1",
    ] {
        for path in [V1, V1C, V3] {
            requests.push((path, query.to_owned()));
        }
    }
    for query in [
        "own_type=shared",
        "own_type=all_granted",
        "own_type=shared&member_status=pending",
        "own_type=all_granted&marker=a1",
        "enterprise_project_id=ep1",
        "enterprise_project_id=all_granted_eps",
    ] {
        requests.push((V3, query.to_owned()));
    }
    for query in [
        "",
        "share_to_me=true",
        "to_project_id=p3",
        "to_project_id=p2",
        "share_to_me=true&to_project_id=p1",
        "status=available",
    ] {
        requests.push((SHARE, query.to_owned()));
    }
    requests
}

fn answers(store: &Store, scope: &Scope) -> Vec<Response> {
    p1_requests()
        .iter()
        .map(|(path, query)| store.handle(path, query, scope))
        .collect()
}

#[test]
fn other_tenants_records_change_no_answer_of_p1() {
    let alone = p1_only();
    let mut crowded = p1_only();
    load(&mut crowded, others());
    for scope in [
        p1(),
        granted(&["ep1"]),
        granted(&["0", "ep1", "ep2"]),
        granted(&[]),
    ] {
        let before = answers(&alone, &scope);
        let after = answers(&crowded, &scope);
        for (((path, query), b), a) in p1_requests().iter().zip(&before).zip(&after) {
            assert_eq!(b, a, "{path}?{query} as {scope:?}");
        }
        // The requests answered something real, not only errors.
        assert!(before.iter().filter(|r| r.status == 200).count() > 30);
    }
    // And after the others' records are changed and deleted again.
    let ids: Vec<String> = others()
        .as_array()
        .expect("a batch")
        .iter()
        .map(|r| r["id"].as_str().expect("an id").to_owned())
        .collect();
    crowded.delete(&ids).expect("deletes");
    assert_eq!(answers(&alone, &p1()), answers(&crowded, &p1()));
}

#[test]
fn all_tenants_without_admin_is_forbidden_whatever_exists() {
    let alone = p1_only();
    let mut crowded = p1_only();
    load(&mut crowded, others());
    for path in [V1, V1C, V3] {
        let a = alone.handle(path, "all_tenants=true", &p1());
        let b = crowded.handle(path, "all_tenants=true", &p1());
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        assert!(a.body.contains("all_tenants"), "{}", a.body);
        assert_eq!(a, b, "{path}");
    }
    // The admin control: the same request does see the others.
    let admin = Scope {
        admin: true,
        ..p1()
    };
    let all = crowded.handle(V1C, "all_tenants=true", &admin);
    assert_eq!(all.json()["count"], 43);
}

#[test]
fn another_projects_route_is_forbidden_whatever_exists() {
    let alone = p1_only();
    let mut crowded = p1_only();
    load(&mut crowded, others());
    for route in [
        "/v1/p2/checkpoint_items",
        "/v1/p2/checkpoint_items/count",
        "/v3/p2/backups",
        "/v2/p2/os-vendor-backup-sharing/count",
        "/v1/nobody/checkpoint_items/count",
    ] {
        for query in ["", "limit=1", "marker=p2-1", "all_tenants=true"] {
            let a = alone.handle(route, query, &p1());
            let b = crowded.handle(route, query, &p1());
            assert_eq!(a.status, 403, "{route}?{query}: {}", a.body);
            assert_eq!(a, b, "{route}?{query}");
        }
    }
}

#[test]
fn a_foreign_marker_is_worded_exactly_as_a_missing_one() {
    let mut store = p1_only();
    load(&mut store, others());
    let mut without = store.clone();
    without.delete(&["p2-4", "p3-7"]).expect("deletes");
    for marker in ["p2-4", "p3-7"] {
        for (path, query) in [
            (V1, format!("marker={marker}")),
            (V3, format!("marker={marker}")),
            (V3, format!("marker={marker}&own_type=all_granted")),
            (V3, format!("marker={marker}&own_type=shared")),
            (V1, format!("marker={marker}&sort=name:asc&limit=1")),
        ] {
            let foreign = store.handle(path, &query, &p1());
            let missing = without.handle(path, &query, &p1());
            assert_eq!(foreign.status, 404, "{path}?{query}: {}", foreign.body);
            assert_eq!(foreign, missing, "{path}?{query}");
        }
    }
    // p2-4 is shared to p3: as p3's marker it positions the page.
    let p3 = Scope::project("p3");
    let shared = store.handle("/v3/p3/backups", "own_type=shared&marker=p2-4", &p3);
    assert_eq!(shared.status, 200, "{}", shared.body);
}

#[test]
fn an_enterprise_project_outside_the_grant_is_forbidden_whatever_exists() {
    let alone = p1_only();
    let mut crowded = p1_only();
    load(&mut crowded, others());
    for (scope, ep) in [
        (granted(&["ep1"]), "ep2"),
        (granted(&["ep1"]), "0"),
        (granted(&["ep1"]), "no-such-ep"),
        (granted(&[]), "ep1"),
    ] {
        let query = format!("enterprise_project_id={ep}");
        let a = alone.handle(V3, &query, &scope);
        let b = crowded.handle(V3, &query, &scope);
        assert_eq!(a.status, 403, "{query} as {scope:?}: {}", a.body);
        assert_eq!(a, b, "{query} as {scope:?}");
    }
    // Granted ep1 only: p1's record in project 0 is out of sight everywhere.
    let scope = granted(&["ep1"]);
    assert_eq!(crowded.handle(V1C, "", &scope).json()["count"], 1);
    assert_eq!(crowded.handle(V3, "", &scope).json()["count"], 1);
    assert_eq!(crowded.handle(SHARE, "", &scope).json()["count"], 0);
}

#[test]
fn own_type_shared_with_nothing_shared_shows_nothing() {
    let mut store = p1_only();
    load(&mut store, others());
    for query in [
        "own_type=shared",
        "own_type=shared&member_status=pending",
        "own_type=shared&status=available",
    ] {
        let r = store.handle(V3, query, &p1());
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        assert_eq!(r.json(), json!({"backups": [], "count": 0}), "{query}");
    }
    let to_me = store.handle(SHARE, "share_to_me=true", &p1());
    assert_eq!(to_me.json(), json!({"count": 0}));
    // Shared now: exactly the shared record appears, and only it.
    load(
        &mut store,
        json!([record(
            "p2-5",
            "p2",
            json!({"members": [{"dest_project_id": "p1", "status": "pending"}]})
        )]),
    );
    let r = store.handle(V3, "own_type=shared", &p1());
    let body = r.json();
    let ids: Vec<&str> = body["backups"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|b| b["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(ids, ["p2-5"]);
    assert_eq!(
        store.handle(SHARE, "share_to_me=true", &p1()).json(),
        json!({"count": 1})
    );
}

#[test]
fn counts_are_unchanged_by_another_tenants_growth() {
    let mut store = p1_only();
    let mut before = Vec::new();
    let counts = [
        (V1C, ""),
        (V1C, "status=available"),
        (V1C, "name=autobk_a"),
        (SHARE, ""),
        (SHARE, "share_to_me=true"),
        (V3, "limit=1"),
        (V3, "own_type=all_granted&limit=1"),
    ];
    for (path, query) in counts {
        before.push(store.handle(path, query, &p1()));
    }
    for round in 0..5 {
        let mut batch = others();
        for r in batch.as_array_mut().expect("a batch") {
            let id = format!("{}-round{round}", r["id"].as_str().expect("an id"));
            r["id"] = json!(id);
        }
        load(&mut store, batch);
        for ((path, query), b) in counts.iter().zip(&before) {
            assert_eq!(&store.handle(path, query, &p1()), b, "{path}?{query}");
        }
    }
    assert_eq!(store.len(), 3 + 5 * 40);
}
