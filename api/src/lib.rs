//! hawker's domain and its HTTP face: users and roles, streams and their lifecycle, HLS
//! delivery. Knows axum, sqlx and the storage trait; RTMP and GStreamer stay behind
//! [`LiveControl`] and [`LiveHls`], which the composition root implements.

pub mod clips;
pub mod cluster;
pub mod db;
pub mod engagement;
pub mod events;
mod http;
pub mod lifecycle;
pub mod model;
pub mod money;
pub mod playback;
mod progress;
pub mod refusals;
pub mod reminders;
pub mod replay_video;
pub mod secrets;
pub mod settings;
pub mod webhooks;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hawker_storage::Store;

pub use db::{Db, DbError};
pub use engagement::Engagement;
pub use events::{Event, Events};
pub use http::{ACCESS_LOG, App, metrics_router};
pub use progress::ProgressWatch;

/// What the API asks of the live media side. Declared here, implemented by the root.
#[async_trait]
pub trait LiveControl: Send + Sync + 'static {
    /// Disconnects the stream's publisher, if one is connected.
    fn disconnect(&self, stream_id: &str);
    /// Stops packaging the stream; with `save`, its replay playlist is finalised. When this
    /// returns no more media objects of the stream are written.
    async fn finish(&self, stream_id: &str, playback_id: &str, save: bool) -> anyhow::Result<()>;
    /// Lets go of a stream published since on another node (the database's publish count
    /// `latest` is past the publish packaged here): disconnects its publisher here, stores what
    /// was sent, and forgets the stream without finishing its replay.
    async fn release(&self, stream_id: &str, latest: i64);
    /// Health of the stream's latest publish, while the stream is being packaged.
    fn ingest_health(&self, stream_id: &str) -> Option<IngestHealth>;
    /// Health of every stream being packaged, by stream id.
    fn all_ingest_health(&self) -> Vec<(String, IngestHealth)>;
    /// Server-wide ingest counters.
    fn ingest_counters(&self) -> IngestCounters;
    /// Puts a timed marker (an `EXT-X-DATERANGE`) into the stream's live and replay
    /// playlists. A marker with the `id` of an earlier one and an `end` closes it.
    async fn add_marker(&self, stream_id: &str, marker: Marker) -> anyhow::Result<()>;
    /// Makes one MP4 file of a saved stream's replay (no re-encode) and stores it beside the
    /// replay. Slow (it reads every segment once): call it off the request path.
    async fn export_replay(&self, playback_id: &str) -> anyhow::Result<ReplayVideo>;
    /// Makes a clip of `span` of a stream (live or saved) and stores its VOD playlist: whole
    /// segments of what is stored, none copied. `None`: nothing is stored in that span.
    async fn make_clip(
        &self,
        playback_id: &str,
        clip_id: &str,
        span: (DateTime<Utc>, DateTime<Utc>),
    ) -> anyhow::Result<Option<ClipSpan>>;
    /// Makes the MP4 of a clip's span (as [`LiveControl::export_replay`] does for a replay).
    async fn export_clip(
        &self,
        playback_id: &str,
        clip_id: &str,
        span: (DateTime<Utc>, DateTime<Utc>),
    ) -> anyhow::Result<ReplayVideo>;
}

/// What a clip covers, as made by [`LiveControl::make_clip`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipSpan {
    /// Its playlist: the path under `/hls/{playback_id}/`.
    pub path: String,
    /// From its first segment's start to its last one's end.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A replay's MP4 file, as made by [`LiveControl::export_replay`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayVideo {
    /// Its path under `/hls/{playback_id}/`.
    pub path: String,
    pub bytes: u64,
    pub duration_ms: u64,
    /// False when it stops early: the replay changes codec configuration (a seller who
    /// changed resolution between publishes) and one MP4 track holds one.
    pub complete: bool,
}

/// What HLS delivery needs of the packaging side: live HLS from memory for the streams
/// packaged here, and where everything else is stored. The API knows the public URL layout
/// (`/hls/{playback_id}/{path}`), never an object's name. Declared here, implemented by the root.
#[async_trait]
pub trait LiveHls: Send + Sync + 'static {
    /// What a path under `/hls/{playback_id}/` names.
    fn resolve(&self, path: &str) -> HlsPath;
    /// How far the stream's live playlists have got, while it is packaged here: LL-HLS
    /// blocking playlist reloads (`_HLS_msn`, `_HLS_part`) and preload-hinted part requests
    /// wait on it. `None`: not packaged here.
    fn progress(&self, stream_id: &str) -> Option<ProgressWatch>;
    /// A rendition's live playlist now (with `delta`, its `_HLS_skip` delta update).
    fn playlist(&self, stream_id: &str, rendition: &str, delta: bool) -> Option<Bytes>;
    /// An LL-HLS part of a stream packaged here; `None`: no such part (any more).
    async fn part(&self, stream_id: &str, rendition: &str, msn: u64, index: u64) -> Option<Bytes>;
    /// Program date-time of the newest media of a stream packaged here.
    fn live_edge(&self, stream_id: &str) -> Option<DateTime<Utc>>;
    /// A recent picture of a stream packaged here (made on request, at most once per poster
    /// interval); `None`: not packaged here, or no picture yet.
    async fn poster(&self, stream_id: &str) -> Option<Bytes>;
    /// A rendition's stored playlist, for a stream not packaged here: the replay (growing
    /// while the stream is still on air, e.g. after a restart).
    async fn stored_playlist(&self, playback_id: &str, rendition: &str) -> anyhow::Result<Option<Bytes>>;
    /// The storage key a request for `path` reads from the store.
    fn object_key(&self, playback_id: &str, path: &str) -> String;
    /// The prefix of every stored object of a stream (deleting a stream deletes them all).
    fn stream_prefix(&self, playback_id: &str) -> String;
}

/// What a path under `/hls/{playback_id}/` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HlsPath {
    /// A rendition's media playlist.
    MediaPlaylist { rendition: String },
    /// An LL-HLS part: part `index` of segment `msn`.
    Part { rendition: String, msn: u64, index: u64 },
    /// The stream's poster.
    Poster,
    /// A file as large as a replay (its MP4): served by byte range, never read whole.
    Download,
    /// Any other object.
    Object,
}

/// A live playlist's progress, as the packager reports it after storing the playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HlsProgress {
    /// MSN of the newest complete segment.
    pub last_segment: Option<u64>,
    /// Newest part as (MSN, index); `None` without LL-HLS.
    pub last_part: Option<(u64, usize)>,
    /// TARGETDURATION, seconds.
    pub target_duration_secs: u64,
    /// PART-TARGET, ms; `None` without LL-HLS (blocking directives are then ignored).
    pub part_target_ms: Option<u64>,
    /// The playlist has ENDLIST (or the stream is gone): directives are ignored.
    pub ended: bool,
}

/// A timed marker in a stream's playlists: an `EXT-X-DATERANGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The DATERANGE `ID`; the same id again with `end` set closes the range.
    pub id: String,
    /// The DATERANGE `CLASS`, e.g. [`PRODUCT_MARKER_CLASS`].
    pub class: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    /// Client attributes: names start with `X-` (e.g. `X-PRODUCT-ID`), values are text.
    pub attributes: Vec<(String, String)>,
}

/// The class of product pin markers.
pub const PRODUCT_MARKER_CLASS: &str = "com.hawker.product";

/// How a stream's publish is doing, as the ingest measures it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestHealth {
    /// Whether a publisher is connected right now.
    pub connected: bool,
    pub uptime_seconds: f64,
    /// Incoming bit rate over the last few seconds.
    pub bitrate_in_bps: u64,
    /// Media bit rate handed on to packaging, over the publish so far.
    pub bitrate_out_bps: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Video frames per second over the publish so far.
    pub fps: f64,
    pub keyframes: u64,
    pub keyframe_interval_ms: Option<u64>,
    /// Timestamp jumps the ingest smoothed over (late or jumping media).
    pub timestamp_discontinuities: u64,
    /// Media the ingest could not deliver.
    pub dropped: u64,
}

/// Server-wide ingest counters, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct IngestCounters {
    pub connections_open: u64,
    pub connections_accepted: u64,
    pub connections_rejected_total_cap: u64,
    pub connections_rejected_per_ip_cap: u64,
    pub handshake_failures: u64,
    pub publishes_active: u64,
    pub publishes_accepted: u64,
    pub refused_bad_key: u64,
    pub refused_bad_app: u64,
    pub refused_unavailable: u64,
    pub refused_rate_limited: u64,
}

/// Public addresses printed in API responses.
#[derive(Debug, Clone)]
pub struct PublicUrls {
    /// e.g. `rtmp://example.com:1935/live`: the OBS "Server" field.
    pub rtmp: String,
    /// e.g. `rtmps://example.com:1936/live`, when RTMPS is on.
    pub rtmps: Option<String>,
    /// e.g. `http://example.com:8080`: base of playback URLs.
    pub http: String,
}

impl PublicUrls {
    pub fn playback(&self, playback_id: &str) -> String {
        format!("{}/hls/{playback_id}/index.m3u8", self.http)
    }

    /// The stream's page for viewers.
    pub fn watch(&self, playback_id: &str) -> String {
        format!("{}/watch/{playback_id}", self.http)
    }

    /// The URL of a stream's object at `path` under its HLS folder.
    pub fn media(&self, playback_id: &str, path: &str) -> String {
        format!("{}/hls/{playback_id}/{path}", self.http)
    }
}

/// Everything the HTTP handlers share, behind one reference count: the router clones its
/// state several times per request (once per layered service it passes through).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
#[derive(Clone)]
pub struct Shared {
    pub db: Db,
    pub store: Arc<dyn Store>,
    pub live: Arc<dyn LiveControl>,
    pub hls: Arc<dyn LiveHls>,
    pub urls: Arc<PublicUrls>,
    /// The event bus; the root shares it with the ingest side for status changes.
    pub events: Events,
    /// Live viewer sessions, the chat rate limiter, live-edge media times.
    pub engagement: Arc<Engagement>,
    /// Proxies whose forwarded client address is believed (`--trusted-proxy`).
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    /// Who may read `/metrics`, and what it shows.
    pub metrics: Arc<MetricsAccess>,
    /// The other nodes sharing the database, for requests about streams they hold.
    pub peers: cluster::Peers,
    /// Live playlists compressed once per version for all their viewers.
    pub(crate) compressed_playlists: Arc<http::compressed_playlists::CompressedPlaylists>,
}

/// How `/metrics` is protected.
#[derive(Debug, Clone, Default)]
pub struct MetricsAccess {
    /// A bearer token the scraper must send.
    pub token: Option<String>,
    /// Served on an address of its own (not the public HTTP listener).
    pub own_listener: bool,
}

impl AppState {
    pub fn new(
        db: Db,
        store: Arc<dyn Store>,
        (live, hls): (Arc<dyn LiveControl>, Arc<dyn LiveHls>),
        urls: Arc<PublicUrls>,
        events: Events,
    ) -> Self {
        Self(Arc::new(Shared {
            db,
            store,
            live,
            hls,
            urls,
            events,
            engagement: Arc::new(Engagement::new()),
            trusted_proxies: Arc::default(),
            metrics: Arc::default(),
            peers: cluster::Peers::default(),
            compressed_playlists: Arc::default(),
        }))
    }

    pub fn with_metrics_access(mut self, access: MetricsAccess) -> Self {
        Arc::make_mut(&mut self.0).metrics = Arc::new(access);
        self
    }

    /// Client addresses forwarded by these proxies (`X-Forwarded-For`, `Forwarded`) are the
    /// clients' for every per-client limit; from anyone else the peer's address is.
    /// Other nodes reach this one's HTTP side at `url` (several nodes on PostgreSQL).
    pub fn with_advertise_url(mut self, url: &str) -> Self {
        Arc::make_mut(&mut self.0).peers = cluster::Peers::advertising(url);
        self
    }

    pub fn with_trusted_proxies(mut self, proxies: Vec<ipnet::IpNet>) -> Self {
        Arc::make_mut(&mut self.0).trusted_proxies = Arc::new(proxies);
        self
    }
}

/// At a clean stop: writes the viewer counters not written yet (the background work, which
/// writes them every few seconds, is stopped).
pub async fn flush_counters(state: &AppState) {
    engagement::flush(&state.engagement, &state.db).await;
}

/// An interval whose ticks fall on whole multiples of `period` from one instant shared by the
/// background tasks: tasks whose periods divide one another tick together, one timer wake-up
/// for all of them (they are polled together, `run_background`). A missed tick is skipped, so
/// ticks stay on the grid.
pub(crate) fn shared_interval(period: std::time::Duration) -> tokio::time::Interval {
    static EPOCH: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(tokio::time::Instant::now);
    let now = tokio::time::Instant::now();
    let into_period = now.duration_since(epoch).as_nanos() % period.as_nanos().max(1);
    let first = now + period.saturating_sub(std::time::Duration::from_nanos(into_period as u64));
    let mut interval = tokio::time::interval_at(first, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    interval
}

/// The API's background work: expired reconnect windows, viewer sessions and counts,
/// webhooks. Runs until the task is dropped (abort it on shutdown).
pub async fn run_background(state: AppState) {
    tokio::join!(
        lifecycle::sweep_on_air_streams(state.clone()),
        lifecycle::hold_leases(state.clone()),
        lifecycle::follow_remote_changes(state.clone()),
        engagement::run(state.clone()),
        purge_guests(state.db.clone()),
        cluster::relay_events(state.db.clone(), state.events.clone(), state.peers.clone()),
        cluster::follow_peers(state.clone()),
        replay_video::resume(state.clone()),
        reminders::run(state.clone()),
        sweep_compressed_playlists(state.clone()),
        webhooks::run(state),
    );
}

/// Every 10 s: ended streams' compressed live playlists are dropped.
async fn sweep_compressed_playlists(state: AppState) {
    let mut tick = shared_interval(std::time::Duration::from_secs(10));
    loop {
        tick.tick().await;
        state.compressed_playlists.sweep(|id| state.hls.progress(id).is_some());
    }
}

/// Every hour: guests whose tokens expired and who left nothing behind are deleted.
async fn purge_guests(db: Db) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match db.purge_guests().await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired guests purged"),
            Err(e) => tracing::error!("purging guests: {e}"),
        }
        if let Err(e) = db.purge_rate_limits().await {
            tracing::error!("purging rate limits: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn background_ticks_made_apart_fall_together() {
        let mut second = super::shared_interval(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut later = super::shared_interval(Duration::from_secs(1));
        let mut two = super::shared_interval(Duration::from_secs(2));
        let (a, b, c) = (second.tick().await, later.tick().await, two.tick().await);
        let off_grid = |t: tokio::time::Instant| t.duration_since(a).as_nanos() % Duration::from_secs(1).as_nanos();
        assert_eq!(off_grid(b), 0, "one grid for intervals made 300 ms apart");
        assert_eq!(off_grid(c), 0, "a 2 s interval ticks on the 1 s grid");
    }
}
