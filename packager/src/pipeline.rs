//! One GStreamer pipeline per publish, fed typed frames straight into the muxer:
//! `[video pad] ! isofmp4mux ! [output pad]` and `[audio pad] ! (same muxer)`, the segmenter at
//! the output pad.
//!
//! The pads are ours: standalone source pads with caps built from the publisher's AVC and AAC
//! configuration records, pushed from the caller's thread (the ingest connection's task). A
//! buffer crosses one thread, into the muxer's aggregator thread, which muxes and pushes each
//! chunk into our standalone sink pad, where the segmenter runs (no sink element). No demuxer
//! and no parser: the frames arrive parsed, with their decode time, composition offset and
//! keyframe flag, and their timestamps go into the muxer unchanged (after one offset for the
//! whole publish), so the output's PTS and DTS are the source's. (The source's muxer is shown
//! each frame's decode time as its presentation time, so that it can end an LL-HLS part at
//! any frame; the segmenter writes the composition offsets back: `decode_order_times`.)
//!
//! With an ABR ladder, the video also goes (through a `tee`) to
//! `queue ! avdec_h264 ! videoconvert ! tee ! [queue ! videoscale ! x264enc]` per rung (the
//! source is decoded once) and the audio to every rung's muxer. The source's keyframes decide
//! every cut: where the source's segment ends, each encoder is told to make a keyframe and
//! each muxer to cut (see `Input::split_if_due`), so segment N of every rendition starts at
//! the same frame.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use gst::prelude::*;
use tokio::sync::mpsc;

use crate::bmff;
use crate::codec::{self, aac_codec, avc_codec};
use crate::writer::{Msg, StreamInfo};
use crate::{PackagerError, Rendition};

/// Elements a publish needs; checked at start-up so a publish cannot fail on a missing plugin.
pub(crate) const ELEMENTS: [&str; 1] = ["isofmp4mux"];

/// Elements an ABR ladder needs on top; without them, streams are passthrough only.
pub(crate) const LADDER_ELEMENTS: [&str; 7] =
    ["tee", "queue", "avdec_h264", "videoconvert", "videoscale", "capsfilter", "x264enc"];

/// Media each muxer sink pad may hold before a push into it blocks. Non-live, the muxer takes
/// a buffer only once every pad has one, so a pad must hold what the publisher interleaves
/// ahead on one track. A push must never block the ingest's task: the feed refuses media once
/// the muxer's output lags `MAX_LAG` behind what was pushed, well before a pad is this full.
const MUX_QUEUE: gst::ClockTime = gst::ClockTime::from_seconds(30);
/// How far the muxer's output may trail the pushed media before the publish is ended ("the
/// packager fell behind"). The muxer holds back media until it has a frame past its chunk's end
/// on every track; this leaves room for a publisher that sends one track well ahead.
pub(crate) const MAX_LAG: Duration = Duration::from_secs(20);

/// The muxer's chunk duration without LL-HLS: no part is announced, but a segment still
/// leaves the muxer (and memory) in pieces as it is made, instead of whole at its end (a 2 s
/// fragment of a 3 Mb/s stream is 750 KB held per stream).
const CHUNK_WITHOUT_PARTS: Duration = Duration::from_millis(500);

/// x264's own keyframe interval, in frames: the cuts force keyframes where the source has
/// them, so x264 adds one only in a source GOP longer than this.
const LADDER_KEYINT_MAX: u32 = 600;

/// Video track timescale: 90 kHz, the usual one, which also represents RTMP's whole
/// milliseconds exactly.
const VIDEO_TIMESCALE: u32 = 90_000;

/// What the pipeline tells the publish's monitor task.
pub(crate) enum BusEvent {
    Eos,
    Error(String),
}

/// The source composition offset (ns) of each video frame pushed and not yet muxed, in decode
/// order: how the source rendition's segmenter restores the source's presentation times.
type SourceOffsets = Arc<Mutex<VecDeque<i64>>>;

pub(crate) struct Built {
    pub pipeline: gst::Pipeline,
    /// Each muxer's output pad. A pad's link does not keep its peer alive, so these must live
    /// until the pipeline is stopped.
    pub outputs: Vec<gst::Pad>,
    pub input: Input,
    pub bus: mpsc::UnboundedReceiver<BusEvent>,
}

/// The publisher's configuration records, as of the first keyframe.
pub(crate) struct Configs {
    /// AVCDecoderConfigurationRecord.
    pub video: Bytes,
    /// AudioSpecificConfig; `None`: the publish has no audio track.
    pub audio: Option<Bytes>,
}

fn gst_err(what: &str, e: impl std::fmt::Display) -> PackagerError {
    PackagerError::Gst(format!("{what}: {e}"))
}

fn make(factory: &str) -> Result<gst::Element, PackagerError> {
    gst::ElementFactory::make(factory).build().map_err(|e| PackagerError::Gst(format!("creating {factory}: {e}")))
}

fn static_pad(element: &gst::Element, name: &str) -> Result<gst::Pad, PackagerError> {
    element.static_pad(name).ok_or_else(|| PackagerError::Gst(format!("{} has no {name} pad", element.name())))
}

fn mux_pad(mux: &gst::Element, timescale: u32) -> Result<gst::Pad, PackagerError> {
    let pad =
        mux.request_pad_simple("sink_%u").ok_or_else(|| PackagerError::Gst("isofmp4mux refused a sink pad".into()))?;
    pad.set_property("trak-timescale", timescale);
    Ok(pad)
}

/// Gives the source's muxer each video frame's decode time, plus the publish's first
/// keyframe's composition offset (`shift`, set by the input before that frame), as its
/// presentation time. The muxer ends a chunk before the first frame, in decode order,
/// presented at or after the chunk's end: with B-frames only a reference frame can be that
/// one, so its chunks (and our LL-HLS parts) would be whole reordered groups (133 ms with
/// x264's three B-frames at 30 fps) and could not be kept between 85 % and 100 % of
/// PART-TARGET as RFC 8216bis requires. On decode times it cuts at any frame; the shift puts
/// the keyframes at their presentation times, where the ladder's rungs have them, so every
/// muxer cuts the audio at the same time. The decode times stay the source's, and the
/// segmenter writes the source's composition offsets back
/// (`bmff::restore_composition_offsets`); the ladder's decoders, on the other branch, keep the
/// presentation times.
fn decode_order_times(pad: &gst::Pad, shift: Arc<AtomicI64>) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data
            && let Some(dts) = buffer.dts()
        {
            let at = gst::ClockTime::from_nseconds(dts.nseconds().saturating_add_signed(shift.load(Ordering::Acquire)));
            if buffer.pts() != Some(at) {
                buffer.make_mut().set_pts(at);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Ends each frame of a ladder rung on the whole millisecond at or before its end, so never
/// past the next frame's start. The source's times are whole milliseconds (FLV), while the
/// encoders give each frame 1/fps: a frame at 12.034 s lasting 33.333 ms ends a third of a
/// millisecond after the next one starts. A fragment ending there would start the next
/// fragment's chunks that much late, so their first chunk would take in the frame on its end
/// (233 ms parts for 200 ms). (A frame ending early is harmless: the muxer ends it where the
/// next begins.)
fn frames_end_where_the_next_begins(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::BUFFER, |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data
            && let (Some(pts), Some(duration)) = (buffer.pts(), buffer.duration())
        {
            let end = (pts.nseconds() + duration.nseconds()) / FLV_TICK_NS * FLV_TICK_NS;
            if end > pts.nseconds() && end != pts.nseconds() + duration.nseconds() {
                buffer.make_mut().set_duration(gst::ClockTime::from_nseconds(end - pts.nseconds()));
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// `video/x-h264` (AVC, whole access units) from the decoder configuration record.
pub(crate) fn video_caps(record: &Bytes) -> Result<gst::Caps, PackagerError> {
    let info = codec::avc_info(record)
        .ok_or_else(|| PackagerError::Media("the AVC decoder configuration has no readable SPS".into()))?;
    let dimension = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let mut caps = gst::Caps::builder("video/x-h264")
        .field("stream-format", "avc")
        .field("alignment", "au")
        .field("codec_data", gst::Buffer::from_slice(record.clone()))
        .field("width", dimension(info.width))
        .field("height", dimension(info.height))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    if let Some((n, d)) = info.frame_rate
        && let (Ok(n), Ok(d)) = (i32::try_from(n), i32::try_from(d))
    {
        caps = caps.field("framerate", gst::Fraction::new(n, d));
    }
    Ok(caps.build())
}

/// `audio/mpeg` (raw AAC) from the AudioSpecificConfig, and its sample rate.
pub(crate) fn audio_caps(asc: &Bytes) -> Result<(gst::Caps, u32), PackagerError> {
    let info =
        codec::aac_info(asc).ok_or_else(|| PackagerError::Media("the AAC AudioSpecificConfig is unreadable".into()))?;
    let caps = gst::Caps::builder("audio/mpeg")
        .field("mpegversion", 4i32)
        .field("stream-format", "raw")
        .field("framed", true)
        .field("codec_data", gst::Buffer::from_slice(asc.clone()))
        .field("rate", i32::try_from(info.rate).unwrap_or(i32::MAX))
        .field("channels", i32::try_from(info.channels).unwrap_or(2))
        .build();
    Ok((caps, info.rate))
}

/// An audio timescale that represents both the sample rate and whole milliseconds exactly
/// (RTMP timestamps are milliseconds; 44.1 kHz is not a multiple of 1 kHz).
fn audio_timescale(rate: u32) -> u32 {
    let rate = u64::from(rate.max(1));
    u32::try_from(rate / codec::gcd(rate, 1000) * 1000).unwrap_or(VIDEO_TIMESCALE)
}

/// Builds and starts the pipeline of publish `publish`. Without an audio config there is no
/// audio branch: the muxer waits for data on every sink pad, so a pad that never gets audio
/// would stall it. `(fragment, part)`: segment target and LL-HLS part target. `ladder`: the
/// rungs transcoded next to the source (renditions 1, 2, …). `muxed_ns` is kept at the media
/// time the source rendition has output; `source_output` is what the writer notifies as each
/// output of the source rendition reaches it (`NextOutput::Making`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn start(
    publish: u64,
    configs: &Configs,
    (fragment, part): (Duration, Option<Duration>),
    ladder: &[Rendition],
    publish_wall: DateTime<Utc>,
    tx: mpsc::Sender<Msg>,
    muxed_ns: Arc<AtomicU64>,
    source_output: Arc<tokio::sync::Notify>,
) -> Result<Built, PackagerError> {
    let video_caps = video_caps(&configs.video)?;
    let audio = configs.audio.as_ref().map(audio_caps).transpose()?;
    let pipeline = gst::Pipeline::new();
    let fragment_ns = u64::try_from(fragment.as_nanos()).unwrap_or(u64::MAX);
    let source_offsets = SourceOffsets::default();
    // A chunk of the part target ends at the first frame at or after its target: on decode
    // times (`decode_order_times`), exactly there when the target is a whole number of frames
    // (200 ms: 6 frames at 30 fps, 5 at 25, 12 at 60). A chunk of less would break the
    // segments: the muxer ends a fragment only with a chunk whose target reaches the cut.
    let chunk = part.unwrap_or(CHUNK_WITHOUT_PARTS);
    let chunk_ns = u64::try_from(chunk.as_nanos()).unwrap_or(u64::MAX);
    let muxed_until = Arc::new(AtomicU64::new(0));
    let (cut_at, rung_cut_at) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let split_lead = Arc::new(AtomicU64::new(0));
    let video_shift = Arc::new(AtomicI64::new(0));
    let (bus_tx, bus) = mpsc::unbounded_channel();
    // The pipeline has no sink element (each muxer feeds a pad of ours), so no EOS message:
    // the publish is drained when every rendition's output pad has seen EOS.
    let draining = Arc::new(AtomicUsize::new(ladder.len() + 1));
    let (muxes, outputs): (Vec<_>, Vec<_>) = (0..=ladder.len())
        .map(|rendition| {
            let segmenter = Segmenter {
                publish,
                rendition,
                publish_wall,
                elapsed_ns: 0,
                cut_at: if rendition == 0 { cut_at.clone() } else { rung_cut_at.clone() },
                split_lead: split_lead.clone(),
                chunk_ns,
                track: None,
                video_in_fragment: false,
                tx: tx.clone(),
                muxed_ns: (rendition == 0).then(|| muxed_ns.clone()),
                // The rungs' encoders make their own frames (without B-frames).
                source_offsets: (rendition == 0).then(|| source_offsets.clone()),
                video_shift: video_shift.clone(),
                muxed_until: (rendition == 0).then(|| muxed_until.clone()),
                output_end: None,
            };
            let drained = Drained { remaining: draining.clone(), bus: bus_tx.clone() };
            muxer(&pipeline, fragment_ns, chunk_ns, segmenter, drained)
        })
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .unzip();

    // Video: the source's muxer (its first pad: track order video, audio), then the ladder.
    let source_video = mux_pad(&muxes[0], VIDEO_TIMESCALE)?;
    decode_order_times(&source_video, video_shift.clone());
    let mut video_sinks = vec![source_video];
    let encoders = match ladder.is_empty() {
        true => Vec::new(),
        false => {
            let (sink, encoders) = transcode(&pipeline, ladder, &muxes[1..])?;
            video_sinks.push(sink);
            encoders
        }
    };
    let video = source_pad("video");
    fan_out(&pipeline, &video, &video_sinks)?;
    let audio = match audio {
        Some((caps, rate)) => {
            let sinks = muxes.iter().map(|m| mux_pad(m, audio_timescale(rate))).collect::<Result<Vec<_>, _>>()?;
            let pad = source_pad("audio");
            fan_out(&pipeline, &pad, &sinks)?;
            Some((pad, caps, rate))
        }
        None => None,
    };

    let bus_handle = pipeline.bus().ok_or_else(|| PackagerError::Gst("pipeline has no bus".into()))?;
    // A sync handler, so no GLib main loop is needed; messages are dropped, not queued.
    bus_handle.set_sync_handler(move |_, msg| {
        match msg.view() {
            gst::MessageView::Error(err) => {
                let text = match err.debug() {
                    Some(debug) => format!("{} ({debug})", err.error()),
                    None => err.error().to_string(),
                };
                let _ = bus_tx.send(BusEvent::Error(text));
            }
            gst::MessageView::Warning(w) => tracing::warn!(warning = %w.error(), "GStreamer"),
            // Posted by each streaming thread as it starts, on that thread.
            gst::MessageView::StreamStatus(status) if status.get().0 == gst::StreamStatusType::Enter => {
                batch_scheduling()
            }
            _ => {}
        }
        gst::BusSyncReply::Drop
    });

    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        let _ = pipeline.set_state(gst::State::Null);
        return Err(PackagerError::Gst(format!("starting the pipeline: {e}")));
    }
    let group = gst::GroupId::next();
    let begin = |pad: &gst::Pad, track: &str, caps: &gst::Caps| {
        pad.set_active(true).map_err(|e| gst_err("activating a pad", e))?;
        pad.push_event(gst::event::StreamStart::builder(&format!("{publish}/{track}")).group_id(group).build());
        pad.push_event(gst::event::Caps::new(caps));
        pad.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new()));
        Ok::<_, PackagerError>(())
    };
    let started = begin(&video, "video", &video_caps).and_then(|()| match &audio {
        Some((pad, caps, _)) => begin(pad, "audio", caps),
        None => Ok(()),
    });
    if let Err(e) = started {
        let _ = pipeline.set_state(gst::State::Null);
        return Err(e);
    }
    let input = Input {
        video,
        video_config: configs.video.clone(),
        audio: audio.map(|(pad, _, rate)| (pad, 1024 * 1_000_000_000 / u64::from(rate.max(1)))),
        muxes: muxes.iter().map(|m| m.downgrade()).collect(),
        encoders: encoders.iter().map(|e| e.downgrade()).collect(),
        fragment_ns,
        fragment_start: None,
        source_offsets,
        batch: Batch { held: Vec::with_capacity(BATCH_MAX), muxed_until, chunk_ns, parts: part.is_some(), cut_at },
        rung_cut_at,
        split_lead,
        video_shift,
        shift: None,
        track_at: [0; 2],
        audio_pts: 0,
        leads: ArrivalLeads::new(),
        seen_until: 0,
        intervals: [VecDeque::with_capacity(RECENT_INTERVALS), VecDeque::with_capacity(RECENT_INTERVALS)],
        source_output,
    };
    Ok(Built { pipeline, outputs, input, bus })
}

/// Marks the calling thread SCHED_BATCH: woken, it does not preempt the thread that woke it.
/// The ingest wakes a muxer's thread for every frame it pushes; a muxer thread that preempts
/// it at once takes one frame at a time, two context switches each. Without preemption it
/// runs when a core is free and takes every frame pushed by then.
fn batch_scheduling() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sets the calling thread's (pid 0) policy from a valid parameter.
    let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if result != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "SCHED_BATCH refused");
    }
}

/// FLV timestamps are whole milliseconds.
const FLV_TICK_NS: u64 = 1_000_000;
/// Video frame intervals a frame's duration is guessed from (see `Input::video`).
const RECENT_INTERVALS: usize = 8;
/// FLV timestamps are whole milliseconds: a keyframe this close to the target counts as at it.
const SPLIT_TOLERANCE_NS: u64 = 5_000_000;
/// How far past the target a GOP may end before the muxer cuts on its own.
const MAX_GOP_OVERSHOOT_NS: u64 = 10_000_000_000;

/// Where one publish's frames enter its pipeline. Push from one thread at a time.
pub(crate) struct Input {
    video: gst::Pad,
    /// The configuration the video caps were built from.
    video_config: Bytes,
    /// The audio pad and the duration of one AAC frame (1024 samples), ns.
    audio: Option<(gst::Pad, u64)>,
    muxes: Vec<gst::glib::WeakRef<gst::Element>>,
    encoders: Vec<gst::glib::WeakRef<gst::Element>>,
    fragment_ns: u64,
    /// Where the keyframe that began the current fragment is on the source's muxer's timeline
    /// (`decode_order_times`).
    fragment_start: Option<u64>,
    source_offsets: SourceOffsets,
    /// Frames not yet pushed, in arrival order (see `Batch`).
    batch: Batch,
    /// Where the newest video and audio frames put their tracks (see `Input::video`; an
    /// audio frame's gap buffer puts the audio past its frame, `Input::audio`).
    track_at: [u64; 2],
    /// The newest audio frame's timestamp: the audio's steps are measured from it.
    audio_pts: u64,
    /// How early each track's frames arrive against those positions, and how far past an
    /// output's end the muxer needs them.
    leads: ArrivalLeads,
    /// The muxer's output end as of the last frame (`Input::observe_output`).
    seen_until: u64,
    /// Per track (video, audio), the time between consecutive frames where the muxer sees
    /// them (`track_at`), the newest `RECENT_INTERVALS`.
    intervals: [VecDeque<u64>; 2],
    /// PTS of the latest cut requested, shared with the ladder's segmenters (the source's
    /// cut, on its muxer's timeline, is `Batch::cut_at`).
    rung_cut_at: Arc<AtomicU64>,
    /// How long before each cut's keyframe the muxers are asked to split (`split_if_due`);
    /// shared with every segmenter.
    split_lead: Arc<AtomicU64>,
    /// The first keyframe's composition offset, which the source's muxer adds to each decode
    /// time (`decode_order_times`); `None` before that keyframe. Shared with the probe and the
    /// source's segmenter through `video_shift`.
    shift: Option<i64>,
    video_shift: Arc<AtomicI64>,
    /// Notified by the writer as each output of the source rendition reaches it.
    source_output: Arc<tokio::sync::Notify>,
}

/// What the muxer's next output waits for (see `Input::next_output`).
#[derive(Debug, Clone)]
pub enum NextOutput {
    /// The publisher's media that completes it should have arrived by then (an instant
    /// already past: read it as it comes).
    MediaBy(Instant),
    /// The media pushed completes it: the muxer is making it, and the writer notifies this
    /// once it has it.
    Making(Arc<tokio::sync::Notify>),
}

/// Frames held back and pushed into the muxers together. Each push wakes the muxer's thread,
/// and the muxer can output nothing until every track has a frame at or past the end of the
/// current chunk (LL-HLS part) or fragment. So frames are held until the first frame at or
/// past it on the track that gets there last (`Input::reaches_next_end`) and pushed in one go
/// with it; from there every frame goes straight through until the muxer has output the chunk
/// (exactly as if nothing were held: how much more it needs is not guessed), and the next
/// chunk's frames are held again. One wake-up per chunk instead of one per frame, and no part
/// comes out later. Keyframes go at once; at most `BATCH_MAX` frames wait.
struct Batch {
    held: Vec<(Track, gst::Buffer)>,
    /// Where the source rendition's muxer output ends so far (on its timeline, see
    /// `decode_order_times`; ns, 0 before its first output): written by its segmenter.
    muxed_until: Arc<AtomicU64>,
    /// The muxer's chunk duration.
    chunk_ns: u64,
    /// Chunks are LL-HLS parts, which players wait for; without LL-HLS only a segment's end
    /// (the cut) is waited for, and the chunks go out when they may.
    parts: bool,
    /// The latest cut requested (`split_if_due`), on the source's muxer's timeline: its
    /// fragment ends there. Shared with its segmenter, which ends a segment with the chunk
    /// that ends there.
    cut_at: Arc<AtomicU64>,
}

#[derive(Clone, Copy)]
enum Track {
    Video,
    Audio,
}

/// At most this many frames wait (about a third of a second at 30 fps with audio): bounds the
/// memory held and the delay before a chunk longer than that (LL-HLS off).
const BATCH_MAX: usize = 24;

/// How early each track's frames arrive against their positions (`Input::track_at`), in ns:
/// the least (arrival − position) of the current window and the one before. A frame read on a
/// tick counts from the read, later than it came; one read as it arrives, exactly: so the
/// least is the earliest the publisher has been sending, and follows a publisher whose lag
/// grows within two windows.
struct ArrivalLeads {
    /// Arrivals are measured from here.
    epoch: Instant,
    /// Per track (video, audio): (least of the current window, of the one before).
    least: [(Option<i64>, Option<i64>); 2],
    /// Per track, the least of how far past an output's end the track was when the output was
    /// seen (see `Input::observe_output`): how much media past its end the muxer takes before
    /// it outputs. Over the whole publish, not windows: an output seen late (read on a tick)
    /// counts more than the muxer needed, and a window of those would ratchet it up.
    overshoot: [Option<i64>; 2],
    /// Where the current window ends, ns after `epoch`.
    window_ends: i64,
}

const LEAD_WINDOW_NS: i64 = 2_000_000_000;
/// While a keyframe would end the segment, the publisher's socket is read at least this often
/// (the ingest's read interval before it followed the parts): the segment's last part, or
/// the segment without parts, is at most this late when its keyframe falls off the part grid.
/// A GOP as long as the segment target pays nothing for it; a longer one, these reads.
const KEYFRAME_WAIT: Duration = Duration::from_millis(40);
/// How much before the predicted arrival of an output's media the socket is read.
const EARLY_NS: i64 = 5_000_000;

/// Keeps `value` in `least` if it is less.
fn lower(least: &mut Option<i64>, value: i64) {
    *least = Some(least.map_or(value, |least| least.min(value)));
}

/// The least of the current window and the one before.
fn least_of((current, previous): (Option<i64>, Option<i64>)) -> Option<i64> {
    current.into_iter().chain(previous).min()
}

/// Where the muxer's next output that needs more media ends, the media pushed letting it
/// output up to `completes`: the chunk after the last one that media completes (that one is
/// the muxer's to output, and needs nothing more), or the fragment's end if sooner. Without
/// chunks, the fragment's end; `None` past it (the fragment waits for a keyframe, which comes
/// when it comes).
fn next_output_end(until: u64, completes: u64, chunk: Option<u64>, fragment_end: u64) -> Option<u64> {
    let chunk_end = chunk.map(|chunk| {
        let chunk = chunk.max(1);
        until.saturating_add((completes.saturating_sub(until) / chunk + 1).saturating_mul(chunk))
    });
    match (chunk_end, completes < fragment_end) {
        (Some(chunk_end), true) => Some(chunk_end.min(fragment_end)),
        (Some(chunk_end), false) => Some(chunk_end),
        (None, true) => Some(fragment_end),
        (None, false) => None,
    }
}

impl ArrivalLeads {
    fn new() -> Self {
        Self { epoch: Instant::now(), least: [(None, None); 2], overshoot: [None; 2], window_ends: LEAD_WINDOW_NS }
    }

    /// A frame of `track` at `at` (ns on the muxer's timeline) arrived now.
    fn record(&mut self, track: Track, at: u64) {
        let arrival = i64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(i64::MAX);
        self.record_at(track, at, arrival);
    }

    fn record_at(&mut self, track: Track, at: u64, arrival: i64) {
        if arrival >= self.window_ends {
            for least in &mut self.least {
                *least = (None, least.0.or(least.1));
            }
            self.window_ends = arrival.saturating_add(LEAD_WINDOW_NS);
        }
        let lead = arrival.saturating_sub(i64::try_from(at).unwrap_or(i64::MAX));
        lower(&mut self.least[track as usize].0, lead);
    }

    /// `track` was `ns` past the end of an output when the output was seen.
    fn record_overshoot(&mut self, track: Track, ns: i64) {
        lower(&mut self.overshoot[track as usize], ns);
    }

    /// When (ns after `epoch`) every track, now at `tracks` (video, audio), should have got as
    /// far past `end` as the muxer has needed to output (`i64::MIN` if every track is there);
    /// `None` while that or a track's lead is not known yet. `steps`: per track, the shortest
    /// and the longest recent time between its frames, if known: the frame that gets a track
    /// there may come after the point needed (a frame every 33 ms, 5 ms short of the point:
    /// 28 ms after it), and comes that much later. With each step between the two, it is
    /// at least as many steps away as the longest steps take to get there, and at least as
    /// far as that many of the shortest.
    fn arrival(&self, end: u64, tracks: &[u64], steps: [Option<(i64, i64)>; 2]) -> Option<i64> {
        let end = i64::try_from(end).unwrap_or(i64::MAX);
        let mut arrival = i64::MIN;
        for ((track, &at), steps) in [Track::Video, Track::Audio].into_iter().zip(tracks).zip(steps) {
            let needed = end.saturating_add(self.overshoot[track as usize]?);
            let at = i64::try_from(at).unwrap_or(i64::MAX);
            if at < needed {
                let frame = match steps.filter(|&(shortest, _)| shortest > 0) {
                    Some((shortest, longest)) => {
                        let frames = (needed - at - 1) / longest + 1;
                        needed.max(at.saturating_add(frames.saturating_mul(shortest)))
                    }
                    None => needed,
                };
                arrival = arrival.max(frame.saturating_add(self.least(track)?));
            }
        }
        Some(arrival)
    }

    /// The furthest output end the media at `tracks` lets the muxer output, from what it has
    /// needed past an output's end on each track; `None` before an output was seen.
    fn completes(&self, tracks: &[u64]) -> Option<u64> {
        let mut completes = u64::MAX;
        for (track, &at) in [Track::Video, Track::Audio].into_iter().zip(tracks) {
            completes = completes.min(at.saturating_add_signed(self.overshoot[track as usize]?.saturating_neg()));
        }
        Some(completes)
    }

    fn least(&self, track: Track) -> Option<i64> {
        least_of(self.least[track as usize])
    }
}

impl Batch {
    /// Holds `buffer`; true when the held frames must be pushed now. `at`: where the frame
    /// puts its track in the muxer's eyes (see `Input::video`). `reached`: whether every track
    /// has a frame at or past the muxer's next output's end (`Input::reaches_next_end`): a
    /// frame past it on one track waits for the other track's, as the muxer would.
    fn hold(&mut self, track: Track, buffer: gst::Buffer, at: u64, keyframe: bool, reached: Option<bool>) -> bool {
        self.held.push((track, buffer));
        // The muxer starts its next chunk where its output ends, and ends it `chunk_ns` later.
        let until = self.muxed_until.load(Ordering::Acquire);
        let chunk_due = self.parts && (until == 0 || at >= until.saturating_add(self.chunk_ns));
        let cut = self.cut_at.load(Ordering::Relaxed);
        let split_due = cut > until && at >= cut;
        keyframe || ((chunk_due || split_due) && reached != Some(false)) || self.held.len() >= BATCH_MAX
    }
}

impl Input {
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// A new AVC configuration: new caps, if it changed (the muxer then starts a new init).
    pub fn video_config(&mut self, record: Bytes) -> Result<(), String> {
        if record == self.video_config {
            return Ok(());
        }
        let caps = video_caps(&record).map_err(|e| e.to_string())?;
        // The frames before the change go out with the old caps.
        self.flush().map_err(|e| format!("the pipeline stopped ({e:?})"))?;
        self.video_config = record;
        match self.video.push_event(gst::event::Caps::new(&caps)) {
            true => Ok(()),
            false => Err("the pipeline refused the new AVC configuration".into()),
        }
    }

    /// One access unit, timestamps in ns on the pipeline's timeline.
    pub fn video(&mut self, pts: u64, dts: u64, keyframe: bool, nalus: Bytes) -> Result<(), gst::FlowError> {
        let offset = i64::try_from(pts).unwrap_or(i64::MAX) - i64::try_from(dts).unwrap_or(i64::MAX);
        if keyframe && self.shift.is_none() {
            self.shift = Some(offset);
            self.video_shift.store(offset, Ordering::Release);
        }
        // Where the frame is on the source's muxer's timeline (`decode_order_times`).
        let at = dts.saturating_add_signed(self.shift.unwrap_or(0));
        if keyframe {
            self.split_if_due(pts, at);
        }
        crate::lock(&self.source_offsets).push_back(offset);
        let mut buffer = gst::Buffer::from_slice(nalus);
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(pts));
            b.set_dts(gst::ClockTime::from_nseconds(dts));
            if !keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
            // The muxer times a frame to the next one's start, but the last frame of a publish
            // to its own end: without a duration it would end where it starts, and the last
            // part of video would end one frame short of it (a part under RFC 8216bis's 85 %
            // of PART-TARGET). A frame must not run past the next one's start either (the
            // muxer's next chunks would start late and take in an extra frame), so it is given
            // the shortest recent interval less a millisecond: FLV's whole milliseconds make a
            // steady frame rate's intervals differ by one.
            if let Some(&shortest) = self.intervals[Track::Video as usize].iter().min()
                && shortest > FLV_TICK_NS
            {
                b.set_duration(gst::ClockTime::from_nseconds(shortest - FLV_TICK_NS));
            }
        }
        // A chunk needs a frame past its end on every track: the video counts where the
        // source's muxer times it.
        self.record_interval(Track::Video, at);
        self.observe_output();
        self.track_at[0] = at;
        self.leads.record(Track::Video, at);
        let reached = self.reaches_next_end();
        match self.batch.hold(Track::Video, buffer, at, keyframe, reached) {
            true => self.flush(),
            false => Ok(()),
        }
    }

    /// One AAC frame at `pts` ns. Without an audio track, nothing.
    pub fn audio(&mut self, pts: u64, data: Bytes) -> Result<(), gst::FlowError> {
        let Some(&(_, duration)) = self.audio.as_ref() else { return Ok(()) };
        let mut buffer = gst::Buffer::from_slice(data);
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(pts));
            b.set_dts(gst::ClockTime::from_nseconds(pts));
            b.set_duration(gst::ClockTime::from_nseconds(duration));
        }
        self.record_interval(Track::Audio, pts);
        self.observe_output();
        self.leads.record(Track::Audio, pts);
        // A frame across the muxer's next output end completes that output's audio, but the
        // muxer sees it so only once a buffer past the end comes: the next frame, up to a
        // frame later (21 ms at 48 kHz), which made parts come in uneven steps. An empty gap
        // buffer just past the end, behind the frame, tells it at once; it is no frame (the
        // muxer drops it) and leaves the frame's duration alone (to the next frame's start).
        // Only for a frame well across (by a quarter of a frame): the next frame then starts
        // after the gap whatever the rounding of the source's timestamps.
        let until = self.batch.muxed_until.load(Ordering::Acquire);
        let across = self
            .next_end(until)
            .filter(|&end| until > 0 && pts < end && end.saturating_add(duration / 4) < pts.saturating_add(duration));
        self.track_at[1] = across.map_or(pts, |end| end + 1);
        let reached = self.reaches_next_end();
        let push = self.batch.hold(Track::Audio, buffer, self.track_at[1], false, reached);
        if let Some(end) = across {
            let mut gap = gst::Buffer::new();
            if let Some(b) = gap.get_mut() {
                b.set_pts(gst::ClockTime::from_nseconds(end + 1));
                b.set_dts(gst::ClockTime::from_nseconds(end + 1));
                b.set_flags(gst::BufferFlags::GAP | gst::BufferFlags::DROPPABLE);
            }
            self.batch.held.push((Track::Audio, gap));
        }
        match push {
            true => self.flush(),
            false => Ok(()),
        }
    }

    /// When the muxer's output has moved on since the last frame, records how far past its
    /// end each track was: the media the muxer needed (at most; a frame pushed after the one
    /// that completed it counts too), from which `next_output` predicts the next output.
    fn observe_output(&mut self) {
        let until = self.batch.muxed_until.load(Ordering::Acquire);
        if until <= self.seen_until {
            return;
        }
        if self.seen_until > 0 {
            let until = i64::try_from(until).unwrap_or(i64::MAX);
            let tracks = self.track_at.map(|at| i64::try_from(at).unwrap_or(i64::MAX));
            for (track, at) in [Track::Video, Track::Audio].into_iter().zip(tracks).take(self.tracks_at().len()) {
                // Never less than nothing: an output is never made of media not pushed.
                self.leads.record_overshoot(track, at.saturating_sub(until).max(0));
            }
        }
        self.seen_until = until;
    }

    /// Keeps the time from the track's previous frame to one at `at`.
    fn record_interval(&mut self, track: Track, at: u64) {
        let previous = match track {
            Track::Video => self.track_at[0],
            Track::Audio => std::mem::replace(&mut self.audio_pts, at),
        };
        if previous > 0 && at > previous {
            let intervals = &mut self.intervals[track as usize];
            if intervals.len() == RECENT_INTERVALS {
                intervals.pop_front();
            }
            intervals.push_back(at - previous);
        }
    }

    /// The shortest and the longest recent time between frames of each track (video, audio).
    fn frame_steps(&self) -> [Option<(i64, i64)>; 2] {
        self.intervals.each_ref().map(|recent| {
            let ns = |step: Option<&u64>| step.and_then(|&step| i64::try_from(step).ok());
            Some((ns(recent.iter().min())?, ns(recent.iter().max())?))
        })
    }

    /// Where each track is (see `Input::video`): video, then audio if the publish has it.
    fn tracks_at(&self) -> &[u64] {
        match self.audio {
            Some(_) => &self.track_at[..],
            None => &self.track_at[..1],
        }
    }

    /// When the media that completes the muxer's next output (its next chunk, an LL-HLS part,
    /// or the fragment at the segment target) should have arrived: the ingest reads the
    /// publisher's socket then and from then on as bytes arrive, and on its read ticks before.
    /// The muxer needs media past an output's end on every track before it outputs: about a
    /// frame of audio, and of video a frame plus the first keyframe's composition offset (it
    /// takes frames in decode order, and takes one only when every track has a newer one
    /// waiting). How much, per track, is learnt from the outputs seen so far
    /// (`Input::observe_output`), and when that media comes from how early each track's
    /// frames have come against their timestamps (`ArrivalLeads`); the track that comes last
    /// decides. An instant already past: read as bytes arrive (before the second output, or a
    /// track whose timing is not known yet). While a keyframe would end the segment, at most
    /// `KEYFRAME_WAIT` ahead. Once the media pushed completes the next output, by what the
    /// muxer needed before: `Making`. `None`: no output waits on the publisher.
    pub fn next_output(&self) -> Option<NextOutput> {
        let past = Some(NextOutput::MediaBy(self.leads.epoch));
        let until = self.batch.muxed_until.load(Ordering::Acquire);
        let Some(start) = self.fragment_start.filter(|_| until > 0) else { return past };
        // How far the pushed media completes outputs: each track less what the muxer needs past
        // an output's end.
        let Some(completes) = self.leads.completes(self.tracks_at()) else { return past };
        let chunk = self.batch.parts.then_some(self.batch.chunk_ns);
        let cut = self.cut_after(until);
        // The next output, completed by what the muxer needed before (and pushed: `Batch`),
        // not made yet (it may need more this time: the ingest reads as bytes arrive until
        // it is made).
        if self.next_end(until).is_some_and(|next| completes >= next) {
            return Some(NextOutput::Making(self.source_output.clone()));
        }
        let fragment_end = start.saturating_add(self.fragment_ns);
        let steps = self.frame_steps();
        let predicted = next_output_end(until, completes, chunk, fragment_end).map(|end| {
            let end = cut.map_or(end, |cut| end.min(cut));
            // A little early, so that media coming earlier than it has (a publisher's lag that
            // shrinks) is read a little early too and lowers the leads.
            let ns = self.leads.arrival(end, self.tracks_at(), steps).map_or(0, |ns| ns.saturating_sub(EARLY_NS));
            self.leads.epoch + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
        });
        // From the next video frame on, a keyframe ends the segment wherever it falls on the
        // part grid, and it is known only once read: it is read within `KEYFRAME_WAIT`.
        let next_frame = self.track_at[0].saturating_add(steps[0].map_or(0, |(shortest, _)| shortest.unsigned_abs()));
        if cut.is_none() && next_frame.saturating_add(SPLIT_TOLERANCE_NS) >= fragment_end {
            let by = Instant::now() + KEYFRAME_WAIT;
            return Some(NextOutput::MediaBy(predicted.map_or(by, |predicted| predicted.min(by))));
        }
        predicted.map(NextOutput::MediaBy)
    }

    /// A cut requested past the muxer's output: it ends the current chunk there (`ends_at_cut`).
    fn cut_after(&self, until: u64) -> Option<u64> {
        Some(self.batch.cut_at.load(Ordering::Relaxed)).filter(|&cut| cut > until)
    }

    /// Where the muxer's next output ends, its output ending at `until`: the next chunk's end
    /// or a cut requested before it; `None` without parts or a cut.
    fn next_end(&self, until: u64) -> Option<u64> {
        let chunk_end = self.batch.parts.then(|| until.saturating_add(self.batch.chunk_ns));
        chunk_end.into_iter().chain(self.cut_after(until)).min()
    }

    /// Whether every track has a frame (pushed or held) at or past the end of the muxer's next
    /// output, which it cannot make before; `None` before its first output, or with no end to
    /// reach (no parts, no cut requested).
    fn reaches_next_end(&self) -> Option<bool> {
        let until = self.batch.muxed_until.load(Ordering::Acquire);
        let next = self.next_end(until).filter(|_| until > 0)?;
        Some(self.tracks_at().iter().all(|&at| at >= next))
    }

    /// Pushes the held frames, in arrival order.
    fn flush(&mut self) -> Result<(), gst::FlowError> {
        for (track, buffer) in self.batch.held.drain(..) {
            let pad = match (track, &self.audio) {
                (Track::Video, _) => &self.video,
                (Track::Audio, Some((pad, _))) => pad,
                (Track::Audio, None) => continue,
            };
            pad.push(buffer)?;
        }
        Ok(())
    }

    /// End of stream on every track: the muxer drains and the bus reports EOS.
    pub fn end(&mut self) {
        let _ = self.flush();
        self.video.push_event(gst::event::Eos::new());
        if let Some((pad, _)) = &self.audio {
            pad.push_event(gst::event::Eos::new());
        }
    }

    /// Before the keyframe at `pts` (at `dts` on the source's muxer's timeline, see
    /// `decode_order_times`) reaches any muxer: if it is the first at or after the segment
    /// target, asks every muxer (`split-at-running-time`) to end the fragment there, and every
    /// ladder encoder to make a keyframe at that frame (an upstream force-key-unit event,
    /// queued by the encoder until a frame of that running time arrives), so all renditions
    /// cut at the same frame. The segment starts at 0, so running time = PTS.
    fn split_if_due(&mut self, pts: u64, dts: u64) {
        let due = match self.fragment_start {
            None => {
                self.fragment_start = Some(dts);
                return;
            }
            Some(start) => dts + SPLIT_TOLERANCE_NS >= start.saturating_add(self.fragment_ns),
        };
        if !due {
            return;
        }
        self.fragment_start = Some(dts);
        // Each muxer is asked to end its fragment just after the frame before the keyframe,
        // not at the keyframe: a chunk whose target falls short of the keyframe and whose next
        // frame is the keyframe also ends there, and the muxer ends the fragment only with a
        // chunk whose target reaches the requested time. Whole frames rarely add up to the
        // part target exactly (29.97 fps: 200 or 201 ms; 24 fps: 208 or 209), and a chunk
        // with the keyframe as its next frame would otherwise run its fragment on to the next
        // cut. Less than a frame before the keyframe, the request falls in the last chunk.
        let lead = self.intervals[Track::Video as usize]
            .iter()
            .min()
            .map_or(0, |&shortest| shortest.saturating_sub(FLV_TICK_NS));
        self.split_lead.store(lead, Ordering::Release);
        self.batch.cut_at.store(dts, Ordering::Release);
        self.rung_cut_at.store(pts, Ordering::Release);
        let running_time = gst::ClockTime::from_nseconds(pts);
        for encoder in self.encoders.iter().filter_map(|e| e.upgrade()) {
            let keyframe =
                gst_video::UpstreamForceKeyUnitEvent::builder().running_time(running_time).all_headers(true).build();
            encoder.send_event(keyframe);
        }
        for (i, mux) in self.muxes.iter().enumerate().filter_map(|(i, m)| Some((i, m.upgrade()?))) {
            let at = if i == 0 { dts } else { pts };
            mux.emit_by_name::<()>("split-at-running-time", &[&gst::ClockTime::from_nseconds(at - lead.min(at))]);
        }
    }
}

/// One rendition's `isofmp4mux`, its output pad feeding the segmenter; returns both.
fn muxer(
    pipeline: &gst::Pipeline,
    fragment_ns: u64,
    chunk_ns: u64,
    segmenter: Segmenter,
    drained: Drained,
) -> Result<(gst::Element, gst::Pad), PackagerError> {
    let mux = make("isofmp4mux")?;
    // The muxer's own rule cuts at the last keyframe at or *before* its fragment end; the
    // input requests each cut at the first keyframe at/after the target instead. This longer
    // duration only caps a fragment when a GOP is pathologically long.
    mux.set_property("fragment-duration", fragment_ns.saturating_add(MAX_GOP_OVERSHOOT_NS));
    // The cuts follow the publisher's GOP (`Input::split_if_due`), not the muxer's wishes.
    mux.set_property("send-force-keyunit", false);
    mux.set_property("latency", MUX_QUEUE.nseconds());
    // Each chunk (moof + mdat) becomes an LL-HLS part (with LL-HLS); fragments still start at
    // keyframes.
    mux.set_property("chunk-duration", chunk_ns);
    pipeline.add(&mux).map_err(|e| gst_err("adding muxer", e))?;
    let output = output_pad(segmenter, drained);
    static_pad(&mux, "src")?.link(&output).map_err(|e| gst_err("linking muxer", e))?;
    output.set_active(true).map_err(|e| gst_err("activating a pad", e))?;
    Ok((mux, output))
}

/// Counts renditions down to the end of the publish.
struct Drained {
    remaining: Arc<AtomicUsize>,
    bus: mpsc::UnboundedSender<BusEvent>,
}

/// A standalone sink pad the muxer pushes its chunks into; the segmenter runs on the muxer's
/// streaming thread. Not an appsink: appsink keeps the last buffer list it handed out (its
/// cached sample) until the next one arrives, which held a whole extra fragment of every stream
/// in memory, and it adds a queue, a lock and a sample per chunk.
fn output_pad(segmenter: Segmenter, drained: Drained) -> gst::Pad {
    let segmenter = Arc::new(Mutex::new(segmenter));
    let for_lists = segmenter.clone();
    gst::Pad::builder(gst::PadDirection::Sink)
        .name("output")
        .chain_list_function(move |pad, _, list| crate::lock(&for_lists).on_chunk(pad, list))
        .chain_function(move |pad, _, buffer| {
            let mut list = gst::BufferList::new_sized(1);
            if let Some(l) = list.get_mut() {
                l.add(buffer);
            }
            crate::lock(&segmenter).on_chunk(pad, list)
        })
        .event_function(move |pad, parent, event| {
            if event.type_() == gst::EventType::Eos && drained.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                let _ = drained.bus.send(BusEvent::Eos);
            }
            gst::Pad::event_default(pad, parent, event)
        })
        .build()
}

/// One of our standalone source pads. It answers the latency query (not live, no latency):
/// unanswered, the muxer's aggregator asks again before every buffer it takes, a query that
/// walks the pads and allocates (about 5 % of a stream's CPU).
fn source_pad(name: &str) -> gst::Pad {
    gst::Pad::builder(gst::PadDirection::Src)
        .name(name)
        .query_function(|pad, parent, query| match query.view_mut() {
            gst::QueryViewMut::Latency(latency) => {
                latency.set(false, gst::ClockTime::ZERO, gst::ClockTime::NONE);
                true
            }
            _ => gst::Pad::query_default(pad, parent, query),
        })
        .build()
}

/// Links `src` to every pad of `sinks`: directly to one, through a `tee` to several.
fn fan_out(pipeline: &gst::Pipeline, src: &gst::Pad, sinks: &[gst::Pad]) -> Result<(), PackagerError> {
    let link = |from: &gst::Pad, to: &gst::Pad| from.link(to).map(|_| ()).map_err(|e| gst_err("linking", e));
    if let [sink] = sinks {
        return link(src, sink);
    }
    let tee = make("tee")?;
    pipeline.add(&tee).map_err(|e| gst_err("adding tee", e))?;
    link(src, &static_pad(&tee, "sink")?)?;
    for sink in sinks {
        let branch = tee.request_pad_simple("src_%u").ok_or_else(|| PackagerError::Gst("tee refused a pad".into()))?;
        link(&branch, sink)?;
    }
    Ok(())
}

/// The ladder's video: the source decoded once, then per rung scaled and encoded into the
/// rung's muxer (`muxes[i]` for `ladder[i]`). Returns the decoder branch's sink pad and the
/// encoders (which `request_splits` tells where to make keyframes).
fn transcode(
    pipeline: &gst::Pipeline,
    ladder: &[Rendition],
    muxes: &[gst::Element],
) -> Result<(gst::Pad, Vec<gst::Element>), PackagerError> {
    let add = |elements: &[&gst::Element]| {
        pipeline.add_many(elements).map_err(|e| gst_err("adding ladder", e))?;
        gst::Element::link_many(elements).map_err(|e| gst_err("linking ladder", e))
    };
    // Its own thread, so that decoding never holds up the source's demuxing and muxing.
    let queue = make("queue")?;
    let decode = make("avdec_h264")?;
    let convert = make("videoconvert")?;
    // 8-bit 4:2:0, what every player decodes, whatever the publisher sent.
    let i420 = gst::Caps::builder("video/x-raw").field("format", "I420").build();
    let format = gst::ElementFactory::make("capsfilter")
        .property("caps", i420)
        .build()
        .map_err(|e| gst_err("creating capsfilter", e))?;
    add(&[&queue, &decode, &convert, &format])?;
    let mut sinks = Vec::with_capacity(ladder.len());
    let mut encoders = Vec::with_capacity(ladder.len());
    for (rung, mux) in ladder.iter().zip(muxes) {
        // One thread per rung: the encoders run in parallel.
        let queue = make("queue")?;
        let scale = make("videoscale")?;
        let size = gst::Caps::builder("video/x-raw")
            .field("width", i32::try_from(rung.width).unwrap_or(i32::MAX))
            .field("height", i32::try_from(rung.height).unwrap_or(i32::MAX))
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        let size = gst::ElementFactory::make("capsfilter")
            .property("caps", size)
            .build()
            .map_err(|e| gst_err("creating capsfilter", e))?;
        let encode = make("x264enc")?;
        encode.set_property_from_str("tune", "zerolatency");
        encode.set_property_from_str("speed-preset", "veryfast");
        encode.set_property("bitrate", rung.video_bitrate_kbps);
        encode.set_property("key-int-max", LADDER_KEYINT_MAX);
        add(&[&queue, &scale, &size, &encode])?;
        let rung_video = mux_pad(mux, VIDEO_TIMESCALE)?;
        frames_end_where_the_next_begins(&rung_video);
        static_pad(&encode, "src")?.link(&rung_video).map_err(|e| gst_err("linking encoder to muxer", e))?;
        sinks.push(static_pad(&queue, "sink")?);
        encoders.push(encode);
    }
    fan_out(pipeline, &static_pad(&format, "src")?, &sinks)?;
    Ok((static_pad(&queue, "sink")?, encoders))
}

/// Splits the muxer's output into init and media segments. The muxer marks its buffers:
/// the init (ftyp+moov) is HEADER|DISCONT, a fragment's first buffer (styp+moof+mdat header)
/// is HEADER, and each buffer list is one chunk (`chunk-duration`; a later chunk's moof is
/// HEADER|DELTA_UNIT): an LL-HLS part; the writer stores a segment's parts one after another.
/// The chunk that ends at the cut the input requested ends its segment.
struct Segmenter {
    publish: u64,
    /// 0: the source; then the ladder's rungs.
    rendition: usize,
    /// Wall clock of the publish's first video frame: PROGRAM-DATE-TIME of its first segment.
    publish_wall: DateTime<Utc>,
    /// Media time of this publish's segments so far.
    elapsed_ns: u64,
    /// Where the latest cut the input requested is on the muxer's timeline (the source's decode
    /// times shifted, see `decode_order_times`; a rung's presentation times): the chunk that
    /// ends there ends its fragment.
    cut_at: Arc<AtomicU64>,
    /// How long before the cut the muxer was asked to split (`Input::split_if_due`).
    split_lead: Arc<AtomicU64>,
    /// The muxer's chunk duration.
    chunk_ns: u64,
    /// From the latest init; times the segments.
    track: Option<bmff::VideoTrack>,
    /// The current fragment's chunks so far held video.
    video_in_fragment: bool,
    tx: mpsc::Sender<Msg>,
    /// The source rendition's: kept at `elapsed_ns`, for the feed's lag check.
    muxed_ns: Option<Arc<AtomicU64>>,
    /// The source rendition's: the pushed frames' composition offsets.
    source_offsets: Option<SourceOffsets>,
    /// The source rendition's: what its muxer adds to each decode time (`decode_order_times`).
    video_shift: Arc<AtomicI64>,
    /// The source rendition's: where the input learns where the output ends (`Batch`).
    muxed_until: Option<Arc<AtomicU64>>,
    /// Where the output ends on the muxer's timeline (ns): the first chunk's start plus every
    /// chunk's duration, which is where the muxer starts its next chunk.
    output_end: Option<u64>,
}

impl Segmenter {
    /// One output of the muxer: a chunk (an LL-HLS part with LL-HLS), maybe after an init.
    fn on_chunk(&mut self, pad: &gst::Pad, list: gst::BufferList) -> Result<gst::FlowSuccess, gst::FlowError> {
        let buffers: Vec<&gst::BufferRef> = list.iter().collect();
        let mut rest = buffers.as_slice();
        if let Some((first, tail)) = rest.split_first()
            && first.flags().contains(gst::BufferFlags::HEADER | gst::BufferFlags::DISCONT)
        {
            let info = stream_info(pad);
            tracing::debug!(publish = self.publish, rendition = self.rendition, codecs = %info.codecs, "new init segment");
            let bytes = Bytes::from(copy(first));
            self.track = bmff::video_track(&bytes);
            self.send(Msg::Init { publish: self.publish, rendition: self.rendition, bytes, info })?;
            rest = tail;
        }
        let Some(header) = rest.first() else { return Ok(gst::FlowSuccess::Ok) };
        // A fragment's first chunk is HEADER (styp + moof); a later chunk's moof HEADER|DELTA_UNIT.
        let first = !header.flags().contains(gst::BufferFlags::DELTA_UNIT);
        if !header.flags().contains(gst::BufferFlags::HEADER) {
            tracing::warn!(publish = self.publish, "muxer output without fragment header dropped");
            return Ok(gst::FlowSuccess::Ok);
        }
        let start = self.output_end.or_else(|| running_time(pad, header.pts()));
        let end = start.map(|start| start + header.duration().map_or(0, gst::ClockTime::nseconds));
        if let Some(end) = end {
            self.output_end = Some(end);
            if let Some(muxed_until) = &self.muxed_until {
                muxed_until.store(end, Ordering::Release);
            }
        }
        let cut = self.cut_at.load(Ordering::Acquire);
        let split_at = cut.saturating_sub(self.split_lead.load(Ordering::Acquire));
        let last = ends_at_cut(start, end, (cut, split_at), self.chunk_ns);
        // The header (styp/moof and the mdat's box header) is copied, to be rewritten; the
        // samples are the buffers pushed in, the publisher's bytes, kept as they are.
        let mut moof = copy(header);
        if let (Some(track), Some(offsets)) = (&self.track, &self.source_offsets) {
            bmff::restore_composition_offsets(&mut moof, track, self.video_shift.load(Ordering::Acquire), |n| {
                let mut offsets = crate::lock(offsets);
                let n = n.min(offsets.len());
                offsets.drain(..n).collect()
            });
        }
        let span_ns = header.duration().map_or(0, gst::ClockTime::nseconds);
        let video_ns = match self.track.and_then(|t| bmff::video_duration_ns(&moof, &t)) {
            Some(d) => d,
            None => {
                tracing::warn!(publish = self.publish, "no video timing in fragment; using the muxer's");
                span_ns
            }
        };
        if first {
            self.video_in_fragment = false;
        }
        // A part lasts as long as its video, as a segment does (the muxers cut on decode
        // times, so its frames' durations span it; the muxer's span would also count the
        // audio around them). Audio with no video: before the fragment's first frame (a
        // publish whose audio starts well ahead) it is the segment's time and a part of its
        // own; after its last frame (the end of a publish) it adds nothing, and it goes into
        // the segment without being a part, or the short part of video before it would not be
        // its segment's last.
        let (duration_ns, independent, listed) = match (video_ns, self.video_in_fragment) {
            (0, false) => (span_ns, first, true),
            (0, true) => (0, false, false),
            (video, seen) => {
                self.video_in_fragment = true;
                (video, first || !seen, true)
            }
        };
        let offset = i64::try_from(self.elapsed_ns).unwrap_or(i64::MAX);
        let pdt = self.publish_wall + chrono::Duration::nanoseconds(offset);
        self.elapsed_ns += duration_ns;
        if let Some(muxed) = &self.muxed_ns {
            muxed.store(self.elapsed_ns, Ordering::Relaxed);
        }
        let (publish, rendition) = (self.publish, self.rendition);
        let from = buffers.len() - rest.len() + 1;
        drop(buffers);
        let pieces = std::iter::once(Bytes::from(moof)).chain(samples(list, from)).collect();
        self.send(Msg::Part { publish, rendition, pieces, duration_ns, pdt, first, last, listed, independent })?;
        Ok(gst::FlowSuccess::Ok)
    }

    /// Blocks the streaming thread while the writer is behind: back-pressure, not memory.
    fn send(&self, msg: Msg) -> Result<(), gst::FlowError> {
        self.tx.blocking_send(msg).map_err(|_| {
            tracing::debug!(publish = self.publish, "writer gone; stopping the pipeline");
            gst::FlowError::Flushing
        })
    }
}

/// Whether the chunk from `start` to `end` ends its fragment at the cut the input asked for
/// (`cut`, the latest keyframe's time, 0 before the first; the split was requested at
/// `split_at`, just before it). The muxer ends a fragment with the chunk whose target
/// (`start + chunk_ns`) reaches the requested time, and that chunk then ends at the keyframe;
/// a chunk that only happens to end there (its target fell short) does not, and the muxer then
/// lets the fragment run on past the cut. One wrongly taken as last would end its segment
/// early and lose the rest of it, while one missed only makes the segment complete when the
/// next one starts (a cut the muxer made on its own, or one asked for again before this chunk
/// came out).
fn ends_at_cut(start: Option<u64>, end: Option<u64>, (cut, split_at): (u64, u64), chunk_ns: u64) -> bool {
    start.zip(end).is_some_and(|(start, end)| start < cut && end == cut && start.saturating_add(chunk_ns) >= split_at)
}

/// `pts` of a buffer arriving at `pad` as a running time: the input's timeline.
fn running_time(pad: &gst::Pad, pts: Option<gst::ClockTime>) -> Option<u64> {
    let event = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = event.segment().downcast_ref::<gst::ClockTime>()?;
    segment.to_running_time(pts?).map(gst::ClockTime::nseconds)
}

/// The buffers of `list` from index `from` on, as `Bytes` that share their memory.
fn samples(list: gst::BufferList, from: usize) -> Vec<Bytes> {
    let owned = |buffer: gst::Buffer| buffer.into_mapped_buffer_readable().ok().map(Bytes::from_owner);
    list.iter_owned().skip(from).filter_map(owned).collect()
}

/// An owned copy of a buffer's bytes (the init, and a chunk's header to be rewritten).
fn copy(buffer: &gst::BufferRef) -> Vec<u8> {
    buffer.map_readable().map(|map| map.to_vec()).unwrap_or_default()
}

/// CODECS, RESOLUTION and FRAME-RATE from the caps on the sink pads of the muxer feeding `output`.
fn stream_info(output: &gst::Pad) -> StreamInfo {
    let mut info = StreamInfo { codecs: String::new(), resolution: None, frame_rate: None };
    let Some(mux) = output.peer().and_then(|p| p.parent_element()) else {
        return info;
    };
    let mut video = None;
    let mut audio = None;
    for pad in mux.sink_pads() {
        let Some(caps) = pad.current_caps() else { continue };
        let Some(s) = caps.structure(0) else { continue };
        let codec_data = s.get::<gst::Buffer>("codec_data").ok();
        let codec_data = codec_data.as_ref().and_then(|b| b.map_readable().ok());
        let codec_data = codec_data.as_ref().map(|m| m.as_slice());
        match s.name().as_str() {
            "video/x-h264" => {
                video = Some(avc_codec(codec_data));
                if let (Ok(w), Ok(h)) = (s.get::<i32>("width"), s.get::<i32>("height"))
                    && let (Ok(w), Ok(h)) = (u32::try_from(w), u32::try_from(h))
                {
                    info.resolution = Some((w, h));
                }
                if let Ok(fps) = s.get::<gst::Fraction>("framerate")
                    && fps.numer() > 0
                    && fps.denom() > 0
                {
                    info.frame_rate = Some(f64::from(fps.numer()) / f64::from(fps.denom()));
                }
            }
            "audio/mpeg" => audio = Some(aac_codec(codec_data)),
            _ => {}
        }
    }
    info.codecs = video.into_iter().chain(audio).collect::<Vec<_>>().join(",");
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn batch(parts: bool) -> Batch {
        gst::init().unwrap();
        Batch {
            held: Vec::new(),
            muxed_until: Arc::new(AtomicU64::new(0)),
            chunk_ns: 100 * MS,
            parts,
            cut_at: Arc::new(AtomicU64::new(0)),
        }
    }

    fn frame(batch: &mut Batch, track: Track, at_ms: u64, keyframe: bool) -> bool {
        let mut buffer = gst::Buffer::new();
        buffer.get_mut().unwrap().set_pts(gst::ClockTime::from_nseconds(at_ms * MS));
        batch.hold(track, buffer, at_ms * MS, keyframe, None)
    }

    #[test]
    fn frames_wait_for_the_one_that_ends_the_chunk() {
        let mut b = batch(true);
        // Nothing muxed yet: no boundary known, every frame goes at once.
        assert!(frame(&mut b, Track::Video, 0, true));
        assert!(frame(&mut b, Track::Audio, 10, false));
        b.held.clear();
        // The first chunk came out, ending at 150 ms: the next ends at 250 ms.
        b.muxed_until.store(150 * MS, Ordering::Release);
        assert!(!frame(&mut b, Track::Audio, 160, false));
        assert!(!frame(&mut b, Track::Video, 167, false));
        assert!(!frame(&mut b, Track::Audio, 249, false));
        assert_eq!(b.held.len(), 3);
        // At the end: everything goes, and so does every frame until the chunk is out.
        assert!(frame(&mut b, Track::Video, 250, false));
        b.held.clear();
        assert!(frame(&mut b, Track::Audio, 251, false));
        b.held.clear();
        b.muxed_until.store(284 * MS, Ordering::Release);
        assert!(!frame(&mut b, Track::Audio, 272, false));
        // A keyframe never waits.
        assert!(frame(&mut b, Track::Video, 300, true));
    }

    #[test]
    fn a_frame_past_the_chunk_waits_for_the_other_tracks_to_get_there() {
        let mut b = batch(true);
        b.muxed_until.store(150 * MS, Ordering::Release);
        let mut hold = |track, at_ms: u64, keyframe, reached| {
            let mut buffer = gst::Buffer::new();
            buffer.get_mut().unwrap().set_pts(gst::ClockTime::from_nseconds(at_ms * MS));
            b.hold(track, buffer, at_ms * MS, keyframe, reached)
        };
        // Video past the end (250 ms), the audio short of it: the muxer can make nothing yet.
        assert!(!hold(Track::Video, 267, false, Some(false)));
        assert!(!hold(Track::Audio, 240, false, Some(false)));
        // The audio gets there: all of it goes.
        assert!(hold(Track::Audio, 261, false, Some(true)));
        // A keyframe goes whatever the other track.
        assert!(hold(Track::Video, 300, true, Some(false)));
        // Unknown (before the first output): the first frame past the end goes.
        assert!(hold(Track::Video, 333, false, None));
        assert_eq!(b.held.len(), 5, "held until pushed (the caller drains)");
    }

    #[test]
    fn the_next_end_is_reached_once_every_track_has_a_frame_at_or_past_it() {
        // Output to 1.0 s: the part ending at 1.2 s.
        assert_eq!(publish_at(1000, 1210, 1190).reaches_next_end(), Some(false));
        assert_eq!(publish_at(1000, 1190, 1210).reaches_next_end(), Some(false));
        assert_eq!(publish_at(1000, 1233, 1200).reaches_next_end(), Some(true));
        // A cut requested before the part's end ends it there.
        let cut = publish_at(1000, 1140, 1150);
        assert_eq!(cut.reaches_next_end(), Some(false));
        cut.batch.cut_at.store(1133 * MS, Ordering::Relaxed);
        assert_eq!(cut.reaches_next_end(), Some(true));
        // Before the first output nothing is known; without parts or a cut there is no end.
        assert_eq!(publish_at(0, 1233, 1200).reaches_next_end(), None);
        let mut lean = publish_at(1000, 1233, 1200);
        lean.batch.parts = false;
        assert_eq!(lean.reaches_next_end(), None);
    }

    #[test]
    fn the_next_output_is_the_first_chunk_the_pushed_media_does_not_complete() {
        let chunk = Some(200 * MS);
        // Output up to 1.0 s, the media pushed completing 1.1 s: the chunk ending at 1.2 s.
        assert_eq!(next_output_end(1000 * MS, 1100 * MS, chunk, 3000 * MS), Some(1200 * MS));
        // At 1.2 s that chunk is complete, the muxer's to output: the next one.
        assert_eq!(next_output_end(1000 * MS, 1200 * MS, chunk, 3000 * MS), Some(1400 * MS));
        assert_eq!(next_output_end(1000 * MS, 1450 * MS, chunk, 3000 * MS), Some(1600 * MS));
        // The fragment ends first.
        assert_eq!(next_output_end(2900 * MS, 2950 * MS, chunk, 3000 * MS), Some(3000 * MS));
        // Past the fragment's end, waiting for its keyframe: parts go on.
        assert_eq!(next_output_end(3000 * MS, 3050 * MS, chunk, 3000 * MS), Some(3200 * MS));
        // Without parts: the fragment's end, then nothing to wait for.
        assert_eq!(next_output_end(1000 * MS, 1100 * MS, None, 3000 * MS), Some(3000 * MS));
        assert_eq!(next_output_end(3000 * MS, 3100 * MS, None, 3000 * MS), None);
    }

    #[test]
    fn an_output_is_due_when_the_media_it_needs_on_the_last_track_should_have_come() {
        let mut leads = ArrivalLeads::new();
        let (video, audio) = (Track::Video, Track::Audio);
        // Video frames come 50 ms after their timestamps at best (read on a tick, later);
        // audio 20 ms after.
        leads.record_at(video, 1000 * MS, 1060 * MS as i64);
        leads.record_at(video, 1033 * MS, 1083 * MS as i64);
        leads.record_at(audio, 1000 * MS, 1030 * MS as i64);
        leads.record_at(audio, 1021 * MS, 1041 * MS as i64);
        assert_eq!(leads.least(video), Some(50 * MS as i64));
        // No output seen yet: what the muxer needs is not known.
        assert_eq!(leads.arrival(1200 * MS, &[1033 * MS, 1021 * MS], [None; 2]), None);
        assert_eq!(leads.completes(&[1033 * MS, 1021 * MS]), None);
        // Outputs were seen with the video 100 ms past their end at least, the audio 13 ms.
        leads.record_overshoot(video, 120 * MS as i64);
        leads.record_overshoot(video, 100 * MS as i64);
        leads.record_overshoot(audio, 13 * MS as i64);
        // The media pushed completes outputs up to the earlier of 0.933 s and 1.008 s.
        assert_eq!(leads.completes(&[1033 * MS, 1021 * MS]), Some(933 * MS));
        // The output ending at 1.2 s needs video at 1.3 s (due at 1.35 s) and audio at 1.213 s
        // (1.233 s): the video's comes last.
        assert_eq!(leads.arrival(1200 * MS, &[1033 * MS, 1021 * MS], [None; 2]), Some(1350 * MS as i64));
        // The video already there: the audio's.
        assert_eq!(leads.arrival(1200 * MS, &[1300 * MS, 1190 * MS], [None; 2]), Some(1233 * MS as i64));
        // On the tracks' cadences (video every 33 or 34 ms, audio every 21 or 22 ms, FLV's
        // whole milliseconds), the frames that get there may come later. The video from
        // 1.033 s needs 8 frames at least (7 of 34 ms reach 1.271 s), and 8 of 33 ms reach
        // 1.297 s, short of 1.3 s: the frame may be at 1.3 s, due at 1.35 s still.
        let steps = [Some((33 * MS as i64, 34 * MS as i64)), Some((21 * MS as i64, 22 * MS as i64))];
        assert_eq!(leads.arrival(1200 * MS, &[1033 * MS, 1021 * MS], steps), Some(1350 * MS as i64));
        // From 1.040 s, 8 frames reach 1.304 s at least: due at 1.354 s.
        assert_eq!(leads.arrival(1200 * MS, &[1040 * MS, 1021 * MS], steps), Some(1354 * MS as i64));
        // After a timestamp jump (a 5 s interval among the recent ones), one frame away, a
        // shortest step at least.
        let jumped = [Some((33 * MS as i64, 5000 * MS as i64)), steps[1]];
        assert_eq!(leads.arrival(1200 * MS, &[1290 * MS, 1300 * MS], jumped), Some(1373 * MS as i64));
        // A publish without audio: the video alone.
        assert_eq!(leads.arrival(1200 * MS, &[1040 * MS], steps), Some(1354 * MS as i64));
        // The audio from 1.190 s needs two frames to pass 1.213 s, so reaches 1.232 s at
        // least: due at 1.252 s.
        assert_eq!(leads.arrival(1200 * MS, &[1300 * MS, 1190 * MS], steps), Some(1252 * MS as i64));
        // One frame from 1.192 s may be at 1.213 s.
        assert_eq!(leads.arrival(1200 * MS, &[1300 * MS, 1192 * MS], steps), Some(1233 * MS as i64));
        // The video 10 ms short of 1.3 s: its next frame is 23 ms past it at least.
        assert_eq!(leads.arrival(1200 * MS, &[1290 * MS, 1300 * MS], steps), Some(1373 * MS as i64));
        // The least holds for the current window and the next one, then follows a later lag.
        leads.record_at(video, 3000 * MS, 3090 * MS as i64);
        assert_eq!(leads.least(video), Some(50 * MS as i64));
        leads.record_at(video, 5000 * MS, 5090 * MS as i64);
        assert_eq!(leads.least(video), Some(90 * MS as i64));
        // A track with no frame in a window keeps its estimate.
        assert_eq!(leads.least(audio), Some(20 * MS as i64));
        // What the muxer needs is the least over the publish: an output seen late does not
        // raise it.
        leads.record_overshoot(video, 180 * MS as i64);
        assert_eq!(leads.completes(&[1300 * MS, 1300 * MS]), Some(1200 * MS));
    }

    /// A publish with LL-HLS parts of 200 ms and 2 s segments, whose muxer has output up to
    /// `muxed_ms`, with video frames every 33 ms last at `video_ms` and audio every 21 ms last
    /// at `audio_ms`; frames come 50 ms (video) and 20 ms (audio) after their timestamps, and
    /// the muxer needs 100 ms of video and 13 ms of audio past an output's end.
    fn publish_at(muxed_ms: u64, video_ms: u64, audio_ms: u64) -> Input {
        let mut batch = batch(true);
        batch.chunk_ns = 200 * MS;
        batch.muxed_until.store(muxed_ms * MS, Ordering::Release);
        let mut leads = ArrivalLeads::new();
        leads.record_at(Track::Video, 1000 * MS, 1050 * MS as i64);
        leads.record_at(Track::Audio, 1000 * MS, 1020 * MS as i64);
        leads.record_overshoot(Track::Video, 100 * MS as i64);
        leads.record_overshoot(Track::Audio, 13 * MS as i64);
        let pad = || gst::Pad::builder(gst::PadDirection::Src).build();
        Input {
            video: pad(),
            video_config: Bytes::new(),
            audio: Some((pad(), 21 * MS)),
            muxes: Vec::new(),
            encoders: Vec::new(),
            fragment_ns: 2000 * MS,
            fragment_start: Some(0),
            source_offsets: SourceOffsets::default(),
            batch,
            track_at: [video_ms * MS, audio_ms * MS],
            audio_pts: audio_ms * MS,
            leads,
            seen_until: muxed_ms * MS,
            intervals: [VecDeque::from([33 * MS; 4]), VecDeque::from([21 * MS; 4])],
            rung_cut_at: Arc::default(),
            split_lead: Arc::default(),
            shift: None,
            video_shift: Arc::default(),
            source_output: Arc::default(),
        }
    }

    #[test]
    fn an_audio_frame_across_the_next_end_is_followed_by_a_gap_buffer_just_past_it() {
        // Output to 1.0 s: the part ends at 1.2 s; video short of it, so nothing is pushed.
        let mut input = publish_at(1000, 1190, 1149);
        input.audio(1170 * MS, Bytes::from_static(&[0; 8])).unwrap();
        assert_eq!(input.batch.held.len(), 1, "a frame ending before the end (1.191 s)");
        // Ends at 1.211 s: the part's audio is complete, and the muxer is told so.
        input.audio(1190 * MS, Bytes::from_static(&[0; 8])).unwrap();
        let (track, gap) = input.batch.held.last().unwrap();
        assert!(matches!(track, Track::Audio));
        assert_eq!(gap.pts(), Some(gst::ClockTime::from_nseconds(1200 * MS + 1)));
        assert!(gap.flags().contains(gst::BufferFlags::GAP | gst::BufferFlags::DROPPABLE));
        assert_eq!((gap.size(), input.batch.held.len()), (0, 3));
        assert_eq!(input.reaches_next_end(), Some(false), "the video is not there yet");
        input.track_at[0] = 1233 * MS;
        assert_eq!(input.reaches_next_end(), Some(true), "the gap takes the audio past the end");
        // A frame only just across (by less than a quarter of a frame) is left to the next.
        let mut input = publish_at(1000, 1190, 1160);
        input.audio(1181 * MS, Bytes::from_static(&[0; 8])).unwrap();
        assert_eq!(input.batch.held.len(), 1);
        assert_eq!(input.reaches_next_end(), Some(false));
        // The audio's steps are measured between frames, not from a gap buffer.
        let mut input = publish_at(1000, 1190, 1169);
        input.intervals[Track::Audio as usize].clear();
        input.audio(1190 * MS, Bytes::from_static(&[0; 8])).unwrap();
        input.audio(1211 * MS, Bytes::from_static(&[0; 8])).unwrap();
        assert_eq!(input.intervals[Track::Audio as usize], [21 * MS, 21 * MS]);
    }

    /// The instant `next_output` asks the publisher's media by.
    fn media_by(input: &Input) -> Instant {
        match input.next_output() {
            Some(NextOutput::MediaBy(at)) => at,
            other => panic!("not an instant: {other:?}"),
        }
    }

    #[test]
    fn while_a_keyframe_would_end_the_segment_the_publisher_is_read_within_the_keyframe_wait() {
        // Mid-segment: the part ending at 1.2 s needs video at 1.3 s, which the ninth frame
        // from 1.033 s passes (1.33 s), due at 1.38 s; read 5 ms before, far ahead.
        let input = publish_at(1000, 1033, 1021);
        assert_eq!(media_by(&input), input.leads.epoch + Duration::from_millis(1375));
        // The next video frame (2.023 s) reaches the segment's target: a keyframe there ends
        // the segment off the part grid, known only once read, so within `KEYFRAME_WAIT`
        // however far the next part's media is.
        let input = publish_at(1800, 1990, 1980);
        let before = Instant::now();
        let at = media_by(&input);
        assert!(at >= before + KEYFRAME_WAIT && at <= Instant::now() + KEYFRAME_WAIT, "{at:?}");
        // A cut already requested there: the prediction aims at it, no waiting for a keyframe.
        input.batch.cut_at.store(2000 * MS, Ordering::Relaxed);
        assert!(media_by(&input) > Instant::now() + 10 * KEYFRAME_WAIT);
    }

    #[test]
    fn once_the_media_pushed_completes_the_next_part_the_muxer_is_making_it() {
        // The part ending at 1.2 s needs video to 1.3 s and audio to 1.213 s.
        let short_of_audio = publish_at(1000, 1300, 1210);
        assert!(matches!(short_of_audio.next_output(), Some(NextOutput::MediaBy(_))));
        let short_of_video = publish_at(1000, 1290, 1213);
        assert!(matches!(short_of_video.next_output(), Some(NextOutput::MediaBy(_))));
        let input = publish_at(1000, 1300, 1213);
        let Some(NextOutput::Making(made)) = input.next_output() else { panic!("the part is complete") };
        assert!(Arc::ptr_eq(&made, &input.source_output), "the writer's notice is the one waited for");
        // Once it is out, the part after it is predicted.
        input.batch.muxed_until.store(1200 * MS, Ordering::Release);
        assert!(media_by(&input) > input.leads.epoch + Duration::from_millis(1300));
    }

    #[test]
    fn without_parts_frames_wait_for_the_cut_or_the_cap() {
        let mut b = batch(false);
        b.muxed_until.store(2000 * MS, Ordering::Release);
        b.cut_at.store(2000 * MS, Ordering::Relaxed);
        // The fragment ending at the cut at 2 s is out: frames wait, up to the cap.
        for i in 0..BATCH_MAX - 1 {
            assert!(!frame(&mut b, Track::Audio, 2001 + i as u64 * 21, false));
        }
        assert!(frame(&mut b, Track::Audio, 2600, false));
        b.held.clear();
        // A cut at 4 s, not yet muxed: the keyframe goes, and every frame at or past it.
        b.cut_at.store(4000 * MS, Ordering::Relaxed);
        assert!(!frame(&mut b, Track::Audio, 3990, false));
        assert!(frame(&mut b, Track::Video, 4000, true));
        b.held.clear();
        assert!(frame(&mut b, Track::Audio, 4011, false));
    }

    #[test]
    fn only_the_chunk_that_ends_at_the_cut_ends_the_segment() {
        // A 24 fps keyframe at 2000 ms, the split asked for just after the frame before it.
        let (cut, chunk) = ((2000 * MS, 1959 * MS), 200 * MS);
        assert!(ends_at_cut(Some(1800 * MS), Some(2000 * MS), cut, chunk));
        // Its target short of the keyframe but past the split: whole frames of 208 ms.
        assert!(ends_at_cut(Some(1792 * MS), Some(2000 * MS), cut, chunk));
        // Its target reached the cut from further back (the muxer shortened it to the cut).
        assert!(ends_at_cut(Some(1917 * MS), Some(2000 * MS), cut, chunk));
        // Ending at the cut with a target short of the split: the muxer goes on.
        assert!(!ends_at_cut(Some(1750 * MS), Some(2000 * MS), cut, chunk));
        // Past the cut (the fragment went on), from the cut (the next fragment's), before it.
        assert!(!ends_at_cut(Some(1900 * MS), Some(2100 * MS), cut, chunk));
        assert!(!ends_at_cut(Some(2000 * MS), Some(2200 * MS), cut, chunk));
        assert!(!ends_at_cut(Some(1750 * MS), Some(1959 * MS), cut, chunk));
        // No cut asked for yet (the first fragment), or no timing known.
        assert!(!ends_at_cut(Some(0), Some(200 * MS), (0, 0), chunk));
        assert!(!ends_at_cut(None, Some(2000 * MS), cut, chunk));
        assert!(!ends_at_cut(Some(1800 * MS), None, cut, chunk));
    }
}
