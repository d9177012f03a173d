//! Hand-written HLS playlists (m3u8-rs cannot write the LL-HLS tags that come next) and the
//! parser for the ones we wrote, used to resume a stream after a restart.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

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
}

impl Segment {
    pub fn uri(&self) -> String {
        segment_uri(self.msn)
    }
}

pub(crate) fn segment_uri(msn: u64) -> String {
    format!("seg{msn:06}.m4s")
}

pub(crate) fn init_uri(init: u32) -> String {
    format!("init{init}.mp4")
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
pub(crate) fn render_media(segments: &[Segment], kind: Kind, min_target_secs: u64) -> String {
    let start = match kind {
        Kind::Live { window, .. } => segments.len().saturating_sub(window.max(1)),
        Kind::Event | Kind::Vod => 0,
    };
    let shown = &segments[start..];
    // Over every segment, not just the window, so the live TARGETDURATION never shrinks.
    let target = segments
        .iter()
        .map(|s| s.duration_ms.div_ceil(1000))
        .max()
        .unwrap_or(0)
        .max(min_target_secs)
        .max(1);
    let media_sequence = shown.first().map_or(0, |s| s.msn);
    let discontinuity_sequence = segments[..start].iter().filter(|s| s.discontinuity).count();

    let mut out = String::with_capacity(128 + shown.len() * 110);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
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

    let mut current_init = None;
    for s in shown {
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if current_init != Some(s.init) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", init_uri(s.init));
            current_init = Some(s.init);
        }
        let _ = writeln!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}",
            s.pdt.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        let _ = writeln!(out, "#EXTINF:{}.{:03},", s.duration_ms / 1000, s.duration_ms % 1000);
        out.push_str(&s.uri());
        out.push('\n');
    }
    let ended = matches!(kind, Kind::Vod | Kind::Live { ended: true, .. });
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// What the multivariant playlist says about the one rendition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Variant {
    /// Peak segment bit rate, bits/s.
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    pub codecs: String,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
}

pub(crate) fn render_multivariant(v: &Variant) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
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
    out.push_str("\nv0/index.m3u8\n");
    out
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
            });
        }
    }
    Ok(segments)
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
    use super::*;
    use chrono::TimeZone;

    fn seg(msn: u64, init: u32, duration_ms: u64, discontinuity: bool) -> Segment {
        let base = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().expect("valid date");
        Segment {
            msn,
            init,
            duration_ms,
            pdt: base + chrono::Duration::milliseconds(msn as i64 * 2000),
            discontinuity,
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
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
        // The first shown segment starts a discontinuity and names its init.
        assert!(
            text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init2.mp4\"\n"),
            "{text}"
        );
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
        let live = parse_media(&render_media(&segments, Kind::Live { window: 2, ended: false }, 2))
            .expect("parses");
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

    #[test]
    fn multivariant_names_the_index_alias() {
        let text = render_multivariant(&Variant {
            bandwidth: 3_200_000,
            average_bandwidth: 3_000_000,
            codecs: "avc1.64001f,mp4a.40.2".into(),
            resolution: Some((1280, 720)),
            frame_rate: Some(30.0),
        });
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=3200000,\
             AVERAGE-BANDWIDTH=3000000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,\
             FRAME-RATE=30.000\nv0/index.m3u8\n"
        );
    }
}
