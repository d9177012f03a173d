//! Just enough ISO-BMFF to time a segment and keep the source's timestamps: the video
//! track's timescale and defaults from the init segment, the summed sample durations of its
//! `traf`s in a fragment, and a rewrite of their composition offsets (see
//! `restore_composition_offsets`).
//! (The muxer's own buffer timestamps are not reliable with manual splits and audio.)

/// Iterates the boxes in `data` as (type, payload); stops at the first malformed one.
fn boxes(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let size = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let kind: [u8; 4] = rest.get(4..8)?.try_into().ok()?;
        let (header, size) = match size {
            1 => (16, usize::try_from(u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?)).ok()?),
            0 => (8, rest.len()),
            n => (8, n),
        };
        let payload = rest.get(header..size)?;
        rest = &rest[size..];
        Some((kind, payload))
    })
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data).find(|(k, _)| k == kind).map(|(_, p)| p)
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// The video track as the init segment describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VideoTrack {
    pub track_id: u32,
    pub timescale: u32,
    /// From `trex`, used when neither `tfhd` nor `trun` give a duration.
    pub default_duration: u32,
}

/// Finds the `vide` track in an init segment (ftyp + moov).
pub(crate) fn video_track(init: &[u8]) -> Option<VideoTrack> {
    let moov = child(init, b"moov")?;
    let (track_id, timescale) = boxes(moov).filter(|(k, _)| k == b"trak").find_map(|(_, trak)| {
        let tkhd = child(trak, b"tkhd")?;
        // Full box: version 1 has 64-bit creation/modification times before the track ID.
        let track_id = u32_at(tkhd, if tkhd.first()? == &1 { 20 } else { 12 })?;
        let mdia = child(trak, b"mdia")?;
        let hdlr = child(mdia, b"hdlr")?;
        if hdlr.get(8..12)? != b"vide" {
            return None;
        }
        let mdhd = child(mdia, b"mdhd")?;
        let timescale = u32_at(mdhd, if mdhd.first()? == &1 { 20 } else { 12 })?;
        Some((track_id, timescale))
    })?;
    let default_duration = child(moov, b"mvex")
        .into_iter()
        .flat_map(|mvex| boxes(mvex).filter(|(k, _)| k == b"trex"))
        .find(|(_, trex)| u32_at(trex, 4) == Some(track_id))
        .and_then(|(_, trex)| u32_at(trex, 12))
        .unwrap_or(0);
    (timescale > 0).then_some(VideoTrack { track_id, timescale, default_duration })
}

/// Duration of the video samples in a media segment (styp, moof, mdat, …), in nanoseconds: 0
/// for fragments of audio only (the audio that outlasts the video at the end of a publish);
/// `None` without a readable `moof`.
pub(crate) fn video_duration_ns(segment: &[u8], track: &VideoTrack) -> Option<u64> {
    let mut total: u64 = 0;
    let mut moofs = 0;
    for (_, moof) in boxes(segment).filter(|(k, _)| k == b"moof") {
        moofs += 1;
        for (_, traf) in boxes(moof).filter(|(k, _)| k == b"traf") {
            let tfhd = child(traf, b"tfhd")?;
            if u32_at(tfhd, 4)? != track.track_id {
                continue;
            }
            total += traf_duration(traf, tfhd, track.default_duration)?;
        }
    }
    (moofs > 0).then(|| total.saturating_mul(1_000_000_000) / u64::from(track.timescale))
}

/// `(start, end)` of each box's payload in `data[from..to]` with its type, by offset.
fn box_ranges(data: &[u8], from: usize, to: usize) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    let mut at = from;
    while at + 8 <= to {
        let Some(size) = data.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes) else { break };
        let Some(kind) = data.get(at + 4..at + 8).and_then(|b| <[u8; 4]>::try_from(b).ok()) else { break };
        let (header, size) = match size {
            1 => match data.get(at + 8..at + 16).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes) {
                Some(large) => (16, usize::try_from(large).unwrap_or(usize::MAX)),
                None => break,
            },
            0 => (8, to - at),
            n => (8, n as usize),
        };
        if size < header || at.saturating_add(size) > to {
            break;
        }
        out.push((kind, at + header, at + size));
        at += size;
    }
    out
}

/// Gives the video samples of each fragment the source's decode times and composition
/// offsets.
///
/// The muxer is given each video frame's decode time plus `shift_ns` as its presentation
/// time (see `pipeline::decode_order_times`), so that it can end a chunk at any frame: its
/// sample durations are the source's decode times, its `tfdt`s are the source's decode times
/// plus `shift_ns` (it decodes each sample at its presentation time), and its composition
/// offsets are all zero. Each video `tfdt` is moved back by `shift_ns`, and `source_cts(n)`
/// gives the source offsets (ns) of the next `n` samples of the track, in decode order, and
/// consumes them; each is written into its sample's `trun` entry (a `trun` without offsets is
/// given room for them first), with signed offsets (`trun` version 1) where one is negative.
/// A fragment that cannot be read is left as it is.
pub(crate) fn restore_composition_offsets(
    segment: &mut Vec<u8>,
    track: &VideoTrack,
    shift_ns: i64,
    mut source_cts: impl FnMut(usize) -> Vec<i64>,
) {
    add_composition_offsets(segment, track);
    for traf in traf_positions(segment) {
        if u32_at(segment, traf.tfhd + 4) != Some(track.track_id) {
            continue;
        }
        if shift_ns != 0
            && let Some(tfdt) = traf.tfdt
        {
            move_tfdt(segment, tfdt, -ticks(shift_ns, track.timescale));
        }
        for &(trun, _) in &traf.truns {
            let Some(fields) = cto_offsets(segment, trun) else {
                // Its samples' offsets are still used up, so that later ones stay in step.
                source_cts(u32_at(segment, trun + 4).map_or(0, |n| n as usize));
                continue;
            };
            let offsets = source_cts(fields.len());
            let ticks: Vec<i64> = offsets.iter().map(|&ns| ticks(ns, track.timescale)).collect();
            if ticks.iter().any(|&t| t < 0) {
                segment[trun] = 1;
            }
            for (at, t) in fields.into_iter().zip(ticks) {
                let t = i32::try_from(t).unwrap_or(if t < 0 { i32::MIN } else { i32::MAX });
                segment[at..at + 4].copy_from_slice(&t.to_be_bytes());
            }
        }
    }
}

/// `ns` in ticks of `timescale`, to the nearest.
fn ticks(ns: i64, timescale: u32) -> i64 {
    (ns.saturating_mul(i64::from(timescale)) + 500_000_000).div_euclid(1_000_000_000)
}

/// Moves the `tfdt` whose payload is at `tfdt.0..tfdt.1` by `by` ticks, in place; false if
/// it cannot be read or the time would not fit.
fn move_tfdt(segment: &mut [u8], (tfdt, end): (usize, usize), by: i64) -> bool {
    let wide = segment.get(tfdt) == Some(&1);
    if end < tfdt + if wide { 12 } else { 8 } {
        return false;
    }
    let written = match wide {
        true => segment[tfdt + 4..tfdt + 12].try_into().map(u64::from_be_bytes).unwrap_or(0),
        false => u64::from(u32_at(segment, tfdt + 4).unwrap_or(0)),
    };
    let moved = i128::from(written) + i128::from(by);
    match wide {
        true => match u64::try_from(moved) {
            Ok(v) => segment[tfdt + 4..tfdt + 12].copy_from_slice(&v.to_be_bytes()),
            Err(_) => return false,
        },
        false => match u32::try_from(moved) {
            Ok(v) => segment[tfdt + 4..tfdt + 8].copy_from_slice(&v.to_be_bytes()),
            Err(_) => return false,
        },
    }
    true
}

/// Where a `traf`'s boxes are in a segment: payload offsets of its `tfhd`, its `tfdt`
/// (start, end) and its `trun`s (start, end).
struct TrafAt {
    tfhd: usize,
    tfdt: Option<(usize, usize)>,
    truns: Vec<(usize, usize)>,
}

/// Every `traf` (with a `tfhd`) of every `moof` of a segment, in order.
fn traf_positions(segment: &[u8]) -> Vec<TrafAt> {
    let mut out = Vec::new();
    for (_, moof_start, moof_end) in box_ranges(segment, 0, segment.len()).into_iter().filter(|(k, ..)| k == b"moof") {
        for (_, start, end) in box_ranges(segment, moof_start, moof_end).into_iter().filter(|(k, ..)| k == b"traf") {
            let children = box_ranges(segment, start, end);
            let find = |kind: &[u8; 4]| children.iter().find(|(k, ..)| k == kind).map(|&(_, s, e)| (s, e));
            let Some((tfhd, _)) = find(b"tfhd") else { continue };
            let truns = children.iter().filter(|(k, ..)| k == b"trun").map(|&(_, s, e)| (s, e)).collect();
            out.push(TrafAt { tfhd, tfdt: find(b"tfdt"), truns });
        }
    }
    out
}

/// Adds a composition time offset field (zero) to each sample of the video track's `trun`s that
/// lack one, fixing up the box sizes and the data offsets into the `mdat`s that follow.
fn add_composition_offsets(segment: &mut Vec<u8>, track: &VideoTrack) {
    let mut moofs: Vec<(usize, usize)> = box_ranges(segment, 0, segment.len())
        .into_iter()
        .filter(|(k, ..)| k == b"moof")
        .map(|(_, s, e)| (s, e))
        .collect();
    // From the last moof back, so that earlier positions stay valid.
    moofs.reverse();
    for (moof_start, moof_end) in moofs {
        let mut inserts = Vec::new();
        for (_, traf_start, traf_end) in
            box_ranges(segment, moof_start, moof_end).into_iter().filter(|(k, ..)| k == b"traf")
        {
            let children = box_ranges(segment, traf_start, traf_end);
            let Some(&(_, tfhd, _)) = children.iter().find(|(k, ..)| k == b"tfhd") else { continue };
            // An explicit base data offset is absolute: moving the mdat would need it changed too.
            if u32_at(segment, tfhd + 4) != Some(track.track_id) || u32_at(segment, tfhd).is_none_or(|f| f & 0x1 != 0) {
                continue;
            }
            for &(_, trun, trun_end) in children.iter().filter(|(k, ..)| k == b"trun") {
                if u32_at(segment, trun).is_some_and(|f| f & 0x800 == 0) {
                    inserts.push((traf_start, trun, trun_end));
                }
            }
        }
        let mut total = 0;
        for &(traf_start, trun, trun_end) in inserts.iter().rev() {
            let Some(added) = widen_trun(segment, trun, trun_end) else { return };
            for header in [moof_start - 8, traf_start - 8, trun - 8] {
                let Some(size) = u32_at(segment, header) else { return };
                segment[header..header + 4].copy_from_slice(&(size + added as u32).to_be_bytes());
            }
            total += added;
        }
        if total == 0 {
            continue;
        }
        // Every trun's data offset (from the moof's start) now lands `total` bytes later.
        let moof_end = moof_end + total;
        for (_, traf_start, traf_end) in
            box_ranges(segment, moof_start, moof_end).into_iter().filter(|(k, ..)| k == b"traf")
        {
            for (_, trun, _) in box_ranges(segment, traf_start, traf_end).into_iter().filter(|(k, ..)| k == b"trun") {
                if u32_at(segment, trun).is_some_and(|f| f & 0x1 != 0)
                    && let Some(offset) = u32_at(segment, trun + 8)
                {
                    segment[trun + 8..trun + 12].copy_from_slice(&(offset + total as u32).to_be_bytes());
                }
            }
        }
    }
}

/// Rewrites the `trun` payload at `trun..end` with a zero composition offset per sample;
/// returns the bytes added.
fn widen_trun(segment: &mut Vec<u8>, trun: usize, end: usize) -> Option<usize> {
    let flags = u32_at(segment, trun)?;
    let count = u32_at(segment, trun + 4)? as usize;
    let mut header = 8;
    if flags & 0x1 != 0 {
        header += 4;
    }
    if flags & 0x4 != 0 {
        header += 4;
    }
    let stride = 4 * [0x100, 0x200, 0x400].iter().filter(|f| flags & *f != 0).count();
    if trun + header + count * stride > end {
        return None;
    }
    let mut widened = Vec::with_capacity(end - trun + 4 * count);
    widened.extend_from_slice(&(flags | 0x800).to_be_bytes());
    widened.extend_from_slice(&segment[trun + 4..trun + header]);
    for i in 0..count {
        let at = trun + header + i * stride;
        widened.extend_from_slice(&segment[at..at + stride]);
        widened.extend_from_slice(&[0; 4]);
    }
    widened.extend_from_slice(&segment[trun + header + count * stride..end]);
    let added = widened.len() - (end - trun);
    segment.splice(trun..end, widened);
    Some(added)
}

/// Offsets of each sample's composition time offset in the `trun` whose payload starts at
/// `trun`; `None` without per-sample offsets.
fn cto_offsets(segment: &[u8], trun: usize) -> Option<Vec<usize>> {
    let flags = u32_at(segment, trun)? & 0x00FF_FFFF;
    if flags & 0x800 == 0 {
        return None;
    }
    let count = u32_at(segment, trun + 4)? as usize;
    let mut at = trun + 8;
    if flags & 0x1 != 0 {
        at += 4; // data-offset
    }
    if flags & 0x4 != 0 {
        at += 4; // first-sample-flags
    }
    // Per sample: duration, size, flags, composition offset, each when flagged.
    let before = 4 * [0x100, 0x200, 0x400].iter().filter(|f| flags & *f != 0).count();
    let stride = before + 4;
    let offsets: Vec<usize> = (0..count).map(|i| at + i * stride + before).collect();
    offsets.iter().all(|&o| o + 4 <= segment.len()).then_some(offsets)
}

/// A track of an init segment, for putting fragments of several publishes on one timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Track {
    pub id: u32,
    pub timescale: u32,
    pub default_duration: u32,
}

/// Every track of an init segment (ftyp + moov), and each one's sample entries (`stsd`): two
/// inits whose tracks and entries are equal describe media one file can hold in one run.
pub(crate) fn tracks(init: &[u8]) -> Option<(Vec<Track>, Vec<u8>)> {
    let moov = child(init, b"moov")?;
    let mut tracks = Vec::new();
    let mut entries = Vec::new();
    for (_, trak) in boxes(moov).filter(|(k, _)| k == b"trak") {
        let tkhd = child(trak, b"tkhd")?;
        let id = u32_at(tkhd, if tkhd.first()? == &1 { 20 } else { 12 })?;
        let mdia = child(trak, b"mdia")?;
        let mdhd = child(mdia, b"mdhd")?;
        let timescale = u32_at(mdhd, if mdhd.first()? == &1 { 20 } else { 12 })?.max(1);
        let stsd = child(child(child(mdia, b"minf")?, b"stbl")?, b"stsd")?;
        entries.extend_from_slice(&id.to_be_bytes());
        entries.extend_from_slice(stsd);
        let default_duration = child(moov, b"mvex")
            .into_iter()
            .flat_map(|mvex| boxes(mvex).filter(|(k, _)| k == b"trex"))
            .find(|(_, trex)| u32_at(trex, 4) == Some(id))
            .and_then(|(_, trex)| u32_at(trex, 12))
            .unwrap_or(0);
        tracks.push(Track { id, timescale, default_duration });
    }
    (!tracks.is_empty()).then_some((tracks, entries))
}

/// The decode-time span of each `traf` of a media segment, in nanoseconds: (start, end).
pub(crate) fn fragment_spans(segment: &[u8], tracks: &[Track]) -> Vec<(u64, u64)> {
    let mut spans = Vec::new();
    for (_, moof) in boxes(segment).filter(|(k, _)| k == b"moof") {
        for (_, traf) in boxes(moof).filter(|(k, _)| k == b"traf") {
            let Some(span) = traf_span(traf, tracks) else { continue };
            spans.push(span);
        }
    }
    spans
}

fn traf_span(traf: &[u8], tracks: &[Track]) -> Option<(u64, u64)> {
    let tfhd = child(traf, b"tfhd")?;
    let track = tracks.iter().find(|t| Some(t.id) == u32_at(tfhd, 4))?;
    let tfdt = child(traf, b"tfdt")?;
    let start = match tfdt.first()? {
        1 => u64::from_be_bytes(tfdt.get(4..12)?.try_into().ok()?),
        _ => u64::from(u32_at(tfdt, 4)?),
    };
    let duration = traf_duration(traf, tfhd, track.default_duration)?;
    let ns = |ticks: u64| u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(track.timescale)).ok();
    Some((ns(start)?, ns(start.saturating_add(duration))?))
}

/// Moves every `traf` of a media segment by `shift_ns` on the decode timeline (each `tfdt`
/// rewritten in place, in its track's timescale). False if a time would not fit (then the
/// segment may be partly rewritten: drop it).
pub(crate) fn shift_decode_times(segment: &mut [u8], tracks: &[Track], shift_ns: i64) -> bool {
    for traf in traf_positions(segment) {
        let Some((tfdt, tfdt_end)) = traf.tfdt else { return false };
        let Some(track) = tracks.iter().find(|t| Some(t.id) == u32_at(segment, traf.tfhd + 4)) else { return false };
        let shift = i128::from(shift_ns) * i128::from(track.timescale) / 1_000_000_000;
        if !move_tfdt(segment, (tfdt, tfdt_end), i64::try_from(shift).unwrap_or(i64::MAX)) {
            return false;
        }
    }
    true
}

/// The summed sample durations of a `traf` (ticks): its `trun`s, with the `tfhd`'s default
/// duration, else `trex_default`.
fn traf_duration(traf: &[u8], tfhd: &[u8], trex_default: u32) -> Option<u64> {
    let flags = u32_at(tfhd, 0)? & 0x00FF_FFFF;
    let mut at = 8;
    if flags & 0x1 != 0 {
        at += 8; // base-data-offset
    }
    if flags & 0x2 != 0 {
        at += 4; // sample-description-index
    }
    let default = if flags & 0x8 != 0 { u32_at(tfhd, at)? } else { trex_default };
    let mut total = 0u64;
    for (_, trun) in boxes(traf).filter(|(k, _)| k == b"trun") {
        total = total.saturating_add(trun_duration(trun, default)?);
    }
    Some(total)
}

fn trun_duration(trun: &[u8], default: u32) -> Option<u64> {
    let flags = u32_at(trun, 0)? & 0x00FF_FFFF;
    let count = u64::from(u32_at(trun, 4)?);
    if flags & 0x100 == 0 {
        return Some(count * u64::from(default));
    }
    let mut at = 8;
    if flags & 0x1 != 0 {
        at += 4; // data-offset
    }
    if flags & 0x4 != 0 {
        at += 4; // first-sample-flags
    }
    let stride = 4 * [0x100, 0x200, 0x400, 0x800].iter().filter(|f| flags & *f != 0).count();
    let mut total = 0u64;
    for i in 0..count as usize {
        total += u64::from(u32_at(trun, at + i * stride)?);
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    fn full(version_flags: u32, rest: &[u32]) -> Vec<u8> {
        std::iter::once(version_flags).chain(rest.iter().copied()).flat_map(u32::to_be_bytes).collect()
    }

    fn init() -> Vec<u8> {
        let trak = |id: u32, handler: &[u8; 4], timescale: u32| {
            let tkhd = bx(b"tkhd", &full(0, &[0, 0, id, 0]));
            let mut hdlr = full(0, &[0]);
            hdlr.extend_from_slice(handler);
            let mdia = [bx(b"mdhd", &full(0, &[0, 0, timescale, 0])), bx(b"hdlr", &hdlr)].concat();
            bx(b"trak", &[tkhd, bx(b"mdia", &mdia)].concat())
        };
        let mvex = bx(b"mvex", &bx(b"trex", &full(0, &[2, 1, 3000, 0, 0])));
        let moov = [trak(1, b"soun", 48000), trak(2, b"vide", 90000), mvex].concat();
        [bx(b"ftyp", b"iso6"), bx(b"moov", &moov)].concat()
    }

    #[test]
    fn finds_the_video_track() {
        let track = video_track(&init()).expect("video track");
        assert_eq!(track, VideoTrack { track_id: 2, timescale: 90000, default_duration: 3000 });
        assert_eq!(video_track(b"garbage"), None);
        assert_eq!(video_track(&[]), None);
    }

    #[test]
    fn sums_video_sample_durations() {
        let track = video_track(&init()).expect("video track");
        // Audio traf (ignored), video traf with per-sample durations + sizes, and a second
        // video trun relying on the trex default.
        let audio = bx(b"traf", &[bx(b"tfhd", &full(0, &[1])), bx(b"trun", &full(0x100, &[1, 1024]))].concat());
        let video = bx(
            b"traf",
            &[
                bx(b"tfhd", &full(0x2_0000, &[2])),
                bx(b"trun", &full(0x305, &[2, 0, 0, 3000, 10, 3003, 20])),
                bx(b"trun", &full(0x1, &[4, 0])),
            ]
            .concat(),
        );
        let moof = bx(b"moof", &[bx(b"mfhd", &full(0, &[1])), audio, video].concat());
        let segment = [bx(b"styp", b"msdh"), moof, bx(b"mdat", &[0; 16])].concat();
        // 3000 + 3003 + 4 × 3000 = 18003 ticks at 90 kHz.
        assert_eq!(video_duration_ns(&segment, &track), Some(200_033_333));
        assert_eq!(video_duration_ns(&segment[..30], &track), None);
    }

    #[test]
    fn writes_the_source_composition_offsets_back() {
        let track = video_track(&init()).expect("video track");
        let samples = b"frame-one.frame-two.frame-3";
        // A video traf as the muxer writes it on decode times: no composition offsets; its
        // data offset points (from the moof's start) at the mdat's payload.
        let fragment = |data_offset: u32| {
            let trun = bx(b"trun", &full(0x301, &[3, data_offset, 3000, 10, 3000, 10, 3000, 7]));
            let traf = [bx(b"tfhd", &full(0x2_0000, &[2])), bx(b"tfdt", &full(0, &[90_000])), trun].concat();
            bx(b"moof", &[bx(b"mfhd", &full(0, &[1])), bx(b"traf", &traf)].concat())
        };
        let moof_len = fragment(0).len() as u32;
        let mut segment = [bx(b"styp", b"msdh"), fragment(moof_len + 8), bx(b"mdat", samples)].concat();
        let mut given = vec![];
        // 67 ms, 0 and -33 ms (a negative offset needs a version 1 trun); the muxer's decode
        // times were 67 ms late.
        restore_composition_offsets(&mut segment, &track, 67_000_000, |n| {
            given.push(n);
            vec![67_000_000, 0, -33_000_000]
        });
        assert_eq!(given, [3]);
        let moof = boxes(&segment).find(|(k, _)| k == b"moof").expect("moof").1;
        let traf = child(moof, b"traf").expect("traf");
        let trun = child(traf, b"trun").expect("trun");
        assert_eq!(u32_at(child(traf, b"tfdt").expect("tfdt"), 4), Some(90_000 - 6030));
        assert_eq!(u32_at(trun, 0), Some(0x0100_0B01), "version 1, composition offsets added");
        let entries: Vec<u32> = (0..3 * 3).map(|i| u32_at(trun, 12 + 4 * i).unwrap()).collect();
        assert_eq!(entries, [3000, 10, 6030, 3000, 10, 0, 3000, 7, (-2970i32) as u32]);
        // The data offset still points at the samples, and the timing is unchanged.
        let moof_at = segment.windows(4).position(|w| w == b"moof").unwrap() - 4;
        let data_at = moof_at + u32_at(trun, 8).unwrap() as usize;
        assert_eq!(&segment[data_at..data_at + samples.len()], samples);
        assert_eq!(video_duration_ns(&segment, &track), Some(100_000_000));
    }
}
