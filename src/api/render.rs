//! JSON bodies (SEMANTICS §6): `CheckpointItem` (v1), `BackupResp` (v3),
//! counts and errors, written field by field in the documented order. The
//! opaque parts are copied as the JSON text the store keeps.

use std::borrow::Cow;

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::QueryError;
use crate::record::{ImageType, Record, Status};
use crate::store::Store;
use crate::timestamp::Timestamp;

/// The fields of one record as the renderer needs them, borrowed from a
/// store's columns or from a [`Record`].
pub(crate) struct View<'a> {
    pub(crate) id: &'a str,
    pub(crate) checkpoint_id: &'a str,
    pub(crate) project_id: &'a str,
    pub(crate) enterprise_project_id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) description: &'a str,
    pub(crate) status: Status,
    pub(crate) resource_id: &'a str,
    pub(crate) resource_name: &'a str,
    pub(crate) resource_type: &'a str,
    pub(crate) resource_az: &'a str,
    pub(crate) resource_size: u64,
    pub(crate) image_type: ImageType,
    pub(crate) vault_id: Option<&'a str>,
    pub(crate) provider_id: Option<&'a str>,
    pub(crate) parent_id: Option<&'a str>,
    pub(crate) dec: bool,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    pub(crate) protected_at: Option<Timestamp>,
    pub(crate) expired_at: Option<Timestamp>,
    /// JSON text of the opaque parts.
    pub(crate) extend_info: Cow<'a, str>,
    pub(crate) backup_data: Cow<'a, str>,
    pub(crate) replication_records: Cow<'a, str>,
    pub(crate) children: Cow<'a, str>,
    /// The stored `extend_info` has one of the keys v1 sets itself.
    pub(crate) extend_overlaps: bool,
}

impl<'a> View<'a> {
    pub(crate) fn of_record(r: &'a Record) -> View<'a> {
        View {
            id: &r.id,
            checkpoint_id: &r.checkpoint_id,
            project_id: &r.project_id,
            enterprise_project_id: &r.enterprise_project_id,
            name: &r.name,
            description: &r.description,
            status: r.status,
            resource_id: &r.resource_id,
            resource_name: &r.resource_name,
            resource_type: &r.resource_type,
            resource_az: &r.resource_az,
            resource_size: r.resource_size,
            image_type: r.image_type,
            vault_id: r.vault_id.as_deref(),
            provider_id: r.provider_id.as_deref(),
            parent_id: r.parent_id.as_deref(),
            dec: r.dec,
            created_at: r.created_at,
            updated_at: r.updated_at,
            protected_at: r.protected_at,
            expired_at: r.expired_at,
            extend_info: text(&r.extend_info),
            backup_data: text(&r.backup_data),
            replication_records: text(&r.replication_records),
            children: text(&r.children),
            extend_overlaps: v1_keys_overlap(&r.extend_info),
        }
    }

    pub(crate) fn of_row(store: &'a Store, row: u32) -> View<'a> {
        store.view(row)
    }
}

/// An opaque part as JSON text (a `Value` tree always serializes).
fn text<T: Serialize>(value: &T) -> Cow<'static, str> {
    Cow::Owned(serde_json::to_string(value).unwrap_or_default())
}

/// Appends a JSON string. Almost every string here needs no escape, so it
/// is copied as it is; the rest goes through serde_json.
fn push_str_json(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

/// Writes `"name":value` pairs into one JSON object, without allocating
/// per field.
struct Object<'o> {
    out: &'o mut String,
    first: bool,
}

impl<'o> Object<'o> {
    fn open(out: &'o mut String) -> Object<'o> {
        out.push('{');
        Object { out, first: true }
    }

    fn key(&mut self, name: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(name);
        self.out.push_str("\":");
    }

    fn str(&mut self, name: &str, value: &str) -> &mut Self {
        self.key(name);
        push_str_json(self.out, value);
        self
    }

    fn opt_str(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(name, v),
            None => self.raw(name, "null"),
        }
    }

    fn int(&mut self, name: &str, value: u64) -> &mut Self {
        self.key(name);
        let _ = write!(self.out, "{value}");
        self
    }

    fn time(&mut self, name: &str, t: Option<Timestamp>) -> &mut Self {
        self.key(name);
        match t {
            Some(t) => {
                self.out.push('"');
                self.out
                    .push_str(std::str::from_utf8(&t.text()).unwrap_or_default());
                self.out.push('"');
            }
            None => self.out.push_str("null"),
        }
        self
    }

    fn raw(&mut self, name: &str, json: &str) -> &mut Self {
        self.key(name);
        self.out.push_str(json);
        self
    }

    fn close(self) {
        self.out.push('}');
    }
}

/// The fields both item shapes start with.
fn identity<'o, 'w>(o: &'o mut Object<'w>, v: &View<'_>) -> &'o mut Object<'w> {
    o.str("id", v.id)
        .str("checkpoint_id", v.checkpoint_id)
        .str("name", v.name)
        .str("description", v.description)
        .str("status", v.status.as_str())
}

/// The keys v1 sets in `extend_info` from the record (§6).
const V1_KEYS: [&str; 6] = [
    "resource_az",
    "resource_name",
    "resource_type",
    "image_type",
    "dec",
    "size",
];

/// Whether a stored `extend_info` has one of the keys v1 sets itself.
pub(crate) fn v1_keys_overlap(extend_info: &Map<String, Value>) -> bool {
    V1_KEYS.iter().any(|k| extend_info.contains_key(*k))
}

/// v1's `extend_info`: the stored object with six keys set from the record.
/// When the stored object has none of them (the usual case, known since
/// ingestion) they are appended to its text; otherwise the object is parsed, updated
/// and written again. Both give the same bytes where both apply.
fn v1_extend_info(out: &mut String, v: &View<'_>) {
    v1_extend_info_by(out, v, true);
}

fn v1_extend_info_by(out: &mut String, v: &View<'_>, may_splice: bool) {
    let stored: &str = &v.extend_info;
    if !may_splice || v.extend_overlaps || !stored.starts_with('{') || !stored.ends_with('}') {
        let mut extend: Map<String, Value> = serde_json::from_str(stored).unwrap_or_default();
        extend.insert("resource_az".into(), v.resource_az.into());
        extend.insert("resource_name".into(), v.resource_name.into());
        extend.insert("resource_type".into(), v.resource_type.into());
        extend.insert("image_type".into(), v.image_type.as_str().into());
        extend.insert("dec".into(), v.dec.into());
        extend.insert("size".into(), v.resource_size.into());
        out.push_str(&serde_json::to_string(&extend).unwrap_or_default());
        return;
    }
    let inner = &stored[1..stored.len() - 1];
    out.push_str(&stored[..stored.len() - 1]);
    let mut o = Object {
        out,
        first: inner.is_empty(),
    };
    o.str("resource_az", v.resource_az)
        .str("resource_name", v.resource_name)
        .str("resource_type", v.resource_type)
        .str("image_type", v.image_type.as_str())
        .raw("dec", if v.dec { "true" } else { "false" })
        .int("size", v.resource_size);
    o.close();
}

/// v1 `CheckpointItem` (§6).
pub(crate) fn checkpoint_item(out: &mut String, v: &View<'_>) {
    let mut o = Object::open(out);
    identity(&mut o, v)
        .str("resource_id", v.resource_id)
        .str("resource_type", v.resource_type)
        .time("created_at", Some(v.created_at))
        .time("updated_at", Some(v.updated_at))
        .time("protected_at", v.protected_at)
        .raw("backup_data", &v.backup_data)
        .raw("replication_records", &v.replication_records)
        .key("extend_info");
    v1_extend_info(o.out, v);
    o.close();
}

/// v3 `BackupResp`; `extend_info` exactly as stored.
pub(crate) fn backup_resp(out: &mut String, v: &View<'_>) {
    let mut o = Object::open(out);
    identity(&mut o, v)
        .str("project_id", v.project_id)
        .str("enterprise_project_id", v.enterprise_project_id)
        .str("resource_id", v.resource_id)
        .str("resource_name", v.resource_name)
        .str("resource_type", v.resource_type)
        .str("resource_az", v.resource_az)
        .int("resource_size", v.resource_size)
        .str("image_type", v.image_type.as_str())
        .opt_str("vault_id", v.vault_id)
        .opt_str("provider_id", v.provider_id)
        .opt_str("parent_id", v.parent_id)
        .time("created_at", Some(v.created_at))
        .time("updated_at", Some(v.updated_at))
        .time("protected_at", v.protected_at)
        .time("expired_at", v.expired_at)
        .raw("extend_info", &v.extend_info)
        .raw("replication_records", &v.replication_records)
        .raw("children", &v.children);
    o.close();
}

/// `{"KEY":[item,...]` (the caller closes the object).
fn items<'a>(
    key: &str,
    views: impl Iterator<Item = View<'a>>,
    item: fn(&mut String, &View<'_>),
) -> String {
    // Room for the page up front (about 1 KB an item), rather than growing
    // and copying the body as it is written.
    let mut out = String::with_capacity(64 + 1024 * views.size_hint().0);
    let _ = write!(out, "{{\"{key}\":[");
    for (i, v) in views.enumerate() {
        if i > 0 {
            out.push(',');
        }
        item(&mut out, &v);
    }
    out.push(']');
    out
}

/// `{"checkpoint_items": [...]}`.
pub(crate) fn v1_list<'a>(views: impl Iterator<Item = View<'a>>) -> String {
    let mut out = items("checkpoint_items", views, checkpoint_item);
    out.push('}');
    out
}

/// `{"backups": [...], "count": N}`.
pub(crate) fn v3_list<'a>(views: impl Iterator<Item = View<'a>>, count: u64) -> String {
    let mut out = items("backups", views, backup_resp);
    let _ = write!(out, ",\"count\":{count}}}");
    out
}

/// `{"count": N}`.
pub(crate) fn count(n: u64) -> String {
    format!("{{\"count\":{n}}}")
}

/// `{"error": {"code": CODE, "message": TEXT}}`.
pub(crate) fn error(e: &QueryError) -> String {
    let mut out = String::from("{\"error\":");
    let mut o = Object::open(&mut out);
    o.str("code", e.code()).str("message", &e.to_string());
    o.close();
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Appending the six keys to the stored text gives the same bytes as
    /// parsing, updating and writing the object.
    #[test]
    fn v1_extend_info_splice_equals_the_parsed_path() {
        let base = Record::from_json(&json!({
            "id": "b", "checkpoint_id": "c", "project_id": "p", "name": "n", "status": "error",
            "resource_id": "r", "resource_type": "OS::Nova::Server", "resource_name": "vm \"1\"\n",
            "resource_az": "az1", "resource_size": 40, "dec": true,
            "created_at": "2020-01-01T00:00:00", "updated_at": "2020-01-01T00:00:00"
        }))
        .unwrap();
        for extend in [
            json!({}),
            json!({"auto_trigger": true, "progress": 100}),
            json!({"nested": {"size": 3, "dec": [1.5, "x"]}, "é": "\u{1}"}),
            json!({"size": 7, "other": null}),
            json!({"resource_az": "old", "a": {}}),
            json!({"note": "the word \"size\" in a value"}),
        ] {
            let record = Record {
                extend_info: extend.as_object().cloned().unwrap(),
                ..base.clone()
            };
            let view = View::of_record(&record);
            let (mut spliced, mut parsed) = (String::new(), String::new());
            v1_extend_info_by(&mut spliced, &view, true);
            v1_extend_info_by(&mut parsed, &view, false);
            assert_eq!(spliced, parsed, "{extend}");
            let value: Value = serde_json::from_str(&spliced).unwrap();
            assert_eq!(value["size"], 40);
            assert_eq!(value["resource_name"], "vm \"1\"\n");
        }
    }
}
