//! The seam between ingest, packager and API: the ingest's `PublishGate` (may this key
//! publish? where does its media go?), the API's `LiveControl` (disconnect, finish) and its
//! `LiveHls` (live HLS from the packager's memory).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hawker_api::engagement::ClientKey;
use hawker_api::model::{PublishTicket, RefusalReason};
use hawker_api::settings::Settings;
use hawker_api::{
    ClipSpan, Db, Events, HlsPath, HlsProgress, IngestCounters, IngestHealth, Marker, ProgressWatch, ReplayVideo,
};
use hawker_ingest::{
    Audio, EndReason, IngestStats, MediaSink, NextOutput, Publish, PublishGate, PublishRequest, PublishStats, Refusal,
    SinkError, UnsupportedCodec, Video,
};
use hawker_packager::{
    DateRange, LiveState, Packager, PackagerConfig, PackagerError, PublishFeed, Rendition, SOURCE_RENDITION,
    StreamPackager, names,
};
use tokio_util::sync::CancellationToken;

/// The RTMP application sellers publish to: `rtmp://host:1935/live`.
pub const RTMP_APP: &str = "live";

pub struct Live {
    db: Db,
    /// The API's event bus: publishes and publishers leaving change a stream's status.
    events: Events,
    packager: Packager,
    /// Streams being packaged, by stream id; kept across reconnects until the stream ends.
    on_air: Mutex<HashMap<String, OnAir>>,
    /// Serialises publish starts, so two quick publishes of one stream share one packager.
    starting: tokio::sync::Mutex<()>,
    /// The runtime viewers' requests and the API run on. A connection may run on an RTMP
    /// runtime of its own (`--rtmp-threads`); what wakes viewers is spawned here, so that one
    /// cross-runtime wake per update reaches this runtime, not one per waiting viewer.
    main: tokio::runtime::Handle,
    /// Several nodes: invalid keys an address may try on all nodes together within a window
    /// (the ingest's own limit counts this node's). `None`: one machine, or turned off.
    shared_bad_keys: Option<(u32, Duration)>,
    /// Load balancers' addresses (the trusted proxies): not limited per address.
    shared_addresses: Vec<ipnet::IpNet>,
    /// Refusals being recorded for the keys' owners (see `refused_without_asking`).
    refusal_notes: Arc<tokio::sync::Semaphore>,
}

struct OnAir {
    packager: StreamPackager,
    /// What viewers are served from while the stream is on air.
    live: LiveState,
    /// The packager's progress in the API's terms (LL-HLS blocking reload).
    progress: ProgressWatch,
    /// Ends the current publisher's connection; cancelled once that publisher is gone.
    kick: CancellationToken,
    /// The current publish's ingest figures, and the media bytes it handed to packaging.
    stats: Arc<PublishStats>,
    bytes_out: Arc<AtomicU64>,
    /// The publish this node packages (the database counts every publish, on every node).
    publish_seq: i64,
}

impl OnAir {
    fn health(&self) -> IngestHealth {
        let s = self.stats.snapshot();
        let seconds = s.uptime.as_secs_f64();
        let bytes_out = self.bytes_out.load(Ordering::Relaxed);
        let per_second = |n: u64| if seconds > 0.0 { n as f64 / seconds } else { 0.0 };
        IngestHealth {
            connected: !self.kick.is_cancelled(),
            uptime_seconds: seconds,
            bitrate_in_bps: s.bitrate_bps,
            bitrate_out_bps: per_second(bytes_out * 8) as u64,
            bytes_in: s.bytes_in,
            bytes_out,
            video_frames: s.video_frames,
            audio_frames: s.audio_frames,
            fps: per_second(s.video_frames),
            keyframes: s.keyframes,
            keyframe_interval_ms: s.last_keyframe_interval_ms,
            timestamp_discontinuities: s.timestamp_discontinuities,
            dropped: s.dropped,
        }
    }
}

impl Drop for OnAir {
    /// Whoever stops tracking a stream also ends its publisher's connection.
    fn drop(&mut self) {
        self.kick.cancel();
    }
}

/// Lookups for refused publishes' keys at once, at most.
const REFUSAL_NOTES_AT_ONCE: usize = 4;

impl Live {
    /// Call it on the main runtime.
    pub fn new(db: Db, events: Events, packager: Packager) -> Self {
        Self {
            db,
            events,
            packager,
            on_air: Mutex::new(HashMap::new()),
            starting: tokio::sync::Mutex::new(()),
            main: tokio::runtime::Handle::current(),
            shared_bad_keys: None,
            shared_addresses: Vec::new(),
            refusal_notes: Arc::new(tokio::sync::Semaphore::new(REFUSAL_NOTES_AT_ONCE)),
        }
    }

    /// On a shared database, counts invalid keys per address over every node: `max` within
    /// `window` (0: off), as the ingest does on each node.
    pub fn with_shared_bad_key_limit(mut self, limits: &hawker_ingest::Limits) -> Self {
        let (max, window) = (limits.bad_key_max_failures, limits.bad_key_window);
        self.shared_bad_keys = (self.db.is_shared() && max > 0).then_some((max, window));
        self.shared_addresses = limits.shared_addresses.clone();
        self
    }

    /// The shared limit's key for an address (an IPv6 /64 counts as one); none for a load
    /// balancer's address, which every publisher behind it shares.
    fn bad_key_limit(&self, peer: std::net::SocketAddr) -> Option<(String, u32, Duration)> {
        let (max, window) = self.shared_bad_keys?;
        if self.shared_addresses.iter().any(|net| net.contains(&peer.ip())) {
            return None;
        }
        Some((format!("rtmp-bad-key:{}", ClientKey::of(peer.ip())), max, window))
    }

    fn on_air(&self) -> std::sync::MutexGuard<'_, HashMap<String, OnAir>> {
        // A panic elsewhere while holding the lock leaves the map itself consistent.
        self.on_air.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts packaging a publish of an authorised stream. A publisher still connected to the
    /// stream is taken over: its connection is closed and the new one continues the playlist.
    async fn start(
        &self,
        ticket: &PublishTicket,
        stats: Arc<PublishStats>,
    ) -> anyhow::Result<(PublishFeed, CancellationToken, Arc<AtomicU64>)> {
        let _starting = self.starting.lock().await;
        let existing = self.on_air().get(&ticket.stream_id).map(|s| (s.packager.clone(), s.progress.clone()));
        let (packager, progress) = match existing {
            Some(existing) => existing,
            None => {
                let config = packaging_config(&self.db.settings().await?);
                let packager = self.packager.open_with(&ticket.playback_id, &config).await?;
                let progress = forward_progress(&packager, &self.main);
                (packager, progress)
            }
        };
        let feed = packager.start_publish()?;
        let kick = CancellationToken::new();
        let bytes_out = Arc::new(AtomicU64::new(0));
        let live = packager.live();
        let on_air = OnAir {
            packager,
            live,
            progress,
            kick: kick.clone(),
            stats,
            bytes_out: bytes_out.clone(),
            publish_seq: ticket.publish_seq,
        };
        // Dropping the replaced entry kicks the previous publisher, if one is still connected.
        if let Some(previous) = self.on_air().insert(ticket.stream_id.clone(), on_air)
            && !previous.kick.is_cancelled()
        {
            tracing::info!(stream = %ticket.stream_id, "publisher taken over by a new connection");
        }
        Ok((feed, kick, bytes_out))
    }

    /// At shutdown, once the ingest has closed every connection: waits for each stream on air
    /// to store what its publisher sent, the last partial segment included. The streams stay
    /// live in the database; a restart continues them as it would after a crash.
    pub async fn settle(&self) {
        let packagers: Vec<StreamPackager> = self.on_air().values().map(|s| s.packager.clone()).collect();
        let mut settling = tokio::task::JoinSet::new();
        for packager in packagers {
            settling.spawn(async move { packager.settle().await });
        }
        while settling.join_next().await.is_some() {}
    }

    /// Ends the stream's publisher's connection, if one is connected.
    pub fn disconnect(&self, stream_id: &str) {
        if let Some(on_air) = self.on_air().get(stream_id) {
            on_air.kick.cancel();
        }
    }

    /// Lets go of a stream published since elsewhere (its publish `latest` is newer than the
    /// one packaged here): its publisher here (if still connected) is disconnected and what
    /// it sent is stored, without finishing the replay, which the other node continues. Its
    /// next publish here resumes from the stored replay, not from this node's stale state.
    pub async fn release(&self, stream_id: &str, latest: i64) {
        // Not while a publish starts here: it may be the newer one.
        let _starting = self.starting.lock().await;
        let superseded = self.on_air().get(stream_id).is_some_and(|on_air| on_air.publish_seq < latest);
        if !superseded {
            return;
        }
        let Some(on_air) = self.on_air().remove(stream_id) else { return };
        tracing::info!(stream = %stream_id, "the stream is held by another node: let go here");
        let packager = on_air.packager.clone();
        drop(on_air);
        packager.settle().await;
    }

    /// Stops tracking and packaging the stream; `save` finalises its replay.
    pub async fn finish(&self, stream_id: &str, playback_id: &str, save: bool) -> anyhow::Result<()> {
        let on_air = self.on_air().remove(stream_id);
        match on_air {
            Some(on_air) => on_air.packager.finish(save).await?,
            // Nothing is packaging it (e.g. the server restarted since): finalise what is stored.
            None if save => self.packager.finalize_replay(playback_id).await?,
            None => {}
        }
        Ok(())
    }
}

impl PublishGate for Live {
    type Sink = LiveSink;

    async fn authorize(&self, request: PublishRequest) -> Result<Publish<LiveSink>, Refusal> {
        if request.app != RTMP_APP {
            return Err(Refusal::BadApp);
        }
        let shared_limit = self.bad_key_limit(request.peer);
        if let Some((key, max, window)) = &shared_limit {
            match self.db.shared_limit_wait(key, *max, *window).await {
                Ok(Some(retry_after)) => {
                    let refusal = Refusal::RateLimited { retry_after };
                    self.refused_without_asking(&request, &refusal);
                    return Err(refusal);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("reading the shared invalid-key limit: {e}"),
            }
        }
        let ticket =
            match hawker_api::lifecycle::begin_publish(&self.db, &self.events, request.stream_key.expose()).await {
                Ok(Ok(ticket)) => ticket,
                Ok(Err(denied)) => {
                    // The publisher learns only "invalid stream key"; the reason stays here.
                    tracing::info!(peer = %request.peer, reason = ?denied, "publish refused");
                    // Off the refusal's path: a key that exists is refused as fast as one
                    // that does not.
                    let db = self.db.clone();
                    self.main.spawn(async move { hawker_api::refusals::note_denied(&db, &denied).await });
                    if let Some((key, max, window)) = &shared_limit
                        && let Err(e) = self.db.allow_shared(key, *max, *window).await
                    {
                        tracing::warn!("counting an invalid key on the shared limit: {e}");
                    }
                    return Err(Refusal::BadKey);
                }
                Err(e) => {
                    tracing::error!("publish check failed: {e}");
                    return Err(Refusal::Unavailable);
                }
            };
        match self.start(&ticket, request.stats.clone()).await {
            Ok((feed, kick, bytes_out)) => {
                tracing::info!(stream = %ticket.stream_id, peer = %request.peer, publish = ticket.publish_seq, "stream is live");
                let sink = LiveSink {
                    feed,
                    db: self.db.clone(),
                    events: self.events.clone(),
                    stream_id: ticket.stream_id.clone(),
                    publish_seq: ticket.publish_seq,
                    gone: kick.clone(),
                    bytes_out,
                    runtime: self.main.clone(),
                };
                Ok(Publish { sink, kick, label: ticket.stream_id })
            }
            Err(e) => {
                tracing::error!(stream = %ticket.stream_id, "could not start packaging: {e:#}");
                let _ = hawker_api::lifecycle::publisher_gone(
                    &self.db,
                    &self.events,
                    &ticket.stream_id,
                    ticket.publish_seq,
                )
                .await;
                Err(Refusal::Unavailable)
            }
        }
    }

    /// Tells the owner of the key, if it is one, that their publish waits for the address's
    /// wrong keys to age out. Off the connection's task, and a few at a time: a flood of
    /// refused publishes costs at most that many lookups at once, the rest are not recorded.
    fn refused_without_asking(&self, request: &PublishRequest, refusal: &Refusal) {
        let Refusal::RateLimited { retry_after } = *refusal else { return };
        let Ok(permit) = self.refusal_notes.clone().try_acquire_owned() else { return };
        let (db, key, peer) = (self.db.clone(), request.stream_key.expose().to_owned(), request.peer.ip());
        self.main.spawn(async move {
            hawker_api::refusals::note_rate_limited(&db, &key, peer, retry_after).await;
            drop(permit);
        });
    }
}

/// The API's handle on live media: the gate's streams plus the ingest's server-wide counters.
pub struct LiveControl {
    pub live: Arc<Live>,
    pub ingest: Arc<IngestStats>,
}

#[async_trait]
impl hawker_api::LiveControl for LiveControl {
    fn disconnect(&self, stream_id: &str) {
        self.live.disconnect(stream_id);
    }

    async fn finish(&self, stream_id: &str, playback_id: &str, save: bool) -> anyhow::Result<()> {
        self.live.finish(stream_id, playback_id, save).await
    }

    async fn release(&self, stream_id: &str, latest: i64) {
        self.live.release(stream_id, latest).await
    }

    fn ingest_health(&self, stream_id: &str) -> Option<IngestHealth> {
        self.live.on_air().get(stream_id).map(OnAir::health)
    }

    fn all_ingest_health(&self) -> Vec<(String, IngestHealth)> {
        self.live.on_air().iter().map(|(id, on_air)| (id.clone(), on_air.health())).collect()
    }

    /// Product pins become EXT-X-DATERANGE tags in the live and replay playlists, through
    /// the stream's packager.
    async fn add_marker(&self, stream_id: &str, marker: Marker) -> anyhow::Result<()> {
        let packager = self.live.on_air().get(stream_id).map(|on_air| on_air.packager.clone());
        let Some(packager) = packager else {
            anyhow::bail!("stream {stream_id} is not being packaged");
        };
        let Marker { id, class, start, end, attributes } = marker;
        packager.add_marker(DateRange { id, class, start, end, attributes }).await?;
        Ok(())
    }

    async fn export_replay(&self, playback_id: &str) -> anyhow::Result<ReplayVideo> {
        let (path, export) = self.live.packager.export_replay_mp4(playback_id).await?;
        Ok(ReplayVideo {
            path: path.to_owned(),
            bytes: export.bytes,
            duration_ms: export.duration_ms,
            complete: export.complete,
        })
    }

    async fn make_clip(
        &self,
        playback_id: &str,
        clip_id: &str,
        span: (DateTime<Utc>, DateTime<Utc>),
    ) -> anyhow::Result<Option<ClipSpan>> {
        match self.live.packager.make_clip(playback_id, clip_id, span).await {
            Ok(made) => Ok(Some(ClipSpan { path: made.path, start: made.start, end: made.end })),
            Err(PackagerError::NothingInSpan) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn export_clip(
        &self,
        playback_id: &str,
        clip_id: &str,
        span: (DateTime<Utc>, DateTime<Utc>),
    ) -> anyhow::Result<ReplayVideo> {
        let (path, export) = self.live.packager.export_clip_mp4(playback_id, clip_id, span).await?;
        Ok(ReplayVideo { path, bytes: export.bytes, duration_ms: export.duration_ms, complete: export.complete })
    }

    fn ingest_counters(&self) -> IngestCounters {
        let s = self.ingest.snapshot();
        IngestCounters {
            connections_open: s.connections_open,
            connections_accepted: s.connections_accepted,
            connections_rejected_total_cap: s.connections_rejected_total_cap,
            connections_rejected_per_ip_cap: s.connections_rejected_per_ip_cap,
            handshake_failures: s.handshake_failures,
            publishes_active: s.publishes_active,
            publishes_accepted: s.publishes_accepted,
            refused_bad_key: s.refused_bad_key,
            refused_bad_app: s.refused_bad_app,
            refused_unavailable: s.refused_unavailable,
            refused_rate_limited: s.refused_rate_limited,
        }
    }
}

impl LiveControl {
    fn live_state(&self, stream_id: &str) -> Option<LiveState> {
        self.live.on_air().get(stream_id).map(|on_air| on_air.live.clone())
    }
}

#[async_trait]
impl hawker_api::LiveHls for LiveControl {
    fn resolve(&self, path: &str) -> HlsPath {
        match names::resolve(path) {
            names::HlsPath::MediaPlaylist { rendition } => HlsPath::MediaPlaylist { rendition },
            names::HlsPath::Part { rendition, msn, index } => HlsPath::Part { rendition, msn, index },
            names::HlsPath::Poster => HlsPath::Poster,
            names::HlsPath::Download => HlsPath::Download,
            names::HlsPath::Object => HlsPath::Object,
        }
    }

    fn progress(&self, stream_id: &str) -> Option<ProgressWatch> {
        self.live.on_air().get(stream_id).map(|on_air| on_air.progress.clone())
    }

    fn playlist(&self, stream_id: &str, rendition: &str, delta: bool) -> Option<Bytes> {
        self.live_state(stream_id)?.playlist(rendition, delta)
    }

    async fn part(&self, stream_id: &str, rendition: &str, msn: u64, index: u64) -> Option<Bytes> {
        self.live_state(stream_id)?.part(rendition, msn, index).await
    }

    fn live_edge(&self, stream_id: &str) -> Option<DateTime<Utc>> {
        self.live_state(stream_id)?.live_edge()
    }

    async fn poster(&self, stream_id: &str) -> Option<Bytes> {
        let packager = self.live.on_air().get(stream_id).map(|on_air| on_air.packager.clone())?;
        packager.poster().await
    }

    async fn stored_playlist(&self, playback_id: &str, rendition: &str) -> anyhow::Result<Option<Bytes>> {
        Ok(self.live.packager.replay_playlist(playback_id, rendition).await?)
    }

    fn object_key(&self, playback_id: &str, path: &str) -> String {
        names::object_key(playback_id, path)
    }

    fn stream_prefix(&self, playback_id: &str) -> String {
        names::stream_prefix(playback_id)
    }
}

/// Mirrors the packager's progress watch as the API's; the task ends with the packager.
fn forward_progress(packager: &StreamPackager, main: &tokio::runtime::Handle) -> ProgressWatch {
    let convert = |p: &hawker_packager::Progress| HlsProgress {
        last_segment: p.last_segment,
        last_part: p.last_part,
        target_duration_secs: p.target_duration_secs,
        part_target_ms: p.part_target_ms,
        ended: p.ended,
    };
    let mut from = packager.progress();
    let watch = ProgressWatch::new(convert(&from.borrow_and_update()));
    let to = EndsWhenDropped(watch.clone());
    main.spawn(async move {
        while from.changed().await.is_ok() {
            let p = convert(&from.borrow_and_update());
            to.0.update(|now| *now = p);
        }
    });
    watch
}

/// The forward task's end, however it comes (the packager gone, or the runtime shutting down):
/// nothing more will appear, so every viewer waiting is answered now.
struct EndsWhenDropped(ProgressWatch);

impl Drop for EndsWhenDropped {
    fn drop(&mut self) {
        self.0.update(|p| p.ended = true);
    }
}

/// A stream's packaging, as the admin settings say when its packaging starts.
fn packaging_config(settings: &Settings) -> PackagerConfig {
    let seconds = |s: f64| Duration::from_secs_f64(s);
    PackagerConfig {
        segment_duration: seconds(settings.segment_duration_seconds),
        live_window: settings.playlist_window_segments as usize,
        poster_interval: match settings.thumbnails_enabled {
            true => Duration::from_secs(settings.thumbnail_interval_seconds.into()),
            false => Duration::ZERO,
        },
        part_duration: settings.ll_hls.then(|| seconds(settings.part_duration_seconds)),
        ladder: settings
            .ladder
            .iter()
            // The source's folder is taken; the settings' validation does not know it.
            .filter(|r| {
                let clash = r.name == SOURCE_RENDITION;
                if clash {
                    tracing::warn!(rendition = %r.name, "ladder rung skipped: the name is the source's");
                }
                !clash
            })
            .map(|r| Rendition {
                name: r.name.clone(),
                width: r.width,
                height: r.height,
                video_bitrate_kbps: r.video_bitrate_kbps,
            })
            .collect(),
        // Exports use the server's packager configuration, not a stream's.
        ..PackagerConfig::default()
    }
}

/// The admin settings' defaults: the server's own packaging configuration.
pub fn setting_defaults(config: &PackagerConfig) -> Settings {
    let defaults = Settings::default();
    Settings {
        segment_duration_seconds: config.segment_duration.as_secs_f64(),
        playlist_window_segments: u32::try_from(config.live_window).unwrap_or(u32::MAX),
        thumbnails_enabled: !config.poster_interval.is_zero(),
        thumbnail_interval_seconds: match config.poster_interval.as_secs_f64().round() as u32 {
            0 => defaults.thumbnail_interval_seconds,
            seconds => seconds,
        },
        ll_hls: config.part_duration.is_some(),
        part_duration_seconds: config.part_duration.map_or(defaults.part_duration_seconds, |d| d.as_secs_f64()),
        ..defaults
    }
}

/// One publish's media, on its way into the packager.
pub struct LiveSink {
    feed: PublishFeed,
    db: Db,
    events: Events,
    stream_id: String,
    publish_seq: i64,
    /// The publish's kick token, cancelled on the way out: marks this publisher gone.
    gone: CancellationToken,
    bytes_out: Arc<AtomicU64>,
    runtime: tokio::runtime::Handle,
}

impl MediaSink for LiveSink {
    fn video(&mut self, video: Video) -> Result<(), SinkError> {
        let pushed = match video {
            Video::Config(record) => self.feed.video_config(record),
            Video::Frame(frame) => {
                self.bytes_out.fetch_add(frame.nalus.len() as u64, Ordering::Relaxed);
                self.feed.video_frame(frame.dts_ms, frame.cts_ms, frame.keyframe, frame.nalus)
            }
        };
        pushed.map_err(|e| SinkError(e.to_string()))
    }

    fn audio(&mut self, audio: Audio) -> Result<(), SinkError> {
        let pushed = match audio {
            Audio::Config(config) => self.feed.audio_config(config),
            Audio::Frame(frame) => {
                self.bytes_out.fetch_add(frame.data.len() as u64, Ordering::Relaxed);
                self.feed.audio_frame(frame.pts_ms, frame.data)
            }
        };
        pushed.map_err(|e| SinkError(e.to_string()))
    }

    fn next_output(&self) -> Option<NextOutput> {
        self.feed.next_output().map(|next| match next {
            hawker_packager::NextOutput::MediaBy(at) => NextOutput::MediaBy(at),
            hawker_packager::NextOutput::Making(made) => NextOutput::Making(made),
        })
    }

    fn end(self, reason: EndReason) {
        self.gone.cancel();
        self.feed.end();
        tracing::info!(stream = %self.stream_id, ?reason, "publisher left");
        // The stream waits for its publisher to come back (unless a new one took over).
        let (db, events, stream_id, publish_seq) = (self.db, self.events, self.stream_id, self.publish_seq);
        let refusal = match &reason {
            EndReason::RefusedCodec(codec @ UnsupportedCodec::Audio { .. }) => {
                Some((RefusalReason::AudioCodec, format!("{codec}: hawker takes AAC audio")))
            }
            EndReason::RefusedCodec(codec) => {
                Some((RefusalReason::VideoCodec, format!("{codec}: hawker takes H.264 video")))
            }
            _ => None,
        };
        self.runtime.spawn(async move {
            if let Some((reason, detail)) = refusal {
                hawker_api::refusals::note(&db, &stream_id, reason, &detail).await;
            }
            if let Err(e) = hawker_api::lifecycle::publisher_gone(&db, &events, &stream_id, publish_seq).await {
                tracing::error!(stream = %stream_id, "could not record the publisher leaving: {e}");
            }
        });
    }
}
