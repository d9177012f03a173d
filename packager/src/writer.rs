//! The one task per stream that writes objects, so that a segment (and its init) is always
//! stored before any playlist that names it, and playlists are written in order.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hawker_storage::{ObjectMeta, Store};
use tokio::sync::{mpsc, oneshot};

use crate::PackagerError;
use crate::playlist::{self, Kind, Segment, Variant};

pub(crate) const PLAYLIST_META: ObjectMeta = ObjectMeta {
    content_type: "application/vnd.apple.mpegurl",
    cache_control: "no-cache",
};
const INIT_META: ObjectMeta =
    ObjectMeta { content_type: "video/mp4", cache_control: "public, max-age=31536000, immutable" };
const SEGMENT_META: ObjectMeta = ObjectMeta {
    content_type: "video/iso.segment",
    cache_control: "public, max-age=31536000, immutable",
};

/// Codec facts read from the pipeline's caps when an init segment appears.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StreamInfo {
    pub codecs: String,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
}

pub(crate) enum Msg {
    Init { publish: u64, bytes: Bytes, info: StreamInfo },
    Segment { publish: u64, bytes: Bytes, duration_ns: u64, pdt: DateTime<Utc> },
    /// The last message of a publish (drained, failed or stopped).
    PublishEnded { publish: u64 },
    Finish { save: bool, done: oneshot::Sender<Result<(), PackagerError>> },
}

impl Msg {
    fn publish(&self) -> Option<u64> {
        match self {
            Msg::Init { publish, .. }
            | Msg::Segment { publish, .. }
            | Msg::PublishEnded { publish } => Some(*publish),
            Msg::Finish { .. } => None,
        }
    }
}

pub(crate) fn replay_key(playback_id: &str) -> String {
    format!("streams/{playback_id}/v0/replay.m3u8")
}

pub(crate) fn live_key(playback_id: &str) -> String {
    format!("streams/{playback_id}/v0/live.m3u8")
}

/// The replay playlist rewritten as VOD + ENDLIST.
pub(crate) fn vod_playlist(segments: &[Segment], min_target_secs: u64) -> Bytes {
    Bytes::from(playlist::render_media(segments, Kind::Vod, min_target_secs))
}

pub(crate) struct Writer {
    store: Arc<dyn Store>,
    playback_id: String,
    min_target_secs: u64,
    live_window: usize,
    /// Every segment since go-live.
    segments: Vec<Segment>,
    next_msn: u64,
    next_init: u32,
    /// The init the running publish's segments use; `None` until one is stored.
    current_init: Option<u32>,
    /// The next stored segment starts a discontinuity (new publish, or a lost segment).
    pending_discontinuity: bool,
    /// The publish whose messages are applied; later publishes wait in `held`.
    active: Option<u64>,
    last_ended: Option<u64>,
    held: VecDeque<Msg>,
    info: Option<StreamInfo>,
    peak_bps: u64,
    total_bits: u128,
    total_ms: u128,
    written_variant: Option<Variant>,
}

impl Writer {
    /// `segments` are those of a resumed stream (empty for a new one).
    pub fn new(
        store: Arc<dyn Store>,
        playback_id: String,
        min_target_secs: u64,
        live_window: usize,
        segments: Vec<Segment>,
    ) -> Self {
        let next_msn = segments.last().map_or(0, |s| s.msn + 1);
        let next_init = segments.iter().map(|s| s.init + 1).max().unwrap_or(0);
        Self {
            store,
            playback_id,
            min_target_secs,
            live_window,
            segments,
            next_msn,
            next_init,
            current_init: None,
            pending_discontinuity: false,
            active: None,
            last_ended: None,
            held: VecDeque::new(),
            info: None,
            peak_bps: 0,
            total_bits: 0,
            total_ms: 0,
            written_variant: None,
        }
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            if let Msg::Finish { save, done } = msg {
                let result = self.finish(save).await;
                let _ = done.send(result);
                // Dropping the receiver makes any straggler's send fail: nothing is written later.
                return;
            }
            self.dispatch(msg).await;
        }
    }

    /// Applies messages of one publish at a time, in start order, even if two overlap briefly.
    async fn dispatch(&mut self, msg: Msg) {
        let Some(publish) = msg.publish() else { return };
        if self.active.is_none() && self.last_ended.is_none_or(|l| publish > l) {
            self.active = Some(publish);
            self.current_init = None;
            self.pending_discontinuity = !self.segments.is_empty();
        }
        if self.active != Some(publish) {
            if self.last_ended.is_some_and(|l| publish <= l) {
                tracing::warn!(publish, "message of an ended publish dropped");
            } else {
                self.held.push_back(msg);
            }
            return;
        }
        match msg {
            Msg::Init { bytes, info, .. } => self.init(bytes, info).await,
            Msg::Segment { bytes, duration_ns, pdt, .. } => {
                self.segment(bytes, duration_ns, pdt).await
            }
            Msg::PublishEnded { .. } => {
                self.active = None;
                self.last_ended = Some(publish);
                let held = std::mem::take(&mut self.held);
                for msg in held {
                    Box::pin(self.dispatch(msg)).await;
                }
            }
            Msg::Finish { .. } => {}
        }
    }

    fn key(&self, name: &str) -> String {
        format!("streams/{}/v0/{name}", self.playback_id)
    }

    async fn init(&mut self, bytes: Bytes, info: StreamInfo) {
        let n = self.next_init;
        self.next_init += 1;
        match self.store.put(&self.key(&playlist::init_uri(n)), bytes, INIT_META).await {
            Ok(()) => self.current_init = Some(n),
            Err(err) => {
                // Segments without their init are unplayable: skip them until the next init.
                tracing::error!(playback_id = %self.playback_id, %err, "storing init failed");
                self.current_init = None;
            }
        }
        self.info = Some(info);
    }

    async fn segment(&mut self, bytes: Bytes, duration_ns: u64, pdt: DateTime<Utc>) {
        let Some(init) = self.current_init else {
            self.pending_discontinuity = true;
            return;
        };
        let size = bytes.len() as u64;
        let msn = self.next_msn;
        let key = self.key(&playlist::segment_uri(msn));
        if let Err(err) = self.store.put(&key, bytes, SEGMENT_META).await {
            // The number is reused by the next segment; players see a gap, so mark it.
            tracing::error!(playback_id = %self.playback_id, msn, %err, "storing segment failed");
            self.pending_discontinuity = true;
            return;
        }
        self.next_msn += 1;
        let duration_ms = (duration_ns + 500_000) / 1_000_000;
        // Keep PDT monotonic across publishes and clock steps.
        let pdt = match self.segments.last() {
            Some(prev) => {
                let prev_end = prev.pdt + chrono::Duration::milliseconds(prev.duration_ms as i64);
                pdt.max(prev_end)
            }
            None => pdt,
        };
        self.segments.push(Segment {
            msn,
            init,
            duration_ms,
            pdt,
            discontinuity: std::mem::take(&mut self.pending_discontinuity),
        });
        self.count_bandwidth(size, duration_ms);

        let live = playlist::render_media(
            &self.segments,
            Kind::Live { window: self.live_window, ended: false },
            self.min_target_secs,
        );
        self.put_playlist(&live_key(&self.playback_id), live).await;
        let replay = playlist::render_media(&self.segments, Kind::Event, self.min_target_secs);
        self.put_playlist(&replay_key(&self.playback_id), replay).await;
        self.update_multivariant().await;
    }

    fn count_bandwidth(&mut self, size: u64, duration_ms: u64) {
        if duration_ms == 0 {
            return;
        }
        let bits = u128::from(size) * 8;
        // A very short (final) segment says little about the peak rate.
        if duration_ms >= 500 || self.peak_bps == 0 {
            let bps = u64::try_from(bits * 1000 / u128::from(duration_ms)).unwrap_or(u64::MAX);
            self.peak_bps = self.peak_bps.max(bps);
        }
        self.total_bits += bits;
        self.total_ms += u128::from(duration_ms);
    }

    /// Writes `index.m3u8` once the first segment exists, then again when the codecs change or
    /// the peak bit rate grows past what it advertises by more than 10 %.
    async fn update_multivariant(&mut self) {
        let Some(info) = &self.info else { return };
        let average = u64::try_from(self.total_bits * 1000 / self.total_ms.max(1)).unwrap_or(0);
        let variant = Variant {
            bandwidth: self.peak_bps,
            average_bandwidth: average,
            codecs: info.codecs.clone(),
            resolution: info.resolution,
            frame_rate: info.frame_rate,
        };
        let stale = match &self.written_variant {
            None => true,
            Some(w) => {
                w.codecs != variant.codecs
                    || w.resolution != variant.resolution
                    || w.frame_rate != variant.frame_rate
                    || variant.bandwidth > w.bandwidth + w.bandwidth / 10
            }
        };
        if !stale {
            return;
        }
        let key = format!("streams/{}/index.m3u8", self.playback_id);
        if self.put_playlist(&key, playlist::render_multivariant(&variant)).await {
            self.written_variant = Some(variant);
        }
    }

    async fn put_playlist(&self, key: &str, text: String) -> bool {
        match self.store.put(key, Bytes::from(text), PLAYLIST_META).await {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(playback_id = %self.playback_id, key, %err, "storing playlist failed");
                false
            }
        }
    }

    async fn finish(&mut self, save: bool) -> Result<(), PackagerError> {
        if !self.held.is_empty() {
            tracing::warn!(playback_id = %self.playback_id, "finish with media of an unfinished publish");
        }
        if !save || self.segments.is_empty() {
            return Ok(());
        }
        let live = playlist::render_media(
            &self.segments,
            Kind::Live { window: self.live_window, ended: true },
            self.min_target_secs,
        );
        self.store.put(&live_key(&self.playback_id), Bytes::from(live), PLAYLIST_META).await?;
        let vod = vod_playlist(&self.segments, self.min_target_secs);
        self.store.put(&replay_key(&self.playback_id), vod, PLAYLIST_META).await?;
        Ok(())
    }
}
