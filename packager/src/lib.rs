//! HLS packaging: one GStreamer pipeline per publish turns FLV media into fMP4 segments;
//! our own segmenter and playlist writer store them through the `Store` trait.
//!
//! Object layout under `streams/{playback_id}/` (mirrors `/hls/{playback_id}/...`):
//! - `index.m3u8`: multivariant playlist naming `v0/index.m3u8` (and `{rung}/index.m3u8` for
//!   each rung of an ABR ladder)
//! - `v0/live.m3u8`: sliding live media playlist
//! - `v0/replay.m3u8`: every segment since go-live; EVENT while live, VOD + ENDLIST once finished
//! - `v0/init{N}.mp4` (one per publish), `v0/seg{MSN:06}.m4s`
//! - `poster.jpg`: a JPEG of a recent keyframe, refreshed while live, kept for the replay
//! - with LL-HLS: `v0/seg{MSN:06}.{i}.m4s` (part `i` of a segment; the segment object holds
//!   the same bytes, all its parts concatenated) and `v0/live_delta.m3u8` (the live playlist
//!   as an `_HLS_skip=YES` delta update)
//! - with an ABR ladder, `{rung}/...`: the same objects for each transcoded rendition; `v0`
//!   stays the source, passed through. Segment N holds the same media in every rendition.
//!
//! Knows GStreamer and the storage trait; nothing of RTMP, the database or HTTP.

mod bmff;
mod flv;
mod pipeline;
mod playlist;
mod poster;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use gst::prelude::*;
use hawker_storage::Store;
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::flv::TagKind;
use crate::pipeline::BusEvent;
use crate::writer::{Msg, Writer};

pub use crate::playlist::DateRange;

#[derive(Debug, thiserror::Error)]
pub enum PackagerError {
    #[error("GStreamer: {0}")]
    Gst(String),
    #[error("storage: {0}")]
    Store(#[from] hawker_storage::StoreError),
    #[error("the pipeline is not accepting media: {0}")]
    Closed(String),
    /// A stored playlist could not be read back (resume, finalize).
    #[error("stored playlist unreadable: {0}")]
    Playlist(String),
    /// A marker that cannot be written as an EXT-X-DATERANGE.
    #[error("invalid marker: {0}")]
    InvalidMarker(String),
}

#[derive(Debug, Clone)]
pub struct PackagerConfig {
    /// Target segment duration; segments are cut on the first keyframe at or after it.
    pub segment_duration: Duration,
    /// Segments kept in the live playlist.
    pub live_window: usize,
    /// How often a live stream's poster (`poster.jpg`) is refreshed; zero: no posters.
    pub poster_interval: Duration,
    /// LL-HLS part duration (PART-TARGET); `None` turns LL-HLS off (plain HLS, e.g. behind
    /// a CDN that does not hold blocking playlist requests).
    pub part_duration: Option<Duration>,
    /// ABR ladder: renditions transcoded from the source, next to it; empty (the default):
    /// the source only.
    pub ladder: Vec<Rendition>,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        Self {
            segment_duration: Duration::from_secs(2),
            live_window: 6,
            poster_interval: Duration::from_secs(10),
            part_duration: Some(Duration::from_millis(200)),
            ladder: Vec::new(),
        }
    }
}

/// The source rendition's folder: the publisher's H.264, passed through.
pub const SOURCE_RENDITION: &str = "v0";

/// One rung of the ABR ladder: the source decoded, scaled to exactly `width`×`height` (square
/// pixels, black bars if the aspect ratio differs) and encoded with x264 (zero latency, no
/// B-frames), with the source's audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    /// Its folder: `[a-z0-9_-]`, not [`SOURCE_RENDITION`], unique in the ladder.
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub video_bitrate_kbps: u32,
}

/// How far a stream's live playlist has got: what LL-HLS blocking playlist reloads wait for.
/// Updated after the playlists that show it are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// MSN of the newest complete segment.
    pub last_segment: Option<u64>,
    /// Newest part as (MSN, index): in the segment being built, or the last part of the
    /// newest complete segment. `None` without LL-HLS.
    pub last_part: Option<(u64, usize)>,
    /// The live playlist's TARGETDURATION, seconds.
    pub target_duration_secs: u64,
    /// PART-TARGET, ms; `None` without LL-HLS.
    pub part_target_ms: Option<u64>,
    /// The playlists are final (ENDLIST) or the stream was discarded.
    pub ended: bool,
}

impl PackagerConfig {
    /// TARGETDURATION never starts below the configured target (rounded up).
    fn min_target_secs(&self) -> u64 {
        self.segment_duration.as_millis().div_ceil(1000).max(1) as u64
    }

    /// PART-TARGET in ms; `None` without LL-HLS.
    fn part_target_ms(&self) -> Option<u64> {
        self.part_duration.map(|d| d.as_millis() as u64)
    }
}

/// Messages the writer may have queued before it applies back-pressure to the pipeline.
const WRITER_QUEUE: usize = 32;
/// Tags kept before the first video frame; an audio-only publish must not grow without bound.
const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;
/// How long `finish` waits for a publish to drain before stopping its pipeline.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Audio tags wait for the next video tag to share its appsrc buffer, but never span more
/// than this much media time (audio-only stretches, low frame rates).
const MAX_BATCH_MS: u32 = 40;
/// A batch is flushed at this size whatever its content.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Creates per-stream packagers. Cheap to clone.
#[derive(Clone)]
pub struct Packager {
    store: Arc<dyn Store>,
    config: PackagerConfig,
    /// Poster encodes at once, server-wide.
    poster_permits: Arc<tokio::sync::Semaphore>,
    /// Whether the poster elements are installed.
    posters_available: bool,
    /// Whether the transcoding elements of an ABR ladder are installed.
    ladder_available: bool,
}

fn init_gstreamer() -> Result<(), PackagerError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        gst::init().map_err(|e| e.to_string())?;
        gstfmp4::plugin_register_static().map_err(|e| e.to_string())?;
        match pipeline::ELEMENTS.iter().find(|f| gst::ElementFactory::find(f).is_none()) {
            Some(missing) => Err(format!("element {missing} is not installed")),
            None => Ok(()),
        }
    })
    .clone()
    .map_err(PackagerError::Gst)
}

impl Packager {
    /// Initialises GStreamer and registers the fMP4 muxer; call once at start-up.
    pub fn new(store: Arc<dyn Store>, config: PackagerConfig) -> Result<Self, PackagerError> {
        init_gstreamer()?;
        let posters_available = poster::available();
        if !posters_available {
            tracing::warn!(elements = ?poster::ELEMENTS, "posters are off: an element is not installed");
        }
        let ladder_available = pipeline::LADDER_ELEMENTS.iter().all(|f| gst::ElementFactory::find(f).is_some());
        if !ladder_available {
            tracing::warn!(elements = ?pipeline::LADDER_ELEMENTS, "no ABR ladder: an element is not installed");
        }
        Ok(Self { store, config, poster_permits: poster::permits(), posters_available, ladder_available })
    }

    /// The packaging state of one stream, kept across publishes (reconnects continue the same
    /// playlists with a DISCONTINUITY). Resumes from `{rendition}/replay.m3u8` if the store has
    /// them.
    pub async fn open(&self, playback_id: &str) -> Result<StreamPackager, PackagerError> {
        self.open_with(playback_id, &self.config).await
    }

    /// Like [`Packager::open`], with this stream's own settings instead of the defaults.
    pub async fn open_with(&self, playback_id: &str, config: &PackagerConfig) -> Result<StreamPackager, PackagerError> {
        let rt = Handle::try_current().map_err(|_| PackagerError::Closed("open needs a tokio runtime".into()))?;
        let ladder = match (self.ladder_available, config.ladder.is_empty()) {
            (false, false) => {
                tracing::warn!(playback_id, "ABR ladder off: its elements are not installed");
                Vec::new()
            }
            _ => config.ladder.clone(),
        };
        let (source, markers) = self.stored_playlist(playback_id, SOURCE_RENDITION).await?;
        let mut renditions = vec![(SOURCE_RENDITION.to_owned(), source)];
        for rung in &ladder {
            renditions.push((rung.name.clone(), self.stored_playlist(playback_id, &rung.name).await?.0));
        }
        let source = &renditions[0].1;
        if !source.is_empty() {
            tracing::info!(playback_id, segments = source.len(), "resuming stored playlists");
        }
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let part_target_ms = config.part_target_ms();
        let progress = watch::Sender::new(Progress {
            last_segment: source.last().map(|s| s.msn),
            last_part: None,
            target_duration_secs: playlist::target_secs(source, config.min_target_secs()),
            part_target_ms,
            ended: false,
        });
        let writer =
            Writer::new(self.store.clone(), playback_id.to_owned(), config, renditions, markers, progress.clone());
        rt.spawn(writer.run(rx));
        let posters = (self.posters_available && !config.poster_interval.is_zero()).then(|| {
            poster::Posters::new(
                self.store.clone(),
                playback_id.to_owned(),
                config.poster_interval,
                rt.clone(),
                self.poster_permits.clone(),
            )
        });
        Ok(StreamPackager {
            inner: Arc::new(StreamInner {
                playback_id: playback_id.to_owned(),
                segment_duration: config.segment_duration,
                part_duration: config.part_duration,
                ladder,
                progress,
                rt,
                tx,
                publishes: Mutex::new(Publishes { list: Vec::new(), finished: false }),
                next_publish: AtomicU64::new(0),
                posters,
            }),
        })
    }

    /// Finalises a stream that has no open `StreamPackager` (e.g. after a restart): rewrites
    /// each rendition's stored `replay.m3u8` as VOD + ENDLIST. No-op if there is none.
    pub async fn finalize_replay(&self, playback_id: &str) -> Result<(), PackagerError> {
        let renditions = match self.store.get(&writer::multivariant_key(playback_id)).await? {
            Some(object) => playlist::parse_renditions(&String::from_utf8_lossy(&object.bytes)),
            None => vec![SOURCE_RENDITION.to_owned()],
        };
        for rendition in renditions {
            let (segments, markers) = self.stored_playlist(playback_id, &rendition).await?;
            if segments.is_empty() {
                continue;
            }
            let vod = writer::vod_playlist(&segments, self.config.min_target_secs(), &markers);
            self.store.put(&writer::replay_key(playback_id, &rendition), vod, writer::PLAYLIST_META).await?;
        }
        Ok(())
    }

    /// The segments and markers of a rendition's stored replay playlist.
    async fn stored_playlist(
        &self,
        playback_id: &str,
        rendition: &str,
    ) -> Result<(Vec<playlist::Segment>, Vec<DateRange>), PackagerError> {
        let Some(object) = self.store.get(&writer::replay_key(playback_id, rendition)).await? else {
            return Ok((Vec::new(), Vec::new()));
        };
        let text = std::str::from_utf8(&object.bytes)
            .map_err(|_| PackagerError::Playlist(format!("{rendition}/replay.m3u8 is not UTF-8")))?;
        let segments = playlist::parse_media(text)
            .map_err(|e| PackagerError::Playlist(format!("{rendition}/replay.m3u8: {e}")))?;
        Ok((segments, playlist::parse_markers(text)))
    }
}

/// Locks even if a holder panicked: the guarded state stays consistent between statements.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One stream's packaging. Clone to share; all clones drive the same state.
#[derive(Clone)]
pub struct StreamPackager {
    inner: Arc<StreamInner>,
}

struct StreamInner {
    playback_id: String,
    segment_duration: Duration,
    part_duration: Option<Duration>,
    /// Rungs each publish transcodes, after the source.
    ladder: Vec<Rendition>,
    progress: watch::Sender<Progress>,
    rt: Handle,
    tx: mpsc::Sender<Msg>,
    publishes: Mutex<Publishes>,
    next_publish: AtomicU64,
    posters: Option<Arc<poster::Posters>>,
}

struct Publishes {
    /// Publishes that may still produce media.
    list: Vec<Arc<PublishShared>>,
    finished: bool,
}

impl StreamPackager {
    /// Starts a pipeline for a new publish. Media timestamps restart at whatever the publisher
    /// sends (OBS restarts at 0 on reconnect); the media sequence keeps counting.
    ///
    /// The pipeline itself starts at the first video frame: only then is it known whether the
    /// publish has audio (publishers send both sequence headers before any frame).
    pub fn start_publish(&self) -> Result<PublishFeed, PackagerError> {
        let mut publishes = lock(&self.inner.publishes);
        if publishes.finished {
            return Err(PackagerError::Closed("the stream is finished".into()));
        }
        publishes.list.retain(|p| !*p.done.borrow());
        let shared = Arc::new(PublishShared {
            id: self.inner.next_publish.fetch_add(1, Ordering::Relaxed),
            stage: Mutex::new(Stage::Pending),
            force_stop: Notify::new(),
            done: watch::Sender::new(false),
        });
        publishes.list.push(shared.clone());
        Ok(PublishFeed {
            shared,
            stream: self.inner.clone(),
            pending: Vec::new(),
            pending_bytes: 0,
            has_audio: false,
            dropped_audio: AtomicBool::new(false),
            poster: self.inner.posters.as_ref().map(|p| p.feed()),
        })
    }

    /// The live playlists' progress; changes after each stored part or segment. With a ladder,
    /// it is what every rendition's live playlist has (the least advanced one). Holds `ended`
    /// once `finish` has run.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.inner.progress.subscribe()
    }

    /// Inserts a timed marker now: an `EXT-X-DATERANGE` in the live and the replay playlists,
    /// written before this returns (or with the first segment, if none exists yet). A second
    /// call with the same `id` updates that marker, e.g. with an `end` that closes it
    /// (END-DATE). The live playlist drops a marker once its start precedes the live window;
    /// the replay keeps it. See [`DateRange`] for the accepted ids and attribute names.
    pub async fn add_marker(&self, marker: DateRange) -> Result<(), PackagerError> {
        if let Some(why) = marker.invalid() {
            return Err(PackagerError::InvalidMarker(why));
        }
        let (done, written) = oneshot::channel();
        self.inner
            .tx
            .send(Msg::Marker { marker, done })
            .await
            .map_err(|_| PackagerError::Closed("the stream is finished".into()))?;
        written.await.map_err(|_| PackagerError::Closed("the stream is finished".into()))
    }

    /// Ends packaging: flushes any running publish (its last partial segment is kept), waits
    /// until every object is written, then, if `save`, rewrites the replay playlist as VOD with
    /// ENDLIST (and the live playlist with ENDLIST). After it returns no object is written.
    /// A second call returns `Closed`.
    pub async fn finish(&self, save: bool) -> Result<(), PackagerError> {
        let running = {
            let mut publishes = lock(&self.inner.publishes);
            publishes.finished = true;
            std::mem::take(&mut publishes.list)
        };
        for publish in &running {
            publish.request_end();
        }
        for publish in &running {
            publish.wait_done(&self.inner.playback_id).await;
        }
        if let Some(posters) = &self.inner.posters {
            posters.close().await;
        }
        let (done, result) = oneshot::channel();
        self.inner
            .tx
            .send(Msg::Finish { save, done })
            .await
            .map_err(|_| PackagerError::Closed("the stream is already finished".into()))?;
        result.await.map_err(|_| PackagerError::Closed("the writer stopped".into()))?
    }
}

/// One publish, shared by its feed, its stream (for `finish`) and its monitor task.
struct PublishShared {
    id: u64,
    stage: Mutex<Stage>,
    /// `finish` gave up waiting for the drain.
    force_stop: Notify,
    /// Set once nothing more of this publish reaches the writer.
    done: watch::Sender<bool>,
}

enum Stage {
    /// No video frame yet: tags wait in the feed.
    Pending,
    Running(Running),
    Closed(String),
}

struct Running {
    appsrc: gst_app::AppSrc,
    batch: Batch,
}

/// FLV tags on their way to appsrc, coalesced into one buffer (FLV is a byte stream). Each
/// buffer handed over wakes appsrc's streaming thread; a publish's cost is mostly such
/// wake-ups, so audio tags ride along with the next video tag: about one hand-over per video
/// frame instead of one per tag. Video tags go at once (the segment cuts depend on them), and
/// so does the audio right after a keyframe, up to the first audio tag at or after the
/// keyframe's time: the muxer needs that audio to close the segment the keyframe ends.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Timestamp (ms) of the first tag in `bytes`.
    first_ms: u32,
    /// Set by a keyframe: audio goes at once until a tag at or after this PTS (ms).
    audio_urgent_until: Option<u32>,
}

impl Batch {
    /// Appends a tag; returns whether the batch should be flushed now.
    fn add(&mut self, kind: TagKind, timestamp_ms: u32, body: &[u8]) -> bool {
        if self.bytes.is_empty() {
            self.first_ms = timestamp_ms;
        }
        flv::append_tag(&mut self.bytes, kind, timestamp_ms, body);
        match kind {
            TagKind::Video => {
                if let Some(pts) = flv::avc_keyframe_pts(body, timestamp_ms) {
                    self.audio_urgent_until = Some(pts);
                }
                true
            }
            TagKind::Audio => {
                if let Some(until) = self.audio_urgent_until {
                    // Wrapping compare: timestamps are 32-bit ms and may wrap.
                    if timestamp_ms.wrapping_sub(until) < u32::MAX / 2 {
                        self.audio_urgent_until = None;
                    }
                    return true;
                }
                timestamp_ms.wrapping_sub(self.first_ms) >= MAX_BATCH_MS || self.bytes.len() >= MAX_BATCH_BYTES
            }
        }
    }

    /// Hands the batched tags to appsrc as one buffer.
    fn flush(&mut self, appsrc: &gst_app::AppSrc) -> Result<(), gst::FlowError> {
        if self.bytes.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.bytes);
        appsrc.push_buffer(gst::Buffer::from_mut_slice(bytes)).map(|_| ())
    }
}

impl PublishShared {
    /// Sends EOS to a running pipeline; a publish that never started is done at once.
    fn request_end(&self) {
        let mut stage = lock(&self.stage);
        match &mut *stage {
            Stage::Running(running) => {
                // Whatever a failed flush left unsaid, the EOS still drains the rest.
                let _ = running.batch.flush(&running.appsrc);
                let _ = running.appsrc.end_of_stream();
            }
            Stage::Pending => {
                self.done.send_replace(true);
            }
            Stage::Closed(_) => return,
        }
        *stage = Stage::Closed("the publish ended".into());
    }

    fn close(&self, reason: String) {
        let mut stage = lock(&self.stage);
        if !matches!(*stage, Stage::Closed(_)) {
            *stage = Stage::Closed(reason);
        }
    }

    async fn wait_done(&self, playback_id: &str) {
        let mut done = self.done.subscribe();
        if tokio::time::timeout(DRAIN_TIMEOUT, done.wait_for(|d| *d)).await.is_ok() {
            return;
        }
        tracing::warn!(playback_id, publish = self.id, "drain timed out; stopping the pipeline");
        self.force_stop.notify_one();
        if tokio::time::timeout(STOP_TIMEOUT, done.wait_for(|d| *d)).await.is_err() {
            tracing::error!(playback_id, publish = self.id, "pipeline did not stop");
        }
    }
}

/// Waits for the end of one publish's pipeline (drained, failed or stopped), tears it down
/// and tells the writer that this publish is over.
async fn monitor(
    shared: Arc<PublishShared>,
    pipeline: gst::Pipeline,
    mut bus: mpsc::UnboundedReceiver<BusEvent>,
    tx: mpsc::Sender<Msg>,
    playback_id: String,
) {
    let publish = shared.id;
    let reason = tokio::select! {
        event = bus.recv() => match event {
            Some(BusEvent::Error(error)) => {
                tracing::warn!(%playback_id, publish, %error, "pipeline failed; the publish ends");
                format!("the pipeline failed: {error}")
            }
            Some(BusEvent::Eos) | None => {
                tracing::debug!(%playback_id, publish, "publish drained");
                "the publish ended".to_owned()
            }
        },
        () = shared.force_stop.notified() => "the publish was stopped".to_owned(),
    };
    shared.close(reason);
    // Setting NULL waits for the streaming threads; keep that off the async workers.
    let _ = tokio::task::spawn_blocking(move || pipeline.set_state(gst::State::Null)).await;
    let _ = tx.send(Msg::PublishEnded { publish }).await;
    shared.done.send_replace(true);
}

/// Feeds one publish's FLV tag bodies into its pipeline. Non-blocking.
pub struct PublishFeed {
    shared: Arc<PublishShared>,
    stream: Arc<StreamInner>,
    /// Tags before the first video frame (sequence headers, early audio).
    pending: Vec<(TagKind, u32, Bytes)>,
    pending_bytes: usize,
    has_audio: bool,
    dropped_audio: AtomicBool,
    /// Picks this publish's poster keyframes; `None` when posters are off.
    poster: Option<poster::PosterFeed>,
}

impl PublishFeed {
    /// An FLV VIDEODATA tag body (AVC) with its RTMP timestamp in ms.
    pub fn push_video(&mut self, timestamp_ms: u32, data: Bytes) -> Result<(), PackagerError> {
        if let Some(poster) = &mut self.poster {
            poster.video(&data);
        }
        self.push(TagKind::Video, timestamp_ms, data)
    }
    /// An FLV AUDIODATA tag body (AAC) with its RTMP timestamp in ms.
    pub fn push_audio(&mut self, timestamp_ms: u32, data: Bytes) -> Result<(), PackagerError> {
        self.push(TagKind::Audio, timestamp_ms, data)
    }
    /// The publisher is gone: drain the pipeline (the last partial segment is written).
    /// Returns at once; `StreamPackager::finish` waits for the drain.
    pub fn end(self) {
        // Drop does it, so a feed dropped without `end` drains too.
    }

    fn push(&mut self, kind: TagKind, timestamp_ms: u32, data: Bytes) -> Result<(), PackagerError> {
        if data.len() > flv::MAX_BODY {
            return Err(PackagerError::Closed("FLV tag body over 16 MiB".into()));
        }
        let shared = self.shared.clone();
        let mut stage = lock(&shared.stage);
        let next = match &mut *stage {
            Stage::Closed(reason) => return Err(PackagerError::Closed(reason.clone())),
            Stage::Running(running) => match self.push_running(running, kind, timestamp_ms, &data) {
                Ok(()) => return Ok(()),
                Err(reason) => {
                    let _ = running.appsrc.end_of_stream();
                    Stage::Closed(reason)
                }
            },
            Stage::Pending => {
                let first_frame = kind == TagKind::Video && flv::is_avc_frame(&data);
                self.has_audio |= kind == TagKind::Audio;
                self.pending_bytes += data.len();
                self.pending.push((kind, timestamp_ms, data));
                if first_frame {
                    match self.start_pipeline() {
                        Ok(appsrc) => Stage::Running(Running { appsrc, batch: Batch::default() }),
                        Err(err) => {
                            shared.done.send_replace(true);
                            *stage = Stage::Closed(err.to_string());
                            return Err(err);
                        }
                    }
                } else if self.pending_bytes > MAX_PENDING_BYTES {
                    shared.done.send_replace(true);
                    Stage::Closed("no video frame in the first 4 MiB of the publish".into())
                } else {
                    return Ok(());
                }
            }
        };
        let result = match &next {
            Stage::Closed(reason) => Err(PackagerError::Closed(reason.clone())),
            _ => Ok(()),
        };
        *stage = next;
        result
    }

    /// Returns why the publish cannot go on.
    fn push_running(&self, running: &mut Running, kind: TagKind, timestamp_ms: u32, data: &[u8]) -> Result<(), String> {
        if kind == TagKind::Audio && !self.has_audio {
            // The FLV header said video-only; flvdemux would expose an unlinked pad.
            if !self.dropped_audio.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    playback_id = %self.stream.playback_id,
                    "audio began after the first video frame; this publish stays video-only"
                );
            }
            return Ok(());
        }
        if !running.batch.add(kind, timestamp_ms, data) {
            return Ok(());
        }
        if running.appsrc.current_level_bytes() >= pipeline::MAX_QUEUED_BYTES {
            return Err("the packager fell behind".into());
        }
        running.batch.flush(&running.appsrc).map_err(|e| format!("the pipeline stopped ({e:?})"))
    }

    /// Builds the pipeline, feeds it the FLV header and the pending tags, starts its monitor.
    fn start_pipeline(&mut self) -> Result<gst_app::AppSrc, PackagerError> {
        let stream = &self.stream;
        let start = |ladder: &[Rendition]| {
            let (segment, part) = (stream.segment_duration, stream.part_duration);
            let started = chrono::Utc::now();
            pipeline::start(self.shared.id, self.has_audio, (segment, part), ladder, started, stream.tx.clone())
        };
        let built = match start(&stream.ladder) {
            // The source must not depend on transcoding: without the ladder, it still plays.
            Err(err) if !stream.ladder.is_empty() => {
                tracing::error!(playback_id = %stream.playback_id, %err, "ABR ladder failed; this publish is passthrough only");
                start(&[])?
            }
            built => built?,
        };
        self.stream.rt.spawn(monitor(
            self.shared.clone(),
            built.pipeline,
            built.bus,
            self.stream.tx.clone(),
            self.stream.playback_id.clone(),
        ));
        let appsrc = built.appsrc;
        // The header and the pending tags (ending with the first video frame) as one buffer.
        let mut bytes = Vec::with_capacity(13 + self.pending_bytes + 15 * self.pending.len());
        bytes.extend_from_slice(&flv::file_header(self.has_audio));
        for (kind, ts, data) in std::mem::take(&mut self.pending) {
            flv::append_tag(&mut bytes, kind, ts, &data);
        }
        // A failure here is a pipeline error: the monitor closes the publish and reports it.
        let _ = appsrc.push_buffer(gst::Buffer::from_mut_slice(bytes));
        Ok(appsrc)
    }
}

impl Drop for PublishFeed {
    fn drop(&mut self) {
        self.shared.request_end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 6] = [0x17, 1, 0, 0, 66, 0];
    const INTER: [u8; 6] = [0x27, 1, 0, 0, 66, 0];
    const AAC: [u8; 3] = [0xAF, 1, 0];

    #[test]
    fn audio_rides_with_the_next_video_frame() {
        let mut b = Batch::default();
        assert!(!b.add(TagKind::Audio, 1000, &AAC));
        assert!(!b.add(TagKind::Audio, 1021, &AAC));
        assert!(b.add(TagKind::Video, 1033, &INTER));
        assert_eq!(b.bytes.len(), 2 * (15 + AAC.len()) + 15 + INTER.len());
    }

    #[test]
    fn audio_alone_waits_at_most_the_batch_span() {
        let mut b = Batch::default();
        assert!(!b.add(TagKind::Audio, 1000, &AAC));
        assert!(!b.add(TagKind::Audio, 1021, &AAC));
        assert!(b.add(TagKind::Audio, 1000 + MAX_BATCH_MS, &AAC));
    }

    #[test]
    fn audio_after_a_keyframe_goes_at_once_up_to_its_time() {
        let mut b = Batch::default();
        // Keyframe at DTS 2000, PTS 2066.
        assert!(b.add(TagKind::Video, 2000, &KEY));
        b.bytes.clear();
        assert!(b.add(TagKind::Audio, 2010, &AAC));
        assert!(b.add(TagKind::Audio, 2045, &AAC));
        assert!(b.add(TagKind::Audio, 2066, &AAC));
        b.bytes.clear();
        // Past the keyframe's time: batching again.
        assert!(!b.add(TagKind::Audio, 2087, &AAC));
    }
}
