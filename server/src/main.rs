//! An HTTP server that links backdex: the four read routes of SEMANTICS.md,
//! a health check, and two write routes for the backup service's workers,
//! behind `X-Auth-Token` authentication; or, with `--follow`, a follower
//! of the PostgreSQL database the service writes (server/docs/follow.md).
//!
//! ```sh
//! cargo run --release -p backdex-server -- --tokens server/tokens.json \
//!     [--data FILE | --records N | --follow 'postgresql://…' [--slot NAME]] \
//!     [--listen 127.0.0.1:8080] [--max-body BYTES]
//! ```
//!
//! * `GET /v1/{project_id}/checkpoint_items`, `…/checkpoint_items/count`,
//!   `GET /v3/{project_id}/backups`,
//!   `GET /v2/{project_id}/os-vendor-backup-sharing/count`: answered by
//!   `Store::handle` on the current snapshot, so the routes, the
//!   parameters and every 400/403/404 are the library's.
//! * `GET /healthz`: `{"status":"ok","records":N}`, no token needed; a
//!   follower adds `state`, `applied_lsn`, `lag_ms` and `skipped_rows`.
//! * A read with `X-Min-LSN: X/Y` waits until the follower has applied
//!   that position, at most `--min-lsn-timeout-ms`, then answers 503.
//! * `POST /internal/records:upsert` (a JSON array of records) and
//!   `POST /internal/records:delete` (a JSON array of ids): need a token
//!   with `"write": true`; answer `{"count":N}` once the batch is visible to
//!   every later read, or 400 naming the bad record.
//!
//! `tokens.json` maps each token to a scope and a write permission:
//!
//! ```json
//! {"reader-p1": {"project_id": "p1", "admin": false, "granted_eps": null},
//!  "worker":    {"project_id": "ops", "admin": true, "write": true}}
//! ```
//!
//! A missing or unknown token is 401, a reader's token on a write route
//! 403, a body over `--max-body` (16 MiB by default) 413; every error body
//! is the library's `{"error":{"code":…,"message":…}}`. server/docs/server.md has
//! the load test.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use backdex::{Engine, Record, Scope, Store};
use clap::Parser;
use serde::Deserialize;
use serde_json::{json, Value};

/// mimalloc, not the system allocator: a follower allocates and frees a
/// record, its JSON and its draft for every change, and glibc's malloc
/// spent a fifth of the follower's time searching its bins.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cluster;
mod follow;
mod metrics;
mod snapshots;
mod status;

use status::{Lsn, Status};

/// The command line.
#[derive(Parser, Debug)]
#[command(about = "An HTTP server answering the four backup read APIs from backdex")]
struct Args {
    /// Records to serve: JSON Lines, one JSON array, or a snapshot.
    #[arg(long, conflicts_with_all = ["records", "follow"])]
    data: Option<PathBuf>,
    /// Synthetic records to serve (when no --data; default 100,000).
    #[arg(long, conflicts_with = "follow")]
    records: Option<usize>,
    /// Follow this PostgreSQL database (a libpq URI or key=value string):
    /// its `backups` and `backup_members` tables (server/sql/schema.sql).
    #[arg(long)]
    follow: Option<String>,
    /// The replication slot the follower owns (default `backdex`; a
    /// cluster node's `backdex_node_<name>`).
    #[arg(long)]
    slot: Option<String>,
    /// The publication of the two tables.
    #[arg(long, default_value = "backdex")]
    publication: String,
    /// Milliseconds between heartbeats through the replication stream.
    #[arg(long, default_value_t = 1000)]
    heartbeat_ms: u64,
    /// Keep snapshots of the followed store here: written every
    /// `--snapshot-every-secs` and on shutdown, the newest loaded at start
    /// and followed on from its position.
    #[arg(long, requires = "follow")]
    snapshot_dir: Option<PathBuf>,
    /// Seconds between snapshots.
    #[arg(long, default_value_t = 30)]
    snapshot_every_secs: u64,
    /// Start with a fresh initial sync, whatever the snapshots hold (the
    /// way back after the slot was dropped).
    #[arg(long, requires = "follow")]
    resync: bool,
    /// How long a read with `X-Min-LSN` waits for that position.
    #[arg(long, default_value_t = 1000)]
    min_lsn_timeout_ms: u64,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The token file: token -> {project_id, admin, granted_eps, write}
    /// (a cluster node has none: only the router faces clients).
    #[arg(long, required_unless_present = "node")]
    tokens: Option<PathBuf>,
    /// `server` (one process holding every record, or a cluster node with
    /// `--etcd` and `--node`) or `router` (server/docs/cluster.md).
    #[arg(long, value_enum, default_value_t = Role::Server)]
    role: Role,
    /// The etcd endpoint holding the cluster's membership and shard map.
    #[arg(long)]
    etcd: Option<String>,
    /// This node's name in the cluster (with `--follow` and `--etcd`).
    #[arg(long, requires_all = ["etcd", "follow"])]
    node: Option<String>,
    /// The address the router reaches this node at (default: the address
    /// listened on).
    #[arg(long, requires = "node")]
    advertise: Option<String>,
    /// Seconds a node's lease lives without renewal: how soon a dead
    /// node's vshards are taken over.
    #[arg(long, default_value_t = 5)]
    lease_ttl_secs: u64,
    /// How long the router lets a request wait for its vshards' owners
    /// (a take-over under way) before answering 503 ShardUnavailable.
    #[arg(long, default_value_t = 2000)]
    patience_ms: u64,
    /// The largest request body accepted, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_body: usize,
}

/// What this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    Server,
    Router,
}

/// What a token grants.
#[derive(Debug, Clone, Deserialize)]
struct Grant {
    #[serde(flatten)]
    scope: Scope,
    /// May post record changes.
    #[serde(default)]
    write: bool,
}

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    tokens: Arc<HashMap<String, Grant>>,
    max_body: usize,
    /// The follower's, when following (writes then come only from it).
    follower: Option<Arc<Status>>,
    min_lsn_timeout: std::time::Duration,
    metrics: Arc<metrics::Metrics>,
    /// A cluster node's part (`--node`).
    node: Option<Arc<cluster::node::Node>>,
}

/// A refusal, answered as an error in the library's shape.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, json_body(body.to_string())).into_response()
    }
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    refuse(status, code, message).into_response()
}

fn json_body(body: String) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// The grant of the request's token, or the 401 to answer.
fn authenticate<'s>(state: &'s AppState, headers: &HeaderMap) -> Result<&'s Grant, Refusal> {
    authenticate_with(&state.tokens, headers)
}

/// The grant of the request's token among `tokens`, or the 401 to answer.
fn authenticate_with<'s>(
    tokens: &'s HashMap<String, Grant>,
    headers: &HeaderMap,
) -> Result<&'s Grant, Refusal> {
    let Some(token) = headers.get("x-auth-token") else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the X-Auth-Token header is missing",
        ));
    };
    token
        .to_str()
        .ok()
        .and_then(|t| tokens.get(t))
        .ok_or_else(|| {
            refuse(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "the X-Auth-Token is not valid",
            )
        })
}

/// The read routes take GET only: 405 otherwise.
fn only_get(method: &Method) -> Result<(), Refusal> {
    if method == Method::GET {
        return Ok(());
    }
    Err(refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("{method} is not allowed here; the read routes take GET"),
    ))
}

/// The four read routes (and every other path: the library answers 404).
async fn read(State(state): State<AppState>, request: Request) -> Response {
    if let Err(refusal) = only_get(request.method()) {
        return refusal.into_response();
    }
    let grant = match authenticate(&state, request.headers()) {
        Ok(grant) => grant,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(wait) = request.headers().get("x-min-lsn") {
        if let Err(refusal) = await_position(&state, wait).await {
            return refusal.into_response();
        }
    }
    let uri = request.uri();
    let answer =
        state
            .engine
            .snapshot()
            .handle(uri.path(), uri.query().unwrap_or(""), &grant.scope);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, json_body(answer.body)).into_response()
}

/// Waits until the follower has applied the position of `X-Min-LSN`.
async fn await_position(state: &AppState, header: &header::HeaderValue) -> Result<(), Refusal> {
    let text = header.to_str().unwrap_or("");
    let Some(lsn) = Lsn::parse(text) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("X-Min-LSN must be a PostgreSQL position X/Y (hexadecimal), not {text:?}"),
        ));
    };
    let Some(follower) = &state.follower else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "X-Min-LSN needs a server that follows PostgreSQL (--follow)",
        ));
    };
    if follower.wait_for(lsn, state.min_lsn_timeout).await {
        return Ok(());
    }
    Err(refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "NotFresh",
        format!(
            "position {lsn} is not applied yet (applied: {}) after {} ms; retry later",
            follower.applied(),
            state.min_lsn_timeout.as_millis()
        ),
    ))
}

async fn health(State(state): State<AppState>) -> Response {
    let records = state.engine.snapshot().len();
    let body = match &state.follower {
        None => json!({"status": "ok", "records": records}),
        Some(follower) => {
            let (s, error) = follower.state();
            json!({
                "status": "ok",
                "state": s.as_str(),
                "records": records,
                "applied_lsn": follower.applied().to_string(),
                "snapshot_lsn": (follower.durable().0 > 0).then(|| follower.durable().to_string()),
                "lag_ms": follower.lag_ms(),
                "skipped_rows": follower.skipped_rows(),
                "error": error,
            })
        }
    };
    json_body(body.to_string()).into_response()
}

/// Authenticates a write and reads its JSON body within the size limit.
async fn write_body(state: &AppState, request: Request) -> Result<Value, Refusal> {
    let grant = authenticate(state, request.headers())?;
    if state.follower.is_some() {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "this server follows PostgreSQL: write to the database instead",
        ));
    }
    if !grant.write {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "this token may read but not write records",
        ));
    }
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!(
                "the request body is larger than the limit of {} bytes",
                state.max_body
            ),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(request.into_body(), state.max_body)
        .await
        .map_err(|_| too_large())?;
    serde_json::from_slice(&bytes).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("the request body is not valid JSON: {e}"),
        )
    })
}

/// Applies a change on a blocking thread (a large batch is CPU work) and
/// answers once the new version is published.
async fn apply(
    state: AppState,
    change: impl FnOnce(&Engine) -> Result<usize, backdex::ChangeError> + Send + 'static,
) -> Response {
    let engine = state.engine.clone();
    match tokio::task::spawn_blocking(move || change(&engine)).await {
        Ok(Ok(count)) => json_body(json!({"count": count}).to_string()).into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, "InvalidParameter", e.to_string()),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("the change was not applied: {e}"),
        ),
    }
}

async fn upsert(State(state): State<AppState>, request: Request) -> Response {
    let batch = match write_body(&state, request).await {
        Ok(batch) => batch,
        Err(refusal) => return refusal.into_response(),
    };
    match backdex::records_from_json(&batch) {
        Ok(records) => apply(state, move |engine| engine.upsert(&records)).await,
        Err(e) => error(StatusCode::BAD_REQUEST, "InvalidParameter", e.to_string()),
    }
}

async fn delete(State(state): State<AppState>, request: Request) -> Response {
    let batch = match write_body(&state, request).await {
        Ok(batch) => batch,
        Err(refusal) => return refusal.into_response(),
    };
    match backdex::ids_from_json(&batch) {
        Ok(ids) => apply(state, move |engine| engine.delete(&ids)).await,
        Err(e) => error(StatusCode::BAD_REQUEST, "InvalidParameter", e.to_string()),
    }
}

/// `GET /metrics` (no token, like `/healthz`).
async fn metrics_text(State(state): State<AppState>) -> Response {
    let body = state
        .metrics
        .render(state.engine.snapshot().len(), state.follower.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Counts every answer by route and status, and its latency.
async fn measure(
    State(state): State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .observe(&path, response.status().as_u16(), started.elapsed());
    response
}

/// The routes.
fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics_text))
        .route("/internal/records:upsert", post(upsert))
        .route("/internal/records:delete", post(delete))
        .route("/internal/cluster/ask", post(cluster::node::ask))
        .route("/internal/cluster/state", get(cluster::node::state))
        .fallback(read)
        .layer(axum::middleware::from_fn_with_state(state.clone(), measure))
        .with_state(state)
}

/// Reads a store from a file: a snapshot, JSON Lines or one JSON array
/// (`Store::read_from`; JSON Lines go through the bulk builder).
fn read_store(path: &PathBuf) -> Result<Store, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Store::read_from(file)
        .map(|read| read.store)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn read_tokens(path: &PathBuf) -> Result<HashMap<String, Grant>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn main() {
    let args = Args::parse();
    // Structured logs on stderr: `RUST_LOG` chooses the levels (info, and
    // warnings of the replication client, by default), `BACKDEX_LOG=json`
    // one JSON object a line.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,pg_walstream=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("BACKDEX_LOG").is_ok_and(|v| v == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    if let Err(message) = run(args) {
        eprintln!("server: {message}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    if args.role == Role::Router {
        return run_router(&args);
    }
    let tokens = match &args.tokens {
        Some(path) => read_tokens(path)?,
        None => HashMap::new(),
    };
    let slot = args.slot.clone().unwrap_or_else(|| match &args.node {
        Some(name) => format!("backdex_node_{}", cluster::load::slot_safe(name)),
        None => "backdex".to_owned(),
    });
    let follower = args.follow.as_ref().map(|_| Arc::new(Status::default()));
    let engine = match (&args.data, &args.follow) {
        (Some(path), _) => Engine::from_store(read_store(path)?),
        (None, Some(_)) => match (&args.snapshot_dir, args.resync) {
            (Some(dir), false) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                match snapshots::load_newest(dir)? {
                    Some((store, at)) => {
                        tracing::info!(records = store.len(), at = %at, "snapshot loaded");
                        if let Some(status) = &follower {
                            status.set_applied(at);
                            status.set_durable(at);
                        }
                        Engine::from_store_at(store, at.to_string().as_bytes())
                    }
                    None => Engine::new(),
                }
            }
            (Some(dir), true) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                Engine::new()
            }
            (None, _) => Engine::new(),
        },
        (None, None) => {
            let records: Vec<Record> = backdex::synth::generate(&backdex::synth::SynthConfig {
                records: args.records.unwrap_or(100_000),
                slim: true,
                ..Default::default()
            })
            .collect();
            let engine = Engine::new();
            engine.upsert(&records).map_err(|e| e.to_string())?;
            engine
        }
    };
    let engine = Arc::new(engine);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let shutdown = pg_walstream::CancellationToken::new();
        // A cluster node: its holdings, its registration and its manager.
        let node = match (&args.node, &args.etcd, &args.follow, &follower) {
            (Some(name), Some(etcd), Some(url), Some(status)) => {
                let client = cluster::connect(etcd, std::time::Duration::from_secs(10)).await?;
                let (map_tx, map_rx) = tokio::sync::watch::channel(Arc::default());
                tokio::spawn(cluster::follow_map(client.clone(), map_tx));
                let holdings = Arc::new(cluster::holdings::Holdings::of(&engine));
                let node = Arc::new(cluster::node::Node::new(name.clone(), holdings, map_rx));
                let config = cluster::node::NodeConfig {
                    url: url.clone(),
                    publication: args.publication.clone(),
                    addr: args.advertise.clone().unwrap_or_else(|| addr.to_string()),
                    lease_ttl: std::time::Duration::from_secs(args.lease_ttl_secs.max(1)),
                };
                tokio::spawn(cluster::node::register(
                    node.clone(),
                    client.clone(),
                    config.clone(),
                ));
                tokio::spawn(cluster::node::manage(
                    node.clone(),
                    engine.clone(),
                    status.clone(),
                    client,
                    config,
                ));
                Some(node)
            }
            _ => None,
        };
        let state = AppState {
            engine: engine.clone(),
            tokens: Arc::new(tokens),
            max_body: args.max_body,
            follower: follower.clone(),
            min_lsn_timeout: std::time::Duration::from_millis(args.min_lsn_timeout_ms),
            metrics: Arc::new(metrics::Metrics::new()),
            node: node.clone(),
        };
        let following = match (&args.follow, &follower) {
            (Some(url), Some(status)) => Some(tokio::spawn(follow::run(
                state.engine.clone(),
                follow::Config {
                    url: url.clone(),
                    slot: slot.clone(),
                    publication: args.publication.clone(),
                    heartbeat: std::time::Duration::from_millis(args.heartbeat_ms.max(1)),
                    snapshots: args.snapshot_dir.is_some(),
                    holdings: node.as_ref().map(|n| n.holdings.clone()),
                },
                status.clone(),
                shutdown.clone(),
            ))),
            _ => None,
        };
        // The snapshots: periodic, and a last one once the follower stopped.
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let keeping = match (&args.snapshot_dir, &follower) {
            (Some(dir), Some(status)) => Some(tokio::spawn(snapshots::keep(
                state.engine.clone(),
                dir.clone(),
                status.clone(),
                std::time::Duration::from_secs(args.snapshot_every_secs.max(1)),
                shutdown.clone(),
                async move {
                    let _ = stopped_rx.await;
                },
            ))),
            _ => None,
        };
        // The line tests and scripts wait for.
        eprintln!(
            "server: {} records, listening on http://{addr}",
            state.engine.snapshot().len(),
        );
        let stop = shutdown.clone();
        let served = axum::serve(listener, app(state))
            .with_graceful_shutdown(async move {
                terminated().await;
                stop.cancel();
            })
            .await
            .map_err(|e| e.to_string());
        shutdown.cancel();
        if let Some(following) = following {
            let _ = following.await;
        }
        let _ = stopped_tx.send(());
        if let Some(keeping) = keeping {
            let _ = keeping.await;
        }
        served
    })
}

/// `--role router`: watches the cluster map in etcd and answers the read
/// routes from the nodes (server/docs/cluster.md).
fn run_router(args: &Args) -> Result<(), String> {
    let tokens = match &args.tokens {
        Some(path) => read_tokens(path)?,
        None => return Err("a router needs --tokens".into()),
    };
    let Some(etcd) = &args.etcd else {
        return Err("a router needs --etcd".into());
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = cluster::connect(etcd, std::time::Duration::from_secs(10)).await?;
        let (map_tx, map_rx) = tokio::sync::watch::channel(Arc::default());
        tokio::spawn(cluster::follow_map(client, map_tx));
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| e.to_string())?;
        let state = cluster::router::RouterState {
            tokens: Arc::new(tokens),
            map: map_rx,
            http,
            patience: std::time::Duration::from_millis(args.patience_ms),
            metrics: Arc::new(metrics::Metrics::new()),
        };
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!("router: listening on http://{addr}");
        axum::serve(listener, cluster::router::app(state))
            .with_graceful_shutdown(terminated())
            .await
            .map_err(|e| e.to_string())
    })
}

/// SIGTERM or Ctrl-C: in-flight requests finish, then the server stops.
async fn terminated() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = term.recv() => {}
                () = ctrl_c => {}
            }
            return;
        }
    }
    ctrl_c.await;
}

#[cfg(test)]
mod tests;
