//! The `backdex` binary, run as a user or a harness would run it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

fn backdex(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_backdex"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("the binary ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A scratch file of this test process.
fn scratch(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("backdex-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write scratch file");
    path
}

fn record(id: &str, project: &str, status: &str) -> Value {
    json!({
        "id": id, "checkpoint_id": format!("c-{id}"), "project_id": project, "name": format!("autobk_{id}"),
        "status": status, "resource_id": "vm1", "resource_type": "OS::Nova::Server",
        "created_at": format!("2020-02-21T07:00:{:02}", id.len() * 7 % 60), "updated_at": "2020-02-21T07:07:25"
    })
}

#[test]
fn oracle_protocol_answers_every_line_in_order() {
    let scope = json!({"project_id": "p1", "admin": false, "granted_eps": null});
    let lines: Vec<String> = vec![
        json!({"op": "reset"}).to_string(),
        json!({"op": "upsert", "records": [record("a", "p1", "error"), record("bb", "p1", "available"), record("ccc", "p2", "error")]}).to_string(),
        json!({"op": "upsert", "records": [record("d", "p1", "error"), record("d", "p1", "error")]}).to_string(),
        json!({"op": "request", "path": "/v1/p1/checkpoint_items/count?status=error", "scope": scope}).to_string(),
        json!({"op": "request", "path": "/v3/p1/backups?sort=id:asc&limit=1", "scope": scope}).to_string(),
        json!({"op": "request", "path": "/v3/p1/backups?marker=ccc", "scope": scope}).to_string(),
        "this is not json".to_owned(),
        String::new(),
        json!({"op": "fly"}).to_string(),
        json!({"op": "request", "path": "/v1/p1/checkpoint_items"}).to_string(),
        json!({"op": "delete", "ids": ["a", "zz"]}).to_string(),
        json!({"op": "delete", "ids": ["a"]}).to_string(),
        json!({"op": "delete", "ids": []}).to_string(),
        json!({"op": "request", "path": "/v1/p1/checkpoint_items/count", "scope": scope}).to_string(),
    ];
    let input = lines.join("\n") + "\n";
    let plain = text(&backdex(&["oracle"], Some(&input)).stdout);
    for flags in [
        &[][..],
        &["--naive"][..],
        &["--shards", "1"][..],
        &["--shards", "3"][..],
    ] {
        let out = backdex(&[&["oracle"], flags].concat(), Some(&input));
        assert!(out.status.success(), "{}", text(&out.stderr));
        if flags.first() == Some(&"--shards") {
            assert_eq!(text(&out.stdout), plain, "{flags:?}: byte for byte");
        }
        let replies: Vec<Value> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(replies.len(), lines.len(), "one reply per line");
        assert_eq!(replies[0], json!({"ok": true, "count": 0}));
        assert_eq!(replies[1], json!({"ok": true, "count": 3}));
        assert_eq!(
            (&replies[2]["ok"], &replies[2]["status"]),
            (&json!(false), &json!(400))
        );
        assert!(replies[2]["body"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate id"));
        assert_eq!(
            replies[3],
            json!({"ok": true, "status": 200, "body": {"count": 1}})
        );
        assert_eq!(replies[4]["body"]["backups"][0]["id"], "a");
        assert_eq!(replies[4]["body"]["count"], 2);
        assert_eq!(replies[5]["status"], 404);
        assert_eq!(replies[5]["body"]["error"]["code"], "MarkerNotFound");
        for i in [6, 7, 8, 9, 10] {
            assert_eq!(
                (&replies[i]["ok"], &replies[i]["status"]),
                (&json!(false), &json!(400)),
                "line {i}: {}",
                replies[i]
            );
            assert!(replies[i]["body"]["error"]["message"].is_string());
        }
        assert_eq!(replies[11], json!({"ok": true, "count": 1}));
        assert_eq!(replies[12], json!({"ok": true, "count": 0}));
        assert_eq!(
            replies[13]["body"]["count"], 1,
            "the rejected batches changed nothing"
        );
    }
}

#[test]
fn oracle_reads_to_the_end_of_input_whatever_it_gets() {
    let input = "\u{0}\u{1}garbage\n{\"op\":\n[1,2]\n{\"op\":\"reset\"}";
    let out = backdex(&["oracle"], Some(input));
    assert!(out.status.success());
    let replies: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(
        replies.len(),
        4,
        "the last line has no newline but is answered"
    );
    assert_eq!(replies[3], r#"{"ok":true,"count":0}"#);
}

#[test]
fn gen_is_deterministic_for_a_seed() {
    let a = backdex(&["gen", "--records", "300", "--seed", "7"], None);
    let b = backdex(&["gen", "--records", "300", "--seed", "7"], None);
    let c = backdex(&["gen", "--records", "300", "--seed", "8"], None);
    let slim = backdex(
        &[
            "gen",
            "--records",
            "300",
            "--seed",
            "7",
            "--slim",
            "--projects",
            "20",
        ],
        None,
    );
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert_ne!(a.stdout, c.stdout);
    assert!(slim.stdout.len() < a.stdout.len());
    let first_slim: Value =
        serde_json::from_str(text(&slim.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        first_slim["extend_info"],
        json!({}),
        "slim leaves the opaque objects nearly empty"
    );
    let lines: Vec<&str> = std::str::from_utf8(&a.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 300);
    for line in lines {
        backdex::Record::from_json(&serde_json::from_str(line).unwrap())
            .expect("every line is a valid record");
    }
}

#[test]
fn query_answers_one_request_with_exit_codes() {
    let jsonl = [
        record("a", "p1", "error"),
        record("b", "p1", "available"),
        record("c", "p2", "error"),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let data = scratch("data.jsonl", &jsonl);
    let data = data.to_str().unwrap();
    let ok = backdex(
        &[
            "query",
            "--data",
            data,
            "--project",
            "p1",
            "/v1/p1/checkpoint_items/count?status=error",
        ],
        None,
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert_eq!(text(&ok.stdout).trim(), r#"{"count":1}"#);

    let array = scratch("data.json", &format!("[{}]", jsonl.replace('\n', ",")));
    let ok = backdex(
        &[
            "query",
            "--data",
            array.to_str().unwrap(),
            "--project",
            "p2",
            "/v3/p2/backups",
        ],
        None,
    );
    assert!(ok.status.success());
    assert_eq!(
        serde_json::from_str::<Value>(&text(&ok.stdout)).unwrap()["count"],
        1
    );

    let admin = backdex(
        &[
            "query",
            "--data",
            data,
            "--project",
            "p1",
            "--admin",
            "/v1/p1/checkpoint_items/count?all_tenants=true",
        ],
        None,
    );
    assert_eq!(text(&admin.stdout).trim(), r#"{"count":3}"#);
    let granted = backdex(
        &[
            "query",
            "--data",
            data,
            "--project",
            "p1",
            "--granted-eps",
            "ep1,ep2",
            "/v1/p1/checkpoint_items/count",
        ],
        None,
    );
    assert_eq!(text(&granted.stdout).trim(), r#"{"count":0}"#);

    let bad = backdex(
        &[
            "query",
            "--data",
            data,
            "--project",
            "p1",
            "/v1/p1/checkpoint_items?limit=0",
        ],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("400 InvalidParameter: invalid parameter `limit`"),
        "{}",
        text(&bad.stderr)
    );
    assert!(text(&bad.stdout).contains("\"error\""));

    let missing = backdex(
        &[
            "query",
            "--data",
            "/nonexistent/data.jsonl",
            "--project",
            "p1",
            "/v1/p1/checkpoint_items",
        ],
        None,
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).starts_with("backdex: cannot read /nonexistent/data.jsonl"),
        "{}",
        text(&missing.stderr)
    );

    let broken = scratch(
        "broken.jsonl",
        &format!("{}\n\n{}\n", record("a", "p1", "error"), json!({"id": "x"})),
    );
    let out = backdex(
        &[
            "query",
            "--data",
            broken.to_str().unwrap(),
            "--project",
            "p1",
            "/v1/p1/checkpoint_items",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("broken.jsonl:3: field `checkpoint_id`: missing required field"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );

    let dup = scratch(
        "dup.jsonl",
        &format!(
            "{}\n{}\n",
            record("a", "p1", "error"),
            record("a", "p1", "error")
        ),
    );
    let out = backdex(
        &[
            "query",
            "--data",
            dup.to_str().unwrap(),
            "--project",
            "p1",
            "/v1/p1/checkpoint_items",
        ],
        None,
    );
    assert!(
        text(&out.stderr).contains("dup.jsonl:2: record 1: field `id`: duplicate id"),
        "{}",
        text(&out.stderr)
    );

    let flag = backdex(&["query", "--dta", data], None);
    assert_eq!(flag.status.code(), Some(2));
    assert!(text(&flag.stderr).contains("--dta"));
}

#[test]
fn bench_prints_one_line_per_request() {
    let gen = backdex(
        &["gen", "--records", "2000", "--projects", "10", "--slim"],
        None,
    );
    let data = scratch("bench.jsonl", &text(&gen.stdout));
    let first: Value = serde_json::from_str(text(&gen.stdout).lines().next().unwrap()).unwrap();
    let p = first["project_id"].as_str().unwrap();
    let scope = json!({"project_id": p});
    let requests = [
        json!({"path": format!("/v1/{p}/checkpoint_items/count?status=available"), "scope": scope}),
        json!({"path": format!("/v3/{p}/backups?limit=7"), "scope": scope}),
        json!({"path": format!("/v1/{p}/checkpoint_items?limit=0"), "scope": scope}),
    ];
    let lines = requests
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let reqs = scratch("requests.jsonl", &lines);
    let out = backdex(
        &[
            "bench",
            "--data",
            data.to_str().unwrap(),
            "--requests",
            reqs.to_str().unwrap(),
            "--repeat",
            "5",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let results: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 3);
    for r in &results {
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["path", "status", "rows", "median_ns", "p90_ns"]);
        assert!(r["median_ns"].as_u64().unwrap() > 0);
        assert!(r["p90_ns"].as_u64() >= r["median_ns"].as_u64());
    }
    assert_eq!(results[1]["rows"], 7);
    assert_eq!(results[2]["status"], 400);
    let load: Value = serde_json::from_str(text(&out.stderr).trim()).unwrap();
    assert_eq!(load["records"], 2000);
    assert!(load["load_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn demo_runs_the_seed_requests() {
    let out = backdex(&["demo", "--records", "3000"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for part in [
        "loaded in",
        "all indexes",
        "Seed 004",
        "Seed 000/001",
        "Seed 002",
        "Seed 003",
        "-> 400",
    ] {
        assert!(shown.contains(part), "missing {part:?} in:\n{shown}");
    }
}

#[test]
fn snapshots_are_written_and_read_wherever_data_is() {
    let lines: Vec<String> = [
        record("a", "p1", "error"),
        record("bb", "p1", "available"),
        record("ccc", "p2", "error"),
    ]
    .iter()
    .map(Value::to_string)
    .collect();
    let data = scratch("snap-data.jsonl", &lines.join("\n"));
    let snap = data.with_extension("snap");
    let out = backdex(
        &[
            "snapshot",
            "--data",
            data.to_str().unwrap(),
            "--out",
            snap.to_str().unwrap(),
            "--position",
            "0/16B3748",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(report["records"], 3);
    assert_eq!(
        report["snapshot_bytes"],
        std::fs::metadata(&snap).unwrap().len()
    );
    let request = "/v1/p1/checkpoint_items/count?status=error";
    let from = |file: &PathBuf| {
        let out = backdex(
            &[
                "query",
                "--data",
                file.to_str().unwrap(),
                "--project",
                "p1",
                request,
            ],
            None,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(from(&snap), from(&data));
    assert_eq!(from(&snap).trim(), r#"{"count":1}"#);

    // A damaged snapshot is refused with its section and offset.
    let mut bytes = std::fs::read(&snap).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 1;
    let damaged = scratch("damaged.snap", "");
    std::fs::write(&damaged, &bytes).unwrap();
    let out = backdex(
        &[
            "query",
            "--data",
            damaged.to_str().unwrap(),
            "--project",
            "p1",
            request,
        ],
        None,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("damaged.snap: snapshot section `derived.members` at offset"),
        "{err}"
    );
}

#[test]
fn json_lines_errors_name_the_line_through_the_builder() {
    let good = record("a", "p1", "error").to_string();
    let data = scratch(
        "bad-lines.jsonl",
        &format!(
            "{good}\n\n{}\n{{\"id\": \"b\"}}\n",
            record("x", "p1", "lost")
        ),
    );
    let out = backdex(
        &[
            "query",
            "--data",
            data.to_str().unwrap(),
            "--project",
            "p1",
            "/v1/p1/checkpoint_items/count",
        ],
        None,
    );
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "backdex: {}:3: field `status`: \"lost\" is not one of available, deleted, deleting, error, protecting, restoring, waiting_delete, waiting_protect, waiting_restore",
            data.display()
        )
    );
    let repeated = scratch("repeated.jsonl", &format!("{good}\n{good}\n"));
    let out = backdex(
        &[
            "query",
            "--data",
            repeated.to_str().unwrap(),
            "--project",
            "p1",
            "/v1/p1/checkpoint_items/count",
        ],
        None,
    );
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "backdex: {}:2: record 1: field `id`: duplicate id \"a\" (also record 0 of this batch)",
            repeated.display()
        )
    );
}
