//! Posters: a JPEG of a recent keyframe, `streams/{playback_id}/poster.jpg`. The last one
//! stays: the replay keeps its poster.
//!
//! Made when someone looks, not on a timer: the feed keeps only the newest keyframe (a
//! reference to bytes the packager holds anyway) and the AVC configuration; a poster is made
//! from the first keyframe of a stream (so every live stream has one), then on request when
//! the one made is older than `poster_interval` and a newer keyframe exists, and once more
//! when the stream finishes. A stream nobody looks at costs two encodes: its first keyframe's
//! and its last (about 30 ms of CPU each for the bench's noisy 720p input, most of it
//! decoding the keyframe: `cargo test -p hawker-packager --test poster -- --ignored`). A
//! poster is a one-shot pipeline on a blocking thread:
//! `appsrc(video/x-h264,avc,codec_data) ! avdec_h264 ! videoscale ! video/x-raw,I420,width=640
//! ! jpegenc ! appsink`, fed one IDR picture then EOS, so no decoder state lives between
//! posters; a source that is not 8-bit 4:2:0 gets a `videoconvert` after the decoder (left out
//! otherwise: negotiating its every format cost a quarter of a poster). Only
//! `MAX_CONCURRENT` encodes run at once server-wide; a request that finds none free gets the
//! poster made before, and a stream's first and last posters wait their turn.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gst::prelude::*;
use hawker_storage::{ObjectMeta, Store};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

/// Replay data (the replay keeps its poster), refreshed while live: short cache.
pub(crate) const POSTER_META: ObjectMeta = ObjectMeta::new("image/jpeg", "public, max-age=5");
/// Poster width; the height keeps the picture's aspect ratio.
const WIDTH: i32 = 640;
const QUALITY: i32 = 80;
/// Poster encodes running at once, server-wide.
const MAX_CONCURRENT: usize = 2;
/// A poster that takes longer than this is given up.
const ENCODE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) const ELEMENTS: [&str; 7] =
    ["appsrc", "avdec_h264", "videoconvert", "videoscale", "capsfilter", "jpegenc", "appsink"];

/// Whether every element a poster needs is installed. With `load` (posters on in the server's
/// configuration), their plugins are loaded now, at start-up: loading FFmpeg's decoders costs
/// about 0.1 CPU-s, which the first poster (at a stream's first keyframe) would otherwise pay,
/// and a plugin that does not load turns posters off here rather than failing every poster.
pub(crate) fn available(load: bool) -> bool {
    ELEMENTS.iter().all(|name| match gst::ElementFactory::find(name) {
        Some(factory) => !load || factory.load().is_ok(),
        None => false,
    })
}

/// A keyframe a poster can be made from.
#[derive(Clone)]
struct Keyframe {
    codec_data: Bytes,
    nalus: Bytes,
    seen: Instant,
}

/// A stream's posters: shared by its publishes.
pub(crate) struct Posters {
    store: Arc<dyn Store>,
    playback_id: String,
    interval: Duration,
    rt: Handle,
    permits: Arc<Semaphore>,
    /// The newest keyframe; written by the feed on the ingest's task, so a plain mutex.
    latest: std::sync::Mutex<Option<Keyframe>>,
    /// One poster made at a time per stream; held across its `put`, so `close` waits for it.
    made: tokio::sync::Mutex<Made>,
}

#[derive(Default)]
struct Made {
    /// The newest poster and when its keyframe was seen.
    poster: Option<(Bytes, Instant)>,
    /// A first poster was asked for (at the stream's first keyframe).
    started: bool,
    closed: bool,
}

/// How a poster waits for one of the server-wide encoders.
enum Encoder {
    /// A viewer's request: the poster made before is answered if none is free.
    IfFree,
    /// The stream's first poster and its last (the replay's): made in turn, never skipped, so
    /// that streams starting or ending together each get theirs.
    Wait,
}

/// The server-wide limit on encodes at once.
pub(crate) fn permits() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_CONCURRENT))
}

impl Posters {
    pub fn new(
        store: Arc<dyn Store>,
        playback_id: String,
        interval: Duration,
        rt: Handle,
        permits: Arc<Semaphore>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            playback_id,
            interval,
            rt,
            permits,
            latest: std::sync::Mutex::new(None),
            made: tokio::sync::Mutex::new(Made::default()),
        })
    }

    /// The poster side of one publish's feed.
    pub fn feed(self: &Arc<Self>) -> PosterFeed {
        PosterFeed { posters: self.clone(), codec_data: None, first_asked: false }
    }

    /// A poster of a recent keyframe: the one made before if it is younger than the interval
    /// (or no newer keyframe came), else a new one. `None` before the first keyframe.
    pub async fn poster(&self) -> Option<Bytes> {
        let mut made = self.made.lock().await;
        let latest = crate::lock(&self.latest).clone();
        let fresh = |made: &Made| match (&made.poster, &latest) {
            (Some((_, seen)), Some(k)) => k.seen <= *seen || seen.elapsed() < self.interval,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !fresh(&made) && !made.closed {
            self.make(&mut made, latest, Encoder::IfFree).await;
        }
        made.poster.as_ref().map(|(jpeg, _)| jpeg.clone())
    }

    /// Encodes `keyframe` and stores the poster; keeps the previous one on failure.
    async fn make(&self, made: &mut Made, keyframe: Option<Keyframe>, encoder: Encoder) {
        let Some(Keyframe { codec_data, nalus, seen }) = keyframe else { return };
        let _permit = match encoder {
            // Every encoder busy: the poster made before stands.
            Encoder::IfFree => match self.permits.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => return,
            },
            Encoder::Wait => match self.permits.clone().acquire_owned().await {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let jpeg = match tokio::task::spawn_blocking(move || encode(&codec_data, nalus)).await {
            Ok(Ok(jpeg)) => jpeg,
            Ok(Err(e)) => return tracing::warn!(playback_id = %self.playback_id, "poster failed: {e}"),
            Err(e) => return tracing::warn!(playback_id = %self.playback_id, "poster task failed: {e}"),
        };
        if let Err(e) = self.store.put(&crate::names::poster_key(&self.playback_id), jpeg.clone(), POSTER_META).await {
            tracing::warn!(playback_id = %self.playback_id, "storing the poster failed: {e}");
        }
        made.poster = Some((jpeg, seen));
    }

    /// The stream is over: with `save`, a last poster of its newest keyframe (what the replay
    /// shows); none is written once this returns.
    pub async fn close(&self, save: bool) {
        let mut made = self.made.lock().await;
        let latest = crate::lock(&self.latest).clone();
        let newer = match (&made.poster, &latest) {
            (Some((_, seen)), Some(k)) => k.seen > *seen,
            (None, latest) => latest.is_some(),
            (Some(_), None) => false,
        };
        if save && newer && !made.closed {
            self.make(&mut made, latest, Encoder::Wait).await;
        }
        made.closed = true;
    }
}

/// Watches one publish's video for poster keyframes.
pub(crate) struct PosterFeed {
    posters: Arc<Posters>,
    /// The AVCDecoderConfigurationRecord of the publish, and its NAL units' length size.
    codec_data: Option<(Bytes, usize)>,
    /// This publish asked for the stream's first poster already (or found one asked for).
    first_asked: bool,
}

impl PosterFeed {
    /// The publish's AVCDecoderConfigurationRecord.
    pub fn config(&mut self, record: &Bytes) {
        self.codec_data = crate::codec::avc_info(record).map(|info| (record.clone(), info.nal_length_size));
    }

    /// A keyframe's NAL units: kept as the newest (a reference, not a copy); the stream's
    /// first one is made into a poster at once. One without an IDR picture (whatever the
    /// publisher flagged) is not kept: it would decode to grey.
    pub fn keyframe(&mut self, nalus: &Bytes) {
        let Some((codec_data, length_size)) = self.codec_data.clone() else { return };
        if !crate::codec::has_idr(nalus, length_size) {
            return;
        }
        let keyframe = Keyframe { codec_data, nalus: nalus.clone(), seen: Instant::now() };
        *crate::lock(&self.posters.latest) = Some(keyframe);
        if self.first_asked {
            return;
        }
        self.first_asked = true;
        let posters = self.posters.clone();
        self.posters.rt.spawn(async move {
            let mut made = posters.made.lock().await;
            if made.started || made.closed {
                return;
            }
            made.started = true;
            let latest = crate::lock(&posters.latest).clone();
            posters.make(&mut made, latest, Encoder::Wait).await;
        });
    }
}

/// Decodes one AVC keyframe (length-prefixed NAL units) and encodes it as JPEG. Blocking.
pub(crate) fn encode(codec_data: &[u8], frame: Bytes) -> Result<Bytes, String> {
    let err = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let caps = gst::Caps::builder("video/x-h264")
        .field("stream-format", "avc")
        .field("alignment", "au")
        .field("codec_data", gst::Buffer::from_slice(codec_data.to_vec()))
        .build();
    let appsrc = gst_app::AppSrc::builder().caps(&caps).format(gst::Format::Time).is_live(false).build();
    let make =
        |factory: &str| gst::ElementFactory::make(factory).build().map_err(|e| err(&format!("creating {factory}"), &e));
    let decode = make("avdec_h264")?;
    decode.set_property("max-threads", 1i32);
    // Decoding straight into GStreamer buffers makes the decoder set up a whole pool of
    // full-size frames; for one keyframe, libav's own few are enough (less memory per poster).
    decode.set_property("direct-rendering", false);
    let convert = match crate::codec::avc_info(codec_data).is_some_and(|info| info.i420) {
        true => None,
        false => Some(make("videoconvert")?),
    };
    let scale = make("videoscale")?;
    let size = make("capsfilter")?;
    size.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", WIDTH)
            // Square pixels: videoscale then picks the height that keeps the picture's shape.
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    );
    let jpeg = make("jpegenc")?;
    jpeg.set_property("quality", QUALITY);
    let appsink = gst_app::AppSink::builder().sync(false).enable_last_sample(false).build();

    let pipeline = gst::Pipeline::new();
    let chain: Vec<&gst::Element> = [appsrc.upcast_ref(), &decode]
        .into_iter()
        .chain(&convert)
        .chain([&scale, &size, &jpeg, appsink.upcast_ref()])
        .collect();
    pipeline.add_many(&chain).map_err(|e| err("adding elements", &e))?;
    gst::Element::link_many(&chain).map_err(|e| err("linking", &e))?;

    let result = (|| {
        pipeline.set_state(gst::State::Playing).map_err(|e| err("starting", &e))?;
        let mut buffer = gst::Buffer::from_slice(frame);
        {
            let buffer = buffer.get_mut().expect("a new buffer is writable");
            buffer.set_pts(gst::ClockTime::ZERO);
            buffer.set_dts(gst::ClockTime::ZERO);
            buffer.set_duration(gst::ClockTime::from_mseconds(33));
        }
        appsrc.push_buffer(buffer).map_err(|e| err("pushing the keyframe", &e))?;
        appsrc.end_of_stream().map_err(|e| err("ending", &e))?;
        let sample = appsink
            .try_pull_sample(gst::ClockTime::from_nseconds(ENCODE_TIMEOUT.as_nanos() as u64))
            .ok_or_else(|| {
                let bus_error = pipeline.bus().and_then(|bus| {
                    bus.pop_filtered(&[gst::MessageType::Error]).map(|m| match m.view() {
                        gst::MessageView::Error(e) => e.error().to_string(),
                        _ => String::new(),
                    })
                });
                format!("no picture decoded{}", bus_error.map(|e| format!(" ({e})")).unwrap_or_default())
            })?;
        let buffer = sample.buffer().ok_or_else(|| "a sample without a buffer".to_owned())?;
        let map = buffer.map_readable().map_err(|e| err("mapping", &e))?;
        Ok(Bytes::copy_from_slice(map.as_slice()))
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::X264_720P_RECORD;

    fn posters(interval: Duration) -> (Arc<Posters>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(hawker_storage::LocalStore::new(dir.path()).unwrap());
        (Posters::new(store, "p".into(), interval, Handle::current(), permits()), dir)
    }

    #[tokio::test]
    async fn keyframes_before_a_configuration_are_not_kept() {
        let (posters, _dir) = posters(Duration::from_secs(10));
        let mut feed = posters.feed();
        feed.keyframe(&Bytes::from_static(&[0, 0, 0, 1, 0x65]));
        assert!(crate::lock(&posters.latest).is_none(), "nothing to decode it with");
        assert!(!feed.first_asked);
        feed.config(&Bytes::from_static(X264_720P_RECORD));
        // Flagged a keyframe, but a P slice: no picture of its own.
        feed.keyframe(&Bytes::from_static(&[0, 0, 0, 1, 0x41]));
        assert!(crate::lock(&posters.latest).is_none(), "not an IDR picture");
        assert!(!feed.first_asked);
        feed.keyframe(&Bytes::from_static(&[0, 0, 0, 1, 0x65]));
        assert!(crate::lock(&posters.latest).is_some());
        assert!(feed.first_asked);
    }

    /// Streams that end together each get their last poster: `close` waits for an encoder
    /// rather than skipping the poster while all are busy.
    #[tokio::test]
    async fn the_last_poster_waits_for_a_free_encoder() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(hawker_storage::LocalStore::new(dir.path()).unwrap());
        let permits = Arc::new(Semaphore::new(1));
        let posters = Posters::new(store, "p".into(), Duration::from_secs(10), Handle::current(), permits.clone());
        // Every encoder busy before the first keyframe comes.
        let busy = permits.clone().acquire_owned().await.unwrap();
        let mut feed = posters.feed();
        feed.config(&Bytes::from_static(X264_720P_RECORD));
        feed.keyframe(&Bytes::from_static(&[0, 0, 0, 1, 0x65]));
        let closing = tokio::spawn({
            let posters = posters.clone();
            async move { posters.close(true).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!closing.is_finished(), "the last poster was skipped, not waited for");
        drop(busy);
        tokio::time::timeout(Duration::from_secs(10), closing).await.expect("closed once an encoder is free").unwrap();
        // No permit is lost.
        assert_eq!(permits.available_permits(), 1);
    }

    #[tokio::test]
    async fn no_poster_without_a_keyframe_and_none_after_close() {
        let (posters, _dir) = posters(Duration::from_secs(10));
        assert_eq!(posters.poster().await, None);
        posters.close(true).await;
        assert_eq!(posters.poster().await, None);
    }
}
