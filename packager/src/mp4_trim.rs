//! The last step of an MP4 export: the index (`moov`) put before the media (fast start), its
//! edit lists set, and, for a clip, its ends cut to the frame without re-encoding. A clip's
//! media are whole segments, each starting at a keyframe, so the file decodes from its first
//! frame; each track's edit list (`edts/elst`, ISO/IEC 14496-12 §8.6.6) then says which span
//! of it plays. Players (browsers, ffmpeg, QuickTime) decode the frames before the cut without
//! showing them and stop at the end: what `ffmpeg -ss … -to … -c copy` writes too.
//!
//! The muxer writes the index last; the `moov` is read whole (its sample tables: about 2 MB
//! for an hour of 30 fps video and AAC), rewritten, and the file written once more with it in
//! front, every chunk offset moved with the box it points into: the only copy of the media
//! after the muxer's own write. Boxes are walked by hand, as in `bmff`: the few fields touched
//! here do not warrant a full MP4 model whose writer must round-trip every box GStreamer emits.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// How much of the video's timeline to cut off at each end, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trim {
    pub head_ns: u64,
    pub tail_ns: u64,
}

/// A `moov` larger than this is refused (an hour of 30 fps video and AAC needs about 2 MB).
const MAX_MOOV: u64 = 64 << 20;
/// Boxes on the way from `moov` to what is rewritten.
const CONTAINERS: [&[u8; 4]; 6] = [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"];
/// Playback rate 1.0 in an edit (16.16 fixed point).
const RATE_ONE: u32 = 0x0001_0000;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Writes the MP4 at `path` again, through `scratch`, as a fast-start file with `trim` cut
/// off its ends by edit lists; with no trim, the edit lists set right (see [`TrackTiming`]).
pub fn finish_file(path: &Path, scratch: &Path, trim: Trim) -> io::Result<()> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let boxes = top_boxes(&mut file, len)?;
    let (moov_at, moov_size) =
        boxes.iter().find(|b| &b.0 == b"moov").map(|b| (b.1, b.2)).ok_or_else(|| invalid("no moov box"))?;
    if moov_size > MAX_MOOV {
        return Err(invalid(format!("moov of {moov_size} bytes")));
    }
    let mut moov = vec![0; moov_size as usize];
    file.seek(SeekFrom::Start(moov_at))?;
    file.read_exact(&mut moov)?;
    let mut moov = trim_moov(&moov, trim)?;

    // The order written: the boxes as they were, the moov moved before the first mdat.
    let mut order: Vec<&TopBox> = boxes.iter().filter(|b| &b.0 != b"moov").collect();
    let media_at = order.iter().position(|b| &b.0 == b"mdat").unwrap_or(order.len());
    let moov_box = boxes.iter().find(|b| &b.0 == b"moov").ok_or_else(|| invalid("no moov box"))?;
    order.insert(media_at, moov_box);
    // Chunk offsets do not change the moov's size: its new size is known before they move.
    let moov_len = serialized(&moov).len() as u64;
    let mut starts = Vec::with_capacity(order.len());
    let mut at = 0u64;
    for b in &order {
        starts.push((b.1, b.2, at));
        at += if &b.0 == b"moov" { moov_len } else { b.2 };
    }
    // An offset into a box moves with the box.
    let moved = |offset: u64| -> io::Result<u64> {
        let (old, _, new) = starts
            .iter()
            .find(|(old, size, _)| (*old..old + size).contains(&offset))
            .ok_or_else(|| invalid(format!("a chunk offset ({offset}) outside every box")))?;
        Ok(offset - old + new)
    };
    for trak in moov.children_mut().into_iter().flatten().filter(|c| &c.kind == b"trak") {
        for kind in [b"stco", b"co64"] {
            if let Some(table) = trak.find_mut(&[b"mdia", b"minf", b"stbl", kind]).and_then(Node::leaf_mut) {
                move_chunk_offsets(table, kind == b"co64", &moved)?;
            }
        }
    }
    let moov = serialized(&moov);

    let mut out = BufWriter::new(File::create(scratch)?);
    for b in order {
        if &b.0 == b"moov" {
            out.write_all(&moov)?;
        } else {
            file.seek(SeekFrom::Start(b.1))?;
            let copied = io::copy(&mut (&mut file).take(b.2), &mut out)?;
            if copied != b.2 {
                return Err(invalid("the file ended inside a box"));
            }
        }
    }
    // Not synced: the file is a step on the way to the store, not the stored copy.
    out.flush()?;
    drop(out);
    std::fs::rename(scratch, path)
}

/// A top-level box: its type, offset and size.
type TopBox = ([u8; 4], u64, u64);

fn top_boxes(file: &mut File, len: u64) -> io::Result<Vec<TopBox>> {
    let mut boxes = Vec::new();
    let mut at = 0;
    while let Some((kind, size)) = box_at(file, at, len)? {
        boxes.push((kind, at, size));
        at += size;
    }
    Ok(boxes)
}

/// The duration of the MP4 at `path`, from its movie header (read alone, not the sample tables).
pub(crate) fn movie_duration(path: &Path) -> io::Result<std::time::Duration> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let (moov_at, moov_size) = find_box(&mut file, (0, len), b"moov")?.ok_or_else(|| invalid("no moov box"))?;
    let (mvhd_at, mvhd_size) =
        find_box(&mut file, (moov_at + 8, moov_at + moov_size), b"mvhd")?.ok_or_else(|| invalid("no mvhd box"))?;
    let mut mvhd = vec![0; usize::try_from(mvhd_size.min(256)).unwrap_or(256)];
    file.seek(SeekFrom::Start(mvhd_at))?;
    file.read_exact(&mut mvhd)?;
    let mvhd = mvhd.get(8..).unwrap_or_default();
    let (v0, v1) = MVHD_TIMESCALE;
    let scale = be_u32(mvhd, versioned_field(mvhd, v0, v1)?.0)?;
    let (v0, v1) = MVHD_DURATION;
    let duration = read_duration(mvhd, versioned_field(mvhd, v0, v1)?)?;
    Ok(std::time::Duration::from_nanos(rescale(duration, scale, 1_000_000_000)))
}

/// The offset and size of the first box of `kind` among those from `from` to `to` in the file.
fn find_box(file: &mut File, (from, to): (u64, u64), kind: &[u8; 4]) -> io::Result<Option<(u64, u64)>> {
    let mut at = from;
    while let Some((found, size)) = box_at(file, at, to)? {
        if &found == kind {
            return Ok(Some((at, size)));
        }
        at += size;
    }
    Ok(None)
}

/// The type and size of the box at `at`, in a container ending at `to`; `None` at its end.
fn box_at(file: &mut File, at: u64, to: u64) -> io::Result<Option<([u8; 4], u64)>> {
    if at.saturating_add(8) > to {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(at))?;
    let mut header = [0u8; 16];
    let got = file.read(&mut header)?;
    let size = match u32::from_be_bytes([header[0], header[1], header[2], header[3]]) {
        0 => to - at,
        1 if got >= 16 => u64::from_be_bytes(header[8..16].try_into().unwrap_or_default()),
        n => u64::from(n),
    };
    if size < 8 || at.checked_add(size).is_none_or(|end| end > to) {
        return Err(invalid(format!("a box at {at} overruns its container")));
    }
    Ok(Some(([header[4], header[5], header[6], header[7]], size)))
}

/// A box: its payload, or its children for the containers walked.
struct Node {
    kind: [u8; 4],
    body: Body,
}

enum Body {
    Leaf(Vec<u8>),
    Children(Vec<Node>),
}

fn parse(mut data: &[u8]) -> io::Result<Vec<Node>> {
    let mut nodes = Vec::new();
    while !data.is_empty() {
        let short = || invalid("a truncated box in moov");
        let size32 = u32::from_be_bytes(data.get(..4).ok_or_else(short)?.try_into().map_err(|_| short())?);
        let kind: [u8; 4] = data.get(4..8).ok_or_else(short)?.try_into().map_err(|_| short())?;
        let (header, size) = match size32 {
            0 => (8, data.len()),
            1 => {
                let large = u64::from_be_bytes(data.get(8..16).ok_or_else(short)?.try_into().map_err(|_| short())?);
                (16, usize::try_from(large).map_err(|_| short())?)
            }
            n => (8, n as usize),
        };
        let payload = data.get(header..size).ok_or_else(short)?;
        let body =
            if CONTAINERS.contains(&&kind) { Body::Children(parse(payload)?) } else { Body::Leaf(payload.to_vec()) };
        nodes.push(Node { kind, body });
        data = &data[size..];
    }
    Ok(nodes)
}

fn serialize(node: &Node, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&node.kind);
    match &node.body {
        Body::Leaf(payload) => out.extend_from_slice(payload),
        Body::Children(children) => children.iter().for_each(|c| serialize(c, out)),
    }
    // Boxes in a moov of at most MAX_MOOV bytes fit a 32-bit size.
    let size = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

impl Node {
    fn children(&self) -> &[Node] {
        match &self.body {
            Body::Children(c) => c,
            Body::Leaf(_) => &[],
        }
    }

    fn children_mut(&mut self) -> Option<&mut Vec<Node>> {
        match &mut self.body {
            Body::Children(c) => Some(c),
            Body::Leaf(_) => None,
        }
    }

    fn leaf(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Leaf(p) => Some(p),
            Body::Children(_) => None,
        }
    }

    fn leaf_mut(&mut self) -> Option<&mut Vec<u8>> {
        match &mut self.body {
            Body::Leaf(p) => Some(p),
            Body::Children(_) => None,
        }
    }

    fn find(&self, path: &[&[u8; 4]]) -> Option<&Node> {
        let (first, rest) = path.split_first()?;
        let found = self.children().iter().find(|c| &c.kind == *first)?;
        if rest.is_empty() { Some(found) } else { found.find(rest) }
    }

    fn find_mut(&mut self, path: &[&[u8; 4]]) -> Option<&mut Node> {
        let (first, rest) = path.split_first()?;
        let found = self.children_mut()?.iter_mut().find(|c| &c.kind == *first)?;
        if rest.is_empty() { Some(found) } else { found.find_mut(rest) }
    }
}

fn be_u32(data: &[u8], at: usize) -> io::Result<u32> {
    data.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes).ok_or_else(|| invalid("short box"))
}

fn be_u64(data: &[u8], at: usize) -> io::Result<u64> {
    data.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or_else(|| invalid("short box"))
}

/// Where a full box (`mvhd`, `tkhd`, `mdhd`) keeps a field whose width follows its version,
/// and whether it is 64-bit: `offset_v0`/`offset_v1` are its offsets in versions 0 and 1.
fn versioned_field(payload: &[u8], offset_v0: usize, offset_v1: usize) -> io::Result<(usize, bool)> {
    match payload.first() {
        Some(1) => Ok((offset_v1, true)),
        Some(0) => Ok((offset_v0, false)),
        _ => Err(invalid("unknown box version")),
    }
}

fn read_duration(payload: &[u8], (at, wide): (usize, bool)) -> io::Result<u64> {
    if wide { be_u64(payload, at) } else { be_u32(payload, at).map(u64::from) }
}

fn write_duration(payload: &mut [u8], (at, wide): (usize, bool), value: u64) -> io::Result<()> {
    let short = || invalid("short box");
    if wide {
        payload.get_mut(at..at + 8).ok_or_else(short)?.copy_from_slice(&value.to_be_bytes());
    } else {
        let value = u32::try_from(value).map_err(|_| invalid("a duration past 32 bits in a version 0 box"))?;
        payload.get_mut(at..at + 4).ok_or_else(short)?.copy_from_slice(&value.to_be_bytes());
    }
    Ok(())
}

// The fields read and written, by version: after version/flags come the creation and
// modification times (4 or 8 bytes each), then the timescale (mvhd, mdhd) or the track id and
// a reserved word (tkhd), then the duration.
const MVHD_DURATION: (usize, usize) = (16, 24);
const MDHD_TIMESCALE: (usize, usize) = (12, 20);
const MVHD_TIMESCALE: (usize, usize) = (12, 20);
const TKHD_DURATION: (usize, usize) = (20, 28);

/// One edit: `duration` in the movie's timescale, `media_time` in the track's (-1: empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Edit {
    duration: u64,
    media_time: i64,
    rate: u32,
}

fn read_edits(elst: &[u8]) -> io::Result<Vec<Edit>> {
    let wide = match elst.first() {
        Some(1) => true,
        Some(0) => false,
        _ => return Err(invalid("unknown elst version")),
    };
    let count = be_u32(elst, 4)? as usize;
    let entry = if wide { 20 } else { 12 };
    if elst.len() < 8 + count.saturating_mul(entry) {
        return Err(invalid("short elst"));
    }
    (0..count)
        .map(|i| {
            let at = 8 + i * entry;
            Ok(if wide {
                Edit {
                    duration: be_u64(elst, at)?,
                    media_time: be_u64(elst, at + 8)? as i64,
                    rate: be_u32(elst, at + 16)?,
                }
            } else {
                Edit {
                    duration: u64::from(be_u32(elst, at)?),
                    media_time: i64::from(be_u32(elst, at + 4)? as i32),
                    rate: be_u32(elst, at + 8)?,
                }
            })
        })
        .collect()
}

fn write_edits(edits: &[Edit]) -> Vec<u8> {
    let wide = edits.iter().any(|e| u32::try_from(e.duration).is_err() || i32::try_from(e.media_time).is_err());
    let mut out = vec![u8::from(wide), 0, 0, 0];
    out.extend_from_slice(&(edits.len() as u32).to_be_bytes());
    for e in edits {
        if wide {
            out.extend_from_slice(&e.duration.to_be_bytes());
            out.extend_from_slice(&e.media_time.to_be_bytes());
        } else {
            out.extend_from_slice(&(e.duration as u32).to_be_bytes());
            out.extend_from_slice(&(e.media_time as i32).to_be_bytes());
        }
        out.extend_from_slice(&e.rate.to_be_bytes());
    }
    out
}

/// `value` in timescale `from`, in timescale `to`, rounded to the nearest.
fn rescale(value: u64, from: u32, to: u32) -> u64 {
    ((u128::from(value) * u128::from(to) + u128::from(from) / 2) / u128::from(from.max(1))) as u64
}

/// The part of a track's edit list that falls in the movie's `[from, to)`.
fn slice(edits: &[Edit], (from, to): (u64, u64), movie_scale: u32, media_scale: u32) -> Vec<Edit> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for edit in edits {
        let (start, end) = (at.max(from), (at + edit.duration).min(to));
        if start < end {
            let skipped = i64::try_from(rescale(start - at, movie_scale, media_scale)).unwrap_or(i64::MAX);
            let media_time = match edit.media_time {
                -1 => -1,
                // A dwell (rate 0) holds one moment however much of it is cut.
                t if edit.rate == 0 => t,
                t => t.saturating_add(skipped),
            };
            out.push(Edit { duration: end - start, media_time, rate: edit.rate });
        }
        at += edit.duration;
    }
    out
}

/// What a track says of its timing.
struct TrackTiming {
    video: bool,
    media_scale: u32,
    /// Its edit list as it should be: the empty edit before it (the movie's time before its
    /// first frame), then all of its media, from its first presentation time to its last
    /// frame's end. (GStreamer 1.22's mp4mux ends a video edit at the last frame in decode
    /// order: the last frame shown, one with B-frames, would not be.)
    edits: Vec<Edit>,
}

fn track_timing(trak: &Node, movie_scale: u32) -> io::Result<TrackTiming> {
    let leaf =
        |path: &[&[u8; 4]]| trak.find(path).and_then(Node::leaf).ok_or_else(|| invalid("a track without its boxes"));
    let mdhd = leaf(&[b"mdia", b"mdhd"])?;
    let hdlr = leaf(&[b"mdia", b"hdlr"])?;
    let (v0, v1) = MDHD_TIMESCALE;
    let media_scale = be_u32(mdhd, versioned_field(mdhd, v0, v1)?.0)?;
    let stbl = [b"mdia", b"minf", b"stbl"];
    let stts = leaf(&[stbl[0], stbl[1], stbl[2], b"stts"])?;
    let ctts = trak.find(&[stbl[0], stbl[1], stbl[2], b"ctts"]).and_then(Node::leaf);
    let lead: u64 = match trak.find(&[b"edts", b"elst"]).and_then(Node::leaf) {
        Some(elst) => read_edits(elst)?.iter().take_while(|e| e.media_time == -1).map(|e| e.duration).sum(),
        None => 0,
    };
    let mut edits = Vec::new();
    if lead > 0 {
        edits.push(Edit { duration: lead, media_time: -1, rate: RATE_ONE });
    }
    if let Some((first, end)) = presentation_span(stts, ctts)? {
        let duration = rescale(u64::try_from(end - first).unwrap_or(0), media_scale, movie_scale);
        // A negative first composition time (signed offsets) is shown from 0.
        edits.push(Edit { duration, media_time: first.max(0), rate: RATE_ONE });
    }
    Ok(TrackTiming { video: hdlr.get(8..12) == Some(b"vide"), media_scale, edits })
}

/// Runs of (sample count, value) of an `stts` or `ctts` table.
fn runs(table: &[u8]) -> io::Result<Vec<(u32, u32)>> {
    let count = be_u32(table, 4)? as usize;
    if table.len() < 8 + count.saturating_mul(8) {
        return Err(invalid("short sample table"));
    }
    (0..count).map(|i| Ok((be_u32(table, 8 + i * 8)?, be_u32(table, 12 + i * 8)?))).collect()
}

/// The first presentation time of a track's samples and the end of its last one shown, in
/// its timescale; `None` without samples.
fn presentation_span(stts: &[u8], ctts: Option<&[u8]>) -> io::Result<Option<(i64, i64)>> {
    // Version 1 composition offsets are signed; version 0 ones are not, but muxers write
    // small negative ones there too: read as signed either way.
    let mut offsets = match ctts {
        Some(ctts) => runs(ctts)?,
        None => Vec::new(),
    }
    .into_iter()
    .flat_map(|(n, offset)| std::iter::repeat_n(i64::from(offset as i32), n as usize));
    let (mut dts, mut span) = (0i64, None::<(i64, i64)>);
    for (n, delta) in runs(stts)? {
        for _ in 0..n {
            let pts = dts + offsets.next().unwrap_or(0);
            let end = pts + i64::from(delta);
            span = Some(span.map_or((pts, end), |(first, last)| (first.min(pts), last.max(end))));
            dts += i64::from(delta);
        }
    }
    Ok(span)
}

/// The `moov` (whole box, at `moov_at` in the file) with `trim` cut off the video's timeline
/// and every track's edit list cut to the same span of the movie.
fn trim_moov(moov: &[u8], trim: Trim) -> io::Result<Node> {
    let mut top = parse(moov)?;
    let moov_node = match top.as_mut_slice() {
        [one] if &one.kind == b"moov" => one,
        _ => return Err(invalid("not one moov box")),
    };
    let mvhd = moov_node.find(&[b"mvhd"]).and_then(Node::leaf).ok_or_else(|| invalid("no mvhd"))?;
    let (v0, v1) = MVHD_TIMESCALE;
    let movie_scale = be_u32(mvhd, versioned_field(mvhd, v0, v1)?.0)?;
    let timings = moov_node
        .children()
        .iter()
        .filter(|c| &c.kind == b"trak")
        .map(|trak| track_timing(trak, movie_scale))
        .collect::<io::Result<Vec<_>>>()?;
    let end_of = |t: &TrackTiming| -> u64 { t.edits.iter().map(|e| e.duration).sum() };
    let span = if trim == Trim::default() {
        // All of every track: from the movie's start to the end of the last.
        (0, timings.iter().map(end_of).max().unwrap_or(0))
    } else {
        let video = timings.iter().find(|t| t.video).ok_or_else(|| invalid("no video track"))?;
        // The video's first shown frame is where the clip's media start (its first keyframe);
        // an empty edit before it is the other tracks' lead.
        let lead: u64 = video.edits.iter().take_while(|e| e.media_time == -1).map(|e| e.duration).sum();
        let to_movie = |ns: u64| rescale(ns, 1_000_000_000, movie_scale);
        (lead + to_movie(trim.head_ns), end_of(video).saturating_sub(to_movie(trim.tail_ns)))
    };
    if span.1 <= span.0 {
        return Err(invalid("nothing of the video is left after the cut"));
    }

    let mut timings = timings.into_iter();
    for trak in moov_node.children_mut().into_iter().flatten().filter(|c| &c.kind == b"trak") {
        let timing = timings.next().ok_or_else(|| invalid("tracks changed"))?;
        let mut edits = slice(&timing.edits, span, movie_scale, timing.media_scale);
        if edits.is_empty() {
            // Nothing of the track in the span: an empty edit, not an empty list (which
            // players read as "no edit list", the whole track).
            edits.push(Edit { duration: span.1 - span.0, media_time: -1, rate: RATE_ONE });
        }
        let shown: u64 = edits.iter().map(|e| e.duration).sum();
        let tkhd = trak.find_mut(&[b"tkhd"]).and_then(Node::leaf_mut).ok_or_else(|| invalid("no tkhd"))?;
        let (v0, v1) = TKHD_DURATION;
        let field = versioned_field(tkhd, v0, v1)?;
        write_duration(tkhd, field, shown)?;
        let elst = Node { kind: *b"elst", body: Body::Leaf(write_edits(&edits)) };
        let edts = Node { kind: *b"edts", body: Body::Children(vec![elst]) };
        let children = trak.children_mut().ok_or_else(|| invalid("trak"))?;
        match children.iter().position(|c| &c.kind == b"edts") {
            Some(i) => children[i] = edts,
            // Where the standard puts it: after the track header.
            None => {
                let after = children.iter().position(|c| &c.kind == b"tkhd").map_or(0, |i| i + 1);
                children.insert(after, edts);
            }
        }
    }
    let mvhd = moov_node.find_mut(&[b"mvhd"]).and_then(Node::leaf_mut).ok_or_else(|| invalid("no mvhd"))?;
    let (v0, v1) = MVHD_DURATION;
    let field = versioned_field(mvhd, v0, v1)?;
    write_duration(mvhd, field, span.1 - span.0)?;

    Ok(top.remove(0))
}

fn serialized(node: &Node) -> Vec<u8> {
    let mut out = Vec::new();
    serialize(node, &mut out);
    out
}

/// Moves each chunk offset of an `stco` (or, `wide`, a `co64`) where `moved` says.
fn move_chunk_offsets(table: &mut [u8], wide: bool, moved: &dyn Fn(u64) -> io::Result<u64>) -> io::Result<()> {
    let count = be_u32(table, 4)? as usize;
    let width = if wide { 8 } else { 4 };
    if table.len() < 8 + count.saturating_mul(width) {
        return Err(invalid("short chunk offset table"));
    }
    for i in 0..count {
        let at = 8 + i * width;
        if wide {
            let offset = moved(be_u64(table, at)?)?;
            table[at..at + 8].copy_from_slice(&offset.to_be_bytes());
        } else {
            let offset = moved(u64::from(be_u32(table, at)?))?;
            let offset = u32::try_from(offset).map_err(|_| invalid("a chunk offset past 4 GB in stco"))?;
            table[at..at + 4].copy_from_slice(&offset.to_be_bytes());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(duration: u64, media_time: i64) -> Edit {
        Edit { duration, media_time, rate: RATE_ONE }
    }

    #[test]
    fn a_slice_keeps_the_span_of_each_edit() {
        // A track that starts 20 ms into the movie, its media from 0.1 s (B-frame delay).
        let edits = [edit(20, -1), edit(10_000, 9_000)];
        // Movie in ms, media at 90 kHz: from 1.5 s to 4 s.
        assert_eq!(slice(&edits, (1_500, 4_000), 1000, 90_000), [edit(2_500, 9_000 + 1_480 * 90)]);
        // A cut inside the empty edit keeps the rest of it.
        assert_eq!(slice(&edits, (10, 1_000), 1000, 90_000), [edit(10, -1), edit(980, 9_000)]);
        // Nothing of the track in the span.
        assert!(slice(&edits, (20_000, 30_000), 1000, 90_000).is_empty());
    }

    fn table(runs: &[(u32, u32)]) -> Vec<u8> {
        let mut out = vec![0, 0, 0, 0];
        out.extend_from_slice(&(runs.len() as u32).to_be_bytes());
        runs.iter().for_each(|(n, v)| out.extend([n.to_be_bytes(), v.to_be_bytes()].concat()));
        out
    }

    #[test]
    fn the_span_shown_ends_with_the_last_frame_in_presentation_order() {
        // I P B B at 3000 a frame, shown I B B P: the last one shown (P) is not the last decoded.
        let stts = table(&[(4, 3000)]);
        let ctts = table(&[(1, 3000), (1, 12_000), (2, 0)]);
        // Shown at 3000, 15000, 6000, 9000: from 3000 to 18000.
        assert_eq!(presentation_span(&stts, Some(&ctts)).unwrap(), Some((3000, 18_000)));
        assert_eq!(presentation_span(&stts, None).unwrap(), Some((0, 12_000)));
        assert_eq!(presentation_span(&table(&[]), None).unwrap(), None);
    }

    #[test]
    fn edit_lists_round_trip_in_both_versions() {
        let small = [edit(1_000, -1), edit(2_000, 3_000)];
        assert_eq!(read_edits(&write_edits(&small)).unwrap(), small);
        assert_eq!(write_edits(&small)[0], 0);
        let large = [edit(u64::from(u32::MAX) + 1, 5)];
        assert_eq!(read_edits(&write_edits(&large)).unwrap(), large);
        assert_eq!(write_edits(&large)[0], 1);
    }

    #[test]
    fn chunk_offsets_move_with_their_box() {
        let mut stco = vec![0, 0, 0, 0, 0, 0, 0, 2];
        stco.extend_from_slice(&100u32.to_be_bytes());
        stco.extend_from_slice(&5_000u32.to_be_bytes());
        move_chunk_offsets(&mut stco, false, &|o| Ok(o + 24)).unwrap();
        assert_eq!((be_u32(&stco, 8).unwrap(), be_u32(&stco, 12).unwrap()), (124, 5_024));
        assert!(move_chunk_offsets(&mut stco, false, &|o| Ok(o + u64::from(u32::MAX))).is_err());
    }
}
