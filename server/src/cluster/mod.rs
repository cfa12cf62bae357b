//! A cluster of followers behind a router (server/docs/cluster.md):
//! PostgreSQL stays the system of record, etcd holds membership and the
//! shard map, and backdex adds only routing by tenant and the exact merge
//! of partial answers.
//!
//! * **Membership.** A node puts `/backdex/nodes/<name>` (its address)
//!   under a lease it keeps alive; a node whose lease expires disappears
//!   from the map by etcd's own doing.
//! * **The shard map.** `/backdex/vshards/<v>` holds the owner of virtual
//!   shard `v` and its epoch. A node writes it only by a compare-and-swap
//!   on the key's revision, after it holds the shard fully and follows it:
//!   etcd orders every take-over, nothing else agrees on anything.
//! * **The policy.** A vshard belongs to the live node with the highest
//!   rendezvous score ([`target_of`]): every node computes the same
//!   targets from the same members, a death moves only the dead node's
//!   vshards, and a new node takes about `1/n` of them from every other.

pub mod holdings;
pub mod load;
pub mod node;
pub mod router;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backdex::VSHARDS;
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Every key of the cluster starts with this.
pub const PREFIX: &str = "/backdex/";
const NODES: &str = "/backdex/nodes/";
const VSHARD_KEYS: &str = "/backdex/vshards/";

/// The key of a node's registration.
pub fn node_key(name: &str) -> String {
    format!("{NODES}{name}")
}

/// The key of a virtual shard's owner.
pub fn vshard_key(vshard: u32) -> String {
    format!("{VSHARD_KEYS}{vshard:03}")
}

/// A live node, as it registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Where its internal routes answer (`host:port`).
    pub addr: String,
}

/// The owner of a virtual shard, and the epoch of its take-over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub node: String,
    pub epoch: u64,
}

/// What etcd holds, as last read: the live nodes and each vshard's owner
/// (with the key's revision, for the next compare-and-swap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMap {
    pub nodes: BTreeMap<String, NodeInfo>,
    pub owners: Vec<Option<(Owner, i64)>>,
}

impl Default for ClusterMap {
    fn default() -> ClusterMap {
        ClusterMap {
            nodes: BTreeMap::new(),
            owners: vec![None; VSHARDS as usize],
        }
    }
}

impl ClusterMap {
    fn put(&mut self, key: &str, value: &[u8], revision: i64) {
        if let Some(name) = key.strip_prefix(NODES) {
            match serde_json::from_slice::<NodeInfo>(value) {
                Ok(info) => {
                    self.nodes.insert(name.to_owned(), info);
                }
                Err(e) => tracing::warn!(key, error = %e, "a node's registration is unreadable"),
            }
        } else if let Some(v) = key.strip_prefix(VSHARD_KEYS) {
            let parsed = v.parse::<usize>().ok().filter(|&v| v < VSHARDS as usize);
            match (parsed, serde_json::from_slice::<Owner>(value)) {
                (Some(v), Ok(owner)) => {
                    if let Some(slot) = self.owners.get_mut(v) {
                        *slot = Some((owner, revision));
                    }
                }
                _ => tracing::warn!(key, "a vshard's owner is unreadable"),
            }
        }
    }

    fn delete(&mut self, key: &str) {
        if let Some(name) = key.strip_prefix(NODES) {
            self.nodes.remove(name);
        } else if let Some(v) = key.strip_prefix(VSHARD_KEYS) {
            if let Some(slot) = v.parse::<usize>().ok().and_then(|v| self.owners.get_mut(v)) {
                *slot = None;
            }
        }
    }

    /// The owner of `vshard`, if it is live: where its requests go.
    pub fn ready_owner(&self, vshard: u32) -> Option<(&Owner, &NodeInfo)> {
        let (owner, _) = self.owners.get(vshard as usize)?.as_ref()?;
        Some((owner, self.nodes.get(&owner.node)?))
    }

    /// The vshards without a live owner.
    pub fn unavailable(&self) -> Vec<u32> {
        (0..VSHARDS)
            .filter(|&v| self.ready_owner(v).is_none())
            .collect()
    }

    /// The vshard's owner and the revision of its key (0: no owner yet).
    pub fn owner(&self, vshard: u32) -> (Option<&Owner>, i64) {
        match self.owners.get(vshard as usize).and_then(Option::as_ref) {
            Some((owner, revision)) => (Some(owner), *revision),
            None => (None, 0),
        }
    }

    /// The node each vshard should live on, by the policy.
    pub fn target(&self, vshard: u32) -> Option<&str> {
        target_of(vshard, self.nodes.keys().map(String::as_str))
    }
}

/// 64-bit FNV-1a: a stable, portable score seed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64's finaliser: spreads the seed's bits over the score.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The policy: the node with the highest score for `vshard` (rendezvous
/// hashing: `mix(fnv1a(name) ^ vshard)`, ties to the smaller name).
pub fn target_of<'a>(vshard: u32, nodes: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    nodes
        .map(|name| (mix(fnv1a(name.as_bytes()) ^ u64::from(vshard)), name))
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(a.1)))
        .map(|(_, name)| name)
}

/// Connects to etcd, retrying for up to `patience`.
pub async fn connect(endpoint: &str, patience: Duration) -> Result<Client, String> {
    let started = std::time::Instant::now();
    loop {
        match Client::connect([endpoint], None).await {
            Ok(client) => return Ok(client),
            Err(e) if started.elapsed() >= patience => {
                return Err(format!("cannot reach etcd at {endpoint}: {e}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Keeps `map` equal to what etcd holds under [`PREFIX`]: one read, then
/// its watch from the next revision; a broken watch reads afresh.
pub async fn follow_map(mut client: Client, map: watch::Sender<Arc<ClusterMap>>) {
    loop {
        if let Err(e) = watch_once(&mut client, &map).await {
            tracing::warn!(error = %e, "the cluster map's watch broke; reading it again");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn watch_once(
    client: &mut Client,
    map: &watch::Sender<Arc<ClusterMap>>,
) -> Result<(), etcd_client::Error> {
    let read = client
        .get(PREFIX, Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = read.header().map_or(0, |h| h.revision());
    let mut fresh = ClusterMap::default();
    for kv in read.kvs() {
        fresh.put(kv.key_str()?, kv.value(), kv.mod_revision());
    }
    map.send_replace(Arc::new(fresh.clone()));
    let (_watcher, mut events) = client
        .watch(
            PREFIX,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        )
        .await?;
    while let Some(response) = events.message().await? {
        if response.canceled() {
            return Ok(());
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let key = kv.key_str()?;
            match event.event_type() {
                EventType::Put => fresh.put(key, kv.value(), kv.mod_revision()),
                EventType::Delete => fresh.delete(key),
            }
        }
        map.send_replace(Arc::new(fresh.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_moves_only_what_it_must() {
        let three = ["n1", "n2", "n3"];
        let four = ["n1", "n2", "n3", "n4"];
        let (mut moved, mut to_new) = (0, 0);
        let mut per_node = BTreeMap::<&str, usize>::new();
        for v in 0..VSHARDS {
            let before = target_of(v, three.iter().copied()).unwrap();
            let after = target_of(v, four.iter().copied()).unwrap();
            *per_node.entry(before).or_default() += 1;
            if before != after {
                moved += 1;
                to_new += usize::from(after == "n4");
            }
            // A death moves only the dead node's vshards.
            let without = target_of(v, ["n1", "n3"].into_iter()).unwrap();
            assert!(before == "n2" || without == before);
        }
        assert_eq!(
            moved, to_new,
            "every vshard that moves goes to the new node"
        );
        assert!((40..90).contains(&moved), "about a quarter moves: {moved}");
        assert!(
            per_node.values().all(|&n| (60..110).contains(&n)),
            "{per_node:?}"
        );
        assert_eq!(target_of(7, std::iter::empty()), None);
    }
}
