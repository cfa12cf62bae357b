//! The bodies of the fuzz targets, shared by `fuzz/fuzz_targets/*` (under
//! libFuzzer) and by the main crate's `tests/fuzz_corpus.rs`, which replays
//! every committed input as a normal test. Each function panics exactly
//! when the target has found something.

// Each target includes the whole file and uses a part of it.
#![allow(dead_code)]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use backdex::oracle::Oracle;
use backdex::{Record, Response, Scope, Store};
use serde_json::{json, Value};

/// Arbitrary bytes as a JSON batch of records: parsing and validation
/// never panic, and an accepted batch loads into a store that validates
/// and gives the records back.
pub fn ingest(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(records) = backdex::records_from_json(&value) else {
        return;
    };
    let mut store = Store::new();
    let mut oracle = Oracle::new();
    let got = store.upsert(&records);
    assert_eq!(got, oracle.upsert(&records), "store and oracle agree");
    if got.is_ok() {
        store
            .internal_validate()
            .expect("indexes agree with columns");
        assert_eq!(store.len(), records.len());
        for r in &records {
            assert_eq!(store.get(&r.id).as_ref(), oracle.get(&r.id));
        }
    } else {
        assert!(store.is_empty(), "a refused batch changes nothing");
    }
}

fn fixture() -> &'static (Store, Oracle) {
    static FIXTURE: OnceLock<(Store, Oracle)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut records = Vec::new();
        for i in 0..40u32 {
            let pick = |options: &[&'static str]| options[i as usize % options.len()];
            let project = pick(&["p1", "p2", "p3"]);
            let mut r = json!({
                "id": format!("b{}", i % 17 * 3 + i / 17), "checkpoint_id": format!("c{}", i % 5), "project_id": project,
                "enterprise_project_id": pick(&["0", "ep1"]),
                "name": pick(&["autobk_a1", "manualbk_7", "", "é漢"]),
                "status": pick(&["available", "error", "deleted"]),
                "resource_id": format!("vm{}", i % 4), "resource_type": "OS::Nova::Server",
                "resource_az": pick(&["az1", "az2"]),
                "created_at": format!("2020-01-0{}T00:00:0{}", 1 + i % 3, i % 4),
                "updated_at": "2020-01-05T00:00:00",
                "backup_data": {"private_ip": format!("10.0.0.{}", i % 3), "eip": ""}
            });
            if i % 2 == 0 {
                r["protected_at"] = json!(format!("2020-01-02T00:00:0{}", i % 5));
            }
            if i % 5 == 0 {
                r["members"] =
                    json!([{"dest_project_id": pick(&["p1", "p2"]), "status": "pending"}]);
            }
            records.push(r);
        }
        let records = backdex::records_from_json(&json!(records)).expect("valid fixture");
        let mut store = Store::new();
        let mut oracle = Oracle::new();
        store.upsert(&records).expect("loads");
        oracle.upsert(&records).expect("loads");
        (store, oracle)
    })
}

/// A scope from one byte: project, admin, granted enterprise projects.
fn scope_of(flags: u8) -> Scope {
    Scope {
        project_id: ["p1", "p2", "p3", ""][(flags & 3) as usize].to_owned(),
        admin: flags & 4 != 0,
        granted_eps: match (flags >> 3) & 3 {
            0 => None,
            1 => Some(vec![]),
            2 => Some(vec!["ep1".to_owned()]),
            _ => Some(vec!["0".to_owned(), "ep1".to_owned()]),
        },
    }
}

/// One byte of scope flags, then `path\nquery` (lossy UTF-8), against a
/// fixed 40-record store: `Store::handle` answers byte for byte what the
/// oracle answers.
pub fn request(data: &[u8]) {
    let (store, oracle) = fixture();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (path, query) = text.split_once('\n').unwrap_or((&text, ""));
    let scope = scope_of(flags);
    let got = store.handle(path, query, &scope);
    let want = oracle.handle(path, query, &scope);
    assert_eq!(got, want, "{path:?} ? {query:?} as {scope:?}");
}

// Small pools, so that sequences collide: the same ids replaced and
// deleted, ties on every sort key, nulls.
const IDS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];
const PROJECTS: [&str; 3] = ["p1", "p2", "p3"];
const NAMES: [&str; 5] = ["autobk_1", "autobk_2", "manual", "", "é"];
const STATUSES: [&str; 4] = ["available", "error", "deleted", "protecting"];
const TIMES: [&str; 5] = [
    "2020-01-01T00:00:00",
    "2020-01-01T00:00:00.000001",
    "2020-01-02T12:00:00",
    "2020-01-03T00:00:00",
    "2021-06-30T23:59:59.999999",
];
const PARAMS: [&str; 16] = [
    "status",
    "sort",
    "limit",
    "offset",
    "marker",
    "name",
    "start_time",
    "end_time",
    "all_tenants",
    "own_type",
    "member_status",
    "resource_az",
    "image_type",
    "enterprise_project_id",
    "ip",
    "to_project_id",
];
const VALUES: [&str; 24] = [
    "available",
    "error",
    "created_at:desc",
    "name:asc,created_at:desc",
    "status",
    "protected_at:asc,id:desc",
    "1",
    "2",
    "0",
    "-1",
    "a",
    "e",
    "autobk",
    "2020-01-01T00:00:00",
    "2020-01-02T00:00:00Z",
    "true",
    "shared",
    "all_granted",
    "pending",
    "az1",
    "replication",
    "ep1",
    "10.0.0.1",
    "p2",
];

/// One record, its fields drawn from the small pools.
#[derive(Arbitrary, Debug)]
pub struct RecordSpec {
    id: u8,
    project: u8,
    ep: bool,
    name: u8,
    status: u8,
    created: u8,
    updated: u8,
    protected: Option<u8>,
    az: bool,
    replica: bool,
    ip: u8,
    members: Vec<(u8, bool)>,
}

impl RecordSpec {
    fn json(&self) -> Value {
        let at = |i: u8| TIMES[i as usize % TIMES.len()];
        let project = PROJECTS[self.project as usize % PROJECTS.len()];
        let mut destinations = Vec::new();
        let members: Vec<Value> = self
            .members
            .iter()
            .take(3)
            // A destination appears once per record (SEMANTICS §1).
            .filter(|&&(to, _)| {
                let new = !destinations.contains(&(to as usize % PROJECTS.len()));
                destinations.push(to as usize % PROJECTS.len());
                new
            })
            .map(|&(to, accepted)| {
                json!({
                    "dest_project_id": PROJECTS[to as usize % PROJECTS.len()],
                    "status": if accepted { "accept" } else { "pending" },
                })
            })
            .collect();
        json!({
            "id": IDS[self.id as usize % IDS.len()],
            "checkpoint_id": "c",
            "project_id": project,
            "enterprise_project_id": if self.ep { "ep1" } else { "0" },
            "name": NAMES[self.name as usize % NAMES.len()],
            "status": STATUSES[self.status as usize % STATUSES.len()],
            "resource_id": "r",
            "resource_type": "OS::Nova::Server",
            "resource_az": if self.az { "az1" } else { "az2" },
            "image_type": if self.replica { "replication" } else { "backup" },
            "created_at": at(self.created),
            "updated_at": at(self.updated),
            "protected_at": self.protected.map(at),
            "backup_data": {"private_ip": format!("10.0.0.{}", self.ip % 3)},
            "members": members,
        })
    }
}

/// A request: scope flags, one of the four APIs for the scope's project
/// (or another's), and parameters from the pools.
#[derive(Arbitrary, Debug)]
pub struct RequestSpec {
    scope: u8,
    api: u8,
    other_project: bool,
    params: Vec<(u8, u8)>,
}

impl RequestSpec {
    fn parts(&self) -> (String, String, Scope) {
        let scope = scope_of(self.scope);
        let project = if self.other_project {
            "p3"
        } else {
            scope.project_id.as_str()
        };
        let path = match self.api % 4 {
            0 => format!("/v1/{project}/checkpoint_items"),
            1 => format!("/v1/{project}/checkpoint_items/count"),
            2 => format!("/v3/{project}/backups"),
            _ => format!("/v2/{project}/os-vendor-backup-sharing/count"),
        };
        let query: Vec<String> = self
            .params
            .iter()
            .take(6)
            .map(|&(k, v)| {
                format!(
                    "{}={}",
                    PARAMS[k as usize % PARAMS.len()],
                    VALUES[v as usize % VALUES.len()]
                )
            })
            .collect();
        (path, query.join("&"), scope)
    }
}

/// One step of a sequence.
#[derive(Arbitrary, Debug)]
pub enum Op {
    Upsert(Vec<RecordSpec>),
    Delete(Vec<u8>),
    Request(RequestSpec),
    /// A full marker walk of a list request, page by page.
    Walk(RequestSpec, u8),
}

fn same_request(
    store: &Store,
    oracle: &Oracle,
    path: &str,
    query: &str,
    scope: &Scope,
) -> Response {
    let got = store.handle(path, query, scope);
    let want = oracle.handle(path, query, scope);
    assert_eq!(got, want, "{path:?} ? {query:?} as {scope:?}");
    got
}

/// A sequence of upserts, deletes, requests and marker walks, applied to
/// the store and to the oracle: every change is accepted or refused alike
/// (and a refused one changes nothing), `internal_validate()` passes after
/// each, and every answer is the same byte for byte.
pub fn ops(data: &[u8]) {
    let Ok(ops) = Unstructured::new(data).arbitrary::<Vec<Op>>() else {
        return;
    };
    let mut store = Store::new();
    let mut oracle = Oracle::new();
    for op in ops.iter().take(64) {
        match op {
            Op::Upsert(specs) => {
                let batch = Value::Array(specs.iter().take(8).map(RecordSpec::json).collect());
                let records: Vec<Record> =
                    backdex::records_from_json(&batch).expect("the pools make valid records");
                let before = store.len();
                let got = store.upsert(&records);
                assert_eq!(got, oracle.upsert(&records), "upsert {batch}");
                if got.is_err() {
                    assert_eq!(store.len(), before, "a refused batch changes nothing");
                }
                store
                    .internal_validate()
                    .expect("indexes exact after upsert");
            }
            Op::Delete(ids) => {
                let ids: Vec<&str> = ids
                    .iter()
                    .take(4)
                    .map(|&i| IDS[i as usize % IDS.len()])
                    .collect();
                let got = store.delete(&ids);
                assert_eq!(got, oracle.delete(&ids), "delete {ids:?}");
                store
                    .internal_validate()
                    .expect("indexes exact after delete");
            }
            Op::Request(spec) => {
                let (path, query, scope) = spec.parts();
                same_request(&store, &oracle, &path, &query, &scope);
            }
            Op::Walk(spec, limit) => {
                let (path, query, scope) = spec.parts();
                let query: String = query
                    .split('&')
                    .filter(|p| !p.starts_with("marker=") && !p.starts_with("limit="))
                    .collect::<Vec<_>>()
                    .join("&");
                let limit = 1 + limit % 4;
                let mut marker: Option<String> = None;
                for _ in 0..=IDS.len() {
                    let page_query = match &marker {
                        Some(m) => format!("{query}&limit={limit}&marker={m}"),
                        None => format!("{query}&limit={limit}"),
                    };
                    let response = same_request(&store, &oracle, &path, &page_query, &scope);
                    if response.status != 200 {
                        break;
                    }
                    let body = response.json();
                    let items = body
                        .get("backups")
                        .or_else(|| body.get("checkpoint_items"))
                        .and_then(Value::as_array);
                    match items.and_then(|items| items.last()) {
                        Some(last) => marker = last["id"].as_str().map(str::to_owned),
                        None => break,
                    }
                }
            }
        }
    }
}

/// Arbitrary bytes as a snapshot: reading never panics and never returns
/// a half-built store; a store read back answers requests without
/// panicking, and writes out to bytes that read back to the same records.
pub fn snapshot(data: &[u8]) {
    let Ok(restored) = Store::read_snapshot(data) else {
        return;
    };
    let store = restored.store;
    for (path, query) in [
        ("/v3/p1/backups", "sort=name:asc,created_at:desc&limit=3"),
        ("/v1/p1/checkpoint_items/count", "status=available"),
        ("/v2/p2/os-vendor-backup-sharing/count", "share_to_me=true"),
    ] {
        let _ = store.handle(path, query, &Scope::project("p1"));
    }
    let mut again = Vec::new();
    store
        .write_snapshot(&mut again, &restored.position)
        .expect("a restored store writes");
    let twice = Store::read_snapshot(&again[..]).expect("what was written reads back");
    assert_eq!(twice.store.records(), store.records());
}

/// Arbitrary bytes as JSON Lines, handed to the bulk builder in pieces
/// (cut where the first byte says): it builds what decoding each line and
/// one upsert build, or refuses with the same line and reason.
pub fn lines(data: &[u8]) {
    let Some((&cut, text)) = data.split_first() else {
        return;
    };
    let mut builder = backdex::StoreBuilder::new();
    let at = (cut as usize * 7).min(text.len());
    builder.push_lines(&text[..at]);
    builder.push_lines(&text[at..]);
    let got = builder.finish().map_err(|e| e.to_string());
    let want = backdex::oracle::load_lines(text);
    match (got, want) {
        (Ok(got), Ok(want)) => {
            got.internal_validate().expect("indexes agree with columns");
            assert_eq!(got.records(), want.records());
        }
        (Err(got), Err(want)) => assert_eq!(got, want),
        (got, want) => panic!("builder {:?}, reference {:?}", got.err(), want.err()),
    }
}

/// Arbitrary bytes as the text a node sends its router: a partial answer
/// or a marker's position. Reading never panics; what reads writes back to
/// text that reads to the same value, and a partial answer read merges.
pub fn wire(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(position) = backdex::Position::from_json(text) {
        let again = backdex::Position::from_json(&position.to_json());
        assert_eq!(again.as_ref(), Ok(&position));
    }
    if let Ok(partial) = backdex::Partial::from_json(text) {
        let again = backdex::Partial::from_json(&partial.to_json());
        assert_eq!(again.as_ref(), Ok(&partial));
        let scope = Scope {
            admin: true,
            ..Scope::project("p1")
        };
        let _ = backdex::merge(
            "/v3/p1/backups",
            "all_tenants=true&limit=2",
            &scope,
            [partial],
        );
    }
}
