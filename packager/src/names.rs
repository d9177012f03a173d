//! Every object name of a stream's HLS, in one place. Storage keys mirror the HLS paths:
//! `/hls/{playback_id}/{path}` is stored as `streams/{playback_id}/{path}`.
//!
//! - `index.m3u8`: the multivariant playlist naming `{rendition}/index.m3u8` for the source
//!   (`v0`) and each rung of an ABR ladder
//! - `{rendition}/index.m3u8` (a URL, not an object): the live playlist from the packager's
//!   memory while the stream is on air (`_HLS_skip` gives its delta update), the replay's
//!   playlist otherwise
//! - `{rendition}/replay.m3u8`: the replay, VOD + ENDLIST, written when the stream is saved
//! - `{rendition}/journal{K:05}.m3u8`: while live, the replay so far in chunks of
//!   `JOURNAL_CHUNK` segments, each a small EVENT playlist (only the newest chunk is rewritten
//!   per segment, so the cost per segment stays flat); live-only, removed once saved
//! - `{rendition}/init{N}.mp4` (one per publish), `{rendition}/seg{MSN:06}.m4s`
//! - `{rendition}/seg{MSN:06}.{i}.m4s`: LL-HLS part `i` of a segment (the segment object holds
//!   the same bytes); live-only, removed once saved
//! - `poster.jpg`: a JPEG of a recent keyframe, refreshed while live, kept for the replay
//! - `replay.mp4`: the replay as one fast-start MP4 (the source rendition), made after save
//! - `clips/{clip_id}/index.m3u8`: a clip, a VOD playlist naming the source rendition's
//!   segments (`../../v0/seg…`); `clips/{clip_id}/clip.mp4`: its MP4, when asked for

/// The source rendition's folder: the publisher's H.264, passed through.
pub const SOURCE_RENDITION: &str = "v0";

/// Segments per replay journal chunk.
pub(crate) const JOURNAL_CHUNK: usize = 150;

/// Prefix of every stored object of one stream.
pub fn stream_prefix(playback_id: &str) -> String {
    format!("streams/{playback_id}/")
}

/// Key of object `name` of a rendition.
pub(crate) fn key(playback_id: &str, rendition: &str, name: &str) -> String {
    format!("streams/{playback_id}/{rendition}/{name}")
}

pub(crate) fn multivariant_key(playback_id: &str) -> String {
    format!("streams/{playback_id}/index.m3u8")
}

pub(crate) fn replay_key(playback_id: &str, rendition: &str) -> String {
    key(playback_id, rendition, "replay.m3u8")
}

pub(crate) fn journal_key(playback_id: &str, rendition: &str, chunk: usize) -> String {
    key(playback_id, rendition, &format!("journal{chunk:05}.m3u8"))
}

/// The replay's MP4, as a path under `/hls/{playback_id}/`.
pub const REPLAY_MP4: &str = "replay.mp4";

pub(crate) fn replay_mp4_key(playback_id: &str) -> String {
    format!("streams/{playback_id}/{REPLAY_MP4}")
}

/// A clip's playlist, as a path under `/hls/{playback_id}/`.
pub fn clip_playlist_path(clip_id: &str) -> String {
    format!("clips/{clip_id}/index.m3u8")
}

/// A clip's MP4, as a path under `/hls/{playback_id}/`.
pub fn clip_mp4_path(clip_id: &str) -> String {
    format!("clips/{clip_id}/clip.mp4")
}

/// How a clip's playlist names the source rendition's objects.
pub(crate) const CLIP_TO_SOURCE: &str = "../../v0/";

/// A clip id fit for a path: letters, digits, `-` and `_`.
pub(crate) fn valid_clip_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn poster_key(playback_id: &str) -> String {
    format!("streams/{playback_id}/poster.jpg")
}

pub(crate) fn init_uri(init: u32) -> String {
    InitUri(init).to_string()
}

pub(crate) fn segment_uri(msn: u64) -> String {
    SegmentUri(msn).to_string()
}

// Object names as `Display`, and written straight into a text (`write`), for the playlists: a
// live playlist, rendered at every part, writes dozens of them, not each into a string of its
// own first.

/// `init{n}.mp4`.
pub(crate) struct InitUri(pub u32);

/// `seg{msn:06}.m4s`.
pub(crate) struct SegmentUri(pub u64);

/// `seg{msn:06}.{index}.m4s`.
pub(crate) struct PartUri(pub u64, pub usize);

/// `n` in decimal, zero-padded to at least `width` digits: what `{:0width$}` writes, without
/// the formatter's machinery. A live playlist writes about a hundred numbers at every part;
/// written this way (and its lines without `write!`), a render of the default window costs
/// 2.3 µs instead of 7.7 (`playlist::tests::render_cost`).
pub(crate) fn write_digits(f: &mut impl std::fmt::Write, n: u64, width: usize) -> std::fmt::Result {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(n);
    for _ in digits.len()..width {
        f.write_char('0')?;
    }
    f.write_str(digits)
}

impl InitUri {
    pub(crate) fn write(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        out.write_str("init")?;
        write_digits(out, self.0.into(), 0)?;
        out.write_str(".mp4")
    }
}

impl SegmentUri {
    pub(crate) fn write(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        out.write_str("seg")?;
        write_digits(out, self.0, 6)?;
        out.write_str(".m4s")
    }
}

impl PartUri {
    pub(crate) fn write(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        out.write_str("seg")?;
        write_digits(out, self.0, 6)?;
        out.write_str(".")?;
        write_digits(out, self.1 as u64, 0)?;
        out.write_str(".m4s")
    }
}

impl std::fmt::Display for InitUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.write(f)
    }
}

impl std::fmt::Display for SegmentUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.write(f)
    }
}

impl std::fmt::Display for PartUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.write(f)
    }
}

/// What a path under `/hls/{playback_id}/` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HlsPath {
    /// `{rendition}/index.m3u8`: a rendition's media playlist.
    MediaPlaylist { rendition: String },
    /// `{rendition}/seg{MSN}.{i}.m4s`: an LL-HLS part.
    Part { rendition: String, msn: u64, index: u64 },
    /// `poster.jpg`: a picture of the stream.
    Poster,
    /// `replay.mp4`: a file as large as the replay, to serve by byte range.
    Download,
    /// Any other object (multivariant playlist, init, segment, poster).
    Object,
}

pub fn resolve(path: &str) -> HlsPath {
    if path == "poster.jpg" {
        return HlsPath::Poster;
    }
    if path == REPLAY_MP4 || (path.starts_with("clips/") && path.ends_with(".mp4")) {
        return HlsPath::Download;
    }
    let Some((rendition, name)) = path.split_once('/') else { return HlsPath::Object };
    if name.contains('/') {
        return HlsPath::Object;
    }
    let rendition = rendition.to_owned();
    if name == "index.m3u8" {
        return HlsPath::MediaPlaylist { rendition };
    }
    match part_of(name) {
        Some((msn, index)) => HlsPath::Part { rendition, msn, index },
        None => HlsPath::Object,
    }
}

/// (MSN, part index) of a part object name `seg{MSN:06}.{i}.m4s`.
fn part_of(name: &str) -> Option<(u64, u64)> {
    let (msn, index) = name.strip_prefix("seg")?.strip_suffix(".m4s")?.split_once('.')?;
    Some((msn.parse().ok()?, index.parse().ok()?))
}

/// The stored object a request for `path` reads when the packager's memory does not answer
/// it: a media playlist is the replay's.
pub fn object_key(playback_id: &str, path: &str) -> String {
    match resolve(path) {
        HlsPath::MediaPlaylist { rendition } => replay_key(playback_id, &rendition),
        HlsPath::Part { .. } | HlsPath::Poster | HlsPath::Download | HlsPath::Object => {
            format!("{}{path}", stream_prefix(playback_id))
        }
    }
}

/// Whether a stored object (its name within a rendition folder) is needed only while live:
/// the replay's journal, and parts (no longer stored, but streams recorded by earlier
/// versions may still hold them).
pub(crate) fn is_live_only(name: &str) -> bool {
    part_of(name).is_some() || (name.starts_with("journal") && name.ends_with(".m3u8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve() {
        assert_eq!(resolve("v0/index.m3u8"), HlsPath::MediaPlaylist { rendition: "v0".into() });
        assert_eq!(resolve("v0/seg000012.3.m4s"), HlsPath::Part { rendition: "v0".into(), msn: 12, index: 3 });
        assert_eq!(resolve("v0/seg000012.m4s"), HlsPath::Object);
        assert_eq!(resolve("v0/init0.mp4"), HlsPath::Object);
        assert_eq!(resolve("index.m3u8"), HlsPath::Object);
        assert_eq!(resolve("poster.jpg"), HlsPath::Poster);
        assert_eq!(resolve("replay.mp4"), HlsPath::Download);
        assert_eq!(object_key("p", "replay.mp4"), "streams/p/replay.mp4");
        assert_eq!(resolve(&clip_mp4_path("c1")), HlsPath::Download);
        assert_eq!(resolve(&clip_playlist_path("c1")), HlsPath::Object);
        assert_eq!(object_key("p", &clip_playlist_path("c1")), "streams/p/clips/c1/index.m3u8");
        assert!(valid_clip_id("a-Z_9") && !valid_clip_id("../x") && !valid_clip_id(""));
        assert_eq!(resolve("v0/x/index.m3u8"), HlsPath::Object);
        assert_eq!(object_key("p", "v0/index.m3u8"), "streams/p/v0/replay.m3u8");
        assert_eq!(object_key("p", "v0/seg000001.m4s"), "streams/p/v0/seg000001.m4s");
        assert_eq!(object_key("p", "poster.jpg"), "streams/p/poster.jpg");
    }

    #[test]
    fn live_only_objects() {
        assert!(is_live_only(&PartUri(7, 2).to_string()));
        assert!(is_live_only("journal00000.m3u8"));
        assert!(!is_live_only(&segment_uri(7)));
        assert!(!is_live_only(&init_uri(0)));
        assert!(!is_live_only("replay.m3u8"));
    }
}
