//! Following PostgreSQL: an initial copy from the replication slot's
//! exported snapshot, then logical replication (`pgoutput`) from the
//! slot's consistent point, every transaction applied as one atomic batch.
//!
//! * **Initial sync.** A slot created with `EXPORT_SNAPSHOT`; both tables
//!   are copied in one `REPEATABLE READ` transaction on that snapshot, so
//!   the copy is exactly the database at the slot's consistent point and
//!   the stream continues it with no gap and no change twice.
//! * **Streaming.** A reader task owns the replication connection and
//!   hands the decoded events to the applier through a channel. The
//!   applier folds each transaction into the pending batch at its commit
//!   and publishes the batch as one engine version when no more events
//!   are waiting: several transactions together when they arrive faster
//!   than versions can be published, never part of one.
//! * **Freshness.** A heartbeat (a non-transactional logical message,
//!   `pg_logical_emit_message`) goes through the stream every second and
//!   at once when a reader waits for a position (`X-Min-LSN`): when it comes
//!   back, every transaction committed before it has been applied, so the
//!   applied position moves to it even when the followed tables are idle.
//! * **Faults.** A lost connection leaves the last version serving, the
//!   state `degraded`, and reconnects with backoff from the applied
//!   position; a transaction received again is skipped by its commit
//!   position. A row that breaks the record rules is not served, logged
//!   with its table, key and reason, and counted.

pub mod apply;
pub mod row;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backdex::{Engine, Member, MemberStatus, Record, Store};
use pg_walstream::{
    CancellationToken, ChangeEvent, EventType, LogicalReplicationStream, ReplicationError,
    ReplicationSlotOptions, ReplicationStreamConfig, RowData, SnapshotOutcome, StreamingMode,
};
use tokio::sync::mpsc;

use crate::cluster::holdings::Holdings;
use crate::status::{Lsn, State, Status};
use apply::{Changes, Draft, Layers, Transaction};

/// The prefix of the follower's heartbeat messages.
const HEARTBEAT: &str = "backdex.heartbeat";

/// How to follow.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database, as a libpq connection string or URI.
    pub url: String,
    /// The replication slot this follower owns.
    pub slot: String,
    /// The publication of the two tables.
    pub publication: String,
    /// How often a heartbeat goes through the stream.
    pub heartbeat: Duration,
    /// Snapshots are kept (`--snapshot-dir`): the slot is then confirmed
    /// only up to the newest snapshot written, so that a restart from it
    /// finds every later change still in the slot.
    pub snapshots: bool,
    /// A cluster node's: only the vshards held are kept, the initial sync
    /// copies none, and loads join through its gate (cluster::holdings).
    pub holdings: Option<Arc<Holdings>>,
}

/// Why following stopped for now.
#[derive(Debug)]
enum Fault {
    /// Worth retrying: a lost connection, a restarting server.
    Transient(String),
    /// Needs an operator: the slot is gone (docs: a fresh sync).
    SlotMissing(String),
}

impl Fault {
    fn of(e: ReplicationError, doing: &str) -> Fault {
        match e {
            ReplicationError::ReplicationSlot(m) => Fault::SlotMissing(format!("{doing}: {m}")),
            e => Fault::Transient(format!("{doing}: {e}")),
        }
    }
}

/// The connection string of the replication connection.
pub fn replication_url(url: &str) -> String {
    if url.contains("replication=") {
        url.to_owned()
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}replication=database")
    } else {
        format!("{url} replication=database")
    }
}

fn stream_config(config: &Config, export: bool) -> ReplicationStreamConfig {
    ReplicationStreamConfig::builder(config.slot.clone(), config.publication.clone())
        .with_protocol_version(1)
        .with_streaming_mode(StreamingMode::Off)
        .with_messages(true)
        .with_feedback_interval(Duration::from_secs(1))
        .with_connection_timeout(Duration::from_secs(10))
        .with_slot_options(ReplicationSlotOptions {
            snapshot: Some(if export { "export" } else { "nothing" }.to_owned()),
            ..Default::default()
        })
        .with_existing_slot_required(!export)
}

/// Follows until `shutdown`; never returns early: faults are reported in
/// `status` and retried.
pub async fn run(
    engine: Arc<Engine>,
    config: Config,
    status: Arc<Status>,
    shutdown: CancellationToken,
) {
    let heartbeat = tokio::spawn(heartbeats(config.clone(), status.clone(), shutdown.clone()));
    let mut quarantine: HashMap<String, Draft> = HashMap::new();
    let mut backoff = Duration::from_millis(100);
    // A version with a position continues from it (a snapshot's load);
    // without one, the first session copies everything.
    let mut resume = position_of(&engine);
    loop {
        let outcome = match resume {
            None => initial_sync(&engine, &config, &status, &mut quarantine).await,
            Some(at) => connect(&config, at).await,
        };
        let outcome = match outcome {
            Ok((stream, at)) => {
                resume = Some(at);
                backoff = Duration::from_millis(100);
                status.set_state(State::Following, None);
                tracing::info!(slot = %config.slot, at = %at, "following");
                stream_changes(
                    stream,
                    &engine,
                    &config,
                    &status,
                    &mut quarantine,
                    &shutdown,
                )
                .await
            }
            Err(fault) => Err(fault),
        };
        if shutdown.is_cancelled() {
            break;
        }
        if let Err(fault) = outcome {
            let (message, retry) = match fault {
                Fault::Transient(m) => (m, backoff),
                Fault::SlotMissing(m) => (
                    format!(
                        "{m}; the replication slot {:?} is gone, so changes since {} cannot be \
                         followed: restart with --resync to sync afresh",
                        config.slot,
                        status.applied()
                    ),
                    Duration::from_secs(5),
                ),
            };
            tracing::error!(error = %message, retry_in_ms = retry.as_millis() as u64, "not following");
            status.set_state(State::Degraded, Some(message));
            resume = position_of(&engine).or(resume);
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                () = shutdown.cancelled() => break,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
    heartbeat.abort();
}

/// The position of the engine's version, if it has one.
fn position_of(engine: &Engine) -> Option<Lsn> {
    let (_, position) = engine.snapshot_at();
    std::str::from_utf8(&position).ok().and_then(Lsn::parse)
}

/// Creates the slot, copies both tables from its snapshot, publishes the
/// copy at the consistent point, and starts the stream there.
async fn initial_sync(
    engine: &Engine,
    config: &Config,
    status: &Status,
    quarantine: &mut HashMap<String, Draft>,
) -> Result<(LogicalReplicationStream, Lsn), Fault> {
    status.set_state(State::Syncing, None);
    let started = std::time::Instant::now();
    let url = replication_url(&config.url);
    let stream = LogicalReplicationStream::new(&url, stream_config(config, true))
        .await
        .map_err(|e| Fault::of(e, "connecting"))?;
    let mut snapshot = match stream
        .snapshot()
        .await
        .map_err(|e| Fault::of(e, "exporting a snapshot"))?
    {
        SnapshotOutcome::Available(snapshot) => snapshot,
        SnapshotOutcome::Unavailable(stream) => {
            // A slot of this name from an earlier run: this follower has
            // nothing to continue it from, so it starts afresh.
            drop(stream);
            drop_slot(config).await?;
            return Err(Fault::Transient(format!(
                "the slot {:?} existed without a snapshot to continue it; dropped it to sync afresh",
                config.slot
            )));
        }
    };
    let at = Lsn(snapshot.consistent_point().value());
    if config.holdings.is_some() {
        // A cluster node starts holding nothing: its vshards are loaded
        // one group at a time once it follows (cluster::load).
        snapshot.retain_tables(|_| false);
    }
    let mut rows = snapshot.rows();
    let mut copy = Copied::default();
    while let Some(r) = rows.next_row().await.map_err(|e| Fault::of(e, "copying"))? {
        copy.row(&r.relation.relation_name, &r.data);
    }
    let stream = rows
        .finish()
        .await
        .map_err(|e| Fault::of(e, "ending the copy"))?;
    let copied = copy.rows();
    let (records, refused, skipped) = tokio::task::block_in_place(|| copy.finish());
    let store = tokio::task::block_in_place(|| {
        let mut store = Store::new();
        store.upsert(&records).map(|_| store)
    })
    .map_err(|e| Fault::Transient(format!("loading the copy: {e}")))?;
    drop(records);
    report_skipped(
        status,
        skipped.iter().map(|(t, k, r)| (*t, k.as_str(), r.as_str())),
    );
    quarantine.clear();
    report_refused(status, &refused);
    quarantine.extend(refused.into_iter().map(|(id, draft, _)| (id, draft)));
    let records = store.len();
    engine
        .change_at(at.to_string().as_bytes(), |current| {
            *current = store;
            Ok(())
        })
        .map_err(|e| Fault::Transient(format!("publishing the copy: {e}")))?;
    status.set_applied(at);
    tracing::info!(rows = copied, records, at = %at, ms = started.elapsed().as_millis() as u64, "initial sync done");
    start(stream, at).await
}

/// Rows of a copy (both tables, in any order), turned into records as
/// they arrive: a row's JSON is large next to its record. Members are
/// attached once every row is in.
#[derive(Default)]
pub struct Copied {
    records: Vec<Record>,
    refused: Vec<(String, Draft, String)>,
    members: HashMap<String, BTreeMap<String, String>>,
    skipped: Vec<(&'static str, String, String)>,
}

/// A copy's records, its refused drafts (id, draft, reason) and its
/// skipped rows (table, key, reason).
pub type CopiedRecords = (
    Vec<Record>,
    Vec<(String, Draft, String)>,
    Vec<(&'static str, String, String)>,
);

impl Copied {
    /// One row of `table`.
    pub fn row(&mut self, table: &str, data: &RowData) {
        match table {
            row::BACKUPS => match (row::key(data, "id"), row::backup_fields(data)) {
                (Ok(id), Ok(fields)) => match Draft::new(fields, BTreeMap::new()).into_record() {
                    Ok(record) if record.id == id => self.records.push(record),
                    Ok(record) => {
                        let reason = format!("field id: {:?} is not its key", record.id);
                        self.refused.push((id, Draft::of(&record), reason));
                    }
                    Err((draft, reason)) => self.refused.push((id, draft, reason)),
                },
                (Ok(id), Err(e)) => self.skipped.push((row::BACKUPS, id, e.0)),
                (Err(e), _) => self.skipped.push((row::BACKUPS, "?".to_owned(), e.0)),
            },
            row::MEMBERS => match row::member(data) {
                Ok(m) => {
                    let status = m.status.unwrap_or_default();
                    self.members
                        .entry(m.backup_id)
                        .or_default()
                        .insert(m.dest_project_id, status);
                }
                Err(e) => self.skipped.push((row::MEMBERS, "?".to_owned(), e.0)),
            },
            _ => {}
        }
    }

    /// The `backups` rows read so far.
    pub fn rows(&self) -> usize {
        self.records.len() + self.refused.len()
    }

    /// The records with their members.
    pub fn finish(mut self) -> CopiedRecords {
        attach_members(
            &mut self.records,
            &mut self.refused,
            self.members,
            &mut self.skipped,
        );
        (self.records, self.refused, self.skipped)
    }
}

/// Gives the copied records their members (in the byte order of the
/// destination projects, as a draft does). A record with a member the
/// rules refuse is refused whole, as in the stream; a member of no copied
/// backup is skipped.
fn attach_members(
    records: &mut Vec<Record>,
    refused: &mut Vec<(String, Draft, String)>,
    members: HashMap<String, BTreeMap<String, String>>,
    skipped: &mut Vec<(&'static str, String, String)>,
) {
    let index: HashMap<String, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect();
    let mut bad: Vec<usize> = Vec::new();
    for (backup, of) in members {
        if let Some(&i) = index.get(&backup) {
            let parsed: Option<Vec<Member>> = of
                .iter()
                .map(|(dest, status)| {
                    MemberStatus::parse(status).map(|status| Member {
                        dest_project_id: dest.clone(),
                        status,
                    })
                })
                .collect();
            match (parsed, records.get_mut(i)) {
                (Some(parsed), Some(record)) => record.members = parsed,
                (None, Some(record)) => {
                    let mut draft = Draft::of(record);
                    draft.members_mut().extend(of);
                    let reason = draft.record().err().map_or_else(
                        || "a member's status is refused".to_owned(),
                        |e| e.to_string(),
                    );
                    refused.push((backup, draft, reason));
                    bad.push(i);
                }
                (_, None) => {}
            }
        } else if let Some((_, draft, _)) = refused.iter_mut().find(|(id, _, _)| *id == backup) {
            draft.members_mut().extend(of);
        } else {
            for dest in of.into_keys() {
                let key = format!("({backup}, {dest})");
                skipped.push((row::MEMBERS, key, format!("no backup {backup:?}")));
            }
        }
    }
    bad.sort_unstable();
    for i in bad.into_iter().rev() {
        records.swap_remove(i);
    }
}

/// Connects to the existing slot to continue from `at`.
async fn connect(config: &Config, at: Lsn) -> Result<(LogicalReplicationStream, Lsn), Fault> {
    let url = replication_url(&config.url);
    let stream = LogicalReplicationStream::new(&url, stream_config(config, false))
        .await
        .map_err(|e| Fault::of(e, "connecting"))?;
    start(stream, at).await
}

async fn start(
    mut stream: LogicalReplicationStream,
    at: Lsn,
) -> Result<(LogicalReplicationStream, Lsn), Fault> {
    stream
        .start(Some(at.0))
        .await
        .map_err(|e| Fault::of(e, "starting replication"))?;
    Ok((stream, at))
}

/// Drops this follower's slot over an SQL connection.
async fn drop_slot(config: &Config) -> Result<(), Fault> {
    let client = sql(&config.url).await?;
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&config.slot],
        )
        .await
        .map_err(|e| Fault::Transient(format!("dropping the slot {:?}: {e}", config.slot)))?;
    Ok(())
}

/// An SQL connection, its driver on a task of its own.
async fn sql(url: &str) -> Result<tokio_postgres::Client, Fault> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| Fault::Transient(format!("connecting for SQL: {e}")))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Emits a heartbeat every `config.heartbeat`, and at once when a reader
/// waits. Failures are retried at the next beat: the stream's own faults
/// are what the state reports.
async fn heartbeats(config: Config, status: Arc<Status>, shutdown: CancellationToken) {
    let mut client: Option<tokio_postgres::Client> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(config.heartbeat) => {}
            () = status.wanted.notified() => {}
            () = shutdown.cancelled() => return,
        }
        if client
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            client = sql(&config.url).await.ok();
        }
        if let Some(c) = &client {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64)
                .to_string();
            if let Err(e) = c
                .execute(
                    "SELECT pg_logical_emit_message(false, $1, $2)",
                    &[&HEARTBEAT, &now],
                )
                .await
            {
                tracing::debug!(error = %e, "heartbeat not sent");
                client = None;
            }
        }
    }
}

/// Most records a batch gathers before it is published: below the size
/// (4,096) at which the store's upsert takes its bulk path, which rebuilds
/// every ordered index by a merge of the whole store. A follower's batch
/// is mostly replacements that move a row in one or two orders, which the
/// row-by-row path does in a few microseconds each; a version costs about
/// 35 µs at 1M records, so more of them cost little. (A profile at 5,000
/// changes a second had a quarter of the server's time in the bulk path.)
const BATCH_RECORDS: usize = 4_000;

/// Applies the stream until it fails or `shutdown`.
async fn stream_changes(
    mut stream: LogicalReplicationStream,
    engine: &Engine,
    config: &Config,
    status: &Arc<Status>,
    quarantine: &mut HashMap<String, Draft>,
    shutdown: &CancellationToken,
) -> Result<(), Fault> {
    status.attach_feedback(
        stream.shared_lsn_feedback.clone(),
        config.snapshots,
        status.applied(),
    );
    let (tx, mut rx) = mpsc::channel::<Result<ChangeEvent, ReplicationError>>(8192);
    let cancel = shutdown.child_token();
    let reader_cancel = cancel.clone();
    let reader_status = status.clone();
    let reader = tokio::spawn(async move {
        loop {
            let event = stream.next_event(&reader_cancel).await;
            // What the slot may forget follows the transactions received
            // (see `Status::refresh_confirm`).
            match &event {
                Ok(ChangeEvent {
                    event_type: EventType::Begin { .. },
                    ..
                }) => {
                    if let Some(fresh) = reader_status.transaction_begins() {
                        stream.shared_lsn_feedback = fresh;
                    }
                }
                Ok(ChangeEvent {
                    event_type: EventType::Commit { end_lsn, .. },
                    ..
                }) => reader_status.transaction_ends(Lsn(end_lsn.value())),
                _ => {}
            }
            let failed = event.is_err();
            if tx.send(event).await.is_err() || failed {
                break;
            }
        }
        let _ = stream.stop().await;
    });
    let result = async {
        let mut txn: Option<Transaction> = None;
        loop {
            let first = tokio::select! {
                event = rx.recv() => event,
                () = shutdown.cancelled() => return Ok(()),
            };
            let Some(first) = first else {
                return Err(Fault::Transient("the stream ended".into()));
            };
            // Everything that is waiting goes into one batch.
            let mut store = engine.snapshot();
            let holdings = config.holdings.as_deref();
            let mut batch = Changes::default();
            let mut at = status.applied();
            let mut source_time: Option<SystemTime> = None;
            let mut skipped = Vec::new();
            let mut next = Some(first);
            while let Some(event) = next.take() {
                let event = match event {
                    Ok(event) => event,
                    Err(ReplicationError::Cancelled(_)) => return Ok(()),
                    Err(e) => {
                        // What was received whole is still published.
                        publish(
                            engine,
                            status,
                            batch,
                            at,
                            source_time,
                            quarantine,
                            &skipped,
                            holdings,
                        );
                        return Err(Fault::of(e, "streaming"));
                    }
                };
                if let Some(h) = holdings {
                    // A load joins here (cluster::holdings): what came
                    // before it is published first.
                    let gate = match &event.event_type {
                        EventType::Begin { final_lsn, .. } => Some((Lsn(final_lsn.value()), true)),
                        EventType::Message { message_lsn, .. } if txn.is_none() => {
                            Some((Lsn(message_lsn.value()), false))
                        }
                        _ => None,
                    };
                    if let Some((lsn, begin)) = gate.filter(|&(lsn, begin)| h.must_stop(lsn, begin))
                    {
                        publish(
                            engine,
                            status,
                            std::mem::take(&mut batch),
                            at,
                            source_time,
                            quarantine,
                            &skipped,
                            holdings,
                        );
                        skipped.clear();
                        tokio::select! {
                            () = h.settle(engine, lsn, begin) => {}
                            () = shutdown.cancelled() => return Ok(()),
                        }
                        store = engine.snapshot();
                    }
                }
                let layers = Layers {
                    batch: &batch,
                    quarantine,
                    store: &store,
                    partial: holdings.is_some(),
                };
                match event.event_type {
                    EventType::Begin { .. } => txn = Some(Transaction::default()),
                    EventType::Insert { table, data, .. } => {
                        if let Some(t) = txn.as_mut() {
                            match &*table {
                                row::BACKUPS => t.backup(&data, None, &layers),
                                row::MEMBERS => t.member(&data, None, &layers),
                                _ => {}
                            }
                        }
                    }
                    EventType::Update {
                        table,
                        old_data,
                        new_data,
                        ..
                    } => {
                        if let Some(t) = txn.as_mut() {
                            match &*table {
                                row::BACKUPS => t.backup(&new_data, old_data.as_ref(), &layers),
                                row::MEMBERS => t.member(&new_data, old_data.as_ref(), &layers),
                                _ => {}
                            }
                        }
                    }
                    EventType::Delete {
                        table, old_data, ..
                    } => {
                        if let Some(t) = txn.as_mut() {
                            match &*table {
                                row::BACKUPS => t.backup_deleted(&old_data),
                                row::MEMBERS => t.member_deleted(&old_data, &layers),
                                _ => {}
                            }
                        }
                    }
                    EventType::Truncate { tables, .. } => {
                        if let Some(t) = txn.as_mut() {
                            let names: Vec<&str> = tables.iter().map(|t| &**t).collect();
                            t.truncate(&names, &layers);
                        }
                    }
                    EventType::Commit {
                        end_lsn,
                        commit_timestamp,
                        ..
                    } => {
                        if let Some(t) = txn.take() {
                            // A transaction received again after a reconnect
                            // is applied already.
                            if Lsn(end_lsn.value()) > at {
                                batch.extend(t.changes);
                                skipped.extend(t.skipped);
                                at = Lsn(end_lsn.value());
                                source_time = Some(commit_timestamp.into());
                            }
                        }
                    }
                    EventType::Message {
                        message_lsn,
                        prefix,
                        content,
                        flags,
                    } if &*prefix == HEARTBEAT && flags & 1 == 0 && txn.is_none() => {
                        // Every transaction committed before the heartbeat
                        // has arrived before it.
                        if Lsn(message_lsn.value()) > at {
                            at = Lsn(message_lsn.value());
                        }
                        let sent = std::str::from_utf8(&content)
                            .ok()
                            .and_then(|t| t.parse::<u64>().ok())
                            .map(|us| UNIX_EPOCH + Duration::from_micros(us));
                        source_time = sent.or(source_time);
                    }
                    _ => {}
                }
                if batch.records.len() < BATCH_RECORDS {
                    next = rx.try_recv().ok();
                }
            }
            publish(
                engine,
                status,
                batch,
                at,
                source_time,
                quarantine,
                &skipped,
                holdings,
            );
            status.refresh_confirm();
        }
    }
    .await;
    cancel.cancel();
    let _ = reader.await;
    result
}

/// Publishes a batch as one version at `at` (nothing to change still
/// moves the applied position), and reports what it refused. A cluster
/// node keeps only the records of the vshards it holds, decided in the
/// same version change as a load or a drop.
#[allow(clippy::too_many_arguments)]
fn publish(
    engine: &Engine,
    status: &Status,
    mut batch: Changes,
    at: Lsn,
    source_time: Option<SystemTime>,
    quarantine: &mut HashMap<String, Draft>,
    skipped: &[apply::Skipped],
    holdings: Option<&Holdings>,
) {
    report_skipped(
        status,
        skipped
            .iter()
            .map(|s| (s.table, s.key.as_str(), s.reason.as_str())),
    );
    if at <= status.applied() && batch.is_empty() {
        return;
    }
    let position = at.to_string();
    let published = if let Some(h) = holdings.filter(|_| !batch.is_empty()) {
        let mut refused = Vec::new();
        let published = tokio::task::block_in_place(|| {
            h.change(engine, Some(position.as_bytes()), |store, held| {
                batch.retain_held(|v| held.contains_key(&v));
                let plan = apply::plan(batch, quarantine);
                let applied = apply::apply(&plan, store);
                refused = plan.refused;
                applied
            })
        });
        report_refused(status, &refused);
        published
    } else {
        publish_plan(engine, status, batch, &position, quarantine)
    };
    match published {
        Ok(()) => {
            status.set_applied(at);
            if let Some(sent) = source_time {
                status.set_lag(SystemTime::now().duration_since(sent).unwrap_or_default());
            }
        }
        Err(e) => {
            // The store refused the whole batch (its capacity): nothing of
            // it is served, and the state says so.
            tracing::error!(error = %e, at = %at, "a batch was refused");
            status.set_state(
                State::Degraded,
                Some(format!("a batch up to {at} was refused: {e}")),
            );
        }
    }
}

/// [`publish`]'s change of a server that holds every record.
fn publish_plan(
    engine: &Engine,
    status: &Status,
    batch: Changes,
    position: &str,
    quarantine: &mut HashMap<String, Draft>,
) -> Result<(), backdex::ChangeError> {
    let plan = apply::plan(batch, quarantine);
    report_refused(status, &plan.refused);
    if plan.is_empty() {
        // A heartbeat: the position moves, the store stays.
        engine.reposition(position.as_bytes());
        Ok(())
    } else {
        tokio::task::block_in_place(|| {
            engine.change_at(position.as_bytes(), |store| apply::apply(&plan, store))
        })
    }
}

fn report_skipped<'a>(
    status: &Status,
    rows: impl Iterator<Item = (&'static str, &'a str, &'a str)>,
) {
    for (table, key, reason) in rows {
        tracing::warn!(table, key, reason, "row skipped");
        status.add_skipped(1);
    }
}

/// Logs and counts records refused by the record rules (id, draft, reason).
fn report_refused(status: &Status, refused: &[(String, Draft, String)]) {
    for (id, _, reason) in refused {
        tracing::warn!(table = row::BACKUPS, key = %id, reason = %reason, "row skipped: it breaks the record rules");
        status.add_skipped(1);
    }
}
