//! End to end: the server on 127.0.0.1:0, a real HTTP client (ureq), every
//! route, 401/403/413, a write followed by a read that sees it, and a few
//! hundred random requests whose HTTP answers must equal the library's.

use std::net::SocketAddr;
use std::sync::OnceLock;

use serde_json::{json, Value};

use super::*;

const MAX_BODY: usize = 64 << 10;

/// The project the write test writes to and reads back.
const E2E_PROJECT: &str = "e2e-writes";

/// Held by the test that writes, and by the tests that compare the
/// server's answers with the library's (admin answers see every tenant):
/// the tests of this binary run in parallel on one server.
static WRITES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    WRITES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Server {
    addr: SocketAddr,
    engine: Arc<Engine>,
    big: String,
    tokens: HashMap<String, Grant>,
}

fn grant(value: Value) -> Grant {
    serde_json::from_value(value).expect("a valid grant")
}

/// One server for the whole test binary, on its own runtime thread.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let records: Vec<Record> = backdex::synth::generate(&backdex::synth::SynthConfig {
            records: 3_000,
            projects: 20,
            slim: true,
            ..Default::default()
        })
        .collect();
        let mut per_project: HashMap<&str, usize> = HashMap::new();
        for r in &records {
            *per_project.entry(&r.project_id).or_default() += 1;
        }
        let big = per_project
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(p, _)| p.to_string())
            .expect("records");
        let engine = Arc::new(Engine::new());
        engine.upsert(&records).expect("valid records");
        let tokens: HashMap<String, Grant> = [
            ("reader", json!({"project_id": big})),
            ("admin", json!({"project_id": big, "admin": true})),
            ("granted", json!({"project_id": big, "granted_eps": ["0"]})),
            ("writer", json!({"project_id": "ops", "write": true})),
            // The write test's own tenant: its records never show in the
            // answers the other tests compare while it runs beside them.
            ("e2e-reader", json!({"project_id": E2E_PROJECT})),
        ]
        .into_iter()
        .map(|(t, g)| (t.to_owned(), grant(g)))
        .collect();
        let state = AppState {
            engine: engine.clone(),
            tokens: Arc::new(tokens.clone()),
            max_body: MAX_BODY,
            follower: None,
            min_lsn_timeout: std::time::Duration::from_secs(1),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            node: None,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("a loopback port");
                tx.send(listener.local_addr().expect("an address"))
                    .expect("the test waits");
                axum::serve(listener, app(state)).await.expect("serves");
            });
        });
        let addr = rx.recv().expect("the server started");
        Server {
            addr,
            engine,
            big,
            tokens,
        }
    })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// GET `target` with an optional token: (status, body).
fn get(target: &str, token: Option<&str>) -> (u16, String) {
    let url = format!("http://{}{target}", server().addr);
    let mut request = agent().get(&url);
    if let Some(token) = token {
        request = request.header("X-Auth-Token", token);
    }
    let mut response = request.call().expect("the server answers");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().expect("a text body");
    (status, body)
}

/// POST `body` to `route` with an optional token: (status, body).
fn post(route: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let url = format!("http://{}{route}", server().addr);
    let mut request = agent()
        .post(&url)
        .header("Content-Type", "application/json");
    if let Some(token) = token {
        request = request.header("X-Auth-Token", token);
    }
    let mut response = request.send(body).expect("the server answers");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().expect("a text body");
    (status, body)
}

fn code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).expect("a JSON body");
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// What the library answers for the same request and token.
fn library(path: &str, query: &str, token: &str) -> (u16, String) {
    let s = server();
    let answer = s
        .engine
        .snapshot()
        .handle(path, query, &s.tokens[token].scope);
    (answer.status, answer.body)
}

#[test]
fn the_four_routes_answer_what_the_library_answers() {
    let _alone = exclusive();
    let big = &server().big;
    for (path, query) in [
        (
            format!("/v1/{big}/checkpoint_items"),
            "limit=5&sort=name:asc",
        ),
        (
            format!("/v1/{big}/checkpoint_items/count"),
            "status=available",
        ),
        (format!("/v3/{big}/backups"), "own_type=all_granted&limit=3"),
        (
            format!("/v2/{big}/os-vendor-backup-sharing/count"),
            "share_to_me=true",
        ),
    ] {
        let got = get(&format!("{path}?{query}"), Some("reader"));
        assert_eq!(got.0, 200, "{path}: {}", got.1);
        assert_eq!(got, library(&path, query, "reader"), "{path}?{query}");
    }
    let (status, body) = get("/healthz", None);
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(health["status"], "ok");
    assert!(health["records"].as_u64().is_some_and(|n| n >= 3_000));
}

#[test]
fn tokens_are_checked_before_anything_else() {
    let big = &server().big;
    let v1 = format!("/v1/{big}/checkpoint_items/count");
    let missing = get(&v1, None);
    assert_eq!((missing.0, code(&missing.1)), (401, "Unauthorized".into()));
    let unknown = get(&v1, Some("nobody"));
    assert_eq!((unknown.0, code(&unknown.1)), (401, "Unauthorized".into()));
    let write = post("/internal/records:upsert", None, b"[]");
    assert_eq!(write.0, 401, "{}", write.1);
    // A reader may not write, whatever the body.
    for route in ["/internal/records:upsert", "/internal/records:delete"] {
        let (status, body) = post(route, Some("reader"), b"[]");
        assert_eq!((status, code(&body)), (403, "Forbidden".into()), "{route}");
    }
    // The library decides the rest: another project, all_tenants, eps.
    let other = get("/v1/someone-else/checkpoint_items", Some("reader"));
    assert_eq!((other.0, code(&other.1)), (403, "Forbidden".into()));
    let all = get(&format!("{v1}?all_tenants=true"), Some("reader"));
    assert_eq!(all.0, 403);
    let admin = get(&format!("{v1}?all_tenants=true"), Some("admin"));
    assert_eq!(admin.0, 200, "{}", admin.1);
    let ep = get(
        &format!("/v3/{big}/backups?enterprise_project_id=ep-x"),
        Some("granted"),
    );
    assert_eq!(ep.0, 403, "{}", ep.1);
    let unknown_route = get(&format!("/v9/{big}/backups"), Some("reader"));
    assert_eq!(
        (unknown_route.0, code(&unknown_route.1)),
        (404, "NotFound".into())
    );
    let wrong_method = post(&format!("/v1/{big}/checkpoint_items"), Some("writer"), b"");
    assert_eq!(wrong_method.0, 405);
}

#[test]
fn bodies_over_the_limit_are_refused() {
    let big = vec![b' '; MAX_BODY + 1];
    let (status, body) = post("/internal/records:upsert", Some("writer"), &big);
    assert_eq!(
        (status, code(&body)),
        (413, "PayloadTooLarge".into()),
        "{body}"
    );
    let bad = post("/internal/records:upsert", Some("writer"), b"[{");
    assert_eq!((bad.0, code(&bad.1)), (400, "InvalidParameter".into()));
}

#[test]
fn a_write_is_visible_to_the_next_read() {
    let _alone = exclusive();
    let record = json!({
        "id": "e2e-1", "checkpoint_id": "c", "project_id": E2E_PROJECT, "name": "e2e_written",
        "status": "available", "resource_id": "vm-e2e", "resource_type": "OS::Nova::Server",
        "resource_az": "az1", "created_at": "2030-01-01T00:00:00", "updated_at": "2030-01-01T00:00:00"
    });
    let count = format!("/v1/{E2E_PROJECT}/checkpoint_items/count?name=e2e_written");
    assert_eq!(get(&count, Some("e2e-reader")).1, r#"{"count":0}"#);
    let (status, body) = post(
        "/internal/records:upsert",
        Some("writer"),
        json!([record]).to_string().as_bytes(),
    );
    assert_eq!((status, body.as_str()), (200, r#"{"count":1}"#));
    assert_eq!(get(&count, Some("e2e-reader")).1, r#"{"count":1}"#);
    // A bad batch is refused whole: the good record in it is not applied.
    let mut second = record.clone();
    second["id"] = json!("e2e-2");
    let bad = json!([second, {"id": "e2e-3"}]);
    let refused = post(
        "/internal/records:upsert",
        Some("writer"),
        bad.to_string().as_bytes(),
    );
    assert_eq!(refused.0, 400, "{}", refused.1);
    assert!(refused.1.contains("record 1"), "{}", refused.1);
    assert_eq!(get(&count, Some("e2e-reader")).1, r#"{"count":1}"#);
    let (status, _) = post("/internal/records:delete", Some("writer"), br#"["e2e-1"]"#);
    assert_eq!(status, 200);
    assert_eq!(get(&count, Some("e2e-reader")).1, r#"{"count":0}"#);
    let unknown = post("/internal/records:delete", Some("writer"), br#"["e2e-1"]"#);
    assert_eq!(unknown.0, 400, "{}", unknown.1);
}

#[test]
fn random_requests_get_the_librarys_answers_over_http() {
    let _alone = exclusive();
    let big = server().big.clone();
    let paths = [
        format!("/v1/{big}/checkpoint_items"),
        format!("/v1/{big}/checkpoint_items/count"),
        format!("/v3/{big}/backups"),
        format!("/v2/{big}/os-vendor-backup-sharing/count"),
        "/v1/other/checkpoint_items".to_owned(),
    ];
    let params = [
        "status=available",
        "status=error",
        "limit=3",
        "limit=0",
        "offset=2",
        "sort=name:asc,created_at:desc",
        "sort=bogus",
        "name=autobk",
        "all_tenants=true",
        "own_type=shared",
        "own_type=all_granted",
        "member_status=pending",
        "share_to_me=true",
        "start_time=2026-01-01T00:00:00",
        "end_time=2026-06-01T00:00:00Z",
        "image_type=replication",
        "enterprise_project_id=all_granted_eps",
        "marker=nope",
        "dec=true",
        "foo=bar",
    ];
    let tokens = ["reader", "admin", "granted"];
    let mut rng = backdex::synth::Rng::new(0x2545_F491_4F6C_DD1D);
    let mut next = |n: usize| rng.below(n as u64) as usize;
    let mut statuses = HashMap::new();
    for _ in 0..300 {
        let path = &paths[next(paths.len())];
        let query: Vec<&str> = (0..next(4)).map(|_| params[next(params.len())]).collect();
        let query = query.join("&");
        let token = tokens[next(tokens.len())];
        let got = get(&format!("{path}?{query}"), Some(token));
        assert_eq!(
            got,
            library(path, &query, token),
            "{path}?{query} as {token}"
        );
        *statuses.entry(got.0).or_insert(0) += 1;
    }
    // The mix exercised answers and errors alike.
    assert!(statuses.get(&200).is_some_and(|n| *n > 30), "{statuses:?}");
    assert!(statuses.get(&400).is_some_and(|n| *n > 30), "{statuses:?}");
    assert!(statuses.contains_key(&403), "{statuses:?}");
}
