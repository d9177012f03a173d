//! The one task per stream that writes objects, so that a segment (and its init) is always
//! stored before any playlist that names it, and playlists are written in order.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hawker_storage::{Appender, ObjectMeta, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::live::LiveState;
use crate::names::{self, JOURNAL_CHUNK};
use crate::playlist::{self, DateRange, Kind, LowLatency, Part, RenditionReport, Segment, Variant, View};
use crate::{PackagerConfig, PackagerError};

/// Playlists of the replay (journal, VOD) and the multivariant one: kept for good.
pub(crate) const PLAYLIST_META: ObjectMeta = ObjectMeta::new("application/vnd.apple.mpegurl", "no-cache");
const INIT_META: ObjectMeta = ObjectMeta::new("video/mp4", hawker_storage::IMMUTABLE);
const SEGMENT_META: ObjectMeta = ObjectMeta::new("video/iso.segment", hawker_storage::IMMUTABLE);

/// Codec facts read from the pipeline's caps when an init segment appears.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StreamInfo {
    pub codecs: String,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
}

/// Messages of the pipeline carry the index of their rendition: 0 is the source, then the
/// ladder's rungs in order.
pub(crate) enum Msg {
    Init {
        publish: u64,
        rendition: usize,
        bytes: Bytes,
        info: StreamInfo,
    },
    /// One muxer chunk: with LL-HLS an LL-HLS part (if `listed`); with `first && last` a
    /// whole segment. `first`: it starts a segment; `pdt` is then the segment's start.
    /// `last`: the segment is complete with it (it ends at the cut); otherwise a segment is
    /// complete when the next one starts or the publish ends. `duration_ns` counts into the
    /// segment's duration and is the part's. `listed`: it is a part (the audio after a
    /// publish's last video frame goes into the segment only); `independent`: the part
    /// starts with a keyframe (or holds only audio before the first).
    Part {
        publish: u64,
        rendition: usize,
        /// The chunk as the muxer's buffers, in order (no joined copy).
        pieces: Vec<Bytes>,
        duration_ns: u64,
        pdt: DateTime<Utc>,
        first: bool,
        last: bool,
        listed: bool,
        independent: bool,
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
    /// Answered once every message sent before it is applied.
    Settled {
        done: oneshot::Sender<()>,
    },
}

impl Msg {
    fn publish(&self) -> Option<u64> {
        match self {
            Msg::Init { publish, .. } | Msg::Part { publish, .. } | Msg::PublishEnded { publish } => Some(*publish),
            Msg::Finish { .. } | Msg::Marker { .. } | Msg::Settled { .. } => None,
        }
    }
}

/// The whole replay as a playlist: VOD + ENDLIST, or EVENT while it may still grow.
pub(crate) fn replay_playlist(segments: &[Segment], kind: Kind, min_target_secs: u64, markers: &[DateRange]) -> Bytes {
    Bytes::from(playlist::render_whole(segments, kind, min_target_secs, markers))
}

/// The segment being built from the muxer's chunks.
struct Open {
    segment: Segment,
    body: Body,
    duration_ns: u64,
}

/// Where an open segment's bytes go until it is complete.
enum Body {
    /// Held, then stored whole: a segment that is one chunk, or a store that cannot append.
    Held(Vec<Bytes>),
    /// Written to the store as its parts come; `failed` once an append fails (the segment is
    /// then lost, as a failed put would lose it).
    Appending { to: Arc<dyn Appender>, size: u64, failed: bool },
}

/// One rendition's playlists and objects, under `streams/{playback_id}/{name}/`. Every
/// rendition is cut at the same source keyframes, so segment N of each holds the same media.
struct Track {
    name: String,
    /// Every complete segment since go-live.
    segments: Vec<Segment>,
    open: Option<Open>,
    next_msn: u64,
    next_init: u32,
    /// The init the running publish's segments use; `None` until one is stored, and for a
    /// rendition the running publish does not produce.
    current_init: Option<u32>,
    /// The next stored segment starts a discontinuity (new publish, or a lost segment).
    pending_discontinuity: bool,
    /// Segments marked as a discontinuity, among `segments`.
    discontinuities: usize,
    /// TARGETDURATION over `segments` (never below the configured target).
    target_secs: u64,
    /// Leading segments whose journal chunks are stored complete.
    journaled: usize,
    info: Option<StreamInfo>,
    peak_bps: u64,
    total_bits: u128,
    total_ms: u128,
}

impl Track {
    fn new(name: String, segments: Vec<Segment>, next_msn: u64, min_target_secs: u64) -> Self {
        let next_init = segments.iter().map(|s| s.init + 1).max().unwrap_or(0);
        Self {
            discontinuities: segments.iter().filter(|s| s.discontinuity).count(),
            target_secs: playlist::target_secs(&segments, min_target_secs),
            // A chunk is rewritten whole, so the last one (maybe partial) is not counted.
            journaled: segments.len() / JOURNAL_CHUNK * JOURNAL_CHUNK,
            name,
            segments,
            open: None,
            next_msn,
            next_init,
            current_init: None,
            pending_discontinuity: false,
            info: None,
            peak_bps: 0,
            total_bits: 0,
            total_ms: 0,
        }
    }

    /// The newest complete segment and the newest part (in the open segment, or the last
    /// part of the newest complete one; `None` without LL-HLS), as the live playlist shows.
    fn last(&self, ll: bool) -> (Option<u64>, Option<(u64, usize)>) {
        let last_part = match (&self.open, self.segments.last()) {
            _ if !ll => None,
            (Some(open), _) if !open.segment.parts.is_empty() => Some((open.segment.msn, open.segment.parts.len() - 1)),
            (_, Some(last)) => Some((last.msn, last.parts.len().saturating_sub(1))),
            _ => None,
        };
        (self.segments.last().map(|s| s.msn), last_part)
    }

    /// Program date-time of the end of the newest media: the open segment's parts, or the
    /// newest segment.
    fn edge(&self) -> Option<DateTime<Utc>> {
        let newest = self.open.as_ref().map(|o| &o.segment).or(self.segments.last())?;
        Some(newest.pdt + chrono::Duration::milliseconds(newest.duration_ms as i64))
    }

    /// PDT of segment `msn`, open or complete.
    fn pdt_of(&self, msn: u64) -> Option<DateTime<Utc>> {
        let open = self.open.as_ref().map(|o| &o.segment);
        open.into_iter()
            .chain(self.segments.iter().rev().take_while(|s| s.msn >= msn))
            .find(|s| s.msn == msn)
            .map(|s| s.pdt)
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

    /// The multivariant entry, once codecs and a measured bit rate are known.
    fn variant(&self) -> Option<Variant> {
        let info = self.info.as_ref().filter(|_| self.total_ms > 0)?;
        Some(Variant {
            name: self.name.clone(),
            bandwidth: self.peak_bps,
            average_bandwidth: u64::try_from(self.total_bits * 1000 / self.total_ms).unwrap_or(0),
            codecs: info.codecs.clone(),
            resolution: info.resolution,
            frame_rate: info.frame_rate,
        })
    }
}

pub(crate) struct Writer {
    store: Arc<dyn Store>,
    playback_id: String,
    min_target_secs: u64,
    live_window: usize,
    /// PART-TARGET in ms; `None` without LL-HLS.
    part_target_ms: Option<u64>,
    /// PART-TARGET was set from the source's frame rate (`init`).
    part_target_fixed: bool,
    /// The source first, then the ladder's rungs.
    tracks: Vec<Track>,
    markers: Vec<DateRange>,
    /// What viewers are served while live.
    live: LiveState,
    /// The publish whose messages are applied; later publishes wait in `held`.
    active: Option<u64>,
    last_ended: Option<u64>,
    held: VecDeque<Msg>,
    written_variants: Vec<Variant>,
    /// Notified as each output of the source rendition arrives: a publisher's connection waits
    /// for it once it has given the media of that output (`NextOutput::Making`). From this
    /// task, it runs the connection on this worker, next, without waking another.
    source_output: Arc<tokio::sync::Notify>,
}

impl Writer {
    /// `renditions` are (name, segments) of each rendition, the source first; the segments and
    /// `markers` are those of a resumed stream (empty for a new one).
    pub fn new(
        store: Arc<dyn Store>,
        playback_id: String,
        config: &PackagerConfig,
        renditions: Vec<(String, Vec<Segment>)>,
        markers: Vec<DateRange>,
        live: LiveState,
        source_output: Arc<tokio::sync::Notify>,
    ) -> Self {
        // Media sequence numbers follow the source, so that segment N is the same media in
        // every rendition; a rung whose stored segments do not end where the source's do (the
        // ladder changed since) starts afresh rather than leave a gap in its numbering.
        let next_msn = |segments: &[Segment]| segments.last().map_or(0, |s| s.msn + 1);
        let source_next = renditions.first().map_or(0, |(_, segments)| next_msn(segments));
        let tracks = renditions
            .into_iter()
            .map(|(name, mut segments)| {
                if next_msn(&segments) != source_next && !segments.is_empty() {
                    tracing::warn!(%playback_id, rendition = %name, "stored rendition out of step with the source; restarting it");
                    segments.clear();
                }
                Track::new(name, segments, source_next, config.min_target_secs())
            })
            .collect();
        Self {
            store,
            playback_id,
            min_target_secs: config.min_target_secs(),
            live_window: config.live_window,
            part_target_ms: config.part_target_ms(),
            part_target_fixed: false,
            tracks,
            markers,
            live,
            active: None,
            last_ended: None,
            held: VecDeque::new(),
            written_variants: Vec::new(),
            source_output,
        }
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            if let Msg::Part { rendition: 0, .. } = msg {
                self.source_output.notify_one();
            }
            if let Msg::Finish { save, done } = msg {
                let result = self.finish(save).await;
                self.live.end();
                let _ = done.send(result);
                // Dropping the receiver makes any straggler's send fail: nothing is written later.
                return;
            }
            if let Msg::Marker { marker, done } = msg {
                self.marker(marker).await;
                let _ = done.send(());
                continue;
            }
            if let Msg::Settled { done } = msg {
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
            for track in &mut self.tracks {
                track.current_init = None;
                track.pending_discontinuity = !track.segments.is_empty();
            }
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
            Msg::Init { rendition, bytes, info, .. } => self.init(rendition, bytes, info).await,
            Msg::Part { rendition, pieces, duration_ns, pdt, first, last, listed, independent, .. } => {
                let part = listed.then_some(independent);
                self.part(rendition, pieces, duration_ns, pdt, (first, last), part).await
            }
            Msg::PublishEnded { .. } => {
                for r in 0..self.tracks.len() {
                    self.close_open(r).await;
                }
                self.active = None;
                self.last_ended = Some(publish);
                let held = std::mem::take(&mut self.held);
                for msg in held {
                    Box::pin(self.dispatch(msg)).await;
                }
            }
            Msg::Finish { .. } | Msg::Marker { .. } | Msg::Settled { .. } => {}
        }
    }

    fn key(&self, r: usize, name: &str) -> String {
        names::key(&self.playback_id, &self.tracks[r].name, name)
    }

    async fn init(&mut self, r: usize, bytes: Bytes, info: StreamInfo) {
        // PART-TARGET is the parts' length at the source's frame rate, fixed by the stream's
        // first source init (a playlist's PART-TARGET never changes).
        if r == 0
            && !self.part_target_fixed
            && let Some(setting) = self.part_target_ms
        {
            self.part_target_fixed = true;
            let target = playlist::part_target_ms(setting, info.frame_rate);
            self.part_target_ms = Some(target);
            self.live.progress_sender().send_modify(|p| p.part_target_ms = Some(target));
        }
        let Some(track) = self.tracks.get_mut(r) else { return };
        let n = track.next_init;
        track.next_init += 1;
        track.info = Some(info);
        let key = self.key(r, &names::init_uri(n));
        let stored = self.store.put(&key, bytes, INIT_META).await;
        let track = &mut self.tracks[r];
        match stored {
            Ok(()) => track.current_init = Some(n),
            Err(err) => {
                // Segments without their init are unplayable: skip them until the next init.
                tracing::error!(playback_id = %self.playback_id, rendition = %track.name, %err, "storing init failed");
                track.current_init = None;
            }
        }
    }

    async fn part(
        &mut self,
        r: usize,
        pieces: Vec<Bytes>,
        duration_ns: u64,
        pdt: DateTime<Utc>,
        (first, last): (bool, bool),
        // Some(independent) when the chunk is listed as a part.
        part: Option<bool>,
    ) {
        if r >= self.tracks.len() {
            return;
        }
        if first {
            self.close_open(r).await;
            // A rung's segment is the source's segment of the same number: the same PDT, not
            // one a nanosecond-level sum of its own frame durations rounds differently.
            let msn = self.tracks[r].next_msn;
            let pdt = match r {
                0 => pdt,
                _ => self.tracks[0].pdt_of(msn).unwrap_or(pdt),
            };
            let track = &mut self.tracks[r];
            let Some(init) = track.current_init else {
                track.pending_discontinuity = true;
                return;
            };
            // Keep PDT monotonic across publishes and clock steps.
            let pdt = match track.segments.last() {
                Some(prev) => {
                    let prev_end = prev.pdt + chrono::Duration::milliseconds(prev.duration_ms as i64);
                    pdt.max(prev_end)
                }
                None => pdt,
            };
            let segment = Segment {
                msn: track.next_msn,
                init,
                duration_ms: 0,
                pdt,
                discontinuity: std::mem::take(&mut track.pending_discontinuity),
                parts: Vec::new(),
            };
            // A segment of several parts is written as they come, so that it is not held in
            // memory whole; one that is complete at once is simply stored.
            let body = match last {
                true => Body::Held(Vec::new()),
                false => self.append_to(r, segment.msn).await,
            };
            self.tracks[r].open = Some(Open { segment, body, duration_ns: 0 });
        }
        // A part whose segment start was lost (no init) is dropped with its segment.
        let Some(open) = &mut self.tracks[r].open else {
            if !first && self.tracks[r].current_init.is_some() {
                tracing::warn!(playback_id = %self.playback_id, rendition = r, "a chunk after its segment ended dropped");
            }
            return;
        };
        // Written before it is announced, so that it can be read back once listed.
        let written = match &mut open.body {
            Body::Held(held) => {
                held.extend(pieces.iter().cloned());
                None
            }
            Body::Appending { to, size, failed } => {
                if !*failed {
                    *size += pieces.iter().map(|p| p.len() as u64).sum::<u64>();
                    if let Err(err) = to.append(pieces.clone()).await {
                        tracing::error!(playback_id = %self.playback_id, msn = open.segment.msn, %err, "writing a segment failed");
                        *failed = true;
                    }
                }
                (!*failed).then(|| to.clone())
            }
        };
        let msn = open.segment.msn;
        if let (Some(part_target), Some(independent)) = (self.part_target_ms, part) {
            self.live.add_part(r, msn, pieces, written);
            let duration_ms = (duration_ns + 500_000) / 1_000_000;
            if duration_ms > part_target {
                tracing::debug!(playback_id = %self.playback_id, duration_ms, part_target, "part longer than its target");
            }
            let Some(open) = &mut self.tracks[r].open else { return };
            open.segment.parts.push(Part { duration_ms, independent });
        }
        let Some(open) = &mut self.tracks[r].open else { return };
        open.duration_ns += duration_ns;
        open.segment.duration_ms = (open.duration_ns + 500_000) / 1_000_000;
        if last {
            self.close_open(r).await;
        } else if self.part_target_ms.is_some() {
            // Without LL-HLS the playlists list whole segments only: a chunk changes nothing.
            self.write_live(r).await;
            self.report_progress();
        }
    }

    /// Starts writing segment `msn` of rendition `r` as its parts come, where the store can.
    async fn append_to(&self, r: usize, msn: u64) -> Body {
        match self.store.append_to(&self.key(r, &names::segment_uri(msn)), SEGMENT_META).await {
            Ok(Some(to)) => Body::Appending { to, size: 0, failed: false },
            Ok(None) => Body::Held(Vec::new()),
            Err(err) => {
                tracing::warn!(playback_id = %self.playback_id, msn, %err, "cannot write a segment as it comes; holding it");
                Body::Held(Vec::new())
            }
        }
    }

    /// Stores the open segment (all its parts as one object) and lists it.
    async fn close_open(&mut self, r: usize) {
        let Some(open) = self.tracks[r].open.take() else { return };
        let Open { segment, body, .. } = open;
        let msn = segment.msn;
        let key = self.key(r, &names::segment_uri(msn));
        let (size, stored) = match body {
            // Its parts one after the other: no joined copy of the segment in memory.
            Body::Held(pieces) => {
                let size = pieces.iter().map(|b| b.len() as u64).sum();
                (size, self.store.put_pieces(&key, pieces, SEGMENT_META).await)
            }
            Body::Appending { failed: true, size, .. } => {
                (size, Err(StoreError::Io(std::io::Error::other("a part could not be written"))))
            }
            Body::Appending { to, size, failed: false } => (size, to.finish().await),
        };
        if let Err(err) = stored {
            // The number is reused by the next segment; players see a gap, so mark it.
            tracing::error!(playback_id = %self.playback_id, msn, %err, "storing segment failed");
            self.live.close_segment(r, None);
            self.tracks[r].pending_discontinuity = true;
            self.write_live(r).await;
            return;
        }
        self.live.close_segment(r, Some(key));
        let track = &mut self.tracks[r];
        track.next_msn += 1;
        let duration_ms = segment.duration_ms;
        track.discontinuities += usize::from(segment.discontinuity);
        track.target_secs = track.target_secs.max(duration_ms.div_ceil(1000));
        track.segments.push(segment);
        // Parts are listed for the newest segments only: a segment leaving the live window
        // keeps its line in the replay, not its parts.
        if let Some(old) = track.segments.len().checked_sub(self.live_window.max(1) + 1) {
            track.segments[old].parts = Vec::new();
        }
        track.count_bandwidth(size, duration_ms);
        self.write_live(r).await;
        self.write_journal(r).await;
        self.update_multivariant().await;
        self.report_progress();
    }

    /// TARGETDURATION of every rendition: the longest segment of any, so that all media
    /// playlists carry the same SERVER-CONTROL (RFC 8216bis §6.2.4). Never shrinks.
    fn target_secs(&self) -> u64 {
        self.tracks.iter().map(|t| t.target_secs).max().unwrap_or(self.min_target_secs).max(1)
    }

    /// The other renditions' live edges, for rendition `r`'s live playlist.
    fn reports(&self, r: usize) -> Vec<RenditionReport> {
        let ll = self.part_target_ms.is_some();
        let others = self.tracks.iter().enumerate().filter(|(j, _)| *j != r);
        others
            .filter_map(|(_, t)| {
                let report = |last_msn, last_part| RenditionReport { rendition: t.name.clone(), last_msn, last_part };
                match t.last(ll) {
                    (_, Some((msn, part))) => Some(report(msn, Some(part))),
                    (Some(msn), None) => Some(report(msn, None)),
                    (None, None) => None,
                }
            })
            .collect()
    }

    /// Rendition `r`'s live playlist (`skip`: its delta update) and how many segments the
    /// delta left out: only the window's segments are looked at, so the cost does not grow
    /// with the stream's length.
    fn render_live(&self, r: usize, skip: bool, reports: &[RenditionReport]) -> (String, usize) {
        let track = &self.tracks[r];
        let window = &track.segments[track.segments.len().saturating_sub(self.live_window.max(1))..];
        let in_window = window.iter().filter(|s| s.discontinuity).count();
        playlist::render_counting_skipped(&View {
            segments: window,
            discontinuities_before: track.discontinuities - in_window,
            open: track.open.as_ref().map(|o| &o.segment),
            kind: Kind::Live { window: self.live_window, ended: false },
            min_target_secs: self.target_secs(),
            low_latency: self.part_target_ms.map(|part_target_ms| LowLatency { part_target_ms, skip }),
            markers: &self.markers,
            reports,
        })
    }

    /// Rendition `r`'s live playlist (and with LL-HLS its delta update), still growing, into
    /// the memory viewers are served from.
    async fn write_live(&self, r: usize) {
        let track = &self.tracks[r];
        if track.segments.is_empty() && track.open.is_none() {
            return;
        }
        let reports = self.reports(r);
        let (live, delta) = match self.part_target_ms {
            Some(_) => {
                let (delta, skipped) = self.render_live(r, true, &reports);
                let delta = Bytes::from(delta);
                // A window too short to skip from (the default one): the delta update is the
                // playlist itself, rendered once for every part instead of twice.
                let live = match skipped {
                    0 => delta.clone(),
                    _ => Bytes::from(self.render_live(r, false, &reports).0),
                };
                (live, Some(delta))
            }
            None => (Bytes::from(self.render_live(r, false, &reports).0), None),
        };
        self.live.set_playlists(r, live, delta);
        if r == 0
            && let Some(edge) = track.edge()
        {
            self.live.set_live_edge(edge);
        }
    }

    /// Stores the replay so far: the journal chunk of the newest segment (and any earlier one
    /// not yet complete in storage), each a small EVENT playlist of `JOURNAL_CHUNK` segments.
    async fn write_journal(&mut self, r: usize) {
        let track = &self.tracks[r];
        let Some(last) = track.segments.len().checked_sub(1) else { return };
        let (first_chunk, last_chunk) = (track.journaled / JOURNAL_CHUNK, last / JOURNAL_CHUNK);
        let mut stored = true;
        for chunk in first_chunk..=last_chunk {
            let segments =
                &track.segments[chunk * JOURNAL_CHUNK..track.segments.len().min((chunk + 1) * JOURNAL_CHUNK)];
            let text = replay_playlist(segments, Kind::Event, self.min_target_secs, &self.markers);
            let key = names::journal_key(&self.playback_id, &track.name, chunk);
            stored &= self.put_playlist(&key, text, PLAYLIST_META).await;
        }
        if stored {
            self.tracks[r].journaled = last_chunk * JOURNAL_CHUNK;
        }
    }

    /// What every rendition of the running publish shows (the least advanced one decides):
    /// a blocking reload of any rendition's playlist that waits for it finds what it asked for.
    fn report_progress(&self) {
        let ll = self.part_target_ms.is_some();
        let running: Vec<_> = self.tracks.iter().filter(|t| t.current_init.is_some()).map(|t| t.last(ll)).collect();
        let (last_segment, last_part) = match running.as_slice() {
            [] => self.tracks[0].last(ll),
            // `None` orders first: a rendition without media yet holds the others back.
            _ => (running.iter().map(|l| l.0).min().flatten(), running.iter().map(|l| l.1).min().flatten()),
        };
        let target_duration_secs = self.target_secs();
        self.live.progress_sender().send_modify(|p| {
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
        for r in 0..self.tracks.len() {
            self.write_live(r).await;
            self.write_journal(r).await;
        }
    }

    /// Writes `index.m3u8` once every rendition of the running publish has a segment, then
    /// again when a rendition's codecs change or its peak bit rate grows past what it
    /// advertises by more than 10 %.
    async fn update_multivariant(&mut self) {
        if self.tracks.iter().any(|t| t.current_init.is_some() && t.total_ms == 0) {
            return;
        }
        let variants: Vec<Variant> = self.tracks.iter().filter_map(Track::variant).collect();
        let stale = variants.len() != self.written_variants.len()
            || variants.iter().zip(&self.written_variants).any(|(v, w)| {
                w.name != v.name
                    || w.codecs != v.codecs
                    || w.resolution != v.resolution
                    || w.frame_rate != v.frame_rate
                    || v.bandwidth > w.bandwidth + w.bandwidth / 10
            });
        if variants.is_empty() || !stale {
            return;
        }
        let key = names::multivariant_key(&self.playback_id);
        let text = Bytes::from(playlist::render_multivariant(&variants));
        if self.put_playlist(&key, text, PLAYLIST_META).await {
            self.written_variants = variants;
        }
    }

    async fn put_playlist(&self, key: &str, text: Bytes, meta: ObjectMeta) -> bool {
        match self.store.put(key, text, meta).await {
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
        for r in 0..self.tracks.len() {
            self.close_open(r).await;
        }
        if !save {
            return Ok(());
        }
        let target_secs = self.target_secs();
        for track in &self.tracks {
            if track.segments.is_empty() {
                continue;
            }
            let vod = replay_playlist(&track.segments, Kind::Vod, target_secs, &self.markers);
            self.store.put(&names::replay_key(&self.playback_id, &track.name), vod, PLAYLIST_META).await?;
        }
        remove_live_only(self.store.as_ref(), &self.playback_id).await
    }
}

/// Once the replay is stored, deletes the objects only live viewers needed, in every
/// rendition: LL-HLS parts (the replay names whole segments) and the replay's journal.
pub(crate) async fn remove_live_only(store: &dyn Store, playback_id: &str) -> Result<(), PackagerError> {
    let prefix = names::stream_prefix(playback_id);
    let keys: Vec<String> = store
        .list(&prefix)
        .await?
        .into_iter()
        .filter(|key| key[prefix.len()..].split_once('/').is_some_and(|(_, name)| names::is_live_only(name)))
        .collect();
    let removed = store.delete_many(&keys).await?;
    tracing::debug!(playback_id, removed, "live-only objects deleted");
    Ok(())
}
