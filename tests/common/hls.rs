//! The playlist validator every end-to-end test runs: fetches a stream's multivariant and
//! media playlists as a player does and checks every rule hawker keeps.
//!
//! - TARGETDURATION ≥ every EXTINF rounded; EXT-X-MAP (init) present and fetchable;
//! - MEDIA-SEQUENCE never goes back between calls for one stream; PDT on every segment and
//!   strictly increasing;
//! - every segment and part URI fetchable; every segment (with its init) decodes and starts
//!   with a keyframe;
//! - LL-HLS (when PART-INF is present): every part ≤ PART-TARGET, SERVER-CONTROL with
//!   PART-HOLD-BACK ≥ 3 × PART-TARGET, the first part of a segment INDEPENDENT, one
//!   PRELOAD-HINT unless ENDLIST.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Web, decode_alone, parse_media, parse_multivariant};

static LAST_MEDIA_SEQUENCE: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

/// The value of `NAME=` in a tag's attribute list (quotes removed).
pub fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line
        .match_indices(&format!("{name}="))
        .find(|(i, _)| *i == 0 || matches!(line.as_bytes()[i - 1], b',' | b':'))?
        .0;
    let rest = &line[at + name.len() + 1..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split(',').next(),
    }
}

/// One `EXT-X-PART` line.
#[derive(Debug, Clone)]
pub struct PartLine {
    pub uri: String,
    pub duration: f64,
    pub independent: bool,
}

/// The LL-HLS side of a media playlist (m3u8-rs keeps these tags as unknown).
#[derive(Debug, Default, Clone)]
pub struct LowLatency {
    pub part_target: Option<f64>,
    pub server_control: Option<String>,
    pub parts: Vec<PartLine>,
    pub preload_hint: Option<String>,
    pub skipped_segments: Option<u64>,
}

pub fn low_latency(text: &str) -> LowLatency {
    let mut ll = LowLatency::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-PART-INF:") {
            ll.part_target = attr(rest, "PART-TARGET").and_then(|v| v.parse().ok());
        } else if let Some(rest) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            ll.server_control = Some(rest.to_owned());
        } else if let Some(rest) = line.strip_prefix("#EXT-X-PART:") {
            ll.parts.push(PartLine {
                uri: attr(rest, "URI").expect("PART URI").to_owned(),
                duration: attr(rest, "DURATION").expect("PART DURATION").parse().expect("PART DURATION number"),
                independent: rest.contains("INDEPENDENT=YES"),
            });
        } else if let Some(rest) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            assert!(ll.preload_hint.is_none(), "two PRELOAD-HINTs:\n{text}");
            ll.preload_hint = attr(rest, "URI").map(str::to_owned);
        } else if let Some(rest) = line.strip_prefix("#EXT-X-SKIP:") {
            ll.skipped_segments = attr(rest, "SKIPPED-SEGMENTS").and_then(|v| v.parse().ok());
        }
    }
    ll
}

/// Checks a media playlist's text without fetching anything.
pub fn check_playlist_text(text: &str) -> (m3u8_rs::MediaPlaylist, LowLatency) {
    let playlist = parse_media(text);
    assert!(!playlist.segments.is_empty() || text.contains("#EXT-X-PART:"), "no segments:\n{text}");
    if let Some(first) = playlist.segments.first() {
        assert!(first.map.is_some(), "first segment has no EXT-X-MAP (init):\n{text}");
    }
    let mut last_pdt = None;
    for segment in &playlist.segments {
        assert!(
            (segment.duration.round() as u64) <= playlist.target_duration,
            "EXTINF {} exceeds TARGETDURATION {}:\n{text}",
            segment.duration,
            playlist.target_duration
        );
        let pdt = segment.program_date_time.unwrap_or_else(|| panic!("segment {} has no PDT:\n{text}", segment.uri));
        if let Some(last) = last_pdt {
            assert!(pdt > last, "PDT goes backwards at {}:\n{text}", segment.uri);
        }
        last_pdt = Some(pdt);
    }
    let ll = low_latency(text);
    if let Some(target) = ll.part_target {
        let control =
            ll.server_control.as_deref().unwrap_or_else(|| panic!("PART-INF without SERVER-CONTROL:\n{text}"));
        assert_eq!(attr(control, "CAN-BLOCK-RELOAD"), Some("YES"), "{text}");
        let hold: f64 = attr(control, "PART-HOLD-BACK").expect("PART-HOLD-BACK").parse().unwrap();
        assert!(hold >= 3.0 * target - 1e-9, "PART-HOLD-BACK {hold} < 3 × {target}:\n{text}");
        // RFC 8216bis 4.4.4.9: each part at least 85 % of the target, but an INDEPENDENT one
        // and the last of its segment. The open segment's newest part may be its last (the
        // publish ended), so it is not judged either.
        let check_floor = |parts: &mut Vec<(&str, f64, bool)>| {
            for (i, &(uri, duration, independent)) in parts.iter().enumerate() {
                assert!(
                    independent || i + 1 == parts.len() || duration >= 0.85 * target - 1e-9,
                    "part {uri} lasts {duration} s < 85 % of PART-TARGET {target}:\n{text}"
                );
            }
            parts.clear();
        };
        let mut parts_of_segment: Vec<(&str, f64, bool)> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("#EXT-X-PART:") {
                let uri = attr(rest, "URI").unwrap_or_default();
                let duration: f64 = attr(rest, "DURATION").and_then(|d| d.parse().ok()).unwrap_or(0.0);
                parts_of_segment.push((uri, duration, rest.contains("INDEPENDENT=YES")));
            } else if line.starts_with("#EXTINF") {
                check_floor(&mut parts_of_segment);
            }
        }
        check_floor(&mut parts_of_segment);
        for part in &ll.parts {
            assert!(
                part.duration <= target + 1e-9,
                "part {} lasts {} s > PART-TARGET {target}:\n{text}",
                part.uri,
                part.duration
            );
            if part.uri.ends_with(".0.m4s") {
                assert!(part.independent, "first part {} is not INDEPENDENT:\n{text}", part.uri);
            }
        }
        assert_eq!(ll.preload_hint.is_none(), playlist.end_list, "PRELOAD-HINT iff live:\n{text}");
    } else {
        assert!(ll.parts.is_empty(), "parts without PART-INF:\n{text}");
    }
    (playlist, ll)
}

/// Fetches and validates the stream's playlists and every object they name; returns the
/// (first variant's) media playlist's text.
pub async fn validate_hls(server: &impl Web, playback_id: &str) -> String {
    let (status, text) = server.fetch_text(&format!("/hls/{playback_id}/index.m3u8")).await;
    assert_eq!(status, 200, "multivariant: {text}");
    let multivariant = parse_multivariant(&text);
    let variant = multivariant.variants.first().expect("a variant");
    validate_variant(server, playback_id, &variant.uri).await
}

/// Validates one variant's media playlist (its URI in the multivariant playlist) and every
/// object it names; returns the playlist's text.
pub async fn validate_variant(server: &impl Web, playback_id: &str, uri: &str) -> String {
    let rendition = uri.rsplit_once('/').map_or("", |(dir, _)| dir);
    let (status, text) = server.fetch_text(&format!("/hls/{playback_id}/{uri}")).await;
    assert_eq!(status, 200, "media playlist: {text}");
    let (playlist, ll) = check_playlist_text(&text);
    {
        let mut last = LAST_MEDIA_SEQUENCE.lock().unwrap();
        let last = last.get_or_insert_with(HashMap::new);
        let previous = last.insert(format!("{playback_id}/{rendition}"), playlist.media_sequence).unwrap_or(0);
        // The replay restarts at 0: only the live playlist must not go back.
        if !playlist.end_list || playlist.playlist_type.is_none() {
            assert!(playlist.media_sequence >= previous, "MEDIA-SEQUENCE went back from {previous}:\n{text}");
        }
    }
    let base = |uri: &str| {
        if rendition.is_empty() {
            format!("/hls/{playback_id}/{uri}")
        } else {
            format!("/hls/{playback_id}/{rendition}/{uri}")
        }
    };
    let mut init_uri: Option<String> = None;
    let mut init = Vec::new();
    for segment in &playlist.segments {
        if let Some(map) = &segment.map
            && init_uri.as_deref() != Some(map.uri.as_str())
        {
            let response = server.fetch(&base(&map.uri)).await;
            assert_eq!(response.status(), 200, "init {}", map.uri);
            init = response.bytes().await.unwrap().to_vec();
            init_uri = Some(map.uri.clone());
        }
        let response = server.fetch(&base(&segment.uri)).await;
        assert_eq!(response.status(), 200, "segment {}", segment.uri);
        let bytes = response.bytes().await.unwrap();
        if let Err(e) = decode_alone(&init, &bytes) {
            panic!("segment {} does not start with a keyframe or does not decode: {e}\n{text}", segment.uri);
        }
    }
    for part in &ll.parts {
        let response = server.fetch(&base(&part.uri)).await;
        assert_eq!(response.status(), 200, "part {}", part.uri);
        assert!(!response.bytes().await.unwrap().is_empty(), "part {} is empty", part.uri);
    }
    text
}
