//! The one task per stream that writes objects, so that a segment (and its init) is always
//! stored before any playlist that names it, and playlists are written in order.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hawker_storage::{ObjectMeta, Store};
use tokio::sync::{mpsc, oneshot, watch};

use crate::playlist::{self, DateRange, Kind, LowLatency, Part, Segment, Variant, View};
use crate::{PackagerConfig, PackagerError, Progress};

/// Playlists of the replay (event/VOD) and the multivariant one: kept for good.
pub(crate) const PLAYLIST_META: ObjectMeta = ObjectMeta::new("application/vnd.apple.mpegurl", "no-cache");
/// The sliding live playlist is needed only while on air: a full spool may drop it first.
const LIVE_PLAYLIST_META: ObjectMeta = PLAYLIST_META.live_only();
const INIT_META: ObjectMeta = ObjectMeta::new("video/mp4", hawker_storage::IMMUTABLE);
const SEGMENT_META: ObjectMeta = ObjectMeta::new("video/iso.segment", hawker_storage::IMMUTABLE);
/// LL-HLS parts are needed only while on air (the segment holds the same media).
const PART_META: ObjectMeta = SEGMENT_META.live_only();

/// Codec facts read from the pipeline's caps when an init segment appears.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StreamInfo {
    pub codecs: String,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
}

pub(crate) enum Msg {
    Init {
        publish: u64,
        bytes: Bytes,
        info: StreamInfo,
    },
    /// One muxer chunk: an LL-HLS part, or with `first && last` a whole segment.
    /// `first`: it starts a segment (at a keyframe); `pdt` is then the segment's start.
    /// `last`: the segment is complete with it (without LL-HLS every chunk is a segment; with
    /// it, a segment is complete when the next one starts or the publish ends).
    /// `duration_ns` counts into the segment's duration, `part_ns` is the part's own span.
    Part {
        publish: u64,
        bytes: Bytes,
        duration_ns: u64,
        part_ns: u64,
        pdt: DateTime<Utc>,
        first: bool,
        last: bool,
    },
    /// Insert or update (same id) a DATERANGE marker; `done` once the playlists are written.
    Marker {
        marker: DateRange,
        done: oneshot::Sender<()>,
    },
    /// The last message of a publish (drained, failed or stopped).
    PublishEnded {
        publish: u64,
    },
    Finish {
        save: bool,
        done: oneshot::Sender<Result<(), PackagerError>>,
    },
}

impl Msg {
    fn publish(&self) -> Option<u64> {
        match self {
            Msg::Init { publish, .. } | Msg::Part { publish, .. } | Msg::PublishEnded { publish } => Some(*publish),
            Msg::Finish { .. } | Msg::Marker { .. } => None,
        }
    }
}

pub(crate) fn replay_key(playback_id: &str) -> String {
    format!("streams/{playback_id}/v0/replay.m3u8")
}

pub(crate) fn live_key(playback_id: &str) -> String {
    format!("streams/{playback_id}/v0/live.m3u8")
}

/// The LL-HLS delta update of the live playlist (`_HLS_skip=YES`).
pub(crate) fn live_delta_key(playback_id: &str) -> String {
    format!("streams/{playback_id}/v0/live_delta.m3u8")
}

/// The replay playlist rewritten as VOD + ENDLIST.
pub(crate) fn vod_playlist(segments: &[Segment], min_target_secs: u64, markers: &[DateRange]) -> Bytes {
    Bytes::from(playlist::render(&View {
        segments,
        open: None,
        kind: Kind::Vod,
        min_target_secs,
        low_latency: None,
        markers,
    }))
}

/// The segment being built from LL-HLS parts.
struct Open {
    segment: Segment,
    bytes: Vec<Bytes>,
    duration_ns: u64,
}

pub(crate) struct Writer {
    store: Arc<dyn Store>,
    playback_id: String,
    min_target_secs: u64,
    live_window: usize,
    /// PART-TARGET in ms; `None` without LL-HLS.
    part_target_ms: Option<u64>,
    /// Every complete segment since go-live.
    segments: Vec<Segment>,
    open: Option<Open>,
    markers: Vec<DateRange>,
    progress: watch::Sender<Progress>,
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
    /// `segments` and `markers` are those of a resumed stream (empty for a new one).
    pub fn new(
        store: Arc<dyn Store>,
        playback_id: String,
        config: &PackagerConfig,
        segments: Vec<Segment>,
        markers: Vec<DateRange>,
        progress: watch::Sender<Progress>,
    ) -> Self {
        let next_msn = segments.last().map_or(0, |s| s.msn + 1);
        let next_init = segments.iter().map(|s| s.init + 1).max().unwrap_or(0);
        Self {
            store,
            playback_id,
            min_target_secs: config.min_target_secs(),
            live_window: config.live_window,
            part_target_ms: config.part_target_ms(),
            segments,
            open: None,
            markers,
            progress,
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
                self.progress.send_modify(|p| p.ended = true);
                let _ = done.send(result);
                // Dropping the receiver makes any straggler's send fail: nothing is written later.
                return;
            }
            if let Msg::Marker { marker, done } = msg {
                self.marker(marker).await;
                let _ = done.send(());
                continue;
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
            Msg::Part { bytes, duration_ns, part_ns, pdt, first, last, .. } => {
                self.part(bytes, (duration_ns, part_ns), pdt, first, last).await
            }
            Msg::PublishEnded { .. } => {
                self.close_open().await;
                self.active = None;
                self.last_ended = Some(publish);
                let held = std::mem::take(&mut self.held);
                for msg in held {
                    Box::pin(self.dispatch(msg)).await;
                }
            }
            Msg::Finish { .. } | Msg::Marker { .. } => {}
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

    async fn part(
        &mut self,
        bytes: Bytes,
        (duration_ns, part_ns): (u64, u64),
        pdt: DateTime<Utc>,
        first: bool,
        last: bool,
    ) {
        if first {
            self.close_open().await;
            let Some(init) = self.current_init else {
                self.pending_discontinuity = true;
                return;
            };
            // Keep PDT monotonic across publishes and clock steps.
            let pdt = match self.segments.last() {
                Some(prev) => {
                    let prev_end = prev.pdt + chrono::Duration::milliseconds(prev.duration_ms as i64);
                    pdt.max(prev_end)
                }
                None => pdt,
            };
            self.open = Some(Open {
                segment: Segment {
                    msn: self.next_msn,
                    init,
                    duration_ms: 0,
                    pdt,
                    discontinuity: std::mem::take(&mut self.pending_discontinuity),
                    parts: Vec::new(),
                },
                bytes: Vec::new(),
                duration_ns: 0,
            });
        }
        // A part whose segment start was lost (no init) is dropped with its segment.
        let Some(open) = &mut self.open else { return };
        if let Some(part_target) = self.part_target_ms.filter(|_| !(first && last)) {
            let index = open.segment.parts.len();
            let key = format!("streams/{}/v0/{}", self.playback_id, playlist::part_uri(open.segment.msn, index));
            if let Err(err) = self.store.put(&key, bytes.clone(), PART_META).await {
                // The segment still carries this media; only LL-HLS clients miss the part.
                tracing::error!(playback_id = %self.playback_id, key, %err, "storing part failed");
            }
            let duration_ms = (part_ns + 500_000) / 1_000_000;
            if duration_ms > part_target {
                tracing::debug!(playback_id = %self.playback_id, duration_ms, part_target, "part longer than its target");
            }
            open.segment.parts.push(Part { duration_ms, independent: first });
        }
        open.bytes.push(bytes);
        open.duration_ns += duration_ns;
        open.segment.duration_ms = (open.duration_ns + 500_000) / 1_000_000;
        if last {
            self.close_open().await;
        } else {
            self.write_live().await;
            self.report_progress();
        }
    }

    /// Stores the open segment (all its parts as one object) and lists it.
    async fn close_open(&mut self) {
        let Some(open) = self.open.take() else { return };
        let Open { segment, bytes, .. } = open;
        let size = bytes.iter().map(|b| b.len() as u64).sum();
        let bytes = match bytes.len() {
            1 => bytes.into_iter().next().unwrap_or_default(),
            _ => Bytes::from(bytes.concat()),
        };
        let msn = segment.msn;
        let key = self.key(&playlist::segment_uri(msn));
        if let Err(err) = self.store.put(&key, bytes, SEGMENT_META).await {
            // The number is reused by the next segment; players see a gap, so mark it.
            tracing::error!(playback_id = %self.playback_id, msn, %err, "storing segment failed");
            self.pending_discontinuity = true;
            self.write_live().await;
            return;
        }
        self.next_msn += 1;
        let duration_ms = segment.duration_ms;
        self.segments.push(segment);
        self.count_bandwidth(size, duration_ms);
        self.write_live().await;
        self.write_replay().await;
        self.update_multivariant().await;
        self.report_progress();
    }

    fn view(&self, kind: Kind, skip: bool) -> View<'_> {
        View {
            segments: &self.segments,
            open: self.open.as_ref().map(|o| &o.segment),
            kind,
            min_target_secs: self.min_target_secs,
            low_latency: self.part_target_ms.map(|part_target_ms| LowLatency { part_target_ms, skip }),
            markers: &self.markers,
        }
    }

    /// The live playlist (and with LL-HLS its delta update), still growing.
    async fn write_live(&self) {
        if self.segments.is_empty() && self.open.is_none() {
            return;
        }
        let kind = Kind::Live { window: self.live_window, ended: false };
        if self.part_target_ms.is_some() {
            let delta = playlist::render(&self.view(kind, true));
            self.put_playlist(&live_delta_key(&self.playback_id), delta).await;
        }
        let live = playlist::render(&self.view(kind, false));
        self.put_playlist(&live_key(&self.playback_id), live).await;
    }

    async fn write_replay(&self) {
        if self.segments.is_empty() {
            return;
        }
        let replay = playlist::render(&self.view(Kind::Event, false));
        self.put_playlist(&replay_key(&self.playback_id), replay).await;
    }

    fn report_progress(&self) {
        let last_segment = self.segments.last().map(|s| s.msn);
        let last_part = match (&self.open, self.segments.last()) {
            _ if self.part_target_ms.is_none() => None,
            (Some(open), _) if !open.segment.parts.is_empty() => Some((open.segment.msn, open.segment.parts.len() - 1)),
            (_, Some(last)) => Some((last.msn, last.parts.len().saturating_sub(1))),
            _ => None,
        };
        let target_duration_secs = playlist::target_secs(&self.segments, self.min_target_secs);
        self.progress.send_modify(|p| {
            p.last_segment = last_segment;
            p.last_part = last_part;
            p.target_duration_secs = target_duration_secs;
        });
    }

    /// Inserts a marker, or updates the one with its id (e.g. closing it with an end).
    async fn marker(&mut self, marker: DateRange) {
        match self.markers.iter_mut().find(|m| m.id == marker.id) {
            Some(existing) => {
                existing.class = marker.class;
                existing.start = marker.start;
                if marker.end.is_some() {
                    existing.end = marker.end;
                }
                for (name, value) in marker.attributes {
                    match existing.attributes.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = value,
                        None => existing.attributes.push((name, value)),
                    }
                }
            }
            None => self.markers.push(marker),
        }
        self.write_live().await;
        self.write_replay().await;
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
        let live = key == live_key(&self.playback_id) || key == live_delta_key(&self.playback_id);
        let meta = if live { LIVE_PLAYLIST_META } else { PLAYLIST_META };
        match self.store.put(key, Bytes::from(text), meta).await {
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
        self.close_open().await;
        if !save || self.segments.is_empty() {
            return Ok(());
        }
        let live = playlist::render(&self.view(Kind::Live { window: self.live_window, ended: true }, false));
        self.store.put(&live_key(&self.playback_id), Bytes::from(live.clone()), LIVE_PLAYLIST_META).await?;
        if self.part_target_ms.is_some() {
            self.store.put(&live_delta_key(&self.playback_id), Bytes::from(live), LIVE_PLAYLIST_META).await?;
        }
        let vod = vod_playlist(&self.segments, self.min_target_secs, &self.markers);
        self.store.put(&replay_key(&self.playback_id), vod, PLAYLIST_META).await?;
        Ok(())
    }
}
