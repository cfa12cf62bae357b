//! The change boundary through the public API: batches read from JSON,
//! validated with positions, applied atomically to a store, an engine and
//! the oracle alike.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use backdex::oracle::Oracle;
use backdex::synth::{generate, SynthConfig};
use backdex::{ids_from_json, records_from_json, ChangeError, Engine, Record, Store};
use serde_json::{json, Value};

fn record(id: &str, project: &str) -> Value {
    json!({
        "id": id, "checkpoint_id": format!("c-{id}"), "project_id": project, "name": format!("autobk_{id}"),
        "status": "available", "resource_id": "vm1", "resource_type": "OS::Nova::Server",
        "created_at": "2020-02-21T07:00:54.065135", "updated_at": "2020-02-21T07:07:25.113761"
    })
}

#[test]
fn a_bad_record_names_its_position_field_and_reason() {
    let mut bad = record("b2", "p1");
    bad["status"] = json!("lost");
    let batch = json!([record("b1", "p1"), record("b1x", "p1"), bad]);
    let err = records_from_json(&batch).unwrap_err();
    assert_eq!(
        err,
        ChangeError::InvalidRecord {
            index: 2,
            field: "status".into(),
            reason: "\"lost\" is not one of available, deleted, deleting, error, protecting, \
                     restoring, waiting_delete, waiting_protect, waiting_restore"
                .into(),
        }
    );
    assert!(err
        .to_string()
        .starts_with("record 2: field `status`: \"lost\" is not one of"));

    let mut nested = record("b3", "p1");
    nested["members"] = json!([{"dest_project_id": "p2", "status": "accept"}, {"dest_project_id": "p2", "status": "pending"}]);
    let err = records_from_json(&json!([nested])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "record 0: field `members[1].dest_project_id`: duplicate dest_project_id \"p2\" (also in members[0])"
    );
    assert_eq!(
        records_from_json(&json!({"id": "b1"}))
            .unwrap_err()
            .to_string(),
        "malformed batch: expected an array of records"
    );
    assert_eq!(
        records_from_json(&json!([7])).unwrap_err().to_string(),
        "record 0: a record must be an object, got a number"
    );
}

#[test]
fn delete_batches_are_read_and_checked() {
    assert_eq!(ids_from_json(&json!(["a", "b"])).unwrap(), ["a", "b"]);
    assert_eq!(
        ids_from_json(&json!(["a", 1])).unwrap_err().to_string(),
        "malformed batch: ids[1] is not a string"
    );
    let mut store = Store::new();
    store
        .upsert(&records_from_json(&json!([record("a", "p1"), record("b", "p1")])).unwrap())
        .unwrap();
    assert_eq!(
        store.delete(&["a", "zz"]).unwrap_err().to_string(),
        "ids[1]: no record has id \"zz\""
    );
    assert_eq!(
        store.delete(&["b", "a", "b"]).unwrap_err().to_string(),
        "ids[2]: id \"b\" is named twice in one batch (also ids[0])"
    );
    assert_eq!(store.len(), 2, "rejected deletes change nothing");
    assert_eq!(store.delete::<&str>(&[]), Ok(0));
    assert_eq!(store.delete(&["a", "b"]), Ok(2));
    assert!(store.is_empty());
    store.internal_validate().unwrap();
}

#[test]
fn upsert_replaces_by_id_and_keeps_everything_else() {
    let mut store = Store::new();
    let mut oracle = Oracle::new();
    let first = records_from_json(&json!([record("a", "p1"), record("b", "p1")])).unwrap();
    assert_eq!(store.upsert(&first), Ok(2));
    oracle.upsert(&first).unwrap();
    let mut changed = record("a", "p2");
    changed["status"] = json!("error");
    changed["protected_at"] = json!("2020-02-21T15:00:00+08:00");
    changed["extend_info"] = json!({"auto_trigger": true, "nested": {"deep": [1, "x", null]}});
    let second = records_from_json(&json!([changed])).unwrap();
    assert_eq!(store.upsert(&second), Ok(1));
    oracle.upsert(&second).unwrap();
    let a = store.get("a").unwrap();
    assert_eq!(a.project_id, "p2");
    assert_eq!(
        a.protected_at.unwrap().to_string(),
        "2020-02-21T07:00:00.000000"
    );
    assert_eq!(
        Value::Object(a.extend_info.clone()),
        json!({"auto_trigger": true, "nested": {"deep": [1, "x", null]}})
    );
    assert_eq!(store.len(), 2);
    assert_eq!(Some(&a), oracle.get("a"));
    store.internal_validate().unwrap();
    assert_eq!(store.upsert(&[]), Ok(0));
}

#[test]
fn records_come_back_as_they_went_in() {
    let config = SynthConfig {
        records: 3000,
        projects: 30,
        seed: 11,
        slim: false,
    };
    let records: Vec<Record> = generate(&config).collect();
    let mut store = Store::new();
    store.upsert(&records).unwrap();
    let mut expected = records.clone();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(store.records(), expected);
    // Through JSON and back, too.
    let text = serde_json::to_string(&records).unwrap();
    let reread = records_from_json(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(reread, records);
}

#[test]
fn readers_keep_their_snapshot_and_never_see_half_a_batch() {
    let config = SynthConfig {
        records: 20_000,
        projects: 50,
        seed: 5,
        slim: true,
    };
    let mut records: Vec<Record> = generate(&config).collect();
    for r in &mut records[..100] {
        r.project_id = "moved-b".into();
    }
    let engine = Arc::new(Engine::new());
    engine.upsert(&records).unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    // The writer moves whole batches of 100 records between two projects;
    // a reader must always see all 100 in one project or all in the other.
    let batch_ids: Vec<String> = records[..100].iter().map(|r| r.id.clone()).collect();
    let writer = {
        let (engine, stop, base) = (engine.clone(), stop.clone(), records[..100].to_vec());
        std::thread::spawn(move || {
            for round in 0..200 {
                let project = if round % 2 == 0 { "moved-a" } else { "moved-b" };
                let batch: Vec<Record> = base
                    .iter()
                    .map(|r| Record {
                        project_id: project.into(),
                        ..r.clone()
                    })
                    .collect();
                engine.upsert(&batch).unwrap();
            }
            stop.store(true, Ordering::SeqCst);
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (engine, stop, ids) = (engine.clone(), stop.clone(), batch_ids.clone());
            std::thread::spawn(move || {
                let mut checks = 0;
                while !stop.load(Ordering::SeqCst) || checks == 0 {
                    let snapshot = engine.snapshot();
                    let projects: std::collections::BTreeSet<String> = ids
                        .iter()
                        .map(|id| snapshot.get(id).unwrap().project_id)
                        .collect();
                    assert_eq!(projects.len(), 1, "half a batch was visible: {projects:?}");
                    assert_eq!(snapshot.len(), 20_000);
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let last = engine.snapshot();
    last.internal_validate().unwrap();
    assert_eq!(last.get(&batch_ids[0]).unwrap().project_id, "moved-b");

    // A rejected batch publishes nothing.
    let before = engine.snapshot();
    let bad = Record {
        id: String::new(),
        ..records[0].clone()
    };
    assert!(engine.upsert(&[records[1].clone(), bad]).is_err());
    assert!(Arc::ptr_eq(&before, &engine.snapshot()));
    engine.reset();
    assert!(engine.snapshot().is_empty());
    assert_eq!(before.len(), 20_000, "a held snapshot outlives a reset");
}
