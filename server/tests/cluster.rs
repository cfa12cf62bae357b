//! A cluster against real services, all started by the test: PostgreSQL,
//! etcd, three nodes that follow the database for the vshards they own,
//! and a router. Its answers equal, byte for byte, those of one server
//! following the same database (admin pages and full marker walks that
//! cross shards included), before and after writes; a node killed with
//! SIGKILL under load gives only exact answers or 503s, and the window is
//! measured; a fourth node takes its vshards over with every answer
//! exact.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backdex::synth::{generate, Rng, SynthConfig};
use backdex::{vshard_of, Record};
use serde_json::Value;
use support::random::{change, request};
use support::{
    cluster_map, cluster_node, cluster_router, owner_of, projects_of, reference_follower,
    share_across, tokens_file, wal_position, write_all, Etcd, Postgres, Server,
};

fn records(n: usize, seed: u64) -> Vec<Record> {
    generate(&SynthConfig {
        records: n,
        projects: 24,
        seed,
        slim: false,
    })
    .collect()
}

fn node(pg: &Postgres, etcd: &Etcd, name: &str) -> Server {
    cluster_node(pg, etcd, name, 2)
}

fn cluster(router: &Server) -> Value {
    cluster_map(router)
}

/// Whether the cluster serves every vshard from `nodes`, each record held
/// once (every old owner has dropped what moved).
fn settled(router: &Server, nodes: &[&str], records: Option<u64>) -> bool {
    let c = cluster(router);
    let names: BTreeSet<&str> = c["nodes"]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let held: u64 = c["nodes"]
        .as_object()
        .map(|o| o.values().filter_map(|n| n["records"].as_u64()).sum())
        .unwrap_or(0);
    c["unavailable"].as_array().is_some_and(Vec::is_empty)
        && names == nodes.iter().copied().collect()
        && nodes.iter().all(|n| {
            c["nodes"][n]["vshards"]
                .as_array()
                .is_some_and(|v| !v.is_empty())
        })
        && records.is_none_or(|n| held == n)
}

fn wait_settled(
    router: &Server,
    servers: &[Server],
    nodes: &[&str],
    records: Option<u64>,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    while !settled(router, nodes, records) {
        assert!(
            started.elapsed() < limit,
            "the cluster did not settle on {nodes:?} in {limit:?}: {}\n{}\n--- nodes:\n{}",
            cluster(router),
            router.log_tail(20),
            servers
                .iter()
                .map(|s| s.log_tail(15))
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// The router's answer equals the reference server's, both reading at
/// `at` (when given).
fn same(
    router: &Server,
    reference: &Server,
    path: &str,
    token: &str,
    at: Option<&str>,
) -> (u16, String) {
    let mut headers = vec![("X-Auth-Token", token)];
    if let Some(at) = at {
        headers.push(("X-Min-LSN", at));
    }
    let want = reference.get(path, &headers);
    let got = router.get(path, &headers);
    assert_eq!(
        got,
        want,
        "{path} as {token}: the router's answer differs from one server's\n--- router:\n{}",
        router.log_tail(20)
    );
    got
}

/// Walks a list by its markers to the end through both, page by page.
fn walk(
    router: &Server,
    reference: &Server,
    path: &str,
    base: &str,
    token: &str,
    at: &str,
) -> usize {
    let mut marker: Option<String> = None;
    let mut seen = 0;
    for _ in 0..1000 {
        let query = match &marker {
            Some(m) => format!("{base}&marker={m}"),
            None => base.to_owned(),
        };
        let (status, body) = same(
            router,
            reference,
            &format!("{path}?{query}"),
            token,
            Some(at),
        );
        assert_eq!(status, 200, "{body}");
        let json: Value = serde_json::from_str(&body).expect("JSON");
        let items = json
            .get("checkpoint_items")
            .or_else(|| json.get("backups"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let Some(last) = items.last() else {
            return seen;
        };
        seen += items.len();
        marker = last["id"].as_str().map(str::to_owned);
    }
    panic!("the walk of {path}?{base} did not end");
}

/// A request (path, token) and the answer it must get.
type Expected = (String, String, (u16, String));

/// What readers saw while the cluster changed.
#[derive(Default)]
struct Seen {
    exact: usize,
    /// The slowest answer.
    slowest: Duration,
    unavailable: Vec<Instant>,
    wrong: Vec<String>,
}

/// Readers asking the router `requests` (with their expected answers) in
/// a loop until `stop`.
fn readers(
    router: &Server,
    requests: Arc<Vec<Expected>>,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Seen>>, Vec<std::thread::JoinHandle<()>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let addr = router.addr;
    let threads = (0..2)
        .map(|t| {
            let (requests, stop, seen) = (requests.clone(), stop.clone(), seen.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(30)))
                    .build()
                    .into();
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let (path, token, want) = &requests[i % requests.len()];
                    i += 1;
                    let asked = Instant::now();
                    let mut response = agent
                        .get(format!("http://{addr}{path}"))
                        .header("X-Auth-Token", token)
                        .call()
                        .expect("an HTTP answer");
                    let status = response.status().as_u16();
                    let body = response.body_mut().read_to_string().expect("a body");
                    let mut seen = seen.lock().expect("seen");
                    seen.slowest = seen.slowest.max(asked.elapsed());
                    if (status, &body) == (want.0, &want.1) {
                        seen.exact += 1;
                    } else if status == 503 && body.contains("ShardUnavailable") {
                        seen.unavailable.push(Instant::now());
                    } else {
                        seen.wrong
                            .push(format!("{path} as {token}: {status} {body:.300}"));
                    }
                }
            })
        })
        .collect();
    (seen, threads)
}

/// Stops the readers and takes what they saw.
fn finish(
    stop: &AtomicBool,
    threads: Vec<std::thread::JoinHandle<()>>,
    seen: &Mutex<Seen>,
) -> Seen {
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a reader");
    }
    std::mem::take(&mut *seen.lock().expect("seen"))
}

#[test]
fn a_cluster_answers_as_one_server_through_failover_and_growth() {
    let pg = Postgres::start();
    let mut sql = pg.client();
    sql.batch_execute(support::SCHEMA).expect("the schema");
    let mut initial = records(1200, 11);
    let projects = projects_of(&initial);
    // The database computes every tenant's vshard as the library does.
    let mut probes: Vec<String> = projects.clone();
    probes.extend(["", "é-ü-项目", "0", "a much longer project identifier"].map(String::from));
    for p in &probes {
        let v: i32 = sql
            .query_one("SELECT backdex_vshard($1)", &[p])
            .expect("backdex_vshard")
            .get(0);
        assert_eq!(v as u32, vshard_of(p), "the vshard of {p:?}");
    }
    let vshards: BTreeSet<u32> = projects.iter().map(|p| vshard_of(p)).collect();
    assert!(vshards.len() >= 12, "the tenants spread: {vshards:?}");
    // Sharing across tenants, so that sharing requests fan out for real.
    let mut rng = Rng::new(5);
    share_across(&mut initial, &projects, &mut rng, 400);
    write_all(&mut sql, &initial);
    let mut ids: Vec<String> = initial.iter().map(|r| r.id.clone()).collect();
    let known: BTreeSet<String> = ids.iter().cloned().collect();
    let mut fresh: Vec<Record> = records(800, 12)
        .into_iter()
        .filter(|r| !known.contains(&r.id) && projects.contains(&r.project_id))
        .collect();

    let dir = pg.dir().join("cluster");
    std::fs::create_dir_all(&dir).expect("a directory");
    let tokens = tokens_file(&dir, &projects);
    let etcd = Etcd::start();
    // One server holding everything: the answers the cluster must give.
    let reference = reference_follower(&pg, &tokens);
    let mut nodes: Vec<Server> = ["n1", "n2", "n3"]
        .iter()
        .map(|name| node(&pg, &etcd, name))
        .collect();
    let router = cluster_router(&etcd, &tokens, 3000);
    let count = |sql: &mut postgres::Client| -> u64 {
        let n: i64 = sql
            .query_one("SELECT count(*) FROM backups", &[])
            .expect("a count")
            .get(0);
        n as u64
    };
    let total = count(&mut sql);
    let took = wait_settled(
        &router,
        &nodes,
        &["n1", "n2", "n3"],
        Some(total),
        Duration::from_secs(60),
    );
    eprintln!("three nodes serve every vshard after {took:?}");

    // Random requests and the whole view, through the router and through
    // one server.
    let at = wal_position(&mut sql);
    let mut checked = 0;
    for _ in 0..250 {
        let (path, token) = request(&mut rng, &projects, &ids);
        same(&router, &reference, &path, &token, Some(&at));
        checked += 1;
    }
    for (path, token) in support::whole_view(&projects) {
        same(&router, &reference, &path, &token, Some(&at));
        checked += 1;
    }
    // Full marker walks that cross shards: admin pages over every tenant,
    // and a tenant's shared backups, which live on other nodes.
    let (p0, p1) = (&projects[0], &projects[1]);
    let admin = format!("admin-{p0}");
    let walked = walk(
        &router,
        &reference,
        &format!("/v1/{p0}/checkpoint_items"),
        "all_tenants=true&limit=7",
        &admin,
        &at,
    );
    assert_eq!(walked as u64, total, "an admin walk sees every record once");
    walk(
        &router,
        &reference,
        &format!("/v3/{p0}/backups"),
        "all_tenants=true&limit=9&sort=name:asc,created_at:desc",
        &admin,
        &at,
    );
    walk(
        &router,
        &reference,
        &format!("/v3/{p0}/backups"),
        "all_tenants=true&limit=5&sort=status:desc&offset=1",
        &admin,
        &at,
    );
    walk(
        &router,
        &reference,
        &format!("/v3/{p1}/backups"),
        "own_type=all_granted&limit=4",
        &format!("reader-{p1}"),
        &at,
    );
    walk(
        &router,
        &reference,
        &format!("/v3/{p1}/backups"),
        "own_type=shared&limit=3&sort=updated_at:asc",
        &format!("reader-{p1}"),
        &at,
    );
    // The router passes the library's errors through as they are.
    for (path, token) in [
        (
            format!("/v1/{p0}/checkpoint_items?limit=0"),
            format!("reader-{p0}"),
        ),
        (
            format!("/v1/{p0}/checkpoint_items?all_tenants=true&marker=nope"),
            admin.clone(),
        ),
        (format!("/v1/{p1}/checkpoint_items"), format!("reader-{p0}")),
        (format!("/v9/{p0}/nothing"), format!("reader-{p0}")),
    ] {
        let (status, _) = same(&router, &reference, &path, &token, Some(&at));
        assert_ne!(status, 200, "{path}");
    }
    let (status, _) = router.get(&format!("/v1/{p0}/checkpoint_items"), &[]);
    assert_eq!(status, 401);

    // Writes through PostgreSQL reach the node that owns their tenant.
    for round in 0..8 {
        let mut tx = sql.transaction().expect("a transaction");
        for _ in 0..1 + rng.below(6) {
            change(&mut tx, &mut rng, &mut ids, &mut fresh, &projects);
        }
        tx.commit().expect("committed");
        let at = wal_position(&mut sql);
        for _ in 0..25 {
            let (path, token) = request(&mut rng, &projects, &ids);
            same(&router, &reference, &path, &token, Some(&at));
        }
        for (path, token) in support::whole_view(&projects) {
            same(&router, &reference, &path, &token, Some(&at));
        }
        checked += 25;
        eprintln!("round {round}: exact");
    }
    let at = wal_position(&mut sql);
    let map = cluster(&router);
    for p in projects.iter().take(6) {
        let v = vshard_of(p);
        let (owner, epoch) = owner_of(&map, v);
        let n: i64 = sql
            .query_one("SELECT count(*) FROM backups WHERE project_id = $1", &[p])
            .expect("a count")
            .get(0);
        for (name, server) in ["n1", "n2", "n3"].iter().zip(&nodes) {
            let ask = serde_json::json!({
                "path": format!("/v1/{p}/checkpoint_items/count"), "query": "",
                "scope": {"project_id": p}, "vshards": [[v, epoch]], "part": "whole"
            });
            let (status, body) = server.post(
                "/internal/cluster/ask",
                &ask.to_string(),
                &[("X-Min-LSN", &at)],
            );
            if *name == owner {
                assert_eq!(
                    (status, body),
                    (200, format!("{{\"count\":{n}}}")),
                    "{p} on its owner {name}"
                );
            } else {
                assert_eq!(status, 409, "{p} on {name}, which does not own it: {body}");
            }
        }
    }
    eprintln!("{checked} requests and the walks exact on three nodes");

    // The expected answers of a fixed set of requests, now that writes
    // have stopped: the readers check every answer against them.
    let total = count(&mut sql);
    let mut fixed: Vec<Expected> = Vec::new();
    for (path, token) in support::whole_view(&projects)
        .into_iter()
        .chain((0..60).map(|_| request(&mut rng, &projects, &ids)))
    {
        let want = reference.get(&path, &[("X-Auth-Token", &token), ("X-Min-LSN", &at)]);
        fixed.push((path, token, want));
    }
    let fixed = Arc::new(fixed);

    // One node killed under load.
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, threads) = readers(&router, fixed.clone(), stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    nodes[1].kill();
    let served_again = wait_settled(
        &router,
        &nodes,
        &["n1", "n3"],
        Some(total),
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_millis(500));
    let seen = finish(&stop, threads, &seen);
    assert!(
        seen.wrong.is_empty(),
        "answers neither exact nor 503 after a node's death: {:?}",
        seen.wrong
    );
    let window = match (seen.unavailable.first(), seen.unavailable.last()) {
        (Some(first), Some(last)) => format!(
            "503s from +{} ms to +{} ms",
            first.duration_since(killed).as_millis(),
            last.duration_since(killed).as_millis()
        ),
        _ => "no 503".to_owned(),
    };
    eprintln!(
        "failover: {} exact, {} ShardUnavailable ({window}), slowest answer {} ms, every vshard served again {} ms after the SIGKILL",
        seen.exact,
        seen.unavailable.len(),
        seen.slowest.as_millis(),
        served_again.as_millis()
    );
    assert!(seen.exact > 0, "the readers were answered");

    // A fourth node: vshards move to it while every answer stays exact.
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, threads) = readers(&router, fixed.clone(), stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let added = Instant::now();
    nodes.push(node(&pg, &etcd, "n4"));
    let grown = wait_settled(
        &router,
        &nodes,
        &["n1", "n3", "n4"],
        Some(total),
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_millis(500));
    let seen = finish(&stop, threads, &seen);
    let moved = cluster(&router)["nodes"]["n4"]["vshards"]
        .as_array()
        .map_or(0, Vec::len);
    eprintln!(
        "growth: {moved} vshards moved to n4 in {} ms (started {} ms after the readers); {} exact, {} ShardUnavailable",
        grown.as_millis(),
        added.elapsed().as_millis().saturating_sub(grown.as_millis()),
        seen.exact,
        seen.unavailable.len()
    );
    assert!(
        seen.wrong.is_empty(),
        "answers not exact while vshards moved: {:?}",
        seen.wrong
    );
    assert!(
        seen.unavailable.is_empty(),
        "503s while vshards moved to a new node: {}",
        seen.unavailable.len()
    );
    assert!(moved > 0);
    // And after the moves, the whole view once more.
    for (path, token) in support::whole_view(&projects) {
        same(&router, &reference, &path, &token, Some(&at));
    }

    // Vshards move while a writer commits: n4 dies and its vshards are
    // loaded by the others, then n5 joins. Each load joins the stream at
    // its copy's position; afterwards every answer equals one server's.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, mut sql, projects) = (stop.clone(), pg.client(), projects.clone());
        let (mut ids, mut fresh, mut rng) = (ids, fresh, Rng::new(99));
        std::thread::spawn(move || {
            let mut commits = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut tx = sql.transaction().expect("a transaction");
                for _ in 0..1 + rng.below(4) {
                    change(&mut tx, &mut rng, &mut ids, &mut fresh, &projects);
                }
                tx.commit().expect("committed");
                commits += 1;
                std::thread::sleep(Duration::from_millis(3));
            }
            (ids, commits)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    nodes[3].kill();
    wait_settled(
        &router,
        &nodes,
        &["n1", "n3"],
        None,
        Duration::from_secs(60),
    );
    nodes.push(node(&pg, &etcd, "n5"));
    wait_settled(
        &router,
        &nodes,
        &["n1", "n3", "n5"],
        None,
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (ids, commits) = writer.join().expect("the writer");
    let total = count(&mut sql);
    wait_settled(
        &router,
        &nodes,
        &["n1", "n3", "n5"],
        Some(total),
        Duration::from_secs(60),
    );
    let at = wal_position(&mut sql);
    for (path, token) in support::whole_view(&projects) {
        same(&router, &reference, &path, &token, Some(&at));
    }
    for _ in 0..150 {
        let (path, token) = request(&mut rng, &projects, &ids);
        same(&router, &reference, &path, &token, Some(&at));
    }
    let walked = walk(
        &router,
        &reference,
        &format!("/v1/{p0}/checkpoint_items"),
        "all_tenants=true&limit=50",
        &admin,
        &at,
    );
    assert_eq!(walked as u64, total);
    eprintln!(
        "{commits} transactions committed while vshards moved twice: every answer exact afterwards"
    );
    drop(nodes);
}

/// A node frozen (SIGSTOP) past its lease: the other node takes its
/// vshards over and answers for them; thawed, the frozen node refuses to
/// answer for what it served before, registers again and, the policy
/// naming it again, loads its vshards back under new epochs.
#[test]
fn a_node_that_loses_its_lease_stops_answering() {
    let pg = Postgres::start();
    let mut sql = pg.client();
    sql.batch_execute(support::SCHEMA).expect("the schema");
    let initial = records(300, 21);
    write_all(&mut sql, &initial);
    let projects = projects_of(&initial);
    let dir = pg.dir().join("lease");
    std::fs::create_dir_all(&dir).expect("a directory");
    let tokens = tokens_file(&dir, &projects);
    let etcd = Etcd::start();
    let nodes: Vec<Server> = ["n1", "n2"].iter().map(|n| node(&pg, &etcd, n)).collect();
    let router = cluster_router(&etcd, &tokens, 2000);
    let total = initial.len() as u64;
    wait_settled(
        &router,
        &nodes,
        &["n1", "n2"],
        Some(total),
        Duration::from_secs(60),
    );
    // A tenant on n1, its vshard's epoch, and its count in SQL.
    let map = cluster(&router);
    let p = projects
        .iter()
        .find(|p| map["epochs"][vshard_of(p).to_string()]["node"] == "n1")
        .expect("a tenant on n1")
        .clone();
    let v = vshard_of(&p);
    let (_, epoch) = owner_of(&map, v);
    let n: i64 = sql
        .query_one("SELECT count(*) FROM backups WHERE project_id = $1", &[&p])
        .expect("a count")
        .get(0);
    let want = (200, format!("{{\"count\":{n}}}"));
    let path = format!("/v1/{p}/checkpoint_items/count");
    let token = format!("reader-{p}");
    assert_eq!(router.get(&path, &[("X-Auth-Token", &token)]), want);
    let ask = serde_json::json!({
        "path": path, "query": "", "scope": {"project_id": p},
        "vshards": [[v, epoch]], "part": "whole"
    })
    .to_string();
    assert_eq!(nodes[0].post("/internal/cluster/ask", &ask, &[]), want);

    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &nodes[0].pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    };
    signal("-STOP");
    // The lease (2 s) expires; n2 takes n1's vshards over.
    wait_settled(
        &router,
        &nodes,
        &["n2"],
        Some(total),
        Duration::from_secs(60),
    );
    assert_eq!(router.get(&path, &[("X-Auth-Token", &token)]), want);
    signal("-CONT");
    // Thawed, n1 knows its lease is past: it answers nothing as before.
    let (status, body) = nodes[0].post("/internal/cluster/ask", &ask, &[]);
    assert_eq!(status, 409, "a node without its lease answered: {body}");
    // It registers again and the policy gives it its vshards back.
    wait_settled(
        &router,
        &nodes,
        &["n1", "n2"],
        Some(total),
        Duration::from_secs(60),
    );
    let started = Instant::now();
    let again = loop {
        let again = cluster(&router)["epochs"][v.to_string()].clone();
        if again["node"] == "n1" {
            break again;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "vshard {v} stays on {again}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    wait_settled(
        &router,
        &nodes,
        &["n1", "n2"],
        Some(total),
        Duration::from_secs(60),
    );
    assert!(
        again["epoch"].as_u64() > Some(epoch + 1),
        "two take-overs since: {again}"
    );
    assert_eq!(router.get(&path, &[("X-Auth-Token", &token)]), want);
    assert_eq!(
        nodes[0].post("/internal/cluster/ask", &ask, &[]).0,
        409,
        "the old epoch is gone"
    );
}
