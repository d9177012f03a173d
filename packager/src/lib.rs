//! HLS packaging: one GStreamer pipeline per publish turns typed H.264 and AAC frames into fMP4
//! segments; our own segmenter and playlist writer store them through the `Store` trait.
//!
//! Each stream's live HLS (live and delta playlists, parts in flight, progress, live edge) is
//! held in memory ([`LiveState`]) and served from there; every object is also stored, for
//! S3/CDN delivery and the replay. [`names`] names every object.
//!
//! Knows GStreamer and the storage trait; nothing of RTMP, the database or HTTP.

mod bmff;
mod codec;
mod export;
mod live;
mod mp4_trim;
pub mod names;
mod pipeline;
mod playlist;
mod poster;
mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use gst::prelude::*;
use hawker_storage::Store;
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::pipeline::{BusEvent, Configs, Input};
use crate::playlist::Kind;
use crate::writer::{Msg, Writer};

pub use crate::export::{Mp4Export, remux_stdin};
pub use crate::live::LiveState;
pub use crate::mp4_trim::Trim;
pub use crate::names::SOURCE_RENDITION;
pub use crate::pipeline::NextOutput;
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
    /// No stored media in the span a clip asks for.
    #[error("no stored media in that span")]
    NothingInSpan,
    /// Media the packager cannot use (an unreadable configuration record, a frame before it).
    #[error("unusable media: {0}")]
    Media(String),
}

#[derive(Debug, Clone)]
pub struct PackagerConfig {
    /// Target segment duration; segments are cut on the first keyframe at or after it.
    pub segment_duration: Duration,
    /// Segments kept in the live playlist.
    pub live_window: usize,
    /// The oldest poster (`poster.jpg`) a request gets while live (posters are made on
    /// request, from the first keyframe, and at the end); zero: no posters.
    pub poster_interval: Duration,
    /// LL-HLS part duration (PART-TARGET); `None` turns LL-HLS off (plain HLS, e.g. behind
    /// a CDN that does not hold blocking playlist requests).
    pub part_duration: Option<Duration>,
    /// ABR ladder: renditions transcoded from the source, next to it; empty (the default):
    /// the source only.
    pub ladder: Vec<Rendition>,
    /// Temporary files of MP4 exports (as large as a replay): a folder on the data disk.
    pub work_dir: std::path::PathBuf,
    /// The program that runs MP4 exports' muxers, each in a child process of its own
    /// (`<program> remux-mp4`, see [`remux_stdin`]): a muxer's fault then fails one export
    /// and never the server. `None`: a thread of this process.
    pub remux_program: Option<std::path::PathBuf>,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        Self {
            segment_duration: Duration::from_secs(2),
            live_window: 6,
            poster_interval: Duration::from_secs(10),
            part_duration: Some(Duration::from_millis(200)),
            ladder: Vec::new(),
            work_dir: std::env::temp_dir().join("hawker-work"),
            remux_program: None,
        }
    }
}

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
/// Audio kept before the first keyframe; an audio-only publish must not grow without bound.
const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;
/// Where the publish's first frame lands on the pipeline's timeline: room for media a little
/// earlier than it (a track starting late, negative composition offsets), since GStreamer's
/// timestamps are unsigned. One offset for the whole publish, so the output keeps the
/// source's timing exactly.
const TIMELINE_START_NS: i64 = 10_000_000_000;
/// How long `finish` waits for a publish to drain before stopping its pipeline.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
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
        let posters_available = poster::available(!config.poster_interval.is_zero());
        if !posters_available {
            tracing::warn!(elements = ?poster::ELEMENTS, "posters are off: an element is not installed or did not load");
        }
        let ladder_available = pipeline::LADDER_ELEMENTS.iter().all(|f| gst::ElementFactory::find(f).is_some());
        if !ladder_available {
            tracing::warn!(elements = ?pipeline::LADDER_ELEMENTS, "no ABR ladder: an element is not installed");
        }
        Ok(Self { store, config, poster_permits: poster::permits(), posters_available, ladder_available })
    }

    /// The packaging state of one stream, kept across publishes (reconnects continue the same
    /// playlists with a DISCONTINUITY). Resumes from the stored replay journal if there is one.
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
        let (source, markers) = self.stored_replay(playback_id, SOURCE_RENDITION).await?;
        let mut renditions = vec![(SOURCE_RENDITION.to_owned(), source)];
        for rung in &ladder {
            renditions.push((rung.name.clone(), self.stored_replay(playback_id, &rung.name).await?.0));
        }
        let source = &renditions[0].1;
        if !source.is_empty() {
            tracing::info!(playback_id, segments = source.len(), "resuming stored playlists");
        }
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let part_target_ms = config.part_target_ms();
        let names: Vec<String> = renditions.iter().map(|(name, _)| name.clone()).collect();
        let live = LiveState::new(
            self.store.clone(),
            config.live_window,
            &names,
            Progress {
                last_segment: source.last().map(|s| s.msn),
                last_part: None,
                target_duration_secs: playlist::target_secs(source, config.min_target_secs()),
                part_target_ms,
                ended: false,
            },
        );
        let source_output = Arc::new(Notify::new());
        let writer = Writer::new(
            self.store.clone(),
            playback_id.to_owned(),
            config,
            renditions,
            markers,
            live.clone(),
            source_output.clone(),
        );
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
                live,
                rt,
                tx,
                source_output,
                publishes: Mutex::new(Publishes { list: Vec::new(), finished: false }),
                next_publish: AtomicU64::new(0),
                posters,
            }),
        })
    }

    /// Finalises a stream that has no open `StreamPackager` (e.g. after a restart): writes each
    /// rendition's replay as VOD + ENDLIST from its stored journal, then removes the live-only
    /// objects. No-op if nothing was stored.
    pub async fn finalize_replay(&self, playback_id: &str) -> Result<(), PackagerError> {
        for rendition in self.stored_renditions(playback_id).await? {
            let (segments, markers) = self.stored_replay(playback_id, &rendition).await?;
            if segments.is_empty() {
                continue;
            }
            let vod = writer::replay_playlist(&segments, Kind::Vod, self.config.min_target_secs(), &markers);
            self.store.put(&names::replay_key(playback_id, &rendition), vod, writer::PLAYLIST_META).await?;
        }
        writer::remove_live_only(self.store.as_ref(), playback_id).await
    }

    /// Makes one fast-start MP4 of a stream's stored replay (the source rendition, no
    /// re-encode) and stores it beside the replay. Returns its path under
    /// `/hls/{playback_id}/` and what was written. Run it off the live path: it reads every
    /// segment once (one at a time).
    pub async fn export_replay_mp4(&self, playback_id: &str) -> Result<(&'static str, Mp4Export), PackagerError> {
        let (segments, _) = self.stored_replay(playback_id, SOURCE_RENDITION).await?;
        if segments.is_empty() {
            return Err(PackagerError::Playlist("the stream has no stored replay".into()));
        }
        let keys = export::source_segments(playback_id, &segments);
        let target = names::replay_mp4_key(playback_id);
        let export = export::remux(self.store.clone(), keys, &self.config, &target, Trim::default()).await?;
        Ok((names::REPLAY_MP4, export))
    }

    /// Makes a clip of a stream, live or saved: a VOD playlist over the source rendition's
    /// stored segments that overlap `[from, to)` (whole segments, nothing copied), stored at
    /// once, with the markers that start inside it. Returns where it plays and what it covers.
    pub async fn make_clip(
        &self,
        playback_id: &str,
        clip_id: &str,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<ClipMade, PackagerError> {
        if !names::valid_clip_id(clip_id) {
            return Err(PackagerError::Media(format!("invalid clip id {clip_id:?}")));
        }
        let (segments, markers) = self.stored_replay(playback_id, SOURCE_RENDITION).await?;
        let chosen = clip_segments(&segments, from, to);
        let (Some(first), Some(last)) = (chosen.first(), chosen.last()) else {
            return Err(PackagerError::NothingInSpan);
        };
        let (start, end) = (first.pdt, last.pdt + chrono::Duration::milliseconds(last.duration_ms as i64));
        let inside: Vec<DateRange> = markers.into_iter().filter(|m| m.start >= start && m.start < end).collect();
        let text = playlist::render_whole(chosen, Kind::Vod, self.config.min_target_secs(), &inside);
        let text = playlist::rebase(&text, names::CLIP_TO_SOURCE);
        let path = names::clip_playlist_path(clip_id);
        let key = format!("{}{path}", names::stream_prefix(playback_id));
        self.store.put(&key, Bytes::from(text), writer::PLAYLIST_META).await?;
        Ok(ClipMade { path, start, end, segments: chosen.len() })
    }

    /// The MP4 of exactly `[from, to)` of a clip, stored beside its playlist: the same
    /// segments as the playlist (see [`Packager::export_replay_mp4`]), cut to the frame by
    /// edit lists (no re-encode: the frames before `from` back to the keyframe are carried, not
    /// shown).
    pub async fn export_clip_mp4(
        &self,
        playback_id: &str,
        clip_id: &str,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<(String, Mp4Export), PackagerError> {
        if !names::valid_clip_id(clip_id) {
            return Err(PackagerError::Media(format!("invalid clip id {clip_id:?}")));
        }
        let (segments, _) = self.stored_replay(playback_id, SOURCE_RENDITION).await?;
        let chosen = clip_segments(&segments, from, to);
        if chosen.is_empty() {
            return Err(PackagerError::NothingInSpan);
        }
        let mut keys = export::source_segments(playback_id, chosen);
        // A seller who changed resolution inside the span: the MP4 stops there.
        keys.truncate(export::one_configuration(self.store.as_ref(), &keys).await?);
        let (first, last) = (&chosen[0], &chosen[keys.len() - 1]);
        let covered_end = last.pdt + chrono::Duration::milliseconds(last.duration_ms as i64);
        let ns = |d: chrono::Duration| d.num_nanoseconds().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        // The segments' times are kept to the millisecond: less is no cut.
        let cut = |d: chrono::Duration| if d > chrono::Duration::milliseconds(1) { ns(d) } else { 0 };
        let mut trim = Trim { head_ns: cut(from - first.pdt), tail_ns: cut(covered_end - to) };
        // A span shorter than a few frames (a pin taken straight off) keeps its segments.
        let covered_ns = ns(covered_end - first.pdt);
        if covered_ns.saturating_sub(trim.head_ns + trim.tail_ns) < MIN_CUT_NS {
            trim = Trim::default();
        }
        let path = names::clip_mp4_path(clip_id);
        let key = format!("{}{path}", names::stream_prefix(playback_id));
        let whole = keys.len() == chosen.len();
        let export = export::remux(self.store.clone(), keys, &self.config, &key, trim).await?;
        Ok((path, Mp4Export { complete: export.complete && whole, ..export }))
    }

    /// A rendition's stored replay playlist: the final one once the stream was saved, else
    /// (a stream on air that this server does not package, e.g. after a restart) the journal
    /// so far as an EVENT playlist. `None` if nothing is stored.
    pub async fn replay_playlist(&self, playback_id: &str, rendition: &str) -> Result<Option<Bytes>, PackagerError> {
        if let Some(object) = self.store.get(&names::replay_key(playback_id, rendition)).await? {
            return Ok(Some(object.bytes));
        }
        let (segments, markers) = self.stored_replay(playback_id, rendition).await?;
        if segments.is_empty() {
            return Ok(None);
        }
        Ok(Some(writer::replay_playlist(&segments, Kind::Event, self.config.min_target_secs(), &markers)))
    }

    /// The renditions the stored multivariant playlist names (the source alone without one).
    async fn stored_renditions(&self, playback_id: &str) -> Result<Vec<String>, PackagerError> {
        Ok(match self.store.get(&names::multivariant_key(playback_id)).await? {
            Some(object) => playlist::parse_renditions(&String::from_utf8_lossy(&object.bytes)),
            None => vec![SOURCE_RENDITION.to_owned()],
        })
    }

    /// The segments and markers of a rendition's stored replay: its journal chunks in order
    /// (a later chunk's version of a marker wins), else a final `replay.m3u8`.
    async fn stored_replay(
        &self,
        playback_id: &str,
        rendition: &str,
    ) -> Result<(Vec<playlist::Segment>, Vec<DateRange>), PackagerError> {
        let (mut segments, mut markers) = (Vec::new(), Vec::<DateRange>::new());
        let mut add = |name: &str, bytes: &[u8]| {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| PackagerError::Playlist(format!("{rendition}/{name} is not UTF-8")))?;
            segments.extend(
                playlist::parse_media(text).map_err(|e| PackagerError::Playlist(format!("{rendition}/{name}: {e}")))?,
            );
            for marker in playlist::parse_markers(text) {
                match markers.iter_mut().find(|m| m.id == marker.id) {
                    Some(known) => *known = marker,
                    None => markers.push(marker),
                }
            }
            Ok::<_, PackagerError>(())
        };
        let mut chunk = 0;
        while let Some(object) = self.store.get(&names::journal_key(playback_id, rendition, chunk)).await? {
            add("journal", &object.bytes)?;
            chunk += 1;
        }
        if chunk == 0
            && let Some(object) = self.store.get(&names::replay_key(playback_id, rendition)).await?
        {
            add("replay.m3u8", &object.bytes)?;
        }
        Ok((segments, markers))
    }
}

/// The shortest span a clip's MP4 is cut to.
const MIN_CUT_NS: u64 = 200_000_000;

/// What [`Packager::make_clip`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipMade {
    /// Its playlist, as a path under `/hls/{playback_id}/`.
    pub path: String,
    /// What it covers: from its first segment's start to its last one's end.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub segments: usize,
}

/// The run of segments that overlap `[from, to)`.
fn clip_segments(segments: &[playlist::Segment], from: DateTime<Utc>, to: DateTime<Utc>) -> &[playlist::Segment] {
    let overlaps =
        |s: &playlist::Segment| s.pdt < to && s.pdt + chrono::Duration::milliseconds(s.duration_ms as i64) > from;
    let Some(first) = segments.iter().position(overlaps) else { return &[] };
    let count = segments[first..].iter().take_while(|s| overlaps(s)).count();
    &segments[first..first + count]
}

/// Locks even if a holder panicked: the guarded state stays consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
    live: LiveState,
    rt: Handle,
    tx: mpsc::Sender<Msg>,
    /// Notified by the writer as each output of the source rendition reaches it.
    source_output: Arc<Notify>,
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
    /// The pipeline itself starts at the first keyframe: only then is it known whether the
    /// publish has audio (publishers send both configurations before any frame).
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
            video_config: None,
            audio_config: None,
            pending: Vec::new(),
            pending_bytes: 0,
            origin_ms: 0,
            pushed_ns: 0,
            muxed_ns: Arc::new(AtomicU64::new(0)),
            dropped_audio: false,
            poster: self.inner.posters.as_ref().map(|p| p.feed()),
        })
    }

    /// The live playlists' progress; changes after each stored part or segment. With a ladder,
    /// it is what every rendition's live playlist has (the least advanced one). Holds `ended`
    /// once `finish` has run.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.inner.live.progress()
    }

    /// The stream's live HLS as viewers are served it.
    pub fn live(&self) -> LiveState {
        self.inner.live.clone()
    }

    /// A poster of a recent keyframe, made now if the last one is older than the poster
    /// interval; `None` with posters off or before the first keyframe.
    pub async fn poster(&self) -> Option<Bytes> {
        self.inner.posters.as_ref()?.poster().await
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

    /// Waits until every publish that is ending has reached storage (its last partial segment
    /// stored and listed), within the drain timeouts. For a clean shutdown, once the ingest has
    /// closed its connections: unlike `finish`, the stream stays open, for a restart to continue.
    pub async fn settle(&self) {
        let publishes = lock(&self.inner.publishes).list.clone();
        for publish in &publishes {
            publish.wait_done(&self.inner.playback_id).await;
        }
        let (done, settled) = oneshot::channel();
        if self.inner.tx.send(Msg::Settled { done }).await.is_ok() {
            let _ = settled.await;
        }
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
            posters.close(save).await;
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
    /// No keyframe yet: configurations and audio wait in the feed.
    Pending,
    Running(Input),
    Closed(String),
}

impl PublishShared {
    /// Sends EOS to a running pipeline; a publish that never started is done at once.
    fn request_end(&self) {
        let mut stage = lock(&self.stage);
        match &mut *stage {
            Stage::Running(input) => input.end(),
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
    outputs: Vec<gst::Pad>,
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
    let _ = tokio::task::spawn_blocking(move || {
        let stopped = pipeline.set_state(gst::State::Null);
        drop(outputs);
        stopped
    })
    .await;
    let _ = tx.send(Msg::PublishEnded { publish }).await;
    shared.done.send_replace(true);
}

/// Feeds one publish's frames into its pipeline. Never blocks for long: it runs on the
/// ingest connection's task.
pub struct PublishFeed {
    shared: Arc<PublishShared>,
    stream: Arc<StreamInner>,
    video_config: Option<Bytes>,
    audio_config: Option<Bytes>,
    /// Audio frames before the first keyframe (pts ms, data).
    pending: Vec<(u32, Bytes)>,
    pending_bytes: usize,
    /// The timestamp (ms) that lands at `TIMELINE_START_NS`: the publish's earliest frame.
    origin_ms: i64,
    /// The newest timestamp pushed, ns on the pipeline's timeline.
    pushed_ns: u64,
    /// Media time the muxer has output, ns since the publish's first fragment.
    muxed_ns: Arc<AtomicU64>,
    dropped_audio: bool,
    /// Picks this publish's poster keyframes; `None` when posters are off.
    poster: Option<poster::PosterFeed>,
}

impl PublishFeed {
    /// The AVCDecoderConfigurationRecord (SPS, PPS), before the first frame and on changes.
    pub fn video_config(&mut self, record: Bytes) -> Result<(), PackagerError> {
        if let Some(poster) = &mut self.poster {
            poster.config(&record);
        }
        self.video_config = Some(record.clone());
        self.with_input(|input, _| input.video_config(record))
    }

    /// One access unit of length-prefixed NAL units: decode time and composition offset in ms.
    pub fn video_frame(&mut self, dts_ms: u32, cts_ms: i32, keyframe: bool, nalus: Bytes) -> Result<(), PackagerError> {
        if keyframe && let Some(poster) = &mut self.poster {
            poster.keyframe(&nalus);
        }
        if keyframe && matches!(*lock(&self.shared.stage), Stage::Pending) {
            self.start_pipeline(i64::from(dts_ms))?;
        }
        let dts_ms = i64::from(dts_ms);
        self.with_input(|input, feed| {
            let (Some(dts), Some(pts)) = (feed.at(dts_ms), feed.at(dts_ms + i64::from(cts_ms))) else {
                return Ok(());
            };
            feed.check_lag(pts)?;
            input.video(pts, dts, keyframe, nalus).map_err(|e| format!("the pipeline stopped ({e:?})"))
        })
    }

    /// The AAC AudioSpecificConfig. Audio whose configuration arrives after the first keyframe
    /// is not packaged: the pipeline's tracks are fixed when it starts.
    pub fn audio_config(&mut self, asc: Bytes) -> Result<(), PackagerError> {
        self.audio_config = Some(asc);
        Ok(())
    }

    /// One raw AAC frame, presentation time in ms.
    pub fn audio_frame(&mut self, pts_ms: u32, data: Bytes) -> Result<(), PackagerError> {
        if matches!(*lock(&self.shared.stage), Stage::Pending) {
            self.pending_bytes += data.len();
            self.pending.push((pts_ms, data));
            if self.pending_bytes > MAX_PENDING_BYTES {
                self.close("no keyframe in the first 4 MiB of the publish".into());
                return Err(PackagerError::Closed("no keyframe in the first 4 MiB of the publish".into()));
            }
            return Ok(());
        }
        self.with_input(|input, feed| {
            if !input.has_audio() {
                if !feed.dropped_audio {
                    feed.dropped_audio = true;
                    tracing::warn!(
                        playback_id = %feed.stream.playback_id,
                        "audio began after the first keyframe; this publish stays video-only"
                    );
                }
                return Ok(());
            }
            let Some(pts) = feed.at(i64::from(pts_ms)) else { return Ok(()) };
            feed.check_lag(pts)?;
            input.audio(pts, data).map_err(|e| format!("the pipeline stopped ({e:?})"))
        })
    }

    /// What the muxer's next output (a part or a segment) waits for
    /// (`pipeline::Input::next_output`); the media at once before the pipeline runs, `None`
    /// once it closed.
    pub fn next_output(&self) -> Option<NextOutput> {
        match &*lock(&self.shared.stage) {
            Stage::Running(input) => input.next_output(),
            Stage::Pending => Some(NextOutput::MediaBy(std::time::Instant::now())),
            Stage::Closed(_) => None,
        }
    }

    /// The publisher is gone: drain the pipeline (the last partial segment is written).
    /// Returns at once; `StreamPackager::finish` waits for the drain.
    pub fn end(self) {
        // Drop does it, so a feed dropped without `end` drains too.
    }

    /// A timestamp in ms as ns on the pipeline's timeline; `None` (the frame is dropped) for
    /// one so far before the publish's start that it cannot be represented.
    fn at(&self, ms: i64) -> Option<u64> {
        u64::try_from((ms - self.origin_ms) * 1_000_000 + TIMELINE_START_NS).ok()
    }

    /// Refuses media once the muxer's output trails it by `MAX_LAG`: a push must never block.
    fn check_lag(&mut self, pts: u64) -> Result<(), String> {
        self.pushed_ns = self.pushed_ns.max(pts);
        let pushed = self.pushed_ns.saturating_sub(TIMELINE_START_NS as u64);
        let muxed = self.muxed_ns.load(Ordering::Relaxed);
        match pushed.saturating_sub(muxed) > pipeline::MAX_LAG.as_nanos() as u64 {
            true => Err("the packager fell behind".into()),
            false => Ok(()),
        }
    }

    /// Runs `push` on the running pipeline; a failure closes the publish. Media before the
    /// pipeline starts (or after it closed) is refused or dropped by the caller's stage.
    fn with_input(
        &mut self,
        push: impl FnOnce(&mut Input, &mut Self) -> Result<(), String>,
    ) -> Result<(), PackagerError> {
        let shared = self.shared.clone();
        let mut stage = lock(&shared.stage);
        match &mut *stage {
            Stage::Pending => Ok(()),
            Stage::Closed(reason) => Err(PackagerError::Closed(reason.clone())),
            Stage::Running(input) => match push(input, self) {
                Ok(()) => Ok(()),
                Err(reason) => {
                    input.end();
                    *stage = Stage::Closed(reason.clone());
                    Err(PackagerError::Closed(reason))
                }
            },
        }
    }

    fn close(&self, reason: String) {
        self.shared.done.send_replace(true);
        *lock(&self.shared.stage) = Stage::Closed(reason);
    }

    /// At the first keyframe (decode time `dts_ms`): builds the pipeline, starts its monitor
    /// and pushes the audio that came first.
    fn start_pipeline(&mut self, dts_ms: i64) -> Result<(), PackagerError> {
        let Some(video) = self.video_config.clone() else {
            let why = "a keyframe before the AVC decoder configuration";
            self.close(why.into());
            return Err(PackagerError::Media(why.into()));
        };
        let configs = Configs { video, audio: self.audio_config.clone() };
        self.origin_ms = self.pending.iter().map(|(ms, _)| i64::from(*ms)).fold(dts_ms, i64::min);
        let stream = self.stream.clone();
        let start = |ladder: &[Rendition]| {
            let (segment, part) = (stream.segment_duration, stream.part_duration);
            let started = chrono::Utc::now();
            let (muxed, made) = (self.muxed_ns.clone(), stream.source_output.clone());
            pipeline::start(self.shared.id, &configs, (segment, part), ladder, started, stream.tx.clone(), muxed, made)
        };
        let built = match start(&stream.ladder) {
            // The source must not depend on transcoding: without the ladder, it still plays.
            Err(err) if !stream.ladder.is_empty() && !matches!(err, PackagerError::Media(_)) => {
                tracing::error!(playback_id = %stream.playback_id, %err, "ABR ladder failed; this publish is passthrough only");
                start(&[])
            }
            built => built,
        };
        let built = match built {
            Ok(built) => built,
            Err(err) => {
                self.close(err.to_string());
                return Err(err);
            }
        };
        stream.rt.spawn(monitor(
            self.shared.clone(),
            built.pipeline,
            built.outputs,
            built.bus,
            stream.tx.clone(),
            stream.playback_id.clone(),
        ));
        *lock(&self.shared.stage) = Stage::Running(built.input);
        for (pts_ms, data) in std::mem::take(&mut self.pending) {
            self.audio_frame(pts_ms, data)?;
        }
        self.pending_bytes = 0;
        Ok(())
    }
}

impl Drop for PublishFeed {
    fn drop(&mut self) {
        self.shared.request_end();
    }
}
