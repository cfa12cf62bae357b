//! Loading vshards from PostgreSQL: a temporary replication slot exports
//! a snapshot at its consistent point, the rows of the vshards are read in
//! one `REPEATABLE READ` transaction on that snapshot (by the index on
//! `backdex_vshard(project_id)`, server/sql/schema.sql), and the records
//! join the followed store at exactly that point (cluster::holdings).
//! PostgreSQL reads only the loaded vshards' rows; the temporary slot is
//! gone when its connection closes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pg_walstream::{
    ColumnValue, LogicalReplicationStream, ReplicationSlotOptions, ReplicationStreamConfig,
    RowData, StreamingMode,
};
use tokio_postgres::SimpleQueryMessage;

use super::holdings::{Holdings, Loaded};
use crate::follow::{replication_url, row, Copied};
use crate::status::{Lsn, Status};

/// What a load read: the rows copied and those refused or skipped.
#[derive(Debug)]
pub struct LoadReport {
    pub at: Lsn,
    pub records: usize,
    pub refused: usize,
}

/// How long a ready load may wait for the follower to reach it.
const MERGE_PATIENCE: Duration = Duration::from_secs(30);

/// Copies `vshards` and hands them to the follower through `holdings`'
/// gate, waiting until they are in the store (held, not yet taken over).
///
/// # Errors
///
/// What failed (connecting, the slot, the copy, or a follower that did not
/// reach the copy's position); the gate is then open again and nothing of
/// the load is held.
pub async fn load(
    url: &str,
    publication: &str,
    node: &str,
    vshards: &[u32],
    holdings: &Arc<Holdings>,
    status: &Status,
) -> Result<LoadReport, String> {
    if !holdings.begin_load() {
        return Err("another load is under way".into());
    }
    let copied = copy(url, publication, node, vshards, holdings).await;
    if let Ok((_, _, refused)) = &copied {
        // Rows breaking the record rules are counted as the follower
        // counts them; their next change is followed as any other.
        status.add_skipped(*refused as u64);
    }
    let (at, loaded, refused) = match copied {
        Ok(done) => done,
        Err(e) => {
            holdings.abort();
            return Err(e);
        }
    };
    let records = loaded.records.len();
    holdings.ready(at, loaded);
    // A heartbeat now: on idle tables the copy joins at once, not at the
    // next beat.
    status.wanted.notify_one();
    if holdings.await_merged(MERGE_PATIENCE).await {
        Ok(LoadReport {
            at,
            records,
            refused,
        })
    } else {
        Err(format!(
            "the follower did not reach the copy's position {at} within {} s",
            MERGE_PATIENCE.as_secs()
        ))
    }
}

async fn copy(
    url: &str,
    publication: &str,
    node: &str,
    vshards: &[u32],
    holdings: &Holdings,
) -> Result<(Lsn, Loaded, usize), String> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let slot = format!(
        "backdex_load_{}_{}_{}",
        slot_safe(node),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let config = ReplicationStreamConfig::builder(slot.clone(), publication.to_owned())
        .with_protocol_version(1)
        .with_streaming_mode(StreamingMode::Off)
        .with_connection_timeout(Duration::from_secs(10))
        .with_slot_options(ReplicationSlotOptions {
            temporary: true,
            snapshot: Some("export".to_owned()),
            ..Default::default()
        })
        .with_existing_slot_required(false);
    let mut stream = LogicalReplicationStream::new(&replication_url(url), config)
        .await
        .map_err(|e| format!("connecting for a load: {e}"))?;
    stream
        .ensure_replication_slot()
        .await
        .map_err(|e| format!("creating the load's slot {slot:?}: {e}"))?;
    let name = stream
        .exported_snapshot_name()
        .ok_or_else(|| format!("the load's slot {slot:?} exported no snapshot"))?
        .to_owned();
    // The snapshot's position is the new slot's confirmed position. The
    // replication connection stays idle (and its snapshot valid) until
    // the read is done.
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connecting to read a load: {e}"))?;
    tokio::spawn(connection);
    let at: String = client
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| format!("reading the load's slot {slot:?}: {e}"))?
        .get(0);
    let at = Lsn::parse(&at).ok_or_else(|| format!("the load's slot is at {at:?}"))?;
    holdings.set_barrier(at);
    let read = read_vshards(&client, &name, vshards).await;
    // The temporary slot goes with its connection.
    drop(stream);
    let copy = read?;
    let (records, refused, skipped) = tokio::task::block_in_place(|| copy.finish());
    for (id, _, reason) in &refused {
        tracing::warn!(table = row::BACKUPS, key = %id, reason = %reason, "row skipped in a load: it breaks the record rules");
    }
    for (table, key, reason) in &skipped {
        tracing::warn!(table, key, reason, "row skipped in a load");
    }
    let loaded = Loaded {
        vshards: vshards.to_vec(),
        records,
    };
    Ok((at, loaded, refused.len() + skipped.len()))
}

/// A slot name's part from a node name: lower-case letters, digits, `_`.
pub fn slot_safe(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect()
}

/// Reads the rows of `vshards` from both tables on the exported snapshot.
async fn read_vshards(
    client: &tokio_postgres::Client,
    snapshot: &str,
    vshards: &[u32],
) -> Result<Copied, String> {
    let list = vshards
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // The text forms pgoutput sends: ISO timestamps, in UTC.
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
             SET TRANSACTION SNAPSHOT '{}';
             SET LOCAL DateStyle = ISO, YMD; SET LOCAL TimeZone = 'UTC';
             SET LOCAL extra_float_digits = 3",
            snapshot.replace('\'', "''")
        ))
        .await
        .map_err(|e| format!("opening the load's snapshot: {e}"))?;
    let mut copy = Copied::default();
    for (table, sql) in [
        (
            row::BACKUPS,
            format!("SELECT * FROM backups WHERE backdex_vshard(project_id) IN ({list})"),
        ),
        (
            row::MEMBERS,
            format!(
                "SELECT m.* FROM backup_members m JOIN backups b ON b.id = m.backup_id
                 WHERE backdex_vshard(b.project_id) IN ({list})"
            ),
        ),
    ] {
        let messages = client
            .simple_query(&sql)
            .await
            .map_err(|e| format!("reading {table} for a load: {e}"))?;
        for message in messages {
            if let SimpleQueryMessage::Row(r) = message {
                let mut data = RowData::with_capacity(r.len());
                for (i, column) in r.columns().iter().enumerate() {
                    let value = r.get(i).map_or(ColumnValue::Null, ColumnValue::text);
                    data.push(Arc::from(column.name()), value);
                }
                copy.row(table, &data);
            }
        }
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| format!("ending the load's read: {e}"))?;
    Ok(copy)
}
