//! Fixtures the integration tests share: a record as JSON and scopes of
//! project p1. Each test file uses a part of it.
#![allow(dead_code)]

use backdex::Scope;
use serde_json::{json, Value};

/// A valid record of `project` as JSON (name `autobk_{id}`), with `extra`
/// fields set over the defaults.
pub fn record(id: &str, project: &str, extra: Value) -> Value {
    let mut r = json!({
        "id": id, "checkpoint_id": format!("c-{id}"), "project_id": project, "name": format!("autobk_{id}"),
        "status": "available", "resource_id": "vm1", "resource_type": "OS::Nova::Server",
        "resource_az": "az1", "created_at": "2020-02-21T07:00:54.065135",
        "updated_at": "2020-02-21T07:07:25.113761",
        "backup_data": {"private_ip": "10.0.0.1", "eip": ""}
    });
    if let (Value::Object(r), Value::Object(extra)) = (&mut r, extra) {
        r.extend(extra);
    }
    r
}

/// Project p1's scope, project-wide.
pub fn p1() -> Scope {
    Scope::project("p1")
}

/// Project p1's scope, limited to these enterprise projects.
pub fn granted(eps: &[&str]) -> Scope {
    Scope {
        granted_eps: Some(eps.iter().map(|e| e.to_string()).collect()),
        ..p1()
    }
}

/// The four routes of project p1.
pub const V1: &str = "/v1/p1/checkpoint_items";
pub const V1C: &str = "/v1/p1/checkpoint_items/count";
pub const V3: &str = "/v3/p1/backups";
pub const SHARE: &str = "/v2/p1/os-vendor-backup-sharing/count";
