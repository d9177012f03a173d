//! The domain's nouns: users, roles, streams and their lifecycle.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Seller,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Seller => "seller",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "seller" => Some(Role::Seller),
            "viewer" => Some(Role::Viewer),
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

    pub fn parse(s: &str) -> Option<Self> {
        [
            StreamStatus::Scheduled,
            StreamStatus::Live,
            StreamStatus::Reconnecting,
            StreamStatus::Ended,
            StreamStatus::Archived,
            StreamStatus::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
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
    pub created_at: DateTime<Utc>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// What the ingest needs to know about a stream that may publish.
#[derive(Debug, Clone)]
pub struct PublishTicket {
    pub stream_id: String,
    pub playback_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishDenied {
    /// No stream has this key, or its stream may not publish now.
    BadKey,
    /// The stream's publisher is still connected.
    Busy,
}
