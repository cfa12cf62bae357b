//! Arbitrary paths, query strings and scopes against a small fixed store:
//! `Store::handle` must never panic and must answer exactly what the
//! oracle answers.
#![no_main]

use std::sync::OnceLock;

use backdex::oracle::Oracle;
use backdex::{Scope, Store};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

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
                r["members"] = json!([{"dest_project_id": pick(&["p1", "p2"]), "status": "pending"}]);
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

fuzz_target!(|data: &[u8]| {
    let (store, oracle) = fixture();
    // Layout: one byte of scope flags, then "path\nquery".
    let Some((&flags, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let (path, query) = text.split_once('\n').unwrap_or((&text, ""));
    let scope = Scope {
        project_id: ["p1", "p2", "p3", ""][(flags & 3) as usize].to_owned(),
        admin: flags & 4 != 0,
        granted_eps: match (flags >> 3) & 3 {
            0 => None,
            1 => Some(vec![]),
            2 => Some(vec!["ep1".to_owned()]),
            _ => Some(vec!["0".to_owned(), "ep1".to_owned()]),
        },
    };
    let got = store.handle(path, query, &scope);
    let want = oracle.handle(path, query, &scope);
    assert_eq!(got, want, "{path:?} ? {query:?} as {scope:?}");
});
