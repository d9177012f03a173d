//! Codec checks on FLV tag bodies (FLV spec v10.1, annex E.4.2 and E.4.3.1; Enhanced RTMP v1).
//!
//! v1 accepts H.264 and AAC only: the packager's flvdemux (GStreamer 1.22) knows nothing newer.

/// A media tag body that passed the check.
#[derive(Debug, PartialEq, Eq)]
pub enum Tag {
    Media,
    /// No bytes at all: some encoders send these; there is nothing to forward.
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedCodec {
    #[error("video codec id {id} ({name})")]
    Video { id: u8, name: &'static str },
    #[error("enhanced RTMP video '{fourcc}'")]
    EnhancedVideo { fourcc: String },
    #[error("audio sound format {id} ({name})")]
    Audio { id: u8, name: &'static str },
}

const AVC: u8 = 7;
const AAC: u8 = 10;
/// Enhanced RTMP: the high bit of a video tag's first byte says a FourCC follows.
const EX_HEADER: u8 = 0x80;

pub fn check_video(body: &[u8]) -> Result<Tag, UnsupportedCodec> {
    let Some(&first) = body.first() else {
        return Ok(Tag::Empty);
    };
    if first & EX_HEADER != 0 {
        return Err(UnsupportedCodec::EnhancedVideo { fourcc: fourcc(body) });
    }
    match first & 0x0F {
        AVC => Ok(Tag::Media),
        id => Err(UnsupportedCodec::Video { id, name: video_codec_name(id) }),
    }
}

/// Whether an AVC video tag body (already through [`check_video`]) is a keyframe: frame type 1,
/// and an AVC NALU packet (the sequence header and end of sequence are not frames).
pub fn is_keyframe(body: &[u8]) -> bool {
    matches!(body, [first, 1, ..] if first >> 4 == 1)
}

pub fn check_audio(body: &[u8]) -> Result<Tag, UnsupportedCodec> {
    let Some(&first) = body.first() else {
        return Ok(Tag::Empty);
    };
    match first >> 4 {
        AAC => Ok(Tag::Media),
        id => Err(UnsupportedCodec::Audio { id, name: sound_format_name(id) }),
    }
}

/// The FourCC of an Enhanced RTMP video tag, printable for a log line.
fn fourcc(body: &[u8]) -> String {
    match body.get(1..5) {
        Some(code) if code.iter().all(u8::is_ascii_graphic) => code.iter().map(|&b| char::from(b)).collect(),
        _ => "?".to_owned(),
    }
}

fn video_codec_name(id: u8) -> &'static str {
    match id {
        2 => "Sorenson H.263",
        3 => "Screen video",
        4 => "On2 VP6",
        5 => "On2 VP6 with alpha",
        6 => "Screen video v2",
        12 => "HEVC (non-standard FLV)",
        _ => "unknown",
    }
}

fn sound_format_name(id: u8) -> &'static str {
    match id {
        0 | 3 => "linear PCM",
        1 => "ADPCM",
        2 | 14 => "MP3",
        4..=6 => "Nellymoser",
        7 => "G.711 A-law",
        8 => "G.711 mu-law",
        9 => "enhanced RTMP audio",
        11 => "Speex",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_avc_frames_and_headers() {
        assert_eq!(check_video(&[0x17, 0x00, 0, 0, 0]), Ok(Tag::Media));
        assert_eq!(check_video(&[0x27, 0x01, 0, 0, 0]), Ok(Tag::Media));
        assert_eq!(check_video(&[]), Ok(Tag::Empty));
    }

    #[test]
    fn tells_keyframes() {
        assert!(is_keyframe(&[0x17, 0x01, 0, 0, 0, 0, 0, 0, 1]));
        assert!(!is_keyframe(&[0x17, 0x00, 0, 0, 0]), "sequence header");
        assert!(!is_keyframe(&[0x27, 0x01, 0, 0, 0]), "inter frame");
        assert!(!is_keyframe(&[0x17]));
    }

    #[test]
    fn refuses_other_video_codecs() {
        assert_eq!(check_video(&[0x12]), Err(UnsupportedCodec::Video { id: 2, name: "Sorenson H.263" }));
        assert_eq!(check_video(&[0x1C]), Err(UnsupportedCodec::Video { id: 12, name: "HEVC (non-standard FLV)" }));
        assert_eq!(
            check_video(&[0x90, b'h', b'v', b'c', b'1']),
            Err(UnsupportedCodec::EnhancedVideo { fourcc: "hvc1".into() })
        );
        // An ex-header is refused even if its low bits happen to read 7.
        assert!(matches!(check_video(&[0x97]), Err(UnsupportedCodec::EnhancedVideo { fourcc }) if fourcc == "?"));
    }

    #[test]
    fn accepts_aac_and_refuses_other_audio() {
        assert_eq!(check_audio(&[0xAF, 0x00, 0x12, 0x10]), Ok(Tag::Media));
        assert_eq!(check_audio(&[]), Ok(Tag::Empty));
        assert_eq!(check_audio(&[0x2F]), Err(UnsupportedCodec::Audio { id: 2, name: "MP3" }));
        assert_eq!(check_audio(&[0x9F]), Err(UnsupportedCodec::Audio { id: 9, name: "enhanced RTMP audio" }));
    }
}
