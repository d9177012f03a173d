//! Several nodes, one service: on PostgreSQL, each node's own events reach the other nodes
//! through PostgreSQL's LISTEN/NOTIFY (no cluster protocol of our own). A node publishes its
//! events on one channel and listens to it; what arrives from another node goes on the local
//! bus marked `remote`, and a status change also updates the local playback index.
//!
//! NOTIFY is delivered to the nodes listening when it commits, in commit order, and not kept
//! for a node that was not listening: a node that loses its connection reloads its playback
//! index when it is back, and sockets resynchronise from their next `hello` or `stats`.
//!
//! Each node also records in the database where the others reach its HTTP side
//! ([`follow_peers`]): a viewer's HLS request for a live stream another node holds is
//! forwarded there ([`Peers::forward`]), where the live playlists, blocking reloads and
//! parts in flight are in memory.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::mpsc;

use crate::AppState;
use crate::db::Db;
use crate::events::{Event, Events, kind};

/// The NOTIFY channel.
pub const CHANNEL: &str = "hawker_events";
/// PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_999;
/// Wait before listening again after the connection failed.
const RETRY: Duration = Duration::from_secs(1);

/// One event on the wire: which node it happened on, and the event as sockets get it.
#[derive(Serialize, Deserialize)]
struct Wire {
    node: String,
    event: Value,
}

/// Relays events between this node (`db.node()`) and the others, until the task is dropped.
/// Nothing to do on SQLite (one node).
pub async fn relay_events(db: Db, events: Events, peers: Peers) {
    // Only with other nodes to reach: a relay taken and dropped would refuse every event.
    let Some(pool) = db.postgres_pool() else { return };
    let Some(outbound) = events.relay_outbound() else { return };
    let node = db.node().to_owned();
    tokio::join!(send(pool.clone(), outbound, node.clone()), receive(pool, db, events, peers, node));
}

async fn send(pool: PgPool, mut outbound: mpsc::Receiver<Event>, node: String) {
    while let Some(event) = outbound.recv().await {
        // Viewer counts are each node's own sessions; they are not another node's to show.
        if event.kind == kind::VIEWERS {
            continue;
        }
        let payload =
            serde_json::to_string(&Wire { node: node.clone(), event: (*event.body).clone() }).expect("JSON serialises");
        if payload.len() > MAX_PAYLOAD {
            tracing::warn!(kind = event.kind, stream = %event.stream_id, bytes = payload.len(), "event too large to relay to other nodes");
            continue;
        }
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&payload).execute(&pool).await {
            tracing::warn!(kind = event.kind, stream = %event.stream_id, "relaying an event to other nodes failed: {e}");
        }
    }
}

async fn receive(pool: PgPool, db: Db, events: Events, peers: Peers, node: String) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!("listening for other nodes' events: {e}");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!("listening for other nodes' events: {e}");
            tokio::time::sleep(RETRY).await;
            continue;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => deliver(&db, &events, &peers, &node, notification.payload()).await,
                // The connection was lost and is re-established on the next call: status
                // changes may have been missed meanwhile.
                Ok(None) => resync(&db).await,
                Err(e) => {
                    tracing::warn!("receiving other nodes' events: {e}");
                    tokio::time::sleep(RETRY).await;
                    resync(&db).await;
                    break;
                }
            }
        }
    }
}

async fn resync(db: &Db) {
    if let Err(e) = db.load_playback_index().await {
        tracing::warn!("reloading the playback index: {e}");
    }
}

/// An event from the wire onto the local bus, unless it is this node's own.
async fn deliver(db: &Db, events: &Events, peers: &Peers, node: &str, payload: &str) {
    let Ok(wire) = serde_json::from_str::<Wire>(payload) else {
        tracing::warn!("an unreadable event from another node");
        return;
    };
    if wire.node == node {
        return;
    }
    let kind = wire.event["type"].as_str().and_then(kind::parse);
    let (Some(kind), Some(stream_id)) = (kind, wire.event["stream_id"].as_str().map(str::to_owned)) else {
        tracing::warn!("an event of an unknown kind from another node");
        return;
    };
    if kind == kind::STATUS {
        if let Err(e) = db.refresh_playback(&stream_id).await {
            tracing::warn!(stream = %stream_id, "updating the playback index: {e}");
        }
        // A stream that went live elsewhere is forwarded there from its first request.
        peers.refresh(db).await;
    }
    events.publish(Event { kind, stream_id, body: wire.event.into(), remote: true });
}

/// The header on a request one node forwards to another: the receiving node answers it
/// itself, never forwards it again (two nodes with stale views cannot bounce a request).
pub const FORWARDED: &str = "x-hawker-forwarded";
/// How often a node records itself and re-reads which streams the others hold.
const PEERS_EVERY: Duration = Duration::from_secs(1);
/// A forwarded request may be a blocking reload, held up to three target durations.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(40);

/// The other nodes, as this node forwards to them.
#[derive(Clone)]
pub struct Peers {
    /// Where the other nodes reach this node's HTTP side; `None`: one machine.
    advertise_url: Option<Arc<str>>,
    /// Live streams other nodes hold: stream id → the holder's HTTP address.
    holders: Arc<RwLock<HashMap<String, Arc<str>>>>,
    client: reqwest::Client,
}

impl Default for Peers {
    fn default() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(1))
            .timeout(FORWARD_TIMEOUT)
            .build()
            .expect("an HTTP client without TLS settings builds");
        Self { advertise_url: None, holders: Arc::default(), client }
    }
}

impl Peers {
    /// Other nodes reach this one at `url` (e.g. `http://10.0.0.5:8080`).
    pub fn advertising(url: &str) -> Self {
        Self { advertise_url: Some(url.trim_end_matches('/').into()), ..Self::default() }
    }

    /// The HTTP address of the node holding `stream_id`, if another node holds it.
    pub fn holder(&self, stream_id: &str) -> Option<Arc<str>> {
        self.holders.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(stream_id).cloned()
    }

    /// Re-reads which live streams other nodes hold.
    async fn refresh(&self, db: &Db) {
        if self.advertise_url.is_none() {
            return;
        }
        match db.streams_held_elsewhere().await {
            Ok(held) => {
                let held = held.into_iter().map(|(id, url)| (id, Arc::from(url))).collect();
                *self.holders.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = held;
            }
            Err(e) => tracing::warn!("reading which node holds which stream: {e}"),
        }
    }

    /// Sends a viewer's request (`path_and_query` of this node's URL, the codings it accepts)
    /// to the node at `holder` and returns its answer: status, body (as the holder encoded
    /// it: a live playlist compressed once there, not again here) and the headers a player or
    /// cache needs.
    pub async fn forward(
        &self,
        holder: &str,
        path_and_query: &str,
        accept_encoding: Option<&HeaderValue>,
    ) -> Result<Response, reqwest::Error> {
        let mut request = self.client.get(format!("{holder}{path_and_query}")).header(FORWARDED, "1");
        if let Some(accepted) = accept_encoding {
            request = request.header(header::ACCEPT_ENCODING, accepted);
        }
        let answer = request.send().await?;
        let status = answer.status();
        let headers = answer.headers().clone();
        let bytes = answer.bytes().await?;
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = status;
        let names = [
            header::CONTENT_TYPE,
            header::CACHE_CONTROL,
            header::RETRY_AFTER,
            header::LOCATION,
            header::CONTENT_ENCODING,
            header::VARY,
        ];
        for name in names {
            for value in headers.get_all(&name) {
                response.headers_mut().append(name.clone(), value.clone());
            }
        }
        response.headers_mut().insert(FORWARDED, HeaderValue::from_static("1"));
        Ok(response)
    }
}

/// On a shared database with an advertised address, until the task is dropped: every second,
/// records this node (so others forward to it) and re-reads which streams the others hold; a
/// stream packaged here that has been published since on another node is let go here.
pub async fn follow_peers(state: AppState) {
    let Some(url) = state.peers.advertise_url.clone().filter(|_| state.db.is_shared()) else { return };
    let mut tick = tokio::time::interval(PEERS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u32;
    loop {
        tick.tick().await;
        if let Err(e) = state.db.register_node(&url).await {
            tracing::warn!("recording this node: {e}");
        }
        state.peers.refresh(&state.db).await;
        // A stream packaged here but published since on another node (taken over there, live
        // or reconnecting by now) is let go: this node's state of it is stale.
        let here: Vec<String> = state.live.all_ingest_health().into_iter().map(|(id, _)| id).collect();
        match state.db.publish_counts(&here).await {
            Ok(counts) => {
                for (stream_id, latest) in counts {
                    state.live.release(&stream_id, latest).await;
                }
            }
            Err(e) => tracing::warn!("reading the streams' publishes: {e}"),
        }
        ticks += 1;
        if ticks.is_multiple_of(60)
            && let Err(e) = state.db.purge_stale_nodes().await
        {
            tracing::warn!("forgetting gone nodes: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StreamStatus;

    use crate::db::test_postgres;

    /// Two nodes on one database: what happens on one reaches the other's bus, once, marked
    /// remote; nothing comes back to the node it happened on.
    #[tokio::test(flavor = "multi_thread")]
    async fn events_reach_the_other_node_once() {
        let url = test_postgres::database();
        let (db_a, db_b) = (Db::connect(&url).await.unwrap(), Db::connect(&url).await.unwrap());
        db_a.migrate().await.unwrap();
        let (a, b) = (Events::new(), Events::new());
        let relays = [(db_a.clone(), a.clone()), (db_b.clone(), b.clone())]
            .map(|(db, events)| tokio::spawn(relay_events(db, events, Peers::default())));
        let (mut on_a, mut on_b) = (a.subscribe(), b.subscribe());
        // The listeners start in the background: retry the first event until it arrives.
        let first = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                a.publish(Event::new(kind::CHAT, "s1", serde_json::json!({"message": {"text": "hi"}})));
                if let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(200), on_b.recv()).await {
                    return event;
                }
            }
        })
        .await
        .expect("an event from node a reaches node b");
        assert!(first.remote);
        assert_eq!((first.kind, first.stream_id.as_str()), (kind::CHAT, "s1"));
        assert_eq!(first.body["message"]["text"], "hi");
        while on_b.try_recv().is_ok() {}
        while on_a.try_recv().is_ok() {}

        // A stream goes live on node b: node a's bus hears it and its playback index follows.
        let seller = db_b.create_user("s", crate::model::Role::Seller).await.unwrap().0;
        let stream = db_b.create_stream(crate::db::NewStream::titled(&seller.id, "t")).await.unwrap();
        crate::lifecycle::begin_publish(&db_b, &b, &stream.stream_key).await.unwrap().unwrap();
        let status = tokio::time::timeout(Duration::from_secs(2), on_a.recv()).await.unwrap().unwrap();
        assert_eq!((status.status_value(), status.remote), (Some("live"), true));
        assert_eq!(db_a.playback(&stream.playback_id).map(|p| p.status), Some(StreamStatus::Live));
        // Node b's own bus had it once, as its own; nothing came back from node a.
        let own = on_b.recv().await.unwrap();
        assert_eq!((own.status_value(), own.remote), (Some("live"), false));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(on_b.try_recv().is_err(), "an event came back to the node it happened on");
        assert!(on_a.try_recv().is_err(), "an event arrived twice");

        // Viewer counts stay on their node; oversized events are not relayed.
        b.publish(Event::new(kind::VIEWERS, &stream.id, serde_json::json!({"current": 1})));
        b.publish(Event::new(kind::CHAT, &stream.id, serde_json::json!({"message": "x".repeat(9_000)})));
        b.publish(Event::new(kind::REACTIONS, &stream.id, serde_json::json!({"likes": 1})));
        let next = tokio::time::timeout(Duration::from_secs(2), on_a.recv()).await.unwrap().unwrap();
        assert_eq!(next.kind, kind::REACTIONS, "only the reactions event crosses");
        for relay in relays {
            relay.abort();
        }
    }
}
