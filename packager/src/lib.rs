//! HLS packaging: one GStreamer pipeline per publish turns FLV media into fMP4 segments;
//! our own segmenter and playlist writer store them through the `Store` trait.
//!
//! Object layout under `streams/{playback_id}/` (mirrors `/hls/{playback_id}/...`):
//! - `index.m3u8`: multivariant playlist naming `v0/index.m3u8`
//! - `v0/live.m3u8`: sliding live media playlist
//! - `v0/replay.m3u8`: every segment since go-live; EVENT while live, VOD + ENDLIST once finished
//! - `v0/init{N}.mp4` (one per publish), `v0/seg{MSN:06}.m4s`
//!
//! Knows GStreamer and the storage trait; nothing of RTMP, the database or HTTP.

mod bmff;
mod flv;
mod pipeline;
mod playlist;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use hawker_storage::Store;
use gst::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::flv::TagKind;
use crate::pipeline::BusEvent;
use crate::writer::{Msg, Writer};

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
}

#[derive(Debug, Clone)]
pub struct PackagerConfig {
    /// Target segment duration; segments are cut on the first keyframe at or after it.
    pub segment_duration: Duration,
    /// Segments kept in the live playlist.
    pub live_window: usize,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        Self { segment_duration: Duration::from_secs(2), live_window: 6 }
    }
}

impl PackagerConfig {
    /// TARGETDURATION never starts below the configured target (rounded up).
    fn min_target_secs(&self) -> u64 {
        self.segment_duration.as_millis().div_ceil(1000).max(1) as u64
    }
}

/// Messages the writer may have queued before it applies back-pressure to the pipeline.
const WRITER_QUEUE: usize = 32;
/// Tags kept before the first video frame; an audio-only publish must not grow without bound.
const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;
/// How long `finish` waits for a publish to drain before stopping its pipeline.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates per-stream packagers. Cheap to clone.
#[derive(Clone)]
pub struct Packager {
    store: Arc<dyn Store>,
    config: PackagerConfig,
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
        Ok(Self { store, config })
    }

    /// The packaging state of one stream, kept across publishes (reconnects continue the same
    /// playlists with a DISCONTINUITY). Resumes from `v0/replay.m3u8` if the store has one.
    pub async fn open(&self, playback_id: &str) -> Result<StreamPackager, PackagerError> {
        let rt = Handle::try_current()
            .map_err(|_| PackagerError::Closed("open needs a tokio runtime".into()))?;
        let segments = self.stored_segments(playback_id).await?;
        if !segments.is_empty() {
            tracing::info!(playback_id, segments = segments.len(), "resuming stored playlists");
        }
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let writer = Writer::new(
            self.store.clone(),
            playback_id.to_owned(),
            self.config.min_target_secs(),
            self.config.live_window,
            segments,
        );
        rt.spawn(writer.run(rx));
        Ok(StreamPackager {
            inner: Arc::new(StreamInner {
                playback_id: playback_id.to_owned(),
                segment_duration: self.config.segment_duration,
                rt,
                tx,
                publishes: Mutex::new(Publishes { list: Vec::new(), finished: false }),
                next_publish: AtomicU64::new(0),
            }),
        })
    }

    /// Finalises a stream that has no open `StreamPackager` (e.g. after a restart): rewrites an
    /// existing `v0/replay.m3u8` as VOD + ENDLIST. No-op if there is none.
    pub async fn finalize_replay(&self, playback_id: &str) -> Result<(), PackagerError> {
        let segments = self.stored_segments(playback_id).await?;
        if segments.is_empty() {
            return Ok(());
        }
        let vod = writer::vod_playlist(&segments, self.config.min_target_secs());
        self.store.put(&writer::replay_key(playback_id), vod, writer::PLAYLIST_META).await?;
        Ok(())
    }

    async fn stored_segments(
        &self,
        playback_id: &str,
    ) -> Result<Vec<playlist::Segment>, PackagerError> {
        let Some(object) = self.store.get(&writer::replay_key(playback_id)).await? else {
            return Ok(Vec::new());
        };
        let text = std::str::from_utf8(&object.bytes)
            .map_err(|_| PackagerError::Playlist("replay.m3u8 is not UTF-8".into()))?;
        playlist::parse_media(text).map_err(|e| PackagerError::Playlist(format!("replay.m3u8: {e}")))
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
    rt: Handle,
    tx: mpsc::Sender<Msg>,
    publishes: Mutex<Publishes>,
    next_publish: AtomicU64,
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
        })
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
    Running(gst_app::AppSrc),
    Closed(String),
}

impl PublishShared {
    /// Sends EOS to a running pipeline; a publish that never started is done at once.
    fn request_end(&self) {
        let mut stage = lock(&self.stage);
        match &*stage {
            Stage::Running(appsrc) => {
                let _ = appsrc.end_of_stream();
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
}

impl PublishFeed {
    /// An FLV VIDEODATA tag body (AVC) with its RTMP timestamp in ms.
    pub fn push_video(&mut self, timestamp_ms: u32, data: Bytes) -> Result<(), PackagerError> {
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
        let next = match &*stage {
            Stage::Closed(reason) => return Err(PackagerError::Closed(reason.clone())),
            Stage::Running(appsrc) => match self.push_running(appsrc, kind, timestamp_ms, &data) {
                Ok(()) => return Ok(()),
                Err(reason) => {
                    let _ = appsrc.end_of_stream();
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
                        Ok(appsrc) => Stage::Running(appsrc),
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
    fn push_running(
        &self,
        appsrc: &gst_app::AppSrc,
        kind: TagKind,
        timestamp_ms: u32,
        data: &[u8],
    ) -> Result<(), String> {
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
        if appsrc.current_level_bytes() >= pipeline::MAX_QUEUED_BYTES {
            return Err("the packager fell behind".into());
        }
        let buffer = gst::Buffer::from_mut_slice(flv::tag(kind, timestamp_ms, data));
        appsrc.push_buffer(buffer).map(|_| ()).map_err(|e| format!("the pipeline stopped ({e:?})"))
    }

    /// Builds the pipeline, feeds it the FLV header and the pending tags, starts its monitor.
    fn start_pipeline(&mut self) -> Result<gst_app::AppSrc, PackagerError> {
        let built = pipeline::start(
            self.shared.id,
            self.has_audio,
            self.stream.segment_duration,
            chrono::Utc::now(),
            self.stream.tx.clone(),
        )?;
        self.stream.rt.spawn(monitor(
            self.shared.clone(),
            built.pipeline,
            built.bus,
            self.stream.tx.clone(),
            self.stream.playback_id.clone(),
        ));
        let appsrc = built.appsrc;
        let header = gst::Buffer::from_slice(flv::file_header(self.has_audio));
        let pending = std::mem::take(&mut self.pending);
        let tags = pending
            .into_iter()
            .map(|(kind, ts, data)| gst::Buffer::from_mut_slice(flv::tag(kind, ts, &data)));
        // A failure here is a pipeline error: the monitor closes the publish and reports it.
        for buffer in std::iter::once(header).chain(tags) {
            if appsrc.push_buffer(buffer).is_err() {
                break;
            }
        }
        Ok(appsrc)
    }
}

impl Drop for PublishFeed {
    fn drop(&mut self) {
        self.shared.request_end();
    }
}
