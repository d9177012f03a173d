//! Just enough ISO-BMFF reading to time a segment: the video track's timescale and defaults
//! from the init segment, and the summed sample durations of its `traf`s in a fragment.
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

/// Duration of the video samples in a media segment (styp, moof, mdat, …), in nanoseconds.
pub(crate) fn video_duration_ns(segment: &[u8], track: &VideoTrack) -> Option<u64> {
    let mut total: u64 = 0;
    let mut found = false;
    for (_, moof) in boxes(segment).filter(|(k, _)| k == b"moof") {
        for (_, traf) in boxes(moof).filter(|(k, _)| k == b"traf") {
            let tfhd = child(traf, b"tfhd")?;
            if u32_at(tfhd, 4)? != track.track_id {
                continue;
            }
            found = true;
            let flags = u32_at(tfhd, 0)? & 0x00FF_FFFF;
            let mut at = 8;
            if flags & 0x1 != 0 {
                at += 8; // base-data-offset
            }
            if flags & 0x2 != 0 {
                at += 4; // sample-description-index
            }
            let default = if flags & 0x8 != 0 { u32_at(tfhd, at)? } else { track.default_duration };
            for (_, trun) in boxes(traf).filter(|(k, _)| k == b"trun") {
                total += trun_duration(trun, default)?;
            }
        }
    }
    found.then(|| total.saturating_mul(1_000_000_000) / u64::from(track.timescale))
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
}
