//! The follower's numbers (server/docs/follow.md), against a private
//! PostgreSQL on this machine:
//!
//! 1. initial sync of N rows (default 1,000,000), against `COPY … TO` of
//!    both tables alone as the floor;
//! 2. sustained single-row transactions applied per second;
//! 3. commit → visible latency (p50, p99) at 1,000 and 5,000 changes per
//!    second with readers running: a sampled writer commits, asks for its
//!    position, and reads with `X-Min-LSN`;
//! 4. restart from a snapshot plus catch-up, against a full re-sync.
//!
//! `cargo bench -p backdex-server --bench follow` (`BACKDEX_BENCH_RECORDS`,
//! `BACKDEX_BENCH_SECONDS` per phase, default 10). Run by `cargo test`, it
//! does the same on 2,000 records for a second a phase, as a smoke test.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backdex::synth::{generate, Rng, SynthConfig};
use support::{copy_in, env, lsn, percentile, tokens_file, wal_position, Postgres, Server};

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let records = env(
        "BACKDEX_BENCH_RECORDS",
        if benching { 1_000_000 } else { 2_000 },
    ) as usize;
    let seconds = env("BACKDEX_BENCH_SECONDS", if benching { 10 } else { 1 });
    let pg = Postgres::start();
    let mut sql = pg.client();
    sql.batch_execute(support::SCHEMA).expect("the schema");
    let data: Vec<backdex::Record> = generate(&SynthConfig {
        records,
        slim: true,
        ..SynthConfig::default()
    })
    .collect();
    let ids: Arc<Vec<String>> = Arc::new(data.iter().map(|r| r.id.clone()).collect());
    let started = Instant::now();
    copy_in(&mut sql, &data);
    sql.batch_execute("ANALYZE backups").expect("analyze");
    println!(
        "load: {records} rows COPYed into PostgreSQL in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let projects: Vec<String> = data
        .iter()
        .map(|r| r.project_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .take(50)
        .collect();
    drop(data);

    // 1. The floor: both tables copied out, as the initial sync does.
    let mut floors = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let mut bytes = 0u64;
        for table in ["backups", "backup_members"] {
            let mut reader = sql
                .copy_out(format!("COPY {table} TO STDOUT").as_str())
                .expect("COPY TO");
            bytes += std::io::copy(&mut reader, &mut std::io::sink()).expect("read");
        }
        floors.push((t.elapsed().as_secs_f64(), bytes));
    }
    floors.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (floor, bytes) = floors[1];
    println!(
        "floor: COPY … TO STDOUT of both tables: {floor:.2} s ({} MB)",
        bytes >> 20
    );

    let tokens = tokens_file(pg.dir(), &projects);
    let snapshots = pg.dir().join("snapshots").display().to_string();
    let url = pg.url();
    let tokens_path = tokens.display().to_string();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "--follow",
            &url,
            "--tokens",
            &tokens_path,
            "--snapshot-dir",
            &snapshots,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let start_server = |extra: &[&str]| {
        let a = args(extra);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        Server::start(&refs)
    };
    let t = Instant::now();
    let mut server = start_server(&["--snapshot-every-secs", "3600"]);
    server.wait_until(Duration::from_secs(1800), |h| h["state"] == "following");
    let sync = t.elapsed().as_secs_f64();
    println!(
        "initial sync: {records} rows in {sync:.2} s from the process start ({:.1}x the COPY floor)",
        sync / floor
    );

    // 2. Sustained single-row transactions: writers as fast as they go.
    let writers = 4;
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let spawn_writers = |rate: Option<u64>| {
        (0..writers)
            .map(|w| {
                let (url, ids, stop, committed) = (url.clone(), ids.clone(), stop.clone(), committed.clone());
                std::thread::spawn(move || {
                    let mut sql = postgres::Client::connect(&url, postgres::NoTls).expect("a client");
                    let update = sql
                        .prepare("UPDATE backups SET status = $2, updated_at = updated_at + interval '1 second' WHERE id = $1")
                        .expect("prepared");
                    let mut rng = Rng::new(100 + w);
                    let period = rate.map(|r| Duration::from_secs_f64(writers as f64 / r as f64));
                    let mut next = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        let id = &ids[rng.below(ids.len() as u64) as usize];
                        let status = if rng.below(2) == 0 { "available" } else { "error" };
                        sql.execute(&update, &[id, &status]).expect("an update");
                        committed.fetch_add(1, Ordering::Relaxed);
                        if let Some(period) = period {
                            next += period;
                            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                        }
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    let t = Instant::now();
    let handles = spawn_writers(None);
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("a writer");
    }
    let wrote = committed.load(Ordering::Relaxed);
    let written_in = t.elapsed().as_secs_f64();
    let end = wal_position(&mut sql);
    server.wait_until(Duration::from_secs(600), |h| {
        h["applied_lsn"].as_str().and_then(lsn) >= lsn(&end)
    });
    let applied_in = t.elapsed().as_secs_f64();
    println!(
        "sustained: {wrote} single-row transactions committed by {writers} writers in {written_in:.1} s \
         ({:.0}/s), all applied {:.2} s after the first ({:.0}/s applied)",
        wrote as f64 / written_in,
        applied_in,
        wrote as f64 / applied_in
    );

    // 3. Commit → visible, at a paced rate, with readers running.
    for rate in [1_000u64, 5_000] {
        stop.store(false, Ordering::Relaxed);
        committed.store(0, Ordering::Relaxed);
        let readers: Vec<_> = (0..2)
            .map(|i| {
                let (addr, stop, p) = (
                    server.addr,
                    stop.clone(),
                    projects[i % projects.len()].clone(),
                );
                std::thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let path = if n.is_multiple_of(2) {
                            format!("http://{addr}/v1/{p}/checkpoint_items?limit=100")
                        } else {
                            format!("http://{addr}/v1/{p}/checkpoint_items/count?status=error")
                        };
                        let _ = agent
                            .get(&path)
                            .header("X-Auth-Token", &format!("reader-{p}"))
                            .call();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let handles = spawn_writers(Some(rate));
        // The sampled writer: commit, its position, a read that waits for it.
        let mut probe = postgres::Client::connect(&url, postgres::NoTls).expect("a client");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let p = &projects[0];
        let mut latencies = Vec::new();
        let t = Instant::now();
        let mut rng = Rng::new(rate);
        let mut unfresh = 0;
        while t.elapsed() < Duration::from_secs(seconds) {
            let id = &ids[rng.below(ids.len() as u64) as usize];
            probe
                .execute("UPDATE backups SET name = name WHERE id = $1", &[id])
                .expect("a probe");
            let committed_at = Instant::now();
            let at: String = probe
                .query_one("SELECT pg_current_wal_lsn()::text", &[])
                .expect("a position")
                .get(0);
            let response = agent
                .get(&format!(
                    "http://{}/v1/{p}/checkpoint_items/count",
                    server.addr
                ))
                .header("X-Auth-Token", &format!("reader-{p}"))
                .header("X-Min-LSN", &at)
                .call()
                .expect("an answer");
            if response.status() == 200 {
                latencies.push(committed_at.elapsed().as_secs_f64() * 1e3);
            } else {
                unfresh += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().expect("a writer");
        }
        let reads: u64 = readers
            .into_iter()
            .map(|r| r.join().expect("a reader"))
            .sum();
        let achieved = committed.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        println!(
            "latency at {rate}/s offered ({achieved:.0}/s achieved), {:.0} reads/s beside: commit -> visible \
             p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} samples ({unfresh} not fresh within 1 s)",
            reads as f64 / t.elapsed().as_secs_f64(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(f64::NAN),
            latencies.len()
        );
    }

    // 4. Restart from the snapshot and catch up, against a full re-sync.
    let status = server.terminate();
    assert!(status.success(), "a graceful stop");
    stop.store(false, Ordering::Relaxed);
    committed.store(0, Ordering::Relaxed);
    let handles = spawn_writers(Some(1_000));
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("a writer");
    }
    let missed = committed.load(Ordering::Relaxed);
    let end = wal_position(&mut sql);
    let t = Instant::now();
    let server = start_server(&[]);
    server.wait_until(Duration::from_secs(1800), |h| {
        h["applied_lsn"].as_str().and_then(lsn) >= lsn(&end)
    });
    let restart = t.elapsed().as_secs_f64();
    drop(server);
    let t = Instant::now();
    let server = start_server(&["--resync"]);
    server.wait_until(Duration::from_secs(1800), |h| {
        h["state"] == "following" && h["applied_lsn"].as_str().and_then(lsn) >= lsn(&end)
    });
    let resync = t.elapsed().as_secs_f64();
    println!(
        "restart: from the snapshot plus {missed} transactions missed while down: {restart:.2} s; \
         a full re-sync: {resync:.2} s ({:.1}x)",
        resync / restart
    );
}
