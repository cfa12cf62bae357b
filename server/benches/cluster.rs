//! The cluster's numbers (docs/scale.md), on this machine: PostgreSQL,
//! etcd, three nodes, a router, and one server following the same
//! database for comparison, all on loopback.
//!
//! 1. the time three fresh nodes take to load every vshard;
//! 2. router overhead for single-tenant requests: p50/p99 through the
//!    router against asking the owner node directly;
//! 3. admin fan-out (C4- and L3-like requests) through the router against
//!    one server holding everything;
//! 4. memory per node, accounted (records) and resident;
//! 5. the time from a node's SIGKILL to its vshards being served again.
//!
//! `cargo bench -p backdex-server --bench cluster` (`BACKDEX_BENCH_RECORDS`,
//! default 1,000,000; `BACKDEX_BENCH_REQUESTS` per measure, default 2,000;
//! `BACKDEX_BENCH_LEASE_SECS`, default 5). Run by `cargo test`, it does the
//! same on 3,000 records and 50 requests, as a smoke test.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use backdex::synth::{generate, SynthConfig};
use backdex::{vshard_of, Status};
use support::{
    cluster_node, cluster_router, copy_in, env, owner_of, percentile, reference_follower,
    tokens_file, wal_position, Etcd, Postgres, Server,
};

use support::cluster_map as cluster;

/// Waits until every vshard has a ready owner and the nodes hold `records`
/// records in all (each once); the time it took.
fn settle(router: &Server, records: u64, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let c = cluster(router);
        let held: u64 = c["nodes"]
            .as_object()
            .map(|o| o.values().filter_map(|n| n["records"].as_u64()).sum())
            .unwrap_or(0);
        if c["unavailable"].as_array().is_some_and(Vec::is_empty) && held == records {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "not settled: {c}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One keep-alive client for every measured call, as a real caller (and
/// the router, to its nodes) keeps its connections.
fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn call(request: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
    let mut response = request.expect("an HTTP answer");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().expect("a body"),
    )
}

fn get(agent: &ureq::Agent, server: &Server, path: &str, token: &str) -> (u16, String) {
    call(
        agent
            .get(format!("http://{}{path}", server.addr))
            .header("X-Auth-Token", token)
            .call(),
    )
}

fn post(agent: &ureq::Agent, server: &Server, path: &str, body: &str) -> (u16, String) {
    call(
        agent
            .post(format!("http://{}{path}", server.addr))
            .send(body),
    )
}

/// Milliseconds of one call.
fn timed(f: impl FnOnce() -> (u16, String)) -> (f64, (u16, String)) {
    let started = Instant::now();
    let answer = f();
    (started.elapsed().as_secs_f64() * 1e3, answer)
}

/// p50 and p99 of interleaved rounds of several ways of asking.
fn measure<const N: usize>(rounds: u64, ways: [&dyn Fn() -> (u16, String); N]) -> [(f64, f64); N] {
    let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::new());
    for _ in 0..rounds {
        for (way, samples) in ways.iter().zip(samples.iter_mut()) {
            let (ms, (status, body)) = timed(way);
            assert_eq!(status, 200, "{body}");
            samples.push(ms);
        }
    }
    samples.map(|mut s| {
        s.sort_by(f64::total_cmp);
        (percentile(&s, 0.5), percentile(&s, 0.99))
    })
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let records = env(
        "BACKDEX_BENCH_RECORDS",
        if benching { 1_000_000 } else { 3_000 },
    ) as usize;
    let rounds = env("BACKDEX_BENCH_REQUESTS", if benching { 2_000 } else { 50 });
    let lease = env("BACKDEX_BENCH_LEASE_SECS", if benching { 5 } else { 2 });
    let pg = Postgres::start();
    let mut sql = pg.client();
    sql.batch_execute(support::SCHEMA).expect("the schema");
    let data: Vec<backdex::Record> = generate(&SynthConfig {
        records,
        slim: true,
        ..SynthConfig::default()
    })
    .collect();
    copy_in(&mut sql, &data);
    sql.batch_execute("ANALYZE backups").expect("analyze");
    // The biggest tenant, a policy of available backups, and an admin.
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &data {
        *sizes.entry(&r.project_id).or_default() += 1;
    }
    let big = sizes
        .iter()
        .max_by_key(|(p, n)| (**n, std::cmp::Reverse(**p)))
        .map(|(p, _)| p.to_string())
        .expect("a project");
    let policy = data
        .iter()
        .find(|r| r.status == Status::Available && r.policy_id.is_some())
        .and_then(|r| r.policy_id.clone())
        .unwrap_or_default();
    drop(sizes);
    drop(data);
    let dir = pg.dir().join("bench");
    std::fs::create_dir_all(&dir).expect("a directory");
    let tokens = tokens_file(&dir, std::slice::from_ref(&big));
    let etcd = Etcd::start();
    let reference = reference_follower(&pg, &tokens);
    let started = Instant::now();
    let mut nodes: Vec<Server> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| cluster_node(&pg, &etcd, n, lease))
        .collect();
    let router = cluster_router(&etcd, &tokens, 2000);
    settle(&router, records as u64, Duration::from_secs(600));
    let loaded = started.elapsed();
    reference.wait_until(Duration::from_secs(600), |h| {
        h["state"] == "following" && h["records"].as_u64() == Some(records as u64)
    });
    println!(
        "three nodes: {records} records over {} vshards loaded in {:.2} s (lease {lease} s)",
        backdex::VSHARDS,
        loaded.as_secs_f64()
    );
    let at = wal_position(&mut sql);
    let reader = format!("reader-{big}");
    let admin = format!("admin-{big}");
    let map = cluster(&router);
    let v = vshard_of(&big);
    let (owner, epoch) = owner_of(&map, v);
    let owner_server = &nodes[["n1", "n2", "n3"]
        .iter()
        .position(|n| *n == owner)
        .expect("a node")];
    let requests = [
        ("C1", format!("/v1/{big}/checkpoint_items/count"), reader.clone()),
        ("L1", format!("/v1/{big}/checkpoint_items?limit=100"), reader.clone()),
        (
            "C4",
            format!("/v1/{big}/checkpoint_items/count?all_tenants=true&status=available&policy_id={policy}"),
            admin.clone(),
        ),
        (
            "L3",
            format!(
                "/v1/{big}/checkpoint_items?all_tenants=true&status=error&resource_type=OS::Cinder::Volume\
                 &sort=updated_at:desc&limit=100&offset=1000"
            ),
            admin.clone(),
        ),
    ];
    // Every measured answer is the single server's, byte for byte.
    for (name, path, token) in &requests {
        let headers = [("X-Auth-Token", token.as_str()), ("X-Min-LSN", at.as_str())];
        assert_eq!(
            router.get(path, &headers),
            reference.get(path, &headers),
            "{name}"
        );
    }
    println!("\n| request | through the router p50 / p99 ms | asked directly p50 / p99 ms | router / direct (p50) |");
    println!("|---|---|---|---|");
    for (name, path, token) in requests.iter().take(2) {
        let (p, q) = path.split_once('?').unwrap_or((path, ""));
        let ask = serde_json::json!({
            "path": p, "query": q, "scope": {"project_id": big},
            "vshards": [[v, epoch]], "part": "whole",
        })
        .to_string();
        let agent = client();
        let [(r50, r99), (d50, d99)] = measure(
            rounds,
            [&|| get(&agent, &router, path, token), &|| {
                post(&agent, owner_server, "/internal/cluster/ask", &ask)
            }],
        );
        println!(
            "| {name} (owner {owner}) | {r50:.3} / {r99:.3} | {d50:.3} / {d99:.3} | {:.2}× |",
            r50 / d50
        );
    }
    println!("\n| request | router, three nodes p50 / p99 ms | one server p50 / p99 ms | cluster / one (p50) |");
    println!("|---|---|---|---|");
    for (name, path, token) in requests.iter().skip(2) {
        let agent = client();
        let [(r50, r99), (s50, s99)] = measure(
            rounds,
            [&|| get(&agent, &router, path, token), &|| {
                get(&agent, &reference, path, token)
            }],
        );
        println!(
            "| {name} | {r50:.3} / {r99:.3} | {s50:.3} / {s99:.3} | {:.2}× |",
            r50 / s50
        );
    }
    println!("\n| node | records | resident MiB | resident bytes / record |");
    println!("|---|---|---|---|");
    let states = cluster(&router);
    for (i, server) in nodes.iter().enumerate() {
        let name = format!("n{}", i + 1);
        let held = states["nodes"][&name]["records"].as_u64().unwrap_or(0);
        let rss = server.resident_bytes().unwrap_or(0);
        println!(
            "| {name} | {held} | {:.1} | {:.0} |",
            rss as f64 / 1048576.0,
            rss as f64 / held.max(1) as f64
        );
    }
    let rss = reference.resident_bytes().unwrap_or(0);
    println!(
        "| one server | {records} | {:.1} | {:.0} |",
        rss as f64 / 1048576.0,
        rss as f64 / records.max(1) as f64
    );
    // The owner of the big tenant dies: how long until its vshards are
    // served again, and until its tenant is answered.
    let count_path = &requests[0].1;
    let headers = [("X-Auth-Token", reader.as_str())];
    let killed = Instant::now();
    nodes[["n1", "n2", "n3"]
        .iter()
        .position(|n| *n == owner)
        .expect("a node")]
    .kill();
    let mut answered = None;
    let served = loop {
        if answered.is_none() && router.get(count_path, &headers).0 == 200 {
            // Through a new owner: a dead node answers nothing.
            let c = cluster(&router);
            if c["epochs"][v.to_string()]["node"] != owner.as_str() {
                answered = Some(killed.elapsed());
            }
        }
        let c = cluster(&router);
        if c["unavailable"].as_array().is_some_and(Vec::is_empty)
            && c["nodes"].as_object().is_some_and(|o| o.len() == 2)
        {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(600),
            "not served again: {c}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let answered = answered.unwrap_or(served);
    println!(
        "\nfailover: {owner} SIGKILLed; its vshards served again after {:.2} s, its biggest tenant \
         answered by another node after {:.2} s (lease {lease} s)",
        served.as_secs_f64(),
        answered.as_secs_f64()
    );
    let headers = [("X-Auth-Token", admin.as_str()), ("X-Min-LSN", at.as_str())];
    for (name, path, _) in requests.iter().skip(2) {
        assert_eq!(
            router.get(path, &headers),
            reference.get(path, &headers),
            "{name} after the failover"
        );
    }
}
