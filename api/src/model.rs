//! The domain's nouns: users, roles, streams and their lifecycle.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Seller,
    Viewer,
    /// The shop's backend: reports orders attributed to streams.
    Shop,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Seller => "seller",
            Role::Viewer => "viewer",
            Role::Shop => "shop",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "seller" => Some(Role::Seller),
            "viewer" => Some(Role::Viewer),
            "shop" => Some(Role::Shop),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamStatus {
    Scheduled,
    Live,
    /// The publisher is gone; the same key may come back.
    Reconnecting,
    /// Ended and deleted: hidden, media removed.
    Ended,
    /// Ended and saved: the replay plays.
    Archived,
    Cancelled,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Scheduled => "scheduled",
            StreamStatus::Live => "live",
            StreamStatus::Reconnecting => "reconnecting",
            StreamStatus::Ended => "ended",
            StreamStatus::Archived => "archived",
            StreamStatus::Cancelled => "cancelled",
        }
    }

    pub const ALL: [StreamStatus; 6] = [
        StreamStatus::Scheduled,
        StreamStatus::Live,
        StreamStatus::Reconnecting,
        StreamStatus::Ended,
        StreamStatus::Archived,
        StreamStatus::Cancelled,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Broadcasting, or waiting for its publisher to come back.
    pub fn is_on_air(self) -> bool {
        matches!(self, StreamStatus::Live | StreamStatus::Reconnecting)
    }

    /// Whether its media may be played: live edge or replay.
    pub fn is_playable(self) -> bool {
        self.is_on_air() || self == StreamStatus::Archived
    }
}

#[derive(Debug, Clone)]
pub struct Stream {
    pub id: String,
    pub owner_id: String,
    pub playback_id: String,
    pub title: String,
    pub description: Option<String>,
    pub status: StreamStatus,
    pub stream_key: String,
    pub key_valid_from: Option<DateTime<Utc>>,
    pub key_valid_until: Option<DateTime<Utc>>,
    /// Publishes so far: the first go-live is 1, every reconnect adds one.
    pub publish_seq: i64,
    pub reconnecting_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl Stream {
    /// When the key starts to work: as set, else an hour before the scheduled start.
    pub fn key_opens_at(&self) -> Option<DateTime<Utc>> {
        self.key_valid_from.or_else(|| self.scheduled_at.map(|at| at - chrono::Duration::hours(1)))
    }

    /// Whether the key may publish at `now` (the stream's status aside).
    pub fn key_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.key_opens_at().is_none_or(|from| now >= from) && self.key_valid_until.is_none_or(|until| now < until)
    }
}

/// What the ingest needs to know about a stream that may publish.
#[derive(Debug, Clone)]
pub struct PublishTicket {
    pub stream_id: String,
    pub playback_id: String,
    /// This publish's number: a publisher's later updates apply only while it is current.
    pub publish_seq: i64,
    /// The stream's status before this publish (`live` for a takeover).
    pub previous_status: StreamStatus,
}

/// Why a key may not publish. The publisher only ever learns "invalid stream key".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishDenied {
    /// No stream has this key.
    UnknownKey,
    /// The stream is over (ended, archived, cancelled).
    StreamOver,
    /// Outside the key's validity window.
    OutsideKeyWindow,
}

/// What happens to a stream whose publisher does not come back within the reconnect window,
/// and the seller's choice when ending one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndAction {
    /// Archive it: the replay plays.
    Save,
    /// End it and delete its media.
    Delete,
}

/// A chat message. `media_time` is the program date-time of the live edge when it was posted,
/// so a replay can show it in sync; null when nothing was live.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    pub id: i64,
    pub stream_id: String,
    pub user: ChatUser,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub media_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatUser {
    pub id: String,
    pub name: String,
    /// `seller` for the stream's owner, `moderator` for admins, absent for everyone else:
    /// pages show it as a badge, so nobody else can pass for the seller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
}

/// A product pinned on a stream, as the shop described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pin {
    pub id: String,
    pub stream_id: String,
    pub product_id: String,
    pub title: String,
    /// Exact decimal, e.g. "19.99".
    pub price: String,
    pub currency: String,
    pub image_url: Option<String>,
    pub url: Option<String>,
    pub pinned_at: DateTime<Utc>,
    pub unpinned_at: Option<DateTime<Utc>>,
}

/// An order the shop attributed to a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub order_id: String,
    pub stream_id: String,
    pub product_id: String,
    pub quantity: i64,
    /// Amount scaled by 10^4 (see [`crate::money`]).
    pub amount_e4: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

/// Persisted viewer figures of a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewerCounters {
    pub peak: i64,
    pub unique: i64,
    pub replay_views: i64,
}

/// Orders of one stream, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderTotals {
    pub orders: i64,
    pub units: i64,
    /// (currency, amount ×10^4), by currency. i128: no number of orders overflows it.
    pub revenue: Vec<(String, i128)>,
    pub products: Vec<ProductTotal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductTotal {
    pub product_id: String,
    pub currency: String,
    pub orders: i64,
    pub units: i64,
    pub revenue_e4: i128,
}
