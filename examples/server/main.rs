//! An HTTP server that links backdex: the four read routes of SEMANTICS.md,
//! a health check, and two write routes for the backup service's workers,
//! behind `X-Auth-Token` authentication. Small, but a real starting point.
//!
//! ```sh
//! cargo run --release --example server -- --tokens tokens.json \
//!     [--data FILE | --records N] [--listen 127.0.0.1:8080] [--max-body BYTES]
//! ```
//!
//! * `GET /v1/{project_id}/checkpoint_items`, `…/checkpoint_items/count`,
//!   `GET /v3/{project_id}/backups`,
//!   `GET /v2/{project_id}/os-vendor-backup-sharing/count`: answered by
//!   `Store::handle` on the current snapshot, so the routes, the
//!   parameters and every 400/403/404 are the library's.
//! * `GET /healthz`: `{"status":"ok","records":N}`, no token needed.
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
//! is the library's `{"error":{"code":…,"message":…}}`. docs/server.md has
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

/// The command line.
#[derive(Parser, Debug)]
#[command(about = "An HTTP server answering the four backup read APIs from backdex")]
struct Args {
    /// Records to serve: JSON Lines, one JSON array, or a snapshot.
    #[arg(long, conflicts_with = "records")]
    data: Option<PathBuf>,
    /// Synthetic records to serve (when no --data; default 100,000).
    #[arg(long)]
    records: Option<usize>,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The token file: token -> {project_id, admin, granted_eps, write}.
    #[arg(long)]
    tokens: PathBuf,
    /// The largest request body accepted, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_body: usize,
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
        .and_then(|t| state.tokens.get(t))
        .ok_or_else(|| {
            refuse(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "the X-Auth-Token is not valid",
            )
        })
}

/// The four read routes (and every other path: the library answers 404).
async fn read(State(state): State<AppState>, request: Request) -> Response {
    if request.method() != Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "{} is not allowed here; the read routes take GET",
                request.method()
            ),
        );
    }
    let grant = match authenticate(&state, request.headers()) {
        Ok(grant) => grant,
        Err(refusal) => return refusal.into_response(),
    };
    let uri = request.uri();
    let answer =
        state
            .engine
            .snapshot()
            .handle(uri.path(), uri.query().unwrap_or(""), &grant.scope);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, json_body(answer.body)).into_response()
}

async fn health(State(state): State<AppState>) -> Response {
    let records = state.engine.snapshot().len();
    json_body(json!({"status": "ok", "records": records}).to_string()).into_response()
}

/// Authenticates a write and reads its JSON body within the size limit.
async fn write_body(state: &AppState, request: Request) -> Result<Value, Refusal> {
    let grant = authenticate(state, request.headers())?;
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

/// The routes.
fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/internal/records:upsert", post(upsert))
        .route("/internal/records:delete", post(delete))
        .fallback(read)
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
    if let Err(message) = run(args) {
        eprintln!("server: {message}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    let tokens = read_tokens(&args.tokens)?;
    let engine = match &args.data {
        Some(path) => Engine::from_store(read_store(path)?),
        None => {
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
    let state = AppState {
        engine: Arc::new(engine),
        tokens: Arc::new(tokens),
        max_body: args.max_body,
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        eprintln!(
            "server: {} records, listening on http://{}",
            state.engine.snapshot().len(),
            args.listen
        );
        axum::serve(listener, app(state))
            .await
            .map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests;
