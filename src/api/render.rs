//! JSON bodies (SEMANTICS §6): `CheckpointItem` (v1), `BackupResp` (v3),
//! counts and errors, written field by field in the documented order. The
//! opaque parts are copied as the JSON text the store keeps.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::query::{Api, QueryError};
use crate::record::{ImageType, Status};
use crate::schema::{rendered, rendered_len, Field, FIELD_COUNT, V1_EXTEND_INFO};
use crate::store::{push_uuid, IdText, RawJson, RowView};
use crate::timestamp::Timestamp;

/// One row to render: its fields, and whether its stored `extend_info` has
/// one of the keys v1 sets itself (known since ingestion).
pub(crate) struct Item<'a> {
    pub(crate) fields: RowView<'a>,
    pub(crate) v1_keys_overlap: bool,
}

/// Appends a JSON string. Almost every string here needs no escape, so it
/// is copied as it is; the rest goes through serde_json.
fn push_str_json(out: &mut String, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

/// Whether a string holds a byte JSON must escape (a control character, a
/// quote, a backslash). Sixteen bytes are tested at a time without an
/// early exit, which the compiler turns into vector compares: a page
/// writes a dozen strings per row.
#[inline]
fn needs_escape(s: &[u8]) -> bool {
    let special = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let mut chunks = s.chunks_exact(16);
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |any, &b| any | special(b)) {
            return true;
        }
    }
    // The rest (most strings here are shorter than sixteen bytes) padded
    // with a plain byte, to be tested the same way.
    let rest = chunks.remainder();
    let mut last = [b'a'; 16];
    if let Some(head) = last.get_mut(..rest.len()) {
        head.copy_from_slice(rest);
    }
    last.iter().fold(false, |any, &b| any | special(b))
}

/// A value written into a JSON body: strings escaped where JSON must,
/// opaque parts copied as the JSON text the store keeps.
trait JsonValue {
    fn write_json(&self, out: &mut String);
}

impl JsonValue for &str {
    #[inline]
    fn write_json(&self, out: &mut String) {
        push_str_json(out, self);
    }
}

/// A UUID's text needs no escaping.
impl JsonValue for IdText<'_> {
    #[inline]
    fn write_json(&self, out: &mut String) {
        match self {
            IdText::Text(text) => push_str_json(out, text),
            IdText::Uuid(raw) => {
                out.push('"');
                push_uuid(out, raw);
                out.push('"');
            }
        }
    }
}

impl JsonValue for Option<&str> {
    #[inline]
    fn write_json(&self, out: &mut String) {
        match self {
            Some(s) => push_str_json(out, s),
            None => out.push_str("null"),
        }
    }
}

impl JsonValue for u64 {
    #[inline]
    fn write_json(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl JsonValue for bool {
    #[inline]
    fn write_json(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

impl JsonValue for Status {
    #[inline]
    fn write_json(&self, out: &mut String) {
        push_str_json(out, self.as_str());
    }
}

impl JsonValue for ImageType {
    #[inline]
    fn write_json(&self, out: &mut String) {
        push_str_json(out, self.as_str());
    }
}

impl JsonValue for Timestamp {
    #[inline]
    fn write_json(&self, out: &mut String) {
        out.push('"');
        out.push_str(std::str::from_utf8(&self.text()).unwrap_or_default());
        out.push('"');
    }
}

impl JsonValue for Option<Timestamp> {
    #[inline]
    fn write_json(&self, out: &mut String) {
        match self {
            Some(t) => t.write_json(out),
            None => out.push_str("null"),
        }
    }
}

impl JsonValue for RawJson<'_> {
    #[inline]
    fn write_json(&self, out: &mut String) {
        out.push_str(self.0);
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

    /// The comma before every member but the first.
    #[inline]
    fn separate(&mut self) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
    }

    fn key(&mut self, name: &str) {
        self.separate();
        self.out.push('"');
        self.out.push_str(name);
        self.out.push_str("\":");
    }

    fn value(&mut self, name: &str, value: &impl JsonValue) -> &mut Self {
        self.key(name);
        value.write_json(self.out);
        self
    }

    /// [`Object::value`] with the key already written as `"name":`.
    #[inline]
    fn quoted_value(&mut self, quoted_key: &str, value: &impl JsonValue) {
        self.separate();
        self.out.push_str(quoted_key);
        value.write_json(self.out);
    }

    fn close(self) {
        self.out.push('}');
    }
}

/// Drops a render position: it only selects the fields an API renders.
macro_rules! rendered_by {
    ($position:literal) => {};
}

/// The v1 and v3 item fields, in their positions of the field table.
macro_rules! renderers {
    ($( {
        $variant:ident, $field:ident, $ty:ty, $presence:tt, $column:ident,
        [$($bitmap:ident)?], [$($order:ident)?], [$($substring:ident)?], [$($index:ident)?],
        [$($v1:literal)?], [$($v3:literal)?], [$($doc:literal)*]
    } )*) => {
        const V1_POSITIONS: [Option<usize>; FIELD_COUNT] = [$( crate::schema::position!($($v1)?), )*];
        const V3_POSITIONS: [Option<usize>; FIELD_COUNT] = [$( crate::schema::position!($($v3)?), )*];

        /// Writes one field of a v1 `CheckpointItem`.
        fn v1_field(o: &mut Object<'_>, v: &RowView<'_>, field: Field) {
            match field {
                $( $( Field::$variant => {
                    rendered_by!($v1);
                    o.quoted_value(concat!("\"", stringify!($field), "\":"), &v.$field);
                } )? )*
                _ => {}
            }
        }

        /// Writes one field of a v3 `BackupResp`.
        fn v3_field(o: &mut Object<'_>, v: &RowView<'_>, field: Field) {
            match field {
                $( $( Field::$variant => {
                    rendered_by!($v3);
                    o.quoted_value(concat!("\"", stringify!($field), "\":"), &v.$field);
                } )? )*
                _ => {}
            }
        }
    };
}

crate::schema::record_fields!(renderers);

/// v1 `CheckpointItem`'s fields, in order (SEMANTICS §6).
const V1_FIELDS: [Field; rendered_len(V1_POSITIONS)] = rendered(V1_POSITIONS);
/// v3 `BackupResp`'s fields, in order (SEMANTICS §6).
const V3_FIELDS: [Field; rendered_len(V3_POSITIONS)] = rendered(V3_POSITIONS);

/// v1's `extend_info`: the stored object with six keys set from the record.
/// When the stored object has none of them (the usual case, known since
/// ingestion) they are appended to its text; otherwise the object is
/// parsed, updated and written again. Both give the same bytes where both
/// apply.
fn v1_extend_info(out: &mut String, item: &Item<'_>) {
    v1_extend_info_by(out, item, true);
}

fn v1_extend_info_by(out: &mut String, item: &Item<'_>, may_splice: bool) {
    let v = &item.fields;
    let stored: &str = v.extend_info.0;
    let Some(inner) = stored
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .filter(|_| may_splice && !item.v1_keys_overlap)
    else {
        let mut extend: Map<String, Value> = serde_json::from_str(stored).unwrap_or_default();
        let [az, name, kind, image, dec, size] = V1_EXTEND_INFO.map(|(key, _)| key);
        extend.insert(az.into(), v.resource_az.into());
        extend.insert(name.into(), v.resource_name.into());
        extend.insert(kind.into(), v.resource_type.into());
        extend.insert(image.into(), v.image_type.as_str().into());
        extend.insert(dec.into(), v.dec.into());
        extend.insert(size.into(), v.resource_size.into());
        out.push_str(&serde_json::to_string(&extend).unwrap_or_default());
        return;
    };
    out.push('{');
    out.push_str(inner);
    let mut o = Object {
        out,
        first: inner.is_empty(),
    };
    let [az, name, kind, image, dec, size] = V1_EXTEND_INFO.map(|(key, _)| key);
    o.value(az, &v.resource_az)
        .value(name, &v.resource_name)
        .value(kind, &v.resource_type)
        .value(image, &v.image_type)
        .value(dec, &v.dec)
        .value(size, &v.resource_size);
    o.close();
}

/// v1 `CheckpointItem` (§6): the table's v1 fields, `extend_info` with
/// v1's six keys.
fn checkpoint_item(out: &mut String, item: &Item<'_>) {
    let mut o = Object::open(out);
    for &field in &V1_FIELDS {
        if field == Field::ExtendInfo {
            o.key(field.name());
            v1_extend_info(o.out, item);
        } else {
            v1_field(&mut o, &item.fields, field);
        }
    }
    o.close();
}

/// v3 `BackupResp` (§6); `extend_info` exactly as stored.
fn backup_resp(out: &mut String, item: &Item<'_>) {
    let mut o = Object::open(out);
    for &field in &V3_FIELDS {
        v3_field(&mut o, &item.fields, field);
    }
    o.close();
}

/// `{"KEY":[item,...]` (the caller closes the object).
fn items<T>(
    key: &str,
    page: impl ExactSizeIterator<Item = T>,
    mut item: impl FnMut(&mut String, T),
) -> String {
    // Room for the page up front (about 1 KB an item), rather than growing
    // and copying the body as it is written.
    let mut out = String::with_capacity(64 + 1024 * page.len());
    let _ = write!(out, "{{\"{key}\":[");
    for (i, v) in page.enumerate() {
        if i > 0 {
            out.push(',');
        }
        item(&mut out, v);
    }
    out.push(']');
    out
}

/// `{"checkpoint_items": [...]}`.
pub(crate) fn v1_list(page: &[Item<'_>]) -> String {
    let mut out = items("checkpoint_items", page.iter(), checkpoint_item);
    out.push('}');
    out
}

/// `{"backups": [...], "count": N}`.
pub(crate) fn v3_list(page: &[Item<'_>], count: u64) -> String {
    let mut out = items("backups", page.iter(), backup_resp);
    let _ = write!(out, ",\"count\":{count}}}");
    out
}

/// One list entry alone, as [`v1_list`] or [`v3_list`] writes it.
pub(crate) fn entry(api: Api, item: &Item<'_>) -> String {
    let mut out = String::with_capacity(1024);
    match api {
        Api::V3List => backup_resp(&mut out, item),
        _ => checkpoint_item(&mut out, item),
    }
    out
}

/// [`v1_list`] of entries written by [`entry`].
pub(crate) fn v1_list_of(page: &[&str]) -> String {
    let mut out = items("checkpoint_items", page.iter(), |o, e| o.push_str(e));
    out.push('}');
    out
}

/// [`v3_list`] of entries written by [`entry`].
pub(crate) fn v3_list_of(page: &[&str], count: u64) -> String {
    let mut out = items("backups", page.iter(), |o, e| o.push_str(e));
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
    o.value("code", &e.code())
        .value("message", &e.to_string().as_str());
    o.close();
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use crate::store::Store;
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
            let mut store = Store::new();
            store.upsert(std::slice::from_ref(&record)).unwrap();
            let row = store.row_of("b").unwrap();
            let item = Item {
                fields: store.view(row),
                v1_keys_overlap: store.v1_keys_overlap(row),
            };
            let (mut spliced, mut parsed) = (String::new(), String::new());
            v1_extend_info_by(&mut spliced, &item, true);
            v1_extend_info_by(&mut parsed, &item, false);
            assert_eq!(spliced, parsed, "{extend}");
            let value: Value = serde_json::from_str(&spliced).unwrap();
            assert_eq!(value["size"], 40);
            assert_eq!(value["resource_name"], "vm \"1\"\n");
        }
    }

    /// The vectorised test agrees with a byte-by-byte one, for every byte at
    /// every position of strings across the sixteen-byte boundary.
    #[test]
    fn needs_escape_finds_every_byte_json_escapes() {
        let special = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        for len in [1, 15, 16, 17, 31, 32, 33, 40] {
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut text = vec![b'a'; len];
                    text[at] = byte;
                    assert_eq!(needs_escape(&text), special(byte), "{len} {at} {byte}");
                }
            }
        }
        assert!(!needs_escape(b""));
    }

    /// The six keys are written from the fields the table pairs them with.
    #[test]
    fn v1_extend_keys_come_from_their_fields() {
        assert_eq!(
            V1_EXTEND_INFO.map(|(_, field)| field),
            [
                Field::ResourceAz,
                Field::ResourceName,
                Field::ResourceType,
                Field::ImageType,
                Field::Dec,
                Field::ResourceSize
            ]
        );
    }

    #[test]
    fn items_render_the_fields_of_section_6_in_order() {
        let names = |fields: &[Field]| {
            fields
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            names(&V1_FIELDS),
            "id,checkpoint_id,name,description,status,resource_id,resource_type,created_at,\
             updated_at,protected_at,backup_data,replication_records,extend_info"
        );
        assert_eq!(
            names(&V3_FIELDS),
            "id,checkpoint_id,name,description,status,project_id,enterprise_project_id,\
             resource_id,resource_name,resource_type,resource_az,resource_size,image_type,\
             vault_id,provider_id,parent_id,created_at,updated_at,protected_at,expired_at,\
             extend_info,replication_records,children"
        );
    }
}
