//! Several nodes, one service: on PostgreSQL, each node's own events reach the other nodes
//! through PostgreSQL's LISTEN/NOTIFY (no cluster protocol of our own). A node publishes its
//! events on one channel and listens to it; what arrives from another node goes on the local
//! bus marked `remote`, and a status change also updates the local playback index.
//!
//! NOTIFY is delivered to the nodes listening when it commits, in commit order, and not kept
//! for a node that was not listening: a node that loses its connection reloads its playback
//! index when it is back, and sockets resynchronise from their next `hello` or `stats`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::mpsc;

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
pub async fn relay_events(db: Db, events: Events) {
    let (Some(pool), Some(outbound)) = (db.postgres_pool(), events.relay_outbound()) else { return };
    let node = db.node().to_owned();
    tokio::join!(send(pool.clone(), outbound, node.clone()), receive(pool, db, events, node));
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

async fn receive(pool: PgPool, db: Db, events: Events, node: String) {
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
                Ok(Some(notification)) => deliver(&db, &events, &node, notification.payload()).await,
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
async fn deliver(db: &Db, events: &Events, node: &str, payload: &str) {
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
    if kind == kind::STATUS
        && let Err(e) = db.refresh_playback(&stream_id).await
    {
        tracing::warn!(stream = %stream_id, "updating the playback index: {e}");
    }
    events.publish(Event { kind, stream_id, body: wire.event.into(), remote: true });
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
        let relays =
            [tokio::spawn(relay_events(db_a.clone(), a.clone())), tokio::spawn(relay_events(db_b.clone(), b.clone()))];
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
