//! The oracle: a deliberately naive reference store.
//!
//! A `Vec` of records, changed by linear scans, with no index at all. It
//! follows the same batch rules as [`crate::Store`] (they are shared, in
//! `batch`), so any difference between the two in what a query answers is a
//! bug in an index, a plan or an executor. Other implementations can use it
//! as their property-test oracle too.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::api::{parse_request, Response};
use crate::batch;
use crate::error::ChangeError;
use crate::query::{
    Api, Direction, EnterpriseProject, OwnType, Query, QueryError, Scope, SortKey,
    DEFAULT_MAX_LIMIT,
};
use crate::record::{MemberStatus, Record};
use crate::store::Store;

/// The reference path [`crate::StoreBuilder`] is checked against: each
/// non-blank line of JSON Lines decoded by [`Record::from_value`], then all
/// of them applied as one [`crate::Store::upsert`] batch. Errors read as a
/// [`crate::LoadError`] shows them (`line N: reason`).
///
/// # Errors
///
/// The first line that is not JSON or not a record, else the batch's
/// first fault, with its line.
pub fn load_lines(text: &[u8]) -> Result<Store, String> {
    let (mut records, mut lines) = (Vec::new(), Vec::new());
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| format!("line {}: not valid JSON: {e}", i + 1))?;
        records.push(Record::from_value(value).map_err(|e| format!("line {}: {e}", i + 1))?);
        lines.push(i + 1);
    }
    let mut store = Store::new();
    store.upsert(&records).map_err(|e| match &e {
        ChangeError::InvalidRecord { index, .. } => {
            format!("line {}: {e}", lines.get(*index).copied().unwrap_or(0))
        }
        _ => e.to_string(),
    })?;
    Ok(store)
}

/// A reference store: records in insertion order, nothing else.
///
/// ```
/// use backdex::oracle::Oracle;
/// let mut oracle = Oracle::new();
/// assert_eq!(oracle.delete(&["nope"]).unwrap_err().to_string(), "ids[0]: no record has id \"nope\"");
/// assert!(oracle.records().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Oracle {
    records: Vec<Record>,
}

impl Oracle {
    /// An empty oracle.
    pub fn new() -> Oracle {
        Oracle::default()
    }

    /// Every record, in insertion order (a replaced record keeps its place).
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The record with this id.
    pub fn get(&self, id: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.id == id)
    }

    /// Inserts or replaces by id, atomically.
    ///
    /// # Errors
    ///
    /// As [`crate::Store::upsert`].
    pub fn upsert(&mut self, records: &[Record]) -> Result<usize, ChangeError> {
        batch::check_upsert(records)?;
        // Positions of the ids, found afresh per batch so that loading a
        // large batch is not quadratic; the oracle keeps no index.
        let mut at: HashMap<String, usize> = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        for record in records {
            match at.get(&record.id) {
                Some(&i) => self.records[i] = record.clone(),
                None => {
                    at.insert(record.id.clone(), self.records.len());
                    self.records.push(record.clone());
                }
            }
        }
        Ok(records.len())
    }

    /// Removes by id, atomically.
    ///
    /// # Errors
    ///
    /// As [`crate::Store::delete`].
    pub fn delete<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<usize, ChangeError> {
        let present: HashSet<&str> = self.records.iter().map(|r| r.id.as_str()).collect();
        batch::check_delete(ids, |id| present.contains(id).then_some(()))?;
        let gone: HashSet<&str> = ids.iter().map(AsRef::as_ref).collect();
        self.records.retain(|r| !gone.contains(r.id.as_str()));
        Ok(ids.len())
    }
}

/// Answering requests by scanning every record (SEMANTICS §2-§6), with the
/// same parser as the store, so that only the answers differ if anything;
/// bodies are written by `serde_json` from the records, not by the store's
/// renderer, so that a renderer bug shows up as a disagreement.
impl Oracle {
    /// Answers one request as [`crate::Store::handle`] does.
    pub fn handle(&self, path: &str, query: &str, scope: &Scope) -> Response {
        let answer = parse_request(path, query, scope, DEFAULT_MAX_LIMIT)
            .and_then(|q| self.answer(scope, &q));
        match answer {
            Ok(body) => Response {
                status: 200,
                body: body.to_string(),
            },
            Err(e) => Response {
                status: e.status(),
                body: json!({"error": {"code": e.code(), "message": e.to_string()}}).to_string(),
            },
        }
    }

    fn answer(&self, scope: &Scope, q: &Query) -> Result<Value, QueryError> {
        let me = scope.project_id.as_str();
        let f = &q.filter;
        let granted = |r: &Record| {
            scope
                .granted_eps
                .as_ref()
                .is_none_or(|g| g.contains(&r.enterprise_project_id))
        };
        let shared_to = |r: &Record, dest: &str, status: Option<MemberStatus>| {
            r.members
                .iter()
                .any(|m| m.dest_project_id == dest && status.is_none_or(|s| m.status == s))
        };
        let own = |r: &Record| r.project_id == me;
        let visible = |r: &Record| {
            granted(r)
                && match q.api {
                    Api::V1List | Api::V1Count | Api::V3List if q.all_tenants => true,
                    Api::V1List | Api::V1Count => own(r),
                    Api::V3List => match q.own_type {
                        OwnType::Private => own(r),
                        OwnType::Shared => !own(r) && shared_to(r, me, None),
                        OwnType::AllGranted => own(r) || shared_to(r, me, None),
                    },
                    Api::ShareCount if q.share_to_me => shared_to(r, me, None),
                    Api::ShareCount => own(r),
                }
        };
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let passes = |r: &Record| {
            (f.status.is_empty() || f.status.contains(&r.status))
                && f.name.as_deref().is_none_or(|n| r.name.contains(n))
                && f.resource_name
                    .as_deref()
                    .is_none_or(|n| r.resource_name.contains(n))
                && eq(&f.resource_az, &r.resource_az)
                && eq(&f.resource_id, &r.resource_id)
                && eq(&f.checkpoint_id, &r.checkpoint_id)
                && eq(&f.resource_type, &r.resource_type)
                && f.image_type.is_none_or(|t| t == r.image_type)
                && f.policy_id
                    .as_ref()
                    .is_none_or(|p| r.policy_id.as_ref() == Some(p))
                && f.vault_id
                    .as_ref()
                    .is_none_or(|v| r.vault_id.as_ref() == Some(v))
                && f.parent_id
                    .as_ref()
                    .is_none_or(|p| r.parent_id.as_ref() == Some(p))
                && f.dec.is_none_or(|d| d == r.dec)
                && f.ip.is_none_or(|ip| r.ip_addresses().contains(&ip))
                && f.start_time.is_none_or(|t| r.created_at >= t)
                && f.end_time.is_none_or(|t| r.created_at <= t)
                && match (&f.member_status, q.api) {
                    (Some(s), Api::V3List) if !q.all_tenants => {
                        (q.own_type == OwnType::AllGranted && own(r))
                            || (!own(r) && shared_to(r, me, Some(*s)))
                    }
                    _ => true,
                }
                && match &f.enterprise_project {
                    Some(EnterpriseProject::Id(ep)) => &r.enterprise_project_id == ep,
                    Some(EnterpriseProject::AllGranted) | None => true,
                }
                && eq(&f.backup_id, &r.id)
                && eq(&f.from_project_id, &r.project_id)
        };
        let matching: Vec<&Record> = self
            .records
            .iter()
            .filter(|r| visible(r) && passes(r))
            .collect();

        match q.api {
            Api::V1Count => Ok(json!({"count": matching.len()})),
            Api::ShareCount => {
                // One entry per (backup, destination).
                let entries = matching
                    .iter()
                    .flat_map(|r| r.members.iter())
                    .filter(|m| !q.share_to_me || m.dest_project_id == me)
                    .filter(|m| {
                        f.to_project_id
                            .as_deref()
                            .is_none_or(|to| m.dest_project_id == to)
                    })
                    .count();
                Ok(json!({"count": entries}))
            }
            Api::V1List | Api::V3List => {
                let order = q.sort.effective();
                let cmp = |a: &Record, b: &Record| compare(&order, a, b);
                let marker = match &q.page.marker {
                    None => None,
                    Some(m) => Some(
                        self.records
                            .iter()
                            .find(|r| &r.id == m && visible(r))
                            .ok_or_else(|| QueryError::MarkerNotFound { marker: m.clone() })?,
                    ),
                };
                let mut sorted = matching.clone();
                sorted.sort_by(|a, b| cmp(a, b));
                let page = sorted
                    .iter()
                    .filter(|r| marker.is_none_or(|m| cmp(r, m) == Ordering::Greater))
                    .skip(q.page.offset)
                    .take(q.page.limit);
                Ok(if q.api == Api::V1List {
                    json!({"checkpoint_items": page.map(|r| checkpoint_item(r)).collect::<Vec<_>>()})
                } else {
                    json!({
                        "backups": page.map(|r| backup_resp(r)).collect::<Vec<_>>(),
                        "count": matching.len(),
                    })
                })
            }
        }
    }
}

/// v1 `CheckpointItem` (§6): `extend_info` with six keys set from the
/// record.
fn checkpoint_item(r: &Record) -> Value {
    let mut extend_info = r.extend_info.clone();
    extend_info.insert("resource_az".into(), r.resource_az.clone().into());
    extend_info.insert("resource_name".into(), r.resource_name.clone().into());
    extend_info.insert("resource_type".into(), r.resource_type.clone().into());
    extend_info.insert("image_type".into(), r.image_type.as_str().into());
    extend_info.insert("dec".into(), r.dec.into());
    extend_info.insert("size".into(), r.resource_size.into());
    json!({
        "id": r.id,
        "checkpoint_id": r.checkpoint_id,
        "name": r.name,
        "description": r.description,
        "status": r.status.as_str(),
        "resource_id": r.resource_id,
        "resource_type": r.resource_type,
        "created_at": r.created_at.to_string(),
        "updated_at": r.updated_at.to_string(),
        "protected_at": r.protected_at.map(|t| t.to_string()),
        "backup_data": r.backup_data,
        "replication_records": r.replication_records,
        "extend_info": extend_info,
    })
}

/// v3 `BackupResp` (§6).
fn backup_resp(r: &Record) -> Value {
    json!({
        "id": r.id,
        "checkpoint_id": r.checkpoint_id,
        "name": r.name,
        "description": r.description,
        "status": r.status.as_str(),
        "project_id": r.project_id,
        "enterprise_project_id": r.enterprise_project_id,
        "resource_id": r.resource_id,
        "resource_name": r.resource_name,
        "resource_type": r.resource_type,
        "resource_az": r.resource_az,
        "resource_size": r.resource_size,
        "image_type": r.image_type.as_str(),
        "vault_id": r.vault_id,
        "provider_id": r.provider_id,
        "parent_id": r.parent_id,
        "created_at": r.created_at.to_string(),
        "updated_at": r.updated_at.to_string(),
        "protected_at": r.protected_at.map(|t| t.to_string()),
        "expired_at": r.expired_at.map(|t| t.to_string()),
        "extend_info": r.extend_info,
        "replication_records": r.replication_records,
        "children": r.children,
    })
}

/// §4's order on records: each key in its direction; strings by bytes,
/// status by name, a null `protected_at` below every timestamp.
fn compare(order: &[(SortKey, Direction)], a: &Record, b: &Record) -> Ordering {
    for &(key, dir) in order {
        let ord = match key {
            SortKey::CreatedAt => a.created_at.cmp(&b.created_at),
            SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
            SortKey::Name => a.name.as_bytes().cmp(b.name.as_bytes()),
            SortKey::Status => a.status.as_str().cmp(b.status.as_str()),
            SortKey::ProtectedAt => a.protected_at.cmp(&b.protected_at),
            SortKey::Id => a.id.as_bytes().cmp(b.id.as_bytes()),
        };
        if ord != Ordering::Equal {
            return dir.apply(ord);
        }
    }
    Ordering::Equal
}
