//! Posters: a JPEG of the latest keyframe, stored as `streams/{playback_id}/poster.jpg` every
//! `poster_interval` while a stream is live. The last one stays: the replay keeps its poster.
//!
//! Cheap by construction: the feed keeps nothing but the AVC decoder configuration; at most
//! one keyframe per interval is decoded, and every other frame
//! never reaches a decoder. A poster is a one-shot pipeline on a blocking thread:
//! `appsrc(video/x-h264,avc,codec_data) ! h264parse ! identity drop-buffer-flags=delta-unit !
//! avdec_h264 ! videoconvert ! videoscale ! video/x-raw,width=640 ! jpegenc ! appsink`,
//! fed one keyframe then EOS, so the decoder's reordering delay never holds a poster back and
//! no decoder state lives between posters. Only `MAX_CONCURRENT` encodes run at once
//! server-wide; a keyframe that finds none free is skipped (the next one is tried).

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

pub(crate) const ELEMENTS: [&str; 8] =
    ["appsrc", "h264parse", "identity", "avdec_h264", "videoconvert", "videoscale", "jpegenc", "appsink"];

/// Whether every element a poster needs is installed.
pub(crate) fn available() -> bool {
    ELEMENTS.iter().all(|f| gst::ElementFactory::find(f).is_some())
}

/// One keyframe per `interval` of wall time; the first keyframe is always due.
#[derive(Debug)]
pub(crate) struct RateLimit {
    interval: Duration,
    last: Option<Instant>,
}

impl RateLimit {
    pub fn new(interval: Duration) -> Self {
        Self { interval, last: None }
    }

    /// Whether a keyframe seen at `now` should become a poster. Does not record it: call
    /// `taken` once it is actually handed to an encoder.
    pub fn due(&self, now: Instant) -> bool {
        self.last.is_none_or(|last| now.saturating_duration_since(last) >= self.interval)
    }

    pub fn taken(&mut self, now: Instant) {
        self.last = Some(now);
    }
}

/// A stream's posters: shared by its publishes. `close` stops every later write.
pub(crate) struct Posters {
    store: Arc<dyn Store>,
    playback_id: String,
    interval: Duration,
    rt: Handle,
    permits: Arc<Semaphore>,
    /// `true` once closed; held across a poster's `put`, so `close` waits for one in flight.
    closed: Arc<tokio::sync::Mutex<bool>>,
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
        Arc::new(Self { store, playback_id, interval, rt, permits, closed: Arc::new(tokio::sync::Mutex::new(false)) })
    }

    /// The poster side of one publish's feed.
    pub fn feed(self: &Arc<Self>) -> PosterFeed {
        PosterFeed { posters: self.clone(), codec_data: None, limit: RateLimit::new(self.interval) }
    }

    /// No poster is written once this returns (one being stored is waited for).
    pub async fn close(&self) {
        *self.closed.lock().await = true;
    }
}

/// Watches one publish's video tags for poster keyframes.
pub(crate) struct PosterFeed {
    posters: Arc<Posters>,
    /// The AVCDecoderConfigurationRecord of the latest sequence header.
    codec_data: Option<Bytes>,
    limit: RateLimit,
}

impl PosterFeed {
    /// The publish's AVCDecoderConfigurationRecord.
    pub fn config(&mut self, record: &Bytes) {
        self.codec_data = Some(record.clone());
    }

    /// A keyframe's NAL units. Costs a clock read for all but one keyframe per interval.
    pub fn keyframe(&mut self, nalus: &Bytes) {
        let now = Instant::now();
        if !self.limit.due(now) {
            return;
        }
        let Some(codec_data) = self.codec_data.clone() else { return };
        let Ok(permit) = self.posters.permits.clone().try_acquire_owned() else {
            // Every encoder is busy: the next keyframe is tried.
            return;
        };
        self.limit.taken(now);
        let posters = self.posters.clone();
        let frame = nalus.clone();
        self.posters.rt.spawn(async move {
            let encoded = tokio::task::spawn_blocking(move || encode(&codec_data, frame)).await;
            drop(permit);
            let jpeg = match encoded {
                Ok(Ok(jpeg)) => jpeg,
                Ok(Err(e)) => {
                    tracing::warn!(playback_id = %posters.playback_id, "poster failed: {e}");
                    return;
                }
                Err(e) => {
                    tracing::warn!(playback_id = %posters.playback_id, "poster task failed: {e}");
                    return;
                }
            };
            let closed = posters.closed.lock().await;
            if *closed {
                return;
            }
            if let Err(e) = posters.store.put(&crate::names::poster_key(&posters.playback_id), jpeg, POSTER_META).await
            {
                tracing::warn!(playback_id = %posters.playback_id, "storing the poster failed: {e}");
            }
            drop(closed);
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
    let parse = make("h264parse")?;
    let keyframes_only = make("identity")?;
    // Never decode a delta frame, whatever reaches this pipeline.
    keyframes_only.set_property_from_str("drop-buffer-flags", "delta-unit");
    let decode = make("avdec_h264")?;
    decode.set_property("max-threads", 1i32);
    let convert = make("videoconvert")?;
    let scale = make("videoscale")?;
    let size = make("capsfilter")?;
    size.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("width", WIDTH)
            // Square pixels: videoscale then picks the height that keeps the picture's shape.
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    );
    let jpeg = make("jpegenc")?;
    jpeg.set_property("quality", QUALITY);
    let appsink = gst_app::AppSink::builder().sync(false).enable_last_sample(false).build();

    let pipeline = gst::Pipeline::new();
    let chain =
        [appsrc.upcast_ref(), &parse, &keyframes_only, &decode, &convert, &scale, &size, &jpeg, appsink.upcast_ref()];
    pipeline.add_many(chain).map_err(|e| err("adding elements", &e))?;
    gst::Element::link_many(chain).map_err(|e| err("linking", &e))?;

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

    #[test]
    fn first_keyframe_is_due_then_one_per_interval() {
        let start = Instant::now();
        let mut limit = RateLimit::new(Duration::from_secs(10));
        assert!(limit.due(start));
        limit.taken(start);
        assert!(!limit.due(start));
        assert!(!limit.due(start + Duration::from_secs(2)));
        assert!(!limit.due(start + Duration::from_millis(9_999)));
        assert!(limit.due(start + Duration::from_secs(10)));
        // Not taken (no free encoder): still due at the next keyframe.
        assert!(limit.due(start + Duration::from_secs(12)));
        limit.taken(start + Duration::from_secs(12));
        assert!(!limit.due(start + Duration::from_secs(20)));
        assert!(limit.due(start + Duration::from_secs(22)));
    }

    #[test]
    fn a_clock_going_back_is_not_due_and_does_not_panic() {
        let start = Instant::now() + Duration::from_secs(100);
        let mut limit = RateLimit::new(Duration::from_secs(10));
        limit.taken(start);
        assert!(!limit.due(start - Duration::from_secs(50)));
    }

    #[test]
    fn zero_interval_means_every_keyframe() {
        let start = Instant::now();
        let mut limit = RateLimit::new(Duration::ZERO);
        limit.taken(start);
        assert!(limit.due(start));
    }

    fn feed_with(interval: Duration) -> (PosterFeed, Arc<Semaphore>, tokio::runtime::Runtime) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(hawker_storage::LocalStore::new(dir.path()).unwrap());
        std::mem::forget(dir);
        let permits = permits();
        let posters = Posters::new(store, "p".into(), interval, rt.handle().clone(), permits.clone());
        (posters.feed(), permits, rt)
    }

    #[test]
    fn only_keyframes_after_a_configuration_take_an_encoder() {
        let (mut feed, permits, _rt) = feed_with(Duration::from_secs(3600));
        let key = Bytes::from_static(&[0, 0, 0, 1, 0x65]);
        // No configuration yet: nothing to decode with.
        feed.keyframe(&key);
        assert!(feed.limit.last.is_none());
        feed.config(&Bytes::from_static(&[1, 0x64, 0, 0x1f]));
        assert_eq!(&feed.codec_data.as_ref().unwrap()[..], &[1, 0x64, 0, 0x1f]);
        // Hold every permit: a due keyframe is skipped and stays due.
        let held = permits.clone().try_acquire_many_owned(MAX_CONCURRENT as u32).unwrap();
        feed.keyframe(&key);
        assert!(feed.limit.last.is_none());
        drop(held);
        feed.keyframe(&key);
        assert!(feed.limit.last.is_some());
        let taken = feed.limit.last;
        feed.keyframe(&key);
        assert_eq!(feed.limit.last, taken, "rate-limited");
    }
}
