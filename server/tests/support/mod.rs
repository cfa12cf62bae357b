//! What the server's end-to-end tests share: a private PostgreSQL, the
//! schema, records written to it and read back as the reference, and the
//! server binary started as a child process.
#![allow(dead_code)]

mod cluster;
mod etcd;
pub mod random;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backdex::{Record, Store};
use serde_json::Value;

pub use self::cluster::Postgres;
#[allow(unused_imports)]
pub use self::etcd::Etcd;

/// The schema users create their database from.
pub const SCHEMA: &str = include_str!("../../sql/schema.sql");

/// The `backups` columns, with the cast each text parameter needs.
const COLUMNS: [(&str, &str); 26] = [
    ("id", "text"),
    ("checkpoint_id", "text"),
    ("project_id", "text"),
    ("enterprise_project_id", "text"),
    ("name", "text"),
    ("description", "text"),
    ("status", "text"),
    ("resource_id", "text"),
    ("resource_name", "text"),
    ("resource_type", "text"),
    ("resource_az", "text"),
    ("resource_size", "bigint"),
    ("image_type", "text"),
    ("policy_id", "text"),
    ("vault_id", "text"),
    ("provider_id", "text"),
    ("parent_id", "text"),
    ("dec", "boolean"),
    ("created_at", "timestamp"),
    ("updated_at", "timestamp"),
    ("protected_at", "timestamp"),
    ("expired_at", "timestamp"),
    ("extend_info", "jsonb"),
    ("backup_data", "jsonb"),
    ("replication_records", "jsonb"),
    ("children", "jsonb"),
];

/// A record's columns as text (SQL NULL as `None`).
pub fn texts(record: &Record) -> Vec<Option<String>> {
    let json = serde_json::to_value(record).expect("a record is JSON");
    COLUMNS
        .iter()
        .map(|(column, _)| match json.get(column) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        })
        .collect()
}

/// Inserts or replaces a record: its `backups` row and its members.
pub fn write(sql: &mut impl postgres::GenericClient, record: &Record) {
    let names: Vec<&str> = COLUMNS.iter().map(|(c, _)| *c).collect();
    let values: Vec<String> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (_, cast))| format!("${}::text::{cast}", i + 1))
        .collect();
    let updates: Vec<String> = names[1..]
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let statement = format!(
        "INSERT INTO backups ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}",
        names.join(", "),
        values.join(", "),
        updates.join(", ")
    );
    let params = texts(record);
    let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p as &(dyn postgres::types::ToSql + Sync))
        .collect();
    sql.execute(statement.as_str(), &refs)
        .expect("the record is inserted");
    sql.execute(
        "DELETE FROM backup_members WHERE backup_id = $1",
        &[&record.id],
    )
    .expect("members cleared");
    for m in &record.members {
        sql.execute(
            "INSERT INTO backup_members (backup_id, dest_project_id, status) VALUES ($1, $2, $3)",
            &[&record.id, &m.dest_project_id, &m.status.as_str()],
        )
        .expect("a member is inserted");
    }
}

/// Loads many records at once with `COPY … FROM STDIN` (text format).
pub fn copy_in(sql: &mut postgres::Client, records: &[Record]) {
    use std::io::Write;
    let escape = |out: &mut Vec<u8>, text: &str| {
        for b in text.bytes() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b => out.push(b),
            }
        }
    };
    let names: Vec<&str> = COLUMNS.iter().map(|(c, _)| *c).collect();
    let mut writer = sql
        .copy_in(format!("COPY backups ({}) FROM STDIN", names.join(", ")).as_str())
        .expect("COPY backups");
    let mut line = Vec::new();
    for r in records {
        line.clear();
        for (i, value) in texts(r).iter().enumerate() {
            if i > 0 {
                line.push(b'\t');
            }
            match value {
                None => line.extend_from_slice(b"\\N"),
                Some(text) => escape(&mut line, text),
            }
        }
        line.push(b'\n');
        writer.write_all(&line).expect("a row");
    }
    writer.finish().expect("COPY backups done");
    let mut writer = sql
        .copy_in("COPY backup_members (backup_id, dest_project_id, status) FROM STDIN")
        .expect("COPY backup_members");
    for r in records {
        for m in &r.members {
            line.clear();
            escape(&mut line, &r.id);
            line.push(b'\t');
            escape(&mut line, &m.dest_project_id);
            line.push(b'\t');
            line.extend_from_slice(m.status.as_str().as_bytes());
            line.push(b'\n');
            writer.write_all(&line).expect("a member");
        }
    }
    writer.finish().expect("COPY backup_members done");
}

/// Every record as PostgreSQL holds it, read through its own JSON
/// rendering (an independent path from the follower's): the reference.
pub fn reference(sql: &mut impl postgres::GenericClient) -> Store {
    let (store, refused) = reference_of_valid(sql);
    assert_eq!(refused, 0, "the database holds rows that are no records");
    store
}

/// [`reference`] of the rows that are records, and how many are not.
pub fn reference_of_valid(sql: &mut impl postgres::GenericClient) -> (Store, usize) {
    let rows = sql
        .query(
            "SELECT (to_jsonb(b) || jsonb_build_object('members', COALESCE(
                 (SELECT jsonb_agg(jsonb_build_object('dest_project_id', m.dest_project_id,
                                                      'status', m.status)
                                   ORDER BY m.dest_project_id)
                  FROM backup_members m WHERE m.backup_id = b.id), '[]'::jsonb)))::text
             FROM backups b",
            &[],
        )
        .expect("the reference query");
    let mut refused = 0;
    let records: Vec<Record> = rows
        .iter()
        .filter_map(|row| {
            let text: String = row.get(0);
            let json: Value = serde_json::from_str(&text).expect("JSON from PostgreSQL");
            let record = Record::from_json(&json).ok();
            refused += usize::from(record.is_none());
            record
        })
        .collect();
    let mut store = Store::new();
    store.upsert(&records).expect("valid records");
    (store, refused)
}

/// Every answer the server gives to a list of requests equals the
/// reference's, each read waiting for `at`.
pub fn assert_answers(
    server: &Server,
    want: &Store,
    at: &str,
    requests: &[(String, String)],
    context: &str,
) {
    for (path, token) in requests {
        let (status, body) = server.get(path, &[("X-Auth-Token", token), ("X-Min-LSN", at)]);
        let (p, q) = path.split_once('?').unwrap_or((path, ""));
        let expected = want.handle(p, q, &scope_of(token));
        if (status, body.as_str()) != (expected.status, expected.body.as_str()) {
            let at_byte = body
                .bytes()
                .zip(expected.body.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(body.len().min(expected.body.len()));
            let around = |s: &str| {
                let mut start = at_byte.saturating_sub(80).min(s.len());
                while !s.is_char_boundary(start) {
                    start -= 1;
                }
                let mut end = (at_byte + 80).min(s.len());
                while !s.is_char_boundary(end) {
                    end += 1;
                }
                s[start..end].to_owned()
            };
            panic!(
                "{context}: {path} as {token} at {at}: status {status}, want {}; bodies differ at byte {at_byte} of {} / {}:\n got: …{}…\nwant: …{}…\n--- server log (last lines):\n{}",
                expected.status,
                body.len(),
                expected.body.len(),
                around(&body),
                around(&expected.body),
                server.log_tail(30)
            );
        }
    }
}

/// The scope a token of [`tokens_file`] grants.
pub fn scope_of(token: &str) -> backdex::Scope {
    match token.split_once('-') {
        Some(("admin", p)) => backdex::Scope {
            admin: true,
            ..backdex::Scope::project(p)
        },
        Some((_, p)) => backdex::Scope::project(p),
        None => backdex::Scope::project(token),
    }
}

/// Requests that look at everything: each project's v1 list and count,
/// its shared backups, and admin pages over every tenant.
pub fn whole_view(projects: &[String]) -> Vec<(String, String)> {
    let mut requests = Vec::new();
    for p in projects {
        let reader = format!("reader-{p}");
        requests.push((format!("/v1/{p}/checkpoint_items/count?"), reader.clone()));
        requests.push((
            format!("/v1/{p}/checkpoint_items?limit=1000"),
            reader.clone(),
        ));
        requests.push((
            format!("/v3/{p}/backups?own_type=all_granted&limit=1000"),
            reader.clone(),
        ));
        requests.push((
            format!("/v2/{p}/os-vendor-backup-sharing/count?share_to_me=true"),
            reader,
        ));
    }
    if let Some(p) = projects.first() {
        requests.push((
            format!("/v3/{p}/backups?all_tenants=true&limit=1000&sort=name:asc"),
            format!("admin-{p}"),
        ));
    }
    requests
}

/// A benchmark's setting from the environment, or its default.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The projects of `records`, sorted.
pub fn projects_of(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.project_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Shares each of the first `n` records with a random other project
/// (accepted), so that sharing requests have answers.
pub fn share_across(
    records: &mut [Record],
    projects: &[String],
    rng: &mut backdex::synth::Rng,
    n: usize,
) {
    for r in records.iter_mut().take(n) {
        let dest = random::pick(rng, projects).clone();
        if dest != r.project_id {
            r.members = vec![backdex::Member {
                dest_project_id: dest,
                status: backdex::MemberStatus::Accept,
            }];
        }
    }
}

/// Writes every record in one transaction.
pub fn write_all(sql: &mut postgres::Client, records: &[Record]) {
    let mut tx = sql.transaction().expect("a transaction");
    for r in records {
        write(&mut tx, r);
    }
    tx.commit().expect("committed");
}

/// The current WAL position, after the caller's commits.
pub fn wal_position(sql: &mut impl postgres::GenericClient) -> String {
    sql.query_one("SELECT pg_current_wal_lsn()::text", &[])
        .expect("the WAL position")
        .get(0)
}

/// A position `X/Y` as a number, to compare.
pub fn lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

/// An HTTP client that hands back every status as an answer.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A response's status and body.
fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
    let mut response = response.expect("an HTTP answer");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().expect("a body"),
    )
}

/// `backdex-server` as a child process, its stderr kept.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the binary with `args` and waits for its listening line.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_backdex-server"))
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
                lines.lock().expect("log").push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server did not listen: {:?}", log.lock().expect("log")))
            .parse()
            .expect("an address");
        Server { child, addr, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().expect("log");
        log[log.len().saturating_sub(n)..].join("\n")
    }

    /// `GET path?query` with headers: the status and the body.
    pub fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut request = agent().get(format!("http://{}{path_and_query}", self.addr));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        answer(request.call())
    }

    /// `POST path` with a body: the status and the body.
    pub fn post(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut request = agent().post(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        answer(request.send(body))
    }

    pub fn health(&self) -> Value {
        let (_, body) = self.get("/healthz", &[]);
        serde_json::from_str(&body).expect("healthz is JSON")
    }

    /// Waits until `/healthz` satisfies `ready`, at most `limit`.
    pub fn wait_until(&self, limit: Duration, ready: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let health = self.health();
            if ready(&health) {
                return health;
            }
            assert!(
                start.elapsed() < limit,
                "not ready after {limit:?}: {health}\n{}",
                self.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in bytes (Linux), as /proc reads it.
    pub fn resident_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(kb * 1024)
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the process to end.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("the server ends")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster node following `pg` for the vshards it owns, registered in
/// `etcd` with a lease of `lease_secs`.
pub fn cluster_node(pg: &Postgres, etcd: &Etcd, name: &str, lease_secs: u64) -> Server {
    Server::start(&[
        "--follow",
        &pg.url(),
        "--etcd",
        &etcd.endpoint,
        "--node",
        name,
        "--lease-ttl-secs",
        &lease_secs.to_string(),
        "--heartbeat-ms",
        "200",
    ])
}

/// A router over `etcd`'s cluster, its requests waiting at most
/// `patience_ms` for a vshard's owner.
pub fn cluster_router(etcd: &Etcd, tokens: &Path, patience_ms: u64) -> Server {
    Server::start(&[
        "--role",
        "router",
        "--etcd",
        &etcd.endpoint,
        "--tokens",
        tokens.to_str().expect("a path"),
        "--patience-ms",
        &patience_ms.to_string(),
    ])
}

/// One server following `pg` whole, under the slot `reference`: the
/// answers a cluster must give.
pub fn reference_follower(pg: &Postgres, tokens: &Path) -> Server {
    Server::start(&[
        "--follow",
        &pg.url(),
        "--slot",
        "reference",
        "--tokens",
        tokens.to_str().expect("a path"),
    ])
}

/// The router's `GET /cluster`.
pub fn cluster_map(router: &Server) -> Value {
    let (status, body) = router.get("/cluster", &[]);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("/cluster is JSON")
}

/// The owner of `vshard` in a `GET /cluster` answer, and its epoch.
pub fn owner_of(map: &Value, vshard: u32) -> (String, u64) {
    let entry = &map["epochs"][vshard.to_string()];
    let node = entry["node"].as_str().expect("an owner").to_owned();
    (node, entry["epoch"].as_u64().expect("an epoch"))
}

/// A tokens file in `dir`: for every project, a reader (`reader-P`) and
/// an admin (`admin-P`).
pub fn tokens_file(dir: &Path, projects: &[String]) -> PathBuf {
    let mut tokens = serde_json::Map::new();
    for p in projects {
        tokens.insert(
            format!("reader-{p}"),
            serde_json::json!({"project_id": p, "admin": false, "granted_eps": null}),
        );
        tokens.insert(
            format!("admin-{p}"),
            serde_json::json!({"project_id": p, "admin": true, "granted_eps": null}),
        );
    }
    let path = dir.join("tokens.json");
    std::fs::write(&path, Value::Object(tokens).to_string()).expect("tokens written");
    path
}
