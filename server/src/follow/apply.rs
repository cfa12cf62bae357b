//! The followed transactions folded into record changes, and published.
//!
//! A record is one `backups` row and its `backup_members` rows. A change
//! to either is a change to the record: the follower keeps, for every
//! record a transaction touched, a [`Draft`] (its fields as JSON and its
//! members), starting from the record's last known version. A transaction
//! goes into the pending batch only at its commit, so one cut off by a
//! lost connection changes nothing; the batch is published as one engine
//! version, several transactions together when they arrive faster than
//! versions can be published, never part of one.

use std::collections::{BTreeMap, HashMap};

use backdex::{Member, Record, Store};
use serde_json::{Map, Value};

use super::row::{self, RowError};
use pg_walstream::RowData;

/// A record being changed: its fields (all but `members`) and its
/// members, destination project → status.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    fields: Map<String, Value>,
    members: BTreeMap<String, String>,
}

impl Draft {
    /// A draft from a row's fields and its members.
    pub fn new(fields: Map<String, Value>, members: BTreeMap<String, String>) -> Draft {
        Draft { fields, members }
    }

    /// Its members, destination project → status.
    /// The draft's tenant, if its fields name one.
    pub fn project_id(&self) -> Option<&str> {
        self.fields.get("project_id").and_then(Value::as_str)
    }

    pub fn members_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.members
    }

    /// The draft of a stored record.
    pub fn of(record: &Record) -> Draft {
        let mut fields = match serde_json::to_value(record) {
            Ok(Value::Object(fields)) => fields,
            _ => Map::new(),
        };
        fields.remove("members");
        let members = member_map(&record.members);
        Draft { fields, members }
    }

    /// The record, checked by the library's own rules; the draft back
    /// with the reason (the rule's message) when they refuse it. (Moves the fields into the
    /// record's JSON: a clone of every field per change was a large part
    /// of the follower's allocations.)
    pub fn into_record(mut self) -> Result<Record, (Draft, String)> {
        self.fields
            .insert("members".to_owned(), self.members_json());
        let json = Value::Object(self.fields);
        match Record::from_json(&json) {
            Ok(record) => Ok(record),
            Err(e) => {
                let mut fields = match json {
                    Value::Object(fields) => fields,
                    _ => Map::new(),
                };
                fields.remove("members");
                let members = self.members;
                Err((Draft { fields, members }, e.to_string()))
            }
        }
    }

    fn members_json(&self) -> Value {
        Value::Array(
            self.members
                .iter()
                .map(
                    |(dest, status)| serde_json::json!({"dest_project_id": dest, "status": status}),
                )
                .collect(),
        )
    }

    /// The record, checked by the library's own rules.
    pub fn record(&self) -> Result<Record, backdex::RecordError> {
        let mut json = self.fields.clone();
        json.insert("members".to_owned(), self.members_json());
        Record::from_json(&Value::Object(json))
    }
}

/// A record's members as a draft holds them: destination project → status.
fn member_map(members: &[Member]) -> BTreeMap<String, String> {
    members
        .iter()
        .map(|m| (m.dest_project_id.clone(), m.status.as_str().to_owned()))
        .collect()
}

/// Records changed and not yet published: id → the latest draft (`None`:
/// deleted). `cleared`: every record before these changes is gone (a
/// `TRUNCATE backups`).
#[derive(Debug, Default)]
pub struct Changes {
    pub records: HashMap<String, Option<Draft>>,
    pub cleared: bool,
}

impl Changes {
    /// Folds later changes in: theirs win.
    pub fn extend(&mut self, later: Changes) {
        if later.cleared {
            self.records.clear();
            self.cleared = true;
        }
        self.records.extend(later.records);
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && !self.cleared
    }

    /// Keeps only what `holds` a record's vshard: a record of another
    /// vshard becomes a delete (a no-op unless the store has it).
    pub fn retain_held(&mut self, holds: impl Fn(u32) -> bool) {
        for state in self.records.values_mut() {
            let held = state
                .as_ref()
                .and_then(Draft::project_id)
                .is_none_or(|p| holds(backdex::vshard_of(p)));
            if !held {
                *state = None;
            }
        }
    }
}

/// Why a row was not applied: the table, its key, the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub table: &'static str,
    pub key: String,
    pub reason: String,
}

/// Where the last version of a record is looked up, newest first: the
/// transaction, the pending batch, the records set aside for breaking the
/// rules, the published store.
pub struct Layers<'a> {
    pub batch: &'a Changes,
    pub quarantine: &'a HashMap<String, Draft>,
    pub store: &'a Store,
    /// The store holds only some tenants (a cluster node): a member of a
    /// backup it does not know belongs to another node's, not to no one.
    pub partial: bool,
}

/// One transaction's changes, applied in order as its rows arrive.
#[derive(Debug, Default)]
pub struct Transaction {
    pub changes: Changes,
    pub skipped: Vec<Skipped>,
}

impl Transaction {
    /// The record's last version, newest layer first, read by `draft`
    /// where a draft holds it and by `stored` where only the store does;
    /// `None` when it has none (never stored, deleted, or cleared).
    fn last_version<R>(
        &self,
        id: &str,
        layers: &Layers<'_>,
        draft: impl Fn(&Draft) -> R,
        stored: impl FnOnce(Record) -> R,
    ) -> Option<R> {
        if let Some(state) = self.changes.records.get(id) {
            return state.as_ref().map(draft);
        }
        if self.changes.cleared {
            return None;
        }
        if let Some(state) = layers.batch.records.get(id) {
            return state.as_ref().map(draft);
        }
        if layers.batch.cleared {
            return None;
        }
        if let Some(d) = layers.quarantine.get(id) {
            return Some(draft(d));
        }
        layers.store.get(id).map(stored)
    }

    fn current(&self, id: &str, layers: &Layers<'_>) -> Option<Draft> {
        self.last_version(id, layers, Draft::clone, |r| Draft::of(&r))
    }

    /// The members of the record's last version, without the rest of it
    /// (a row that carries every column replaces all its fields).
    fn members_of(&self, id: &str, layers: &Layers<'_>) -> BTreeMap<String, String> {
        self.last_version(
            id,
            layers,
            |d| d.members.clone(),
            |r| member_map(&r.members),
        )
        .unwrap_or_default()
    }

    fn skip(&mut self, table: &'static str, key: String, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            table,
            key,
            reason: reason.into(),
        });
    }

    /// An inserted or updated `backups` row; `old` is the old key's row of
    /// an update that changed the key.
    pub fn backup(&mut self, new: &RowData, old: Option<&RowData>, layers: &Layers<'_>) {
        let id = match row::key(new, "id") {
            Ok(id) => id,
            Err(e) => return self.skip(row::BACKUPS, "?".into(), e.0),
        };
        if let Some(old_id) = old.and_then(|o| row::key(o, "id").ok()) {
            if old_id != id {
                // The record is renamed: its members move with it.
                let moved = self.current(&old_id, layers);
                self.changes.records.insert(old_id, None);
                if let Some(moved) = moved {
                    self.changes.records.insert(id.clone(), Some(moved));
                }
            }
        }
        match row::backup_fields(new) {
            Ok(fields) if fields.len() == row::BACKUP_COLUMN_COUNT => {
                // The row carries every column: of the last version, only
                // the members are kept.
                let members = self.members_of(&id, layers);
                self.changes
                    .records
                    .insert(id, Some(Draft { fields, members }));
            }
            Ok(fields) => {
                let mut draft = self.current(&id, layers).unwrap_or(Draft {
                    fields: Map::new(),
                    members: BTreeMap::new(),
                });
                // A column the row does not carry (an unchanged TOASTed
                // value) keeps its last value.
                draft.fields.extend(fields);
                self.changes.records.insert(id, Some(draft));
            }
            Err(RowError(reason)) => {
                self.skip(row::BACKUPS, id.clone(), reason);
                self.changes.records.insert(id, None);
            }
        }
    }

    /// A deleted `backups` row (its key).
    pub fn backup_deleted(&mut self, old: &RowData) {
        match row::key(old, "id") {
            Ok(id) => {
                self.changes.records.insert(id, None);
            }
            Err(e) => self.skip(row::BACKUPS, "?".into(), e.0),
        }
    }

    /// An inserted or updated `backup_members` row; `old` is the old key's
    /// row of an update that changed the key.
    pub fn member(&mut self, new: &RowData, old: Option<&RowData>, layers: &Layers<'_>) {
        if let Some(old) = old {
            self.member_deleted(old, layers);
        }
        let m = match row::member(new) {
            Ok(m) => m,
            Err(e) => return self.skip(row::MEMBERS, "?".into(), e.0),
        };
        let key = format!("({}, {})", m.backup_id, m.dest_project_id);
        let Some(status) = m.status else {
            return self.skip(row::MEMBERS, key, "column status is null or missing");
        };
        match self.current(&m.backup_id, layers) {
            Some(mut draft) => {
                draft.members.insert(m.dest_project_id, status);
                self.changes.records.insert(m.backup_id, Some(draft));
            }
            None if layers.partial => {}
            None => self.skip(row::MEMBERS, key, format!("no backup {:?}", m.backup_id)),
        }
    }

    /// A deleted `backup_members` row (its key). A member of a backup
    /// deleted already (`ON DELETE CASCADE`) needs nothing.
    pub fn member_deleted(&mut self, old: &RowData, layers: &Layers<'_>) {
        let m = match row::member(old) {
            Ok(m) => m,
            Err(e) => return self.skip(row::MEMBERS, "?".into(), e.0),
        };
        if let Some(mut draft) = self.current(&m.backup_id, layers) {
            if draft.members.remove(&m.dest_project_id).is_some() {
                self.changes.records.insert(m.backup_id, Some(draft));
            }
        }
    }

    /// `TRUNCATE` of the followed tables.
    pub fn truncate(&mut self, tables: &[&str], layers: &Layers<'_>) {
        if tables.contains(&row::BACKUPS) {
            self.changes.records.clear();
            self.changes.cleared = true;
        } else if tables.contains(&row::MEMBERS) {
            // Every record loses its members: those this transaction or
            // the batch changed, and every stored one.
            let mut ids: Vec<String> = self.changes.records.keys().cloned().collect();
            ids.extend(layers.batch.records.keys().cloned());
            ids.extend(layers.quarantine.keys().cloned());
            if !self.changes.cleared && !layers.batch.cleared {
                ids.extend(layers.store.records().into_iter().map(|r| r.id));
            }
            for id in ids {
                if let Some(mut draft) = self.current(&id, layers) {
                    if !draft.members.is_empty() {
                        draft.members.clear();
                        self.changes.records.insert(id, Some(draft));
                    }
                }
            }
        }
    }
}

/// A batch turned into the store's changes: records to upsert, ids to
/// delete (each known to the store), the drafts that break the record
/// rules (set aside, and not served), and whether to clear the store first.
pub struct Plan {
    pub upserts: Vec<Record>,
    pub deletes: Vec<String>,
    pub refused: Vec<(String, Draft, String)>,
    pub cleared: bool,
}

impl Plan {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty() && !self.cleared
    }
}

/// Checks every draft of the batch by the record rules.
pub fn plan(batch: Changes, quarantine: &mut HashMap<String, Draft>) -> Plan {
    let mut plan = Plan {
        upserts: Vec::new(),
        deletes: Vec::new(),
        refused: Vec::new(),
        cleared: batch.cleared,
    };
    if batch.cleared {
        quarantine.clear();
    }
    for (id, state) in batch.records {
        match state.map(Draft::into_record) {
            Some(Ok(record)) if record.id == id => {
                quarantine.remove(&id);
                plan.upserts.push(record);
            }
            Some(Ok(record)) => {
                let reason = format!("field id: {:?} is not its key", record.id);
                plan.refused.push((id.clone(), Draft::of(&record), reason));
                plan.deletes.push(id);
            }
            Some(Err((draft, reason))) => {
                plan.refused.push((id.clone(), draft, reason));
                plan.deletes.push(id);
            }
            None => {
                quarantine.remove(&id);
                plan.deletes.push(id);
            }
        }
    }
    for (id, draft, _) in &plan.refused {
        quarantine.insert(id.clone(), draft.clone());
    }
    plan
}

/// Applies a plan to a store (inside one engine version change).
///
/// # Errors
///
/// The store's, for a batch it refuses (its capacity exceeded).
pub fn apply(plan: &Plan, store: &mut Store) -> Result<(), backdex::ChangeError> {
    if plan.cleared {
        let ids: Vec<String> = store.records().into_iter().map(|r| r.id).collect();
        store.delete(&ids)?;
    }
    let deletes: Vec<&str> = plan
        .deletes
        .iter()
        .map(String::as_str)
        .filter(|id| store.contains(id))
        .collect();
    store.delete(&deletes)?;
    store.upsert(&plan.upserts)?;
    Ok(())
}
