//! The bad input catalogue: malformed requests and records, each with the
//! exact answer it must get (status, code and message; or the batch error),
//! and for every refused batch, a check that the store is unchanged.
//! tests/api.rs holds the spec's own error cases; this file is the hostile
//! side: huge values, broken escapes, numbers JSON cannot hold, timestamps
//! at the edges of the calendar, deep nesting, repeats and strangers.

use backdex::{records_from_json, Record, Scope, Store};
use serde_json::{json, Value};

mod common;
use common::record;

fn store() -> Store {
    let batch = json!([
        record("a1", "p1", json!({})),
        record(
            "a2",
            "p1",
            json!({"status": "error", "members": [{"dest_project_id": "p2", "status": "pending"}]})
        ),
    ]);
    let mut store = Store::new();
    store
        .upsert(&records_from_json(&batch).expect("valid"))
        .expect("loads");
    store
}

/// `depth` nested arrays around a number, built without recursion.
fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 1..depth {
        v = Value::Array(vec![v]);
    }
    v
}

fn error_body(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

#[test]
fn malformed_requests_get_their_exact_error() {
    let store = store();
    let p1 = Scope::project("p1");
    let ten_mb = "9".repeat(10 << 20);
    let long_name = format!("name={}", "a".repeat(10 << 20));
    let long_limit = format!("limit={ten_mb}");
    let long_path = format!("/v1/{}/checkpoint_items", "p".repeat(1 << 20));
    // Values and names are echoed as sent (no escapes), cut to 256 bytes
    // with what was left out.
    let long_path_message = format!(
        "forbidden: `project_id` = \"{}\"…(+1048320 bytes): the route's project is not the caller's project",
        "p".repeat(256)
    );
    let long_param = format!("{}=1", "x".repeat(10 << 20));
    let long_param_message = format!(
        "invalid parameter `{}`…(+10485504 bytes) = \"1\": unknown parameter",
        "x".repeat(256)
    );
    let v1 = "/v1/p1/checkpoint_items";
    let v1c = "/v1/p1/checkpoint_items/count";
    let v3 = "/v3/p1/backups";
    let share = "/v2/p1/os-vendor-backup-sharing/count";
    let clamped = store.handle(v1, "limit=1000", &p1).body;
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, &str, u16, &str, &str)> = vec![
        // what, route, query, status, then the error's code and message,
        // or for a 200 the exact body
        ("10 MB substring: valid, matches nothing", v1c, &long_name, 200, "", r#"{"count":0}"#),
        ("10 MB of digits as a limit: any size parses, then the maximum applies", v1, &long_limit, 200, "", &clamped),
        ("invalid UTF-8 in a percent-escape decodes to U+FFFD", v1c, "name=%FF", 200, "", r#"{"count":0}"#),
        ("an overlong UTF-8 sequence decodes to U+FFFD", v1c, "name=%C0%AF", 200, "", r#"{"count":0}"#),
        ("a truncated UTF-8 sequence decodes to U+FFFD", v1c, "name=%E2%82", 200, "", r#"{"count":0}"#),
        ("a UTF-16 surrogate in UTF-8 decodes to U+FFFD", v1c, "name=%ED%A0%80", 200, "", r#"{"count":0}"#),
        ("invalid UTF-8 in a parameter's name", v1c, "%FF=1", 400, "InvalidParameter", "invalid parameter `�` = \"1\": unknown parameter"),
        ("a NUL byte in a value", v1c, "status=%00", 400, "InvalidParameter", "invalid parameter `status` = \"\0\": must be one of available, deleted, deleting, error, protecting, restoring, waiting_delete, waiting_protect, waiting_restore"),
        ("a combining accent is echoed as sent", v1c, "status=e%CC%81", 400, "InvalidParameter", "invalid parameter `status` = \"e\u{301}\": must be one of available, deleted, deleting, error, protecting, restoring, waiting_delete, waiting_protect, waiting_restore"),
        ("a byte order mark is echoed as sent", v1c, "image_type=%EF%BB%BFbackup", 400, "InvalidParameter", "invalid parameter `image_type` = \"\u{feff}backup\": must be one of backup, replication"),
        ("a quote and a backslash are echoed as sent", v1c, "status=%22%5C", 400, "InvalidParameter", "invalid parameter `status` = \"\"\\\": must be one of available, deleted, deleting, error, protecting, restoring, waiting_delete, waiting_protect, waiting_restore"),
        ("a 10 MB unknown parameter name is cut", v1c, &long_param, 400, "InvalidParameter", &long_param_message),
        ("a percent sign without hex digits is literal", v1c, "name=%zz", 200, "", r#"{"count":0}"#),
        ("a parameter twice", v1, "limit=1&limit=2", 400, "InvalidParameter", "invalid parameter `limit` = \"2\": given more than once"),
        ("status twice on v1", v1c, "status=error&status=available", 400, "InvalidParameter", "invalid parameter `status` = \"available\": given more than once"),
        ("an unknown parameter", v1, "foo=1", 400, "InvalidParameter", "invalid parameter `foo` = \"1\": unknown parameter"),
        ("a v3 parameter on v1", v1, "own_type=shared", 400, "InvalidParameter", "invalid parameter `own_type` = \"shared\": unknown parameter"),
        ("a parameter in another case", v1, "Limit=1", 400, "InvalidParameter", "invalid parameter `Limit` = \"1\": unknown parameter"),
        ("an empty value", v1c, "name=", 400, "InvalidParameter", "invalid parameter `name` = \"\": must not be empty"),
        ("a name without a value", v1, "limit", 400, "InvalidParameter", "invalid parameter `limit` = \"\": must not be empty"),
        ("an empty marker", v1, "marker=", 400, "InvalidParameter", "invalid parameter `marker` = \"\": must not be empty"),
        ("a negative limit", v1, "limit=-1", 400, "InvalidParameter", "invalid parameter `limit` = \"-1\": must be at least 1"),
        ("a limit in exponent form", v1, "limit=1e3", 400, "InvalidParameter", "invalid parameter `limit` = \"1e3\": must be an integer (ASCII digits, optional leading -)"),
        ("NaN as a limit", v1, "limit=NaN", 400, "InvalidParameter", "invalid parameter `limit` = \"NaN\": must be an integer (ASCII digits, optional leading -)"),
        ("a limit with a fraction", v1, "limit=1.5", 400, "InvalidParameter", "invalid parameter `limit` = \"1.5\": must be an integer (ASCII digits, optional leading -)"),
        ("a limit with a plus sign", v1, "limit=%2B5", 400, "InvalidParameter", "invalid parameter `limit` = \"+5\": must be an integer (ASCII digits, optional leading -)"),
        ("a limit with spaces", v1, "limit=+5", 400, "InvalidParameter", "invalid parameter `limit` = \" 5\": must be an integer (ASCII digits, optional leading -)"),
        ("a negative offset", v3, "offset=-1", 400, "InvalidParameter", "invalid parameter `offset` = \"-1\": must be from 0 to 2147483647"),
        ("an offset past u64", v3, "offset=18446744073709551616", 400, "InvalidParameter", "invalid parameter `offset` = \"18446744073709551616\": must be from 0 to 2147483647"),
        ("Infinity as an offset", v3, "offset=Infinity", 400, "InvalidParameter", "invalid parameter `offset` = \"Infinity\": must be an integer (ASCII digits, optional leading -)"),
        ("year 0000", v1c, "start_time=0000-12-31T23:59:59", 400, "InvalidParameter", "invalid parameter `start_time` = \"0000-12-31T23:59:59\": invalid timestamp: the year must be within 0001..=9999 in UTC"),
        ("year 10000", v1c, "end_time=10000-01-01T00:00:00", 400, "InvalidParameter", "invalid parameter `end_time` = \"10000-01-01T00:00:00\": invalid timestamp: expected YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]"),
        ("past 9999 once converted to UTC", v1c, "end_time=9999-12-31T23:59:59-00:01", 400, "InvalidParameter", "invalid parameter `end_time` = \"9999-12-31T23:59:59-00:01\": invalid timestamp: the year must be within 0001..=9999 in UTC"),
        ("before 0001 once converted to UTC", v1c, "start_time=0001-01-01T00:00:00%2B00:01", 400, "InvalidParameter", "invalid parameter `start_time` = \"0001-01-01T00:00:00+00:01\": invalid timestamp: the year must be within 0001..=9999 in UTC"),
        ("the last microsecond of 9999 is valid", v1c, "end_time=9999-12-31T23:59:59.999999", 200, "", r#"{"count":2}"#),
        ("the first instant of 0001 is valid", v1c, "start_time=0001-01-01T00:00:00Z", 200, "", r#"{"count":2}"#),
        ("February 30th", v1c, "start_time=2020-02-30T00:00:00", 400, "InvalidParameter", "invalid parameter `start_time` = \"2020-02-30T00:00:00\": invalid timestamp: no such calendar date"),
        ("February 29th of a common year", v1c, "start_time=2021-02-29T00:00:00", 400, "InvalidParameter", "invalid parameter `start_time` = \"2021-02-29T00:00:00\": invalid timestamp: no such calendar date"),
        ("hour 24", v1c, "start_time=2020-01-01T24:00:00", 400, "InvalidParameter", "invalid parameter `start_time` = \"2020-01-01T24:00:00\": invalid timestamp: hour, minute or second out of range"),
        ("a leap second", v1c, "start_time=2016-12-31T23:59:60Z", 400, "InvalidParameter", "invalid parameter `start_time` = \"2016-12-31T23:59:60Z\": invalid timestamp: hour, minute or second out of range"),
        ("a lower-case t", v1c, "start_time=2020-01-01t00:00:00", 400, "InvalidParameter", "invalid parameter `start_time` = \"2020-01-01t00:00:00\": invalid timestamp: expected YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]"),
        ("a space for T", v1c, "start_time=2020-01-01%2000:00:00", 400, "InvalidParameter", "invalid parameter `start_time` = \"2020-01-01 00:00:00\": invalid timestamp: expected YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]"),
        ("ten fraction digits", v1c, "start_time=2020-01-01T00:00:00.1234567890", 400, "InvalidParameter", "invalid parameter `start_time` = \"2020-01-01T00:00:00.1234567890\": invalid timestamp: the fraction of a second must have 1 to 9 digits"),
        ("an offset of +24:00", v1c, "start_time=2020-01-01T00:00:00%2B24:00", 400, "InvalidParameter", "invalid parameter `start_time` = \"2020-01-01T00:00:00+24:00\": invalid timestamp: the zone offset must be within ±23:59"),
        ("a Unix timestamp", v1c, "start_time=1577836800", 400, "InvalidParameter", "invalid parameter `start_time` = \"1577836800\": invalid timestamp: expected YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]"),
        ("start after end", v1c, "start_time=2020-01-02T00:00:00&end_time=2020-01-01T00:00:00", 400, "InvalidParameter", "invalid parameter `start_time` = \"2020-01-02T00:00:00.000000\": is after end_time 2020-01-01T00:00:00.000000"),
        ("an unknown sort key", v1, "sort=size:asc", 400, "InvalidParameter", "invalid parameter `sort` = \"size:asc\": unknown sort key \"size\"; keys are created_at, updated_at, name, status, protected_at, id"),
        ("an unknown direction", v1, "sort=name:up", 400, "InvalidParameter", "invalid parameter `sort` = \"name:up\": unknown direction \"up\" for name; use asc or desc"),
        ("an empty sort key", v1, "sort=name:asc,", 400, "InvalidParameter", "invalid parameter `sort` = \"name:asc,\": has an empty item"),
        ("a sort key twice", v1, "sort=name:asc,name:desc", 400, "InvalidParameter", "invalid parameter `sort` = \"name:asc,name:desc\": sort key name is given twice"),
        ("an IPv6 zone id", v1c, "ip=fe80::1%25eth0", 400, "InvalidParameter", "invalid parameter `ip` = \"fe80::1%eth0\": must be an IPv4 or IPv6 address"),
        ("an IPv4 octet past 255", v1c, "ip=999.1.1.1", 400, "InvalidParameter", "invalid parameter `ip` = \"999.1.1.1\": must be an IPv4 or IPv6 address"),
        ("a CIDR block", v1c, "ip=10.0.0.0/8", 400, "InvalidParameter", "invalid parameter `ip` = \"10.0.0.0/8\": must be an IPv4 or IPv6 address"),
        ("yes as a boolean", v1, "all_tenants=yes", 400, "InvalidParameter", "invalid parameter `all_tenants` = \"yes\": must be true or false"),
        ("1 as a boolean", share, "share_to_me=1", 400, "InvalidParameter", "invalid parameter `share_to_me` = \"1\": must be true or false"),
        ("an unknown status", v1c, "status=Available", 400, "InvalidParameter", "invalid parameter `status` = \"Available\": must be one of available, deleted, deleting, error, protecting, restoring, waiting_delete, waiting_protect, waiting_restore"),
        ("an unknown own_type", v3, "own_type=mine", 400, "InvalidParameter", "invalid parameter `own_type` = \"mine\": must be one of private, shared, all_granted"),
        ("member_status without own_type", v3, "member_status=pending", 400, "InvalidParameter", "invalid parameter `member_status` = \"pending\": needs own_type=shared or own_type=all_granted (the default own_type is private)"),
        ("an unknown image_type", v3, "image_type=snapshot", 400, "InvalidParameter", "invalid parameter `image_type` = \"snapshot\": must be one of backup, replication"),
        ("an unknown route version", "/v4/p1/backups", "", 404, "NotFound", "no route matches \"/v4/p1/backups\""),
        ("a trailing slash", "/v1/p1/checkpoint_items/", "", 404, "NotFound", "no route matches \"/v1/p1/checkpoint_items/\""),
        ("a route with an extra segment", "/v1/p1/checkpoint_items/count/x", "", 404, "NotFound", "no route matches \"/v1/p1/checkpoint_items/count/x\""),
        ("an empty path", "", "", 404, "NotFound", "no route matches \"\""),
        ("a 1 MB project id in the route", &long_path, "", 403, "Forbidden", &long_path_message),
        ("all_tenants without admin", v1c, "all_tenants=true", 403, "Forbidden", "forbidden: `all_tenants` = \"true\": only an admin scope may see all tenants"),
        ("a marker no record has", v1, "marker=nope", 404, "MarkerNotFound", "marker \"nope\" not found: no visible record has this id"),
    ];
    let mut failures = Vec::new();
    for (what, path, query, status, code, message) in &cases {
        let got = store.handle(path, query, &p1);
        let body = got.json();
        let ok = got.status == *status
            && if *status == 200 {
                got.body == *message
            } else {
                body == error_body(code, message)
            };
        if !ok {
            let shown: String = got.body.chars().take(300).collect();
            failures.push(format!("{what}: {} {shown}", got.status));
        }
    }
    assert!(
        cases.len() >= 60,
        "the catalogue keeps at least 60 requests"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What a refused batch must leave: the same records, exact indexes.
fn assert_unchanged(store: &Store, before: &[Record], what: &str) {
    assert_eq!(store.records(), before, "{what}: the store changed");
    store
        .internal_validate()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

#[test]
fn malformed_records_get_their_exact_error_and_change_nothing() {
    let mut store = store();
    let before = store.records();
    let big = "x".repeat(4 << 20);
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, &str)> = vec![
        // what, the bad record (sent as the second of a batch after a valid one), the error
        ("no id", json!({"id": null}), "record 1: field `id`: expected a string, got null"),
        ("an empty id", json!({"id": ""}), "record 1: field `id`: must be 1 to 255 bytes long, got 0 bytes"),
        ("an id of 256 bytes", json!({"id": "i".repeat(256)}), "record 1: field `id`: must be 1 to 255 bytes long, got 256 bytes"),
        ("a number for a string", json!({"name": 5}), "record 1: field `name`: expected a string, got a number"),
        ("null for a non-nullable string", json!({"description": null}), "record 1: field `description`: expected a string, got null"),
        ("an unknown status", json!({"status": "Available"}), "record 1: field `status`: \"Available\" is not one of available, deleted, deleting, error, protecting, restoring, waiting_delete, waiting_protect, waiting_restore"),
        ("an unknown image_type", json!({"image_type": "snapshot"}), "record 1: field `image_type`: \"snapshot\" is not one of backup, replication"),
        ("a string for dec", json!({"dec": "true"}), "record 1: field `dec`: expected a boolean, got a string"),
        ("a negative size", json!({"resource_size": -1}), "record 1: field `resource_size`: expected an integer >= 0, got -1"),
        ("a size with a fraction", json!({"resource_size": 1.5}), "record 1: field `resource_size`: expected an integer >= 0, got 1.5"),
        ("a size past u64", json!({"resource_size": 18446744073709551616.0}), "record 1: field `resource_size`: expected an integer >= 0, got 1.8446744073709552e+19"),
        ("a size as a string", json!({"resource_size": "NaN"}), "record 1: field `resource_size`: expected an integer >= 0, got \"NaN\""),
        ("a month 13", json!({"created_at": "2020-13-01T00:00:00"}), "record 1: field `created_at`: invalid timestamp \"2020-13-01T00:00:00\": no such calendar date"),
        ("year 0000", json!({"created_at": "0000-01-01T00:00:00"}), "record 1: field `created_at`: invalid timestamp \"0000-01-01T00:00:00\": the year must be within 0001..=9999 in UTC"),
        ("year 10000", json!({"created_at": "10000-01-01T00:00:00"}), "record 1: field `created_at`: invalid timestamp \"10000-01-01T00:00:00\": expected YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]"),
        ("past 9999 once converted to UTC", json!({"updated_at": "9999-12-31T23:59:59-00:01"}), "record 1: field `updated_at`: invalid timestamp \"9999-12-31T23:59:59-00:01\": the year must be within 0001..=9999 in UTC"),
        ("a leap second", json!({"created_at": "2016-12-31T23:59:60Z"}), "record 1: field `created_at`: invalid timestamp \"2016-12-31T23:59:60Z\": hour, minute or second out of range"),
        ("an empty timestamp", json!({"expired_at": ""}), "record 1: field `expired_at`: invalid timestamp \"\": expected YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]"),
        ("a number for a timestamp", json!({"created_at": 1577836800}), "record 1: field `created_at`: expected a timestamp string, got a number"),
        ("backup_data not an object", json!({"backup_data": []}), "record 1: field `backup_data`: expected an object, got an array"),
        ("members not an array", json!({"members": {}}), "record 1: field `members`: expected an array, got an object"),
        ("a member without a destination", json!({"members": [{"status": "pending"}]}), "record 1: field `members[0].dest_project_id`: missing required field"),
        ("a member with an unknown status", json!({"members": [{"dest_project_id": "p2", "status": "maybe"}]}), "record 1: field `members[0].status`: \"maybe\" is not one of accept, pending, reject"),
        ("a destination twice", json!({"members": [{"dest_project_id": "p2", "status": "pending"}, {"dest_project_id": "p2", "status": "accept"}]}), "record 1: field `members[1].dest_project_id`: duplicate dest_project_id \"p2\" (also in members[0])"),
        ("extend_info nested 101 levels", json!({"extend_info": {"k": nested(100)}}), "record 1: field `extend_info`: nested 101 levels deep; the limit is 100"),
        ("children nested 1,000 levels", json!({"children": [nested(999)]}), "record 1: field `children`: nested 1000 levels deep; the limit is 100"),
        ("a name over 4 MiB", json!({"name": big}), "record 1: field `name`: 4194304 bytes is longer than the limit of 4194303 bytes"),
        ("an id repeated in the batch", json!({"id": "new"}), "record 1: field `id`: duplicate id \"new\" (also record 0 of this batch)"),
    ];
    let mut failures = Vec::new();
    for (what, extra, message) in &cases {
        let valid = record("new", "p1", json!({}));
        let bad = record("bad", "p1", extra.clone());
        let batch = json!([valid, bad]);
        let error = match records_from_json(&batch) {
            Err(e) => e,
            Ok(records) => match store.upsert(&records) {
                Err(e) => e,
                Ok(_) => {
                    failures.push(format!("{what}: accepted"));
                    store = self::store();
                    continue;
                }
            },
        };
        if error.to_string() != *message {
            failures.push(format!("{what}: {error}"));
        }
        assert_unchanged(&store, &before, what);
    }
    // Batches that are not batches, and bad deletes.
    #[rustfmt::skip]
    let batches: Vec<(&str, Value, &str)> = vec![
        ("an object for a batch", json!({"id": "x"}), "malformed batch: expected an array of records"),
        ("a number in a batch", json!([1]), "record 0: a record must be an object, got a number"),
        ("NaN as text in a batch", json!(["NaN"]), "record 0: a record must be an object, got a string"),
    ];
    for (what, batch, message) in &batches {
        match records_from_json(batch) {
            Err(e) if e.to_string() == *message => {}
            other => failures.push(format!("{what}: {:?}", other.map(|r| r.len()))),
        }
    }
    #[rustfmt::skip]
    let deletes: Vec<(&str, Vec<&str>, &str)> = vec![
        ("an unknown id to delete", vec!["a1", "nope"], "ids[1]: no record has id \"nope\""),
        ("an id twice to delete", vec!["a1", "a1"], "ids[1]: id \"a1\" is named twice in one batch (also ids[0])"),
        ("an empty id to delete", vec![""], "ids[0]: no record has id \"\""),
    ];
    for (what, ids, message) in &deletes {
        match store.delete(ids) {
            Err(e) if e.to_string() == *message => {}
            Err(e) => failures.push(format!("{what}: {e}")),
            Ok(_) => failures.push(format!("{what}: accepted")),
        }
        assert_unchanged(&store, &before, what);
    }
    assert!(
        cases.len() + batches.len() + deletes.len() >= 30,
        "the catalogue keeps at least 30 records and batches"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
