//! A node: a follower that holds the vshards it owns, registered in etcd
//! under a lease, taking vshards over by the policy once it holds them,
//! giving up those another node took, and answering the router's
//! requests only for the vshards it serves, at the epochs the router
//! names.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use backdex::{Engine, Position, Scope};
use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use super::holdings::Holdings;
use super::{load, node_key, vshard_key, ClusterMap, NodeInfo, Owner};
use crate::status::{State as FollowState, Status};
use crate::{error, json_body, AppState};

/// At most this many vshards are copied by one load.
const LOAD_GROUP: usize = 32;

/// A node's part in the cluster.
pub struct Node {
    pub name: String,
    pub holdings: Arc<Holdings>,
    pub map: watch::Receiver<Arc<ClusterMap>>,
    /// Until when the lease is surely alive (`None`: not registered).
    live_until: Mutex<Option<Instant>>,
}

impl Node {
    pub fn new(
        name: String,
        holdings: Arc<Holdings>,
        map: watch::Receiver<Arc<ClusterMap>>,
    ) -> Node {
        Node {
            name,
            holdings,
            map,
            live_until: Mutex::new(None),
        }
    }

    /// Whether the node's lease is alive: a node that cannot renew it
    /// stops answering before etcd lets another node take its vshards.
    pub fn live(&self) -> bool {
        self.live_until
            .lock()
            .map(|until| until.is_some_and(|t| Instant::now() < t))
            .unwrap_or(false)
    }

    fn renewed(&self, at: Instant, ttl: Duration) {
        if let Ok(mut until) = self.live_until.lock() {
            // Three quarters of the lease: etcd's clock may run ahead.
            *until = Some(at + ttl * 3 / 4);
        }
    }
}

/// How a node takes part.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub url: String,
    pub publication: String,
    pub addr: String,
    pub lease_ttl: Duration,
}

/// Registers the node under a lease and keeps it alive; a lost lease is
/// granted afresh (the node's vshards may have moved meanwhile: the
/// manager drops those).
pub async fn register(node: Arc<Node>, mut client: Client, config: NodeConfig) {
    let ttl_secs = config.lease_ttl.as_secs().max(1) as i64;
    let info = serde_json::to_string(&NodeInfo {
        addr: config.addr.clone(),
    })
    .unwrap_or_default();
    loop {
        let result: Result<(), etcd_client::Error> = async {
            let sent = Instant::now();
            let lease = client.lease_grant(ttl_secs, None).await?;
            client
                .put(
                    node_key(&node.name),
                    info.clone(),
                    Some(PutOptions::new().with_lease(lease.id())),
                )
                .await?;
            node.renewed(sent, config.lease_ttl);
            tracing::info!(node = %node.name, lease = lease.id(), "registered");
            let (mut keeper, mut answers) = client.lease_keep_alive(lease.id()).await?;
            loop {
                tokio::time::sleep(config.lease_ttl / 4).await;
                let sent = Instant::now();
                keeper.keep_alive().await?;
                match answers.message().await? {
                    Some(answer) if answer.ttl() > 0 => node.renewed(sent, config.lease_ttl),
                    _ => return Ok(()),
                }
            }
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(node = %node.name, error = %e, "the lease was not renewed");
        }
        tracing::warn!(node = %node.name, "the lease is lost; registering again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Keeps what the node holds in line with the map and the policy: drops
/// vshards another node took, loads the vshards it should own, and takes
/// them over by bumping their epoch.
pub async fn manage(
    node: Arc<Node>,
    engine: Arc<Engine>,
    status: Arc<Status>,
    mut client: Client,
    config: NodeConfig,
) {
    let mut map_rx = node.map.clone();
    // Loads run beside the rounds, one at a time, so that a drop another
    // node's take-over asks for never waits for a copy.
    let loading = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loaded = Arc::new(tokio::sync::Notify::new());
    loop {
        tokio::select! {
            _ = map_rx.changed() => {}
            () = loaded.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        // Only a live node that follows may take anything over.
        if !node.live() || status.state().0 != FollowState::Following {
            continue;
        }
        let map = map_rx.borrow().clone();
        let view = node.holdings.view();
        let me = node.name.as_str();
        let mine = |v: u32| map.target(v) == Some(me);
        // Another node took these over, or they are no longer ours to
        // take (the members changed while they were loaded): drop them. A
        // vshard this node serves stays until its new owner has it.
        let lost: Vec<u32> = view
            .held
            .iter()
            .filter(|&(&v, epoch)| match map.owner(v).0 {
                Some(owner) if owner.node != me => epoch.is_some() || !mine(v),
                Some(_) => false,
                None => epoch.is_none() && !mine(v),
            })
            .map(|(&v, _)| v)
            .collect();
        if !lost.is_empty() {
            node.holdings.drop_vshards(&engine, &lost);
        }
        // Held, ours by the policy (or by the map), and not served yet:
        // take them over.
        let ready: Vec<u32> = view
            .held
            .iter()
            .filter(|&(&v, epoch)| {
                epoch.is_none()
                    && !lost.contains(&v)
                    && (mine(v) || map.owner(v).0.is_some_and(|o| o.node == me))
            })
            .map(|(&v, _)| v)
            .collect();
        for v in ready {
            take_over(&node, &engine, &mut client, &map, v).await;
        }
        // Ours by the policy, not held: load a group.
        let wanted: Vec<u32> = (0..backdex::VSHARDS)
            .filter(|&v| mine(v) && !view.held.contains_key(&v))
            .take(LOAD_GROUP)
            .collect();
        if wanted.is_empty() || loading.swap(true, std::sync::atomic::Ordering::AcqRel) {
            continue;
        }
        let (node, config, loading, loaded, status) = (
            node.clone(),
            config.clone(),
            loading.clone(),
            loaded.clone(),
            status.clone(),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let me = node.name.as_str();
            match load::load(
                &config.url,
                &config.publication,
                me,
                &wanted,
                &node.holdings,
                &status,
            )
            .await
            {
                Ok(report) => tracing::info!(
                    vshards = wanted.len(),
                    records = report.records,
                    refused = report.refused,
                    at = %report.at,
                    ms = started.elapsed().as_millis() as u64,
                    "loaded"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "a load failed; it is retried in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            loading.store(false, std::sync::atomic::Ordering::Release);
            loaded.notify_one();
        });
    }
}

/// Bumps `vshard`'s epoch to name this node, if its key is still what the
/// map read; serves it from the moment the swap can succeed (a router
/// names the new epoch only once etcd has it).
async fn take_over(node: &Node, engine: &Engine, client: &mut Client, map: &ClusterMap, v: u32) {
    let (owner, revision) = map.owner(v);
    let epoch = owner.map_or(0, |o| o.epoch) + 1;
    let value = serde_json::to_string(&Owner {
        node: node.name.clone(),
        epoch,
    })
    .unwrap_or_default();
    let key = vshard_key(v);
    node.holdings.take_over(engine, v, Some(epoch));
    let swap = Txn::new()
        .when([Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            revision,
        )])
        .and_then([TxnOp::put(key, value, None)]);
    match client.txn(swap).await {
        Ok(answer) if answer.succeeded() => {
            tracing::info!(vshard = v, epoch, from = ?owner.map(|o| &o.node), "took over");
        }
        Ok(_) => {
            // Someone else moved it first: the next round sees the map.
            node.holdings.take_over(engine, v, None);
        }
        Err(e) => {
            node.holdings.take_over(engine, v, None);
            tracing::warn!(vshard = v, error = %e, "the take-over did not reach etcd");
        }
    }
}

/// What the router asks a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ask {
    pub path: String,
    pub query: String,
    pub scope: Scope,
    /// The vshards the router expects this node to answer for, each with
    /// its epoch in the router's map.
    pub vshards: Vec<(u32, u64)>,
    pub part: PartKind,
    /// A marker's position found by a `locate` ask (its JSON).
    #[serde(default)]
    pub at: Option<String>,
}

/// Which answer: a single store's whole answer, where a marker is, or a
/// partial answer for the merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    Whole,
    Locate,
    Partial,
}

/// The node's refusal to answer for vshards it does not serve as asked:
/// the router reads its map again and retries.
fn moved(message: impl Into<String>) -> Response {
    error(StatusCode::CONFLICT, "ShardMoved", message)
}

/// `POST /internal/cluster/ask`: answers for exactly the vshards named,
/// from one store version holding them (and, for a partial answer, no
/// others).
pub async fn ask(State(state): State<AppState>, request: Request) -> Response {
    let Some(node) = state.node.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "this server is not a cluster node",
        );
    };
    if !node.live() {
        return moved(format!("node {} holds no lease", node.name));
    }
    let wait = request.headers().get("x-min-lsn").cloned();
    let bytes = match axum::body::to_bytes(request.into_body(), state.max_body).await {
        Ok(bytes) => bytes,
        Err(e) => return error(StatusCode::BAD_REQUEST, "InvalidParameter", e.to_string()),
    };
    let ask: Ask = match serde_json::from_slice(&bytes) {
        Ok(ask) => ask,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                format!("the ask is not valid: {e}"),
            )
        }
    };
    if let Some(wait) = wait {
        if let Err(refusal) = crate::await_position(&state, &wait).await {
            return refusal.into_response();
        }
    }
    let view = node.holdings.view();
    for &(v, epoch) in &ask.vshards {
        if view.held.get(&v) != Some(&Some(epoch)) {
            return moved(format!(
                "node {} does not serve vshard {v} at epoch {epoch}",
                node.name
            ));
        }
    }
    if ask.part != PartKind::Whole {
        let asked: BTreeSet<u32> = ask.vshards.iter().map(|&(v, _)| v).collect();
        if view.held.keys().copied().collect::<BTreeSet<u32>>() != asked {
            return moved(format!(
                "node {} holds other vshards than those asked",
                node.name
            ));
        }
    }
    let store = &view.store;
    let (path, query, scope) = (ask.path.as_str(), ask.query.as_str(), &ask.scope);
    match ask.part {
        PartKind::Whole => {
            let answer = store.handle(path, query, scope);
            let status =
                StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, json_body(answer.body)).into_response()
        }
        PartKind::Locate => {
            let body = store
                .locate_marker(path, query, scope)
                .map_or_else(|| "null".to_owned(), |p| p.to_json());
            json_body(body).into_response()
        }
        PartKind::Partial => {
            let at = match ask.at.as_deref().map(Position::from_json).transpose() {
                Ok(at) => at,
                Err(e) => return error(StatusCode::BAD_REQUEST, "InvalidParameter", e.to_string()),
            };
            json_body(store.partial(path, query, scope, at.as_ref()).to_json()).into_response()
        }
    }
}

/// `GET /internal/cluster/state`: the node, its lease, and what it holds.
pub async fn state(State(state): State<AppState>) -> Response {
    let Some(node) = state.node.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "this server is not a cluster node",
        );
    };
    let view = node.holdings.view();
    let held: BTreeMap<String, Option<u64>> =
        view.held.iter().map(|(v, e)| (v.to_string(), *e)).collect();
    json_body(
        json!({
            "node": node.name,
            "live": node.live(),
            "records": view.store.len(),
            "held": held,
        })
        .to_string(),
    )
    .into_response()
}
