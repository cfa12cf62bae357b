//! Rows of the followed tables, as the replication stream and the initial
//! copy deliver them (pgoutput's text format), turned into the fields of a
//! record (SEMANTICS §1). The library validates the record; this module
//! only translates PostgreSQL's text forms into the JSON a record is read
//! from.

use std::fmt;

use pg_walstream::{ColumnValue, RowData};
use serde_json::{Map, Value};

/// The followed tables.
pub const BACKUPS: &str = "backups";
pub const MEMBERS: &str = "backup_members";

/// How a column of `backups` is written in text, and read into JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Boolean,
    Timestamp,
    Json,
}

/// The columns of `backups` (server/sql/schema.sql), one per field of
/// §1 but `members`. Other columns a database may add are not read.
const BACKUP_COLUMNS: [(&str, Kind); 26] = [
    ("id", Kind::Text),
    ("checkpoint_id", Kind::Text),
    ("project_id", Kind::Text),
    ("enterprise_project_id", Kind::Text),
    ("name", Kind::Text),
    ("description", Kind::Text),
    ("status", Kind::Text),
    ("resource_id", Kind::Text),
    ("resource_name", Kind::Text),
    ("resource_type", Kind::Text),
    ("resource_az", Kind::Text),
    ("resource_size", Kind::Integer),
    ("image_type", Kind::Text),
    ("policy_id", Kind::Text),
    ("vault_id", Kind::Text),
    ("provider_id", Kind::Text),
    ("parent_id", Kind::Text),
    ("dec", Kind::Boolean),
    ("created_at", Kind::Timestamp),
    ("updated_at", Kind::Timestamp),
    ("protected_at", Kind::Timestamp),
    ("expired_at", Kind::Timestamp),
    ("extend_info", Kind::Json),
    ("backup_data", Kind::Json),
    ("replication_records", Kind::Json),
    ("children", Kind::Json),
];

/// How many columns of `backups` a record is read from: a row carrying
/// that many fields carries them all.
pub const BACKUP_COLUMN_COUNT: usize = BACKUP_COLUMNS.len();

/// Why a row could not be read as a record's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError(pub String);

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The text of a column, `None` for SQL NULL; an error for a value that
/// is not UTF-8 text.
fn text<'a>(row: &'a RowData, column: &str) -> Result<Option<&'a str>, RowError> {
    match row.get(column) {
        None | Some(ColumnValue::Null) => Ok(None),
        Some(value) => value
            .as_str()
            .map(Some)
            .ok_or_else(|| RowError(format!("column {column}: not UTF-8 text"))),
    }
}

/// A key column's text: present, not null.
pub fn key(row: &RowData, column: &str) -> Result<String, RowError> {
    text(row, column)?
        .map(str::to_owned)
        .ok_or_else(|| RowError(format!("column {column} is null or missing")))
}

/// The fields of a `backups` row that the row carries: a column the
/// stream left out (an unchanged TOASTed value of an update) is absent
/// from the map, for the caller to keep from the record's last version.
pub fn backup_fields(row: &RowData) -> Result<Map<String, Value>, RowError> {
    let mut fields = Map::new();
    for (column, kind) in BACKUP_COLUMNS {
        let Some(value) = row.get(column) else {
            continue;
        };
        let value = match (value, kind) {
            (ColumnValue::Null, _) => Value::Null,
            (value, kind) => {
                let text = value
                    .as_str()
                    .ok_or_else(|| RowError(format!("column {column}: not UTF-8 text")))?;
                json_of(column, kind, text)?
            }
        };
        fields.insert(column.to_owned(), value);
    }
    Ok(fields)
}

fn json_of(column: &str, kind: Kind, text: &str) -> Result<Value, RowError> {
    Ok(match kind {
        Kind::Text => Value::String(text.to_owned()),
        Kind::Integer => text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| RowError(format!("column {column}: {text:?} is not an integer")))?,
        Kind::Boolean => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => {
                return Err(RowError(format!(
                    "column {column}: {text:?} is not a boolean"
                )))
            }
        },
        // PostgreSQL writes `2026-01-02 03:04:05.5`; a record reads
        // `2026-01-02T03:04:05.5`. Anything else (`infinity`, a BC date, a
        // zone) is left for the record's own check to refuse by name.
        Kind::Timestamp => Value::String(text.replacen(' ', "T", 1)),
        Kind::Json => serde_json::from_str(text)
            .map_err(|e| RowError(format!("column {column}: not JSON: {e}")))?,
    })
}

/// A `backup_members` row: the backup, the destination project and, when
/// the row carries it (not in a delete's key), the status.
pub struct MemberRow {
    pub backup_id: String,
    pub dest_project_id: String,
    pub status: Option<String>,
}

pub fn member(row: &RowData) -> Result<MemberRow, RowError> {
    Ok(MemberRow {
        backup_id: key(row, "backup_id")?,
        dest_project_id: key(row, "dest_project_id")?,
        status: text(row, "status")?.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(columns: &[(&str, Option<&str>)]) -> RowData {
        let mut row = RowData::new();
        for (name, value) in columns {
            row.push(
                (*name).into(),
                value.map_or(ColumnValue::Null, ColumnValue::text),
            );
        }
        row
    }

    #[test]
    fn text_forms_become_the_records_json() {
        let fields = backup_fields(&row(&[
            ("id", Some("b1")),
            ("resource_size", Some("40")),
            ("dec", Some("t")),
            ("created_at", Some("2026-01-02 03:04:05.5")),
            ("protected_at", None),
            ("extend_info", Some(r#"{"a": [1, 2]}"#)),
            ("not_a_field", Some("x")),
        ]))
        .expect("a valid row");
        assert_eq!(
            Value::Object(fields),
            serde_json::json!({
                "id": "b1", "resource_size": 40, "dec": true,
                "created_at": "2026-01-02T03:04:05.5", "protected_at": null,
                "extend_info": {"a": [1, 2]}
            })
        );
    }

    #[test]
    fn unreadable_values_name_their_column() {
        let bad = |column: &str, value: &str| {
            backup_fields(&row(&[(column, Some(value))]))
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            bad("resource_size", "x"),
            "column resource_size: \"x\" is not an integer"
        );
        assert_eq!(bad("dec", "yes"), "column dec: \"yes\" is not a boolean");
        assert!(bad("children", "[").starts_with("column children: not JSON"));
    }

    #[test]
    fn member_rows_and_their_keys() {
        let m = member(&row(&[
            ("backup_id", Some("b1")),
            ("dest_project_id", Some("p2")),
        ]))
        .expect("a key");
        assert_eq!(
            (m.backup_id.as_str(), m.dest_project_id.as_str(), m.status),
            ("b1", "p2", None)
        );
        assert!(member(&row(&[("backup_id", Some("b1"))])).is_err());
    }
}
