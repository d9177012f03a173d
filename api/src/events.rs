//! The event bus: domain events (status changes, viewer counts, reactions, chat, pins, order
//! totals) go on one `tokio::sync::broadcast` channel; WebSocket clients and the webhook
//! sender subscribe to it. With several nodes (PostgreSQL), each node's own events also go to
//! the others ([`crate::cluster`]) and arrive there marked `remote`: sockets on every node see
//! every event, and only the node where an event happened sends its webhook.
//!
//! Every event is a JSON object `{type, stream_id, at, ...fields}`.

use std::sync::{Arc, OnceLock};

use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::model::StreamStatus;

/// Event types.
pub mod kind {
    /// `{status}`: the stream's status changed.
    pub const STATUS: &str = "status";
    /// The replay playlist is final: the replay plays.
    pub const REPLAY_READY: &str = "replay_ready";
    /// `{current, peak, unique, replay_views}`: at most once per second per stream.
    pub const VIEWERS: &str = "viewers";
    /// `{likes, dislikes}`.
    pub const REACTIONS: &str = "reactions";
    /// `{message}`.
    pub const CHAT: &str = "chat";
    /// `{message_id}`.
    pub const CHAT_DELETED: &str = "chat_deleted";
    /// `{pin}`.
    pub const PIN: &str = "pin";
    /// `{pin}` with `unpinned_at` set.
    pub const UNPIN: &str = "unpin";
    /// `{orders, units, revenue}`.
    pub const ORDERS: &str = "orders";
    /// `{video_url, bytes, duration_seconds}`: the replay's MP4 file is stored and plays.
    pub const REPLAY_MP4_READY: &str = "replay.mp4_ready";
    /// `{clip_id, video_url, bytes, duration_seconds}`: a clip's MP4 file is stored (to the
    /// stream's owner and admins: a clip may be an order's video receipt).
    pub const CLIP_MP4_READY: &str = "clip.mp4_ready";
    /// `{moment: live | soon, title, seller, playback_id, watch_url, scheduled_at,
    /// minutes_before}`: a listed stream went live for the first time, or starts in
    /// `minutes_before` minutes (as its seller asked). Also on the site-wide socket.
    pub const REMINDER: &str = "reminder";

    pub const ALL: [&str; 12] = [
        STATUS,
        REPLAY_READY,
        VIEWERS,
        REACTIONS,
        CHAT,
        CHAT_DELETED,
        PIN,
        UNPIN,
        ORDERS,
        REPLAY_MP4_READY,
        CLIP_MP4_READY,
        REMINDER,
    ];

    /// Kinds only the stream's owner and admins see on its socket.
    pub fn sellers_only(kind: &str) -> bool {
        kind == ORDERS || kind == CLIP_MP4_READY
    }

    /// The kind named `name`, as our constant.
    pub fn parse(name: &str) -> Option<&'static str> {
        ALL.into_iter().find(|kind| *kind == name)
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub stream_id: String,
    /// The whole event as sent: `{type, stream_id, at, ...}`.
    pub body: Arc<Value>,
    /// It happened on another node.
    pub remote: bool,
}

impl Event {
    /// An event of `kind` with the fields of `fields` (a JSON object).
    pub fn new(kind: &'static str, stream_id: &str, fields: Value) -> Self {
        let mut body = json!({ "type": kind, "stream_id": stream_id, "at": Utc::now() });
        if let (Value::Object(body), Value::Object(fields)) = (&mut body, fields) {
            body.extend(fields);
        }
        Self { kind, stream_id: stream_id.to_owned(), body: Arc::new(body), remote: false }
    }

    pub fn status(stream_id: &str, status: StreamStatus) -> Self {
        Self::new(kind::STATUS, stream_id, json!({ "status": status }))
    }

    /// The status this event announces, for status events.
    pub fn status_value(&self) -> Option<&str> {
        (self.kind == kind::STATUS).then(|| self.body["status"].as_str()).flatten()
    }
}

/// The bus. Cloning shares it.
#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    /// Where this node's own events go to reach the other nodes, once a relay is attached.
    outbound: Arc<OnceLock<mpsc::Sender<Event>>>,
}

/// Events a slow subscriber may fall behind by before it misses some.
const CAPACITY: usize = 4096;

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Self {
        Self { tx: broadcast::channel(CAPACITY).0, outbound: Arc::default() }
    }

    /// Publishes an event; nobody listening is fine. A node's own event also goes to the
    /// other nodes, when there are any.
    pub fn publish(&self, event: Event) {
        if !event.remote
            && let Some(outbound) = self.outbound.get()
            && outbound.try_send(event.clone()).is_err()
        {
            tracing::warn!(kind = event.kind, stream = %event.stream_id, "event relay behind: not sent to other nodes");
        }
        let _ = self.tx.send(event);
    }

    /// This node's own events from now on, to relay to the other nodes. Once per bus.
    pub fn relay_outbound(&self) -> Option<mpsc::Receiver<Event>> {
        let (tx, rx) = mpsc::channel(CAPACITY);
        self.outbound.set(tx).ok().map(|()| rx)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_carry_type_stream_and_time() {
        let events = Events::new();
        let mut rx = events.subscribe();
        events.publish(Event::status("s1", StreamStatus::Live));
        let event = rx.recv().await.unwrap();
        assert_eq!(event.body["type"], "status");
        assert_eq!(event.body["stream_id"], "s1");
        assert_eq!(event.status_value(), Some("live"));
        assert!(event.body["at"].is_string());
    }
}
