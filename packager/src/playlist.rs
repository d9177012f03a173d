//! Hand-written HLS playlists (m3u8-rs cannot write the LL-HLS tags that come next) and the
//! parser for the ones we wrote, used to resume a stream after a restart.

use std::fmt::Write;

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::names::{InitUri, PartUri, SegmentUri, write_digits};

/// One media segment as the playlists name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub msn: u64,
    /// Number of the `init{N}.mp4` this segment needs.
    pub init: u32,
    pub duration_ms: u64,
    /// Wall clock of the segment's first media.
    pub pdt: DateTime<Utc>,
    /// A new publish (or a gap) starts here.
    pub discontinuity: bool,
    /// LL-HLS parts (`seg{MSN:06}.{i}.m4s`), oldest first; empty without LL-HLS and for
    /// segments read back from a stored playlist.
    pub parts: Vec<Part>,
}

/// One LL-HLS partial segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    pub duration_ms: u64,
    /// Starts with a keyframe.
    pub independent: bool,
}

/// A timed marker, written as `EXT-X-DATERANGE` in the live and the replay playlists.
///
/// `attributes` are client attributes: each name carries its `X-` prefix and is `X-` followed
/// by upper-case letters, digits and `-` (e.g. `X-PRODUCT-ID`); values are written as quoted
/// strings (a `"` becomes `'`, CR and LF become spaces, as quoted strings cannot escape).
/// `id` and `class` must not contain `"`, CR or LF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateRange {
    pub id: String,
    pub class: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub attributes: Vec<(String, String)>,
}

impl DateRange {
    /// Why this marker cannot be written, if it cannot.
    pub(crate) fn invalid(&self) -> Option<String> {
        let quoted_ok = |v: &str| !v.contains(['"', '\r', '\n']);
        if self.id.is_empty() || !quoted_ok(&self.id) {
            return Some("marker id must be non-empty without '\"', CR or LF".into());
        }
        if !quoted_ok(&self.class) {
            return Some("marker class must not contain '\"', CR or LF".into());
        }
        if self.end.is_some_and(|end| end < self.start) {
            return Some(format!("marker {}: end precedes start", self.id));
        }
        for (name, _) in &self.attributes {
            let valid = name.strip_prefix("X-").is_some_and(|rest| {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
            });
            if !valid {
                return Some(format!("marker attribute {name:?}: names are X- then A-Z, 0-9 or -"));
            }
        }
        None
    }

    fn render(&self, out: &mut String) {
        let quoted = |v: &str| v.replace('"', "'").replace(['\r', '\n'], " ");
        let _ = write!(
            out,
            "#EXT-X-DATERANGE:ID=\"{}\",CLASS=\"{}\",START-DATE=\"{}\"",
            self.id,
            self.class,
            Pdt(self.start)
        );
        if let Some(end) = self.end {
            let ms = u64::try_from((end - self.start).num_milliseconds()).unwrap_or(0);
            let _ = write!(out, ",END-DATE=\"{}\",DURATION={}", Pdt(end), Ms(ms));
        }
        for (name, value) in &self.attributes {
            let _ = write!(out, ",{name}=\"{}\"", quoted(value));
        }
        out.push('\n');
    }
}

/// LL-HLS rendering of a live playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LowLatency {
    /// PART-TARGET, ms.
    pub part_target_ms: u64,
    /// `_HLS_skip=YES`: a delta update skipping what lies before CAN-SKIP-UNTIL.
    pub skip: bool,
}

/// Everything one media playlist shows.
pub(crate) struct View<'a> {
    /// The complete segments to show, oldest first: every one since go-live, or for a live
    /// playlist at least its window.
    pub segments: &'a [Segment],
    /// Segments marked as a discontinuity before `segments` (EXT-X-DISCONTINUITY-SEQUENCE).
    pub discontinuities_before: usize,
    /// The segment being built (live, LL-HLS): its parts so far; `duration_ms` is their sum.
    pub open: Option<&'a Segment>,
    pub kind: Kind,
    pub min_target_secs: u64,
    pub low_latency: Option<LowLatency>,
    pub markers: &'a [DateRange],
    /// The other renditions' live edges (live playlists only, with an ABR ladder).
    pub reports: &'a [RenditionReport],
}

/// An `EXT-X-RENDITION-REPORT`: where another rendition's live playlist has got, so that a
/// player switching to it can ask for the right segment or part at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RenditionReport {
    /// The rendition's name (its folder next to this one).
    pub rendition: String,
    pub last_msn: u64,
    /// Index of its last part in `last_msn`; `None` without LL-HLS.
    pub last_part: Option<usize>,
}

/// Milliseconds as decimal seconds (`1.500`).
struct Ms(u64);

impl Ms {
    fn write(&self, out: &mut impl Write) -> std::fmt::Result {
        write_digits(out, self.0 / 1000, 0)?;
        out.write_char('.')?;
        write_digits(out, self.0 % 1000, 3)
    }
}

impl std::fmt::Display for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.write(f)
    }
}

/// A program date-time as RFC 3339 UTC with milliseconds (`2026-12-05T23:30:00.123Z`), what
/// `to_rfc3339_opts(Millis, true)` writes, without a string of its own.
struct Pdt(DateTime<Utc>);

impl std::fmt::Display for Pdt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.write(f)
    }
}

impl Pdt {
    fn write(&self, out: &mut impl Write) -> std::fmt::Result {
        let (date, time) = (self.0.date_naive(), self.0.time());
        // A wall clock's year: positive, four digits.
        write_digits(out, u64::try_from(date.year()).unwrap_or(0), 4)?;
        for (separator, value) in [('-', date.month()), ('-', date.day()), ('T', time.hour()), (':', time.minute())] {
            out.write_char(separator)?;
            write_digits(out, value.into(), 2)?;
        }
        out.write_char(':')?;
        write_digits(out, time.second().into(), 2)?;
        out.write_char('.')?;
        // Leap seconds aside (the system clock never shows one).
        write_digits(out, (time.nanosecond() / 1_000_000 % 1000).into(), 3)?;
        out.write_char('Z')
    }
}

/// How a media playlist is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The last `window` segments; ENDLIST once the stream is over.
    Live { window: usize, ended: bool },
    /// Every segment, still growing.
    Event,
    /// Every segment, final.
    Vod,
}

/// Renders a media playlist over `segments` (every segment since go-live, oldest first).
/// `min_target_secs` keeps TARGETDURATION from starting below the configured target.
#[cfg(test)]
pub(crate) fn render_media(segments: &[Segment], kind: Kind, min_target_secs: u64) -> String {
    render_whole(segments, kind, min_target_secs, &[])
}

/// Every one of `segments` with `markers`, no parts: the replay (EVENT or VOD).
pub(crate) fn render_whole(segments: &[Segment], kind: Kind, min_target_secs: u64, markers: &[DateRange]) -> String {
    render(&View {
        segments,
        discontinuities_before: 0,
        open: None,
        kind,
        min_target_secs,
        low_latency: None,
        markers,
        reports: &[],
    })
}

/// TARGETDURATION over every segment, not just the window, so the live one never shrinks.
/// PART-TARGET (ms) for parts of `setting_ms` at `frame_rate`: the muxer ends a part at the
/// first frame at or past the setting, so a part is the fewest whole frames that reach it (30
/// fps: 6 frames, 200 ms; 29.97: 200.2 ms; 24: 208.3 ms), rounded up to the millisecond (FLV
/// times are whole milliseconds, so a part lasts that rounded down or up). The setting itself
/// when the frame rate is unknown.
pub(crate) fn part_target_ms(setting_ms: u64, frame_rate: Option<f64>) -> u64 {
    let Some(frame_ms) = frame_rate.filter(|r| (1.0..=1000.0).contains(r)).map(|r| 1000.0 / r) else {
        return setting_ms;
    };
    // A hair under a whole number of frames counts as it: 6 × 33.333… is 200.
    let frames = (setting_ms as f64 / frame_ms - 1e-6).ceil().max(1.0);
    (frames * frame_ms - 1e-6).ceil() as u64
}

pub(crate) fn target_secs(segments: &[Segment], min_target_secs: u64) -> u64 {
    segments.iter().map(|s| s.duration_ms.div_ceil(1000)).max().unwrap_or(0).max(min_target_secs).max(1)
}

/// The markers a playlist lists: the live playlist keeps those that start inside its complete
/// segments (from `window.0`, the date of its first segment, to `window.1`, the end of its last
/// complete one); event and VOD playlists keep every one. A marker starting in the segment
/// being built waits for it to complete: hls.js (1.6, 1.7) maps each DATERANGE to the complete
/// segment holding its START-DATE and throws when there is none (an open segment's
/// PROGRAM-DATE-TIME names no fragment it knows).
fn markers_shown<'a>(
    view: &View<'a>,
    (first, end): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
) -> impl Iterator<Item = &'a DateRange> {
    let live = matches!(view.kind, Kind::Live { .. });
    let inside = move |m: &DateRange| first.is_some_and(|f| m.start >= f) && end.is_some_and(|e| m.start < e);
    view.markers.iter().filter(move |marker| !live || inside(marker))
}

/// Renders a media playlist. With `low_latency` (live only): PART-INF, SERVER-CONTROL, the
/// parts of the segments of the last three target durations and of the open segment, and a
/// PRELOAD-HINT for the next part.
pub(crate) fn render(view: &View<'_>) -> String {
    render_counting_skipped(view).0
}

/// [`render`], and how many segments a delta update (`skip`) left out: with none, it is the
/// whole playlist, as a request without `_HLS_skip` gets it.
pub(crate) fn render_counting_skipped(view: &View<'_>) -> (String, usize) {
    let segments = view.segments;
    let kind = view.kind;
    let start = match kind {
        Kind::Live { window, .. } => segments.len().saturating_sub(window.max(1)),
        Kind::Event | Kind::Vod => 0,
    };
    let ended = matches!(kind, Kind::Vod | Kind::Live { ended: true, .. });
    let ll = match kind {
        Kind::Live { .. } => view.low_latency,
        Kind::Event | Kind::Vod => None,
    };
    let open = if ended { None } else { view.open.filter(|o| !o.parts.is_empty()) };
    let shown = &segments[start..];
    let target = target_secs(segments, view.min_target_secs);
    let media_sequence = shown.first().or(open).map_or(0, |s| s.msn);
    let discontinuity_sequence =
        view.discontinuities_before + segments[..start].iter().filter(|s| s.discontinuity).count();

    let first_pdt = shown.first().or(open).map(|s| s.pdt);
    let complete_end = shown.last().map(|s| s.pdt + chrono::Duration::milliseconds(s.duration_ms as i64));
    let window = (first_pdt, complete_end);

    // Delta update: skip the segments that end before CAN-SKIP-UNTIL (6 × target) from the end.
    let skip_until_ms = 6 * target * 1000;
    let mut skipped = 0;
    if ll.is_some_and(|ll| ll.skip) {
        let mut from_end = open.map_or(0, |o| o.duration_ms);
        let mut keep = 0;
        for s in shown.iter().rev() {
            from_end += s.duration_ms;
            if from_end > skip_until_ms {
                break;
            }
            keep += 1;
        }
        skipped = shown.len() - keep;
        // Never skip the segment a listed marker starts in (nor any after it): hls.js (1.6,
        // 1.7) maps each DATERANGE to the segment holding its START-DATE and throws when that
        // segment was skipped. Skipping fewer segments is always allowed.
        if let Some(first_marker) = markers_shown(view, window).map(|m| m.start).min() {
            let ends_by = |s: &&Segment| s.pdt + chrono::Duration::milliseconds(s.duration_ms as i64) <= first_marker;
            skipped = shown[..skipped].iter().take_while(ends_by).count();
        }
    }

    // Parts are listed for the segments of the last three target durations.
    let parts_from = match ll {
        Some(_) => {
            let mut from_end = open.map_or(0, |o| o.duration_ms);
            let mut from = shown.len();
            while from > 0 && from_end < 3 * target * 1000 {
                from -= 1;
                from_end += shown[from].duration_ms;
            }
            from
        }
        None => shown.len(),
    };
    // About a line per part listed (~60 bytes): with the default window, half the text.
    let parts_listed: usize = shown[parts_from..].iter().chain(open).map(|s| s.parts.len()).sum();
    let mut out = String::with_capacity(256 + shown.len() * 110 + parts_listed * 64);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:");
    out.push_str(if ll.is_some() { "9\n" } else { "7\n" });
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    if let Some(ll) = ll {
        let part_target = ll.part_target_ms;
        let _ = writeln!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={},HOLD-BACK={},CAN-SKIP-UNTIL={}",
            Ms(3 * part_target),
            Ms(3 * target * 1000),
            Ms(skip_until_ms)
        );
        let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", Ms(part_target));
    }
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{media_sequence}");
    if discontinuity_sequence > 0 {
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}");
    }
    match kind {
        Kind::Event => out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
        Kind::Vod => out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
        Kind::Live { .. } => {}
    }
    // Every segment starts on a keyframe with SPS/PPS in band.
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    for marker in markers_shown(view, window) {
        marker.render(&mut out);
    }
    if skipped > 0 {
        let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    }

    // The first segment shown names its init, also after a skip.
    let mut current_init = None;
    let write_segment = |out: &mut String, s: &Segment, current_init: &mut Option<u32>, parts: bool, complete: bool| {
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if *current_init != Some(s.init) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", InitUri(s.init));
            *current_init = Some(s.init);
        }
        // The lines written at every part: straight into the text, not through `write!`.
        out.push_str("#EXT-X-PROGRAM-DATE-TIME:");
        let _ = Pdt(s.pdt).write(out);
        out.push('\n');
        if parts {
            for (i, p) in s.parts.iter().enumerate() {
                out.push_str("#EXT-X-PART:DURATION=");
                let _ = Ms(p.duration_ms).write(out);
                out.push_str(",URI=\"");
                let _ = PartUri(s.msn, i).write(out);
                out.push('"');
                if p.independent {
                    out.push_str(",INDEPENDENT=YES");
                }
                out.push('\n');
            }
        }
        if complete {
            out.push_str("#EXTINF:");
            let _ = Ms(s.duration_ms).write(out);
            out.push_str(",\n");
            let _ = SegmentUri(s.msn).write(out);
            out.push('\n');
        }
    };
    for (i, s) in shown.iter().enumerate().skip(skipped) {
        write_segment(&mut out, s, &mut current_init, i >= parts_from, true);
    }
    if ll.is_some() && !ended {
        let (msn, next) = match open {
            Some(o) => {
                write_segment(&mut out, o, &mut current_init, true, false);
                (o.msn, o.parts.len())
            }
            None => (shown.last().map_or(0, |s| s.msn + 1), 0),
        };
        let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"", PartUri(msn, next));
    }
    if matches!(kind, Kind::Live { .. }) {
        for report in view.reports {
            // Relative to this playlist's URL, `/hls/{playback_id}/{rendition}/index.m3u8`.
            let _ = write!(
                out,
                "#EXT-X-RENDITION-REPORT:URI=\"../{}/index.m3u8\",LAST-MSN={}",
                report.rendition, report.last_msn
            );
            if let Some(part) = report.last_part {
                let _ = write!(out, ",LAST-PART={part}");
            }
            out.push('\n');
        }
    }
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    (out, skipped)
}

/// What the multivariant playlist says about one rendition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Variant {
    /// The rendition's folder: its media playlist is `{name}/index.m3u8`.
    pub name: String,
    /// Peak segment bit rate, bits/s.
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    pub codecs: String,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
}

/// The multivariant playlist: one EXT-X-STREAM-INF per rendition, in the given order.
/// A playlist whose object URIs (segments, init sections) are prefixed with `base`: a clip's
/// playlist, in its own folder, naming the source rendition's objects.
pub(crate) fn rebase(text: &str, base: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.lines() {
        if let Some(uri) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{base}{uri}");
        } else if !line.is_empty() && !line.starts_with('#') {
            let _ = writeln!(out, "{base}{line}");
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

pub(crate) fn render_multivariant(variants: &[Variant]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"",
            v.bandwidth, v.average_bandwidth, v.codecs
        );
        if let Some((w, h)) = v.resolution {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some(fps) = v.frame_rate {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
        let _ = writeln!(out, "\n{}/index.m3u8", v.name);
    }
    out
}

/// The rendition folders a stored multivariant playlist names, in its order.
pub(crate) fn parse_renditions(multivariant: &str) -> Vec<String> {
    multivariant
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|uri| uri.strip_suffix("/index.m3u8"))
        .map(str::to_owned)
        .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("line {line}: {what}")]
pub(crate) struct ParseError {
    line: usize,
    what: &'static str,
}

/// Reads back the segments of a media playlist written by `render_media`.
pub(crate) fn parse_media(text: &str) -> Result<Vec<Segment>, ParseError> {
    let mut segments = Vec::new();
    let mut media_sequence = 0u64;
    let mut init = None;
    let mut pdt = None;
    let mut duration_ms = None;
    let mut discontinuity = false;
    for (idx, line) in text.lines().enumerate() {
        let err = |what| ParseError { line: idx + 1, what };
        let line = line.trim();
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            media_sequence = v.parse().map_err(|_| err("bad media sequence"))?;
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            let n = v
                .strip_suffix("\"")
                .and_then(|v| v.strip_prefix("init"))
                .and_then(|v| v.strip_suffix(".mp4"))
                .and_then(|v| v.parse().ok())
                .ok_or(err("bad EXT-X-MAP"))?;
            init = Some(n);
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            let t = DateTime::parse_from_rfc3339(v).map_err(|_| err("bad program date-time"))?;
            pdt = Some(t.with_timezone(&Utc));
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let v = v.split(',').next().unwrap_or_default();
            duration_ms = Some(parse_millis(v).ok_or(err("bad EXTINF"))?);
        } else if !line.is_empty() && !line.starts_with('#') {
            let msn = line
                .strip_prefix("seg")
                .and_then(|v| v.strip_suffix(".m4s"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(media_sequence + segments.len() as u64);
            segments.push(Segment {
                msn,
                init: init.ok_or(err("segment before EXT-X-MAP"))?,
                duration_ms: duration_ms.take().ok_or(err("segment without EXTINF"))?,
                pdt: pdt.take().ok_or(err("segment without program date-time"))?,
                discontinuity: std::mem::take(&mut discontinuity),
                parts: Vec::new(),
            });
        }
    }
    Ok(segments)
}

/// The EXT-X-DATERANGE markers of a playlist written by `render` (lenient: a line that does
/// not read back is skipped).
pub(crate) fn parse_markers(text: &str) -> Vec<DateRange> {
    let date = |v: &str| DateTime::parse_from_rfc3339(v).ok().map(|t| t.with_timezone(&Utc));
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("#EXT-X-DATERANGE:"))
        .filter_map(|attrs| {
            let (mut id, mut class, mut start, mut end) = (None, String::new(), None, None);
            let mut attributes = Vec::new();
            let mut rest = attrs;
            while !rest.is_empty() {
                let (name, after) = rest.split_once('=')?;
                let (value, after) = match after.strip_prefix('"') {
                    Some(quoted) => {
                        let (value, after) = quoted.split_once('"')?;
                        (value, after)
                    }
                    None => after.split_once(',').map_or((after, ""), |(v, a)| (v, a)),
                };
                rest = after.strip_prefix(',').unwrap_or(after);
                match name {
                    "ID" => id = Some(value.to_owned()),
                    "CLASS" => class = value.to_owned(),
                    "START-DATE" => start = date(value),
                    "END-DATE" => end = date(value),
                    n if n.starts_with("X-") => attributes.push((n.to_owned(), value.to_owned())),
                    _ => {}
                }
            }
            Some(DateRange { id: id?, class, start: start?, end, attributes })
        })
        .collect()
}

/// "2.002" → 2002 (at most millisecond precision is kept).
fn parse_millis(v: &str) -> Option<u64> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let int: u64 = int.parse().ok()?;
    let mut ms = 0u64;
    let mut scale = 100;
    for c in frac.chars().take(3) {
        ms += u64::from(c.to_digit(10)?) * scale;
        scale /= 10;
    }
    int.checked_mul(1000)?.checked_add(ms)
}

#[cfg(test)]
mod tests {
    #[test]
    fn part_target_is_the_whole_frames_that_reach_the_setting() {
        let target = |fps: f64| part_target_ms(200, Some(fps));
        assert_eq!([target(30.0), target(25.0), target(60.0), target(50.0), target(15.0)], [200; 5]);
        assert_eq!(target(30000.0 / 1001.0), 201, "six frames of 33.367 ms");
        assert_eq!(target(60000.0 / 1001.0), 201);
        assert_eq!(target(24.0), 209, "five frames of 41.667 ms");
        assert_eq!(target(24000.0 / 1001.0), 209);
        assert_eq!(target(12.0), 250, "three frames of 83.3 ms");
        assert_eq!(part_target_ms(200, None), 200);
        assert_eq!(part_target_ms(200, Some(0.0)), 200, "caps without a frame rate");
        assert_eq!(part_target_ms(500, Some(30.0)), 500);
    }

    use super::*;
    use chrono::{SecondsFormat, TimeZone};

    #[test]
    fn program_date_times_are_written_as_rfc_3339_with_milliseconds() {
        for (ms, when) in [(0, (2026, 1, 2, 3, 4, 5)), (7, (1999, 12, 31, 23, 59, 59)), (999, (2030, 6, 9, 0, 0, 0))] {
            let (y, mo, d, h, mi, s) = when;
            let at = Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().unwrap() + chrono::Duration::milliseconds(ms);
            let at = at + chrono::Duration::nanoseconds(123_456);
            assert_eq!(Pdt(at).to_string(), at.to_rfc3339_opts(SecondsFormat::Millis, true));
        }
        assert_eq!(Ms(1500).to_string(), "1.500");
        assert_eq!(Ms(7).to_string(), "0.007");
    }

    fn seg(msn: u64, init: u32, duration_ms: u64, discontinuity: bool) -> Segment {
        let base = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().expect("valid date");
        Segment {
            msn,
            init,
            duration_ms,
            pdt: base + chrono::Duration::milliseconds(msn as i64 * 2000),
            discontinuity,
            parts: Vec::new(),
        }
    }

    fn stream() -> Vec<Segment> {
        vec![
            seg(0, 0, 2000, false),
            seg(1, 0, 2002, false),
            seg(2, 1, 2000, true),
            seg(3, 1, 1500, false),
            seg(4, 2, 2100, true),
            seg(5, 2, 2000, false),
        ]
    }

    #[test]
    fn sliding_window_counts_discontinuities_that_slid_out() {
        let text = render_media(&stream(), Kind::Live { window: 2, ended: false }, 2);
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:4\n"), "{text}");
        let moved = rebase(&text, "../../v0/");
        assert!(moved.contains("#EXT-X-MAP:URI=\"../../v0/init"), "{moved}");
        assert!(moved.lines().filter(|l| !l.starts_with('#')).all(|l| l.starts_with("../../v0/seg")), "{moved}");
        assert_eq!(moved.lines().count(), text.lines().count());
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
        // The first shown segment starts a discontinuity and names its init.
        assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init2.mp4\"\n"), "{text}");
        assert_eq!(text.matches("#EXTINF").count(), 2);
        assert!(!text.contains("seg000003.m4s"));
        assert!(!text.contains("ENDLIST"));
        assert!(!text.contains("PLAYLIST-TYPE"));

        let text = render_media(&stream(), Kind::Live { window: 3, ended: false }, 2);
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
        let text = render_media(&stream(), Kind::Live { window: 4, ended: false }, 2);
        assert!(!text.contains("DISCONTINUITY-SEQUENCE"), "{text}");
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"));
    }

    #[test]
    fn target_duration_rounds_up_over_every_segment() {
        let segments = stream();
        // 2.100 s slid out of a window of one would still count.
        let text = render_media(&segments[..5], Kind::Live { window: 1, ended: false }, 2);
        assert!(text.contains("#EXT-X-TARGETDURATION:3\n"), "{text}");
        let text = render_media(&segments[..2], Kind::Event, 1);
        assert!(text.contains("#EXT-X-TARGETDURATION:3\n"), "{text}");
        let text = render_media(&segments[..1], Kind::Event, 1);
        assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
        let text = render_media(&[], Kind::Event, 0);
        assert!(text.contains("#EXT-X-TARGETDURATION:1\n"), "{text}");
    }

    #[test]
    fn extinf_has_three_decimals_and_pdt_is_on_every_segment() {
        let text = render_media(&stream(), Kind::Event, 2);
        assert!(text.contains("#EXTINF:2.002,\nseg000001.m4s\n"), "{text}");
        assert!(text.contains("#EXTINF:1.500,\n"), "{text}");
        assert_eq!(text.matches("#EXT-X-PROGRAM-DATE-TIME:").count(), 6);
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:05.000Z\n"), "{text}");
        assert_eq!(text.matches("#EXT-X-MAP").count(), 3);
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
    }

    #[test]
    fn vod_and_ended_live() {
        let text = render_media(&stream(), Kind::Vod, 2);
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert!(text.ends_with("seg000005.m4s\n#EXT-X-ENDLIST\n"), "{text}");
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0\n"));
        let text = render_media(&stream(), Kind::Live { window: 3, ended: true }, 2);
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn resume_parses_what_was_written() {
        let segments = stream();
        for kind in [Kind::Event, Kind::Vod] {
            let parsed = parse_media(&render_media(&segments, kind, 2)).expect("parses");
            assert_eq!(parsed, segments);
        }
        let live = parse_media(&render_media(&segments, Kind::Live { window: 2, ended: false }, 2)).expect("parses");
        assert_eq!(live, segments[4..]);
    }

    #[test]
    fn parse_rejects_garbage_without_panicking() {
        assert!(parse_media("#EXTM3U\n#EXTINF:abc,\nseg000001.m4s\n").is_err());
        assert!(parse_media("#EXTM3U\n#EXTINF:2.000,\nseg000001.m4s\n").is_err());
        assert!(parse_media("#EXT-X-MAP:URI=\"x.mp4\"\n").is_err());
        assert_eq!(parse_media("").expect("empty is fine"), vec![]);
        assert_eq!(parse_millis("2.5"), Some(2500));
        assert_eq!(parse_millis("3"), Some(3000));
        assert_eq!(parse_millis("1.23456"), Some(1234));
        assert_eq!(parse_millis("-1"), None);
    }

    fn with_parts(mut s: Segment, n: usize) -> Segment {
        s.parts =
            (0..n).map(|i| Part { duration_ms: if i == n - 1 { 100 } else { 200 }, independent: i == 0 }).collect();
        s
    }

    fn ll_view<'a>(segments: &'a [Segment], open: Option<&'a Segment>, skip: bool, markers: &'a [DateRange]) -> String {
        render(&View {
            segments,
            discontinuities_before: 0,
            open,
            kind: Kind::Live { window: 6, ended: false },
            min_target_secs: 2,
            low_latency: Some(LowLatency { part_target_ms: 200, skip }),
            markers,
            reports: &[],
        })
    }

    #[test]
    fn ll_hls_tags() {
        let segments: Vec<Segment> = stream().into_iter().map(|s| with_parts(s, 3)).collect();
        let open = Segment { msn: 6, duration_ms: 400, ..with_parts(seg(6, 2, 0, false), 2) };
        let text = ll_view(&segments, Some(&open), false, &[]);
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:3\n"), "{text}");
        assert!(text.contains(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,HOLD-BACK=9.000,CAN-SKIP-UNTIL=18.000\n\
             #EXT-X-PART-INF:PART-TARGET=0.200\n"
        ), "{text}");
        // Parts of the segments in the last three target durations (9 s) only: those that
        // overlap it (1..=5) and the open one.
        assert!(!text.contains("seg000000.0.m4s") && text.contains("seg000001.0.m4s"), "{text}");
        assert!(
            text.contains(
                "#EXT-X-PART:DURATION=0.200,URI=\"seg000005.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.200,URI=\"seg000005.1.m4s\"\n\
             #EXT-X-PART:DURATION=0.100,URI=\"seg000005.2.m4s\"\n#EXTINF:2.000,\nseg000005.m4s\n"
            ),
            "{text}"
        );
        // The open segment: PDT and parts, no EXTINF; then the hint for its next part.
        assert!(
            text.ends_with(
                "seg000005.m4s\n#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:17.000Z\n\
             #EXT-X-PART:DURATION=0.200,URI=\"seg000006.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.100,URI=\"seg000006.1.m4s\"\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg000006.2.m4s\"\n"
            ),
            "{text}"
        );
        // Without an open segment the hint names the next segment's first part.
        let text = ll_view(&segments, None, false, &[]);
        assert!(text.ends_with("seg000005.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg000006.0.m4s\"\n"), "{text}");
        // Ended: no parts, no hint; the replay never has LL-HLS tags.
        let ended = render(&View {
            kind: Kind::Live { window: 6, ended: true },
            ..View {
                segments: &segments,
                discontinuities_before: 0,
                open: Some(&open),
                kind: Kind::Event,
                min_target_secs: 2,
                low_latency: Some(LowLatency { part_target_ms: 200, skip: false }),
                markers: &[],
                reports: &[],
            }
        });
        assert!(ended.ends_with("seg000005.m4s\n#EXT-X-ENDLIST\n") && !ended.contains("PRELOAD"), "{ended}");
        let replay = render(&View {
            segments: &segments,
            discontinuities_before: 0,
            open: Some(&open),
            kind: Kind::Event,
            min_target_secs: 2,
            low_latency: Some(LowLatency { part_target_ms: 200, skip: false }),
            markers: &[],
            reports: &[],
        });
        assert!(
            !replay.contains("PART") && !replay.contains("SERVER-CONTROL") && replay.contains("VERSION:7"),
            "{replay}"
        );
    }

    #[test]
    fn delta_update_skips_what_precedes_can_skip_until() {
        // 20 segments of 2 s: CAN-SKIP-UNTIL is 12 s, so the last 6 segments stay.
        let segments: Vec<Segment> = (0..20).map(|i| seg(i, 0, 2000, false)).collect();
        let text = render(&View {
            segments: &segments,
            discontinuities_before: 0,
            open: None,
            kind: Kind::Live { window: 20, ended: false },
            min_target_secs: 2,
            low_latency: Some(LowLatency { part_target_ms: 200, skip: true }),
            markers: &[],
            reports: &[],
        });
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{text}");
        assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=14\n#EXT-X-MAP:URI=\"init0.mp4\"\n"), "{text}");
        assert_eq!(text.matches("#EXTINF").count(), 6);
        assert!(!text.contains("seg000013.m4s") && text.contains("seg000014.m4s"));
        // A short playlist skips nothing: its delta update is the playlist itself, which the
        // writer then serves for both.
        let text = ll_view(&segments[..5], None, true, &[]);
        assert!(!text.contains("EXT-X-SKIP"), "{text}");
        assert_eq!(text, ll_view(&segments[..5], None, false, &[]));
        let delta = |marker: &DateRange| {
            render(&View {
                segments: &segments,
                discontinuities_before: 0,
                open: None,
                kind: Kind::Live { window: 20, ended: false },
                min_target_secs: 2,
                low_latency: Some(LowLatency { part_target_ms: 200, skip: true }),
                markers: std::slice::from_ref(marker),
                reports: &[],
            })
        };
        // A marker starting inside segment 10 keeps segments 10 and later: only 0-9 are skipped.
        let start = segments[10].pdt + chrono::Duration::milliseconds(500);
        let pin = DateRange { id: "pin".into(), class: "c".into(), start, end: None, attributes: vec![] };
        let text = delta(&pin);
        assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=10\n"), "{text}");
        assert!(text.contains("ID=\"pin\"") && text.contains("seg000010.m4s"), "{text}");
        // On a segment boundary: the segment it starts is kept, the one before it skipped.
        let text = delta(&DateRange { start: segments[12].pdt, ..pin });
        assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=12\n"), "{text}");
    }

    #[test]
    fn dateranges_in_live_and_replay() {
        let segments = stream();
        let at = |secs| Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, secs).single().unwrap();
        let markers = vec![
            DateRange { id: "old".into(), class: "c".into(), start: at(6), end: None, attributes: vec![] },
            DateRange {
                id: "pin".into(),
                class: "com.hawker.product".into(),
                start: at(14),
                end: Some(at(14) + chrono::Duration::milliseconds(2500)),
                attributes: vec![("X-PRODUCT-ID".into(), "a\"b\nc".into())],
            },
        ];
        let live = render(&View {
            segments: &segments,
            discontinuities_before: 0,
            open: None,
            kind: Kind::Live { window: 2, ended: false },
            min_target_secs: 2,
            low_latency: None,
            markers: &markers,
            reports: &[],
        });
        let line = "#EXT-X-DATERANGE:ID=\"pin\",CLASS=\"com.hawker.product\",START-DATE=\"2026-01-02T03:04:14.000Z\",\
                    END-DATE=\"2026-01-02T03:04:16.500Z\",DURATION=2.500,X-PRODUCT-ID=\"a'b c\"\n";
        assert!(live.contains(line), "{live}");
        // "old" starts before the live window's first PDT (03:04:13).
        assert!(!live.contains("ID=\"old\""), "{live}");
        let replay = render(&View {
            segments: &segments,
            discontinuities_before: 0,
            open: None,
            kind: Kind::Event,
            min_target_secs: 2,
            low_latency: None,
            markers: &markers,
            reports: &[],
        });
        assert!(replay.contains(line) && replay.contains("ID=\"old\""), "{replay}");
        // Read back on resume.
        let parsed = parse_markers(&replay);
        assert_eq!(parsed[0], markers[0]);
        assert_eq!(parsed[1].end, markers[1].end);
        assert_eq!(parsed[1].attributes, vec![("X-PRODUCT-ID".to_owned(), "a'b c".to_owned())]);
        // Validation.
        let bad = |f: fn(&mut DateRange)| {
            let mut m = markers[1].clone();
            f(&mut m);
            m.invalid()
        };
        assert!(markers[1].invalid().is_none());
        assert!(bad(|m| m.id = String::new()).is_some());
        assert!(bad(|m| m.id = "a\"b".into()).is_some());
        assert!(bad(|m| m.attributes = vec![("PRODUCT".into(), "x".into())]).is_some());
        assert!(bad(|m| m.attributes = vec![("X-product".into(), "x".into())]).is_some());
        assert!(bad(|m| m.attributes = vec![("X-".into(), "x".into())]).is_some());
        assert!(bad(|m| m.end = Some(m.start - chrono::Duration::seconds(1))).is_some());
    }

    #[test]
    fn a_marker_in_the_open_segment_waits_for_it_to_complete() {
        let segments = stream();
        let last = segments.last().unwrap();
        let end = last.pdt + chrono::Duration::milliseconds(last.duration_ms as i64);
        let mut open = seg(6, 2, 200, false);
        open.pdt = end;
        open.parts = vec![Part { duration_ms: 200, independent: true }];
        let pin = DateRange { id: "pin".into(), class: "c".into(), start: end, end: None, attributes: vec![] };
        let markers = [pin];
        let live = |segments: &[Segment], open| {
            ll_view(segments, open, false, &markers) + &ll_view(segments, open, true, &markers)
        };
        assert!(!live(&segments, Some(&open)).contains("ID=\"pin\""), "listed while its segment is open");
        let mut completed = segments.clone();
        completed.push(open.clone());
        assert!(live(&completed, None).contains("ID=\"pin\""));
    }

    #[test]
    fn live_playlists_of_a_window_slice_count_earlier_discontinuities() {
        let all = stream();
        let full = render_media(&all, Kind::Live { window: 2, ended: false }, 2);
        let slice = render(&View {
            segments: &all[4..],
            discontinuities_before: all[..4].iter().filter(|s| s.discontinuity).count(),
            open: None,
            kind: Kind::Live { window: 2, ended: false },
            min_target_secs: 2,
            low_latency: None,
            markers: &[],
            reports: &[],
        });
        assert_eq!(full, slice);
    }

    #[test]
    fn multivariant_names_the_index_alias() {
        let source = Variant {
            name: "v0".into(),
            bandwidth: 3_200_000,
            average_bandwidth: 3_000_000,
            codecs: "avc1.64001f,mp4a.40.2".into(),
            resolution: Some((1280, 720)),
            frame_rate: Some(30.0),
        };
        let text = render_multivariant(std::slice::from_ref(&source));
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=3200000,\
             AVERAGE-BANDWIDTH=3000000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,\
             FRAME-RATE=30.000\nv0/index.m3u8\n"
        );
        // A ladder: the source first, then each rung, each with its own folder.
        let rung = Variant {
            name: "480p".into(),
            bandwidth: 1_300_000,
            average_bandwidth: 1_200_000,
            codecs: "avc1.64001e,mp4a.40.2".into(),
            resolution: Some((854, 480)),
            frame_rate: Some(29.97),
        };
        let text = render_multivariant(&[source, rung]);
        assert!(
            text.ends_with(
                "v0/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1300000,AVERAGE-BANDWIDTH=1200000,\
                 CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=854x480,FRAME-RATE=29.970\n480p/index.m3u8\n"
            ),
            "{text}"
        );
        assert_eq!(parse_renditions(&text), ["v0", "480p"]);
        assert!(parse_renditions("").is_empty());
    }

    #[test]
    fn rendition_reports_in_live_playlists_only() {
        let segments: Vec<Segment> = stream().into_iter().map(|s| with_parts(s, 3)).collect();
        let reports = [
            RenditionReport { rendition: "480p".into(), last_msn: 6, last_part: Some(1) },
            RenditionReport { rendition: "360p".into(), last_msn: 5, last_part: Some(2) },
        ];
        let view = |kind, low_latency| View {
            segments: &segments,
            discontinuities_before: 0,
            open: None,
            kind,
            min_target_secs: 2,
            low_latency,
            markers: &[],
            reports: &reports,
        };
        let ll = Some(LowLatency { part_target_ms: 200, skip: false });
        let live = render(&view(Kind::Live { window: 6, ended: false }, ll));
        assert!(
            live.ends_with(
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg000006.0.m4s\"\n\
                 #EXT-X-RENDITION-REPORT:URI=\"../480p/index.m3u8\",LAST-MSN=6,LAST-PART=1\n\
                 #EXT-X-RENDITION-REPORT:URI=\"../360p/index.m3u8\",LAST-MSN=5,LAST-PART=2\n"
            ),
            "{live}"
        );
        // The delta update carries them too; an ended live playlist keeps the final ones.
        let delta =
            render(&view(Kind::Live { window: 6, ended: false }, Some(LowLatency { part_target_ms: 200, skip: true })));
        assert_eq!(delta.matches("#EXT-X-RENDITION-REPORT:").count(), 2, "{delta}");
        let ended = render(&view(Kind::Live { window: 6, ended: true }, ll));
        assert!(ended.ends_with("LAST-PART=2\n#EXT-X-ENDLIST\n"), "{ended}");
        // Without LL-HLS: no LAST-PART.
        let plain = render(&View {
            reports: &[RenditionReport { rendition: "480p".into(), last_msn: 5, last_part: None }],
            ..view(Kind::Live { window: 6, ended: false }, None)
        });
        assert!(
            plain.ends_with("seg000005.m4s\n#EXT-X-RENDITION-REPORT:URI=\"../480p/index.m3u8\",LAST-MSN=5\n"),
            "{plain}"
        );
        // The replay (EVENT, VOD) has none.
        for kind in [Kind::Event, Kind::Vod] {
            let text = render(&view(kind, ll));
            assert!(!text.contains("RENDITION-REPORT"), "{text}");
        }
        // And m3u8-rs still reads the playlist.
        assert!(matches!(m3u8_rs::parse_playlist_res(live.as_bytes()), Ok(m3u8_rs::Playlist::MediaPlaylist(_))));
    }

    /// What rendering a live LL-HLS playlist costs, as the writer does at every part: the
    /// default window (6 segments of 2 s, 10 parts each, parts listed for the last three
    /// target durations), an open segment of 5 parts.
    /// `cargo test --release -p hawker-packager --lib -- --ignored --nocapture render_cost`
    #[test]
    #[ignore = "a measurement: prints the cost of a render"]
    fn render_cost() {
        let segments: Vec<Segment> = (100..106).map(|i| with_parts(seg(i, 0, 2000, false), 10)).collect();
        let open = Segment { msn: 106, duration_ms: 1000, ..with_parts(seg(106, 0, 0, false), 5) };
        let rounds = 20_000;
        let text = ll_view(&segments, Some(&open), true, &[]);
        let started = std::time::Instant::now();
        let mut bytes = 0;
        for _ in 0..rounds {
            bytes += std::hint::black_box(ll_view(&segments, Some(&open), true, &[])).len();
        }
        assert_eq!(bytes, text.len() * rounds);
        let each = started.elapsed() / rounds as u32;
        println!("live LL-HLS playlist, {} bytes: {:.2} µs a render", text.len(), each.as_secs_f64() * 1e6);
    }
}
