//! The cluster's driver: the [`Router`](super::Router)'s directory and
//! message bus on Redis, with the `redis` crate (tokio, its reconnecting
//! `ConnectionManager`; pub/sub on a connection of its own).
//!
//! Keys, under `--redis-prefix` (`volley`):
//! - `<p>:node:<id>`: a live node's advertised URL, with a TTL
//!   (`--node-ttl`, 3 s) renewed every third of it; `<p>:nodes` lists them;
//! - `<p>:home:<room name>`: the name's home node, claimed by a Lua script
//!   (atomic: the first claim wins, a dead home's name is taken over) and
//!   released only by its owner;
//! - `<p>:rooms:<id>`: the node's public room list (same TTL), merged by
//!   every node into `GET /api/rooms`;
//! - channel `<p>:to:<id>`: messages to the node, `<sender id>\n<json>`.
//!
//! A node that misses its renewals is dead to the others once its key
//! expires: they drop its peers from their rooms and tell theirs homed there
//! to join again. A node that could not renew in time learns it was evicted
//! from its next renewal, and does the same the other way round.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::message::{NodeId, NodeMessage};
use crate::lobby::RoomInfo;
use crate::metrics::Metrics;
use crate::secret::Secret;

/// Messages waiting to be published; beyond this they are dropped and
/// counted (`volley_cluster_messages_dropped_total{reason="queue_full"}`).
pub const PUBLISH_QUEUE: usize = 16_384;

/// Messages sent to Redis in one pipeline.
const PUBLISH_BATCH: usize = 256;

/// Events from the cluster waiting for the actor.
pub const EVENT_QUEUE: usize = 4096;

/// Largest node entry or room list read from another node.
pub const MAX_NODE_ENTRY: usize = 4 * 1024 * 1024;

/// How long one Redis command may take before it counts as failed.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// Claims the home of a name: the current owner if it is this node or still
/// alive, else this node. (A `Script` hashes its code once; calls send the
/// hash.)
static CLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local owner = redis.call('GET', KEYS[1])
if owner and (owner == ARGV[1] or redis.call('EXISTS', ARGV[2] .. owner) == 1) then
  return owner
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
",
    )
});

/// Releases a name only if this node still owns it.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// How a node joins a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port[/db]` (a secret: it may hold a password).
    pub redis_url: Secret,
    /// This node's id, unique in the cluster.
    pub node: NodeId,
    /// The URL clients reach this node at (listed by `GET /api/nodes`).
    pub advertise: String,
    /// A node whose entry is not renewed for this long is dead.
    pub node_ttl: Duration,
    /// Prefix of every key and channel (several clusters can share a Redis).
    pub prefix: String,
}

impl ClusterConfig {
    /// A cluster on `redis_url` with the defaults (3 s TTL, prefix `volley`).
    pub fn new(redis_url: impl Into<Secret>, node: NodeId, advertise: impl Into<String>) -> Self {
        ClusterConfig {
            redis_url: redis_url.into(),
            node,
            advertise: advertise.into(),
            node_ttl: Duration::from_secs(3),
            prefix: "volley".into(),
        }
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}:{kind}:{id}", self.prefix)
    }

    /// The set of registered nodes, `<p>:nodes`.
    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
}

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL does not parse.
    #[error("invalid Redis URL: {0}")]
    Url(redis::RedisError),
    /// Redis did not answer.
    #[error("cannot reach Redis at {at}: {source}")]
    Unreachable {
        /// Host and port (no credentials).
        at: String,
        /// The cause.
        source: redis::RedisError,
    },
    /// Redis did not answer in time.
    #[error("Redis at {0} did not answer within 2 s")]
    Timeout(String),
    /// Another live node has this id.
    #[error("node id {0} is in use by a live node (or one that died less than --node-ttl ago)")]
    NodeIdInUse(NodeId),
}

/// What the cluster tells the actor.
#[derive(Debug)]
pub enum ClusterEvent {
    /// A claim's answer (`None`: Redis failed).
    Claimed {
        /// The claim.
        claim: u64,
        /// The name's home.
        home: Option<NodeId>,
    },
    /// A message from another node.
    FromNode {
        /// The sender.
        node: NodeId,
        /// The message.
        message: NodeMessage,
    },
    /// The other live nodes, read by a heartbeat that began at `asked`
    /// (sent after every successful heartbeat).
    Live {
        /// The live nodes.
        nodes: BTreeSet<NodeId>,
        /// When the read began.
        asked: Instant,
    },
    /// Redis became reachable or unreachable.
    Directory {
        /// Reachable.
        up: bool,
    },
    /// This node's own entry had expired.
    Evicted,
}

/// A node connected to Redis, not yet running.
pub struct Cluster {
    config: Arc<ClusterConfig>,
    client: redis::Client,
    conn: ConnectionManager,
}

/// Host and port of a Redis URL, never its credentials.
fn redis_at(client: &redis::Client) -> String {
    client.get_connection_info().addr().to_string()
}

impl Cluster {
    /// Connects and registers the node: a clear error when Redis cannot be
    /// reached or the id is taken.
    pub async fn connect(config: ClusterConfig) -> Result<Cluster, ClusterError> {
        let client =
            redis::Client::open(config.redis_url.expose_str()).map_err(ClusterError::Url)?;
        let at = redis_at(&client);
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let mut conn = ConnectionManager::new_lazy_with_config(client.clone(), manager)
            .map_err(ClusterError::Url)?;
        let ping = redis::cmd("PING");
        match tokio::time::timeout(
            Duration::from_secs(2),
            ping.query_async::<String>(&mut conn),
        )
        .await
        {
            Err(_) => return Err(ClusterError::Timeout(at)),
            Ok(Err(source)) => return Err(ClusterError::Unreachable { at, source }),
            Ok(Ok(_)) => {}
        }
        // A node restarted under its id waits out its previous life's entry,
        // so that the others notice that one's death first.
        let key = config.key("node", config.node.as_str());
        let deadline = Instant::now() + config.node_ttl + Duration::from_secs(1);
        loop {
            let set: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&config.advertise)
                .arg("PX")
                .arg(millis(config.node_ttl))
                .arg("NX")
                .query_async(&mut conn)
                .await
                .map_err(|source| ClusterError::Unreachable {
                    at: at.clone(),
                    source,
                })?;
            if set.is_some() {
                break;
            }
            if Instant::now() > deadline {
                return Err(ClusterError::NodeIdInUse(config.node.clone()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        info!("cluster: node {} joined through Redis at {at}", config.node);
        Ok(Cluster {
            config: Arc::new(config),
            client,
            conn,
        })
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.config.node
    }

    /// Starts the heartbeat, the subscriber and the publisher. The actor
    /// publishes its own public rooms in `local_rooms`; the merged list of
    /// the cluster goes to `rooms`, the live nodes to `nodes`.
    pub fn start(
        self,
        events: mpsc::Sender<ClusterEvent>,
        metrics: Arc<Metrics>,
        local_rooms: watch::Receiver<Bytes>,
        rooms: watch::Sender<Bytes>,
        nodes: watch::Sender<Bytes>,
    ) -> Link {
        let (publish, queue) = mpsc::channel(PUBLISH_QUEUE);
        let tasks = vec![
            tokio::spawn(heartbeat(
                self.config.clone(),
                self.conn.clone(),
                events.clone(),
                metrics.clone(),
                local_rooms,
                rooms,
                nodes,
            )),
            tokio::spawn(subscriber(
                self.config.clone(),
                self.client,
                events.clone(),
                metrics.clone(),
            )),
            tokio::spawn(publisher(
                self.config.clone(),
                self.conn.clone(),
                queue,
                metrics.clone(),
            )),
        ];
        Link {
            config: self.config,
            conn: self.conn,
            publish,
            events,
            metrics,
            tasks,
        }
    }
}

/// The actor's handle on the cluster: every call returns at once.
pub struct Link {
    config: Arc<ClusterConfig>,
    conn: ConnectionManager,
    publish: mpsc::Sender<(NodeId, String)>,
    events: mpsc::Sender<ClusterEvent>,
    metrics: Arc<Metrics>,
    tasks: Vec<JoinHandle<()>>,
}

impl Link {
    /// Queues a message to another node (dropped and counted when the queue
    /// is full: a slow Redis must not stall the actor).
    pub fn publish(&self, node: NodeId, message: &NodeMessage) {
        let text = match message.encode() {
            Ok(text) => text,
            Err(e) => {
                warn!("cluster: cannot encode a message to {node}: {e}");
                return;
            }
        };
        self.metrics.cluster_sent(kind(message));
        if self.publish.try_send((node, text)).is_err() {
            self.metrics.cluster_dropped("queue_full", 1);
        }
    }

    /// Asks the directory for `name`'s home; the answer comes back as
    /// [`ClusterEvent::Claimed`].
    pub fn claim(&self, claim: u64, name: String) {
        let mut conn = self.conn.clone();
        let key = self.config.key("home", &name);
        let me = self.config.node.as_str().to_owned();
        let nodes = self.config.key("node", "");
        let events = self.events.clone();
        self.metrics.cluster_claims.increment(1);
        tokio::spawn(async move {
            let mut call = CLAIM.key(key);
            call.arg(me).arg(nodes);
            let answer =
                tokio::time::timeout(REDIS_TIMEOUT, call.invoke_async::<String>(&mut conn));
            let home = match answer.await {
                Ok(Ok(home)) => NodeId::new(home).ok(),
                Ok(Err(e)) => {
                    warn!("cluster: claim of {name:?} failed: {e}");
                    None
                }
                Err(_) => None,
            };
            let _ = events.send(ClusterEvent::Claimed { claim, home }).await;
        });
    }

    /// Gives up `name` if this node still owns it.
    pub fn release(&self, name: &str) {
        let mut conn = self.conn.clone();
        let key = self.config.key("home", name);
        let me = self.config.node.as_str().to_owned();
        tokio::spawn(async move {
            let mut call = RELEASE.key(key);
            call.arg(me);
            let _ = tokio::time::timeout(REDIS_TIMEOUT, call.invoke_async::<i64>(&mut conn)).await;
        });
    }

    /// Stops the tasks and removes this node's entries, so that the others
    /// see it gone at their next heartbeat instead of after the TTL.
    pub async fn leave(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let me = self.config.node.as_str();
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(self.config.key("node", me))
            .arg(self.config.key("rooms", me))
            .ignore()
            .cmd("SREM")
            .arg(self.config.nodes_key())
            .arg(me)
            .ignore();
        let _ = tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut self.conn)).await;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn kind(message: &NodeMessage) -> &'static str {
    match message {
        NodeMessage::Join { .. } => "join",
        NodeMessage::Signal { .. } => "signal",
        NodeMessage::Left { .. } => "left",
        NodeMessage::Deliver { .. } => "deliver",
        NodeMessage::Close { .. } => "close",
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Values of an MGET, missing ones as `None`.
type Entries = Vec<Option<Vec<u8>>>;

/// What one heartbeat learnt.
struct Beat {
    /// Our entry had expired before this renewal.
    evicted: bool,
    /// Live nodes other than this one, with their advertised URLs.
    live: BTreeMap<NodeId, String>,
    /// Their public rooms, and ours.
    rooms: Vec<RoomInfo>,
}

async fn beat(
    config: &ClusterConfig,
    conn: &mut ConnectionManager,
    local_rooms: &Bytes,
) -> redis::RedisResult<Beat> {
    let me = config.node.as_str();
    let node_key = config.key("node", me);
    let nodes_key = config.nodes_key();
    let ttl = millis(config.node_ttl);
    let (renewed, members): (Option<String>, Vec<String>) = redis::pipe()
        .cmd("SET")
        .arg(&node_key)
        .arg(&config.advertise)
        .arg("PX")
        .arg(ttl)
        .arg("XX")
        .cmd("SADD")
        .arg(&nodes_key)
        .arg(me)
        .ignore()
        .cmd("SET")
        .arg(config.key("rooms", me))
        .arg(local_rooms.as_ref())
        .arg("PX")
        .arg(ttl)
        .ignore()
        .cmd("SMEMBERS")
        .arg(&nodes_key)
        .query_async(conn)
        .await?;
    let evicted = renewed.is_none();
    if evicted {
        redis::cmd("SET")
            .arg(&node_key)
            .arg(&config.advertise)
            .arg("PX")
            .arg(ttl)
            .query_async::<()>(conn)
            .await?;
    }
    let members: BTreeSet<NodeId> = members
        .into_iter()
        .filter_map(|m| NodeId::new(m).ok())
        .filter(|m| m.as_str() != me)
        .collect();
    let mut live = BTreeMap::new();
    let mut rooms: Vec<RoomInfo> = read_rooms(local_rooms);
    if !members.is_empty() {
        let node_keys: Vec<String> = members
            .iter()
            .map(|m| config.key("node", m.as_str()))
            .collect();
        let room_keys: Vec<String> = members
            .iter()
            .map(|m| config.key("rooms", m.as_str()))
            .collect();
        let (urls, lists): (Entries, Entries) = redis::pipe()
            .cmd("MGET")
            .arg(&node_keys)
            .cmd("MGET")
            .arg(&room_keys)
            .query_async(conn)
            .await?;
        let mut dead = Vec::new();
        for ((node, url), list) in members.into_iter().zip(urls).zip(lists) {
            match url {
                Some(url) if url.len() <= MAX_NODE_ENTRY => {
                    live.insert(node, String::from_utf8_lossy(&url).into_owned());
                    if let Some(list) = list {
                        rooms.extend(read_rooms(&list));
                    }
                }
                _ => dead.push(node.as_str().to_owned()),
            }
        }
        if !dead.is_empty() {
            redis::cmd("SREM")
                .arg(&nodes_key)
                .arg(&dead)
                .query_async::<()>(conn)
                .await?;
        }
    }
    // Each node's list is within MAX_LISTED_ROOMS; so is their sum.
    let (rooms, _) = crate::lobby::listed(rooms);
    Ok(Beat {
        evicted,
        live,
        rooms,
    })
}

/// A node's room list, as untrusted input: too large or malformed reads as empty.
fn read_rooms(json: &[u8]) -> Vec<RoomInfo> {
    if json.len() > MAX_NODE_ENTRY {
        return Vec::new();
    }
    serde_json::from_slice(json).unwrap_or_default()
}

/// Renews this node's entry and room list, reads the others', and reports
/// what changed: Redis up or down, nodes gone, this node evicted.
async fn heartbeat(
    config: Arc<ClusterConfig>,
    mut conn: ConnectionManager,
    events: mpsc::Sender<ClusterEvent>,
    metrics: Arc<Metrics>,
    local_rooms: watch::Receiver<Bytes>,
    rooms: watch::Sender<Bytes>,
    nodes: watch::Sender<Bytes>,
) {
    let every = (config.node_ttl / 3).max(Duration::from_millis(10));
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut up = true;
    let mut known: BTreeMap<NodeId, String> = BTreeMap::new();
    metrics.cluster_redis_up.set(1.0);
    loop {
        interval.tick().await;
        let local = local_rooms.borrow().clone();
        let started = Instant::now();
        let result = tokio::time::timeout(every, beat(&config, &mut conn, &local)).await;
        let beat = match result {
            Ok(Ok(beat)) => beat,
            failed => {
                if up {
                    match failed {
                        Ok(Err(e)) => warn!("cluster: Redis unreachable: {e}"),
                        _ => warn!("cluster: Redis did not answer within {every:?}"),
                    }
                    up = false;
                    metrics.cluster_redis_up.set(0.0);
                    let _ = events.send(ClusterEvent::Directory { up: false }).await;
                }
                continue;
            }
        };
        metrics
            .cluster_redis_rtt
            .record(started.elapsed().as_secs_f64());
        if !up {
            info!("cluster: Redis reachable again");
            up = true;
            metrics.cluster_redis_up.set(1.0);
            let _ = events.send(ClusterEvent::Directory { up: true }).await;
        }
        if beat.evicted {
            warn!("cluster: this node's entry had expired: the others dropped its peers");
            let _ = events.send(ClusterEvent::Evicted).await;
        }
        for gone in known.keys().filter(|n| !beat.live.contains_key(*n)) {
            info!("cluster: node {gone} is gone");
        }
        let live = beat.live.keys().cloned().collect();
        let _ = events
            .send(ClusterEvent::Live {
                nodes: live,
                asked: started,
            })
            .await;
        metrics.cluster_nodes.set((beat.live.len() + 1) as f64);
        let mut listed: Vec<serde_json::Value> = vec![serde_json::json!({
            "id": config.node.as_str(), "url": config.advertise,
        })];
        listed.extend(
            beat.live
                .iter()
                .map(|(id, url)| serde_json::json!({ "id": id.as_str(), "url": url })),
        );
        known = beat.live;
        if let Ok(json) = serde_json::to_vec(&listed) {
            nodes.send_replace(Bytes::from(json));
        }
        if let Ok(json) = serde_json::to_vec(&beat.rooms) {
            rooms.send_replace(Bytes::from(json));
        }
    }
}

/// Reads this node's channel; reconnects (every 500 ms) when the
/// subscription is lost. Messages published meanwhile are lost, as in any
/// pub/sub: peers whose signals were lost time out and join again.
async fn subscriber(
    config: Arc<ClusterConfig>,
    client: redis::Client,
    events: mpsc::Sender<ClusterEvent>,
    metrics: Arc<Metrics>,
) {
    let channel = config.key("to", config.node.as_str());
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(REDIS_TIMEOUT * 2, subscribed).await {
            Ok(Ok(pubsub)) => {
                let mut stream = pubsub.into_on_message();
                while let Some(message) = stream.next().await {
                    let Some((node, message)) = read_message(message.get_payload_bytes()) else {
                        metrics.cluster_dropped("malformed", 1);
                        continue;
                    };
                    if node == config.node {
                        continue;
                    }
                    metrics.cluster_received.increment(1);
                    if events
                        .send(ClusterEvent::FromNode { node, message })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                warn!("cluster: lost the subscription to {channel}");
            }
            Ok(Err(e)) => warn!("cluster: cannot subscribe to {channel}: {e}"),
            Err(_) => warn!("cluster: subscribing to {channel} timed out"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `<sender id>\n<json>`, read as untrusted input.
fn read_message(payload: &[u8]) -> Option<(NodeId, NodeMessage)> {
    let split = payload.iter().position(|&b| b == b'\n')?;
    let node = NodeId::new(std::str::from_utf8(&payload[..split]).ok()?).ok()?;
    let message = NodeMessage::decode(&payload[split + 1..]).ok()?;
    Some((node, message))
}

/// Publishes queued messages in pipelines, in order.
async fn publisher(
    config: Arc<ClusterConfig>,
    mut conn: ConnectionManager,
    mut queue: mpsc::Receiver<(NodeId, String)>,
    metrics: Arc<Metrics>,
) {
    let me = config.node.as_str();
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while queue.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let mut pipe = redis::pipe();
        let count = batch.len() as u64;
        for (node, text) in batch.drain(..) {
            pipe.cmd("PUBLISH")
                .arg(config.key("to", node.as_str()))
                .arg(format!("{me}\n{text}"))
                .ignore();
        }
        let sent = tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
        if !matches!(sent, Ok(Ok(()))) {
            metrics.cluster_dropped("redis_error", count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_from_other_nodes_are_read_strictly() {
        let message = NodeMessage::Left {
            peer: matchbox_protocol::PeerId(uuid::Uuid::from_u128(1)),
            dropped: false,
        };
        let payload = format!("n1\n{}", message.encode().unwrap());
        let (node, read) = read_message(payload.as_bytes()).unwrap();
        assert_eq!((node.as_str(), read), ("n1", message));
        for bad in [&b"no newline"[..], b"bad id\n{}", b"n1\nnot json", b"\n{}"] {
            assert!(read_message(bad).is_none());
        }
        assert!(read_rooms(b"[{\"id\":1}]").is_empty());
        assert_eq!(
            read_rooms(br#"[{"id":"a","players":1,"capacity":2,"age_secs":3}]"#).len(),
            1
        );
    }
}
