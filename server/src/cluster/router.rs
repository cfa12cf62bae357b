//! The router: the only part of a cluster that faces clients. It checks
//! tokens as a single server does, sends a single-tenant request to the
//! owner of its tenant's vshard, fans admin and sharing requests out to
//! the owners of every vshard and merges their partial answers with the
//! library's merge. A request that needs a vshard without a ready owner
//! is answered 503 `ShardUnavailable`, never in part.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use backdex::{Partial, Position, Route, Scope, VSHARDS};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::node::{Ask, PartKind};
use super::ClusterMap;
use crate::{authenticate_with, error, json_body, Grant};

/// What the router's handlers share.
#[derive(Clone)]
pub struct RouterState {
    pub tokens: Arc<HashMap<String, Grant>>,
    pub map: watch::Receiver<Arc<ClusterMap>>,
    pub http: reqwest::Client,
    /// How long a request may wait for its vshards to have ready owners
    /// (a take-over under way) before it is answered 503.
    pub patience: Duration,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The router's routes: the four read routes, `/healthz`, `/cluster`,
/// `/metrics`.
pub fn app(state: RouterState) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/cluster", get(cluster))
        .route("/metrics", get(metrics_text))
        .fallback(read)
        .layer(axum::middleware::from_fn_with_state(state.clone(), measure))
        .with_state(state)
}

async fn measure(
    State(state): State<RouterState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .observe(&path, response.status().as_u16(), started.elapsed());
    response
}

async fn metrics_text(State(state): State<RouterState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(0, None),
    )
        .into_response()
}

fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ShardUnavailable",
        "part of the data this request needs is being moved to another node or recovered; \
         retry shortly",
    )
}

/// Why one round of asking failed: worth another round once the map
/// moves, or an answer to pass through.
enum Round {
    Retry,
    Answer(Response),
}

/// The four read routes.
async fn read(State(state): State<RouterState>, request: Request) -> Response {
    if let Err(refusal) = crate::only_get(request.method()) {
        return refusal.into_response();
    }
    let grant = match authenticate_with(&state.tokens, request.headers()) {
        Ok(grant) => grant.clone(),
        Err(refusal) => return refusal.into_response(),
    };
    let min_lsn = request.headers().get("x-min-lsn").cloned();
    let uri = request.uri();
    let (path, query) = (uri.path().to_owned(), uri.query().unwrap_or("").to_owned());
    let scope = grant.scope;
    // An invalid request is answered here, in the library's words: no
    // node needs to be asked.
    if let Err(e) = backdex::parse_request(&path, &query, &scope, backdex::DEFAULT_MAX_LIMIT) {
        let answer = backdex::Response::error(&e);
        return pass(answer.status, answer.body);
    }
    let route = backdex::route(&path, &query, &scope);
    let deadline = Instant::now() + state.patience;
    let mut map_rx = state.map.clone();
    loop {
        let map = map_rx.borrow_and_update().clone();
        let round = match route {
            Route::Shard(v) => whole(&state, &map, v, &path, &query, &scope, &min_lsn).await,
            Route::Every => every(&state, &map, &path, &query, &scope, &min_lsn).await,
        };
        match round {
            Round::Answer(answer) => return answer,
            Round::Retry => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return unavailable();
                }
                // The next round as soon as the map moves, or a little
                // later (a node dropping what another took over).
                let _ = tokio::time::timeout(left.min(Duration::from_millis(20)), map_rx.changed())
                    .await;
            }
        }
    }
}

fn pass(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, json_body(body)).into_response()
}

/// Asks one node; a node that is down, or answers 409 (it does not serve
/// the vshards as asked), means another round.
async fn ask(
    state: &RouterState,
    addr: &str,
    ask: &Ask,
    min_lsn: &Option<HeaderValue>,
) -> Result<(u16, String), Round> {
    let mut request = state
        .http
        .post(format!("http://{addr}/internal/cluster/ask"))
        // A frozen or cut-off node must not hold the request past its
        // patience: its lease runs out meanwhile and the map moves on.
        .timeout(state.patience)
        .header(header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_string(ask).unwrap_or_default());
    if let Some(lsn) = min_lsn {
        request = request.header("x-min-lsn", lsn.clone());
    }
    let response = request.send().await.map_err(|_| Round::Retry)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|_| Round::Retry)?;
    match status {
        409 => Err(Round::Retry),
        200..=499 => Ok((status, body)),
        // A node's 503 (NotFresh) is its answer.
        503 if body.contains("NotFresh") => Err(Round::Answer(pass(status, body))),
        _ => Err(Round::Retry),
    }
}

async fn whole(
    state: &RouterState,
    map: &ClusterMap,
    v: u32,
    path: &str,
    query: &str,
    scope: &Scope,
    min_lsn: &Option<HeaderValue>,
) -> Round {
    let Some((owner, info)) = map.ready_owner(v) else {
        return Round::Retry;
    };
    let asked = Ask {
        path: path.to_owned(),
        query: query.to_owned(),
        scope: scope.clone(),
        vshards: vec![(v, owner.epoch)],
        part: PartKind::Whole,
        at: None,
    };
    match ask(state, &info.addr, &asked, min_lsn).await {
        Ok((status, body)) => Round::Answer(pass(status, body)),
        Err(round) => round,
    }
}

/// Every vshard's owner, with the vshards it is asked for; `None` while a
/// vshard has no ready owner.
fn owners(map: &ClusterMap) -> Option<BTreeMap<String, Vec<(u32, u64)>>> {
    let mut groups: BTreeMap<String, Vec<(u32, u64)>> = BTreeMap::new();
    for v in 0..VSHARDS {
        let (owner, info) = map.ready_owner(v)?;
        groups
            .entry(info.addr.clone())
            .or_default()
            .push((v, owner.epoch));
    }
    Some(groups)
}

/// Asks every owner at once; their answers in the groups' order.
async fn fan_out(
    state: &RouterState,
    groups: &BTreeMap<String, Vec<(u32, u64)>>,
    base: &Ask,
    min_lsn: &Option<HeaderValue>,
) -> Result<Vec<(u16, String)>, Round> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (addr, vshards)) in groups.iter().enumerate() {
        let mut asked = base.clone();
        asked.vshards = vshards.clone();
        let (state, addr, min_lsn) = (state.clone(), addr.clone(), min_lsn.clone());
        tasks.spawn(async move { (i, ask(&state, &addr, &asked, &min_lsn).await) });
    }
    let mut answers: Vec<Option<(u16, String)>> = vec![None; groups.len()];
    let mut failed: Option<Round> = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, Ok(answer))) => {
                if let Some(slot) = answers.get_mut(i) {
                    *slot = Some(answer);
                }
            }
            Ok((_, Err(Round::Answer(a)))) => failed = Some(Round::Answer(a)),
            Ok((_, Err(Round::Retry))) | Err(_) => {
                if failed.is_none() {
                    failed = Some(Round::Retry);
                }
            }
        }
    }
    if let Some(round) = failed {
        return Err(round);
    }
    Ok(answers.into_iter().flatten().collect())
}

async fn every(
    state: &RouterState,
    map: &ClusterMap,
    path: &str,
    query: &str,
    scope: &Scope,
    min_lsn: &Option<HeaderValue>,
) -> Round {
    let Some(groups) = owners(map) else {
        return Round::Retry;
    };
    let mut base = Ask {
        path: path.to_owned(),
        query: query.to_owned(),
        scope: scope.clone(),
        vshards: Vec::new(),
        part: PartKind::Locate,
        at: None,
    };
    let has_marker = backdex::parse_request(path, query, scope, backdex::DEFAULT_MAX_LIMIT)
        .is_ok_and(|q| q.page.marker.is_some());
    if has_marker {
        // First where the marker is: the node holding it, if the caller
        // may see it there, tells its position.
        let located = match fan_out(state, &groups, &base, min_lsn).await {
            Ok(located) => located,
            Err(round) => return round,
        };
        let mut at = None;
        for (_, body) in located {
            if body != "null" {
                match Position::from_json(&body) {
                    Ok(p) => at = Some(p),
                    Err(e) => return Round::Answer(internal(&e.to_string())),
                }
            }
        }
        match at {
            Some(at) => base.at = Some(at.to_json()),
            // Found nowhere: the one store's 404, word for word.
            None => {
                let answer = backdex::merge(path, query, scope, []);
                return Round::Answer(pass(answer.status, answer.body));
            }
        }
    }
    base.part = PartKind::Partial;
    let answers = match fan_out(state, &groups, &base, min_lsn).await {
        Ok(answers) => answers,
        Err(round) => return round,
    };
    let mut partials = Vec::with_capacity(answers.len());
    for (status, body) in answers {
        if status != 200 {
            return Round::Answer(pass(status, body));
        }
        match Partial::from_json(&body) {
            Ok(p) => partials.push(p),
            Err(e) => return Round::Answer(internal(&e.to_string())),
        }
    }
    let answer = backdex::merge(path, query, scope, partials);
    Round::Answer(pass(answer.status, answer.body))
}

fn internal(message: &str) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        format!("a node's answer was unreadable: {message}"),
    )
}

/// Every live node's state (`/internal/cluster/state`), by name.
async fn node_states(state: &RouterState, map: &ClusterMap) -> BTreeMap<String, Value> {
    let mut tasks = tokio::task::JoinSet::new();
    for (name, info) in &map.nodes {
        let (http, name, addr) = (state.http.clone(), name.clone(), info.addr.clone());
        tasks.spawn(async move {
            let url = format!("http://{addr}/internal/cluster/state");
            let answer = async {
                http.get(url)
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await?
                    .text()
                    .await
            }
            .await;
            let value = answer
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok());
            (name, value)
        });
    }
    let mut states = BTreeMap::new();
    while let Some(Ok((name, value))) = tasks.join_next().await {
        states.insert(name, value.unwrap_or(Value::Null));
    }
    states
}

/// `GET /healthz`: as a single server's, the records counted over the
/// vshards served, with the cluster's readiness beside.
async fn health(State(state): State<RouterState>) -> Response {
    let map = state.map.borrow().clone();
    let states = node_states(&state, &map).await;
    let records: u64 = states
        .values()
        .filter_map(|s| s.get("records").and_then(Value::as_u64))
        .sum();
    json_body(
        json!({
            "status": "ok",
            "records": records,
            "nodes": map.nodes.len(),
            "unavailable_vshards": map.unavailable().len(),
        })
        .to_string(),
    )
    .into_response()
}

/// `GET /cluster`: the nodes, the vshards each owns, every vshard's
/// owner and epoch, and the vshards without a ready owner.
async fn cluster(State(state): State<RouterState>) -> Response {
    let map = state.map.borrow().clone();
    let states = node_states(&state, &map).await;
    let mut owned: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    let mut epochs = serde_json::Map::new();
    for v in 0..VSHARDS {
        if let (Some(owner), _) = map.owner(v) {
            owned.entry(owner.node.as_str()).or_default().push(v);
            epochs.insert(
                v.to_string(),
                json!({"node": owner.node, "epoch": owner.epoch}),
            );
        }
    }
    let nodes: serde_json::Map<String, Value> = map
        .nodes
        .iter()
        .map(|(name, info)| {
            let vshards = owned.get(name.as_str()).cloned().unwrap_or_default();
            let node = states.get(name);
            (
                name.clone(),
                json!({
                    "addr": info.addr,
                    "vshards": vshards,
                    "records": node.and_then(|s| s.get("records")),
                    "live": node.and_then(|s| s.get("live")),
                }),
            )
        })
        .collect();
    json_body(
        json!({
            "nodes": nodes,
            "epochs": epochs,
            "unavailable": map.unavailable(),
        })
        .to_string(),
    )
    .into_response()
}
