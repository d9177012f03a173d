//! One GStreamer pipeline per publish:
//! `appsrc ! flvdemux ! h264parse config-interval=-1 ! isofmp4mux ! appsink`
//! (+ `aacparse` into the same muxer), and the segmenter at the appsink.
//!
//! Two threads per publish: appsrc's (demux, parsers) and the muxer's (muxing, segmenter).
//! No `queue`s: the muxer's own sink pads buffer up to `MUX_QUEUE` of media each (its
//! `latency` property), which lets flvdemux's one thread feed both pads. Each thread hop
//! costs a wake-up per media buffer, and wake-ups, not bytes, dominate a passthrough
//! publish's CPU.
//!
//! With an ABR ladder, the parsers' output also goes (through `tee`s) to one more muxer per
//! rung: the audio as it is, the video through
//! `queue ! avdec_h264 ! videoconvert ! tee ! [queue ! videoscale ! x264enc]` per rung (the
//! source is decoded once). The source's keyframes decide every cut: where the source's
//! segment ends, each encoder is told to make a keyframe and each muxer to cut (see
//! `request_splits`), so segment N of every rendition starts at the same frame.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use gst::prelude::*;
use tokio::sync::mpsc;

use crate::bmff;
use crate::writer::{Msg, StreamInfo};
use crate::{PackagerError, Rendition};

/// The appsrc's queue; more than this means the pipeline fell hopelessly behind.
pub(crate) const MAX_QUEUED_BYTES: u64 = 16 * 1024 * 1024;

/// Elements a publish needs; checked at start-up so a publish cannot fail on a missing plugin.
pub(crate) const ELEMENTS: [&str; 6] = ["appsrc", "flvdemux", "h264parse", "aacparse", "isofmp4mux", "appsink"];

/// Elements an ABR ladder needs on top; without them, streams are passthrough only.
pub(crate) const LADDER_ELEMENTS: [&str; 7] =
    ["tee", "queue", "avdec_h264", "videoconvert", "videoscale", "capsfilter", "x264enc"];

/// Media each muxer sink pad may hold before it blocks flvdemux's thread. Non-live, a pad
/// with the aggregator's default `latency` (0) is full with one buffer, and the muxer only
/// takes a buffer once every pad has one: two video tags in a row would block the only
/// thread that could deliver the audio (deadlock). FLV interleaves tracks by time, so any
/// margin above the publisher's A/V interleave works; 10 s is what the branch queues held.
const MUX_QUEUE: gst::ClockTime = gst::ClockTime::from_seconds(10);

/// The muxer's chunk duration as a share of the LL-HLS part target (see `start`).
const CHUNK_SHARE: f64 = 0.5;

/// x264's own keyframe interval, in frames: the cuts force keyframes where the source has
/// them, so x264 adds one only in a source GOP longer than this.
const LADDER_KEYINT_MAX: u32 = 600;

/// What the pipeline tells the publish's monitor task.
pub(crate) enum BusEvent {
    Eos,
    Error(String),
}

pub(crate) struct Built {
    pub pipeline: gst::Pipeline,
    pub appsrc: gst_app::AppSrc,
    pub bus: mpsc::UnboundedReceiver<BusEvent>,
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

fn mux_pad(mux: &gst::Element) -> Result<gst::Pad, PackagerError> {
    mux.request_pad_simple("sink_%u").ok_or_else(|| PackagerError::Gst("isofmp4mux refused a sink pad".into()))
}

/// Builds and starts the pipeline of publish `publish`. `has_audio` decides whether an audio
/// branch exists: the muxer waits for data on every sink pad, so a pad that never gets audio
/// would stall it. `(fragment, part)`: segment target and LL-HLS part target. `ladder`: the
/// rungs transcoded next to the source (renditions 1, 2, …).
pub(crate) fn start(
    publish: u64,
    has_audio: bool,
    (fragment, part): (Duration, Option<Duration>),
    ladder: &[Rendition],
    publish_wall: DateTime<Utc>,
    tx: mpsc::Sender<Msg>,
) -> Result<Built, PackagerError> {
    let pipeline = gst::Pipeline::new();
    let appsrc = gst_app::AppSrc::builder()
        .caps(&gst::Caps::builder("video/x-flv").build())
        .stream_type(gst_app::AppStreamType::Stream)
        .format(gst::Format::Bytes)
        // Not live: the muxer then waits for every track instead of timing out against the
        // pipeline clock, which the publisher's timestamps need not follow.
        .is_live(false)
        .block(false)
        .max_bytes(MAX_QUEUED_BYTES)
        .build();
    let demux = make("flvdemux")?;
    pipeline.add_many([appsrc.upcast_ref(), &demux]).map_err(|e| gst_err("adding elements", e))?;
    appsrc.link(&demux).map_err(|e| gst_err("linking appsrc", e))?;

    let fragment_ns = u64::try_from(fragment.as_nanos()).unwrap_or(u64::MAX);
    let muxes = (0..=ladder.len())
        .map(|rendition| {
            let segmenter = Segmenter {
                publish,
                rendition,
                publish_wall,
                elapsed_ns: 0,
                chunked: part.is_some(),
                track: None,
                tx: tx.clone(),
            };
            muxer(&pipeline, fragment_ns, part, segmenter)
        })
        .collect::<Result<Vec<_>, _>>()?;

    // Video: the source's muxer (its first pad: track order video, audio), then the ladder.
    let video = parser(&pipeline, "h264parse")?;
    let video_out = static_pad(&video, "src")?;
    let mut video_sinks = vec![mux_pad(&muxes[0])?];
    let encoders = match ladder.is_empty() {
        true => Vec::new(),
        false => {
            let (sink, encoders) = transcode(&pipeline, ladder, &muxes[1..])?;
            video_sinks.push(sink);
            encoders
        }
    };
    fan_out(&pipeline, &video_out, &video_sinks)?;
    request_splits(&video_out, &muxes, &encoders, fragment_ns);
    let video_in = static_pad(&video, "sink")?;
    let audio_in = match has_audio {
        true => {
            let audio = parser(&pipeline, "aacparse")?;
            let sinks = muxes.iter().map(mux_pad).collect::<Result<Vec<_>, _>>()?;
            fan_out(&pipeline, &static_pad(&audio, "src")?, &sinks)?;
            Some(static_pad(&audio, "sink")?)
        }
        false => None,
    };
    demux.connect_pad_added(move |_, pad| {
        let target = match pad.name().as_str() {
            "video" => Some(&video_in),
            "audio" => audio_in.as_ref(),
            _ => None,
        };
        // An unlinked pad (audio we did not announce) just reports not-linked for its data.
        if let Some(target) = target
            && let Err(err) = pad.link(target)
        {
            tracing::warn!(pad = %pad.name(), ?err, "linking flvdemux pad failed");
        }
    });

    let (bus_tx, bus) = mpsc::unbounded_channel();
    let bus_handle = pipeline.bus().ok_or_else(|| PackagerError::Gst("pipeline has no bus".into()))?;
    // A sync handler, so no GLib main loop is needed; messages are dropped, not queued.
    bus_handle.set_sync_handler(move |_, msg| {
        match msg.view() {
            gst::MessageView::Eos(_) => {
                let _ = bus_tx.send(BusEvent::Eos);
            }
            gst::MessageView::Error(err) => {
                let text = match err.debug() {
                    Some(debug) => format!("{} ({debug})", err.error()),
                    None => err.error().to_string(),
                };
                let _ = bus_tx.send(BusEvent::Error(text));
            }
            gst::MessageView::Warning(w) => tracing::warn!(warning = %w.error(), "GStreamer"),
            _ => {}
        }
        gst::BusSyncReply::Drop
    });

    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        let _ = pipeline.set_state(gst::State::Null);
        return Err(PackagerError::Gst(format!("starting the pipeline: {e}")));
    }
    Ok(Built { pipeline, appsrc, bus })
}

/// One rendition's `isofmp4mux ! appsink`, the segmenter at the appsink; returns the muxer.
fn muxer(
    pipeline: &gst::Pipeline,
    fragment_ns: u64,
    part: Option<Duration>,
    mut segmenter: Segmenter,
) -> Result<gst::Element, PackagerError> {
    let mux = make("isofmp4mux")?;
    // The muxer's own rule cuts at the last keyframe at or *before* its fragment end; the video
    // probe requests each cut at the first keyframe at/after the target instead. This longer
    // duration only caps a fragment when a GOP is pathologically long.
    mux.set_property("fragment-duration", fragment_ns.saturating_add(MAX_GOP_OVERSHOOT_NS));
    // The cuts follow the publisher's GOP (`request_splits`), not the muxer's wishes.
    mux.set_property("send-force-keyunit", false);
    mux.set_property("latency", MUX_QUEUE.nseconds());
    if let Some(part) = part {
        // Each chunk (moof + mdat) becomes an LL-HLS part; fragments still start at keyframes.
        // The muxer takes video in decode order, so with B-frames a chunk overshoots its
        // duration by up to about the reordering depth (measured: up to 100 ms with x264's
        // two B-frames at 30 fps): half of PART-TARGET keeps parts within it.
        let chunk = part.mul_f64(CHUNK_SHARE);
        mux.set_property("chunk-duration", u64::try_from(chunk.as_nanos()).unwrap_or(u64::MAX));
    }
    let appsink = gst_app::AppSink::builder().sync(false).buffer_list(true).enable_last_sample(false).build();
    pipeline.add_many([&mux, appsink.upcast_ref()]).map_err(|e| gst_err("adding muxer", e))?;
    mux.link(&appsink).map_err(|e| gst_err("linking muxer", e))?;
    appsink
        .set_callbacks(gst_app::AppSinkCallbacks::builder().new_sample(move |sink| segmenter.on_sample(sink)).build());
    Ok(mux)
}

/// A `{parser}` in the pipeline. The parsers run on flvdemux's single thread (so the split
/// probe on the video parser sees audio and video in FLV order) and push straight into the
/// muxers' pads (see `MUX_QUEUE`).
fn parser(pipeline: &gst::Pipeline, parser: &str) -> Result<gst::Element, PackagerError> {
    let parse = make(parser)?;
    if parser == "h264parse" {
        // FLV carries SPS/PPS once; in-band copies make every segment decodable on its own.
        parse.set_property("config-interval", -1i32);
    }
    pipeline.add(&parse).map_err(|e| gst_err("adding parser", e))?;
    Ok(parse)
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
        static_pad(&encode, "src")?.link(&mux_pad(mux)?).map_err(|e| gst_err("linking encoder to muxer", e))?;
        sinks.push(static_pad(&queue, "sink")?);
        encoders.push(encode);
    }
    fan_out(pipeline, &static_pad(&format, "src")?, &sinks)?;
    Ok((static_pad(&queue, "sink")?, encoders))
}

/// FLV timestamps are whole milliseconds: a keyframe this close to the target counts as at it.
const SPLIT_TOLERANCE_NS: u64 = 5_000_000;
/// How far past the target a GOP may end before the muxer cuts on its own.
const MAX_GOP_OVERSHOOT_NS: u64 = 10_000_000_000;

/// On the video parser's src pad: asks every muxer (`split-at-running-time`) to end the
/// fragment at the first keyframe at or after `target_ns` since the fragment began, and every
/// ladder encoder to make a keyframe at that frame (an upstream force-key-unit event, queued by
/// the encoder until a frame of that running time arrives), so all renditions cut at the same
/// frame. The requests are made before that keyframe reaches any muxer or encoder, and the
/// muxers cut by timestamp (audio follows the video's cut), so the result does not depend on
/// thread timing.
fn request_splits(pad: &gst::Pad, muxes: &[gst::Element], encoders: &[gst::Element], target_ns: u64) {
    let muxes: Vec<_> = muxes.iter().map(|m| m.downgrade()).collect();
    let encoders: Vec<_> = encoders.iter().map(|e| e.downgrade()).collect();
    // Probes are `Fn`; only this pad's streaming thread touches the start. MAX = none yet.
    let fragment_start = AtomicU64::new(u64::MAX);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer_mut() else { return gst::PadProbeReturn::Ok };
        // The muxer ends a GOP at max(PTS + duration); h264parse's nominal durations on
        // millisecond FLV timestamps overshoot the next keyframe by a fraction of a millisecond,
        // which would make it refuse the requested cut. Without durations a GOP ends exactly at
        // the next keyframe (sample durations still come from DTS differences).
        if buffer.duration().is_some() {
            buffer.make_mut().set_duration(None);
        }
        if buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
            return gst::PadProbeReturn::Ok;
        }
        let Some(pts) = buffer.pts() else { return gst::PadProbeReturn::Ok };
        let start = fragment_start.load(Ordering::Relaxed);
        if start != u64::MAX && pts.nseconds() + SPLIT_TOLERANCE_NS < start.saturating_add(target_ns) {
            return gst::PadProbeReturn::Ok;
        }
        fragment_start.store(pts.nseconds(), Ordering::Relaxed);
        if start == u64::MAX {
            return gst::PadProbeReturn::Ok;
        }
        let Some(running_time) = pad
            .sticky_event::<gst::event::Segment>(0)
            .and_then(|ev| ev.segment().downcast_ref::<gst::ClockTime>()?.to_running_time(pts))
        else {
            return gst::PadProbeReturn::Ok;
        };
        for encoder in encoders.iter().filter_map(|e| e.upgrade()) {
            let keyframe =
                gst_video::UpstreamForceKeyUnitEvent::builder().running_time(running_time).all_headers(true).build();
            encoder.send_event(keyframe);
        }
        for mux in muxes.iter().filter_map(|m| m.upgrade()) {
            mux.emit_by_name::<()>("split-at-running-time", &[&running_time]);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Splits the muxer's output into init and media segments. The muxer marks its buffers:
/// the init (ftyp+moov) is HEADER|DISCONT, a fragment's first buffer (styp+moof+mdat header)
/// is HEADER, and without `chunk-duration` each buffer list holds exactly one fragment. With
/// it, each buffer list is one chunk (a later chunk's moof is HEADER|DELTA_UNIT): an LL-HLS
/// part; the writer joins a segment's parts.
struct Segmenter {
    publish: u64,
    /// 0: the source; then the ladder's rungs.
    rendition: usize,
    /// Wall clock of the publish's first video frame: PROGRAM-DATE-TIME of its first segment.
    publish_wall: DateTime<Utc>,
    /// Media time of this publish's segments so far.
    elapsed_ns: u64,
    /// `chunk-duration` is set: each sample is one chunk (LL-HLS part), not a whole fragment.
    chunked: bool,
    /// From the latest init; times the segments.
    track: Option<bmff::VideoTrack>,
    tx: mpsc::Sender<Msg>,
}

impl Segmenter {
    fn on_sample(&mut self, sink: &gst_app::AppSink) -> Result<gst::FlowSuccess, gst::FlowError> {
        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
        // One small Vec per fragment (every couple of seconds), not per media buffer.
        let buffers: Vec<&gst::BufferRef> = match (sample.buffer_list(), sample.buffer()) {
            (Some(list), _) => list.iter().collect(),
            (None, Some(buffer)) => vec![buffer],
            (None, None) => return Ok(gst::FlowSuccess::Ok),
        };
        let mut rest = buffers.as_slice();
        if let Some((first, tail)) = rest.split_first()
            && first.flags().contains(gst::BufferFlags::HEADER | gst::BufferFlags::DISCONT)
        {
            let info = stream_info(sink);
            tracing::debug!(publish = self.publish, rendition = self.rendition, codecs = %info.codecs, "new init segment");
            let bytes = concat(&[*first]);
            self.track = bmff::video_track(&bytes);
            self.send(Msg::Init { publish: self.publish, rendition: self.rendition, bytes, info })?;
            rest = tail;
        }
        let Some(header) = rest.first() else { return Ok(gst::FlowSuccess::Ok) };
        // A fragment's first chunk is HEADER (styp + moof); a later chunk's moof HEADER|DELTA_UNIT.
        let first = !header.flags().contains(gst::BufferFlags::DELTA_UNIT);
        if !header.flags().contains(gst::BufferFlags::HEADER) || (!first && !self.chunked) {
            tracing::warn!(publish = self.publish, "muxer output without fragment header dropped");
            return Ok(gst::FlowSuccess::Ok);
        }
        let bytes = concat(rest);
        let duration_ns = match self.track.and_then(|t| bmff::video_duration_ns(&bytes, &t)) {
            Some(d) => d,
            None => {
                tracing::warn!(publish = self.publish, "no video timing in fragment; using the muxer's");
                header.duration().map_or(0, |d| d.nseconds())
            }
        };
        let offset = i64::try_from(self.elapsed_ns).unwrap_or(i64::MAX);
        let pdt = self.publish_wall + chrono::Duration::nanoseconds(offset);
        self.elapsed_ns += duration_ns;
        let last = !self.chunked;
        // A part lasts from its first presentation time to the next part's (the muxer's chunk
        // span); decode-order sample durations would misstate parts that hold B-frames.
        let part_ns = match header.duration() {
            Some(d) if self.chunked => d.nseconds(),
            _ => duration_ns,
        };
        let (publish, rendition) = (self.publish, self.rendition);
        self.send(Msg::Part { publish, rendition, bytes, duration_ns, part_ns, pdt, first, last })?;
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

/// One contiguous copy of the buffers (the store takes whole objects).
fn concat(buffers: &[&gst::BufferRef]) -> Bytes {
    let mut out = Vec::with_capacity(buffers.iter().map(|b| b.size()).sum());
    for b in buffers {
        if let Ok(map) = b.map_readable() {
            out.extend_from_slice(&map);
        }
    }
    Bytes::from(out)
}

/// CODECS, RESOLUTION and FRAME-RATE from the caps on the muxer's sink pads.
fn stream_info(sink: &gst_app::AppSink) -> StreamInfo {
    let mut info = StreamInfo { codecs: String::new(), resolution: None, frame_rate: None };
    let Some(mux) = sink.static_pad("sink").and_then(|p| p.peer()).and_then(|p| p.parent_element()) else {
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

/// `avc1.PPCCLL` from the avcC record (profile, constraint flags, level).
pub(crate) fn avc_codec(avcc: Option<&[u8]>) -> String {
    match avcc {
        Some([1, profile, compat, level, ..]) => format!("avc1.{profile:02x}{compat:02x}{level:02x}"),
        // Main 3.1 is the usual assumption when the record is missing.
        _ => "avc1.4d401f".to_owned(),
    }
}

/// `mp4a.40.{object type}` from the AudioSpecificConfig.
pub(crate) fn aac_codec(asc: Option<&[u8]>) -> String {
    let aot = match asc {
        Some([a, b, ..]) if a >> 3 == 31 => 32 + (((a & 0x07) << 3) | (b >> 5)),
        Some([a, ..]) if a >> 3 != 0 => a >> 3,
        _ => 2,
    };
    format!("mp4a.40.{aot}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_strings() {
        assert_eq!(avc_codec(Some(&[1, 0x64, 0x00, 0x1f, 0xff])), "avc1.64001f");
        assert_eq!(avc_codec(Some(&[1, 0x42, 0xc0, 0x1e])), "avc1.42c01e");
        assert_eq!(avc_codec(Some(&[0])), "avc1.4d401f");
        assert_eq!(avc_codec(None), "avc1.4d401f");
        // AAC-LC 48 kHz stereo: 0x11 0x90.
        assert_eq!(aac_codec(Some(&[0x11, 0x90])), "mp4a.40.2");
        // HE-AAC (SBR) = 5.
        assert_eq!(aac_codec(Some(&[0x2b, 0x92])), "mp4a.40.5");
        // Escape value 31: 32 + 6 bits.
        assert_eq!(aac_codec(Some(&[0xf8, 0x20])), "mp4a.40.33");
        assert_eq!(aac_codec(None), "mp4a.40.2");
    }
}
