//! The record model of SEMANTICS §1: one backup, strictly validated.

// Input reaches this module: no indexing that could panic on it.
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::quote::{Named, Quoted, Shown};
use crate::schema::{Field, V1_EXTEND_INFO};
use crate::timestamp::Timestamp;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in the order of their names' bytes.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value's wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses a wire name exactly (case-sensitive).
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The wire names joined for error messages.
            pub(crate) fn choices() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("{} is not one of {}", Quoted(&text), $name::choices()))
                })
            }
        }

        impl Decode for $name {
            fn decode(field: &str, value: Value) -> Result<$name, RecordError> {
                let text = String::decode(field, value)?;
                $name::parse(&text).ok_or_else(|| {
                    RecordError::new(field, format!("{} is not one of {}", Quoted(&text), $name::choices()))
                })
            }
        }
    };
}

string_enum! {
    /// A backup's status. The variants are declared in the byte order of
    /// their names, so the derived `Ord` is the order `sort=status` uses.
    Status {
        /// `available`
        Available = "available",
        /// `deleted`
        Deleted = "deleted",
        /// `deleting`
        Deleting = "deleting",
        /// `error`
        Error = "error",
        /// `protecting`
        Protecting = "protecting",
        /// `restoring`
        Restoring = "restoring",
        /// `waiting_delete`
        WaitingDelete = "waiting_delete",
        /// `waiting_protect`
        WaitingProtect = "waiting_protect",
        /// `waiting_restore`
        WaitingRestore = "waiting_restore",
    }
}

string_enum! {
    /// Whether a record is a backup or a replica made by replication.
    ImageType {
        /// `backup` (the default)
        Backup = "backup",
        /// `replication`
        Replication = "replication",
    }
}

/// `backup`, as SEMANTICS §1 defaults it.
impl Default for ImageType {
    fn default() -> ImageType {
        ImageType::Backup
    }
}

string_enum! {
    /// The state of one sharing of a backup with another project.
    MemberStatus {
        /// `accept`
        Accept = "accept",
        /// `pending`
        Pending = "pending",
        /// `reject`
        Reject = "reject",
    }
}

/// One sharing of a backup: the destination project and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The project the backup is shared to.
    pub dest_project_id: String,
    /// Whether that project accepted the sharing.
    pub status: MemberStatus,
}

/// What is wrong with one record: the field (a path such as
/// `members[1].status`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The offending field; empty when the record itself is not an object.
    pub field: String,
    /// Why the field was rejected.
    pub reason: String,
}

impl RecordError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> RecordError {
        RecordError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "field {}: {}", Named(&self.field), self.reason)
        }
    }
}

impl std::error::Error for RecordError {}

/// The longest id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 255;

/// Whether a stored `extend_info` has one of the keys v1 sets itself
/// (SEMANTICS §6).
pub(crate) fn v1_keys_overlap(extend_info: &Map<String, Value>) -> bool {
    V1_EXTEND_INFO
        .iter()
        .any(|(key, _)| extend_info.contains_key(*key))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(field: &str, expected: &str, got: &Value) -> RecordError {
    RecordError::new(
        field,
        format!("expected {expected}, got {}", type_name(got)),
    )
}

/// Decoding one field's JSON value into its type, consuming the value (an
/// opaque part is moved, not copied). `field` is the path errors name.
trait Decode: Sized {
    fn decode(field: &str, value: Value) -> Result<Self, RecordError>;
}

impl Decode for String {
    fn decode(field: &str, value: Value) -> Result<String, RecordError> {
        match value {
            Value::String(s) => Ok(s),
            other => Err(wrong_type(field, "a string", &other)),
        }
    }
}

/// Nullable fields: `null` is `None`.
impl<T: Decode> Decode for Option<T> {
    fn decode(field: &str, value: Value) -> Result<Option<T>, RecordError> {
        match value {
            Value::Null => Ok(None),
            v => T::decode(field, v).map(Some),
        }
    }
}

impl Decode for u64 {
    fn decode(field: &str, value: Value) -> Result<u64, RecordError> {
        value.as_u64().ok_or_else(|| {
            RecordError::new(
                field,
                format!(
                    "expected an integer >= 0, got {}",
                    Shown(&value.to_string())
                ),
            )
        })
    }
}

impl Decode for bool {
    fn decode(field: &str, value: Value) -> Result<bool, RecordError> {
        match value {
            Value::Bool(b) => Ok(b),
            other => Err(wrong_type(field, "a boolean", &other)),
        }
    }
}

impl Decode for Timestamp {
    fn decode(field: &str, value: Value) -> Result<Timestamp, RecordError> {
        let Value::String(s) = value else {
            return Err(wrong_type(field, "a timestamp string", &value));
        };
        Timestamp::parse(&s)
            .map_err(|e| RecordError::new(field, format!("invalid timestamp {}: {e}", Quoted(&s))))
    }
}

impl Decode for Map<String, Value> {
    fn decode(field: &str, value: Value) -> Result<Map<String, Value>, RecordError> {
        match value {
            Value::Object(m) => Ok(m),
            other => Err(wrong_type(field, "an object", &other)),
        }
    }
}

impl Decode for Vec<Value> {
    fn decode(field: &str, value: Value) -> Result<Vec<Value>, RecordError> {
        match value {
            Value::Array(a) => Ok(a),
            other => Err(wrong_type(field, "an array", &other)),
        }
    }
}

impl Decode for Vec<Member> {
    fn decode(field: &str, value: Value) -> Result<Vec<Member>, RecordError> {
        match value {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, m)| member_from_json(field, i, m))
                .collect(),
            other => Err(wrong_type(field, "an array", &other)),
        }
    }
}

/// A field that is absent: an error when it is required, else its default.
macro_rules! absent {
    ($field:ident, required) => {
        return Err(RecordError::new(
            stringify!($field),
            "missing required field",
        ))
    };
    ($field:ident, default) => {
        Default::default()
    };
    ($field:ident, $default:literal) => {
        String::from($default)
    };
}

/// The `Record` struct and its decoding, from the field table.
macro_rules! define_record {
    ($( {
        $variant:ident, $field:ident, $ty:ty, $presence:tt, $column:ident,
        [$($bitmap:ident)?], [$($order:ident)?], [$($substring:ident)?], [$($index:ident)?],
        [$($v1:literal)?], [$($v3:literal)?], [$($doc:literal)*]
    } )*) => {
        /// One backup record, as ingested (SEMANTICS §1).
        ///
        /// Construct records from JSON with [`Record::from_json`] (or
        /// serde), which applies every rule of §1 and names the offending
        /// field. A record built by hand is checked again when a store
        /// ingests it.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        pub struct Record {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl Record {
            /// Every field of a JSON object, in the table's order; the
            /// object holds only known fields.
            fn decode_fields(mut obj: Map<String, Value>) -> Result<Record, RecordError> {
                Ok(Record {
                    $( $field: match obj.remove(stringify!($field)) {
                        Some(v) => <$ty as Decode>::decode(stringify!($field), v)?,
                        None => absent!($field, $presence),
                    }, )*
                })
            }
        }
    };
}

crate::schema::record_fields!(define_record);

impl Record {
    /// Validates one JSON value as a record (SEMANTICS §1 and §9).
    ///
    /// # Errors
    ///
    /// A [`RecordError`] naming the first offending field: an unknown field,
    /// a missing required one, a wrong type (including `null` where the
    /// field is not nullable), a bad enum value or timestamp, an id that is
    /// empty or longer than 255 bytes, a malformed or duplicate member.
    ///
    /// ```
    /// use backdex::Record;
    /// let err = Record::from_json(&serde_json::json!({"id": "b1"})).unwrap_err();
    /// assert_eq!(err.field, "checkpoint_id");
    /// ```
    pub fn from_json(value: &Value) -> Result<Record, RecordError> {
        Record::from_value(value.clone())
    }

    /// [`Record::from_json`], consuming the value: its strings and opaque
    /// parts are moved into the record, not copied.
    ///
    /// # Errors
    ///
    /// As [`Record::from_json`].
    pub fn from_value(value: Value) -> Result<Record, RecordError> {
        let Value::Object(obj) = value else {
            return Err(RecordError::new(
                "",
                format!("a record must be an object, got {}", type_name(&value)),
            ));
        };
        if let Some(unknown) = obj.keys().find(|k| Field::named(k).is_none()) {
            return Err(RecordError::new(unknown.as_str(), "unknown field"));
        }
        let record = Record::decode_fields(obj)?;
        record.validate()?;
        Ok(record)
    }

    /// Checks the rules that the field types alone do not enforce: the id's
    /// length and one member entry per destination project.
    ///
    /// # Errors
    ///
    /// A [`RecordError`] on `id` or `members[i].dest_project_id`.
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.id.is_empty() || self.id.len() > MAX_ID_BYTES {
            return Err(RecordError::new(
                "id",
                format!(
                    "must be 1 to {MAX_ID_BYTES} bytes long, got {} bytes",
                    self.id.len()
                ),
            ));
        }
        for (i, m) in self.members.iter().enumerate() {
            if let Some(first) = self
                .members
                .iter()
                .take(i)
                .position(|p| p.dest_project_id == m.dest_project_id)
            {
                return Err(RecordError::new(
                    format!("members[{i}].dest_project_id"),
                    format!(
                        "duplicate dest_project_id {} (also in members[{first}])",
                        Quoted(&m.dest_project_id)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The addresses the `ip` filter matches: every entry of the
    /// comma-separated `backup_data.private_ip` and `backup_data.eip`
    /// strings, trimmed, that parses as an IP address, without repeats.
    pub fn ip_addresses(&self) -> Vec<std::net::IpAddr> {
        ip_addresses(&self.backup_data)
    }
}

pub(crate) fn ip_addresses(backup_data: &Map<String, Value>) -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    for key in ["private_ip", "eip"] {
        if let Some(Value::String(list)) = backup_data.get(key) {
            for ip in list.split(',').filter_map(|s| s.trim().parse().ok()) {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
    }
    out
}

fn member_from_json(members: &str, i: usize, value: Value) -> Result<Member, RecordError> {
    let path = |k: &str| format!("{members}[{i}]{k}");
    let Value::Object(mut obj) = value else {
        return Err(wrong_type(&path(""), "an object", &value));
    };
    if let Some(unknown) = obj
        .keys()
        .find(|k| *k != "dest_project_id" && *k != "status")
    {
        return Err(RecordError::new(
            path(&format!(".{unknown}")),
            "unknown field",
        ));
    }
    let dest = obj
        .remove("dest_project_id")
        .ok_or_else(|| RecordError::new(path(".dest_project_id"), "missing required field"))?;
    let status = obj
        .remove("status")
        .ok_or_else(|| RecordError::new(path(".status"), "missing required field"))?;
    let status = MemberStatus::decode(&path(".status"), status)?;
    Ok(Member {
        dest_project_id: String::decode(&path(".dest_project_id"), dest)?,
        status,
    })
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Record::from_value(Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "id": "b1", "checkpoint_id": "c1", "project_id": "p1", "name": "n",
            "status": "available", "resource_id": "r1", "resource_type": "OS::Nova::Server",
            "created_at": "2020-01-01T00:00:00", "updated_at": "2020-01-01T00:00:00"
        })
    }

    fn with(key: &str, v: Value) -> Value {
        let mut r = minimal();
        r[key] = v;
        r
    }

    fn without(key: &str) -> Value {
        let mut r = minimal();
        r.as_object_mut().unwrap().remove(key);
        r
    }

    fn err(v: Value) -> RecordError {
        Record::from_json(&v).expect_err("must be rejected")
    }

    #[test]
    fn defaults() {
        let r = Record::from_json(&minimal()).unwrap();
        assert_eq!(r.enterprise_project_id, "0");
        assert_eq!(r.image_type, ImageType::Backup);
        assert_eq!(r.resource_size, 0);
        assert!(!r.dec && r.members.is_empty() && r.extend_info.is_empty());
        assert_eq!((r.policy_id, r.protected_at), (None, None));
    }

    #[test]
    fn status_order_is_name_byte_order() {
        let mut names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        let declared = names.clone();
        names.sort();
        assert_eq!(names, declared);
        assert_eq!(Status::ALL.len(), 9);
    }

    #[test]
    fn each_validation_error_names_its_field() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!([1]), "", "must be an object"),
            (with("colour", json!("red")), "colour", "unknown field"),
            (without("id"), "id", "missing required field"),
            (
                without("created_at"),
                "created_at",
                "missing required field",
            ),
            (without("status"), "status", "missing required field"),
            (with("id", json!("")), "id", "1 to 255 bytes"),
            (with("id", json!("x".repeat(256))), "id", "got 256 bytes"),
            (
                with("id", json!(7)),
                "id",
                "expected a string, got a number",
            ),
            (with("name", json!(null)), "name", "got null"),
            (with("description", json!(null)), "description", "got null"),
            (
                with("dec", json!(null)),
                "dec",
                "expected a boolean, got null",
            ),
            (with("dec", json!("true")), "dec", "expected a boolean"),
            (
                with("status", json!("Available")),
                "status",
                "is not one of",
            ),
            (with("status", json!(1)), "status", "expected a string"),
            (
                with("image_type", json!("snapshot")),
                "image_type",
                "is not one of",
            ),
            (
                with("resource_size", json!(1.5)),
                "resource_size",
                "integer >= 0",
            ),
            (
                with("resource_size", json!(-1)),
                "resource_size",
                "integer >= 0",
            ),
            (
                with("resource_size", json!("5")),
                "resource_size",
                "integer >= 0",
            ),
            (
                with("resource_size", json!(null)),
                "resource_size",
                "integer >= 0",
            ),
            (
                with("created_at", json!("2020-01-01 00:00:00")),
                "created_at",
                "invalid timestamp",
            ),
            (
                with("updated_at", json!(1577836800)),
                "updated_at",
                "expected a timestamp string",
            ),
            (
                with("protected_at", json!("2020-02-30T00:00:00")),
                "protected_at",
                "no such calendar date",
            ),
            (
                with("expired_at", json!(false)),
                "expired_at",
                "expected a timestamp string",
            ),
            (
                with("policy_id", json!(3)),
                "policy_id",
                "expected a string",
            ),
            (
                with("extend_info", json!([])),
                "extend_info",
                "expected an object",
            ),
            (
                with("backup_data", json!(null)),
                "backup_data",
                "expected an object",
            ),
            (
                with("replication_records", json!({})),
                "replication_records",
                "expected an array",
            ),
            (
                with("children", json!("x")),
                "children",
                "expected an array",
            ),
            (with("members", json!({})), "members", "expected an array"),
            (
                with("members", json!(["p2"])),
                "members[0]",
                "expected an object",
            ),
            (
                with("members", json!([{"dest_project_id": "p2"}])),
                "members[0].status",
                "missing",
            ),
            (
                with("members", json!([{"status": "accept"}])),
                "members[0].dest_project_id",
                "missing",
            ),
            (
                with(
                    "members",
                    json!([{"dest_project_id": "p2", "status": "accepted"}]),
                ),
                "members[0].status",
                "is not one of accept, pending, reject",
            ),
            (
                with(
                    "members",
                    json!([{"dest_project_id": "p2", "status": "accept", "x": 1}]),
                ),
                "members[0].x",
                "unknown field",
            ),
            (
                with(
                    "members",
                    json!([{"dest_project_id": 2, "status": "accept"}]),
                ),
                "members[0].dest_project_id",
                "expected a string",
            ),
            (
                with(
                    "members",
                    json!([
                        {"dest_project_id": "p2", "status": "accept"},
                        {"dest_project_id": "p3", "status": "accept"},
                        {"dest_project_id": "p2", "status": "reject"}
                    ]),
                ),
                "members[2].dest_project_id",
                "duplicate dest_project_id \"p2\" (also in members[0])",
            ),
        ];
        for (value, field, reason) in cases {
            let e = err(value.clone());
            assert_eq!(e.field, field, "{value}: {e}");
            assert!(
                e.reason.contains(reason),
                "{value}: {e:?} should say {reason:?}"
            );
        }
    }

    #[test]
    fn nullable_fields_accept_null_and_strings_may_be_empty() {
        let mut v = minimal();
        for k in [
            "policy_id",
            "vault_id",
            "provider_id",
            "parent_id",
            "protected_at",
            "expired_at",
        ] {
            v[k] = Value::Null;
        }
        for k in [
            "name",
            "checkpoint_id",
            "project_id",
            "resource_id",
            "resource_type",
            "description",
        ] {
            v[k] = json!("");
        }
        let r = Record::from_json(&v).unwrap();
        assert_eq!(r.name, "");
        assert_eq!(r.vault_id, None);
    }

    #[test]
    fn member_to_own_project_is_valid() {
        let r = Record::from_json(&with(
            "members",
            json!([{"dest_project_id": "p1", "status": "pending"}]),
        ));
        assert_eq!(r.unwrap().members[0].status, MemberStatus::Pending);
    }

    #[test]
    fn serde_round_trip() {
        let mut v = minimal();
        v["protected_at"] = json!("2020-01-01T08:00:00.5+08:00");
        v["extend_info"] = json!({"z": 1, "a": [1, 2]});
        let r: Record = serde_json::from_value(v).unwrap();
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["protected_at"], "2020-01-01T00:00:00.500000");
        assert_eq!(back["created_at"], "2020-01-01T00:00:00.000000");
        assert_eq!(back["extend_info"], json!({"z": 1, "a": [1, 2]}));
        let again: Record = serde_json::from_value(back).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn ip_addresses_are_parsed_trimmed_and_deduplicated() {
        let r = Record::from_json(&with(
            "backup_data",
            json!({"private_ip": "192.168.0.1, 10.0.0.1,bogus,", "eip": "10.0.0.1 ,2001:DB8::1"}),
        ))
        .unwrap();
        let ips: Vec<String> = r.ip_addresses().iter().map(|ip| ip.to_string()).collect();
        assert_eq!(ips, ["192.168.0.1", "10.0.0.1", "2001:db8::1"]);
        let r = Record::from_json(&with("backup_data", json!({"private_ip": 17, "eip": null})))
            .unwrap();
        assert!(r.ip_addresses().is_empty());
    }
}
