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

/// What moves a stream from one status to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The stream's key publishes (a stream already live is taken over).
    Publish,
    /// The current publisher left.
    PublisherGone,
    /// The server started: nobody publishes yet.
    Restart,
    /// The node holding the stream stopped renewing its lease (it died).
    LeaseExpired,
    /// The seller or an admin ends the stream.
    End(EndAction),
    /// The publisher stayed away past the reconnect window: the admin's default action.
    WindowExpired(EndAction),
    /// The seller or an admin cancels a stream that never went live.
    Cancel,
}

impl Trigger {
    /// What the trigger does to a practice stream: any end deletes it, media and all.
    pub fn for_practice(self) -> Self {
        match self {
            Trigger::End(_) => Trigger::End(EndAction::Delete),
            Trigger::WindowExpired(_) => Trigger::WindowExpired(EndAction::Delete),
            other => other,
        }
    }
}

impl Trigger {
    pub const ALL: [Trigger; 9] = [
        Trigger::Publish,
        Trigger::PublisherGone,
        Trigger::Restart,
        Trigger::LeaseExpired,
        Trigger::End(EndAction::Save),
        Trigger::End(EndAction::Delete),
        Trigger::WindowExpired(EndAction::Save),
        Trigger::WindowExpired(EndAction::Delete),
        Trigger::Cancel,
    ];
}

/// The lifecycle, whole: where `trigger` takes a stream in status `from`, or `None` where it
/// does not apply (the API answers 409 with the current status). The repository applies it
/// atomically, with the statuses of [`Transition::of`] in its `WHERE`.
pub fn next_status(from: StreamStatus, trigger: Trigger) -> Option<StreamStatus> {
    use StreamStatus::*;
    let ended = |action| if action == EndAction::Save { Archived } else { Ended };
    match (from, trigger) {
        (Scheduled | Live | Reconnecting, Trigger::Publish) => Some(Live),
        (Live, Trigger::PublisherGone | Trigger::Restart | Trigger::LeaseExpired) => Some(Reconnecting),
        (Live | Reconnecting, Trigger::End(action)) => Some(ended(action)),
        (Reconnecting, Trigger::WindowExpired(action)) => Some(ended(action)),
        (Scheduled, Trigger::Cancel) => Some(Cancelled),
        _ => None,
    }
}

/// A trigger as the repository applies it: from any of `from`, to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: Vec<StreamStatus>,
    pub to: StreamStatus,
}

impl Transition {
    pub fn of(trigger: Trigger) -> Self {
        let moves: Vec<(StreamStatus, StreamStatus)> =
            StreamStatus::ALL.into_iter().filter_map(|from| Some((from, next_status(from, trigger)?))).collect();
        let to = moves.first().map(|&(_, to)| to).expect("every trigger applies to some status");
        debug_assert!(moves.iter().all(|&(_, t)| t == to), "a trigger leads to one status");
        Self { from: moves.into_iter().map(|(from, _)| from).collect(), to }
    }

    /// `'a', 'b'`: the statuses it applies to, for an SQL `IN` list (our constants, never
    /// user text).
    pub fn from_sql(&self) -> String {
        self.from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ")
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
    /// A rehearsal: never listed, no webhooks, deleted (media and all) when it ends.
    pub practice: bool,
    /// The replay as one MP4, once made: its path under `/hls/{playback_id}/`.
    pub video_path: Option<String>,
    /// Subscribers are also reminded this many minutes before `scheduled_at`.
    pub remind_minutes_before: Option<i64>,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishDenied {
    /// No stream has this key.
    UnknownKey,
    /// The stream (its id) is over (ended, archived, cancelled).
    StreamOver(String),
    /// The stream's (its id) key is outside its validity window.
    OutsideKeyWindow(String),
}

/// Why a publish was refused or dropped, when the seller can fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The video is not H.264.
    VideoCodec,
    /// The audio is not AAC.
    AudioCodec,
    /// Far over the admin's bit rate cap: disconnected.
    Bitrate,
    /// The key works only within its window (`key_valid_from` … `key_valid_until`).
    KeyWindow,
    /// The stream has ended: its key publishes no more.
    StreamOver,
    /// Too many wrong keys from the publisher's address: even the right one waits.
    TooManyWrongKeys,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VideoCodec => "video_codec",
            Self::AudioCodec => "audio_codec",
            Self::Bitrate => "bitrate",
            Self::KeyWindow => "key_window",
            Self::StreamOver => "stream_over",
            Self::TooManyWrongKeys => "too_many_wrong_keys",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::VideoCodec, Self::AudioCodec, Self::Bitrate, Self::KeyWindow, Self::StreamOver, Self::TooManyWrongKeys]
            .into_iter()
            .find(|reason| reason.as_str() == text)
    }
}

/// The last publish refused or dropped for a reason the seller can fix: what happened
/// (`detail`) and how to fix it (`fix`, one line, in OBS's words).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastRefusal {
    pub reason: RefusalReason,
    pub detail: String,
    pub fix: String,
    pub at: DateTime<Utc>,
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

/// A product pinned on a stream, as the shop described it. (Deserialize: a pin made on
/// another node arrives in its event.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
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

/// A span of a stream's media, played through its own VOD playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    pub id: String,
    pub stream_id: String,
    pub title: Option<String>,
    /// What it covers (whole segments: the span asked for, widened to segment boundaries).
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Its VOD playlist: the path under `/hls/{playback_id}/`.
    pub playlist_path: String,
    /// The user who made it.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Its MP4 once made: the path under `/hls/{playback_id}/`.
    pub video_path: Option<String>,
    pub kind: ClipKind,
    /// The span asked for, inside `start..end`: what its MP4 shows, to the frame. `None` for
    /// clips made before it was kept (their MP4 shows the whole segments).
    pub requested: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Clip {
    /// What the clip's MP4 shows: the span asked for, within what is stored.
    pub fn video_span(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        match self.requested {
            Some((from, to)) => (from.max(self.start), to.min(self.end)),
            None => (self.start, self.end),
        }
    }
}

/// Who made a clip, and of what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClipKind {
    /// The seller's (or an admin's) clip.
    Clip,
    /// A product's pin, made when the stream was saved.
    Highlight { product_id: String },
    /// The moments before an order (`{shop_id}/{order_id}`), made when it came.
    Receipt { order_ref: String },
}

impl ClipKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ClipKind::Clip => "clip",
            ClipKind::Highlight { .. } => "highlight",
            ClipKind::Receipt { .. } => "receipt",
        }
    }
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
    /// The live edge's program date-time when the order came, while the stream was on air.
    pub media_time: Option<DateTime<Utc>>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use EndAction::{Delete, Save};
    use StreamStatus::*;

    #[test]
    fn a_practice_stream_is_deleted_however_it_ends() {
        assert_eq!(Trigger::End(Save).for_practice(), Trigger::End(Delete));
        assert_eq!(Trigger::WindowExpired(Save).for_practice(), Trigger::WindowExpired(Delete));
        assert_eq!(next_status(Live, Trigger::End(Save).for_practice()), Some(Ended));
        assert_eq!(Trigger::Publish.for_practice(), Trigger::Publish);
    }

    /// Every status against every trigger: the allowed moves, and nothing else.
    #[test]
    fn the_lifecycle_allows_these_moves_and_no_other() {
        let allowed = [
            (Scheduled, Trigger::Publish, Live),
            (Live, Trigger::Publish, Live),
            (Reconnecting, Trigger::Publish, Live),
            (Live, Trigger::PublisherGone, Reconnecting),
            (Live, Trigger::Restart, Reconnecting),
            (Live, Trigger::LeaseExpired, Reconnecting),
            (Live, Trigger::End(Save), Archived),
            (Reconnecting, Trigger::End(Save), Archived),
            (Live, Trigger::End(Delete), Ended),
            (Reconnecting, Trigger::End(Delete), Ended),
            (Reconnecting, Trigger::WindowExpired(Save), Archived),
            (Reconnecting, Trigger::WindowExpired(Delete), Ended),
            (Scheduled, Trigger::Cancel, Cancelled),
        ];
        for from in StreamStatus::ALL {
            for trigger in Trigger::ALL {
                let want = allowed.iter().find(|(f, t, _)| *f == from && *t == trigger).map(|(_, _, to)| *to);
                assert_eq!(next_status(from, trigger), want, "{from:?} on {trigger:?}");
            }
        }
        // Ended, archived and cancelled streams never move again.
        for from in [Ended, Archived, Cancelled] {
            assert!(Trigger::ALL.iter().all(|&t| next_status(from, t).is_none()), "{from:?}");
        }
    }

    #[test]
    fn a_transition_lists_the_statuses_its_trigger_applies_to() {
        let publish = Transition::of(Trigger::Publish);
        assert_eq!(publish, Transition { from: vec![Scheduled, Live, Reconnecting], to: Live });
        assert_eq!(publish.from_sql(), "'scheduled', 'live', 'reconnecting'");
        assert_eq!(Transition::of(Trigger::WindowExpired(Delete)), Transition { from: vec![Reconnecting], to: Ended });
        assert_eq!(Transition::of(Trigger::End(Save)).from, vec![Live, Reconnecting]);
        // Every trigger applies somewhere and leads to one status.
        for trigger in Trigger::ALL {
            let t = Transition::of(trigger);
            assert!(t.from.iter().all(|&from| next_status(from, trigger) == Some(t.to)), "{trigger:?}");
        }
    }
}
