//! The follower's faults, each against a private PostgreSQL: the database
//! restarted while following, the follower killed mid-stream and started
//! again from its snapshot, the slot dropped by an operator, and a row
//! that breaks the record rules. After each, the answers equal the
//! database's (read through its own JSON), byte for byte.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use backdex::synth::{generate, SynthConfig};
use backdex::Record;
use support::{
    assert_answers, reference, reference_of_valid, tokens_file, wal_position, whole_view, write,
    Postgres, Server,
};

/// A database with the schema and `n` records; its projects.
fn database(n: usize) -> (Postgres, postgres::Client, Vec<Record>, Vec<String>) {
    let pg = Postgres::start();
    let mut sql = pg.client();
    sql.batch_execute(support::SCHEMA).expect("the schema");
    let records: Vec<Record> = generate(&SynthConfig {
        records: n,
        projects: 5,
        seed: 3,
        slim: true,
    })
    .collect();
    let mut tx = sql.transaction().expect("a transaction");
    for r in &records {
        write(&mut tx, r);
    }
    tx.commit().expect("committed");
    let projects = records
        .iter()
        .map(|r| r.project_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    (pg, sql, records, projects)
}

fn follower(pg: &Postgres, tokens: &Path, extra: &[&str]) -> Server {
    let url = pg.url();
    let tokens = tokens.display().to_string();
    let mut args = vec![
        "--follow",
        &url,
        "--tokens",
        &tokens,
        "--heartbeat-ms",
        "100",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Updates `n` records' status in one transaction each.
fn touch(sql: &mut postgres::Client, records: &[Record], from: usize, n: usize) {
    for r in records.iter().cycle().skip(from).take(n) {
        sql.execute(
            "UPDATE backups SET status = CASE status WHEN 'available' THEN 'error' ELSE 'available' END,
                    updated_at = updated_at + interval '1 second' WHERE id = $1",
            &[&r.id],
        )
        .expect("an update");
    }
}

/// The follower's snapshot directory, beside the database's.
fn snapshot_dir(pg: &Postgres) -> String {
    pg.dir().join("snapshots").display().to_string()
}

fn following(server: &Server) {
    server.wait_until(Duration::from_secs(60), |h| h["state"] == "following");
}

#[test]
fn postgresql_restarted_while_following() {
    restarted_while_following(false);
}

/// With snapshots the slot is confirmed only up to what they hold; an
/// idle follower whose snapshot holds everything confirms all it
/// received, so the database's shutdown does not wait for it.
#[test]
fn postgresql_restarted_while_following_with_snapshots() {
    restarted_while_following(true);
}

fn restarted_while_following(snapshots: bool) {
    let (pg, mut sql, records, projects) = database(200);
    let tokens = tokens_file(pg.dir(), &projects);
    let dir = snapshot_dir(&pg);
    let args: Vec<&str> = if snapshots {
        vec!["--snapshot-dir", &dir, "--snapshot-every-secs", "1"]
    } else {
        Vec::new()
    };
    let server = follower(&pg, &tokens, &args);
    following(&server);
    touch(&mut sql, &records, 0, 20);
    let at = wal_position(&mut sql);
    let before = reference(&mut sql);
    assert_answers(
        &server,
        &before,
        &at,
        &whole_view(&projects),
        "before the restart",
    );
    drop(sql);

    // Down: reads go on from the last version, the state says degraded.
    pg.stop_for_restart();
    server.wait_until(Duration::from_secs(30), |h| h["state"] == "degraded");
    let p = &projects[0];
    let (status, body) = server.get(
        &format!("/v1/{p}/checkpoint_items/count"),
        &[("X-Auth-Token", &format!("reader-{p}"))],
    );
    let want = before.handle(
        &format!("/v1/{p}/checkpoint_items/count"),
        "",
        &support::scope_of(&format!("reader-{p}")),
    );
    assert_eq!(
        (status, body),
        (200, want.body),
        "served while the database is down"
    );
    pg.start_again();

    // Up again: it reconnects with backoff and catches up.
    let mut sql = pg.client();
    touch(&mut sql, &records, 20, 30);
    let at = wal_position(&mut sql);
    let health = server.wait_until(Duration::from_secs(60), |h| h["state"] == "following");
    assert_answers(
        &server,
        &reference(&mut sql),
        &at,
        &whole_view(&projects),
        "after the restart",
    );
    assert_eq!(health["skipped_rows"], 0);
}

#[test]
fn killed_mid_stream_and_restarted_from_its_snapshot() {
    let (pg, mut sql, records, projects) = database(300);
    let tokens = tokens_file(pg.dir(), &projects);
    let dir = snapshot_dir(&pg);
    let args = ["--snapshot-dir", dir.as_str(), "--snapshot-every-secs", "1"];
    let mut server = follower(&pg, &tokens, &args);
    following(&server);
    touch(&mut sql, &records, 0, 40);
    let at = wal_position(&mut sql);
    server.wait_until(Duration::from_secs(30), |h| {
        h["snapshot_lsn"].as_str().and_then(support::lsn) >= support::lsn(&at)
    });

    // Writes go on in another connection while the follower is killed.
    let url = pg.url();
    let writer_records = records.clone();
    let writer = std::thread::spawn(move || {
        let mut sql = postgres::Client::connect(&url, postgres::NoTls).expect("a client");
        touch(&mut sql, &writer_records, 40, 200);
    });
    std::thread::sleep(Duration::from_millis(150));
    server.kill();
    writer.join().expect("the writer");

    let server = follower(&pg, &tokens, &args);
    let at = wal_position(&mut sql);
    following(&server);
    assert!(
        server.log().contains("snapshot loaded"),
        "restarted from the snapshot:\n{}",
        server.log()
    );
    // Nothing lost, nothing applied twice: every record as in SQL.
    assert_answers(
        &server,
        &reference(&mut sql),
        &at,
        &whole_view(&projects),
        "after the restart",
    );
}

#[test]
fn a_dropped_slot_is_reported_and_a_resync_recovers() {
    let (pg, mut sql, records, projects) = database(150);
    let tokens = tokens_file(pg.dir(), &projects);
    let dir = snapshot_dir(&pg);
    let args = ["--snapshot-dir", dir.as_str(), "--snapshot-every-secs", "1"];
    let mut server = follower(&pg, &tokens, &args);
    following(&server);
    touch(&mut sql, &records, 0, 10);
    let at = wal_position(&mut sql);
    let before = reference(&mut sql);
    assert_answers(
        &server,
        &before,
        &at,
        &whole_view(&projects),
        "before the drop",
    );
    assert!(server.terminate().success(), "a graceful stop");

    // The operator drops the slot; a restart from the snapshot cannot
    // follow on, says so, and keeps serving the snapshot.
    sql.execute("SELECT pg_drop_replication_slot('backdex')", &[])
        .expect("dropped");
    touch(&mut sql, &records, 10, 10);
    let mut server = follower(&pg, &tokens, &args);
    let health = server.wait_until(Duration::from_secs(30), |h| h["state"] == "degraded");
    let error = health["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("slot") && error.contains("--resync"),
        "{health}"
    );
    assert!(server.log().contains("not following"), "{}", server.log());
    let (status, body) = server.get("/healthz", &[]);
    assert_eq!(status, 200, "{body}");
    let p = &projects[0];
    let token = format!("reader-{p}");
    let path = format!("/v1/{p}/checkpoint_items?limit=1000");
    let (status, body) = server.get(&path, &[("X-Auth-Token", &token)]);
    let (path_only, query) = path.split_once('?').unwrap_or((&path, ""));
    assert_eq!(
        (status, body),
        (
            200,
            before
                .handle(path_only, query, &support::scope_of(&token))
                .body
        )
    );
    assert!(server.terminate().success());

    // The way back: a fresh sync.
    let mut resync = args.to_vec();
    resync.push("--resync");
    let server = follower(&pg, &tokens, &resync);
    following(&server);
    let at = wal_position(&mut sql);
    assert_answers(
        &server,
        &reference(&mut sql),
        &at,
        &whole_view(&projects),
        "after the resync",
    );
}

#[test]
fn a_row_breaking_the_rules_is_skipped_and_counted() {
    let (pg, mut sql, records, projects) = database(100);
    let tokens = tokens_file(pg.dir(), &projects);
    let server = follower(&pg, &tokens, &[]);
    following(&server);
    // The rules are dropped from the DDL; one transaction writes a bad row
    // beside good changes.
    sql.batch_execute("ALTER TABLE backups DROP CONSTRAINT backups_status_check")
        .expect("altered");
    let mut tx = sql.transaction().expect("a transaction");
    tx.execute(
        "UPDATE backups SET status = 'exploded' WHERE id = $1",
        &[&records[0].id],
    )
    .expect("a bad update");
    touch_in(&mut tx, &records[1..11]);
    tx.commit().expect("committed");
    let at = wal_position(&mut sql);
    let (want, refused) = reference_of_valid(&mut sql);
    assert_eq!(refused, 1);
    assert_answers(
        &server,
        &want,
        &at,
        &whole_view(&projects),
        "beside the bad row",
    );
    let health = server.health();
    assert_eq!(health["skipped_rows"], 1, "{health}");
    assert_eq!(health["state"], "following", "{health}");
    let log = server.log();
    assert!(
        log.contains("row skipped") && log.contains(&records[0].id) && log.contains("status"),
        "the log names table, key and reason:\n{log}"
    );

    // A follower syncing afresh finds the bad row in the copy: the same.
    let copying = follower(&pg, &tokens, &["--slot", "copying"]);
    following(&copying);
    assert_answers(
        &copying,
        &want,
        &at,
        &whole_view(&projects),
        "copied beside the bad row",
    );
    assert_eq!(copying.health()["skipped_rows"], 1);
    assert!(copying.log().contains(&records[0].id), "{}", copying.log());
    drop(copying);

    // Mended, it is served again.
    sql.execute(
        "UPDATE backups SET status = 'available' WHERE id = $1",
        &[&records[0].id],
    )
    .expect("mended");
    let at = wal_position(&mut sql);
    assert_answers(
        &server,
        &reference(&mut sql),
        &at,
        &whole_view(&projects),
        "mended",
    );
}

fn touch_in(tx: &mut postgres::Transaction<'_>, records: &[Record]) {
    for r in records {
        tx.execute(
            "UPDATE backups SET name = name || '!' WHERE id = $1",
            &[&r.id],
        )
        .expect("an update");
    }
}
